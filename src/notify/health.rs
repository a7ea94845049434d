//! `[health]`: pings for an uptime monitor (Healthchecks.io, Uptime Kuma) every `interval`,
//! saying whether every enabled record is current, and if not why. The verdict is a pure
//! function of the core's live status; the ping is one request, never retried (the next
//! interval sends the next one, and a missing ping is what the monitor watches for).

use super::target::Request;
use crate::decide::status::{LiveStatus, Phase};
use reqwest::Url;
use std::fmt;
use std::time::{Duration, Instant};

/// Shortest `[health] interval`; Healthchecks.io's own minimum period is a minute, but tests
/// and Uptime Kuma's push monitors (20 s by default) want less.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest reason sent, in characters.
pub const MAX_REASON: usize = 500;

/// How the monitor is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStyle {
    /// `GET url` when all is well, `POST url/fail` with the reason as the body otherwise
    /// (<https://healthchecks.io/docs/http_api/>).
    Healthchecks,
    /// `GET url?status=up|down&msg=…` (Uptime Kuma's push monitor).
    UptimeKuma,
}

impl HealthStyle {
    pub fn parse(s: &str) -> Option<HealthStyle> {
        match s {
            "healthchecks" => Some(HealthStyle::Healthchecks),
            "uptime-kuma" => Some(HealthStyle::UptimeKuma),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HealthStyle::Healthchecks => "healthchecks",
            HealthStyle::UptimeKuma => "uptime-kuma",
        }
    }
}

/// `[health]`, validated. The URL is a secret (a Healthchecks UUID, a Kuma push token).
#[derive(Clone, PartialEq, Eq)]
pub struct HealthConfig {
    url: Url,
    pub interval: Duration,
    pub style: HealthStyle,
}

impl fmt::Debug for HealthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthConfig")
            .field("url", &self.shown())
            .field("interval", &self.interval)
            .field("style", &self.style)
            .finish()
    }
}

impl HealthConfig {
    /// Errors never quote the URL.
    pub fn new(url: &str, interval: Duration, style: HealthStyle) -> Result<HealthConfig, String> {
        let url = Url::parse(url.trim()).map_err(|e| format!("not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err("an http:// or https:// URL with a host".into());
        }
        Ok(HealthConfig {
            url,
            interval,
            style,
        })
    }

    /// `https://hc-ping.com/***`.
    pub fn shown(&self) -> String {
        let port = self.url.port().map_or(String::new(), |p| format!(":{p}"));
        format!(
            "{}://{}{port}/***",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        )
    }

    pub fn https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// `text` with the URL and its path and query masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.replace(self.url.as_str(), "***");
        for p in self.url.path_segments().into_iter().flatten() {
            if p.len() >= 3 {
                out = out.replace(p, "***");
            }
        }
        out
    }

    /// The ping for `verdict` (Err: the reason something is not current).
    pub fn request(&self, verdict: &Result<(), String>) -> Request {
        let mut url = self.url.clone();
        match (self.style, verdict) {
            (HealthStyle::Healthchecks, Ok(())) => Request {
                method: "GET",
                url,
                headers: Vec::new(),
                body: Vec::new(),
            },
            (HealthStyle::Healthchecks, Err(why)) => {
                let path = format!("{}/fail", url.path().trim_end_matches('/'));
                url.set_path(&path);
                Request {
                    method: "POST",
                    url,
                    headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
                    body: why.clone().into_bytes(),
                }
            }
            (HealthStyle::UptimeKuma, verdict) => {
                // The push URL Kuma shows ends in `?status=up&msg=OK&ping=`: ours replace it.
                url.set_query(None);
                let (status, msg) = match verdict {
                    Ok(()) => ("up", "OK"),
                    Err(why) => ("down", why.as_str()),
                };
                url.query_pairs_mut()
                    .append_pair("status", status)
                    .append_pair("msg", msg);
                Request {
                    method: "GET",
                    url,
                    headers: Vec::new(),
                    body: Vec::new(),
                }
            }
        }
    }
}

/// The next ping: `at` if one is already planned, else an interval from now; None without
/// `[health]` (then the agent has no timer for it at all).
pub fn next_ping(health: Option<&HealthConfig>, at: Option<Instant>) -> Option<Instant> {
    let every = health?.interval;
    Some(at.unwrap_or_else(|| crate::clock::later(Instant::now(), every)))
}

/// Whether every enabled record is current: Err with the reasons (the core's sanitised reply
/// summaries, never a secret) when some record is stopped, failing, has nothing to publish, or
/// rests with another address than the WAN's. A record on its way (held, being verified or
/// sent) counts as current: it is, within the agent's own rules.
pub fn verdict(status: &LiveStatus) -> Result<(), String> {
    let mut reasons = Vec::new();
    for r in &status.records {
        let name = format!("{} ({})", r.hostname, r.record);
        let last = r.last_reply.as_deref().unwrap_or("no reply");
        match (&r.stopped, r.phase) {
            (Some(s), _) => reasons.push(format!("{name} stopped: {}", s.reason)),
            (None, Phase::BackingOff) => reasons.push(format!("{name} failing: {last}")),
            _ if r.wan.is_none() => reasons.push(format!("{name}: no address to publish")),
            (None, Phase::Idle) if r.published != r.wan => {
                reasons.push(format!("{name} not published yet: {last}"))
            }
            _ => {}
        }
    }
    if reasons.is_empty() {
        return Ok(());
    }
    let joined = reasons.join("; ");
    let mut out: String = joined.chars().take(MAX_REASON).collect();
    if out.len() < joined.len() {
        out.push('…');
    }
    Err(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::status::{LiveRecord, StopInfo};

    fn record(phase: Phase, published: Option<&str>, wan: Option<&str>) -> LiveRecord {
        LiveRecord {
            hostname: "home.example.com".into(),
            record: "A".into(),
            phase,
            published: published.map(|a| a.parse().unwrap()),
            wan: wan.map(|a| a.parse().unwrap()),
            in_flight: None,
            failures: 0,
            last_reply: Some("good".into()),
            next: None,
            stopped: None,
            interfaces: Vec::new(),
            interface: None,
            interface_since_ms_ago: None,
        }
    }

    fn status(records: Vec<LiveRecord>) -> LiveStatus {
        LiveStatus {
            records,
            next_wake: None,
        }
    }

    #[test]
    fn the_verdict_says_what_is_not_current() {
        let ip = Some("203.0.113.7");
        assert_eq!(verdict(&status(vec![record(Phase::Idle, ip, ip)])), Ok(()));
        assert_eq!(
            verdict(&status(vec![record(Phase::Pushing, None, ip)])),
            Ok(())
        );
        let mut stopped = record(Phase::Stopped, ip, ip);
        stopped.stopped = Some(StopInfo {
            reason: "401 unauthorized".into(),
            fix: "check the login".into(),
        });
        let mut failing = record(Phase::BackingOff, None, ip);
        failing.last_reply = Some("911".into());
        let v = verdict(&status(vec![
            stopped,
            failing,
            record(Phase::Idle, None, None),
        ]));
        assert_eq!(
            v,
            Err("home.example.com (A) stopped: 401 unauthorized; home.example.com (A) failing: 911; home.example.com (A): no address to publish".into())
        );
        let stale = record(Phase::Idle, Some("198.51.100.1"), ip);
        assert!(
            verdict(&status(vec![stale]))
                .unwrap_err()
                .contains("not published yet")
        );
        let many = vec![record(Phase::Idle, None, None); 100];
        assert!(verdict(&status(many)).unwrap_err().chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn healthchecks_pings_the_url_and_fails_with_the_reason() {
        let h = HealthConfig::new(
            "https://hc-ping.com/1f2e-uuid",
            MIN_INTERVAL,
            HealthStyle::Healthchecks,
        )
        .unwrap();
        let ok = h.request(&Ok(()));
        assert_eq!(
            (ok.method, ok.url.as_str()),
            ("GET", "https://hc-ping.com/1f2e-uuid")
        );
        let fail = h.request(&Err("home stopped: 401".into()));
        assert_eq!(
            (fail.method, fail.url.as_str()),
            ("POST", "https://hc-ping.com/1f2e-uuid/fail")
        );
        assert_eq!(fail.body, b"home stopped: 401");
        assert_eq!(h.shown(), "https://hc-ping.com/***");
        assert!(!format!("{h:?}").contains("1f2e-uuid"));
        assert_eq!(
            h.redact("GET https://hc-ping.com/1f2e-uuid failed"),
            "GET *** failed"
        );
    }

    #[test]
    fn uptime_kuma_gets_status_and_msg_in_place_of_the_pasted_ones() {
        let h = HealthConfig::new(
            "http://kuma.lan:3001/api/push/Tok3n?status=up&msg=OK&ping=",
            MIN_INTERVAL,
            HealthStyle::UptimeKuma,
        )
        .unwrap();
        assert_eq!(
            h.request(&Ok(())).url.as_str(),
            "http://kuma.lan:3001/api/push/Tok3n?status=up&msg=OK"
        );
        assert_eq!(
            h.request(&Err("a & b".into())).url.as_str(),
            "http://kuma.lan:3001/api/push/Tok3n?status=down&msg=a+%26+b"
        );
        assert!(HealthConfig::new("ftp://x/", MIN_INTERVAL, HealthStyle::UptimeKuma).is_err());
    }
}
