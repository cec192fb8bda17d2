//! `pass_client_ip = "toa"`: the eBPF edge writer puts the client's address in a TCP
//! option on the upstream SYN and handshake ACK. The proxy only registers each upstream
//! socket's client between `socket()` and `connect()` (through [`UpstreamTagger`], which
//! also sets TCP_NODELAY); the kernel does the rest.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::TcpSocket;

use super::{ClientIpWriter, ConnInfo, UpstreamTagger};

pub struct Toa {
    pub writer: Arc<dyn UpstreamTagger>,
}

impl ClientIpWriter for Toa {
    fn name(&self) -> &'static str {
        "toa"
    }

    fn prepare(&self, socket: &TcpSocket, conn: &ConnInfo) -> io::Result<()> {
        self.writer
            .register(socket.as_fd(), conn.client)
            .map_err(|e| io::Error::other(format!("TOA registration failed: {e}")))
    }
}
