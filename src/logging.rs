//! Log output: tracing to stderr, filtered by `-v`/`-q` or `DYNHOSTD_LOG` (EnvFilter syntax).
//! Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>` for
//! errors, `<4>` warnings, `<6>` info, `<7>` debug and trace), which journald turns into the
//! entry's level, and carries no timestamp or colours of our own: the journal adds both.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::registry::LookupSpan;

/// The sd-daemon(3) priority prefix for a tracing level.
pub fn journal_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each line with `<N>` (sd-daemon's convention) and delegates the rest.
struct JournalPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", journal_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The filter: `-v` debug, `-vv` trace, `-q` warn, `-qq` error; else `DYNHOSTD_LOG`; else info.
pub fn filter(verbose: u8, quiet: u8) -> EnvFilter {
    match (verbose, quiet) {
        (0, 0) => {
            EnvFilter::try_from_env("DYNHOSTD_LOG").unwrap_or_else(|_| EnvFilter::new("info"))
        }
        (1, _) => EnvFilter::new("debug"),
        (_, 0) => EnvFilter::new("trace"),
        (_, 1) => EnvFilter::new("warn"),
        _ => EnvFilter::new("error"),
    }
}

/// Installs the global subscriber.
pub fn init(verbose: u8, quiet: u8) {
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbose, quiet))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if journal {
        builder
            .event_format(JournalPrefix(
                format().without_time().with_target(false).with_ansi(false),
            ))
            .init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        assert_eq!(journal_priority(&Level::ERROR), 3);
        assert_eq!(journal_priority(&Level::WARN), 4);
        assert_eq!(journal_priority(&Level::INFO), 6);
        assert_eq!(journal_priority(&Level::DEBUG), 7);
        assert_eq!(journal_priority(&Level::TRACE), 7);
    }
}
