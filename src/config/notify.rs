//! `[[notify]]` and `[health]`: the raw sections and their validation. The URLs are secrets
//! (`url`, `url_file`, `url_env`, `url_credential`, read through [`super::secrets`]); an error
//! names the key and the line, never the URL.

use super::secrets::secret_source;
use super::{ConfigError, Ctx};
use crate::duration::parse_duration;
use crate::notify::NotifyConfig;
use crate::notify::health::{HealthConfig, HealthStyle, MIN_INTERVAL};
use crate::notify::target::{EventKind, Events};
use serde::Deserialize;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// A `[[notify]]` or the `[health]` section: one type for both, since each derived
/// deserializer costs the router build a few KB; the keys one of them does not take are
/// refused by its validation, naming the key and the line.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub url: Option<Spanned<String>>,
    pub url_file: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub url_credential: Option<Spanned<String>>,
    /// `[[notify]]` only.
    pub events: Option<Vec<Spanned<String>>>,
    /// `[health]` only.
    pub interval: Option<Spanned<String>>,
    /// `[health]` only.
    pub style: Option<Spanned<String>>,
}

// By hand: the URL holds a token.
impl fmt::Debug for RawTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawTarget")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("url_file", &self.url_file)
            .finish_non_exhaustive()
    }
}

/// A key given in the section that does not take it.
fn not_here(v: Option<&Spanned<String>>, key: &str, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    match v {
        Some(v) => Err(ctx.err(
            v,
            key,
            "unknown key here ([health] takes interval and style, [[notify]] events)",
        )),
        None => Ok(()),
    }
}

/// Longest `[health] interval`: a monitor told less than daily cannot tell much.
const MAX_HEALTH_INTERVAL: Duration = Duration::from_secs(86_400);

/// The URL of a section, read from whichever form names it; `at` is where errors point.
fn read_url(
    forms: [&Option<Spanned<String>>; 4],
    section: &str,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<(String, Option<usize>), ConfigError> {
    let key = |name: &str| format!("{section}.{name}");
    let Some(source) = secret_source("url", forms, &key, ctx, base)? else {
        return Err(ctx.err_at(
            // The section has no line of its own (spans cost the router build a deserializer).
            None,
            &key("url"),
            "missing: set url, url_file, url_env or url_credential",
        ));
    };
    let at = forms
        .iter()
        .find_map(|f| f.as_ref().map(|v| v.span().start));
    Ok((source.read()?.expose().to_string(), at))
}

pub(super) fn validate_notify(
    raw: Vec<RawTarget>,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Vec<NotifyConfig>, ConfigError> {
    let mut out = Vec::new();
    for (i, n) in raw.into_iter().enumerate() {
        let section = format!("notify[{i}]");
        let forms = [&n.url, &n.url_file, &n.url_env, &n.url_credential];
        let (url, at) = read_url(forms, &section, ctx, base)?;
        not_here(n.interval.as_ref(), &format!("{section}.interval"), ctx)?;
        not_here(n.style.as_ref(), &format!("{section}.style"), ctx)?;
        let targets = crate::notify::target::parse(&url)
            .map_err(|m| ctx.err_at(at, &format!("{section}.url"), m))?;
        let events = match &n.events {
            None => Events::default_set(),
            Some(list) => {
                let mut kinds = Vec::new();
                for e in list {
                    let kind = EventKind::parse(e.get_ref()).ok_or_else(|| {
                        ctx.err(
                            e,
                            &format!("{section}.events"),
                            format!(
                                "{:?} is not an event (updated, error, stopped, recovered)",
                                e.get_ref()
                            ),
                        )
                    })?;
                    kinds.push(kind);
                }
                if kinds.is_empty() {
                    return Err(ctx.err_at(
                        at,
                        &format!("{section}.events"),
                        "empty: name at least one event, or remove the [[notify]] section",
                    ));
                }
                Events::of(&kinds)
            }
        };
        out.extend(
            targets
                .into_iter()
                .map(|target| NotifyConfig { target, events }),
        );
    }
    Ok(out)
}

pub(super) fn validate_health(
    raw: Option<RawTarget>,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Option<HealthConfig>, ConfigError> {
    let Some(h) = raw else { return Ok(None) };
    let forms = [&h.url, &h.url_file, &h.url_env, &h.url_credential];
    let (url, at) = read_url(forms, "health", ctx, base)?;
    if let Some(e) = h.events.as_ref().and_then(|e| e.first()) {
        not_here(Some(e), "health.events", ctx)?;
    }
    let interval = match &h.interval {
        None => Duration::from_secs(300),
        Some(i) => {
            let d = parse_duration(i.get_ref()).map_err(|m| ctx.err(i, "health.interval", m))?;
            if !(MIN_INTERVAL..=MAX_HEALTH_INTERVAL).contains(&d) {
                return Err(ctx.err(i, "health.interval", "between 1s and 24h"));
            }
            d
        }
    };
    let style = match &h.style {
        None => HealthStyle::Healthchecks,
        Some(s) => HealthStyle::parse(s.get_ref())
            .ok_or_else(|| ctx.err(s, "health.style", "\"healthchecks\" or \"uptime-kuma\""))?,
    };
    HealthConfig::new(&url, interval, style)
        .map(Some)
        .map_err(|m| ctx.err_at(at, "health.url", m))
}
