//! The lookup against the real kernel on loopback, where no `toa origin` is
//! attached: it must fail the documented way and `client_addr` must fall back.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;

fn loopback_pair(bind: &str) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind(bind).unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

#[test]
fn lookup_without_origin_fails_with_enoprotoopt() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (_client, server) = loopback_pair(bind);
        let err = libtoa::peer_addr(server.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT), "{bind}: {err}");
    }
}

#[test]
fn client_addr_without_origin_is_the_socket_peer() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (client, server) = loopback_pair(bind);
        assert_eq!(
            libtoa::client_addr(&server).unwrap(),
            client.local_addr().unwrap()
        );
    }
}

#[test]
fn lookup_on_a_non_socket_fails_with_enotsock() {
    let file = std::fs::File::open("/dev/null").unwrap();
    let err = libtoa::peer_addr(&file).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
    assert_eq!(
        libtoa::client_addr(&file).unwrap_err().raw_os_error(),
        Some(libc::ENOTSOCK)
    );
}

#[test]
fn toa_get_peer_without_origin_sets_enoprotoopt_and_leaves_out_untouched() {
    let (_client, server) = loopback_pair("127.0.0.1:0");
    use std::os::fd::AsRawFd;
    let mut out: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let rc = unsafe { libtoa::toa_get_peer(server.as_raw_fd(), &mut out, &mut len) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::ENOPROTOOPT)
    );
    assert_eq!(out.ss_family, 0);
    assert_eq!(len as usize, size_of::<libc::sockaddr_storage>());
}

#[test]
fn toa_get_peer_with_null_buffer_sets_einval() {
    let (_client, server) = loopback_pair("127.0.0.1:0");
    use std::os::fd::AsRawFd;
    let mut len = 128;
    let rc = unsafe { libtoa::toa_get_peer(server.as_raw_fd(), std::ptr::null_mut(), &mut len) };
    assert_eq!(rc, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EINVAL)
    );
}
