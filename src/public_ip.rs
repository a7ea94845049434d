//! HTTP detection of the public address, for a gateway behind someone else's NAT (a private or
//! CGNAT address on the WAN): ask what's-my-IP sources, over the right family, bound to the
//! WAN's own address, and believe an answer only when two sources agree.
//!
//! No existing client does this on its own: ddclient and inadyn, pointed at the interface,
//! publish 100.64.x.x as it is. The decider says when to ask (`Action::Detect`); this module
//! only asks.

use crate::http::{ClientOptions, Tls};
use crate::record::Family;
use crate::wan::policy::{self, AddressPolicy};
use reqwest::Url;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// A what's-my-IP answer is a line of text or a small HTML page (checkip style); more than this
/// is not an answer.
pub const MAX_ANSWER_BYTES: usize = 2048;

/// How long a failing source is left alone: doubles per failure from 1 minute to 1 hour.
const SOURCE_BACKOFF_START: Duration = Duration::from_secs(60);
const SOURCE_BACKOFF_MAX: Duration = Duration::from_secs(3600);

/// Finds the first address of `family` in a what's-my-IP answer. Hex digits are taken in either
/// case; a token must parse completely (`203.0.113.7.` at the end of a sentence is fine,
/// `1.2.3.4.5` is not an address).
pub fn parse_answer(body: &[u8], family: Family) -> Option<IpAddr> {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER_BYTES)]);
    let is_token_char = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    text.split(|c: char| !is_token_char(c))
        .filter(|t| !t.is_empty())
        .find_map(|token| {
            let token = token.trim_matches(|c| c == '.' || c == ':');
            match family {
                Family::V4 if token.contains('.') && !token.contains(':') => {
                    token.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
                }
                Family::V6 if token.matches(':').count() >= 2 => {
                    token.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
                }
                _ => None,
            }
        })
}

/// What one source said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceReport {
    pub url: String,
    /// The address it answered, if it did and the answer counts.
    pub address: Option<IpAddr>,
    /// Why its answer was not used (error, timeout, 403/429, not routable, skipped).
    pub problem: Option<String>,
}

/// The result of one round of detection for one family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicAddress {
    pub family: Family,
    /// The address two sources agreed on (or the only source configured said).
    pub address: Option<IpAddr>,
    pub why: String,
    pub sources: Vec<SourceReport>,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    skip_until: Option<Instant>,
}

/// Asks the configured sources. Cheap to clone; clones share the per-source back-off.
#[derive(Clone)]
pub struct PublicIpDetector {
    ipv4: Vec<Url>,
    ipv6: Vec<Url>,
    timeout: Duration,
    policy: AddressPolicy,
    health: Arc<Mutex<HashMap<String, Health>>>,
    /// The client of each family, with the address it is bound to and the roots it trusts:
    /// built at the first round, reused by the next ones (and across a reload that keeps the
    /// timeout), built again only when the WAN address or the roots on disk change.
    clients: Arc<Mutex<HashMap<Family, Built>>>,
}

struct Built {
    bind: Option<IpAddr>,
    tls: Tls,
    client: reqwest::Client,
}

impl PublicIpDetector {
    pub fn new(cfg: &crate::config::DetectConfig, policy: AddressPolicy) -> PublicIpDetector {
        PublicIpDetector {
            ipv4: cfg.ipv4.clone(),
            ipv6: cfg.ipv6.clone(),
            timeout: cfg.timeout,
            policy,
            health: Arc::default(),
            clients: Arc::default(),
        }
    }

    /// Takes over `old`'s per-source back-off (a reload must not make a failing source be asked
    /// again at once).
    pub fn with_health_of(mut self, old: &PublicIpDetector) -> PublicIpDetector {
        self.health = old.health.clone();
        // The clients too, when what they were built from is the same (the roots are checked
        // at each use).
        if self.timeout == old.timeout && self.https_by_family() == old.https_by_family() {
            self.clients = old.clients.clone();
        }
        self
    }

    fn sources(&self, family: Family) -> &[Url] {
        match family {
            Family::V4 => &self.ipv4,
            Family::V6 => &self.ipv6,
        }
    }

    /// Asks the sources of `family` in order, from `bind` (the WAN's address of that family)
    /// when given, until two agree. With `ask_all`, asks every source (for `dynhostd detect`)
    /// and ignores the back-off.
    pub async fn detect(
        &self,
        family: Family,
        bind: Option<IpAddr>,
        ask_all: bool,
    ) -> PublicAddress {
        let sources = self.sources(family).to_vec();
        let need = if sources.len() >= 2 { 2 } else { 1 };
        let client = match self.client(family, bind).await {
            Ok(c) => c,
            Err(e) => {
                return PublicAddress {
                    family,
                    address: None,
                    why: format!("cannot build the HTTP client: {e}"),
                    sources: Vec::new(),
                };
            }
        };
        let mut reports: Vec<SourceReport> = Vec::new();
        let mut agreed = None;
        for url in sources {
            if !ask_all && let Some(wait) = self.skipped(&url) {
                reports.push(SourceReport {
                    url: url.to_string(),
                    address: None,
                    problem: Some(format!(
                        "skipped: backing off for {}s after failures",
                        wait.as_secs()
                    )),
                });
                continue;
            }
            let report = self.ask(&client, &url, family).await;
            self.note(&url, report.address.is_some());
            if let Some(problem) = &report.problem {
                warn!(%family, source = %url, "what's-my-IP source: {problem}");
            }
            let address = report.address;
            reports.push(report);
            if let Some(ip) = address {
                let votes = reports.iter().filter(|r| r.address == Some(ip)).count();
                if votes >= need && agreed.is_none() {
                    agreed = Some(ip);
                    if !ask_all {
                        break;
                    }
                }
            }
        }
        let why = match agreed {
            Some(ip) if need == 1 => format!("{ip}: the only source configured says so"),
            Some(ip) => format!("{ip}: two sources agree"),
            None if reports.iter().all(|r| r.address.is_none()) => {
                "no source gave a usable answer".to_string()
            }
            None => "no two sources agree: publishing nothing".to_string(),
        };
        debug!(%family, "HTTP detection: {why}");
        PublicAddress {
            family,
            address: agreed,
            why,
            sources: reports,
        }
    }

    /// Whether any source of each family is `https` (then the client needs the roots).
    fn https_by_family(&self) -> [bool; 2] {
        [&self.ipv4, &self.ipv6].map(|urls| urls.iter().any(|u| u.scheme() == "https"))
    }

    /// The family's client: the one built before, if bound to the same address and its roots
    /// unchanged; otherwise a new one, built off the event loop (reading the roots is file I/O
    /// and parsing).
    async fn client(
        &self,
        family: Family,
        bind: Option<IpAddr>,
    ) -> Result<reqwest::Client, String> {
        let bind = bind.filter(|ip| Family::of(ip) == family);
        {
            let clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(b) = clients.get(&family)
                && b.bind == bind
                && b.tls.is_current()
            {
                return Ok(b.client.clone());
            }
        }
        let https = self.https_by_family()[usize::from(family == Family::V6)];
        let opts = ClientOptions {
            connect_timeout: self.timeout,
            timeout: self.timeout,
        };
        let build = move || -> Result<Built, String> {
            let tls = Tls::load(https, None).map_err(|e| e.to_string())?;
            let mut b = crate::http::builder(&opts, &tls)
                .redirect(reqwest::redirect::Policy::limited(3))
                // Rounds are minutes apart: a connection kept for the next one would only cost
                // a timer wake-up (and a socket) in between.
                .pool_max_idle_per_host(0)
                .dns_resolver(Arc::new(FamilyResolver(family)));
            if let Some(ip) = bind {
                b = b.local_address(ip);
            }
            let client = b.build().map_err(|e| crate::http::error_chain(&e))?;
            Ok(Built { bind, tls, client })
        };
        let built = tokio::task::spawn_blocking(build)
            .await
            .map_err(|e| e.to_string())??;
        let client = built.client.clone();
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(family, built);
        Ok(client)
    }

    async fn ask(&self, client: &reqwest::Client, url: &Url, family: Family) -> SourceReport {
        let report = |address, problem: Option<String>| SourceReport {
            url: url.to_string(),
            address,
            problem,
        };
        let mut resp = match client.get(url.clone()).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return report(None, Some("timed out".into())),
            Err(e) => return report(None, Some(format!("no answer: {}", short_error(&e)))),
        };
        let status = resp.status();
        if !status.is_success() {
            let what = match status.as_u16() {
                403 => "refused (403): it may block automated clients".to_string(),
                429 => "rate limited (429)".to_string(),
                s => format!("HTTP {s}"),
            };
            return report(None, Some(what));
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return report(None, Some("timed out".into())),
                Err(e) => return report(None, Some(format!("broken answer: {}", short_error(&e)))),
            }
        }
        let Some(ip) = parse_answer(&body, family) else {
            return report(None, Some(format!("no {family} address in its answer")));
        };
        match policy::judge_ip(ip, &self.policy) {
            Ok(()) => report(Some(ip), None),
            Err(r) => report(
                None,
                Some(format!("answered {ip}, which does not count: {r}")),
            ),
        }
    }

    fn skipped(&self, url: &Url) -> Option<Duration> {
        let health = self.health.lock().expect("health lock");
        let until = health.get(url.as_str())?.skip_until?;
        until.checked_duration_since(Instant::now())
    }

    fn note(&self, url: &Url, ok: bool) {
        let mut health = self.health.lock().expect("health lock");
        let h = health.entry(url.to_string()).or_default();
        if ok {
            *h = Health::default();
        } else {
            h.failures = h.failures.saturating_add(1);
            let wait = SOURCE_BACKOFF_START
                .saturating_mul(1 << h.failures.saturating_sub(1).min(16))
                .min(SOURCE_BACKOFF_MAX);
            h.skip_until = Some(Instant::now() + wait);
        }
    }
}

/// reqwest error text without the URL (it is already in the report) and without the long chain.
fn short_error(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg.chars().take(200).collect()
}

/// Resolves names to addresses of one family only, so an IPv4 question can never be answered
/// over IPv6 (or the other way round) on a dual-stack host.
struct FamilyResolver(Family);

impl reqwest::dns::Resolve for FamilyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let family = self.0;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| Family::of(&a.ip()) == family)
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no {family} address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_the_forms_seen_in_the_wild() {
        let v4 = |b: &str| parse_answer(b.as_bytes(), Family::V4);
        let v6 = |b: &str| parse_answer(b.as_bytes(), Family::V6);
        assert_eq!(v4("203.0.113.7\n"), Some("203.0.113.7".parse().unwrap()));
        assert_eq!(
            v4(
                "<html><head><title>Current IP Check</title></head><body>Current IP Address: 198.51.100.23</body></html>\r\n"
            ),
            Some("198.51.100.23".parse().unwrap())
        );
        assert_eq!(
            v4("Your IP is 203.0.113.9."),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            v4("{\"ip\":\"203.0.113.10\"}"),
            Some("203.0.113.10".parse().unwrap())
        );
        assert_eq!(
            v6("2001:DB8:AB::1\n"),
            Some("2001:db8:ab::1".parse().unwrap())
        );
        assert_eq!(
            v6("ip=2001:db8::5; ts=1"),
            Some("2001:db8::5".parse().unwrap())
        );
        // The other family's address is not an answer to this question.
        assert_eq!(v4("2001:db8::1\n"), None);
        assert_eq!(v6("203.0.113.7\n"), None);
        // Not addresses.
        assert_eq!(v4("1.2.3.4.5"), None);
        assert_eq!(v4("999.1.1.1"), None);
        assert_eq!(v4(""), None);
        assert_eq!(v4("cafe dead beef"), None);
        assert_eq!(parse_answer(&[0xff, 0xfe, 0x00, 0x01], Family::V4), None);
        // Only the first bytes are read.
        let mut big = "x".repeat(MAX_ANSWER_BYTES);
        big.push_str(" 203.0.113.7");
        assert_eq!(v4(&big), None);
    }
}
