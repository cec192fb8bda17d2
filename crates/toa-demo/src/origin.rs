//! The origin's servers (python http.server, the libtoa lookup server, nginx)
//! and reading back what each one logged.

use crate::plan::{Case, Pass, bracket};
use anyhow::{Context, bail};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toa_lab::Netns;

/// Where one case's access log ends up. Every server the demo runs logs the
/// client as the first field of an access line:
/// - python: `ADDR - - [date] "GET / HTTP/1.1" 200 -` (after a startup banner);
/// - the lookup server and nginx: `ADDR port N (how it was learned) ...`.
#[derive(Debug, Clone)]
pub struct AccessLog(pub PathBuf);

impl AccessLog {
    /// Waits (briefly: the request already completed; `timeout` is
    /// [`toa_lab::scaled`]) for the first access line and returns it.
    pub fn first_access_line(&self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + toa_lab::scaled(timeout);
        loop {
            if let Some(line) = fs::read_to_string(&self.0)
                .ok()
                .and_then(|text| text.lines().find(|l| is_access_line(l)).map(str::to_owned))
            {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// An access line starts with the peer address; banners and errors do not.
fn is_access_line(line: &str) -> bool {
    seen_address(line).is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
}

/// The address an access line reports: its first field.
pub fn seen_address(line: &str) -> Option<&str> {
    line.split_whitespace().next()
}

/// The index page python serves, so the client sees who answered.
pub fn write_web_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join("www");
    fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
    toa_lab::write_new(
        &root.join("index.html"),
        "hello from the origin (python3 -m http.server)\n",
    )?;
    Ok(root)
}

/// The command line of a python origin server for `case`.
pub fn python_command(case: &Case, web_root: &Path) -> Vec<String> {
    [
        "python3",
        "-u",
        "-m",
        "http.server",
        &case.port.to_string(),
        "--bind",
        case.server.bind(),
        "--directory",
        &web_root.to_string_lossy(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The command line of the lookup server for `case`: this very binary in
/// its hidden helper mode.
pub fn lookup_command(case: &Case, toa_bin: &Path) -> Vec<String> {
    vec![
        toa_bin.to_string_lossy().into_owned(),
        "demo".into(),
        "--lookup-server".into(),
        format!("{}:{}", bracket(case.server.bind()), case.port),
    ]
}

/// nginx's config for every nginx case: one `server` per case, each with its
/// own access log, everything (pid, temp files, logs) inside `dir`.
pub fn nginx_config(cases: &[Case], dir: &Path) -> String {
    let d = dir.display();
    let mut conf = format!(
        "# Written by `toa demo --mode ppv2`.\n\
         daemon off;\nmaster_process off;\nuser root;\nworker_processes 1;\n\
         pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n\
         \x20 client_body_temp_path {d}/nginx-tmp;\n  proxy_temp_path {d}/nginx-tmp;\n\
         \x20 fastcgi_temp_path {d}/nginx-tmp;\n  uwsgi_temp_path {d}/nginx-tmp;\n  scgi_temp_path {d}/nginx-tmp;\n\
         \x20 log_format via_proxy_protocol '$proxy_protocol_addr port $proxy_protocol_port \
         (PROXY v2 header; TCP peer $remote_addr) \"$request\" $status';\n\
         \x20 log_format plain '$remote_addr port $remote_port (TCP peer) \"$request\" $status';\n"
    );
    for case in cases {
        let (listen_flag, format, who) = match case.pass {
            Pass::Off => ("", "plain", "$remote_addr"),
            Pass::Toa | Pass::Ppv2 => (
                " proxy_protocol",
                "via_proxy_protocol",
                "$proxy_protocol_addr",
            ),
        };
        let _ = write!(
            conf,
            "  server {{\n    listen {listen}{listen_flag};\n    access_log {log} {format};\n\
             \x20   location / {{ return 200 \"hello {who} from the origin (nginx)\\n\"; }}\n  }}\n",
            listen = case.listener(),
            log = nginx_log(dir, case).display(),
        );
    }
    conf.push_str("}\n");
    conf
}

pub fn nginx_log(dir: &Path, case: &Case) -> PathBuf {
    dir.join(format!("nginx-access-{}.log", case.port))
}

/// Fails with the fix when nginx is missing (`--mode ppv2` needs it).
pub fn require_nginx() -> anyhow::Result<()> {
    let found = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        bail!("`toa demo --mode ppv2` needs nginx: run scripts/setup (or apt-get install nginx)");
    }
    Ok(())
}

/// Checks nginx accepts `conf` before the demo starts it. Run inside the
/// origin namespace: `nginx -t` binds the listen addresses.
pub fn check_nginx_config(ns: &Netns, conf: &Path, dir: &Path) -> anyhow::Result<()> {
    let tmp = dir.join("nginx-tmp");
    fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let (conf, dir) = (conf.to_string_lossy(), dir.to_string_lossy());
    let error_log = format!("{dir}/nginx-error.log");
    ns.run(&[
        "nginx", "-t", "-q", "-e", &error_log, "-p", &dir, "-c", &conf,
    ])
    .with_context(|| format!("nginx rejected the demo's config {conf}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mode;
    use crate::plan::cases;

    #[test]
    fn python_banner_is_not_an_access_line() {
        assert!(!is_access_line(
            "Serving HTTP on 198.18.2.2 port 10000 (http://198.18.2.2:10000/) ..."
        ));
        assert!(is_access_line(
            "::ffff:198.18.1.2 - - [01/Jan/2025 10:00:00] \"GET / HTTP/1.1\" 200 -"
        ));
    }

    #[test]
    fn nginx_reads_proxy_protocol_only_where_the_proxy_sends_it() {
        let cases = cases(Mode::Ppv2);
        let conf = nginx_config(&cases, Path::new("/tmp/x"));
        assert_eq!(conf.matches(" proxy_protocol;").count(), 3);
        assert!(conf.contains("listen [fd00:2::2]:10001 proxy_protocol;"));
        assert!(conf.contains("listen 198.18.2.2:10003;"));
    }
}
