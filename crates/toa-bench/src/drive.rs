//! Running `toa-bench load` from the lab's namespaces for a [`Bench`]: short
//! connections, bulk transfers and idle-connection holders, the samples they
//! give, and the order peers take within a round.

use crate::load::{BulkResult, IdleResult, RrResult};
use crate::peers::{ClientIp, Service, Side, Target};
use crate::results::Sample;
use crate::run::{Bench, check_interrupted};
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use toa_lab::{Netns, Spawned};

impl Bench {
    fn ns(&self, side: Side) -> &Netns {
        match side {
            Side::Client => &self.topo.client,
            Side::Edge => &self.topo.edge,
        }
    }

    /// Runs `toa-bench load <args>` from `side` and parses its JSON line.
    fn load<T: serde::de::DeserializeOwned>(
        &self,
        side: Side,
        args: &[String],
    ) -> anyhow::Result<T> {
        check_interrupted()?;
        let mut argv = vec![self.exe.display().to_string(), "load".into()];
        argv.extend(args.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.ns(side).run(&argv)?;
        serde_json::from_str(out.trim()).with_context(|| format!("parsing load output {out:?}"))
    }

    pub fn rr(
        &self,
        target: Target,
        service: Service,
        mode: ClientIp,
        concurrency: usize,
    ) -> anyhow::Result<RrResult> {
        self.rr_for(target, service, mode, concurrency, self.settings.rr_ms)
    }

    pub fn rr_for(
        &self,
        target: Target,
        service: Service,
        mode: ClientIp,
        concurrency: usize,
        ms: u64,
    ) -> anyhow::Result<RrResult> {
        let (side, addr) = target.endpoint(service, mode);
        self.load(
            side,
            &[
                "rr".into(),
                "--target".into(),
                addr.to_string(),
                "--concurrency".into(),
                concurrency.to_string(),
                "--duration-ms".into(),
                ms.to_string(),
            ],
        )
    }

    pub fn bulk(&self, target: Target, streams: usize) -> anyhow::Result<BulkResult> {
        self.bulk_for(target, streams, self.settings.bulk_ms)
    }

    pub fn bulk_for(&self, target: Target, streams: usize, ms: u64) -> anyhow::Result<BulkResult> {
        let (side, addr) = target.endpoint(Service::Sink, ClientIp::Off);
        self.load(
            side,
            &[
                "bulk".into(),
                "--target".into(),
                addr.to_string(),
                "--streams".into(),
                streams.to_string(),
                "--duration-ms".into(),
                ms.to_string(),
            ],
        )
    }

    /// Starts the idle-connection holder and waits until it reports its connections open.
    pub fn idle(&mut self, target: Target) -> anyhow::Result<(Spawned, IdleResult)> {
        let (side, addr): (Side, SocketAddr) = target.endpoint(Service::Hold, ClientIp::Off);
        let exe = self.exe.display().to_string();
        let (count, target_addr) = (self.settings.idle_connections.to_string(), addr.to_string());
        let ns = self.ns(side).clone();
        let holder = self.topo.lab.spawn(
            &ns,
            None,
            &[
                &exe,
                "load",
                "idle",
                "--target",
                &target_addr,
                "--count",
                &count,
                "--hold-ms",
                "300000",
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            check_interrupted()?;
            let log = std::fs::read_to_string(&holder.log).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.starts_with('{')) {
                return Ok((holder, serde_json::from_str(line)?));
            }
            if Instant::now() > deadline {
                self.topo.lab.kill(&holder);
                bail!(
                    "idle connections to {} not open after 120 s: {log}",
                    target.name()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn push(
        &mut self,
        scenario: &str,
        target: &str,
        case: &str,
        round: usize,
        values: &[(&str, f64)],
    ) {
        self.samples.push(Sample {
            scenario: scenario.into(),
            target: target.into(),
            case: case.into(),
            round,
            // A value that cannot be computed (no bytes moved) is left out, not stored as NaN.
            values: values
                .iter()
                .filter(|(_, v)| v.is_finite())
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        });
    }

    /// Targets in a per-round rotated order, so no peer always runs first.
    pub fn order(&self, round: usize) -> Vec<Target> {
        let mut t: Vec<Target> = std::iter::once(Target::Direct)
            .chain(self.peers.keys().copied())
            .collect();
        let n = t.len();
        t.rotate_left(round % n);
        t
    }
}
