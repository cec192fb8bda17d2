//! `--watch-config`: notice when the config file's content changes, so the proxy
//! reloads it the same way as on SIGHUP.
//!
//! It polls the content instead of using inotify on purpose. A Kubernetes ConfigMap
//! volume shows the file as `proxy.toml -> ..data/proxy.toml` and updates it by
//! atomically renaming a new `..data` symlink over the old one; the watched inode never
//! changes, and editors replace files by rename too. Reading through the path every
//! [`POLL_INTERVAL`] sees all of these, costs one small read, and cannot miss an event.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the file is read. A ConfigMap change takes the kubelet a minute or so to
/// reach the pod; one more second is noise, and a read per second is free.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long a changed content must stay the same before it is loaded: a file rewritten
/// in place (truncated, then written) can be read half-written; two reads this far apart
/// that agree cannot both catch one small write midway.
pub const SETTLE: Duration = Duration::from_millis(200);

/// The config file and the content the proxy last loaded (or tried to load) from it.
#[derive(Debug)]
pub struct ConfigWatch {
    path: PathBuf,
    seen: Option<Vec<u8>>,
    ticks: tokio::time::Interval,
}

impl ConfigWatch {
    /// Watches `path`, taking its content now as the running config's.
    pub async fn new(path: &Path) -> ConfigWatch {
        let mut ticks = tokio::time::interval(POLL_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ConfigWatch {
            path: path.to_path_buf(),
            seen: read(path).await,
            ticks,
        }
    }

    /// Waits until the content differs from the last one seen and has settled, then
    /// remembers it. Cancel-safe: dropping the future loses at most one poll.
    pub async fn changed(&mut self) {
        loop {
            self.ticks.tick().await;
            // Missing or unreadable (mid-rename, or removed): not a change. The running
            // config stays until a readable file with new content appears.
            let Some(mut content) = read(&self.path).await else {
                continue;
            };
            if self.seen.as_ref() == Some(&content) {
                continue;
            }
            loop {
                tokio::time::sleep(SETTLE).await;
                match read(&self.path).await {
                    Some(again) if again == content => break,
                    Some(again) => content = again,
                    None => break,
                }
            }
            if self.seen.as_ref() != Some(&content) {
                self.seen = Some(content);
                return;
            }
        }
    }

    /// Takes the file's current content as seen (a SIGHUP reload is about to load it),
    /// so the same content does not trigger a second reload.
    pub async fn mark_seen(&mut self) {
        if let Some(content) = read(&self.path).await {
            self.seen = Some(content);
        }
    }
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}
