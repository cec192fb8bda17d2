//! [`Topology`]: the client ⇄ edge ⇄ origin hosts shared by tests, demo and bench.

use crate::{Lab, Netns};

/// Addresses of the standard topology (198.18.0.0/15 and fd00::/8 only).
pub mod addr {
    pub const CLIENT_V4: &str = "198.18.1.2";
    pub const CLIENT_V6: &str = "fd00:1::2";
    pub const EDGE_CLIENT_SIDE_V4: &str = "198.18.1.1";
    pub const EDGE_CLIENT_SIDE_V6: &str = "fd00:1::1";
    pub const EDGE_ORIGIN_SIDE_V4: &str = "198.18.2.1";
    pub const EDGE_ORIGIN_SIDE_V6: &str = "fd00:2::1";
    pub const ORIGIN_V4: &str = "198.18.2.2";
    pub const ORIGIN_V6: &str = "fd00:2::2";
}

/// Three hosts: the client reaches only the edge, the origin is reached only
/// by the edge. Nothing routes between client and origin, so any client
/// address the origin reports must have been carried by the edge.
pub struct Topology {
    pub lab: Lab,
    pub client: Netns,
    pub edge: Netns,
    pub origin: Netns,
}

impl Topology {
    pub fn new(tag: &str) -> anyhow::Result<Topology> {
        use addr::*;
        let mut lab = Lab::new(tag)?;
        let client = lab.netns("client")?;
        let edge = lab.netns("edge")?;
        let origin = lab.netns("origin")?;
        let cidr = |a: &str| {
            if a.contains(':') {
                format!("{a}/64")
            } else {
                format!("{a}/24")
            }
        };
        lab.link(
            &client,
            &[&cidr(CLIENT_V4), &cidr(CLIENT_V6)],
            &edge,
            &[&cidr(EDGE_CLIENT_SIDE_V4), &cidr(EDGE_CLIENT_SIDE_V6)],
        )?;
        lab.link(
            &edge,
            &[&cidr(EDGE_ORIGIN_SIDE_V4), &cidr(EDGE_ORIGIN_SIDE_V6)],
            &origin,
            &[&cidr(ORIGIN_V4), &cidr(ORIGIN_V6)],
        )?;
        Ok(Topology {
            lab,
            client,
            edge,
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::require_privileges;
    use std::time::Duration;

    #[test]
    fn edge_reaches_both_hosts_but_client_cannot_reach_origin() {
        if !require_privileges("edge_reaches_both_hosts_but_client_cannot_reach_origin") {
            return;
        }
        let topo = Topology::new("topo").unwrap();
        for target in [
            addr::ORIGIN_V4,
            addr::ORIGIN_V6,
            addr::CLIENT_V4,
            addr::CLIENT_V6,
        ] {
            topo.edge
                .run(&["ping", "-c1", "-W2", target])
                .unwrap_or_else(|e| panic!("edge cannot reach {target}: {e}"));
        }
        let unreachable = topo
            .client
            .output(&["ping", "-c1", "-W1", addr::ORIGIN_V4])
            .unwrap();
        assert!(
            !unreachable.status.success(),
            "client must not reach the origin directly"
        );
    }

    #[test]
    fn spawned_server_in_cgroup_is_reachable_and_cleaned_up() {
        if !require_privileges("spawned_server_in_cgroup_is_reachable_and_cleaned_up") {
            return;
        }
        let mut topo = Topology::new("spawn").unwrap();
        let cg = topo.lab.cgroup("origin").unwrap();
        let server = topo
            .lab
            .spawn(
                &topo.origin,
                Some(&cg),
                &[
                    "python3",
                    "-m",
                    "http.server",
                    "-b",
                    addr::ORIGIN_V4,
                    "18080",
                ],
            )
            .unwrap();
        topo.origin
            .wait_listening(18080, false, Duration::from_secs(10))
            .unwrap();
        let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == server.pid.to_string()),
            "server not in its cgroup: {procs:?}"
        );
        let page = topo
            .edge
            .run(&["curl", "-sf", &format!("http://{}:18080/", addr::ORIGIN_V4)])
            .unwrap();
        assert!(page.contains("Directory listing"), "{page}");
        let names: Vec<String> = topo.lab.namespaces().to_vec();
        drop(topo);
        let left = crate::run_host(&["ip", "netns", "list"]).unwrap();
        for ns in names {
            assert!(!left.contains(&ns), "namespace {ns} left behind");
        }
        assert!(!cg.exists(), "cgroup {} left behind", cg.display());
    }
}
