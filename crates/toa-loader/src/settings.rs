//! What an origin receiver accepts (option kinds, trusted proxies), how it is
//! shown, turned into the kernel config, and what a reload changes.

use crate::trust::TrustedNet;
use crate::{LoaderError, Result};
use toa_common::origin::{MAX_KINDS, MAX_TRUST_ENTRIES, OriginConfig};

/// What the origin accepts: option kinds and trusted proxy networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Accepted option kinds (default `[254]`), at most [`MAX_KINDS`].
    pub kinds: Vec<u8>,
    /// Trusted proxies; empty means every source is trusted (toa.ko's
    /// behaviour), which takes [`TrustAny::Allow`].
    pub trust: Vec<TrustedNet>,
}

/// Whether the operator asked to trust TOAs from any source (`--trust-any`).
/// Anti-spoofing is the receiver's point: with every source trusted, any host
/// that reaches the server can claim any client address. So an empty trust
/// list is never a default: without `Allow` it is refused on a first load
/// ([`LoaderError::TrustRequired`]) and on a reload that would drop a list
/// ([`LoaderError::WouldTrustAny`]), e.g. because a `--trust` flag went
/// missing from a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustAny {
    /// Refuse an empty trust list; the default.
    Refuse,
    /// The operator asked for it (`--trust-any`).
    Allow,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            kinds: vec![toa_wire::toa::DEFAULT_KIND],
            trust: Vec::new(),
        }
    }
}

/// The one text for settings, everywhere toa shows them:
/// `kinds 254, 200; trust 198.18.2.0/24, fd00:2::/64`, or `...; trust any source`.
impl std::fmt::Display for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kinds {}; trust {}",
            self.kinds_text(),
            self.trust_text()
        )
    }
}

impl Settings {
    fn kinds_text(&self) -> String {
        let kinds: Vec<String> = self.kinds.iter().map(u8::to_string).collect();
        kinds.join(", ")
    }

    fn trust_text(&self) -> String {
        if self.trust.is_empty() {
            return "any source".into();
        }
        let trust: Vec<String> = self.trust.iter().map(TrustedNet::to_string).collect();
        trust.join(", ")
    }

    /// The kernel-side config, or the reason these settings are invalid.
    pub fn to_config(&self) -> Result<OriginConfig> {
        let mut kinds: Vec<u8> = Vec::new();
        for &kind in &self.kinds {
            toa_wire::toa::check_kind(kind)?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            kinds.push(toa_wire::toa::DEFAULT_KIND);
        }
        if kinds.len() > MAX_KINDS {
            return Err(LoaderError::TooManyKinds {
                given: kinds.len(),
                max: MAX_KINDS,
            });
        }
        if self.trust.len() > MAX_TRUST_ENTRIES as usize {
            return Err(LoaderError::TooManyTrusted {
                given: self.trust.len(),
                max: MAX_TRUST_ENTRIES,
            });
        }
        let mut config = OriginConfig {
            trust_enabled: u8::from(!self.trust.is_empty()),
            ..Default::default()
        };
        config.kinds[..kinds.len()].copy_from_slice(&kinds);
        Ok(config)
    }

    /// Refuses trusting any source unless allowed; `current` are the settings
    /// of a receiver already on `cgroup`, if any.
    pub(crate) fn check_trust(
        &self,
        current: Option<&Settings>,
        trust_any: TrustAny,
        cgroup: &std::path::Path,
    ) -> Result<()> {
        if trust_any == TrustAny::Allow || !self.trust.is_empty() {
            return Ok(());
        }
        let cgroup = cgroup.to_path_buf();
        match current {
            Some(current) if !current.trust.is_empty() => Err(LoaderError::WouldTrustAny {
                cgroup,
                trust: current.trust_text(),
            }),
            _ => Err(LoaderError::TrustRequired { cgroup }),
        }
    }

    /// What changes from `before` to `self`, one `what old → new` item each
    /// (lists compared as sets: order and duplicates are not changes).
    pub fn changes_from(&self, before: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        let set = |v: &[u8]| {
            let mut v = v.to_vec();
            v.sort_unstable();
            v.dedup();
            v
        };
        if set(&self.kinds) != set(&before.kinds) {
            out.push(format!(
                "kinds {} → {}",
                before.kinds_text(),
                self.kinds_text()
            ));
        }
        let nets = |v: &[TrustedNet]| {
            let mut v: Vec<String> = v.iter().map(TrustedNet::to_string).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if nets(&self.trust) != nets(&before.trust) {
            out.push(format!(
                "trust {} → {}",
                before.trust_text(),
                self.trust_text()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(kinds: &[u8], trust: &[&str]) -> Settings {
        Settings {
            kinds: kinds.to_vec(),
            trust: trust.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn settings_reject_every_kind_linux_uses() {
        for (kind, _) in toa_wire::toa::LINUX_KINDS {
            let err = settings(&[kind], &[]).to_config().unwrap_err();
            assert!(matches!(err, LoaderError::BadKind(_)), "{kind}");
            assert!(
                err.to_string()
                    .starts_with(&format!("bad option kind {kind}: kind {kind} is ")),
                "{err}"
            );
        }
    }

    #[test]
    fn settings_dedupe_kinds_and_cap_their_number() {
        assert_eq!(
            settings(&[254, 200, 254], &[]).to_config().unwrap().kinds,
            [254, 200, 0, 0]
        );
        assert!(matches!(
            settings(&[6, 7, 9, 10, 11], &[]).to_config(),
            Err(LoaderError::TooManyKinds { given: 5, .. })
        ));
    }

    #[test]
    fn settings_read_as_kinds_and_trust_list() {
        assert_eq!(
            settings(&[254, 200], &[]).to_string(),
            "kinds 254, 200; trust any source"
        );
        assert_eq!(
            settings(&[254, 200], &["198.18.2.0/24", "fd00:2::/64"]).to_string(),
            "kinds 254, 200; trust 198.18.2.0/24, fd00:2::/64"
        );
    }

    #[test]
    fn trust_list_switches_trust_on() {
        let config = settings(&[], &["198.18.2.1/32"]).to_config().unwrap();
        assert_eq!(config.trust_enabled, 1);
        assert_eq!(config.kinds, [254, 0, 0, 0]);
    }

    #[test]
    fn trusting_any_source_needs_an_explicit_allow() {
        let cg = std::path::Path::new("/cg");
        let listed = settings(&[254], &["10.1.0.0/16"]);
        let any = settings(&[254], &[]);
        let err = any
            .check_trust(Some(&listed), TrustAny::Refuse, cg)
            .unwrap_err();
        assert!(matches!(err, LoaderError::WouldTrustAny { .. }), "{err}");
        assert!(err.to_string().contains("--trust-any"), "{err}");
        for current in [None, Some(&any)] {
            let err = any.check_trust(current, TrustAny::Refuse, cg).unwrap_err();
            assert!(matches!(err, LoaderError::TrustRequired { .. }), "{err}");
        }
        assert!(any.check_trust(Some(&listed), TrustAny::Allow, cg).is_ok());
        assert!(any.check_trust(None, TrustAny::Allow, cg).is_ok());
        assert!(listed.check_trust(Some(&any), TrustAny::Refuse, cg).is_ok());
        assert!(listed.check_trust(None, TrustAny::Refuse, cg).is_ok());
    }

    #[test]
    fn changes_name_what_moved_and_ignore_order() {
        let before = settings(&[254], &["198.18.9.0/24"]);
        assert_eq!(
            settings(&[254, 200], &["198.18.2.0/24"]).changes_from(&before),
            [
                "kinds 254 → 254, 200",
                "trust 198.18.9.0/24 → 198.18.2.0/24"
            ]
        );
        assert!(before.changes_from(&before).is_empty());
        assert_eq!(
            settings(&[254], &[]).changes_from(&before),
            ["trust 198.18.9.0/24 → any source"]
        );
    }
}
