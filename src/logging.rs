//! Log output: tracing to stderr, filtered by `-v`/`-q` or `DYNHOSTD_LOG` (see [`parse_filter`]
//! for what it accepts).
//! Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>` for
//! errors, `<4>` warnings, `<6>` info, `<7>` debug and trace), which journald turns into the
//! entry's level, and carries no timestamp or colours of our own: the journal adds both.
//!
//! The filter is tracing-subscriber's `Targets`, not its `EnvFilter`: `EnvFilter` brings a regex
//! engine (about 250 KB of a 2.5 MB router binary) for span and field filters nobody needs to
//! follow one agent.

use std::fmt;
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// The environment variable that sets the filter when neither `-v` nor `-q` is given.
pub const ENV: &str = "DYNHOSTD_LOG";

/// The level names a directive may use, for error messages.
const LEVELS: &str = "off, error, warn, info, debug, trace";

/// A `DYNHOSTD_LOG` value that is not a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{ENV}: not valid UTF-8")]
    NotUnicode,
    #[error("{ENV}={value:?}: `{directive}`: {why}")]
    Directive {
        value: String,
        directive: String,
        why: String,
    },
}

/// The sd-daemon(3) priority prefix for a tracing level.
pub fn journal_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Starts each line as its destination wants it, then delegates the rest (tracing's full
/// format without a time): under journald the sd-daemon priority `<N>` (journald stamps lines
/// itself), elsewhere a UTC timestamp. One formatter type for both, so the formatting and
/// subscriber code is compiled once, not once per destination.
struct LineStart<F> {
    journal: bool,
    inner: F,
}

impl<S, N, F> FormatEvent<S, N> for LineStart<F>
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
        if self.journal {
            write!(writer, "<{}>", journal_priority(event.metadata().level()))?;
        } else {
            SystemTime.format_time(&mut writer)?;
            writer.write_char(' ')?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Parses a `DYNHOSTD_LOG` value: comma-separated directives, each a bare `LEVEL` (the default
/// for every target) or `TARGET=LEVEL` (that target and the modules under it, e.g.
/// `dynhostd::wan`). LEVEL is one of off, error, warn, info, debug, trace, in any case. Spaces
/// around directives and empty ones (a trailing comma) are ignored; an empty value is info.
///
/// Anything else is an error rather than a guess: a bare word that is not a level (`degub`)
/// would otherwise be taken as a target name and silence everything else, and span or field
/// filters (`target[span{field=x}]=debug`, EnvFilter's syntax) are not supported.
pub fn parse_filter(value: &str) -> Result<Targets, FilterError> {
    let bad = |directive: &str, why: String| FilterError::Directive {
        value: value.to_string(),
        directive: directive.to_string(),
        why,
    };
    let level = |directive: &str, word: &str| {
        word.trim().parse::<LevelFilter>().map_err(|_| {
            bad(
                directive,
                format!("`{}` is not a level ({LEVELS})", word.trim()),
            )
        })
    };
    if value.trim().is_empty() {
        return Ok(Targets::new().with_default(LevelFilter::INFO));
    }
    let mut targets = Targets::new();
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if directive.contains(['[', ']', '{', '}']) {
            return Err(bad(
                directive,
                "span and field filters are not supported; use TARGET=LEVEL".into(),
            ));
        }
        match directive.split_once('=') {
            None => {
                let lvl = directive.parse::<LevelFilter>().map_err(|_| {
                    bad(
                        directive,
                        format!(
                            "not a level ({LEVELS}); for a target's level write `{directive}=LEVEL`"
                        ),
                    )
                })?;
                targets = targets.with_default(lvl);
            }
            Some((target, word)) => {
                let target = target.trim();
                let valid = !target.is_empty()
                    && target.split("::").all(|p| {
                        !p.is_empty()
                            && p.chars()
                                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                    });
                if !valid {
                    return Err(bad(
                        directive,
                        format!("`{target}` is not a target (a module path such as dynhostd::wan)"),
                    ));
                }
                targets = targets.with_target(target, level(directive, word)?);
            }
        }
    }
    Ok(targets)
}

/// The filter: `-v` debug, `-vv` trace, `-q` warn, `-qq` error (these ignore `DYNHOSTD_LOG`);
/// else `DYNHOSTD_LOG` as [`parse_filter`] reads it; else info.
pub fn filter(verbose: u8, quiet: u8) -> Result<Targets, FilterError> {
    let level = match (verbose, quiet) {
        (0, 0) => {
            return match std::env::var_os(ENV) {
                None => Ok(Targets::new().with_default(LevelFilter::INFO)),
                Some(v) => parse_filter(v.to_str().ok_or(FilterError::NotUnicode)?),
            };
        }
        (1, _) => LevelFilter::DEBUG,
        (_, 0) => LevelFilter::TRACE,
        (_, 1) => LevelFilter::WARN,
        _ => LevelFilter::ERROR,
    };
    Ok(Targets::new().with_default(level))
}

/// Installs the global subscriber, or says why `DYNHOSTD_LOG` can't be used (nothing is
/// installed then: the caller reports it and exits).
pub fn init(verbose: u8, quiet: u8) -> Result<(), FilterError> {
    let targets = filter(verbose, quiet)?;
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = !journal && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .event_format(LineStart {
            journal,
            inner: format().without_time().with_target(false).with_ansi(ansi),
        });
    Registry::default().with(layer.with_filter(targets)).init();
    Ok(())
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

    fn allows(t: &Targets, target: &str, level: Level) -> bool {
        t.would_enable(target, &level)
    }

    #[test]
    fn documented_values_filter_as_documented() {
        let t = parse_filter("dynhostd=debug").unwrap();
        assert!(allows(&t, "dynhostd::agent", Level::DEBUG));
        assert!(!allows(&t, "dynhostd::agent", Level::TRACE));
        assert!(!allows(&t, "rustls::client", Level::ERROR));

        let t = parse_filter("warn,dynhostd::wan=trace").unwrap();
        assert!(allows(&t, "dynhostd::wan::netlink", Level::TRACE));
        assert!(!allows(&t, "dynhostd::agent", Level::INFO));
        assert!(allows(&t, "dynhostd::agent", Level::WARN));
        assert!(allows(&t, "hyper_util::client", Level::WARN));

        let t = parse_filter(" DEBUG , ").unwrap();
        assert!(allows(&t, "anything", Level::DEBUG));
        assert!(!allows(&t, "anything", Level::TRACE));

        let t = parse_filter("off").unwrap();
        assert!(!allows(&t, "dynhostd", Level::ERROR));

        let t = parse_filter("").unwrap();
        assert!(allows(&t, "dynhostd", Level::INFO));
        assert!(!allows(&t, "dynhostd", Level::DEBUG));
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable_and_the_directive() {
        for (value, directive, hint) in [
            ("degub", "degub", "not a level"),
            (
                "info,dynhostd=loud",
                "dynhostd=loud",
                "`loud` is not a level",
            ),
            ("=debug", "=debug", "is not a target"),
            (
                "dynhostd[run]=debug",
                "dynhostd[run]=debug",
                "span and field",
            ),
            ("dyn host=debug", "dyn host=debug", "is not a target"),
            ("a=b=c", "a=b=c", "`b=c` is not a level"),
        ] {
            let e = parse_filter(value).unwrap_err().to_string();
            assert!(e.starts_with("DYNHOSTD_LOG="), "{value}: {e}");
            assert!(e.contains(&format!("`{directive}`")), "{value}: {e}");
            assert!(e.contains(hint), "{value}: {e}");
        }
    }
}
