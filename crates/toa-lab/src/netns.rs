//! [`Netns`]: one network namespace of a lab, and running commands in it.

use crate::lab::wait_until;
use anyhow::bail;
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

    /// Waits until something listens on `port` (TCP, or UDP if `udp`).
    pub fn wait_listening(&self, port: u16, udp: bool, timeout: Duration) -> anyhow::Result<()> {
        let filter = format!("sport = :{port}");
        let flags = if udp { "-Hlun" } else { "-Hltn" };
        wait_until(timeout, &format!("port {port} in {}", self.name), || {
            self.run(&["ss", flags, &filter])
                .is_ok_and(|out| !out.trim().is_empty())
        })
    }
}
