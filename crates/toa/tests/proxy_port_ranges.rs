//! Port ranges end to end: a rule with `ports = "1024-65000"` is served through the
//! sk_lookup steerer by one socket per accept worker, each port reaching its own origin
//! port (`origin_ports` range), other ports and addresses untouched, across a reload that
//! changes the range; without CAP_BPF the proxy binds every port, or refuses with one line
//! when they cannot fit under the open-file limit.

mod proxy_support;

use std::time::Duration;

use proxy_support::ranges::{
    FIRST, LAST, ORIGIN_FIRST, SHIFT, WITHOUT_BPF, joined, origin_ports, random_ports,
};
use proxy_support::ranges::{
    assert_answers, assert_fell_back, assert_none_failed, assert_steered_on_few_descriptors,
    range_rule, refused_beyond_the_descriptor_limit, refused_over_a_held_port, reload_and_wait,
};
use proxy_support::{ProxyLab, add_address};
use toa_lab::{addr, require_privileges};

/// One process listening on many TCP ports of one address; each connection gets
/// "TAG PORT\n" (the port it reached) and is closed.
const MANY_PORTS_PY: &str = r#"
import selectors, socket, sys
host, tag, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3].split(",")]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
sel = selectors.DefaultSelector()
for port in ports:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        try:
            c, _ = key.fileobj.accept()
        except OSError:
            continue
        c.setblocking(True)
        c.sendall(("%s %d\n" % (tag, key.fileobj.getsockname()[1])).encode())
        c.close()
"#;

impl ProxyLabExt for ProxyLab {
    fn many_ports(&mut self, ns: Ns, host: &str, tag: &str, ports: &[u16]) {
        let script = self.topo.lab.dir().join("many_ports.py");
        std::fs::write(&script, MANY_PORTS_PY).unwrap();
        let cmd = [
            "python3",
            script.to_str().unwrap(),
            host,
            tag,
            &joined(ports),
        ];
        let last = *ports.last().unwrap();
        match ns {
            Ns::Origin => drop(self.spawn_origin(&cmd, last)),
            Ns::Edge => {
                self.topo.lab.spawn(&self.topo.edge, None, &cmd).unwrap();
                self.topo
                    .edge
                    .wait_listening(last, false, toa_lab::scaled(Duration::from_secs(10)))
                    .unwrap();
            }
        }
    }

    fn probe(&self, host: &str, ports: &[u16]) -> Vec<(u16, String)> {
        let out = self
            .topo
            .client
            .run(&["python3", &self.peer, "probe-ports", host, &joined(ports)])
            .unwrap_or_else(|e| panic!("probe failed: {e}\n{}", self.proxy_log()));
        out.lines()
            .map(|l| {
                let (port, reply) = l.split_once(' ').unwrap();
                (port.parse().unwrap(), reply.to_string())
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Ns {
    Origin,
    Edge,
}

trait ProxyLabExt {
    /// Starts [`MANY_PORTS_PY`] in `ns` and waits until its last port listens.
    fn many_ports(&mut self, ns: Ns, host: &str, tag: &str, ports: &[u16]);
    /// Runs `peer.py probe-ports` from the client: each port with its reply.
    fn probe(&self, host: &str, ports: &[u16]) -> Vec<(u16, String)>;
}

/// Every probed port answered by the origin on port + SHIFT.
fn assert_mapped(lab: &ProxyLab, replies: &[(u16, String)]) {
    assert_answers(lab, replies, |port| format!("origin {}", port + SHIFT));
}

/// The whole first scenario, per family: few descriptors, 200 random ports mapped, a
/// port outside the range and another address of the edge left to their own sockets.
fn serves_a_wide_range(tag: &str, edge: &str, other: &str, origin: &str) {
    let mut lab = ProxyLab::new(tag);
    let ports = random_ports(200, FIRST, LAST);
    // The health checks probe the first origin port.
    let origin_ports = origin_ports(&ports, ORIGIN_FIRST, SHIFT);
    lab.many_ports(Ns::Origin, origin, "origin", &origin_ports);
    add_address(&lab.topo.edge, edge, other);
    lab.many_ports(Ns::Edge, other, "other-address", &[2000]);
    lab.many_ports(Ns::Edge, edge, "outside", &[65100]);
    lab.start_proxy(&range_rule("tcp", edge, FIRST, LAST, origin), FIRST);
    assert_steered_on_few_descriptors(&lab);
    assert_mapped(&lab, &lab.probe(edge, &ports));
    assert_eq!(
        lab.probe(edge, &[65100]),
        [(65100, "outside 65100".to_string())]
    );
    assert_eq!(
        lab.probe(other, &[2000]),
        [(2000, "other-address 2000".to_string())]
    );
}

#[test]
fn tcp_v4_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone() {
    if !require_privileges(
        "tcp_v4_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone",
    ) {
        return;
    }
    serves_a_wide_range(
        "range4",
        addr::EDGE_CLIENT_SIDE_V4,
        "198.18.1.5",
        addr::ORIGIN_V4,
    );
}

#[test]
fn tcp_v6_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone() {
    if !require_privileges(
        "tcp_v6_range_serves_random_ports_on_few_descriptors_and_leaves_the_rest_alone",
    ) {
        return;
    }
    serves_a_wide_range(
        "range6",
        addr::EDGE_CLIENT_SIDE_V6,
        "fd00:1::5",
        addr::ORIGIN_V6,
    );
}

#[test]
fn tcp_range_survives_reloads_that_move_its_last_and_first_port() {
    if !require_privileges("tcp_range_survives_reloads_that_move_its_last_and_first_port") {
        return;
    }
    let (edge, origin) = (addr::EDGE_CLIENT_SIDE_V4, addr::ORIGIN_V4);
    let mut lab = ProxyLab::new("rangereload");
    // 3000 stays in every range; 40000 leaves with the first reload; 1500 with the second.
    let (stays, leaves, first_goes) = (3000, 40000, 1500);
    let probed = [stays, leaves, first_goes];
    // The health checks probe the first origin port, before and after the move to 2000.
    let mut origin_ports: Vec<u16> = [stays, leaves, first_goes, FIRST, 2000]
        .iter()
        .map(|p| p + SHIFT)
        .collect();
    origin_ports.sort();
    lab.many_ports(Ns::Origin, origin, "origin", &origin_ports);
    lab.start_proxy(&range_rule("tcp", edge, FIRST, LAST, origin), FIRST);
    assert_mapped(&lab, &lab.probe(edge, &probed));

    let stop = lab.topo.lab.dir().join("stop-hammer");
    let stop_arg = stop.to_string_lossy().into_owned();
    let (hammer, _) = lab.spawn_peer(&["connect-until", edge, &stays.to_string(), &stop_arg]);

    // The same first port: the range's sockets stay, its last port moves.
    let header = std::fs::read_to_string(&lab.config).unwrap();
    let health = &header[..header.find("[[rule]]").unwrap()];
    reload_and_wait(
        &lab,
        &format!("{health}{}", range_rule("tcp", edge, FIRST, 30000, origin)),
        1,
    );
    assert_mapped(&lab, &lab.probe(edge, &[stays, first_goes]));
    assert_eq!(
        lab.probe(edge, &[leaves]),
        [(leaves, "ERR 111".to_string())]
    );

    // Another first port: new sockets are steered before the old ones close.
    let moved = 2000;
    let moved_rule = range_rule("tcp", edge, moved, 30000, origin);
    reload_and_wait(&lab, &format!("{health}{moved_rule}"), 2);
    assert_mapped(&lab, &lab.probe(edge, &[stays]));
    assert_eq!(
        lab.probe(edge, &[first_goes]),
        [(first_goes, "ERR 111".to_string())]
    );

    assert_none_failed(&lab, &stop, &hammer);
}

#[test]
fn tcp_range_without_cap_bpf_falls_back_to_sockets_per_port() {
    if !require_privileges("tcp_range_without_cap_bpf_falls_back_to_sockets_per_port") {
        return;
    }
    let (edge, origin) = (addr::EDGE_CLIENT_SIDE_V4, addr::ORIGIN_V4);
    let (first, last) = (20000, 20099);
    let mut lab = ProxyLab::new("rangefallback");
    let ports = random_ports(20, first, last);
    let origin_ports = origin_ports(&ports, first + SHIFT, SHIFT);
    lab.many_ports(Ns::Origin, origin, "origin", &origin_ports);
    lab.start_proxy_under(
        &WITHOUT_BPF,
        &range_rule("tcp", edge, first, last, origin),
        last,
    );
    assert_fell_back(&lab);
    assert_mapped(&lab, &lab.probe(edge, &ports));
}

#[test]
fn tcp_wide_range_without_cap_bpf_beyond_the_descriptor_limit_is_refused_in_one_line() {
    if !require_privileges(
        "tcp_wide_range_without_cap_bpf_beyond_the_descriptor_limit_is_refused_in_one_line",
    ) {
        return;
    }
    refused_beyond_the_descriptor_limit("rangerefused", "tcp");
}

#[test]
fn tcp_range_over_a_port_another_socket_listens_on_is_refused_like_a_bind() {
    if !require_privileges("tcp_range_over_a_port_another_socket_listens_on_is_refused_like_a_bind")
    {
        return;
    }
    let edge = addr::EDGE_CLIENT_SIDE_V4;
    let mut lab = ProxyLab::new("rangeheld");
    lab.many_ports(Ns::Edge, edge, "held", &[3000]);
    refused_over_a_held_port(&lab, "tcp", 3000);
    // The port keeps its own socket.
    assert_eq!(lab.probe(edge, &[3000]), [(3000, "held 3000".to_string())]);
}
