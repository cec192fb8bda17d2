//! Trusted-proxy networks (`--trust CIDR`), parsed and turned into the
//! allowlist's LPM trie keys.

use crate::LoaderError;
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use toa_common::origin::TrustAddr;

/// One trusted source network, e.g. `198.18.1.0/24` or `fd00:1::/64`. A bare
/// address means a single host (/32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedNet {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl TrustedNet {
    /// The LPM trie key: IPv4 as `::ffff:a.b.c.d` with 96 added to the prefix.
    /// Host bits are cleared, so `198.18.1.7/24` and `198.18.1.0/24` are one entry.
    pub fn key(&self) -> (u32, TrustAddr) {
        let network = IpNet::new(self.addr, self.prefix_len).map_or(self.addr, |n| n.network());
        match network {
            IpAddr::V4(v4) => (
                96 + u32::from(self.prefix_len),
                v4.to_ipv6_mapped().octets(),
            ),
            IpAddr::V6(v6) => (u32::from(self.prefix_len), v6.octets()),
        }
    }

    /// The inverse of [`TrustedNet::key`].
    pub fn from_key(prefix: u32, addr: TrustAddr) -> TrustedNet {
        let v6 = std::net::Ipv6Addr::from(addr);
        match v6.to_ipv4_mapped() {
            Some(v4) if prefix >= 96 => TrustedNet {
                addr: v4.into(),
                prefix_len: (prefix - 96) as u8,
            },
            _ => TrustedNet {
                addr: v6.into(),
                prefix_len: prefix as u8,
            },
        }
    }
}

impl FromStr for TrustedNet {
    type Err = LoaderError;

    /// Parsed by `ipnet`; a bare address is that host only. On failure the reason names
    /// the part that is wrong, so `--trust 198.18.0.0/33` says what to fix.
    fn from_str(input: &str) -> Result<TrustedNet, LoaderError> {
        let text = input.trim();
        let net = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| LoaderError::BadCidr {
                input: input.to_string(),
                reason: why_not_a_cidr(text),
            })?;
        Ok(TrustedNet {
            addr: net.addr(),
            prefix_len: net.prefix_len(),
        })
    }
}

/// Why `ipnet` refused `text`: the address, the prefix's syntax, or its size.
fn why_not_a_cidr(text: &str) -> &'static str {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
    match (addr.trim().parse::<IpAddr>(), prefix.trim().parse::<u8>()) {
        (Err(_), _) => "not an IP address",
        (Ok(_), Err(_)) => "prefix length is not a number",
        (Ok(IpAddr::V4(_)), Ok(_)) => "IPv4 prefix length over 32",
        (Ok(IpAddr::V6(_)), Ok(_)) => "IPv6 prefix length over 128",
    }
}

impl fmt::Display for TrustedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_cidr_is_stored_v4_mapped_with_host_bits_cleared() {
        let net: TrustedNet = "198.18.1.7/24".parse().unwrap();
        let (prefix, addr) = net.key();
        assert_eq!(prefix, 120);
        assert_eq!(
            addr,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 1, 0]
        );
        assert_eq!(
            TrustedNet::from_key(prefix, addr).to_string(),
            "198.18.1.0/24"
        );
    }

    #[test]
    fn ipv6_cidr_and_bare_addresses_parse() {
        let net: TrustedNet = "fd00:2::1/64".parse().unwrap();
        assert_eq!(
            TrustedNet::from_key(net.key().0, net.key().1).to_string(),
            "fd00:2::/64"
        );
        assert_eq!("fd00::5".parse::<TrustedNet>().unwrap().prefix_len, 128);
        assert_eq!("198.18.0.1".parse::<TrustedNet>().unwrap().prefix_len, 32);
    }

    #[test]
    fn bad_cidrs_are_rejected_with_a_reason() {
        for (input, reason) in [
            ("198.18.1.0/33", "IPv4 prefix length over 32"),
            ("fd00::/129", "IPv6 prefix length over 128"),
            ("example.com/8", "not an IP address"),
            ("10.0.0.0/x", "prefix length is not a number"),
        ] {
            let err = input.parse::<TrustedNet>().unwrap_err();
            assert!(err.to_string().contains(reason), "{input}: {err}");
        }
    }
}
