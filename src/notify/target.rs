//! Notification targets: a `[[notify]] url` read into one of the request shapes the services
//! document, and the request each event becomes. Pure: no I/O, so every shape is a unit test.
//!
//! A plain `https://`/`http://` URL is a generic JSON webhook. The shoutrrr forms
//! (<https://containrrr.dev/shoutrrr/>) are read so that a URL already in use with
//! Watchtower, ddns-updater and the like can be pasted: `ntfy`, `gotify`, `discord`, `slack`,
//! `telegram` and `generic`. Their options are honoured or refused by name, never ignored: a
//! refused option fails `check` with the list of honoured ones.
//!
//! The URL carries tokens: a [`Target`] shows itself as `scheme://host/***` and keeps the
//! pieces of its URL that may be secret, to mask them in any error text.

use crate::hook::HookEvent;
use reqwest::Url;
use std::fmt;

/// What a notification is about (`events = [...]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The provider took a new address.
    Updated,
    /// An attempt failed; the agent retries.
    Error,
    /// A host stopped until a person fixes it.
    Stopped,
    /// The first `good`/`nochg` after an `error` or `stopped` of that record.
    Recovered,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Updated,
        EventKind::Error,
        EventKind::Stopped,
        EventKind::Recovered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Updated => "updated",
            EventKind::Error => "error",
            EventKind::Stopped => "stopped",
            EventKind::Recovered => "recovered",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|e| e.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The events a target takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Events(u8);

impl Events {
    pub fn of(kinds: &[EventKind]) -> Events {
        Events(kinds.iter().fold(0, |b, k| b | k.bit()))
    }

    /// `updated`, `stopped`, `recovered`: a failed attempt the agent retries on its own is news
    /// only for those who ask for it.
    pub fn default_set() -> Events {
        Events::of(&[EventKind::Updated, EventKind::Stopped, EventKind::Recovered])
    }

    pub fn takes(self, k: EventKind) -> bool {
        self.0 & k.bit() != 0
    }

    pub fn kinds(self) -> impl Iterator<Item = EventKind> {
        EventKind::ALL.into_iter().filter(move |k| self.takes(*k))
    }

    /// What a target that takes these events is told of an update attempt, if anything. A
    /// recovery is `recovered`; to a target that does not take it, an attempt that also changed
    /// the address is still `updated`: an address change is never lost.
    pub fn event_for(self, ev: &HookEvent) -> Option<EventKind> {
        use crate::hook::HookKind;
        let plain = match ev.event {
            HookKind::Updated => Some(EventKind::Updated),
            HookKind::Error => Some(EventKind::Error),
            HookKind::Stopped => Some(EventKind::Stopped),
            HookKind::Unchanged => None,
        };
        let kind = if ev.recovered && self.takes(EventKind::Recovered) {
            Some(EventKind::Recovered)
        } else {
            plain
        };
        kind.filter(|k| self.takes(*k))
    }
}

/// One HTTP request to make, built from an event. `Debug` shows no URL (it holds tokens).
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// A `[[notify]]` destination, read from its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    kind: Kind,
    /// `ntfy://ntfy.example/***`: the only way the URL is ever shown.
    shown: String,
    /// Pieces of the URL that may be secret (userinfo, path segments, option values), masked
    /// in error texts.
    secrets: Vec<String>,
    title: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    /// The documented JSON body, to a plain URL or `generic://` (with its `@header` options).
    Webhook {
        url: Url,
        method: &'static str,
        headers: Vec<(String, String)>,
    },
    /// ntfy: the text as the body, the title and options as headers
    /// (<https://docs.ntfy.sh/publish/>).
    Ntfy {
        url: Url,
        auth: Option<String>,
        priority: Option<String>,
        tags: Option<String>,
    },
    /// Gotify: `POST /message` with the application token in `X-Gotify-Key`
    /// (<https://gotify.net/docs/pushmsg>).
    Gotify {
        url: Url,
        token: String,
        priority: Option<u8>,
    },
    /// Discord: `POST /api/webhooks/ID/TOKEN` with `content`
    /// (<https://discord.com/developers/docs/resources/webhook#execute-webhook>).
    Discord { url: Url, username: Option<String> },
    /// Slack: an incoming webhook (`text`), or `chat.postMessage` with a bot token
    /// (<https://api.slack.com/messaging/webhooks>, <https://api.slack.com/methods/chat.postMessage>).
    Slack {
        url: Url,
        bearer: Option<String>,
        channel: Option<String>,
        username: Option<String>,
    },
    /// Telegram Bot API `sendMessage`, one chat per target
    /// (<https://core.telegram.org/bots/api#sendmessage>).
    Telegram {
        url: Url,
        chat: String,
        silent: bool,
    },
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.shown)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The options each shoutrrr scheme honours (README, "Notifications and health pings").
const NTFY_OPTIONS: &[&str] = &["title", "priority", "tags", "scheme"];
const GOTIFY_OPTIONS: &[&str] = &["title", "priority", "disabletls"];
const DISCORD_OPTIONS: &[&str] = &["title", "username"];
const SLACK_OPTIONS: &[&str] = &["title", "botname", "channel"];
const TELEGRAM_OPTIONS: &[&str] = &["title", "chats", "notification"];
const GENERIC_OPTIONS: &[&str] = &["title", "method", "disabletls"];
/// shoutrrr's generic options that change the body: the body here is always the documented
/// JSON, so these are refused rather than silently not applied.
const GENERIC_REFUSED: &[&str] = &["template", "contenttype", "messagekey", "titlekey"];

/// The query options of a shoutrrr URL, taken one by one; what is left at the end is refused.
struct Options {
    scheme: &'static str,
    honoured: &'static [&'static str],
    pairs: Vec<(String, String)>,
}

impl Options {
    fn of(url: &Url, scheme: &'static str, honoured: &'static [&'static str]) -> Options {
        Options {
            scheme,
            honoured,
            pairs: url
                .query_pairs()
                // Option names are case-insensitive (`titleKey`); a generic `@header`'s is kept.
                .map(|(k, v)| match k.starts_with('@') {
                    true => (k.into_owned(), v.into_owned()),
                    false => (k.to_ascii_lowercase(), v.into_owned()),
                })
                .collect(),
        }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.remove(i).1)
    }

    fn yes(&mut self, name: &str) -> Result<bool, String> {
        match self.take(name).as_deref() {
            None => Ok(false),
            Some("yes" | "true" | "1") => Ok(true),
            Some("no" | "false" | "0") => Ok(false),
            Some(_) => Err(format!("{} option {name}: yes or no", self.scheme)),
        }
    }

    fn done(self) -> Result<(), String> {
        match self.pairs.first() {
            None => Ok(()),
            Some((k, _)) => Err(format!(
                "{} option {k:?} is not supported (supported: {})",
                self.scheme,
                self.honoured.join(", ")
            )),
        }
    }
}

/// A header value or title the user gave: printable ASCII, since it travels in a header.
fn header_text(what: &str, v: String) -> Result<String, String> {
    if v.is_empty() || v.len() > 200 || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!("{what}: 1 to 200 printable ASCII characters"));
    }
    Ok(v)
}

/// shoutrrr's header option name (`acceptLanguage`, `X-Token`) as a header name.
fn header_name(name: &str) -> Result<String, String> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("a generic @header name: letters, digits and '-'".into());
    }
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() && !out.ends_with('-') {
            out.push('-');
        }
        out.push(c);
    }
    Ok(out)
}

fn base(scheme: &str, host: &str, port: Option<u16>) -> Result<Url, String> {
    let port = port.map_or(String::new(), |p| format!(":{p}"));
    Url::parse(&format!("{scheme}://{host}{port}/"))
        .map_err(|_| "the host is not valid".to_string())
}

fn host_of(url: &Url) -> Result<String, String> {
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => Err(format!("{}: the URL names no host", url.scheme())),
    }
}

fn segments(url: &Url) -> Vec<String> {
    url.path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A percent-encoded URL part (userinfo, a path segment) as the service expects it (the
/// decoder of the `url` crate's own percent-encoding, already in the binary).
fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Reads a `[[notify]] url` into its targets (a Telegram URL with several chats is one target
/// per chat). Errors never quote the URL: it holds tokens.
pub fn parse(text: &str) -> Result<Vec<Target>, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    let mut secrets = vec![url.as_str().to_string()];
    let mut pieces = segments(&url);
    pieces.push(url.username().to_string());
    pieces.extend(url.password().map(str::to_string));
    for p in pieces {
        secrets.push(decoded(&p));
    }
    for (_, v) in url.query_pairs() {
        secrets.push(v.into_owned());
    }
    secrets.retain(|s| s.len() >= 3);
    let host = host_of(&url)?;
    let scheme = url.scheme().to_string();
    let port = url.port();
    let shown_port = port.map_or(String::new(), |p| format!(":{p}"));
    let mut title = None;
    let mut kinds = Vec::new();
    match scheme.as_str() {
        "http" | "https" if host == "hooks.slack.com" => {
            kinds.push(Kind::Slack {
                url: url.clone(),
                bearer: None,
                channel: None,
                username: None,
            });
        }
        "http" | "https" => kinds.push(Kind::Webhook {
            url: url.clone(),
            method: "POST",
            headers: Vec::new(),
        }),
        "generic" | "generic+http" | "generic+https" => {
            let mut o = Options::of(&url, "generic", GENERIC_OPTIONS);
            title = o.take("title");
            let plain = o.yes("disabletls")? || scheme == "generic+http";
            let method = match o.take("method").map(|m| m.to_ascii_uppercase()).as_deref() {
                None | Some("POST") => "POST",
                Some("PUT") => "PUT",
                Some("PATCH") => "PATCH",
                Some(_) => return Err("generic option method: POST, PUT or PATCH".into()),
            };
            if let Some((k, _)) = o
                .pairs
                .iter()
                .find(|(k, _)| GENERIC_REFUSED.contains(&k.as_str()))
            {
                return Err(format!(
                    "generic option {k:?} is not supported: the body is always the documented JSON (supported: {})",
                    GENERIC_OPTIONS.join(", ")
                ));
            }
            // As shoutrrr: `@name=value` is a header (`@acceptLanguage` → `Accept-Language`),
            // `_name` is forwarded as `name`, other parameters are forwarded as they are.
            let mut headers = Vec::new();
            let mut forwarded = Vec::new();
            for (k, v) in o.pairs {
                if let Some(name) = k.strip_prefix('@') {
                    headers.push((header_name(name)?, header_text("a generic @header", v)?));
                } else if k.starts_with('$') {
                    return Err(format!(
                        "generic option {k:?} is not supported: the body is always the documented JSON"
                    ));
                } else {
                    let k = k.strip_prefix('_').map_or(k.clone(), str::to_string);
                    forwarded.push((k, v));
                }
            }
            let mut to = base(if plain { "http" } else { "https" }, &host, port)?;
            to.set_path(url.path());
            if !forwarded.is_empty() {
                to.query_pairs_mut().extend_pairs(forwarded);
            }
            kinds.push(Kind::Webhook {
                url: to,
                method,
                headers,
            });
        }
        "ntfy" => {
            let mut o = Options::of(&url, "ntfy", NTFY_OPTIONS);
            title = o.take("title");
            let web = match o.take("scheme").as_deref() {
                None | Some("https") => "https",
                Some("http") => "http",
                Some(_) => return Err("ntfy option scheme: http or https".into()),
            };
            // ntfy checks the value itself (1-5, min…max, urgent) and says so in its reply.
            let priority = o
                .take("priority")
                .map(|p| header_text("ntfy option priority", p))
                .transpose()?;
            let tags = o
                .take("tags")
                .map(|t| header_text("ntfy option tags", t))
                .transpose()?;
            o.done()?;
            let topic = match segments(&url).as_slice() {
                [t] => t.clone(),
                _ => return Err("ntfy: the URL must name one topic (ntfy://host/topic)".into()),
            };
            let mut to = base(web, &host, port)?;
            to.set_path(&topic);
            let (user, pass) = (decoded(url.username()), url.password().map(decoded));
            let auth = match (user.as_str(), pass) {
                ("", None) => None,
                // ntfy's access tokens: `ntfy://:tk_…@host/topic`.
                ("", Some(token)) => Some(format!("Bearer {token}")),
                (user, pass) => Some(basic(user, pass.as_deref().unwrap_or(""))),
            };
            kinds.push(Kind::Ntfy {
                url: to,
                auth,
                priority,
                tags,
            });
        }
        "gotify" => {
            let mut o = Options::of(&url, "gotify", GOTIFY_OPTIONS);
            title = o.take("title");
            let plain = o.yes("disabletls")?;
            let priority = match o.take("priority") {
                None => None,
                Some(p) => Some(
                    p.parse::<u8>()
                        .map_err(|_| "gotify option priority: a number, 0 to 255".to_string())?,
                ),
            };
            o.done()?;
            let mut path = segments(&url);
            let Some(token) = path.pop() else {
                return Err(
                    "gotify: the URL must end with the application token (gotify://host/TOKEN)"
                        .into(),
                );
            };
            let mut to = base(if plain { "http" } else { "https" }, &host, port)?;
            path.push("message".into());
            to.set_path(&path.join("/"));
            kinds.push(Kind::Gotify {
                url: to,
                token: decoded(&token),
                priority,
            });
        }
        "discord" => {
            let mut o = Options::of(&url, "discord", DISCORD_OPTIONS);
            title = o.take("title");
            let username = o
                .take("username")
                .map(|u| header_text("discord option username", u))
                .transpose()?;
            o.done()?;
            let token = decoded(url.username());
            if token.is_empty() || url.password().is_some() || !segments(&url).is_empty() {
                return Err("discord: the URL must be discord://TOKEN@WEBHOOK_ID".into());
            }
            let mut to = Url::parse("https://discord.com/").expect("a fixed URL");
            to.set_path(&format!("api/webhooks/{host}/{token}"));
            kinds.push(Kind::Discord { url: to, username });
        }
        "slack" => {
            let mut o = Options::of(&url, "slack", SLACK_OPTIONS);
            title = o.take("title");
            let username = o
                .take("botname")
                .map(|u| header_text("slack option botname", u))
                .transpose()?;
            let channel = o.take("channel");
            o.done()?;
            let (kind, token) = (
                url.username(),
                url.password().map(decoded).unwrap_or_default(),
            );
            if token.is_empty() {
                return Err("slack: the URL must be slack://hook:TOKEN@webhook or slack://xoxb:TOKEN@CHANNEL".into());
            }
            match kind {
                "hook" => {
                    let parts: Vec<&str> = token.split(['-', '/']).collect();
                    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
                        return Err("slack: a webhook token has three parts (slack://hook:AAA-BBB-CCC@webhook)".into());
                    }
                    let mut to = Url::parse("https://hooks.slack.com/").expect("a fixed URL");
                    to.set_path(&format!("services/{}", parts.join("/")));
                    kinds.push(Kind::Slack {
                        url: to,
                        bearer: None,
                        channel: None,
                        username,
                    });
                }
                "xoxb" | "xoxp" => {
                    let to =
                        Url::parse("https://slack.com/api/chat.postMessage").expect("a fixed URL");
                    kinds.push(Kind::Slack {
                        url: to,
                        bearer: Some(format!("Bearer {kind}-{token}")),
                        channel: Some(channel.unwrap_or(host.clone())),
                        username,
                    });
                }
                _ => return Err("slack: the token must start with hook:, xoxb: or xoxp:".into()),
            }
        }
        "telegram" => {
            let mut o = Options::of(&url, "telegram", TELEGRAM_OPTIONS);
            title = o.take("title");
            let chats = o.take("chats").unwrap_or_default();
            // shoutrrr's `notification=no` sends silently.
            let silent = match o.take("notification").as_deref() {
                None | Some("yes" | "true") => false,
                Some("no" | "false") => true,
                Some(_) => return Err("telegram option notification: yes or no".into()),
            };
            o.done()?;
            let token = format!(
                "{}:{}",
                decoded(url.username()),
                url.password().map(decoded).unwrap_or_default()
            );
            if url.username().is_empty() || url.password().is_none() {
                return Err(
                    "telegram: the URL must be telegram://BOT_TOKEN@telegram?chats=ID".into(),
                );
            }
            let chats: Vec<&str> = chats
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            if chats.is_empty() {
                return Err("telegram: name the chats (?chats=ID[,ID…])".into());
            }
            let mut to = Url::parse("https://api.telegram.org/").expect("a fixed URL");
            to.set_path(&format!("bot{token}/sendMessage"));
            secrets.push(token);
            for chat in chats {
                kinds.push(Kind::Telegram {
                    url: to.clone(),
                    chat: chat.to_string(),
                    silent,
                });
            }
        }
        other => {
            return Err(format!(
                "the scheme {other}:// is not supported (https, http, ntfy, gotify, discord, slack, telegram, generic)"
            ));
        }
    }
    let title = title.map(|t| header_text("title", t)).transpose()?;
    // Longest first, so a token inside the whole URL is masked as the whole URL.
    secrets.sort_unstable_by_key(|s| std::cmp::Reverse(s.len()));
    let shown_scheme = match scheme.as_str() {
        "generic+https" => "generic",
        s => s,
    };
    Ok(kinds
        .into_iter()
        .map(|kind| Target {
            shown: match &kind {
                Kind::Telegram { chat, .. } => format!("telegram://***@{host}?chats={chat}"),
                Kind::Discord { .. } => format!("discord://***@{host}"),
                _ => format!("{shown_scheme}://{host}{shown_port}/***"),
            },
            kind,
            secrets: secrets.clone(),
            title: title.clone(),
        })
        .collect())
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    format!("Basic {b}")
}

/// `2026-12-05T06:32:09Z` (RFC 3339, UTC).
pub fn rfc3339(t: crate::clock::UnixTime) -> String {
    let (year, month, day, secs) = t.civil();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The JSON body of a generic webhook (README, "Notifications and health pings"): every key
/// always present, absent values `null`.
#[derive(serde::Serialize)]
struct Body<'a> {
    event: &'static str,
    host: &'a str,
    family: &'static str,
    ip: Option<std::net::IpAddr>,
    old_ip: Option<std::net::IpAddr>,
    reply: &'a str,
    error: Option<&'a str>,
    time: String,
    /// The interface the address came from (the active uplink of a failover list).
    interface: Option<&'a str>,
}

/// The JSON body of every other service: each sets the keys it documents, the rest are left
/// out (one serializer for all, rather than one per service).
#[derive(serde::Serialize, Default)]
struct Service<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chat_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    priority: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_notification: Option<bool>,
}

impl Service<'_> {
    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The one-line text of an event, for the services that show a message.
pub fn text(kind: EventKind, ev: &HookEvent) -> String {
    let record = format!("{} ({})", ev.host, ev.family.record_type());
    let ip =
        |v: Option<std::net::IpAddr>| v.map_or_else(|| "unknown".to_string(), |a| a.to_string());
    let error = ev.error.as_deref().unwrap_or(&ev.reply);
    match kind {
        EventKind::Updated => format!(
            "{record} now points at {}, was {}{}",
            ip(ev.ip),
            ip(ev.old_ip),
            ev.interface
                .as_deref()
                .map_or_else(String::new, |i| format!(" (via {i})"))
        ),
        EventKind::Error => format!(
            "{record}: the update to {} failed: {error}; retrying",
            ip(ev.ip)
        ),
        EventKind::Stopped => format!(
            "{record} is stopped after \"{error}\": fix it, then run `dynhostd retry {}`",
            ev.host
        ),
        EventKind::Recovered => format!(
            "{record} recovered: it points at {} ({})",
            ip(ev.ip),
            ev.reply
        ),
    }
}

impl Target {
    /// The request that tells this target about `ev` as `kind`.
    pub fn request(&self, kind: EventKind, ev: &HookEvent) -> Request {
        let title = self
            .title
            .clone()
            .unwrap_or_else(|| format!("dynhostd: {} {}", ev.host, kind.as_str()));
        let message = text(kind, ev);
        let json_type = ("Content-Type", "application/json".to_string());
        let (method, url, headers, body): (_, _, Vec<(&str, String)>, _) = match &self.kind {
            Kind::Webhook {
                url,
                method,
                headers,
            } => {
                let body = Body {
                    event: kind.as_str(),
                    host: &ev.host,
                    family: ev.family.name(),
                    ip: ev.ip,
                    old_ip: ev.old_ip,
                    reply: &ev.reply,
                    error: ev.error.as_deref(),
                    time: rfc3339(ev.time),
                    interface: ev.interface.as_deref(),
                };
                let body = serde_json::to_vec(&body).unwrap_or_default();
                let mut h = vec![json_type];
                h.extend(headers.iter().map(|(k, v)| (k.as_str(), v.clone())));
                (*method, url, h, body)
            }
            Kind::Ntfy {
                url,
                auth,
                priority,
                tags,
            } => {
                let mut h = vec![
                    ("Title", title),
                    ("Content-Type", "text/plain; charset=utf-8".into()),
                ];
                let tag = match kind {
                    EventKind::Updated => "globe_with_meridians",
                    EventKind::Recovered => "white_check_mark",
                    EventKind::Error => "warning",
                    EventKind::Stopped => "rotating_light",
                };
                h.push(("Tags", tags.clone().unwrap_or_else(|| tag.to_string())));
                if let Some(p) = priority {
                    h.push(("Priority", p.clone()));
                }
                if let Some(a) = auth {
                    h.push(("Authorization", a.clone()));
                }
                ("POST", url, h, message.into_bytes())
            }
            Kind::Gotify {
                url,
                token,
                priority,
            } => {
                let v = Service {
                    title: Some(&title),
                    message: Some(&message),
                    priority: *priority,
                    ..Service::default()
                };
                let h = vec![json_type, ("X-Gotify-Key", token.clone())];
                ("POST", url, h, v.json())
            }
            Kind::Discord { url, username } => {
                let v = Service {
                    content: Some(&format!("**{title}**\n{message}")),
                    username: username.as_deref(),
                    ..Service::default()
                }
                .json();
                ("POST", url, vec![json_type], v)
            }
            Kind::Slack {
                url,
                bearer,
                channel,
                username,
            } => {
                let v = Service {
                    text: Some(&format!("*{title}*\n{message}")),
                    channel: channel.as_deref(),
                    username: username.as_deref(),
                    ..Service::default()
                }
                .json();
                let mut h = vec![(
                    "Content-Type",
                    "application/json; charset=utf-8".to_string(),
                )];
                if let Some(b) = bearer {
                    h.push(("Authorization", b.clone()));
                }
                ("POST", url, h, v)
            }
            Kind::Telegram { url, chat, silent } => {
                let v = Service {
                    chat_id: Some(chat),
                    text: Some(&format!("{title}\n{message}")),
                    disable_notification: silent.then_some(true),
                    ..Service::default()
                }
                .json();
                ("POST", url, vec![json_type], v)
            }
        };
        Request {
            method,
            url: url.clone(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            body,
        }
    }

    /// `text` with every secret piece of the URL masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        // Longest first (sorted by `parse`).
        for p in &self.secrets {
            out = out.replace(p.as_str(), "***");
        }
        out
    }

    /// Whether requests go over https (the TLS roots are then needed).
    pub fn https(&self) -> bool {
        match &self.kind {
            Kind::Webhook { url, .. }
            | Kind::Ntfy { url, .. }
            | Kind::Gotify { url, .. }
            | Kind::Discord { url, .. }
            | Kind::Slack { url, .. }
            | Kind::Telegram { url, .. } => url.scheme() == "https",
        }
    }
}

#[cfg(test)]
#[path = "target_tests.rs"]
mod tests;
