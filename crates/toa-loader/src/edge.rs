//! The edge writer for the proxy: attach the option writer to a cgroup2 child
//! holding just this process, then register each upstream socket's client
//! before connect(). Nothing is pinned: the writer goes away with the process.

use crate::counters::EdgeStats;
use crate::sys::{AttachType, link_create};
use crate::system::{cgroup2_root, preflight};
use crate::{LoaderError, Result};
use aya::maps::{Map, MapData, PerCpuArray};
use aya::programs::SockOps;
use aya::{Ebpf, include_bytes_aligned};
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use toa_common::edge::{self as shared, EdgeClient, EdgeConfig};
use toa_common::{FAMILY_V4, FAMILY_V6};

/// The edge program, built by build.rs.
static EDGE_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/toa-edge"));

/// The TOA option writer, attached to this process's own cgroup2 child
/// (`/run/toa/cgroup2/toa-proxy-<pid>`). Dropping it detaches the program,
/// moves the process back to the cgroup it came from and removes the child.
///
/// It is `Send + Sync`: share one writer (e.g. in an `Arc`) across tasks.
pub struct EdgeWriter {
    /// The bpf_link attaching the writer; closing it detaches.
    link: Option<OwnedFd>,
    clients: MapData,
    counters: PerCpuArray<MapData, u64>,
    cgroup: PathBuf,
    home: PathBuf,
}

impl EdgeWriter {
    /// Moves the current process (all its threads) into a new cgroup2 child
    /// and attaches the writer there, writing option `kind`. Sockets created
    /// from now on are covered; only registered ones get the option.
    pub fn attach_to_self(kind: u8) -> Result<EdgeWriter> {
        toa_wire::toa::check_kind(kind)?;
        preflight()?;
        let root = cgroup2_root()?;
        remove_stale_children(&root);
        let home = current_cgroup(&root);
        let cgroup = root.join(format!("toa-proxy-{}", std::process::id()));
        match std::fs::create_dir(&cgroup) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(LoaderError::Io {
                    action: "creating cgroup",
                    path: cgroup,
                    source: e,
                });
            }
        }
        let attached = join_cgroup(&cgroup).and_then(|()| Self::attach(&cgroup, kind));
        match attached {
            Ok((link, clients, counters)) => Ok(EdgeWriter {
                link: Some(link),
                clients,
                counters,
                cgroup,
                home,
            }),
            Err(err) => {
                let _ = join_cgroup(&home);
                let _ = std::fs::remove_dir(&cgroup);
                Err(err)
            }
        }
    }

    fn attach(cgroup: &Path, kind: u8) -> Result<(OwnedFd, MapData, PerCpuArray<MapData, u64>)> {
        let mut ebpf =
            Ebpf::load(EDGE_OBJECT).map_err(LoaderError::ebpf("loading the edge writer"))?;
        {
            let map = ebpf
                .map_mut(shared::MAP_CONFIG)
                .expect("config map in object");
            let mut config: aya::maps::Array<&mut MapData, EdgeConfig> = map
                .try_into()
                .map_err(LoaderError::ebpf("opening the edge config"))?;
            config
                .set(0, EdgeConfig { kind, _pad: [0; 3] }, 0)
                .map_err(LoaderError::ebpf("writing the edge config"))?;
        }
        let program: &mut SockOps = ebpf
            .program_mut(shared::PROG_WRITER)
            .expect("writer in object")
            .try_into()
            .map_err(LoaderError::ebpf("typing the edge writer"))?;
        program
            .load()
            .map_err(LoaderError::ebpf("loading the edge writer (verifier)"))?;
        let cgroup_fd = File::open(cgroup).map_err(LoaderError::io("opening", cgroup))?;
        let prog_fd = program
            .fd()
            .map_err(LoaderError::ebpf("opening the edge writer"))?;
        let link = link_create(prog_fd.as_fd(), cgroup_fd.as_fd(), AttachType::SockOps)
            .map_err(LoaderError::ebpf("attaching the edge writer"))?;
        let Some(Map::SkStorage(clients)) = ebpf.take_map(shared::MAP_CLIENTS) else {
            unreachable!("{} is an sk_storage map in the object", shared::MAP_CLIENTS);
        };
        let counters = ebpf
            .take_map(shared::MAP_COUNTERS)
            .expect("counters in object");
        let counters = PerCpuArray::try_from(counters)
            .map_err(LoaderError::ebpf("opening the edge counters"))?;
        // The link keeps the program (and the program its maps) alive after
        // `ebpf` drops.
        Ok((link, clients, counters))
    }

    /// Registers the client of an upstream socket. Call it after socket() and
    /// before connect(); the SYN, the handshake ACK and early data then carry
    /// the client as a TOA (IPv4 form for IPv4 clients, v4-mapped included;
    /// IPv6 form otherwise). One map update, no lock.
    pub fn register(&self, socket: BorrowedFd<'_>, client: SocketAddr) -> Result<()> {
        let value = client_entry(client);
        let key: i32 = socket.as_raw_fd();
        crate::sys::map_update(self.clients.fd().as_fd(), &key, &value)
            .map_err(LoaderError::ebpf("registering an upstream socket"))
    }

    /// The writer's counters, summed over CPUs.
    pub fn stats(&self) -> EdgeStats {
        // Reading an array map through a held fd fails only if the kernel is
        // out of memory; zero counts are the honest answer then.
        EdgeStats::read(&self.counters).unwrap_or_default()
    }

    /// The cgroup2 child this process runs in while the writer is attached.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }
}

impl std::fmt::Debug for EdgeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeWriter")
            .field("cgroup", &self.cgroup)
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl Drop for EdgeWriter {
    fn drop(&mut self) {
        drop(self.link.take()); // detaches
        let _ = join_cgroup(&self.home);
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

/// The map value for `client`: v4-mapped IPv6 clients are IPv4 clients.
fn client_entry(client: SocketAddr) -> EdgeClient {
    let ip = client.ip().to_canonical();
    let family = if matches!(ip, IpAddr::V4(_)) {
        FAMILY_V4
    } else {
        FAMILY_V6
    };
    let addr = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    EdgeClient {
        addr,
        port_be: client.port().to_be(),
        family,
        _pad: 0,
    }
}

/// Removes the empty `toa-proxy-*` children left by proxies that were killed
/// (SIGKILL skips Drop). A child with live processes refuses rmdir and stays.
fn remove_stale_children(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("toa-proxy-")
        {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Moves the whole process (every thread) into `cgroup`.
fn join_cgroup(cgroup: &Path) -> Result<()> {
    let procs = cgroup.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(LoaderError::io("joining", procs))
}

/// The process's current cgroup2 directory under `root` (the root if unknown).
fn current_cgroup(root: &Path) -> PathBuf {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    own.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|rel| root.join(rel.trim().trim_start_matches('/')))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| root.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_writer_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EdgeWriter>();
    }

    #[test]
    fn v4_mapped_clients_are_registered_as_ipv4() {
        let entry = client_entry("[::ffff:198.18.1.2]:40000".parse().unwrap());
        assert_eq!(entry.family, FAMILY_V4);
        assert_eq!(entry.ipv4(), Some([198, 18, 1, 2]));
        assert_eq!(entry.port_be.to_ne_bytes(), 40000u16.to_be_bytes());
        let entry = client_entry("[fd00:1::2]:1".parse().unwrap());
        assert_eq!(entry.family, FAMILY_V6);
        assert_eq!(entry.addr[..2], [0xfd, 0x00]);
    }
}
