//! Header acceptance: every split of a header parses once whole, versions are enforced,
//! LOCAL keeps the peer, and bytes after the header are kept.

use super::*;

use std::time::Duration;
use toa_config::{ProxyVersion, accept_net};

fn accept(version: ProxyVersion) -> AcceptProxy {
    AcceptProxy {
        version,
        from: vec![accept_net("198.18.1.0/24").unwrap()],
    }
}

const PEER: &str = "198.18.1.2:40000";

fn v2_header() -> Vec<u8> {
    proxy_v2::Header::proxy(
        proxy_v2::Transport::Stream,
        "198.19.7.7:5555".parse().unwrap(),
        "198.18.1.1:80".parse().unwrap(),
    )
    .encode()
    .unwrap()
}

#[test]
fn a_header_split_at_every_byte_parses_only_when_whole() {
    let peer: SocketAddr = PEER.parse().unwrap();
    for (version, header) in [
        (ProxyVersion::V2, v2_header()),
        (ProxyVersion::Any, v2_header()),
        (
            ProxyVersion::V1,
            b"PROXY TCP6 fd00:9::7 fd00:1::1 5555 80\r\n".to_vec(),
        ),
        (
            ProxyVersion::Any,
            b"PROXY TCP4 198.19.7.7 198.18.1.1 5555 80\r\n".to_vec(),
        ),
    ] {
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        for cut in 1..header.len() {
            assert_eq!(
                parse(&bytes[..cut], peer, &accept(version)),
                Progress::NeedMore,
                "{version:?} cut at {cut}"
            );
        }
        let Progress::Done { accepted } = parse(&bytes, peer, &accept(version)) else {
            panic!("{version:?}: whole header not accepted");
        };
        assert_eq!(accepted.client.port(), 5555);
        assert_ne!(accepted.client, peer);
        assert_eq!(accepted.leftover, b"GET / HTTP/1.1\r\n");
    }
}

#[test]
fn a_version_the_rule_does_not_accept_is_a_missing_header() {
    let peer: SocketAddr = PEER.parse().unwrap();
    let v1 = b"PROXY TCP4 198.19.7.7 198.18.1.1 5555 80\r\n";
    assert_eq!(
        parse(v1, peer, &accept(ProxyVersion::V2)),
        Progress::Refused(Refusal::Missing)
    );
    assert_eq!(
        parse(&v2_header(), peer, &accept(ProxyVersion::V1)),
        Progress::Refused(Refusal::Missing)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\n", peer, &accept(ProxyVersion::Any)),
        Progress::Refused(Refusal::Missing)
    );
}

#[test]
fn a_malformed_header_is_refused_as_malformed() {
    let peer: SocketAddr = PEER.parse().unwrap();
    assert_eq!(
        parse(
            b"PROXY TCP4 198.19.7.777 198.18.1.1 5555 80\r\n",
            peer,
            &accept(ProxyVersion::Any)
        ),
        Progress::Refused(Refusal::Malformed)
    );
    let mut bad = v2_header();
    bad[12] = 0x2F; // version 2, command 0xF
    assert_eq!(
        parse(&bad, peer, &accept(ProxyVersion::V2)),
        Progress::Refused(Refusal::Malformed)
    );
}

#[test]
fn local_and_unknown_keep_the_tcp_peer() {
    let peer: SocketAddr = PEER.parse().unwrap();
    let local = proxy_v2::Header::local().encode().unwrap();
    let Progress::Done { accepted } = parse(&local, peer, &accept(ProxyVersion::V2)) else {
        panic!("LOCAL not accepted");
    };
    assert_eq!((accepted.client, accepted.proxy), (peer, None));
    let Progress::Done { accepted } = parse(b"PROXY UNKNOWN\r\n", peer, &accept(ProxyVersion::V1))
    else {
        panic!("UNKNOWN not accepted");
    };
    assert_eq!(accepted.client, peer);
}

/// A loopback connection: the proxy's accepted side and the client's side.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (accepted, client)
}

fn loopback(version: ProxyVersion) -> AcceptProxy {
    AcceptProxy {
        version,
        from: vec![accept_net("127.0.0.0/8").unwrap()],
    }
}

#[tokio::test]
async fn a_header_arriving_in_two_writes_is_read_whole_with_the_bytes_after_it() {
    use tokio::io::AsyncWriteExt;
    let (mut accepted, mut client) = pair().await;
    let peer = accepted.peer_addr().unwrap();
    let header = v2_header();
    let writer = tokio::spawn(async move {
        client.write_all(&header[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
            .write_all(&[&header[5..], b"hello"].concat())
            .await
            .unwrap();
        client
    });
    let got = read(
        &mut accepted,
        peer,
        &loopback(ProxyVersion::V2),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(got.client, "198.19.7.7:5555".parse().unwrap());
    assert_eq!(got.leftover, b"hello");
    drop(writer.await.unwrap());
}

#[tokio::test]
async fn an_unfinished_header_hits_the_deadline_and_an_untrusted_peer_is_not_read() {
    use tokio::io::AsyncWriteExt;
    let (mut accepted, mut client) = pair().await;
    let peer = accepted.peer_addr().unwrap();
    client.write_all(b"PROXY TCP4 198.19").await.unwrap();
    let deadline = Duration::from_millis(200);
    assert_eq!(
        read(&mut accepted, peer, &loopback(ProxyVersion::Any), deadline).await,
        Err(Refusal::Timeout)
    );
    let untrusted = accept(ProxyVersion::Any);
    assert_eq!(
        read(&mut accepted, peer, &untrusted, deadline).await,
        Err(Refusal::Untrusted)
    );
}
