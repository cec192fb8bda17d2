//! Where `toa origin` is attached on this host, with its option kinds and
//! trust list, as toa-loader finds it from its pins; nothing is mounted or
//! changed.

use std::io::ErrorKind;
use std::path::Path;

use toa_loader::{LoaderError, Origin};

use crate::report::Check;

const SUBJECT: &str = "toa origin";

/// One line per attachment, or one saying there is none.
pub fn check() -> Vec<Check> {
    let origins = match Origin::attached() {
        Ok(origins) => origins,
        Err(err) => {
            let fix = match &err {
                LoaderError::Io { source, .. } if source.kind() == ErrorKind::PermissionDenied => {
                    "run toa doctor as root"
                }
                _ => "check the bpffs mount",
            };
            return vec![Check::problem(
                SUBJECT,
                format!("cannot read toa's pins: {err}"),
                fix,
            )];
        }
    };
    let mut checks = Vec::new();
    for origin in origins {
        let cgroup = origin.cgroup();
        match origin.settings() {
            Ok(settings) => checks.push(Check::ok(
                SUBJECT,
                format!("attached to {} ({settings})", cgroup.display()),
            )),
            // Unloaded, or the cgroup removed, while we looked: not attached.
            Err(_) if vanished(cgroup) => {}
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
