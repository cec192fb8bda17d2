//! Issue 26, finding 2: the pinned state is root's alone. toa mounted its
//! bpffs with the kernel's default mode 1777, so before the first `load`
//! any user could make `origin/` and later rename root's pins away.
//!
//! Each test runs toa in a mount namespace of its own whose /run/toa/bpffs
//! starts unmounted: what it mounts and changes there never reaches the
//! host's mount, which the other tests use at the same time.

use crate::fault_findings::assert_one_line_failure;
use crate::lifecycle::cgroup_links;
use crate::receiver::TOA;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Output, Stdio};

const BPFFS: &str = "/run/toa/bpffs";

/// A private mount namespace without toa's bpffs. A holder process keeps it
/// alive until this drops; its bpffs, and any pin left in it, go with it.
struct PrivateMounts {
    holder: Child,
}

impl PrivateMounts {
    fn new() -> PrivateMounts {
        // Lazily detach every mount stacked at the bpffs path (in this
        // namespace only), then wait on stdin: EOF, on drop, ends it. The
        // mount point is made as toa makes it, on a fresh boot it is not there.
        let script = format!(
            "mkdir -p {BPFFS} && while umount -l {BPFFS} 2>/dev/null; do :; done; \
             echo ready; exec cat >/dev/null"
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut line = String::new();
        BufReader::new(holder.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "the private mount namespace");
        PrivateMounts { holder }
    }

    /// Runs `cmd` as root inside the namespace.
    fn run(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.holder.id().to_string(), "-m", "--"])
            .args(cmd)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("nsenter (util-linux)")
    }

    /// Runs `cmd` inside the namespace as `nobody`, without root's groups.
    fn run_as_nobody(&self, cmd: &[&str]) -> Output {
        let setpriv = [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ];
        self.run(&[&setpriv[..], cmd].concat())
    }

    fn ok(&self, cmd: &[&str]) -> String {
        let out = self.run(cmd);
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

/// `toa origin ACTION --cgroup CG` (with a trust list when loading).
fn origin<'a>(action: &'a str, cg: &'a str) -> Vec<&'a str> {
    let mut args = vec![TOA, "origin", action, "--cgroup", cg];
    if action == "load" {
        args.extend(["--trust", "198.18.2.1/32"]);
    }
    args
}

fn pin_dir(cg: &str) -> String {
    let ino = std::fs::metadata(cg).unwrap().ino();
    format!("{BPFFS}/origin/cgroup-{ino}")
}

#[test]
fn toa_mounts_its_bpffs_for_root_alone_and_nobody_can_write_in_it() {
    if !toa_lab::require_privileges(
        "toa_mounts_its_bpffs_for_root_alone_and_nobody_can_write_in_it",
    ) {
        return;
    }
    let mut lab = toa_lab::Lab::new("pin-mode").unwrap();
    let cg = lab.cgroup("origin").unwrap();
    let cg = cg.to_str().unwrap();
    // Declared after the lab: drops first, so its pins go before the cgroup.
    let ns = PrivateMounts::new();
    ns.ok(&origin("load", cg));

    let pins = pin_dir(cg);
    // bpffs always sets the sticky bit on its root.
    let origin_dir = format!("{BPFFS}/origin");
    for (dir, want) in [(BPFFS, "1700"), (&origin_dir, "700"), (&pins, "700")] {
        let mode = ns.ok(&["stat", "-c", "%a %U", dir]);
        assert_eq!(mode, format!("{want} root\n"), "mode and owner of {dir}");
        for make in [&["mkdir"][..], &["touch"], &["ln", "-s", "/"]] {
            let planted = format!("{dir}/planted");
            let out = ns.run_as_nobody(&[make, &[&planted]].concat());
            assert!(!out.status.success(), "nobody ran {make:?} {planted}");
        }
    }
    ns.ok(&origin("unload", cg));
    assert_eq!(cgroup_links(cg), 0, "still attached");
}

#[test]
fn pins_another_user_owns_or_can_write_are_refused_with_one_line() {
    if !toa_lab::require_privileges("pins_another_user_owns_or_can_write_are_refused_with_one_line")
    {
        return;
    }
    let mut lab = toa_lab::Lab::new("pin-owner").unwrap();
    let cg = lab.cgroup("origin").unwrap();
    let cg = cg.to_str().unwrap();
    let ns = PrivateMounts::new();
    // A bpffs as toa mounted it before: mode 1777, and nothing loaded yet.
    ns.ok(&["mount", "-t", "bpf", "bpf", BPFFS]);
    let planted = ns.run_as_nobody(&["mkdir", &format!("{BPFFS}/origin")]);
    assert!(planted.status.success(), "{planted:?}");
    assert_one_line_failure(
        &ns.run(&origin("load", cg)),
        "refusing /run/toa/bpffs/origin: it is owned by uid 65534, not root",
        "a load into nobody's origin/",
    );
    assert_eq!(cgroup_links(cg), 0, "attached anyway");
    ns.ok(&["rmdir", &format!("{BPFFS}/origin")]);

    // Writable by others without the sticky bit: they could rename origin/.
    ns.ok(&["chmod", "0777", BPFFS]);
    assert_one_line_failure(
        &ns.run(&origin("load", cg)),
        "refusing /run/toa/bpffs: others can write to it and it has no sticky bit (mode 0777)",
        "a load into a bpffs others can rename in",
    );
    ns.ok(&["chmod", "1777", BPFFS]);

    // Pins that another user owns, or can replace, are not unloaded blindly.
    ns.ok(&origin("load", cg));
    let pins = pin_dir(cg);
    let pin = format!("{pins}/link_{}", toa_common::origin::PROG_RECEIVER);
    ns.ok(&["test", "-e", &pin]);
    ns.ok(&["chown", "65534", &pin]);
    assert_one_line_failure(
        &ns.run(&origin("unload", cg)),
        &format!("refusing {pin}: it is owned by uid 65534, not root"),
        "an unload of a pin nobody owns",
    );
    ns.ok(&["chown", "0", &pin]);
    ns.ok(&["chmod", "0777", &pins]);
    assert_one_line_failure(
        &ns.run(&origin("stats", cg)),
        &format!("refusing {pins}: group or others can write to it (mode 0777)"),
        "stats from a pin directory others can write",
    );
    assert_eq!(cgroup_links(cg), 4, "the refusals detached something");
    ns.ok(&["chmod", "0700", &pins]);
    ns.ok(&origin("unload", cg));
    assert_eq!(cgroup_links(cg), 0, "still attached");
}
