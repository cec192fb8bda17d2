//! The log output of the long-running subcommands (`toa proxy`, `toa origin exporter`):
//! tracing to stderr, `RUST_LOG` or info, colour only on a terminal.

use std::io::IsTerminal;

/// Installs the subscriber. Colour codes only when stderr is a terminal: in the journal,
/// `kubectl logs` or a file they would be bytes in every line.
pub fn init() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
