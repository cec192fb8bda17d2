//! The log output of the long-running subcommands (`toa proxy`, `toa origin exporter`):
//! tracing to stderr, `RUST_LOG` or info, colour only on a terminal. JSON access log
//! lines (`access_log_format = "json"`) are written bare, one object per line.

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

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
        .event_format(BareJson(Format::default()))
        .try_init();
}

/// The default format, except that events of [`toa_proxy::access_log::JSON_TARGET`] are
/// their message alone: a JSON object a log shipper can parse as it is.
struct BareJson(Format);

impl<S> FormatEvent<S, DefaultFields> for BareJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() != toa_proxy::access_log::JSON_TARGET {
            return self.0.format_event(ctx, writer, event);
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "{}", message.0)
    }
}

/// The `message` field of an event.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}
