//! DynHost providers: how a reply is read (`classify`, pure, one per provider) and what each kind
//! of reply leads to (`verdict`, the one policy table). The HTTP side lives in `client`.
//!
//! OVH DynHost and generic dyndns2 servers speak the same protocol; OVH adds a JSON 400 body and
//! answers bad credentials with a bare 401. Wire facts: `shared/docs/ovh-dynhost.md`.

pub mod client;
pub mod retry_after;
pub mod server_text;

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// Which kind of server a host talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Ovh,
    Dyndns2,
}

impl Provider {
    /// OVH's current DynHost endpoint (the legacy `https://www.ovh.com/nic/update` still
    /// answers and can be set with `server`).
    pub const OVH_DEFAULT_SERVER: &'static str = "https://dns.eu.ovhapis.com/nic/update";

    pub fn default_server(self) -> Option<&'static str> {
        match self {
            Provider::Ovh => Some(Self::OVH_DEFAULT_SERVER),
            // A generic dyndns2 server has no universal default: the user names it.
            Provider::Dyndns2 => None,
        }
    }
}

/// Why a request never got a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Timeout,
    Connect,
    Tls,
    Other,
}

/// A server's answer (or the lack of one), read but not yet judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `good <ip>`: the record changed.
    Good(Option<IpAddr>),
    /// `nochg <ip>`: the record already held it.
    NoChg(Option<IpAddr>),
    NoHost,
    BadSys,
    BadAuth,
    /// HTTP 401 (OVH's answer to bad credentials).
    Unauthorized,
    /// HTTP 400 with OVH's JSON `Client::BadRequest` (or any 400); holds the server's message.
    BadRequest(String),
    NotFqdn,
    NumHost,
    Abuse,
    BadAgent,
    NotDonator,
    NotYours,
    DnsErr,
    /// `911`: server-side trouble.
    ServerTrouble,
    /// HTTP 429, or 503 with Retry-After: the server asks us to wait.
    RateLimited(Option<Duration>),
    /// Any other 5xx.
    ServerError(u16),
    /// A status or body we don't know; `first_line` is at most 100 printable characters.
    Unknown {
        status: u16,
        first_line: String,
    },
    /// No reply at all.
    Transport {
        kind: TransportKind,
        message: String,
    },
    /// `--dry-run`: nothing was sent; taken as published so the agent moves on.
    DryRun,
}

/// What a reply leads to: the policy table's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The record holds the address we sent. `changed` is false for `nochg`.
    Published { changed: bool },
    /// Don't send for this host again until its configuration changes; `fix` tells the user what
    /// to do.
    Stop { fix: String },
    /// Try again later with back-off; `after` is a wait the server asked for.
    Retry { after: Option<Duration> },
}

/// How much of a reply's first line is kept for logs and the state file. A server that answers
/// with an HTML page or binary junk must not flood either.
const FIRST_LINE_MAX_CHARS: usize = 100;

/// How much of a server-supplied message (OVH's JSON `message`) is kept, for the same reason.
const MESSAGE_MAX_CHARS: usize = 200;

/// Only the first line of a reply matters (ovh-dynhost.md, "Replies"); no real code is longer than
/// this, so a body without a newline is not scanned any further.
const FIRST_LINE_SCAN_BYTES: usize = 1024;

/// Reads a server's answer. Pure: `status` is the HTTP status, `retry_after` the parsed
/// `Retry-After` header (either form, see [`retry_after`]), `body` whatever part of the body was
/// read (with the password already masked by the client).
///
/// The HTTP status decides first where it is unambiguous (401, 429, 400, 5xx, 503 with
/// Retry-After); otherwise the first line of the body does, codes compared case-insensitively.
/// Never panics, whatever the body holds.
pub fn classify(
    provider: Provider,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Reply {
    // OVH and generic dyndns2 servers share the text codes, and reading OVH's JSON 400 costs a
    // dyndns2 server nothing, so both read the same way today. The parameter keeps the door open
    // for a provider with its own dialect without changing every caller.
    let _ = provider;

    match status {
        // OVH answers bad credentials (and a malformed Authorization header) with a bare 401.
        401 => return Reply::Unauthorized,
        429 => return Reply::RateLimited(retry_after),
        // A 503 that names a wait is the server asking for patience, not failing.
        503 if retry_after.is_some() => return Reply::RateLimited(retry_after),
        400 => return Reply::BadRequest(bad_request_message(body)),
        500..=599 => return Reply::ServerError(status),
        _ => {}
    }

    let line = first_line(body);
    let mut words = line.split_ascii_whitespace();
    let code = words.next().unwrap_or("").to_ascii_lowercase();
    let ip = words.next().and_then(parse_ip);
    let success = (200..300).contains(&status);

    match code.as_str() {
        // `good`/`nochg` only count as success on a 2xx: a 404 page that happens to start with
        // "good" has published nothing.
        "good" if success => Reply::Good(ip),
        "nochg" if success => Reply::NoChg(ip),
        // Error codes are trusted whatever the status: some dyndns2 servers pair them with a 4xx,
        // and the code says more than the status.
        "nohost" => Reply::NoHost,
        "badsys" => Reply::BadSys,
        "badauth" => Reply::BadAuth,
        "notfqdn" => Reply::NotFqdn,
        "numhost" => Reply::NumHost,
        "abuse" => Reply::Abuse,
        "badagent" => Reply::BadAgent,
        "!donator" => Reply::NotDonator,
        "!yours" => Reply::NotYours,
        "dnserr" => Reply::DnsErr,
        "911" => Reply::ServerTrouble,
        _ => Reply::Unknown {
            status,
            first_line: printable(&line, FIRST_LINE_MAX_CHARS),
        },
    }
}

/// The first line of `body` (without its line ending), decoded leniently: binary turns into
/// U+FFFD rather than an error.
fn first_line(body: &[u8]) -> String {
    let head = &body[..body.len().min(FIRST_LINE_SCAN_BYTES)];
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..end]);
    line.trim_end_matches('\r').trim().to_string()
}

/// `good 203.0.113.7`, `nochg 2001:db8::1`; tolerates `[2001:db8::1]`. Anything else is `None`.
fn parse_ip(word: &str) -> Option<IpAddr> {
    let word = word
        .strip_prefix('[')
        .and_then(|w| w.strip_suffix(']'))
        .unwrap_or(word);
    word.parse().ok()
}

/// At most `max` characters of `s`, with anything that could hide or forge text (control,
/// format and bidi characters, line separators, undecodable bytes) shown as `?`, so a log line,
/// the state file or a terminal never carries it ([`server_text::clean`]).
fn printable(s: &str, max: usize) -> String {
    server_text::clean(s, max)
}

/// OVH's 400 body: `{"class":"Client::BadRequest","message":"{'system': [...]}"}`
/// (ovh-dynhost.md, "The update request"). Any other 400 body is reported by its first line.
fn bad_request_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OvhError {
        class: Option<String>,
        message: Option<String>,
    }
    if let Ok(err) = serde_json::from_slice::<OvhError>(body) {
        if let Some(message) = err.message {
            return printable(&message, MESSAGE_MAX_CHARS);
        }
        if let Some(class) = err.class {
            return printable(&class, MESSAGE_MAX_CHARS);
        }
    }
    let line = printable(&first_line(body), FIRST_LINE_MAX_CHARS);
    if line.is_empty() {
        "HTTP 400 with no explanation".to_string()
    } else {
        line
    }
}

/// The policy table: what each reply leads to. The one place where "retry" or "stop" is decided
/// (ovh-dynhost.md, "Replies", and Dyn's client rules: never retry an error only the user can
/// fix).
pub fn verdict(reply: &Reply) -> Verdict {
    let stop = |fix: &str| Verdict::Stop {
        fix: fix.to_string(),
    };
    match reply {
        Reply::Good(_) => Verdict::Published { changed: true },
        Reply::NoChg(_) => Verdict::Published { changed: false },
        Reply::DryRun => Verdict::Published { changed: true },
        Reply::NoHost => stop(
            "the server does not know this hostname for this login: check that a DynHost record \
             exists for it and that the login's scope covers it (OVH panel → Domains → DynHost)",
        ),
        Reply::BadSys => stop(
            "the server rejected the request form (badsys): this is a dynhostd bug or a wrong \
             `server` URL; check `server`, and report it if it is right",
        ),
        Reply::BadAuth | Reply::Unauthorized => stop(
            "the DynHost login or password is wrong: check `login` and `password` for this host \
             (OVH panel → Domains → DynHost → Manage access)",
        ),
        Reply::BadRequest(message) => Verdict::Stop {
            fix: format!(
                "the server rejected the request as malformed ({message}): check `hostname` and \
                 `server` for this host"
            ),
        },
        Reply::NotFqdn => stop(
            "the hostname is not a fully qualified domain name: set `hostname` to the full name, \
             e.g. home.example.com",
        ),
        Reply::NumHost => stop(
            "the server says too many hostnames were sent at once: check `hostname` holds exactly \
             one name",
        ),
        Reply::Abuse => {
            stop("the provider blocked this host for abuse: contact them; dynhostd will not retry")
        }
        Reply::BadAgent => {
            stop("the provider refuses this client (badagent): update dynhostd or report it")
        }
        Reply::NotDonator => stop(
            "the provider requires a paid account for this option (!donator): check the \
             account or the `server` setting",
        ),
        Reply::NotYours => {
            stop("the hostname belongs to another account (!yours): check `hostname` and `login`")
        }
        Reply::DnsErr | Reply::ServerTrouble | Reply::ServerError(_) | Reply::Transport { .. } => {
            Verdict::Retry { after: None }
        }
        Reply::RateLimited(after) => Verdict::Retry { after: *after },
        Reply::Unknown { status, .. } => unknown_verdict(*status),
    }
}

/// A reply we can't read. The judgement:
/// - 3xx: redirects are not followed (they could carry credentials elsewhere or downgrade to
///   plain HTTP), and a moved endpoint stays moved, so retrying can't help: stop and say so.
/// - 4xx (429 and 400 never get here): the server refuses this request as it is; repeating it
///   unchanged is exactly what gets clients blocked. Except 408 (request timeout), which is
///   about the connection, not the request.
/// - anything else (2xx with an unreadable body, such as a captive portal or maintenance page,
///   1xx, nonsense statuses): most likely a passing state of the network or the server; retry
///   with the usual growing back-off rather than demand an action from the user.
fn unknown_verdict(status: u16) -> Verdict {
    match status {
        300..=399 => Verdict::Stop {
            fix: format!(
                "the server answered with a redirect (HTTP {status}), which dynhostd does not \
                 follow: set `server` to the final update URL"
            ),
        },
        408 => Verdict::Retry { after: None },
        400..=499 => Verdict::Stop {
            fix: format!(
                "the server refused the update with HTTP {status}: check `server`, `hostname` \
                 and the credentials for this host"
            ),
        },
        _ => Verdict::Retry { after: None },
    }
}

impl Reply {
    /// The reply with the host's password (and its Basic form) masked in every text that came
    /// from the server or the transport: the last step at the provider border.
    pub fn redacted(self, secrets: &server_text::Secrets) -> Reply {
        match self {
            Reply::BadRequest(message) => Reply::BadRequest(secrets.redact(&message)),
            Reply::Unknown { status, first_line } => Reply::Unknown {
                status,
                first_line: secrets.redact(&first_line),
            },
            Reply::Transport { kind, message } => Reply::Transport {
                kind,
                message: secrets.redact(&message),
            },
            other => other,
        }
    }

    /// Short text for logs and the state file: `good 203.0.113.7`, `401 unauthorized`,
    /// `timeout: …`. Built only from what the server said and our own error text, which never
    /// holds credentials (the client keeps them out of its messages).
    pub fn summary(&self) -> String {
        fn with_ip(code: &str, ip: &Option<IpAddr>) -> String {
            match ip {
                Some(ip) => format!("{code} {ip}"),
                None => code.to_string(),
            }
        }
        match self {
            Reply::Good(ip) => with_ip("good", ip),
            Reply::NoChg(ip) => with_ip("nochg", ip),
            Reply::NoHost => "nohost".into(),
            Reply::BadSys => "badsys".into(),
            Reply::BadAuth => "badauth".into(),
            Reply::Unauthorized => "401 unauthorized".into(),
            Reply::BadRequest(message) => format!("badrequest: {message}"),
            Reply::NotFqdn => "notfqdn".into(),
            Reply::NumHost => "numhost".into(),
            Reply::Abuse => "abuse".into(),
            Reply::BadAgent => "badagent".into(),
            Reply::NotDonator => "!donator".into(),
            Reply::NotYours => "!yours".into(),
            Reply::DnsErr => "dnserr".into(),
            Reply::ServerTrouble => "911".into(),
            Reply::RateLimited(Some(after)) => {
                format!("rate limited: retry after {}s", after.as_secs())
            }
            Reply::RateLimited(None) => "rate limited".into(),
            Reply::ServerError(status) => format!("{status} server error"),
            Reply::Unknown { status, first_line } if first_line.is_empty() => {
                format!("unknown reply: {status} with an empty body")
            }
            Reply::Unknown { status, first_line } => {
                format!("unknown reply: {status} {first_line:?}")
            }
            Reply::Transport { kind, message } => {
                let kind = match kind {
                    TransportKind::Timeout => "timeout",
                    TransportKind::Connect => "connect",
                    TransportKind::Tls => "tls",
                    TransportKind::Other => "transport",
                };
                format!("{kind}: {message}")
            }
            Reply::DryRun => "dry run, not sent".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! One test per row of the reply table in ovh-dynhost.md, then the bodies no table lists.

    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const IP4: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    const IP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));

    fn ovh(status: u16, body: &str) -> Reply {
        classify(Provider::Ovh, status, None, body.as_bytes())
    }

    fn is_stop(v: &Verdict) -> bool {
        matches!(v, Verdict::Stop { fix } if !fix.is_empty())
    }

    // Row `good <ip>`: record changed, remember the ip.
    #[test]
    fn good_with_ip_is_published_and_changed() {
        let r = ovh(200, "good 203.0.113.7\n");
        assert_eq!(r, Reply::Good(Some(IP4)));
        assert_eq!(verdict(&r), Verdict::Published { changed: true });
        assert_eq!(r.summary(), "good 203.0.113.7");
        assert_eq!(ovh(200, "good 2001:db8::1"), Reply::Good(Some(IP6)));
        assert_eq!(ovh(200, "GOOD [2001:db8::1]\r\n"), Reply::Good(Some(IP6)));
    }

    // Row `nochg <ip>`: success, nothing changed.
    #[test]
    fn nochg_with_ip_is_published_unchanged() {
        let r = ovh(200, "nochg 203.0.113.7\n");
        assert_eq!(r, Reply::NoChg(Some(IP4)));
        assert_eq!(verdict(&r), Verdict::Published { changed: false });
        assert_eq!(r.summary(), "nochg 203.0.113.7");
        assert_eq!(ovh(200, "NoChg 2001:db8::1\n"), Reply::NoChg(Some(IP6)));
    }

    #[test]
    fn good_or_nochg_with_garbage_or_no_ip_keep_the_code() {
        assert_eq!(ovh(200, "good 203.0.113.999\n"), Reply::Good(None));
        assert_eq!(ovh(200, "good\n"), Reply::Good(None));
        assert_eq!(ovh(200, "nochg not-an-ip\n"), Reply::NoChg(None));
        assert_eq!(Reply::Good(None).summary(), "good");
        // Only the first line counts.
        assert_eq!(
            ovh(200, "good 203.0.113.7\nnohost\n"),
            Reply::Good(Some(IP4))
        );
        // `good` on an error status published nothing.
        assert!(matches!(
            ovh(404, "good 203.0.113.7\n"),
            Reply::Unknown { status: 404, .. }
        ));
    }

    // Row `nohost` (200): stop until the configuration changes.
    #[test]
    fn nohost_stops() {
        let r = ovh(200, "nohost\n");
        assert_eq!(r, Reply::NoHost);
        assert!(is_stop(&verdict(&r)));
        assert_eq!(r.summary(), "nohost");
    }

    // Row `badsys` (200): stop (a bug on our side).
    #[test]
    fn badsys_stops() {
        let r = ovh(200, "badsys\n");
        assert_eq!(r, Reply::BadSys);
        assert!(is_stop(&verdict(&r)));
    }

    // Row `401`: bad credentials, stop.
    #[test]
    fn http_401_is_unauthorized_and_stops_naming_login_and_password() {
        for body in ["", "401 Unauthorized\n", "good 203.0.113.7\n"] {
            assert_eq!(ovh(401, body), Reply::Unauthorized);
        }
        let Verdict::Stop { fix } = verdict(&Reply::Unauthorized) else {
            panic!("401 must stop");
        };
        assert!(
            fix.contains("`login`") && fix.contains("`password`"),
            "{fix}"
        );
        assert_eq!(Reply::Unauthorized.summary(), "401 unauthorized");
    }

    // Row JSON `Client::BadRequest` (400): stop, log the message.
    #[test]
    fn ovh_json_400_is_bad_request_with_its_message() {
        let body = r#"{"class":"Client::BadRequest","message":"{'system': ['Missing data for required field.']}"}"#;
        let r = ovh(400, body);
        let msg = "{'system': ['Missing data for required field.']}";
        assert_eq!(r, Reply::BadRequest(msg.to_string()));
        let Verdict::Stop { fix } = verdict(&r) else {
            panic!("400 must stop");
        };
        assert!(fix.contains(msg));
        assert_eq!(r.summary(), format!("badrequest: {msg}"));
        // A 400 without JSON still stops, reported by its first line.
        assert_eq!(
            ovh(400, "Bad Request\n"),
            Reply::BadRequest("Bad Request".into())
        );
        assert!(matches!(ovh(400, ""), Reply::BadRequest(m) if !m.is_empty()));
    }

    // Row generic dyndns2 codes: stop that host (abuse: stop and shout).
    #[test]
    fn generic_dyndns2_codes_stop() {
        let table = [
            ("badauth", Reply::BadAuth),
            ("notfqdn", Reply::NotFqdn),
            ("numhost", Reply::NumHost),
            ("abuse", Reply::Abuse),
            ("badagent", Reply::BadAgent),
            ("!donator", Reply::NotDonator),
            ("!yours", Reply::NotYours),
        ];
        for (code, want) in table {
            for body in [
                format!("{code}\n"),
                code.to_uppercase(),
                format!("{code}\r\n"),
            ] {
                for provider in [Provider::Ovh, Provider::Dyndns2] {
                    let got = classify(provider, 200, None, body.as_bytes());
                    assert_eq!(got, want, "{body:?}");
                }
            }
            assert!(is_stop(&verdict(&want)), "{code}");
            assert_eq!(want.summary(), code);
        }
        let Verdict::Stop { fix } = verdict(&Reply::Abuse) else {
            panic!("abuse must stop");
        };
        assert!(fix.contains("abuse") && fix.contains("will not retry"));
        // The code outweighs an odd status.
        assert_eq!(ovh(403, "abuse\n"), Reply::Abuse);
    }

    // Row `911`, `dnserr`, 5xx: server trouble, retry with back-off.
    #[test]
    fn server_trouble_retries() {
        assert_eq!(ovh(200, "911\n"), Reply::ServerTrouble);
        assert_eq!(ovh(200, "dnserr\n"), Reply::DnsErr);
        assert_eq!(ovh(200, "DNSERR"), Reply::DnsErr);
        assert_eq!(ovh(500, "oops"), Reply::ServerError(500));
        assert_eq!(ovh(502, ""), Reply::ServerError(502));
        assert_eq!(ovh(503, ""), Reply::ServerError(503));
        for r in [Reply::ServerTrouble, Reply::DnsErr, Reply::ServerError(500)] {
            assert_eq!(verdict(&r), Verdict::Retry { after: None }, "{r:?}");
        }
        assert_eq!(Reply::ServerTrouble.summary(), "911");
        assert_eq!(Reply::ServerError(502).summary(), "502 server error");
    }

    // Row timeout / connection error: retry. (The client builds these; here only the policy.)
    #[test]
    fn transport_failures_retry() {
        for kind in [
            TransportKind::Timeout,
            TransportKind::Connect,
            TransportKind::Tls,
            TransportKind::Other,
        ] {
            let r = Reply::Transport {
                kind,
                message: "operation timed out".into(),
            };
            assert_eq!(verdict(&r), Verdict::Retry { after: None });
        }
        let r = Reply::Transport {
            kind: TransportKind::Timeout,
            message: "operation timed out".into(),
        };
        assert_eq!(r.summary(), "timeout: operation timed out");
    }

    #[test]
    fn rate_limits_retry_after_the_asked_wait() {
        let min = Some(Duration::from_secs(60));
        assert_eq!(
            classify(Provider::Ovh, 429, min, b""),
            Reply::RateLimited(min)
        );
        assert_eq!(
            classify(Provider::Ovh, 429, None, b""),
            Reply::RateLimited(None)
        );
        assert_eq!(
            classify(Provider::Ovh, 503, min, b""),
            Reply::RateLimited(min)
        );
        assert_eq!(
            verdict(&Reply::RateLimited(min)),
            Verdict::Retry { after: min }
        );
        assert_eq!(
            Reply::RateLimited(min).summary(),
            "rate limited: retry after 60s"
        );
    }

    #[test]
    fn unknown_replies_are_judged_by_status() {
        let r = ovh(200, "<!DOCTYPE html><html>captive portal</html>\n");
        assert!(
            matches!(&r, Reply::Unknown { status: 200, first_line } if first_line.starts_with("<!DOCTYPE"))
        );
        assert_eq!(verdict(&r), Verdict::Retry { after: None });
        let Verdict::Stop { fix } = verdict(&ovh(404, "Not Found")) else {
            panic!("unknown 4xx must stop");
        };
        assert!(fix.contains("404"));
        let Verdict::Stop { fix } = verdict(&ovh(301, "")) else {
            panic!("a redirect must stop");
        };
        assert!(fix.contains("301") && fix.contains("`server`"));
        assert_eq!(verdict(&ovh(408, "")), Verdict::Retry { after: None });
        assert_eq!(
            ovh(200, "").summary(),
            "unknown reply: 200 with an empty body"
        );
        assert_eq!(ovh(200, "hello").summary(), "unknown reply: 200 \"hello\"");
    }

    #[test]
    fn empty_body_is_unknown() {
        assert_eq!(
            ovh(200, ""),
            Reply::Unknown {
                status: 200,
                first_line: String::new()
            }
        );
        assert!(
            matches!(ovh(200, "\n\n"), Reply::Unknown { first_line, .. } if first_line.is_empty())
        );
    }

    #[test]
    fn format_bidi_and_separator_characters_never_pass() {
        let body = "{\"class\":\"Client::BadRequest\",\"message\":\"a\u{202E}b\u{200B}c\u{2066}d\u{2028}e \\u202e\\u2029\"}";
        assert_eq!(ovh(400, body), Reply::BadRequest("a?b?c?d?e ??".into()));
        let r = ovh(200, "\u{FEFF}hello\u{061C}\u{2069}\n");
        assert_eq!(
            r,
            Reply::Unknown {
                status: 200,
                first_line: "?hello??".into()
            }
        );
    }

    #[test]
    fn redacting_a_reply_masks_the_password_in_its_texts() {
        let secrets =
            server_text::Secrets::of("example.com-home", &crate::secret::Secret::new("hunter2"));
        let r = Reply::BadRequest("you sent hunter2".into()).redacted(&secrets);
        assert_eq!(r, Reply::BadRequest("you sent <redacted>".into()));
        assert_eq!(
            Reply::Good(Some(IP4)).redacted(&secrets),
            Reply::Good(Some(IP4))
        );
    }

    #[test]
    fn binary_body_is_unknown_and_printable() {
        let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        for status in [200, 404, 400, 302, 999, 0] {
            let r = classify(Provider::Ovh, status, None, &body);
            let text = match &r {
                Reply::Unknown { first_line, .. } | Reply::BadRequest(first_line) => {
                    first_line.clone()
                }
                other => panic!("{other:?}"),
            };
            assert!(text.chars().count() <= FIRST_LINE_MAX_CHARS);
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
            );
            let _ = verdict(&r);
            assert!(!r.summary().chars().any(char::is_control));
        }
        let r = classify(
            Provider::Dyndns2,
            200,
            None,
            &[0xff, 0xfe, 0x00, b'g', b'o', b'o', b'd'],
        );
        assert!(matches!(r, Reply::Unknown { first_line, .. } if first_line == "???good"));
    }

    #[test]
    fn huge_body_is_cut_to_a_short_first_line() {
        let huge = vec![b'a'; 10 * 1024 * 1024];
        let r = ovh(200, std::str::from_utf8(&huge).unwrap());
        assert!(
            matches!(&r, Reply::Unknown { first_line, .. } if first_line.len() == FIRST_LINE_MAX_CHARS)
        );
        let mut good = b"good 203.0.113.7\n".to_vec();
        good.extend_from_slice(&huge);
        assert_eq!(
            classify(Provider::Ovh, 200, None, &good),
            Reply::Good(Some(IP4))
        );
        // A huge JSON message is cut too.
        let msg = "m".repeat(100_000);
        let body = format!(r#"{{"class":"Client::BadRequest","message":"{msg}"}}"#);
        assert!(matches!(ovh(400, &body), Reply::BadRequest(m) if m.len() == MESSAGE_MAX_CHARS));
    }

    #[test]
    fn multibyte_text_is_cut_on_character_boundaries() {
        let body = "é".repeat(300);
        assert!(
            matches!(ovh(200, &body), Reply::Unknown { first_line, .. } if first_line.chars().count() == 100)
        );
        // A cut in the middle of a character (as MAX_REPLY_BYTES may do) doesn't panic.
        let bytes = "éééé".as_bytes();
        let _ = classify(Provider::Ovh, 200, None, &bytes[..3]);
    }

    #[test]
    fn every_stop_tells_the_user_something() {
        for r in [
            Reply::NoHost,
            Reply::BadSys,
            Reply::BadAuth,
            Reply::Unauthorized,
            Reply::BadRequest("x".into()),
            Reply::NotFqdn,
            Reply::NumHost,
            Reply::Abuse,
            Reply::BadAgent,
            Reply::NotDonator,
            Reply::NotYours,
        ] {
            assert!(is_stop(&verdict(&r)), "{r:?}");
            assert!(!r.summary().is_empty());
        }
    }
}
