//! UDP forwarding. A flow is one client address and port talking to one listener; each
//! flow has its own connected upstream socket, so the origin's replies find their client.
//! Flows end after `udp_idle_timeout` without a datagram either way. A rule holds at most
//! `max_flows` of them and a client at most `max_connections_per_client`; a new flow
//! beyond either evicts the least recently active flow (of the rule, or of that client),
//! counted, so a flood from one host recycles its own flows and never locks others out.
//! Rules, balancing, session persistence and metrics are the TCP side's; UDP origins get
//! no active health check (UDP has no handshake to probe).
//!
//! # Layout
//! - [`accept_proxy`]: PROXY v2 / SPP headers from a trusted upstream (`accept_proxy`).
//! - [`listener`]: the receive loop: flow lookup or opening, header in front, send upstream.
//! - [`flow`]: a flow and the per-listener flow table with idle expiry.
//! - [`upstream`]: the flow's upstream socket and the task relaying replies to the client.
//! - [`client_ip`]: pass-client-IP modes for datagrams (PROXY v2 first, SPP every, off).
//!
//! The listening socket, which learns each datagram's destination address, is
//! `toa_pktinfo::ListenSocket` (bound in `crate::listener`).
//! Flows, datagrams and drops per rule are counted in [`crate::metrics`]; a rule's flows
//! by activity, for eviction at its limits, are kept with its limits (`crate::limit`),
//! which outlive reloads.

pub mod accept_proxy;
pub mod client_ip;
pub(crate) mod flow;
pub(crate) mod listener;
pub(crate) mod upstream;

pub use client_ip::{DatagramWriter, writer_for};
