//! Where `toa origin` is attached on this host, with its option kinds and
//! trust list. Every cgroup of the cgroup2 tree is asked through toa-loader's
//! public API; nothing is mounted or changed.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use toa_loader::{BPFFS_ROOT, CGROUP2_ROOT, LoaderError, Origin};

use crate::mounts::FsState;
use crate::report::Check;

const SUBJECT: &str = "toa origin";

/// One line per attachment, or one saying there is none.
pub fn check(cgroup2: &FsState, bpffs: &FsState) -> Vec<Check> {
    // toa pins only under BPFFS_ROOT: not mounted there, nothing can be attached
    // (and asking the loader would mount it).
    if !bpffs.mounted_at.iter().any(|m| m == BPFFS_ROOT) {
        return vec![not_attached()];
    }
    if let Err(err) = std::fs::read_dir(BPFFS_ROOT) {
        let fix = if err.kind() == ErrorKind::PermissionDenied {
            "run toa doctor as root"
        } else {
            "check the bpffs mount"
        };
        return vec![Check::problem(
            SUBJECT,
            format!("cannot read the pins in {BPFFS_ROOT}: {err}"),
            fix,
        )];
    }
    // Any one mount shows the whole (single) cgroup2 tree; prefer toa's own.
    let Some(root) = cgroup2
        .mounted_at
        .iter()
        .find(|m| *m == CGROUP2_ROOT)
        .or(cgroup2.mounted_at.first())
    else {
        return vec![not_attached()];
    };
    let mut checks = Vec::new();
    for cgroup in cgroups_under(Path::new(root)) {
        match Origin::open(&cgroup).and_then(|origin| origin.settings()) {
            Ok(settings) => checks.push(Check::ok(
                SUBJECT,
                format!("attached to {} ({settings})", cgroup.display()),
            )),
            Err(LoaderError::NotLoaded { .. }) => {}
            // Unloaded, or the cgroup removed, while we looked: not attached.
            Err(_) if vanished(&cgroup) => {}
            Err(err) => checks.push(Check::problem(
                SUBJECT,
                format!("{}: {err}", cgroup.display()),
                format!(
                    "inspect it with `toa origin status --cgroup {}`",
                    cgroup.display()
                ),
            )),
        }
    }
    if checks.is_empty() {
        checks.push(not_attached());
    }
    checks
}

fn vanished(cgroup: &Path) -> bool {
    !cgroup.exists() || matches!(Origin::open(cgroup), Err(LoaderError::NotLoaded { .. }))
}

fn not_attached() -> Check {
    Check::ok(
        SUBJECT,
        "not attached to any cgroup (`toa origin load` attaches it)",
    )
}

/// `root` and every cgroup below it, parents first. Unreadable parts are skipped.
fn cgroups_under(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    let mut next = 0;
    while next < found.len() {
        if let Ok(entries) = std::fs::read_dir(&found[next]) {
            let children = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path());
            found.extend(children);
        }
        next += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_toa_bpffs_nothing_is_attached() {
        let cgroup2 = FsState {
            mounted_at: vec!["/sys/fs/cgroup".into()],
            supported: true,
        };
        let bpffs = FsState {
            mounted_at: vec!["/sys/fs/bpf".into()],
            supported: true,
        };
        assert_eq!(check(&cgroup2, &bpffs), vec![not_attached()]);
    }

    #[test]
    fn cgroup_walk_lists_parents_before_children() {
        let dir = std::env::temp_dir().join(format!("toa-doctor-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/file"), "").unwrap();
        let found = cgroups_under(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(found, [dir.clone(), dir.join("a"), dir.join("a/b")]);
    }
}
