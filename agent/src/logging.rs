//! Logging: `tracing` events to stderr (stdout stays for reports), filtered by `--log-level`, else
//! `RUST_LOG`, else `warn` (`info` for the daemon). When stderr is connected to the journal (systemd
//! sets `JOURNAL_STREAM`), lines carry a `<N>` syslog priority prefix and no timestamp, so journald
//! stores each at its real priority.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::{
    EnvFilter,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

/// Installs the global subscriber; `default` is the filter when neither `filter` nor `RUST_LOG` is
/// given.
pub fn init(filter: Option<&str>, default: &str) {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).unwrap_or_else(|_| EnvFilter::new(default)),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        // A closed stderr (journald stopped: its stream socket goes away) must not matter. By
        // default tracing-subscriber reports a failed write with `eprintln!`, which panics when
        // stderr itself is the broken pipe and took the daemon down with it.
        .log_internal_errors(false);
    let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
        builder.event_format(JournalFormat).try_init()
    } else {
        builder.try_init()
    };
}

/// `<3>message key=value ...` lines for journald.
struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            Level::DEBUG | Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
