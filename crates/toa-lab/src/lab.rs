//! [`Lab`]: the owner of every namespace, cgroup and process a test makes.

use crate::{Netns, ensure_cgroup2, run_host};
use anyhow::{Context, bail};
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Makes names unique across the labs of one process (tests run in threads).
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A background process started by [`Lab::spawn`]; its output goes to `log`.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub pid: u32,
    pub log: PathBuf,
}

/// Everything one test (or one `toa demo`) created. Dropping it removes all of
/// it: processes first (they pin namespaces and cgroups), then cgroups, then
/// namespaces, then the scratch directory.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    cgroups: Vec<PathBuf>,
    children: Vec<Child>,
    keep: bool,
}

impl Lab {
    /// A new, empty lab. `tag` names it in namespaces and paths (keep it short).
    pub fn new(tag: &str) -> anyhow::Result<Lab> {
        let prefix = format!("toa-{tag}-{}-{}", std::process::id(), next_id());
        // Made fresh, mode 0700, under a random name: `toa demo` runs as root
        // and starts nginx and the proxy with configs from here, so a
        // directory someone else made (a guessable name in /tmp) must never
        // be taken for ours.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .context("creating the lab's private directory")?
            .keep();
        Ok(Lab {
            prefix,
            dir,
            namespaces: Vec::new(),
            cgroups: Vec::new(),
            children: Vec::new(),
            keep: false,
        })
    }

    /// Scratch directory for configs and logs, root's alone (mode 0700),
    /// removed on drop (kept if the test panicked, so its logs can be read).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new network namespace named `<lab prefix>-<name>`, with lo up.
    pub fn netns(&mut self, name: &str) -> anyhow::Result<Netns> {
        let ns = Netns {
            name: format!("{}-{name}", self.prefix),
        };
        run_host(&["ip", "netns", "add", &ns.name])?;
        self.namespaces.push(ns.name.clone());
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Joins `a` and `b` with a veth pair and gives each end its addresses
    /// (CIDR notation; IPv6 without duplicate address detection, so they are
    /// usable at once).
    pub fn link(
        &mut self,
        a: &Netns,
        a_addrs: &[&str],
        b: &Netns,
        b_addrs: &[&str],
    ) -> anyhow::Result<()> {
        // Interface names are limited to 15 bytes; pid + counter keep them unique.
        let base = format!("tl{:x}x{:x}", std::process::id(), next_id());
        let (a_if, b_if) = (format!("{base}a"), format!("{base}b"));
        run_host(&[
            "ip", "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if,
            "netns", &b.name,
        ])?;
        for (ns, ifname, addrs) in [(a, &a_if, a_addrs), (b, &b_if, b_addrs)] {
            for addr in addrs {
                let mut cmd = vec!["ip", "addr", "add", addr, "dev", ifname];
                if addr.contains(':') {
                    cmd.push("nodad");
                }
                ns.run(&cmd)?;
            }
            ns.run(&["ip", "link", "set", ifname, "up"])?;
        }
        Ok(())
    }

    /// A new cgroup2 child of [`crate::CGROUP2_ROOT`], removed on drop.
    pub fn cgroup(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        let path = ensure_cgroup2()?.join(format!("{}-{name}", self.prefix));
        fs::create_dir(&path).with_context(|| format!("creating cgroup {}", path.display()))?;
        self.cgroups.push(path.clone());
        Ok(path)
    }

    /// Starts `cmd` in the background inside `ns`, optionally inside `cgroup`
    /// (joined before exec, so every socket it creates belongs to the cgroup).
    pub fn spawn(
        &mut self,
        ns: &Netns,
        cgroup: Option<&Path>,
        cmd: &[&str],
    ) -> anyhow::Result<Spawned> {
        let program = Path::new(cmd[0])
            .file_name()
            .map_or("proc".into(), |n| n.to_string_lossy());
        let log = self.dir.join(format!("{program}-{}.log", next_id()));
        let out = create_new(&log)?;
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &ns.name]);
        if let Some(cg) = cgroup {
            command.args(["sh", "-c", r#"echo $$ > "$0" && exec "$@""#]);
            command.arg(cg.join("cgroup.procs"));
        }
        command
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            // Own process group, so drop can also reach grandchildren.
            .process_group(0);
        let child = command
            .spawn()
            .with_context(|| format!("spawning {}", cmd.join(" ")))?;
        let spawned = Spawned {
            pid: child.id(),
            log,
        };
        self.children.push(child);
        Ok(spawned)
    }

    /// Stops one spawned process (and its process group) now.
    pub fn kill(&mut self, s: &Spawned) {
        if let Some(i) = self.children.iter().position(|c| c.id() == s.pid) {
            let child = self.children.swap_remove(i);
            stop(child);
        }
    }

    /// Leaves everything in place when the lab drops (`toa demo --keep`).
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// The namespaces this lab made, for printing `ip netns exec` hints.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// Removes everything now. Drop calls it; a signal handler may too.
    pub fn cleanup(&mut self) {
        for child in self.children.drain(..) {
            stop(child);
        }
        for cg in self.cgroups.drain(..).rev() {
            remove_cgroup(&cg);
        }
        for ns in self.namespaces.drain(..).rev() {
            let _ = run_host(&["ip", "netns", "del", &ns]);
        }
        if std::thread::panicking() {
            eprintln!("lab logs kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            self.cleanup();
        }
    }
}

/// Creates the file `path` for writing; fails if anything is there already,
/// a symlink included (O_CREAT|O_EXCL never follows one).
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Writes `contents` to the new file `path` (see [`create_new`]).
pub fn write_new(path: &Path, contents: impl AsRef<[u8]>) -> anyhow::Result<()> {
    use std::io::Write;
    create_new(path)?
        .write_all(contents.as_ref())
        .with_context(|| format!("writing {}", path.display()))
}

/// SIGTERM the process group, then SIGKILL whatever is left after a grace period.
fn stop(mut child: Child) {
    let pgid = child.id() as i32;
    // SAFETY: signalling a process group we created; errors (already gone) are fine.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            // The leader is gone; make sure no member of its group lingers.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Kills anything still in the cgroup (cgroup.kill, Linux ≥ 5.14), then removes it.
fn remove_cgroup(cg: &Path) {
    let _ = fs::write(cg.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::remove_dir(cg) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                eprintln!("lab: could not remove cgroup {}: {e}", cg.display());
                return;
            }
        }
    }
}

/// Polls `check` until it returns true or `timeout`, [`crate::scaled`], passes.
pub(crate) fn wait_until(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let timeout = crate::scaled(timeout);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}
