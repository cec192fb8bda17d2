//! The loader's one error type: each variant is a one-line message that says
//! what is missing and how to fix it.

use std::path::PathBuf;

use toa_host::HostError;

/// Everything that can go wrong while loading, attaching, pinning, querying or
/// unloading toa's programs.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// The host lacks something (privilege, kernel, BTF, a mount), or has toa.ko.
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(
        "BPF is disabled in this kernel ({reason}): enable CONFIG_BPF_SYSCALL and CONFIG_CGROUP_BPF"
    )]
    BpfDisabled { reason: String },
    #[error("bad trust CIDR {input:?}: {reason} (expected e.g. 198.18.1.0/24 or fd00:1::/64)")]
    BadCidr { input: String, reason: &'static str },
    // Not `#[from]`: that would make the rule a "cause" printed on a line of its own.
    #[error("bad option kind {kind}: {rule}", kind = .0.kind, rule = .0)]
    BadKind(toa_wire::toa::KindError),
    #[error(
        "refusing to trust any source on {}: it trusts only {trust}; pass --trust-any to drop the list, or --trust <CIDR> to replace it", cgroup.display()
    )]
    WouldTrustAny { cgroup: PathBuf, trust: String },
    #[error(
        "refusing to load on {} without a trust list: pass --trust <CIDR> (the proxies allowed to send TOA) or --trust-any (then any host can claim any client address)", cgroup.display()
    )]
    TrustRequired { cgroup: PathBuf },
    #[error("too many option kinds ({given}): at most {max} can be accepted at once")]
    TooManyKinds { given: usize, max: usize },
    #[error("too many trust entries ({given}): at most {max}")]
    TooManyTrusted { given: usize, max: u32 },
    #[error("toa origin is not loaded on {}: run `toa origin load --cgroup {}` first", cgroup.display(), cgroup.display())]
    NotLoaded { cgroup: PathBuf },
    #[error("this process's cgroup {} is not visible under the cgroup2 mount (another cgroup namespace?): run toa proxy where its own cgroup2 tree is mounted", path.display())]
    OwnCgroupHidden { path: PathBuf },
    /// EPERM is the registration hook's refusal (its `register_failed` and
    /// `register_malformed` counters say which), ENOPROTOOPT its absence.
    #[error("registering an upstream socket with the edge writer failed: {0}")]
    Register(std::io::Error),
    #[error("too many steered port ranges: at most {max} (rule x listen address) at once")]
    TooManyRanges { max: u32 },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("eBPF {action} failed: {source}")]
    Ebpf {
        action: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<toa_wire::toa::KindError> for LoaderError {
    fn from(err: toa_wire::toa::KindError) -> Self {
        LoaderError::BadKind(err)
    }
}

/// Shorthand for the loader's results.
pub type Result<T, E = LoaderError> = std::result::Result<T, E>;

impl LoaderError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LoaderError::Io {
            action,
            path,
            source,
        }
    }

    /// Wraps an aya error, turning the errno values that mean "no privilege" or
    /// "no BPF" into their own variants.
    pub(crate) fn ebpf<E>(action: impl Into<String>) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let action = action.into();
        move |source| {
            match root_errno(&source) {
                Some(libc::EPERM) => return LoaderError::Host(HostError::NotPrivileged),
                Some(libc::ENOSYS) => {
                    return LoaderError::BpfDisabled {
                        reason: "bpf() returned ENOSYS".into(),
                    };
                }
                _ => {}
            }
            LoaderError::Ebpf {
                action,
                source: Box::new(source),
            }
        }
    }
}

/// The errno at the bottom of an error chain, if any.
fn root_errno(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error();
        }
        cur = e.source();
    }
    None
}
