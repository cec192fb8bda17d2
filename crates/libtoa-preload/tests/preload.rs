//! The C test server (`crates/libtoa/tests/c/peer_server.c`, linked with
//! libtoa.so) on real loopback sockets, with and without the preload shim.
//! No `toa origin` is loaded here, so the shim must pass everything through
//! exactly as libc does; the IPv6-client case is in `crates/toa/tests/libtoa.rs`.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// Where cargo put this test's build outputs: the test binary sits in `deps/`
/// next to the cdylibs of this package and of libtoa.
fn deps_dir() -> PathBuf {
    std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Built once per test binary: tests run in parallel and share the output.
fn peer_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_peer_server)
}

fn build_peer_server() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let libtoa = manifest.join("../libtoa");
    let deps = deps_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("peer_server");
    let status = Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg("-I")
        .arg(libtoa.join("include"))
        .arg(libtoa.join("tests/c/peer_server.c"))
        .arg("-L")
        .arg(&deps)
        // DT_RPATH (not RUNPATH): cargo test puts target/<profile> on
        // LD_LIBRARY_PATH, whose libtoa.so may be an older uplifted copy.
        .arg(format!("-Wl,--disable-new-dtags,-rpath,{}", deps.display()))
        .arg("-ltoa")
        .status()
        .expect("gcc");
    assert!(status.success(), "gcc failed to build peer_server");
    out
}

struct Server {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    local: SocketAddr,
    head: Vec<String>,
}

impl Server {
    fn start(bin: &Path, bind: &str, count: usize, preload: bool) -> Server {
        let mut cmd = Command::new(bin);
        cmd.args([bind, "0", &count.to_string()])
            .stdout(Stdio::piped());
        if preload {
            cmd.env("LD_PRELOAD", deps_dir().join("libtoa_preload.so"));
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut head = Vec::new();
        let local = loop {
            let line = lines.next().expect("peer_server exited early").unwrap();
            if let Some(addr) = line.strip_prefix("listening ") {
                break addr.parse().unwrap();
            }
            head.push(line);
        };
        Server {
            child,
            lines,
            local,
            head,
        }
    }

    fn next_line(&mut self) -> String {
        self.lines
            .next()
            .expect("peer_server exited early")
            .unwrap()
    }

    fn is_preloaded(&self) -> bool {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.child.id())).unwrap();
        maps.contains("libtoa_preload.so")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What peer_server reports for two connections (one via accept, one via
/// accept4) from loopback clients, checked against the clients' real addresses.
fn serve_two_clients(bin: &Path, bind: &str, preload: bool) {
    let mut server = Server::start(bin, bind, 2, preload);
    assert_eq!(
        server.is_preloaded(),
        preload,
        "LD_PRELOAD took effect: {preload}"
    );
    for line in &server.head {
        assert!(
            line.starts_with("selfcheck ok"),
            "{bind} preload={preload}: {line}"
        );
    }
    for call in ["accept", "accept4"] {
        let client = TcpStream::connect(server.local).unwrap();
        let me = client.local_addr().unwrap();
        let len = if me.is_ipv4() { 16 } else { 28 };
        assert_eq!(server.next_line(), format!("{call} {me} len={len}"));
        assert_eq!(server.next_line(), format!("getpeername {me} len={len}"));
        assert_eq!(server.next_line(), "toa_get_peer error ENOPROTOOPT");
    }
    let status = server.child.wait().unwrap();
    assert!(status.success());
}

#[test]
fn c_server_sees_loopback_clients_unchanged_without_shim() {
    serve_two_clients(peer_server(), "127.0.0.1", false);
    serve_two_clients(peer_server(), "::1", false);
}

#[test]
fn shim_passes_accept_and_getpeername_through_when_origin_is_not_loaded() {
    serve_two_clients(peer_server(), "127.0.0.1", true);
    serve_two_clients(peer_server(), "::1", true);
}
