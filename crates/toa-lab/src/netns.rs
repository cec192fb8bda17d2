//! [`Netns`]: one network namespace of a lab, and running commands in it.

use crate::lab::wait_until;
use anyhow::bail;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::time::Duration;

/// A network namespace made by [`crate::Lab::netns`]; the lab deletes it.
#[derive(Debug, Clone)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Runs `cmd` to completion in this namespace and returns its stdout;
    /// a non-zero exit is an error carrying stderr.
    pub fn run(&self, cmd: &[&str]) -> anyhow::Result<String> {
        let out = self.output(cmd)?;
        if !out.status.success() {
            bail!(
                "`{}` in {} failed ({}): {}{}",
                cmd.join(" "),
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `cmd` to completion in this namespace, whatever its exit status.
    pub fn output(&self, cmd: &[&str]) -> anyhow::Result<Output> {
        Ok(Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()?)
    }

    /// Waits until something listens on `port` (TCP, or UDP if `udp`), for at
    /// most `timeout` [`crate::scaled`].
    pub fn wait_listening(&self, port: u16, udp: bool, timeout: Duration) -> anyhow::Result<()> {
        wait_until(timeout, &format!("port {port} in {}", self.name), || {
            self.listening(port, udp).unwrap_or(false)
        })
    }

    /// Whether a socket listens on `port` (TCP) or is bound to it (UDP), read
    /// in-process from the namespace's /proc/net tables. Polling with
    /// `ip netns exec … ss` forked two processes every 25 ms; under QEMU's
    /// software emulation (scripts/kernel-test) that took the CPU the server
    /// being waited for needed to start, and waits ran into their timeouts.
    fn listening(&self, port: u16, udp: bool) -> anyhow::Result<bool> {
        let ns = File::open(format!("/run/netns/{}", self.name))?;
        let tables = if udp {
            ["udp", "udp6"]
        } else {
            ["tcp", "tcp6"]
        };
        // setns moves only the calling thread, so a short-lived one enters.
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid descriptor, affecting only this thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!(
                        "setns into {}: {}",
                        self.name,
                        std::io::Error::last_os_error()
                    );
                }
                for table in tables {
                    // /proc/thread-self/net is this thread's namespace, unlike /proc/self/net.
                    match fs::read_to_string(format!("/proc/thread-self/net/{table}")) {
                        Ok(text) if table_has_port(&text, port, udp) => return Ok(true),
                        Ok(_) => {}
                        // No tcp6/udp6 table when IPv6 is disabled.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(false)
            })
            .join()
            .unwrap_or_else(|_| bail!("the netns reader thread panicked"))
        })
    }
}

/// Whether a /proc/net/{tcp,tcp6,udp,udp6} table has a socket on local
/// `port` in the state `ss -l` lists: LISTEN (0A) for TCP, unconnected
/// (07, TCP_CLOSE) for UDP.
fn table_has_port(table: &str, port: u16, udp: bool) -> bool {
    let state = if udp { "07" } else { "0A" };
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = fields.next().unwrap_or_default();
        let st = fields.nth(1).unwrap_or_default();
        let local_port = local.rsplit(':').next().unwrap_or_default();
        st == state && u16::from_str_radix(local_port, 16) == Ok(port)
    })
}

#[cfg(test)]
mod tests {
    use super::table_has_port;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:1F41 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  5: 00000000000000000000000000000000:2710 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0 0
";

    #[test]
    fn listening_tcp_port_is_found_and_established_one_is_not() {
        assert!(table_has_port(TCP, 8000, false));
        assert!(
            !table_has_port(TCP, 8001, false),
            "established, not listening"
        );
        assert!(!table_has_port(TCP, 9000, false));
    }

    #[test]
    fn bound_udp6_port_is_found() {
        assert!(table_has_port(UDP6, 10000, true));
        assert!(
            !table_has_port(UDP6, 10000, false),
            "a TCP wait ignores state 07"
        );
    }
}
