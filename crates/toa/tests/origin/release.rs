//! A record is released when its socket reaches TCP_CLOSE, not when the
//! application closes the descriptor: `ip6_address_free` counts it then, and
//! the lookup on the still-open socket answers "no TOA" from that moment on.

use crate::lab::*;
use toa_lab::addr;

/// Accepts one connection and prints the lookup (`open ...`); reads to EOF,
/// shuts its side down and waits for TCP_CLOSE (tcpi_state 7), prints the
/// lookup again (`closed ...`) and keeps the descriptor open.
const SERVER: &str = r#"
import errno, socket, sys, time
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(8)
c, _ = srv.accept()
def lookup():
    try:
        b = c.getsockopt(socket.IPPROTO_IP, 4096, 18)
    except OSError as e:
        return errno.errorcode[e.errno]
    return 'ENOENT' if b == bytes(18) else socket.inet_ntop(socket.AF_INET6, b[:16])
print('open', lookup(), flush=True)
while c.recv(100):
    pass
c.shutdown(socket.SHUT_WR)
while c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != 7:
    time.sleep(0.01)
print('closed', lookup(), flush=True)
time.sleep(600)
"#;

#[test]
fn record_is_released_at_tcp_close_while_the_descriptor_is_still_open() {
    let mut lab = origin_lab_or_skip!(
        "record_is_released_at_tcp_close_while_the_descriptor_is_still_open",
        "orig-rel",
        &["--trust-any"]
    );
    let OriginLab { origin, cg, topo } = &mut lab;
    let server = origin_server(
        topo,
        cg,
        &["python3", "-c", SERVER, addr::ORIGIN_V4, "9000"],
        9000,
    );
    relay(topo, "198.18.1.1:9000", "198.18.2.2:9000");
    topo.client
        .run(&[
            "python3",
            "-c",
            "import socket; c = socket.create_connection(('198.18.1.1', 9000)); c.sendall(b'x'); c.close()",
        ])
        .unwrap();

    let log = wait_log(&server.log, "closed ");
    assert!(log.contains("open ::ffff:198.18.1.2\n"), "{log}");
    assert!(log.contains("closed ENOENT\n"), "{log}");
    // The server still holds the socket: released means TCP_CLOSE, not close().
    let c = origin.counters();
    assert_eq!(c.total(Counter::Ip6AddressAlloc), 1);
    assert_eq!(c.total(Counter::Ip6AddressFree), 1);
    assert_eq!(c.total(Counter::LookupToaOk), 1);
    assert_eq!(c.total(Counter::LookupToaEmpty), 1);
}
