//! Trusted-proxy networks (`--trust CIDR`), parsed and turned into the
//! allowlist's LPM trie keys.

use crate::LoaderError;
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
        let (bits, prefix) = match self.addr {
            IpAddr::V4(v4) => (
                v4.to_ipv6_mapped().to_bits(),
                96 + u32::from(self.prefix_len),
            ),
            IpAddr::V6(v6) => (v6.to_bits(), u32::from(self.prefix_len)),
        };
        let masked = if prefix == 0 {
            0
        } else {
            bits & (u128::MAX << (128 - prefix))
        };
        (prefix, masked.to_be_bytes())
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

    fn from_str(input: &str) -> Result<TrustedNet, LoaderError> {
        let bad = |reason| LoaderError::BadCidr {
            input: input.to_string(),
            reason,
        };
        let (addr, prefix) = match input.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (input, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .map_err(|_| bad("prefix length is not a number"))?,
        };
        if prefix_len > max {
            return Err(bad(if max == 32 {
                "IPv4 prefix length over 32"
            } else {
                "IPv6 prefix length over 128"
            }));
        }
        Ok(TrustedNet { addr, prefix_len })
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
