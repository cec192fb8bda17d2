//! Finding every cgroup the receiver is attached to, from the pin directories.

use super::Origin;
use super::pins::{CGROUP_PREFIX, check_pin_dir, has_all_links};
use crate::{LoaderError, Result};
use std::path::PathBuf;
use toa_host::{check_private, inode, mounted_bpffs, mounted_cgroup2};

impl Origin {
    /// Every cgroup the receiver is attached to on this host, parents first,
    /// found from the pin directories under `/run/toa/bpffs/origin` (refused
    /// unless root alone can change them). Mounts nothing: without toa's
    /// bpffs mount nothing can be attached. Pins whose cgroup is gone (or
    /// outside the visible cgroup2 tree) are left out.
    pub fn attached() -> Result<Vec<Origin>> {
        let Some(bpffs) = mounted_bpffs()? else {
            return Ok(Vec::new());
        };
        let dir = bpffs.join("origin");
        check_private(&dir)?;
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LoaderError::io("reading", &dir)(e)),
        };
        let mut pinned: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let ino = name.to_str()?.strip_prefix(CGROUP_PREFIX)?.parse().ok()?;
                Some((ino, e.path()))
            })
            .filter(|(_, pins)| has_all_links(pins))
            .collect();
        for (_, pins) in &pinned {
            check_pin_dir(pins)?;
        }
        let Some(root) = mounted_cgroup2() else {
            return Ok(Vec::new());
        };
        // Breadth-first over the cgroup tree until every pinned inode is placed.
        let mut found = Vec::new();
        let mut queue = std::collections::VecDeque::from([root]);
        while !pinned.is_empty() {
            let Some(cgroup) = queue.pop_front() else {
                break;
            };
            if let Ok(ino) = inode(&cgroup)
                && let Some(i) = pinned.iter().position(|&(p, _)| p == ino)
            {
                let (_, pins) = pinned.swap_remove(i);
                found.push(Origin {
                    cgroup: cgroup.clone(),
                    pins,
                });
            }
            if let Ok(children) = std::fs::read_dir(&cgroup) {
                queue.extend(
                    children
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        Ok(found)
    }
}
