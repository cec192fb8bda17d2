//! toa-proxy — the edge side of toa: an L4 proxy in the spirit of HAProxy's `mode tcp`.
//!
//! It accepts client connections on the ports its rules list, picks an origin (balancing,
//! session persistence, health), opens the upstream connection while passing the client's
//! address (TOA option, PROXY v1/v2 header, or nothing), and copies bytes both ways.
//! The `toa` binary (`toa proxy`) only parses the command line and calls [`serve`].
//! The public API is what its users call: [`serve`] with [`ServeOptions`], the TOA tagger
//! traits, the [`PortSteering`] seam (and what it steers, [`steered_ranges`]), the
//! descriptor count `toa proxy check` makes ([`listening_sockets`], [`worker_count`],
//! [`hard_open_file_limit`]), [`ServerError`], and the [`admin`] socket's client with its
//! commands (`toa proxy reload`, `toa proxy origin`, the states of [`origin_state`]);
//! everything else is crate-private.
//!
//! Below it: the config it runs is `toa-config`'s (parsed and validated there), the UDP
//! listening socket `toa-pktinfo`'s, wire codecs `toa-wire`'s. The eBPF TOA writer is not a
//! dependency: the binary supplies it through `client_ip::UpstreamTaggerFactory`
//! (toa-loader's `EdgeWriter`), so this crate builds without aya or the BPF toolchain.
//! EdgeOne rule-list conversion is in `toa-edgeone`; the reference UDP origin behind
//! `toa spp-echo` is in `toa-spp-echo`; neither depends on this crate.
//!
//! # Layout
//! - `rules`: a validated rule turned into the listener keys it binds and the origin ports they map to.
//! - `listener`: binding listeners (dual stack by default) that survive reloads.
//! - `accept_proxy`: PROXY v1/v2 headers accepted from trusted upstreams (`accept_proxy`).
//! - `balance`: one file per algorithm behind `balance::Selector`.
//! - `health`: active connect checks and passive marking.
//! - [`origin_state`]: an origin's set state per rule (ready, drain, maint), kept across
//!   reloads; `origin_admin`: setting it and listing origins for the admin socket.
//! - `limit`: connection and flow limits that stay exact across reloads.
//! - `upstream`: opening one upstream connection (source addresses, the mode, connect).
//! - `client_ip`: one file per pass-client-IP mode behind `client_ip::ClientIpWriter`.
//! - [`access_log`]: the access log line of a connection or flow (text or JSON).
//! - `forward`: moving bytes both ways (splice or bounded buffers, half-close, idle timeout).
//! - `metrics`: counters and the Prometheus text endpoint.
//! - `udp`: UDP flows, their upstream sockets and the datagram modes (PROXY v2, SPP).
//! - `server`: the running proxy: listeners, routes, reload and drain; `workers` runs the TCP
//!   accept workers (a thread each, SO_REUSEPORT sockets); `runtime` builds each
//!   rule's data-path state, `connection` handles one client.
//! - `process` ([`serve`]): the foreground process: signals (and `watch`ed config changes) drive reload
//!   and drain; `notify` tells a systemd supervisor; [`admin`]: the admin socket
//!   (`toa proxy reload`) and its client.
//! - `state`: what the data path reads (`Shared`, `Route`, `RuleRuntime`, [`ServerError`]),
//!   below everything that uses it; `labels`: label enums.
//! - `resolve`: host-name origins looked up again while running (`toa_config::dns`).
//! - `open`: what a (re)load opens before anything changes (listeners, steered ranges);
//!   `holders`: which ports other processes hold (refused, not shared).
//! - `steer`: the port-range steerer seam (sk_lookup, supplied by the binary);
//!   `descriptors`: whether the listeners a (re)load opens fit under the open-file limit.
//!
//! Modules depend one way (`scripts/module-cycles` checks it): `server` sits at the top and
//! only `process` uses it. Every module named `accept_proxy` reads PROXY headers (TCP,
//! UDP, and toa-config's); the accept loops are `workers`.

pub(crate) mod accept_proxy;
pub mod access_log;
pub mod admin;
pub(crate) mod balance;
pub(crate) mod client_ip;
mod connection;
mod descriptors;
pub(crate) mod error;
pub(crate) mod forward;
pub(crate) mod health;
mod holders;
mod labels;
pub(crate) mod limit;
pub(crate) mod listener;
pub(crate) mod metrics;
pub(crate) mod notify;
mod open;
pub(crate) mod origin_admin;
pub mod origin_state;
pub(crate) mod process;
pub(crate) mod resolve;
pub(crate) mod rules;
mod runtime;
pub(crate) mod server;
mod state;
mod steer;
mod throttle;
pub(crate) mod udp;
mod upstream;
pub(crate) mod watch;
mod workers;

pub use client_ip::{EdgeTotals, UpstreamTagger, UpstreamTaggerFactory};
pub use descriptors::{RESERVED as RESERVED_DESCRIPTORS, TooFewDescriptors, hard_open_file_limit};
pub use process::{ServeOptions, serve};
pub use rules::{listening_sockets, steered_ranges};
pub use server::ServerError;
pub use steer::{PortSteering, SteeredPorts, SteeredRange};
pub use workers::worker_count;
