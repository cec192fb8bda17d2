//! [`Session`]: the demo's topology plus the `toa origin` attachment, torn
//! down on every exit path: normal return, error, panic, Ctrl-C and SIGTERM.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use toa_lab::Topology;

/// Everything one demo run set up.
pub struct Session {
    pub topo: Topology,
    toa_bin: PathBuf,
    /// The cgroup `toa origin` is loaded on, until it is unloaded.
    loaded_on: Option<PathBuf>,
    kept: bool,
}

/// A session shared with the signal handler. The main thread locks it only
/// for short steps (spawning, loading), never while waiting on the network,
/// so the handler gets it promptly.
pub type Shared = Arc<Mutex<Session>>;

/// The session the signal handler tears down, if any.
static ACTIVE: Mutex<Option<Shared>> = Mutex::new(None);
/// A signal that arrived before any session existed.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: Once = Once::new();

impl Session {
    /// Wraps `topo` and registers it with the signal handler, so an
    /// interrupt from now on removes it. Fails if an interrupt already came.
    pub fn start(topo: Topology, toa_bin: &Path) -> anyhow::Result<Shared> {
        install_signal_handler()?;
        let shared = Arc::new(Mutex::new(Session {
            topo,
            toa_bin: toa_bin.to_owned(),
            loaded_on: None,
            kept: false,
        }));
        *lock(&ACTIVE) = Some(shared.clone());
        if INTERRUPTED.load(Ordering::SeqCst) {
            // The signal came before there was a session to hand over.
            finish(shared);
            unreachable!("finish exits after an interrupt");
        }
        Ok(shared)
    }

    /// `toa origin load --cgroup DIR ARGS...`; remembered so teardown unloads it.
    pub fn load_origin(&mut self, cgroup: &Path, args: &[String]) -> anyhow::Result<()> {
        let mut cmd = vec!["origin", "load", "--cgroup", path_str(cgroup)?];
        cmd.extend(args.iter().map(String::as_str));
        run_toa(&self.toa_bin, &cmd)?;
        self.loaded_on = Some(cgroup.to_owned());
        Ok(())
    }

    /// Leaves everything running when the session ends (`--keep`).
    pub fn keep(&mut self) {
        self.kept = true;
        self.topo.lab.keep();
    }

    /// Unloads `toa origin`, then stops processes and removes cgroups and
    /// namespaces. Idempotent.
    pub fn teardown(&mut self) {
        if let Some(cg) = self.loaded_on.take()
            && let Err(e) = path_str(&cg)
                .and_then(|cg| run_toa(&self.toa_bin, &["origin", "unload", "--cgroup", cg]))
        {
            eprintln!("toa demo: {e}");
        }
        self.topo.lab.cleanup();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.kept {
            self.teardown();
        }
    }
}

/// Ends a session: unregisters it from the signal handler, then drops it
/// (tearing it down unless kept). If the handler got it first, the handler
/// tears it down and exits the process, so this never returns.
pub fn finish(shared: Shared) {
    let mine = lock(&ACTIVE).take_if(|a| Arc::ptr_eq(a, &shared));
    if mine.is_none() {
        loop {
            std::thread::park();
        }
    }
    drop(mine);
    drop(shared);
    if INTERRUPTED.load(Ordering::SeqCst) {
        // Ctrl-C during the normal teardown: that teardown ran to the end.
        std::process::exit(130);
    }
}

/// Locks, ignoring poisoning: teardown must run even after a panic.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGINT, SIGTERM and SIGHUP tear down the active session and exit 130.
fn install_signal_handler() -> anyhow::Result<()> {
    let mut result = Ok(());
    HANDLER.call_once(|| {
        result = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            let active = lock(&ACTIVE).take();
            if let Some(session) = active {
                eprintln!("\ntoa demo: interrupted, cleaning up");
                let mut session = lock(&session);
                session.teardown();
                // Exit while holding the lock, so the main thread cannot
                // race on to a different exit status.
                std::process::exit(130);
            }
        })
        .context("installing the Ctrl-C handler");
    });
    result
}

/// Runs the `toa` binary to completion; Err carries its stderr.
pub fn run_toa(toa_bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(toa_bin)
        .args(args)
        .output()
        .with_context(|| format!("running {}", toa_bin.display()))?;
    if !out.status.success() {
        bail!(
            "`toa {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}
