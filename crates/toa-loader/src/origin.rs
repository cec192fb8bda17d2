//! The origin receiver on one cgroup: load, attach and pin (so it outlives the
//! loading process, like `insmod`), update the config in place, report, and
//! unload (detach and unpin, nothing left).
//!
//! Pins live in `/run/toa/bpffs/origin/cgroup-<inode>/`: one directory per
//! cgroup, named by the cgroup's inode so every path to it finds the same pins.

use crate::counters::OriginCounters;
use crate::settings::{Settings, Widening};
use crate::sys::{self, AttachType, link_cgroup_id, link_create, obj_get, obj_pin};
use crate::system::{
    BPFFS_ROOT, bpffs_mounted, bpffs_root, inode, mounted_cgroup2, preflight, require_cgroup2,
};
use crate::trust::TrustedNet;
use crate::{LoaderError, Result};
use aya::maps::lpm_trie::Key;
use aya::maps::{Array, LpmTrie, Map, MapData};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupSockAddr, CgroupSockopt, SockOps};
use aya::{Ebpf, include_bytes_aligned};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use toa_common::origin::{self as shared, OriginConfig, TrustAddr};

/// The origin programs, built by build.rs.
static ORIGIN_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/toa-origin"));

/// The programs, in attach order (the receiver first, so no socket is
/// rewritten before its TOA can be recorded).
const PROGRAMS: [(&str, AttachType); 4] = [
    (shared::PROG_RECEIVER, AttachType::SockOps),
    (shared::PROG_GETPEERNAME4, AttachType::Inet4GetPeername),
    (shared::PROG_GETPEERNAME6, AttachType::Inet6GetPeername),
    (shared::PROG_LOOKUP, AttachType::GetSockopt),
];
const MAPS: [&str; 4] = [
    shared::MAP_CONFIG,
    shared::MAP_TRUST,
    shared::MAP_SOCKETS,
    shared::MAP_COUNTERS,
];

/// What [`Origin::load`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadOutcome {
    /// Programs were loaded, attached and pinned.
    Attached,
    /// Already attached: kinds and trust list were updated in place; these
    /// were the settings before.
    Updated { before: Settings },
}

/// One attached program, as seen through its pinned link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    pub name: &'static str,
    pub program_id: u32,
    pub link_id: u32,
}

/// The origin receiver attached to one cgroup (a handle to its pins).
#[derive(Debug)]
pub struct Origin {
    cgroup: PathBuf,
    pins: PathBuf,
}

impl Origin {
    /// Loads, attaches and pins the receiver on `cgroup`; if it is already
    /// attached there, updates kinds and trust list in place instead. Bad
    /// settings, and a reload that would drop the trust list without
    /// [`Widening::Allow`], are rejected before anything changes; a failed
    /// first load leaves nothing behind.
    pub fn load(
        cgroup: &Path,
        settings: &Settings,
        widening: Widening,
    ) -> Result<(Origin, LoadOutcome)> {
        let mut config = settings.to_config()?;
        preflight()?;
        config.lookup_errno = u8::from(crate::system::lookup_errno_supported());
        require_cgroup2(cgroup)?;
        remove_defunct_pins(&bpffs_root()?);
        let origin = Origin {
            cgroup: cgroup.to_path_buf(),
            pins: pin_dir(cgroup)?,
        };
        if origin.is_attached() {
            let before = origin.settings()?;
            settings.check_widening(&before, widening, cgroup)?;
            origin.apply(config, &settings.trust)?;
            return Ok((origin, LoadOutcome::Updated { before }));
        }
        // Leftovers of a cgroup that was removed, or of a crash mid-load.
        remove_pins(&origin.pins)?;
        std::fs::create_dir_all(&origin.pins).map_err(LoaderError::io("creating", &origin.pins))?;
        if let Err(err) = origin.attach(config, &settings.trust) {
            let _ = remove_pins(&origin.pins);
            return Err(err);
        }
        Ok((origin, LoadOutcome::Attached))
    }

    /// The receiver attached to `cgroup`, or [`LoaderError::NotLoaded`].
    pub fn open(cgroup: &Path) -> Result<Origin> {
        let origin = Origin {
            cgroup: cgroup.to_path_buf(),
            pins: pin_dir(cgroup)?,
        };
        if origin.is_attached() {
            Ok(origin)
        } else {
            Err(LoaderError::NotLoaded {
                cgroup: cgroup.to_path_buf(),
            })
        }
    }

    /// Every cgroup the receiver is attached to on this host, parents first,
    /// found from the pin directories under `/run/toa/bpffs/origin`. Mounts
    /// nothing: without toa's bpffs mount nothing can be attached. Pins whose
    /// cgroup is gone (or outside the visible cgroup2 tree) are left out.
    pub fn attached() -> Result<Vec<Origin>> {
        if !bpffs_mounted() {
            return Ok(Vec::new());
        }
        let dir = Path::new(BPFFS_ROOT).join("origin");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LoaderError::io("reading", &dir)(e)),
        };
        let mut pinned: Vec<(u64, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let ino = name.to_str()?.strip_prefix("cgroup-")?.parse().ok()?;
                Some((ino, e.path()))
            })
            .filter(|(_, pins)| has_all_links(pins))
            .collect();
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

    /// Detaches and unpins everything on `cgroup`. Returns false if nothing
    /// was loaded there.
    pub fn unload(cgroup: &Path) -> Result<bool> {
        preflight()?;
        let pins = pin_dir(cgroup)?;
        if !pins.exists() {
            return Ok(false);
        }
        let programs = Origin::open(cgroup)
            .and_then(|o| o.programs())
            .unwrap_or_default();
        // Unpinning alone detaches only after an RCU grace period and a
        // workqueue run (bpffs frees inodes asynchronously), so a `bpftool`
        // right after `unload` could still see the hooks. Detach explicitly,
        // then wait (bounded) until the kernel has freed the programs, so that
        // "unloaded" means nothing is left.
        for &(name, _) in PROGRAMS.iter() {
            if let Ok(link) = obj_get(&pins.join(link_pin(name))) {
                let _ = sys::link_detach(link.as_fd());
            }
        }
        remove_pins(&pins)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while programs.iter().any(|p| sys::prog_exists(p.program_id))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(true)
    }

    /// The cgroup this receiver is attached to (as given).
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// The bpffs directory holding the pins.
    pub fn pin_dir(&self) -> &Path {
        &self.pins
    }

    /// The attached programs, read from their pinned links.
    pub fn programs(&self) -> Result<Vec<AttachedProgram>> {
        PROGRAMS
            .iter()
            .map(|&(name, _)| {
                let path = self.pins.join(link_pin(name));
                let link = PinnedLink::from_pin(&path)
                    .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
                let info = FdLink::from(link)
                    .info()
                    .map_err(LoaderError::ebpf("reading link info"))?;
                Ok(AttachedProgram {
                    name,
                    program_id: info.program_id(),
                    link_id: info.id(),
                })
            })
            .collect()
    }

    /// The settings in force, read back from the kernel.
    pub fn settings(&self) -> Result<Settings> {
        let config: OriginConfig = config_map(&self.pins)?
            .get(&0, 0)
            .map_err(LoaderError::ebpf("reading config"))?;
        let kinds = config.kinds.iter().copied().filter(|&k| k != 0).collect();
        let trie = trust_map(&self.pins)?;
        let mut trust = Vec::new();
        for key in trie.keys() {
            let key = key.map_err(LoaderError::ebpf("reading trust list"))?;
            trust.push(TrustedNet::from_key(key.prefix_len(), key.data()));
        }
        trust.sort_by_key(|n| (n.addr.is_ipv6(), n.addr, n.prefix_len));
        Ok(Settings { kinds, trust })
    }

    /// The per-CPU counters.
    pub fn counters(&self) -> Result<OriginCounters> {
        OriginCounters::read_pinned(&self.pins.join(shared::MAP_COUNTERS))
    }

    fn is_attached(&self) -> bool {
        has_all_links(&self.pins)
    }

    fn attach(&self, config: OriginConfig, trust: &[TrustedNet]) -> Result<()> {
        let mut ebpf =
            Ebpf::load(ORIGIN_OBJECT).map_err(LoaderError::ebpf("loading the origin programs"))?;
        {
            let map = ebpf
                .map_mut(shared::MAP_CONFIG)
                .expect("config map in object");
            let mut config_map: Array<&mut MapData, OriginConfig> =
                Array::try_from(map).map_err(LoaderError::ebpf("opening the config map"))?;
            config_map
                .set(0, config, 0)
                .map_err(LoaderError::ebpf("writing the config"))?;
        }
        {
            let map = ebpf
                .map_mut(shared::MAP_TRUST)
                .expect("trust map in object");
            let mut trie: LpmTrie<&mut MapData, TrustAddr, u32> =
                LpmTrie::try_from(map).map_err(LoaderError::ebpf("opening the trust map"))?;
            for net in trust {
                let (prefix, addr) = net.key();
                trie.insert(&Key::new(prefix, addr), 1, 0)
                    .map_err(LoaderError::ebpf("writing the trust list"))?;
            }
        }
        for name in MAPS {
            let map = ebpf.map(name).expect("map in object");
            map.pin(self.pins.join(name))
                .map_err(LoaderError::ebpf(format!("pinning map {name}")))?;
        }
        let cgroup_fd =
            File::open(&self.cgroup).map_err(LoaderError::io("opening", &self.cgroup))?;
        for (name, attach) in PROGRAMS {
            let program = ebpf.program_mut(name).expect("program in object");
            let action = |what: &str| format!("{what} {name}");
            let prog_path = self.pins.join(prog_pin(name));
            // Only loading needs the concrete program type.
            match attach {
                AttachType::SockOps => <&mut SockOps>::try_from(&mut *program).map(|p| p.load()),
                AttachType::GetSockopt => {
                    <&mut CgroupSockopt>::try_from(&mut *program).map(|p| p.load())
                }
                AttachType::Inet4GetPeername | AttachType::Inet6GetPeername => {
                    <&mut CgroupSockAddr>::try_from(&mut *program).map(|p| p.load())
                }
            }
            .map_err(LoaderError::ebpf(action("typing")))?
            .map_err(LoaderError::ebpf(action("loading (verifier)")))?;
            program
                .pin(&prog_path)
                .map_err(LoaderError::ebpf(action("pinning")))?;
            let prog_fd = program
                .fd()
                .map_err(LoaderError::ebpf(action("opening")))?
                .as_fd()
                .try_clone_to_owned()
                .map_err(LoaderError::io("duplicating the fd of", &prog_path))?;
            let link = link_create(prog_fd.as_fd(), cgroup_fd.as_fd(), attach)
                .map_err(LoaderError::ebpf(action("attaching")))?;
            let link_path = self.pins.join(link_pin(name));
            obj_pin(link.as_fd(), &link_path)
                .map_err(LoaderError::ebpf(action("pinning the link of")))?;
        }
        Ok(())
    }

    /// Updates config and trust list of an attached receiver. New trusted
    /// networks go in before the config can switch trust on, stale ones go
    /// after, so no moment trusts less than both old and new lists agree on.
    fn apply(&self, config: OriginConfig, trust: &[TrustedNet]) -> Result<()> {
        let mut trie = trust_map(&self.pins)?;
        let wanted: Vec<(u32, TrustAddr)> = trust.iter().map(TrustedNet::key).collect();
        for &(prefix, addr) in &wanted {
            trie.insert(&Key::new(prefix, addr), 1, 0)
                .map_err(LoaderError::ebpf("writing the trust list"))?;
        }
        config_map(&self.pins)?
            .set(0, config, 0)
            .map_err(LoaderError::ebpf("writing the config"))?;
        let stale: Vec<Key<TrustAddr>> = trie
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| !wanted.contains(&(k.prefix_len(), k.data())))
            .collect();
        for key in stale {
            trie.remove(&key)
                .map_err(LoaderError::ebpf("pruning the trust list"))?;
        }
        Ok(())
    }
}

/// Removes the pins of receivers whose cgroup no longer exists: their links
/// are defunct and would otherwise hold programs and maps forever. Run on
/// every load, so a cgroup removed without `unload` leaks only until then.
fn remove_defunct_pins(bpffs: &Path) {
    let Ok(entries) = std::fs::read_dir(bpffs.join("origin")) else {
        return;
    };
    for entry in entries.flatten() {
        let receiver = entry.path().join(link_pin(shared::PROG_RECEIVER));
        let defunct = match obj_get(&receiver) {
            Ok(link) => link_cgroup_id(link.as_fd()).is_ok_and(|id| id == 0),
            // No receiver link yet: possibly a load in progress; leave it.
            Err(_) => false,
        };
        if defunct {
            // Best effort: a concurrent unload may be removing it too.
            let _ = remove_pins(&entry.path());
        }
    }
}

/// Every program's link is pinned in `pins`.
fn has_all_links(pins: &Path) -> bool {
    PROGRAMS
        .iter()
        .all(|(name, _)| pins.join(link_pin(name)).exists())
}

fn pin_dir(cgroup: &Path) -> Result<PathBuf> {
    let ino = inode(cgroup)?;
    Ok(bpffs_root()?.join("origin").join(format!("cgroup-{ino}")))
}

fn prog_pin(name: &str) -> String {
    format!("prog_{name}")
}

fn link_pin(name: &str) -> String {
    format!("link_{name}")
}

/// Removes a pin directory; unpinned links detach, unpinned programs and maps
/// are freed once nothing else holds them.
fn remove_pins(pins: &Path) -> Result<()> {
    match std::fs::remove_dir_all(pins) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LoaderError::Io {
            action: "removing",
            path: pins.to_path_buf(),
            source: e,
        }),
    }
}

fn pinned_map(pins: &Path, name: &str) -> Result<Map> {
    let path = pins.join(name);
    let data = MapData::from_pin(&path)
        .map_err(LoaderError::ebpf(format!("opening {}", path.display())))?;
    Map::from_map_data(data).map_err(LoaderError::ebpf(format!("opening {}", path.display())))
}

fn config_map(pins: &Path) -> Result<Array<MapData, OriginConfig>> {
    Array::try_from(pinned_map(pins, shared::MAP_CONFIG)?)
        .map_err(LoaderError::ebpf("opening the config map"))
}

fn trust_map(pins: &Path) -> Result<LpmTrie<MapData, TrustAddr, u32>> {
    LpmTrie::try_from(pinned_map(pins, shared::MAP_TRUST)?)
        .map_err(LoaderError::ebpf("opening the trust map"))
}
