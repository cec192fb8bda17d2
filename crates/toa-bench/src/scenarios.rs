//! The six scenarios of a round. Each measures every target back to back, so
//! ratios between targets are taken under the same conditions.

use crate::cases::*;
use crate::load::RrResult;
use crate::peers::{ClientIp, Service, Target};
use crate::procfs::{cgroup_pids, cpu_secs, fd_count, rss_bytes};
use crate::run::{Bench, Scenario};
use std::collections::BTreeSet;
use std::time::Duration;

/// Concurrency of the origin-cost rate cases and of the TTFB scenario's rate.
const ORIGIN_CONCURRENCY: usize = 16;

fn rr_values(r: &RrResult) -> Vec<(&'static str, f64)> {
    vec![
        ("conn_per_s", r.connections as f64 / r.secs),
        ("p50_us", r.latency.p50 as f64 / 1e3),
        ("p99_us", r.latency.p99 as f64 / 1e3),
        ("p999_us", r.latency.p999 as f64 / 1e3),
        ("errors", r.errors as f64),
        (
            "peer_is_client_pct",
            100.0 * r.peer_is_client as f64 / r.connections.max(1) as f64,
        ),
    ]
}

impl Bench {
    pub fn round(&mut self, round: usize) -> anyhow::Result<()> {
        let runs = |s| self.settings.runs(s);
        let (rate, bulk, memory) = (
            runs(Scenario::Rate),
            runs(Scenario::Bulk),
            runs(Scenario::Memory),
        );
        let (toa_cost, ttfb, origin_cost) = (
            runs(Scenario::ToaCost),
            runs(Scenario::Ttfb),
            runs(Scenario::OriginCost),
        );
        self.set_origin_toa(false)?;
        if rate {
            self.rate(round)?;
        }
        if bulk {
            self.bulk_throughput(round)?;
        }
        if memory {
            self.memory(round)?;
        }
        if self.peers.contains_key(&Target::Toa) {
            self.set_origin_toa(true)?;
            if toa_cost {
                self.toa_cost(round)?;
            }
            if ttfb {
                self.ttfb(round)?;
            }
        }
        if self.origin_toa && origin_cost {
            self.origin_cost(round)?;
        }
        self.set_origin_toa(false)
    }

    /// Short connections as in scenario 1, with the CPU time `cpu_of` (a peer's
    /// or the origin's processes) spent per connection when given.
    fn rr_measured(
        &mut self,
        t: Target,
        service: Service,
        mode: ClientIp,
        concurrency: usize,
        cpu_of: Option<BTreeSet<u32>>,
    ) -> anyhow::Result<Vec<(&'static str, f64)>> {
        let cpu0 = cpu_of.as_ref().map(cpu_secs);
        let r = self.rr(t, service, mode, concurrency)?;
        let cpu1 = cpu_of.as_ref().map(cpu_secs);
        let mut values = rr_values(&r);
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            values.push((
                "cpu_us_per_conn",
                (b - a) * 1e6 / r.connections.max(1) as f64,
            ));
        }
        Ok(values)
    }

    /// Scenario 1: Short connections at each concurrency, every target.
    fn rate(&mut self, round: usize) -> anyhow::Result<()> {
        for c in self.settings.concurrencies.clone() {
            for t in self.order(round) {
                let pids = self.peers.get(&t).map(|p| p.pids());
                let values = self.rr_measured(t, Service::Respond, ClientIp::Off, c, pids)?;
                self.push(RATE, t.name(), &case_c(c), round, &values);
            }
        }
        Ok(())
    }

    /// Scenario 2: Bulk upload; the proxy's CPU is read from /proc around the transfer.
    fn bulk_throughput(&mut self, round: usize) -> anyhow::Result<()> {
        for n in self.settings.streams.clone() {
            for t in self.order(round) {
                let pids = self.peers.get(&t).map(|p| p.pids());
                let cpu0 = pids.as_ref().map(cpu_secs);
                let r = self.bulk(t, n)?;
                // socat's per-connection child is counted once its parent reaps it.
                std::thread::sleep(Duration::from_millis(100));
                let cpu1 = pids.as_ref().map(cpu_secs);
                let gb = r.bytes as f64 / 1e9;
                let mut values = vec![("gbps", gb * 8.0 / r.secs), ("errors", r.errors as f64)];
                if let (Some(a), Some(b)) = (cpu0, cpu1) {
                    values.push(("cpu_s_per_gb", (b - a) / gb));
                }
                self.push(BULK, t.name(), &case_streams(n), round, &values);
            }
        }
        Ok(())
    }

    /// Scenario 3: RSS growth of a freshly started proxy holding N idle connections.
    /// Restarting first keeps memory pooled by earlier rounds out of the baseline.
    fn memory(&mut self, round: usize) -> anyhow::Result<()> {
        let case = format!("{} idle", self.settings.idle_connections);
        for t in self.order(round) {
            if t == Target::Direct || !t.holds_idle() {
                continue;
            }
            let mut peer = self
                .peers
                .remove(&t)
                .expect("ordered targets are running peers");
            peer.stop(&mut self.topo);
            let restarted = peer.start(&mut self.topo);
            self.peers.insert(t, peer);
            restarted?;
            std::thread::sleep(Duration::from_millis(300));
            let pids = self.peers[&t].pids();
            let (before, fds_before) = (rss_bytes(&pids), fd_count(&pids));
            let (holder, opened) = self.idle(t)?;
            // Let the proxy finish its per-connection setup before reading RSS.
            std::thread::sleep(Duration::from_millis(500));
            let pids = self.peers[&t].pids();
            let (after, fds_after) = (rss_bytes(&pids), fd_count(&pids));
            self.topo.lab.kill(&holder);
            let per_conn = after.saturating_sub(before) as f64 / opened.established.max(1) as f64;
            self.push(
                MEMORY,
                t.name(),
                &case,
                round,
                &[
                    ("kib_per_conn", per_conn / 1024.0),
                    ("baseline_mib", before as f64 / (1024.0 * 1024.0)),
                    ("established", opened.established as f64),
                    (
                        "fds_per_conn",
                        fds_after.saturating_sub(fds_before) as f64
                            / opened.established.max(1) as f64,
                    ),
                    ("errors", opened.errors as f64),
                ],
            );
        }
        Ok(())
    }

    /// Scenario 4: toa proxy with `pass_client_ip = toa` against `off`, origin consuming the option.
    fn toa_cost(&mut self, round: usize) -> anyhow::Result<()> {
        for c in self.settings.concurrencies.clone() {
            let mut modes = [(ClientIp::Off, TOA_OFF), (ClientIp::Toa, TOA_ON)];
            if round % 2 == 1 {
                modes.reverse();
            }
            let toas: Vec<Target> = self.peers.keys().copied().filter(|t| t.is_toa()).collect();
            for t in toas {
                for (mode, name) in modes {
                    let pids = Some(self.peers[&t].pids());
                    let values = self.rr_measured(t, Service::Respond, mode, c, pids)?;
                    self.push(TOA_COST, &toa_cost_row(t, name), &case_c(c), round, &values);
                }
            }
        }
        Ok(())
    }

    /// Scenario 5: The origin with `toa origin` loaded against not loaded: short-connection
    /// rate straight from the edge (no option to parse) and through toa proxy in
    /// TOA mode (option parsed), and ns per getpeername() on TOA connections.
    fn origin_cost(&mut self, round: usize) -> anyhow::Result<()> {
        let mut states = [(false, NOT_LOADED), (true, LOADED)];
        if round % 2 == 1 {
            states.reverse();
        }
        for (loaded, name) in states {
            self.set_origin_toa(loaded)?;
            let origin = Some(cgroup_pids(&self.origin_cgroup));
            let direct = self.rr_measured(
                Target::Direct,
                Service::Respond,
                ClientIp::Off,
                ORIGIN_CONCURRENCY,
                origin.clone(),
            )?;
            self.push(ORIGIN_COST, name, DIRECT_RATE, round, &direct);
            self.getpeername_cost(
                Target::Direct,
                ClientIp::Off,
                name,
                GETPEERNAME_DIRECT,
                round,
            )?;
            if self.peers.contains_key(&Target::Toa) {
                let proxied = self.rr_measured(
                    Target::Toa,
                    Service::Respond,
                    ClientIp::Toa,
                    ORIGIN_CONCURRENCY,
                    origin,
                )?;
                self.push(ORIGIN_COST, name, PROXIED_RATE, round, &proxied);
                self.getpeername_cost(
                    Target::Toa,
                    ClientIp::Toa,
                    name,
                    GETPEERNAME_PROXIED,
                    round,
                )?;
            }
        }
        Ok(())
    }

    /// ns per getpeername() as the origin measures it, one connection at a time.
    fn getpeername_cost(
        &mut self,
        t: Target,
        mode: ClientIp,
        state: &str,
        case: &str,
        round: usize,
    ) -> anyhow::Result<()> {
        let calls = self.rr(t, Service::Getpeername, mode, 1)?;
        let mut values = rr_values(&calls);
        values.push(("getpeername_ns", calls.getpeername_ns as f64));
        self.push(ORIGIN_COST, state, case, round, &values);
        Ok(())
    }

    /// Scenario 6: What the origin waits from accept() to the first request byte, with the
    /// client address from TOA (getpeername) or from a PROXY v2 header it parses.
    fn ttfb(&mut self, round: usize) -> anyhow::Result<()> {
        for c in [1, ORIGIN_CONCURRENCY] {
            let mut modes = [
                (ClientIp::Toa, Service::Respond, VIA_TOA),
                (ClientIp::Ppv2, Service::RespondPpv2, VIA_PPV2),
            ];
            if round % 2 == 1 {
                modes.reverse();
            }
            for (mode, service, name) in modes {
                let r = self.rr(Target::Toa, service, mode, c)?;
                let mut values = rr_values(&r);
                values.extend([
                    ("ttfb_p50_us", r.ttfb.p50 as f64 / 1e3),
                    ("ttfb_p99_us", r.ttfb.p99 as f64 / 1e3),
                    ("parse_ns", r.parse_ns as f64),
                    ("getpeername_ns", r.getpeername_ns as f64),
                ]);
                self.push(TTFB, name, &case_c(c), round, &values);
            }
        }
        Ok(())
    }
}
