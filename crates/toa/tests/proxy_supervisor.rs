//! `toa proxy` under a supervisor: the systemd notification protocol (READY=1,
//! RELOADING=1 … READY=1, STOPPING=1 on a real `$NOTIFY_SOCKET`) and `--watch-config`
//! reloading on a file change and on a Kubernetes-ConfigMap-style symlink swap.
//! (TOA mode staying in its cgroup is in `proxy_toa_cgroup.rs`.)

#[path = "support/log.rs"]
mod logs;
mod proxy_support;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logs::wait_log;
use proxy_support::{eventually, exited};
use toa_lab::{Lab, Netns, Spawned, require_privileges};

const TOA: &str = env!("CARGO_BIN_EXE_toa");

/// The supervisor's end of `$NOTIFY_SOCKET`: a unix datagram socket in the lab dir.
struct Supervisor {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Supervisor {
    fn bind(dir: &Path) -> Supervisor {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        Supervisor { socket, path }
    }

    /// The next notification; panics with the proxy's log if none comes.
    fn next(&self, log: &Path) -> String {
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) => panic!(
                "no notification ({e}); proxy log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }

    /// Asserts the next notification starts with `state` (e.g. `READY=1`); returns it.
    fn expect(&self, state: &str, log: &Path) -> String {
        let message = self.next(log);
        assert!(
            message.starts_with(&format!("{state}\n")),
            "expected {state}, got {message:?}"
        );
        message
    }

    /// Asserts nothing is notified for `wait`.
    fn expect_silence(&self, wait: Duration) {
        self.socket.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        let got = self.socket.recv(&mut buf);
        self.socket
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        if let Ok(n) = got {
            panic!(
                "unexpected notification {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
    }
}

/// A TCP rule on `port` (origin 127.0.0.1:9, nothing needs to answer).
fn rule(tag: &str, port: u16) -> String {
    format!(
        "[[rule]]\ntag = \"{tag}\"\nlisten = [\"127.0.0.1\"]\nports = \"{port}\"\norigins = [\"127.0.0.1\"]\norigin_ports = \"9\"\n\n"
    )
}

fn listening(ns: &Netns, port: u16) -> bool {
    ns.run(&["ss", "-Hltn", &format!("sport = :{port}")])
        .is_ok_and(|out| !out.trim().is_empty())
}

/// Runs `toa proxy` in `ns` with `NOTIFY_SOCKET` set, plus `extra` arguments.
fn spawn_proxy(lab: &mut Lab, ns: &Netns, notify: &Path, config: &Path, extra: &[&str]) -> Spawned {
    let notify_env = format!("NOTIFY_SOCKET={}", notify.display());
    let mut cmd = vec![
        "env",
        &notify_env,
        TOA,
        "proxy",
        "--config",
        config.to_str().unwrap(),
    ];
    cmd.extend_from_slice(extra);
    lab.spawn(ns, None, &cmd).expect("spawn toa proxy")
}

#[test]
fn systemd_is_told_ready_reloading_ready_and_stopping_in_order() {
    if !require_privileges("systemd_is_told_ready_reloading_ready_and_stopping_in_order") {
        return;
    }
    let mut lab = Lab::new("sdnotify").unwrap();
    let ns = lab.netns("edge").unwrap();
    let supervisor = Supervisor::bind(lab.dir());
    let config = lab.dir().join("proxy.toml");
    std::fs::write(&config, rule("a", 17001)).unwrap();
    let proxy = spawn_proxy(&mut lab, &ns, &supervisor.path, &config, &[]);

    // READY=1 only once the listener is bound: a supervisor may start dependents now.
    let ready = supervisor.expect("READY=1", &proxy.log);
    assert!(listening(&ns, 17001), "READY=1 before 17001 listens");
    assert!(ready.contains("STATUS=serving "), "{ready:?}");

    // SIGHUP with a new rule: RELOADING=1 with the monotonic time systemd ≥ 253 wants,
    // then READY=1 once the new listener is bound.
    std::fs::write(&config, rule("a", 17001) + &rule("b", 17002)).unwrap();
    ns.run(&["kill", "-HUP", &proxy.pid.to_string()]).unwrap();
    let reloading = supervisor.expect("RELOADING=1", &proxy.log);
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    supervisor.expect("READY=1", &proxy.log);
    assert!(
        listening(&ns, 17002),
        "READY=1 before the reload bound 17002"
    );

    // A rejected file: still RELOADING=1 then READY=1 (the old config runs), and the
    // status line says why.
    std::fs::write(&config, "[[rule]]\ntag = \"broken\"\nports = \"nope\"\n").unwrap();
    ns.run(&["kill", "-HUP", &proxy.pid.to_string()]).unwrap();
    supervisor.expect("RELOADING=1", &proxy.log);
    let ready = supervisor.expect("READY=1", &proxy.log);
    assert!(
        ready.contains("STATUS=reload rejected, old config still running: "),
        "{ready:?}"
    );
    assert!(listening(&ns, 17001) && listening(&ns, 17002));

    // SIGTERM: STOPPING=1 as draining starts, then a clean exit.
    ns.run(&["kill", "-TERM", &proxy.pid.to_string()]).unwrap();
    supervisor.expect("STOPPING=1", &proxy.log);
    eventually(Duration::from_secs(10), "proxy exit", || exited(proxy.pid));
    supervisor.expect_silence(Duration::from_millis(300));
}

/// A ConfigMap volume as the kubelet writes it: `proxy.toml -> ..data/proxy.toml`,
/// `..data -> ..<version>`; an update writes a new version directory and renames a new
/// `..data` symlink over the old one.
struct ConfigMapVolume {
    dir: PathBuf,
    version: u32,
}

impl ConfigMapVolume {
    fn new(dir: PathBuf, content: &str) -> ConfigMapVolume {
        std::fs::create_dir_all(&dir).unwrap();
        let mut volume = ConfigMapVolume { dir, version: 0 };
        volume.update(content);
        std::os::unix::fs::symlink("..data/proxy.toml", volume.file()).unwrap();
        volume
    }

    fn file(&self) -> PathBuf {
        self.dir.join("proxy.toml")
    }

    fn update(&mut self, content: &str) {
        self.version += 1;
        let version = format!(
            "..2026_12_01_00_00_0{}.{}",
            self.version,
            std::process::id()
        );
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join("proxy.toml"), content).unwrap();
        let staged = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &staged).unwrap();
        std::fs::rename(&staged, self.dir.join("..data")).unwrap();
    }
}

#[test]
fn watch_config_reloads_on_a_configmap_symlink_swap_and_on_a_file_change() {
    if !require_privileges("watch_config_reloads_on_a_configmap_symlink_swap_and_on_a_file_change")
    {
        return;
    }
    let mut lab = Lab::new("watchcfg").unwrap();
    let ns = lab.netns("edge").unwrap();
    let supervisor = Supervisor::bind(lab.dir());
    let mut volume = ConfigMapVolume::new(lab.dir().join("configmap"), &rule("a", 17101));
    let proxy = spawn_proxy(
        &mut lab,
        &ns,
        &supervisor.path,
        &volume.file(),
        &["--watch-config"],
    );
    supervisor.expect("READY=1", &proxy.log);
    assert!(listening(&ns, 17101));
    // Unchanged content never reloads.
    supervisor.expect_silence(Duration::from_millis(2500));

    // The ConfigMap is updated: the kubelet swaps `..data`.
    volume.update(&(rule("a", 17101) + &rule("b", 17102)));
    supervisor.expect("RELOADING=1", &proxy.log);
    supervisor.expect("READY=1", &proxy.log);
    assert!(listening(&ns, 17102), "symlink swap not applied");

    // The file itself is rewritten in place (an editor, or a plain file).
    let current = volume.dir.join("..data/proxy.toml");
    std::fs::write(&current, rule("b", 17102) + &rule("c", 17103)).unwrap();
    supervisor.expect("RELOADING=1", &proxy.log);
    supervisor.expect("READY=1", &proxy.log);
    eventually(Duration::from_secs(5), "17101 closed", || {
        !listening(&ns, 17101)
    });
    assert!(listening(&ns, 17102) && listening(&ns, 17103));

    // A bad update is rejected once (not retried every second) and the old config keeps
    // serving.
    volume.update("[[rule]]\ntag = \"broken\"\nports = \"nope\"\n");
    supervisor.expect("RELOADING=1", &proxy.log);
    let ready = supervisor.expect("READY=1", &proxy.log);
    assert!(ready.contains("reload rejected"), "{ready:?}");
    supervisor.expect_silence(Duration::from_millis(2500));
    assert!(listening(&ns, 17102) && listening(&ns, 17103));
    wait_log(&proxy.log, "reload rejected, old config still running: ");

    // SIGHUP still works alongside, and does not cause a second reload by the watcher.
    volume.update(&rule("d", 17104));
    supervisor.expect("RELOADING=1", &proxy.log);
    supervisor.expect("READY=1", &proxy.log);
    assert!(listening(&ns, 17104));
    ns.run(&["kill", "-HUP", &proxy.pid.to_string()]).unwrap();
    supervisor.expect("RELOADING=1", &proxy.log);
    supervisor.expect("READY=1", &proxy.log);
    supervisor.expect_silence(Duration::from_millis(2500));
}
