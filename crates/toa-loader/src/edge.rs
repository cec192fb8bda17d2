//! The edge writer for the proxy: attach the option writer to the cgroup the
//! process already runs in, then register each upstream socket's client before
//! connect(). Nothing is pinned: the writer goes away with the process.

use crate::counters::EdgeCounters;
use crate::sys::{AttachType, link_create};
use crate::{LoaderError, Result};
use aya::maps::{MapData, PerCpuArray};
use aya::programs::{CgroupSockopt, SockOps};
use aya::{Ebpf, include_bytes_aligned};
use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use toa_common::edge::EdgeCounter;
use toa_common::edge::{self as shared, EdgeClient, EdgeConfig, EdgeRegistration};
use toa_host::{cgroup2_root, mounted_cgroup2, preflight};

/// The edge program, built by build.rs.
static EDGE_OBJECT: &[u8] = include_bytes_aligned!(concat!(env!("OUT_DIR"), "/toa-edge"));

/// The TOA option writer, attached to the cgroup2 cgroup this process runs in, so a
/// supervisor (systemd's MemoryMax, TasksMax, KillMode, `systemctl status`; a
/// container runtime) keeps covering it. Only a process in the cgroup2 *root* moves:
/// the writer is never attached to the root (it would see every socket on the host),
/// so such a process gets a child `toa-proxy/<pid>` of the root and moves into it.
/// Dropping the writer detaches the program (and undoes that move).
///
/// It is `Send + Sync`: share one writer (e.g. in an `Arc`) across tasks.
pub struct EdgeWriter {
    /// The programs' attachments; dropping them detaches. Held by this process
    /// only, so a killed process takes the attachment with it.
    links: Option<Links>,
    /// The attachment's [`EdgeConfig::token`], which every registration carries.
    token: u64,
    counters: PerCpuArray<MapData, u64>,
    cgroup: PathBuf,
    placement: Placement,
}

/// The bpf_links of the writer (sock_ops) and of its registration hook
/// (cgroup/setsockopt); closing them detaches.
struct Links {
    _writer: OwnedFd,
    _register: OwnedFd,
}

/// Where the writer went, and what to undo on drop.
#[derive(Debug)]
enum Placement {
    /// The process's own cgroup: nothing was moved or created.
    Own,
    /// The process was in the cgroup2 root and moved into a child made for it.
    RootChild { root: PathBuf },
}

impl EdgeWriter {
    /// Attaches the writer to this process's cgroup (a new child of it only if it
    /// is the cgroup2 root), writing option `kind`. Sockets in that cgroup get
    /// the option only once registered.
    pub fn attach_to_self(kind: u8) -> Result<EdgeWriter> {
        toa_wire::toa::check_kind(kind)?;
        preflight()?;
        let own = own_cgroup()?;
        if !is_cgroup2_root(&own) {
            let (links, token, counters) = Self::attach(&own, kind)?;
            return Ok(EdgeWriter {
                links: Some(links),
                token,
                counters,
                cgroup: own,
                placement: Placement::Own,
            });
        }
        let root = own;
        // The children live in a directory of toa's own, not in the root itself: the
        // root is mode 555, and a proxy that dropped CAP_DAC_OVERRIDE after attaching
        // could not remove its child from there when it stops.
        let proxies = root.join(PROXIES_CGROUP);
        create_cgroup(&proxies)?;
        remove_stale_children(&proxies);
        let cgroup = proxies.join(std::process::id().to_string());
        create_cgroup(&cgroup)?;
        let attached = join_cgroup(&cgroup).and_then(|()| Self::attach(&cgroup, kind));
        match attached {
            Ok((links, token, counters)) => Ok(EdgeWriter {
                links: Some(links),
                token,
                counters,
                cgroup,
                placement: Placement::RootChild { root },
            }),
            Err(err) => {
                let _ = join_cgroup(&root);
                let _ = std::fs::remove_dir(&cgroup);
                Err(err)
            }
        }
    }

    fn attach(cgroup: &Path, kind: u8) -> Result<(Links, u64, PerCpuArray<MapData, u64>)> {
        let token = random_token().map_err(LoaderError::io("reading", "getrandom(2)"))?;
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
                .set(
                    0,
                    EdgeConfig {
                        kind,
                        _pad: [0; 7],
                        token,
                    },
                    0,
                )
                .map_err(LoaderError::ebpf("writing the edge config"))?;
        }
        let cgroup_fd = File::open(cgroup).map_err(LoaderError::io("opening", cgroup))?;
        let writer: &mut SockOps = ebpf
            .program_mut(shared::PROG_WRITER)
            .expect("writer in object")
            .try_into()
            .map_err(LoaderError::ebpf("typing the edge writer"))?;
        writer
            .load()
            .map_err(LoaderError::ebpf("loading the edge writer (verifier)"))?;
        let writer_fd = writer
            .fd()
            .map_err(LoaderError::ebpf("opening the edge writer"))?;
        let writer_link = link_create(writer_fd.as_fd(), cgroup_fd.as_fd(), AttachType::SockOps)
            .map_err(LoaderError::ebpf("attaching the edge writer"))?;
        let register: &mut CgroupSockopt = ebpf
            .program_mut(shared::PROG_REGISTER)
            .expect("registration hook in object")
            .try_into()
            .map_err(LoaderError::ebpf("typing the registration hook"))?;
        register.load().map_err(LoaderError::ebpf(
            "loading the registration hook (verifier)",
        ))?;
        let register_fd = register
            .fd()
            .map_err(LoaderError::ebpf("opening the registration hook"))?;
        let register_link = link_create(
            register_fd.as_fd(),
            cgroup_fd.as_fd(),
            AttachType::SetSockopt,
        )
        .map_err(LoaderError::ebpf("attaching the registration hook"))?;
        let counters = ebpf
            .take_map(shared::MAP_COUNTERS)
            .expect("counters in object");
        let counters = PerCpuArray::try_from(counters)
            .map_err(LoaderError::ebpf("opening the edge counters"))?;
        // The links keep the programs (and the programs their maps, the
        // clients' sk_storage included) alive after `ebpf` drops.
        Ok((
            Links {
                _register: register_link,
                _writer: writer_link,
            },
            token,
            counters,
        ))
    }

    /// Registers the client of an upstream socket and sets TCP_NODELAY on it.
    /// Call it after socket() and before connect(); the SYN, the handshake ACK
    /// and early data then carry the client as a TOA (IPv4 form for IPv4
    /// clients, v4-mapped included; IPv6 form otherwise).
    ///
    /// It is one setsockopt, which the writer's registration hook turns into
    /// an sk_storage entry (freed with the socket) plus TCP_NODELAY: the proxy
    /// sets TCP_NODELAY on every upstream socket anyway, so TOA adds no system
    /// call. The value carries this attachment's token, so only this process
    /// can register.
    pub fn register(&self, socket: BorrowedFd<'_>, client: SocketAddr) -> Result<()> {
        let value = EdgeRegistration {
            client: EdgeClient::from_socket_addr(client),
            _pad: [0; 4],
            token: self.token,
        };
        // SAFETY: a valid descriptor, and a value of exactly the size passed.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_TCP,
                shared::REGISTER_OPTNAME,
                std::ptr::from_ref(&value).cast(),
                size_of::<EdgeRegistration>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(LoaderError::Register(std::io::Error::last_os_error()))
        }
    }

    /// A snapshot of the writer's counters.
    pub fn stats(&self) -> EdgeCounters {
        // Reading an array map through a held fd fails only if the kernel is
        // out of memory; zero counts are the honest answer then.
        EdgeCounters::read(&self.counters).unwrap_or_else(|_| EdgeCounters::zero())
    }

    /// Every counter of [`EdgeCounter::ALL`] with its total over CPUs, in row
    /// order, so exporters list each one, new ones included, named and
    /// described by [`EdgeCounter::name`] and [`EdgeCounter::help`]. Zeros if
    /// the map cannot be read.
    pub fn totals(&self) -> Vec<(EdgeCounter, u64)> {
        self.stats().totals().collect()
    }

    /// The cgroup the writer is attached to (this process's own, or the child of
    /// the cgroup2 root it moved into).
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }
}

impl std::fmt::Debug for EdgeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeWriter")
            .field("cgroup", &self.cgroup)
            .field("placement", &self.placement)
            .finish_non_exhaustive()
    }
}

impl Drop for EdgeWriter {
    fn drop(&mut self) {
        drop(self.links.take()); // detaches
        if let Placement::RootChild { root } = &self.placement {
            let _ = join_cgroup(root);
            let _ = std::fs::remove_dir(&self.cgroup);
        }
    }
}

/// A random token from the kernel's generator.
fn random_token() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    // SAFETY: writes at most 8 bytes into the array we own.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n == 8 {
        Ok(u64::from_ne_bytes(bytes))
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where a proxy started in the cgroup2 root makes its child `<pid>`.
const PROXIES_CGROUP: &str = "toa-proxy";

/// Makes the cgroup `dir`, or finds it made.
fn create_cgroup(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(LoaderError::Io {
            action: "creating cgroup",
            path: dir.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Removes the empty children left in `proxies` by proxies that were killed
/// (SIGKILL skips Drop). A child with live processes refuses rmdir and stays.
fn remove_stale_children(proxies: &Path) {
    let Ok(entries) = std::fs::read_dir(proxies) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
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

/// This process's cgroup2 directory: the `0::` line of /proc/self/cgroup (the
/// root when there is none, as on a host that uses only cgroup v1), under a
/// cgroup2 mount this process can see. An existing mount is used when it shows
/// the cgroup (on a unified host, /sys/fs/cgroup); otherwise toa mounts its own
/// at [`crate::CGROUP2_ROOT`] (`ip netns exec` hides the ones under /sys).
fn own_cgroup() -> Result<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(LoaderError::io("reading", "/proc/self/cgroup"))?;
    let relative = own_cgroup_path(&own);
    if let Some(dir) = mounted_cgroup2().map(|m| m.join(relative))
        && dir.is_dir()
    {
        return Ok(dir);
    }
    let dir = cgroup2_root()?.join(relative);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(LoaderError::OwnCgroupHidden { path: dir })
    }
}

/// The cgroup2 path in /proc/self/cgroup's text, relative to the mount root.
fn own_cgroup_path(proc_self_cgroup: &str) -> &str {
    proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map_or("", |p| p.trim().trim_start_matches('/'))
}

/// Whether `dir` is the root of the whole cgroup2 hierarchy. The kernel gives
/// every cgroup but the root a `cgroup.events` file, which also tells the real
/// root from the root of a container's cgroup namespace (that one has it).
fn is_cgroup2_root(dir: &Path) -> bool {
    !dir.join("cgroup.events").exists()
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
    fn own_cgroup_is_the_unified_line_of_proc_self_cgroup() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/toa-proxy.service\n";
        assert_eq!(own_cgroup_path(hybrid), "system.slice/toa-proxy.service");
        assert_eq!(own_cgroup_path("0::/\n"), "");
        // cgroup v1 only: every process is in the (unused) cgroup2 root.
        assert_eq!(own_cgroup_path("4:memory:/x\n"), "");
    }
}
