//! `toa demo` end to end: the real binary builds its namespaces, loads
//! `toa origin`, runs `toa proxy` and real servers, and must report the
//! client's real addresses, twice in a row, leaving nothing behind.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `toa demo ARGS` in the background, its stdout and stderr piped.
fn spawn_demo(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_toa"))
        .arg("demo")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn toa demo")
}

fn toa_demo(args: &[&str]) -> (u32, Output) {
    let child = spawn_demo(args);
    let pid = child.id();
    (pid, child.wait_with_output().expect("wait for toa demo"))
}

/// The demo names everything `toa-demo-<its pid>-...`.
fn assert_nothing_left(pid: u32) {
    let prefix = format!("toa-demo-{pid}-");
    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&prefix), "namespaces left behind: {netns}");
    let cgroups: Vec<String> = std::fs::read_dir(toa_lab::CGROUP2_ROOT)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
}

fn text(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every one of `lines` is in `stdout`; a failure names the line after `run`.
fn assert_lines(stdout: &str, lines: &[&str], run: &str, all: &str) {
    for line in lines {
        assert!(stdout.contains(line), "{run}no `{line}`:\n{all}");
    }
}

#[test]
fn demo_origin_logs_real_client_addresses_twice_in_a_row() {
    if !toa_lab::require_privileges("demo_origin_logs_real_client_addresses_twice_in_a_row") {
        return;
    }
    for attempt in 1..=2 {
        let (pid, out) = toa_demo(&[]);
        let all = text(&out);
        assert!(out.status.success(), "run {attempt} failed:\n{all}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The origin's access log shows each client form, not the proxy.
        assert_lines(
            &stdout,
            &[
                "log: 198.18.1.2 - - ",
                "log: fd00:1::2 - - ",
                "log: ::ffff:198.18.1.2 - - ",
                "log: fd00:1::2 port ",
            ],
            &format!("run {attempt}: "),
            &all,
        );
        // With TOA off, the same origin logs the proxy.
        assert_lines(
            &stdout,
            &["log: 198.18.2.1 - - ", "log: fd00:2::1 - - "],
            &format!("run {attempt}: "),
            &all,
        );
        assert!(
            stdout.contains("syn_recv_sock_toa"),
            "no stats table:\n{all}"
        );
        assert!(
            stdout.contains("✓ toa works: the origin saw 4/4 real client addresses"),
            "run {attempt}: no verdict:\n{all}"
        );
        assert_nothing_left(pid);
    }
}

#[test]
fn demo_ppv2_nginx_logs_real_client_addresses() {
    if !toa_lab::require_privileges("demo_ppv2_nginx_logs_real_client_addresses") {
        return;
    }
    let (pid, out) = toa_demo(&["--mode", "ppv2"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_lines(
        &stdout,
        &[
            "log: 198.18.1.2 port ",
            "log: fd00:1::2 port ",
            "log: 198.18.2.1 port ",
            "✓ PROXY v2 works: the origin saw 3/3 real client addresses",
        ],
        "",
        &all,
    );
    assert_nothing_left(pid);
}

#[test]
fn demo_interrupted_with_ctrl_c_cleans_up() {
    if !toa_lab::require_privileges("demo_interrupted_with_ctrl_c_cleans_up") {
        return;
    }
    let mut child = spawn_demo(&[]);
    let pid = child.id();
    // Interrupt once everything is up: origin loaded, servers and proxy running.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + toa_lab::scaled(Duration::from_secs(60));
    while !seen.contains("✓ toa proxy --config") {
        assert!(Instant::now() < deadline, "demo never got ready:\n{seen}");
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("demo ended before it was ready:\n{seen}");
        }
        seen.push_str(&line);
    }
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert_nothing_left(pid);
}

/// Issue 26, finding 3: `toa demo` runs as root and used the guessable
/// `/tmp/toa-demo-<pid>-0` even when another user had made it, writing its
/// configs through the symlinks planted there.
#[test]
fn demo_never_writes_into_a_directory_another_user_planted() {
    if !toa_lab::require_privileges("demo_never_writes_into_a_directory_another_user_planted") {
        return;
    }
    // What the planted links point at: a file and a directory of root's.
    let victim = std::env::temp_dir().join(format!("toa-demo-victim-{}", std::process::id()));
    std::fs::create_dir(&victim).unwrap();
    let file = victim.join("file");
    toa_lab::write_new(&file, "root's own\n").unwrap();

    // The demo, stopped before it starts, so its pid (the name) is known.
    let child = Command::new("sh")
        .args([
            "-c",
            r#"kill -STOP $$ && exec "$0" demo"#,
            env!("CARGO_BIN_EXE_toa"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + toa_lab::scaled(Duration::from_secs(10));
    while !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(") ")
            .next()
            .is_some_and(|rest| rest.starts_with('T'))
    }) {
        assert!(Instant::now() < deadline, "the demo's shell never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let planted = std::env::temp_dir().join(format!("toa-demo-{pid}-0"));
    let plant = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args([
            "sh",
            "-c",
            r#"mkdir -m 0755 "$0" && ln -s "$1" "$0/proxy.toml" && ln -s "$2" "$0/www""#,
        ])
        .args([&planted, &file, &victim])
        .status()
        .unwrap();
    assert!(
        plant.success(),
        "nobody could not plant {}",
        planted.display()
    );
    // SAFETY: resuming the child we spawned.
    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();

    let all = text(&out);
    let mut left: Vec<String> = std::fs::read_dir(&planted)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let victim_now: Vec<String> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let file_now = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_dir_all(&planted);
    std::fs::remove_dir_all(&victim).unwrap();
    assert_eq!(
        file_now, "root's own\n",
        "written through a planted link:\n{all}"
    );
    assert_eq!(
        victim_now,
        ["file"],
        "written through a planted link:\n{all}"
    );
    left.sort();
    assert_eq!(
        left,
        ["proxy.toml", "www"],
        "the planted directory changed:\n{all}"
    );
    let planted = planted.to_string_lossy();
    assert!(
        !all.contains(&format!("{planted}/")),
        "used the planted directory:\n{all}"
    );
    assert!(out.status.success(), "{all}");
    assert_nothing_left(pid);
}
