//! What a (re)load opens before anything changes: the descriptors counted, every new
//! listener bound as its rule's transport says (unless another process holds its port), every new range steered (after checking
//! no other socket listens on its ports), and a kept range's last port moved. An error
//! anywhere rejects the (re)load whole; what was opened closes with the returned error.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, BorrowedFd};

use crate::holders::Others;
use crate::rules::{Binding, ListenKey};
use crate::state::ServerError;
use crate::steer::{PortSteering, SteeredPorts, SteeredRange, first_held};
use crate::{descriptors, listener};
use toa_pktinfo::ListenSocket;

/// The listeners a (re)load opened, by key.
#[derive(Default)]
pub(crate) struct Fresh {
    pub tcp: HashMap<ListenKey, Vec<std::net::TcpListener>>,
    pub udp: HashMap<ListenKey, ListenSocket>,
    pub steered: HashMap<ListenKey, Box<dyn SteeredRange>>,
}

/// A listener the reload keeps: its steered range, if it is one, and that range's last
/// port until now.
pub(crate) struct Kept<'a> {
    pub steered: Option<&'a dyn SteeredRange>,
    pub last: u16,
}

/// Opens every listener of `wanted` that `kept` does not return, with `workers` sockets
/// per TCP key; `is_tcp` tells a binding's transport.
pub(crate) fn open<'a>(
    wanted: &BTreeMap<ListenKey, Binding>,
    is_tcp: impl Fn(&Binding) -> bool,
    kept: impl Fn(&ListenKey, &Binding) -> Option<Kept<'a>>,
    steering: Option<&dyn PortSteering>,
    workers: usize,
) -> Result<Fresh, ServerError> {
    let opened = wanted.iter().filter(|(k, b)| kept(k, b).is_none());
    let (tcp, udp) = opened.fold((0, 0), |(t, u), (_, b)| match is_tcp(b) {
        true => (t + 1, u),
        false => (t, u + 1),
    });
    descriptors::check(descriptors::sockets(tcp, udp, workers))?;
    let mut fresh = Fresh::default();
    let mut others = Others::default();
    for (key, binding) in wanted {
        let ports = binding.steered(key).filter(|_| steering.is_some());
        if let Some(kept) = kept(key, binding) {
            // A map write on a kept range, the one change made here: it fails only out
            // of memory.
            if let (Some(steered), Some(ports)) = (kept.steered, ports) {
                refuse_held(ports, kept.last)?;
                steered
                    .set_last(ports.last)
                    .map_err(|source| ServerError::Steer { ports, source })?;
            }
            continue;
        }
        // Before binding: SO_REUSEPORT would let a TCP key join another process's group.
        if others.hold(key.protocol, key.addr, key.port) {
            return Err(ServerError::HeldByAnother { key: *key });
        }
        if let Some(ports) = ports {
            refuse_held(ports, ports.first)?;
        }
        let bind_error = |source| ServerError::Bind { key: *key, source };
        let steer = |socket: BorrowedFd<'_>| match (steering, ports) {
            (Some(steering), Some(ports)) => steering
                .steer(&ports, socket)
                .map(Some)
                .map_err(|source| ServerError::Steer { ports, source }),
            _ => Ok(None),
        };
        // The first socket of a TCP key's reuseport group stands for the group: the
        // kernel picks the member after a steered lookup as after its own.
        let steered = if is_tcp(binding) {
            let sockets = listener::bind_tcp(key, workers).map_err(bind_error)?;
            let steered = steer(sockets[0].as_fd())?;
            fresh.tcp.insert(*key, sockets);
            steered
        } else {
            let socket = match ports {
                Some(_) => listener::bind_udp_range(key),
                None => listener::bind_udp(key),
            }
            .map_err(bind_error)?;
            let steered = steer(socket.as_fd())?;
            fresh.udp.insert(*key, socket);
            steered
        };
        if let Some(steered) = steered {
            fresh.steered.insert(*key, steered);
        }
    }
    Ok(fresh)
}

/// Refuses a steered range when another socket listens on one of its ports above
/// `from`, as binding that port alone would fail (see `first_held`).
fn refuse_held(ports: SteeredPorts, from: u16) -> Result<(), ServerError> {
    match first_held(&SteeredPorts {
        first: from,
        ..ports
    }) {
        Some(port) => Err(ServerError::Bind {
            key: ListenKey {
                protocol: ports.protocol,
                addr: ports.addr,
                port,
            },
            source: std::io::ErrorKind::AddrInUse.into(),
        }),
        None => Ok(()),
    }
}
