//! Host-name lookup, a leaf: the config resolves origins through it at load (every A and
//! AAAA address becomes an origin of its own) and toa-proxy's `resolve` again while the proxy runs.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Each name's addresses, or why its lookup failed.
pub type Answers = HashMap<String, Result<Vec<IpAddr>, LookupError>>;

/// Why a name has no addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// `"host:port"` or `"[v6]:port"` written as an origin: the port belongs in `origin_ports`.
    #[error("\"{name}\" has a port; write origins = [\"{host}\"] and origin_ports = \"{port}\"")]
    HasPort {
        name: String,
        host: String,
        port: u16,
    },
    #[error("cannot resolve host name \"{0}\"")]
    Unresolvable(String),
}

/// Looks up every name (blocking); a failure is kept as its reason.
pub fn lookup_all(names: &BTreeSet<String>) -> Answers {
    names.iter().map(|n| (n.clone(), lookup(n))).collect()
}

/// Every address of `name`: an IP literal as is, a host name through getaddrinfo (blocking),
/// sorted and deduplicated so that two answers compare equal when they hold the same set.
pub fn lookup(name: &str) -> Result<Vec<IpAddr>, LookupError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if let Some(hint) = port_hint(name) {
        return Err(hint);
    }
    let unresolvable = || LookupError::Unresolvable(name.to_string());
    let mut addresses: Vec<IpAddr> = (name, 0)
        .to_socket_addrs()
        .map_err(|_| unresolvable())?
        .map(|sa| sa.ip().to_canonical())
        .collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(unresolvable());
    }
    Ok(addresses)
}

/// `"host:port"` or `"[v6]:port"` written as an origin: the port belongs in `origin_ports`.
fn port_hint(name: &str) -> Option<LookupError> {
    let (host, port) = match name.parse::<SocketAddr>() {
        Ok(sa) => (sa.ip().to_string(), sa.port()),
        Err(_) => {
            let (host, port) = name.rsplit_once(':')?;
            if host.contains(':') {
                return None;
            }
            (host.to_string(), port.parse::<u16>().ok()?)
        }
    };
    Some(LookupError::HasPort {
        name: name.to_string(),
        host,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_written_as_an_origin_gets_an_origin_ports_hint() {
        assert_eq!(
            lookup("origin.example:8080").unwrap_err().to_string(),
            "\"origin.example:8080\" has a port; write origins = [\"origin.example\"] and origin_ports = \"8080\""
        );
        assert!(
            lookup("[fd00:2::2]:80")
                .unwrap_err()
                .to_string()
                .contains("origin_ports = \"80\"")
        );
        assert_eq!(
            lookup("fd00:2::2").unwrap(),
            vec!["fd00:2::2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn localhost_resolves_to_every_address_sorted() {
        let all = lookup("localhost").unwrap();
        assert!(all.iter().all(IpAddr::is_loopback));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }
}
