//! Log output: tracing to stderr, filtered by `-v`/`-q` or `DYNHOSTD_LOG` (see [`parse_filter`]
//! for what it accepts).
//! Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog priority (`<3>` for
//! errors, `<4>` warnings, `<6>` info, `<7>` debug and trace), which journald turns into the
//! entry's level, and carries no timestamp or colours of our own: the journal adds both.
//!
//! The filter is tracing-subscriber's `Targets`, not its `EnvFilter`: `EnvFilter` brings a regex
//! engine (about 250 KB of a 2.5 MB router binary) for span and field filters nobody needs to
//! follow one agent.
//!
//! Whatever a client or a server sends can end up in a log line, and a router's log is a few
//! MB of RAM or flash. So the lines are bounded here, once for every call site: a field's value
//! (the message included) longer than [`MAX_FIELD_BYTES`] is cut, saying how much was cut; and
//! a warning that repeats from one place is let through [`WARN_BURST`] times per
//! [`WARN_WINDOW`], the rest counted and summed up in one line when that warning next comes
//! after the window. The count is kept and judged only when a warning arrives: no timer, no
//! wake-up of an idle agent.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::{DefaultVisitor, FormatEvent, FormatFields, Writer};
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

/// The most of one field's value a log line carries. Our own messages and fields are far
/// shorter; what is longer came from outside (a control request's host list, say).
pub const MAX_FIELD_BYTES: usize = 1024;

/// Warnings from one call site let through per [`WARN_WINDOW`].
pub const WARN_BURST: u32 = 10;
pub const WARN_WINDOW: Duration = Duration::from_secs(60);

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
/// subscriber code is compiled once, not once per destination. Warnings go through the
/// [`Throttle`] first.
struct LineStart<F> {
    journal: bool,
    inner: F,
    throttle: Throttle,
}

impl<F> LineStart<F> {
    fn start(&self, writer: &mut Writer<'_>, level: &Level) -> fmt::Result {
        if self.journal {
            write!(writer, "<{}>", journal_priority(level))
        } else {
            SystemTime.format_time(writer)?;
            writer.write_char(' ')
        }
    }
}

/// One call site's warnings in the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    logged: u32,
    left_out: u32,
}

/// What to do with one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Log it; first say that `left_out` like it were not logged over `over` before it.
    Log { left_out: u32, over: Duration },
    /// Too many from this call site in this window: count it only.
    Drop,
}

/// Per call site, how many warnings went by in the current window. Call sites are static, so
/// the map is bounded by the number of `warn!` lines in the program.
#[derive(Debug)]
struct Throttle<K = Identifier>(Mutex<HashMap<K, Window>>);

impl<K> Default for Throttle<K> {
    fn default() -> Self {
        Throttle(Mutex::new(HashMap::new()))
    }
}

impl<K: std::hash::Hash + Eq> Throttle<K> {
    /// Judges one warning from `site` at `now`; a window that ended is closed only here, when
    /// the next warning from the site comes.
    fn pass(&self, site: K, now: Instant) -> Pass {
        let mut sites = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = Window {
            start: now,
            logged: 0,
            left_out: 0,
        };
        let w = sites.entry(site).or_insert(fresh);
        let over = now.saturating_duration_since(w.start);
        let mut left_out = 0;
        if over >= WARN_WINDOW {
            left_out = w.left_out;
            *w = fresh;
        }
        if w.logged < WARN_BURST {
            w.logged += 1;
            Pass::Log { left_out, over }
        } else {
            w.left_out = w.left_out.saturating_add(1);
            Pass::Drop
        }
    }
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
        let level = event.metadata().level();
        if *level == Level::WARN {
            match self
                .throttle
                .pass(event.metadata().callsite(), Instant::now())
            {
                // Nothing written: the layer then writes an empty line, which is no write at all.
                Pass::Drop => return Ok(()),
                Pass::Log { left_out: 0, .. } => {}
                Pass::Log { left_out, over } => {
                    self.start(&mut writer, level)?;
                    writeln!(
                        writer,
                        " WARN {left_out} more of the next warning were not logged in the {}s \
                         before it (at most {WARN_BURST} a minute from one place)",
                        over.as_secs()
                    )?;
                }
            }
        }
        self.start(&mut writer, level)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// Formats fields as tracing's default does, each value cut at [`MAX_FIELD_BYTES`].
struct CappedFields;

impl<'a> MakeVisitor<Writer<'a>> for CappedFields {
    type Visitor = CappedVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> CappedVisitor<'a> {
        CappedVisitor(DefaultVisitor::new(target, true))
    }
}

/// tracing's default visitor, handed each value through [`Capped`]. (`record_str` and
/// `record_error` are routed here, as the default visitor does, so every value is capped.)
struct CappedVisitor<'a>(DefaultVisitor<'a>);

impl Visit for CappedVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The message is written as it is, other strings quoted: as the default visitor does.
        if field.name() == "message" {
            self.0
                .record_debug(field, &Capped(&format_args!("{value}")));
        } else {
            self.0.record_debug(field, &Capped(&value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The error's own text: our error types already end it with their causes.
        self.0
            .record_debug(field, &Capped(&format_args!("{value}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.record_debug(field, &Capped(value));
    }
}

impl VisitOutput<fmt::Result> for CappedVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

impl VisitFmt for CappedVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.0.writer()
    }
}

/// A value written up to [`MAX_FIELD_BYTES`] (at a character boundary), then a marker saying
/// how many bytes were cut. Nothing is allocated: the rest is only counted.
struct Capped<'a>(&'a dyn fmt::Debug);

impl fmt::Debug for Capped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cap = Cap {
            out: f,
            left: MAX_FIELD_BYTES,
            cut: 0,
        };
        fmt::write(&mut cap, format_args!("{:?}", self.0))?;
        match cap.cut {
            0 => Ok(()),
            cut => write!(f, "…[{cut} more bytes not logged]"),
        }
    }
}

struct Cap<'a, 'b> {
    out: &'a mut fmt::Formatter<'b>,
    left: usize,
    cut: usize,
}

impl fmt::Write for Cap<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if s.len() <= self.left {
            self.left -= s.len();
            return self.out.write_str(s);
        }
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.left = 0;
        self.cut += s.len() - end;
        self.out.write_str(&s[..end])
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
    if split_streams() {
        let writer = split(std::io::stderr, std::io::stdout);
        Registry::default()
            .with(layer(writer, journal, ansi).with_filter(targets))
            .init();
    } else {
        let layer = layer(std::io::stderr, journal, ansi);
        Registry::default().with(layer.with_filter(targets)).init();
    }
    Ok(())
}

/// `DYNHOSTD_LOG_STREAMS=split`: warnings and errors on stderr, the rest on stdout. For a
/// supervisor that takes a line's priority from the stream it came on: OpenWrt's procd logs
/// stdout as `daemon.info` and stderr as `daemon.err`, nothing finer (contrib/openwrt's init
/// script sets it). Anything else keeps every line on stderr.
fn split_streams() -> bool {
    std::env::var_os(STREAMS_ENV).is_some_and(|v| v == "split")
}

pub const STREAMS_ENV: &str = "DYNHOSTD_LOG_STREAMS";

/// WARN and ERROR to `err`, the other levels to `out`.
fn split<E, O>(err: E, out: O) -> impl for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static
where
    E: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
    O: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    err.with_max_level(tracing::Level::WARN).or_else(out)
}

/// The one formatting layer, writing to `writer`.
fn layer<S, W>(writer: W, journal: bool, ansi: bool) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
        .fmt_fields(CappedFields)
        .event_format(LineStart {
            journal,
            inner: format().without_time().with_target(false).with_ansi(ansi),
            throttle: Throttle::default(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// An in-memory log writer; clones share the bytes.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Log lines written by `f` through the real layer (not journal, no colours).
    fn logged(f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let writer = buf.clone();
        let layer = layer(move || writer.clone(), false, false);
        tracing::subscriber::with_default(Registry::default().with(layer), f);
        buf.text()
    }

    /// Issue 23: under procd the stream is the priority, so `split` sends warnings and errors
    /// to one writer and the rest to the other.
    #[test]
    fn split_streams_send_warnings_and_errors_apart() {
        let (err, out) = (Buf::default(), Buf::default());
        let (e, o) = (err.clone(), out.clone());
        let writer = split(move || e.clone(), move || o.clone());
        let layer = layer(writer, false, false);
        tracing::subscriber::with_default(Registry::default().with(layer), || {
            tracing::error!("an error");
            tracing::warn!("a warning");
            tracing::info!("some news");
            tracing::debug!("a detail");
        });
        let (err, out) = (err.text(), out.text());
        assert!(
            err.contains("an error") && err.contains("a warning"),
            "{err}"
        );
        assert!(
            !err.contains("some news") && !err.contains("a detail"),
            "{err}"
        );
        assert!(
            out.contains("some news") && out.contains("a detail"),
            "{out}"
        );
        assert!(
            !out.contains("an error") && !out.contains("a warning"),
            "{out}"
        );
    }

    #[test]
    fn a_long_field_is_cut_saying_how_much() {
        let hosts = vec!["h.example.com".to_string(); 5000];
        let long = "é".repeat(40_000);
        let text = logged(|| {
            tracing::info!(hosts = ?hosts, "control: retry");
            tracing::warn!("refused {long}");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let full = format!("{hosts:?}").len();
        let cut = full - MAX_FIELD_BYTES;
        assert!(lines[0].contains("control: retry"), "{}", lines[0]);
        assert!(
            lines[0].ends_with(&format!("…[{cut} more bytes not logged]")),
            "{}",
            &lines[0][lines[0].len() - 80..]
        );
        // The message is a field too; cut at a character boundary.
        let kept = (MAX_FIELD_BYTES - "refused ".len()) / 2 * 2;
        let cut = "refused ".len() + long.len() - "refused ".len() - kept;
        assert!(
            lines[1].ends_with(&format!("…[{cut} more bytes not logged]")),
            "{}",
            &lines[1][lines[1].len() - 80..]
        );
        for l in &lines {
            assert!(l.len() < MAX_FIELD_BYTES + 200, "{} bytes", l.len());
        }
        // Short fields are as tracing writes them.
        let text = logged(|| tracing::info!(record = "home.example.com/A", n = 3, "sent"));
        assert!(
            text.ends_with(" INFO sent record=\"home.example.com/A\" n=3\n"),
            "{text}"
        );
    }

    #[test]
    fn a_repeated_warning_is_let_through_a_few_times() {
        let text = logged(|| {
            for i in 0..1000 {
                tracing::warn!("control socket: refused request {i}");
            }
            tracing::warn!("another warning");
            tracing::info!("info is not throttled");
        });
        let from_loop = text
            .lines()
            .filter(|l| l.contains("refused request"))
            .count();
        assert_eq!(from_loop, WARN_BURST as usize, "{text}");
        assert!(text.contains("refused request 9\n"), "{text}");
        assert!(text.contains("WARN another warning"), "{text}");
        assert!(text.contains("INFO info is not throttled"), "{text}");
        assert_eq!(text.lines().count(), WARN_BURST as usize + 2, "{text}");
    }

    #[test]
    fn the_left_out_warnings_are_counted_when_the_next_comes_after_the_window() {
        let t = Throttle::<u8>::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        for _ in 0..WARN_BURST {
            assert_eq!(
                t.pass(1, at(0)),
                Pass::Log {
                    left_out: 0,
                    over: Duration::ZERO
                }
            );
        }
        for s in 0..25 {
            assert_eq!(t.pass(1, at(s)), Pass::Drop);
        }
        // Another place has its own count.
        assert!(matches!(t.pass(2, at(30)), Pass::Log { left_out: 0, .. }));
        // Still in the window: dropped. After it: logged, with the count of those left out,
        // once.
        assert_eq!(t.pass(1, at(59)), Pass::Drop);
        assert_eq!(
            t.pass(1, at(90)),
            Pass::Log {
                left_out: 26,
                over: Duration::from_secs(90)
            }
        );
        assert_eq!(
            t.pass(1, at(91)),
            Pass::Log {
                left_out: 0,
                over: Duration::from_secs(1)
            }
        );
        // A quiet window: nothing to sum up.
        assert_eq!(
            t.pass(1, at(500)),
            Pass::Log {
                left_out: 0,
                over: Duration::from_secs(410)
            }
        );
    }

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
