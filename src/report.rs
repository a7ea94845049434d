//! What `dynhostd status` and `dynhostd detect` print: plain data built from the state file or
//! a netlink dump, rendered as a readable table or as JSON. Pure, so the output is tested
//! without a kernel or a file.

use crate::config::Config;
use crate::record::{Family, RecordKey};
use crate::state::{HistoryEntry, State};
use crate::wan::policy::{self, AddressPolicy, AddressSource, Uplinks, WanChoice};
use crate::wan::{Lifetime, NetView, Scope, WanAddress};
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::net::IpAddr;

/// One record's line in `dynhostd status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordStatus {
    pub hostname: String,
    pub record: &'static str,
    pub enabled: bool,
    pub published: Option<IpAddr>,
    pub published_at: Option<u64>,
    pub last_reply: Option<String>,
    pub last_attempt_at: Option<u64>,
    pub failures: u32,
    pub retry_at: Option<u64>,
    pub stopped: Option<String>,
    pub fix: Option<String>,
    /// With `--verify`: what the authoritative name servers hold, and whether it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    /// Its last events, oldest first (the state file keeps [`crate::state::HISTORY_MAX`]).
    pub history: Vec<HistoryEntry>,
}

/// The status of every configured record, from the state file alone (no network).
pub fn status(config: &Config, state: &State) -> Vec<RecordStatus> {
    let mut out = Vec::new();
    for h in &config.hosts {
        for key in h.records() {
            let rec = state.records.get(&key).cloned().unwrap_or_default();
            // A stop only holds while the entry is unchanged (the agent lifts it otherwise).
            let stop = rec.stopped.filter(|s| s.config == h.fingerprint());
            out.push(RecordStatus {
                hostname: key.hostname.clone(),
                record: key.family.record_type(),
                enabled: h.enabled,
                published: rec.published,
                published_at: rec.published_at,
                last_reply: rec.last_reply.as_deref().map(from_state_file),
                last_attempt_at: rec.last_attempt_at,
                failures: rec.failures,
                retry_at: rec.retry_at,
                stopped: stop.as_ref().map(|s| from_state_file(&s.reason)),
                fix: stop.map(|s| from_state_file(&s.fix)),
                dns: None,
                history: rec
                    .history
                    .into_iter()
                    .map(|h| HistoryEntry {
                        text: from_state_file(&h.text),
                        ..h
                    })
                    .collect(),
            });
        }
    }
    out
}

/// Longest text shown from one field of the state file; the agent writes far less.
const STATE_TEXT_MAX_CHARS: usize = 300;

/// A text field of the state file, as `status` shows it. The agent only writes clean text, but
/// the file can be edited by anyone who can write it: control, format and bidi characters and
/// line separators are shown as `?` (as at the provider border) and the length is cut, so a
/// tampered file can't rewrite the terminal or forge a line.
fn from_state_file(s: &str) -> String {
    crate::provider::server_text::clean(s, STATE_TEXT_MAX_CHARS)
}

/// Fills in the `dns` column from `dynhostd status --verify`'s answers.
pub fn add_dns(
    rows: &mut [RecordStatus],
    found: &[(crate::record::RecordKey, Result<Vec<IpAddr>, String>)],
) {
    for r in rows.iter_mut() {
        let Some((_, shows)) = found
            .iter()
            .find(|(k, _)| k.hostname == r.hostname && k.family.record_type() == r.record)
        else {
            continue;
        };
        r.dns = Some(match shows {
            Err(e) => format!("cannot check: {e}"),
            Ok(v) if v.is_empty() => "no record".to_string(),
            Ok(v) => {
                let list = v
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                match r.published {
                    Some(p) if v.len() == 1 && v[0] == p => format!("{list} (matches)"),
                    Some(p) => format!("{list} (differs from {p})"),
                    None => list,
                }
            }
        });
    }
}

pub fn status_table(rows: &[RecordStatus]) -> String {
    let mut table = vec![[
        "HOST".to_string(),
        "RECORD".into(),
        "PUBLISHED".into(),
        "SINCE".into(),
        "LAST REPLY".into(),
        "STATE".into(),
    ]];
    for r in rows {
        let state = if !r.enabled {
            "disabled".to_string()
        } else if let Some(reason) = &r.stopped {
            format!("STOPPED ({reason})")
        } else if let Some(at) = r.retry_at {
            format!("retrying at {} ({} failures)", format_unix(at), r.failures)
        } else if r.published.is_some() {
            "ok".into()
        } else {
            "unknown".into()
        };
        table.push([
            r.hostname.clone(),
            r.record.to_string(),
            r.published.map_or("-".into(), |ip| ip.to_string()),
            r.published_at.map_or("-".into(), format_unix),
            r.last_reply.clone().unwrap_or_else(|| "-".into()),
            state,
        ]);
    }
    let mut out = render_columns(&table);
    out.push_str(&recent_events(&rows_json(rows)));
    for r in rows {
        if let Some(dns) = &r.dns {
            let _ = writeln!(out, "{}/{}: name servers hold {dns}", r.hostname, r.record);
        }
    }
    for r in rows {
        if let (Some(reason), Some(fix)) = (&r.stopped, &r.fix) {
            let _ = writeln!(
                out,
                "\n{}/{} is stopped after \"{reason}\": {fix}.\nOnce that is fixed (at the provider or in its [[host]] entry), run `dynhostd retry {}`.",
                r.hostname, r.record, r.hostname
            );
        }
    }
    out
}

/// How many of the newest events `status` shows under its table.
pub const RECENT_EVENTS: usize = 5;

/// The [`RECENT_EVENTS`] newest events of all records, under `status`'s table; nothing when
/// no record has any. `rows` are `status --json`'s (from the agent or the state file).
pub fn recent_events(rows: &[Value]) -> String {
    let events = events_table(rows, None, RECENT_EVENTS);
    if events.is_empty() {
        return events;
    }
    format!("\nrecent events (a host's whole history: `dynhostd status --history HOST`):\n{events}")
}

/// `status --history HOST`: every event of the host's records, newest first; None when `host`
/// is in none of `rows`.
pub fn history_text(host: &str, rows: &[Value]) -> Option<String> {
    rows.iter().find(|r| r["hostname"] == host)?;
    let events = events_table(rows, Some(host), usize::MAX);
    Some(if events.is_empty() {
        format!("{host}: no events yet (an update, a failure or a stop is one)\n")
    } else {
        format!("{host}, newest first:\n{events}")
    })
}

/// `status --history HOST --json`: `{hostname, record, history}` of each of the host's records.
pub fn history_json(host: &str, rows: &[Value]) -> Value {
    rows.iter()
        .filter(|r| r["hostname"] == host)
        .map(|r| {
            let mut one = serde_json::Map::new();
            for k in ["hostname", "record", "history"] {
                one.insert(k.into(), r[k].clone());
            }
            Value::Object(one)
        })
        .collect()
}

/// The events in `rows` (`status --json`'s, each with its `history`), of `host`'s records only
/// when given, newest first, at most `limit`, one aligned line each: time, record, event,
/// address, reply or error. Every text is cleaned: the rows may have come over the socket.
/// Empty when there are none.
pub fn events_table(rows: &[Value], host: Option<&str>, limit: usize) -> String {
    let text = |v: &Value| from_state_file(v.as_str().unwrap_or("-"));
    let mut all: Vec<(u64, [String; 5])> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| host.is_none_or(|h| r["hostname"] == h))
    {
        let name = format!("{}/{}", text(&r["hostname"]), text(&r["record"]));
        // Newest first within a record too, so that the stable sort below keeps the later of
        // two events of the same second first.
        for h in r["history"].as_array().into_iter().flatten().rev() {
            let at = h["at"].as_u64().unwrap_or_default();
            let line = [
                format!("  {}", format_unix(at)),
                name.clone(),
                text(&h["event"]),
                text(&h["ip"]),
                text(&h["text"]),
            ];
            all.push((at, line));
        }
    }
    // A wall clock that stepped back is shown as it was read.
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    let rows: Vec<[String; 5]> = all.into_iter().take(limit).map(|(_, l)| l).collect();
    if rows.is_empty() {
        String::new()
    } else {
        render_columns(&rows)
    }
}

/// Rows as `status --json` shows them (the same fields as [`RecordStatus`]).
pub fn rows_json(rows: &[RecordStatus]) -> Vec<Value> {
    rows.iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect()
}

fn render_columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2026-11-23 06:44:40 UTC` from Unix seconds (civil-from-days, proleptic Gregorian).
pub fn format_unix(secs: u64) -> String {
    crate::clock::UnixTime(secs).to_string()
}

/// One address as `dynhostd detect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub peer: Option<IpAddr>,
    pub scope: Scope,
    pub flags: Vec<&'static str>,
    pub preferred: Lifetime,
    pub valid: Lifetime,
    /// None when it counts; otherwise why not.
    pub rejected: Option<policy::Rejection>,
    pub chosen: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The WAN interface's name, if one was found.
    pub wan: Option<String>,
    /// How it was found: "configured", "default route", or "the first usable of the failover list".
    pub wan_from: &'static str,
    pub point_to_point: bool,
    pub ipv4: WanChoice,
    pub ipv6: WanChoice,
    pub candidates: Vec<Candidate>,
    /// Addresses on the other interfaces, for context.
    pub others: Vec<(String, IpAddr, u8)>,
    /// `[detect] mode`.
    pub http_mode: &'static str,
    /// What the what's-my-IP sources said, for each family that needed (or was asked) it.
    pub http: Vec<crate::public_ip::PublicAddress>,
    /// Each configured record: where its address comes from and what it would publish now.
    pub hosts: Vec<HostSource>,
    /// `[wan] interface` as a failover list: each interface and the families it is usable for.
    pub failover: Option<String>,
}

/// One record as `detect` explains it.
#[derive(Debug, Clone, Serialize)]
pub struct HostSource {
    /// `home.example.com/AAAA`.
    pub record: String,
    /// Where its address comes from, in words.
    pub source: String,
    /// What it would publish now, if anything.
    pub publish: Option<IpAddr>,
    /// Why nothing, when nothing.
    pub why: Option<String>,
    /// For a neighbour source: its entries and their states.
    pub neighbour: Option<String>,
}

/// Each record's source resolved on `view`; records following the `[wan]` take what `d` found
/// for their family (HTTP detection included).
pub fn host_sources(
    view: &NetView,
    interface: Option<&str>,
    policy: &AddressPolicy,
    records: &[(RecordKey, AddressSource)],
    d: &Detection,
) -> Vec<HostSource> {
    records
        .iter()
        .map(|(key, source)| {
            let choice = match (source, key.family) {
                (AddressSource::Wan, Family::V4) => d.ipv4,
                (AddressSource::Wan, Family::V6) => d.ipv6,
                _ => policy::resolve(view, interface, source, key.family, policy, None),
            };
            let source_text = match (source, &d.wan) {
                (AddressSource::Wan, Some(wan)) => format!("{source} ({wan})"),
                (AddressSource::Uplinks(u), _) => {
                    let now = u.first_usable(view, key.family, policy, false);
                    format!("{source} (now {})", now.unwrap_or("none"))
                }
                _ => source.to_string(),
            };
            let why = match choice {
                WanChoice::Public(_) => None,
                WanChoice::BehindNat if *source == AddressSource::Wan => Some(choice_text(choice)),
                _ => Some(policy::explain(view, interface, source, key.family, policy)),
            };
            HostSource {
                record: key.to_string(),
                source: source_text,
                publish: choice.public(),
                why,
                neighbour: policy::neighbour_entries(view, source),
            }
        })
        .collect()
}

fn flag_names(a: &WanAddress) -> Vec<&'static str> {
    let f = &a.flags;
    let v6 = a.addr.is_ipv6();
    [
        (f.secondary && !v6, "secondary"),
        (f.temporary && v6, "temporary"),
        (f.tentative, "tentative"),
        (f.deprecated, "deprecated"),
        (f.dadfailed, "dadfailed"),
        (f.optimistic, "optimistic"),
        (f.permanent, "permanent"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

/// What the agent sees on `view`: the WAN, every candidate with its flags, which one counts.
pub fn detect(view: &NetView, interface: Option<&str>, policy: &AddressPolicy) -> Detection {
    let wan = view.wan_link(interface);
    let addrs: Vec<&WanAddress> = wan.map_or_else(Vec::new, |l| view.addrs_on(l.index).collect());
    let ipv4 = policy::choose(addrs.iter().copied(), Family::V4, policy, None);
    let ipv6 = policy::choose(addrs.iter().copied(), Family::V6, policy, None);
    let chosen = |ip: IpAddr| [ipv4, ipv6].contains(&WanChoice::Public(ip));
    let candidates = addrs
        .iter()
        .map(|a| Candidate {
            address: a.addr,
            prefix_len: a.prefix_len,
            peer: a.peer,
            scope: a.scope,
            flags: flag_names(a),
            preferred: a.preferred,
            valid: a.valid,
            rejected: policy::judge(a, policy).err(),
            chosen: chosen(a.addr),
        })
        .collect();
    let others = view
        .addrs()
        .filter(|a| Some(a.index) != wan.map(|l| l.index))
        .filter_map(|a| {
            view.link(a.index)
                .map(|l| (l.name.clone(), a.addr, a.prefix_len))
        })
        .collect();
    Detection {
        wan: wan.map(|l| l.name.clone()),
        wan_from: if interface.is_some() {
            "configured"
        } else {
            "default route"
        },
        point_to_point: wan.is_some_and(|l| l.point_to_point),
        ipv4,
        ipv6,
        candidates,
        others,
        http_mode: "auto",
        http: Vec::new(),
        hosts: Vec::new(),
        failover: None,
    }
}

/// A failover list as `detect` shows it: each interface with the families it is usable for
/// now (`nat_ok`: behind NAT counts, as for the `[wan]`).
pub fn failover_text(view: &NetView, u: &Uplinks, policy: &AddressPolicy, nat_ok: bool) -> String {
    let each = u.names.iter().map(|n| {
        let ok = |f: &&Family| u.usable(view, n, **f, policy, nat_ok);
        let fams: Vec<&str> = [Family::V4, Family::V6]
            .iter()
            .filter(ok)
            .map(|f| f.name())
            .collect();
        match fams.as_slice() {
            [] => format!("{n} (not usable)"),
            f => format!("{n} (usable for {})", f.join(", ")),
        }
    });
    each.collect::<Vec<_>>().join(", ")
}

fn lifetime(l: Lifetime) -> String {
    match l {
        Lifetime::Forever => "forever".into(),
        Lifetime::Secs(s) => format!("{s}s"),
    }
}

fn choice_text(c: WanChoice) -> String {
    match c {
        WanChoice::Public(ip) => format!("{ip} (counts)"),
        WanChoice::BehindNat => "behind NAT: only private/CGNAT addresses on the WAN".into(),
        WanChoice::Nothing => "no routable address".into(),
    }
}

pub fn detection_text(d: &Detection, configured: Option<&str>) -> String {
    let mut out = String::new();
    match &d.wan {
        Some(name) => {
            let _ = writeln!(
                out,
                "WAN interface: {name} ({}{})",
                d.wan_from,
                if d.point_to_point {
                    ", point-to-point"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = match configured {
                Some(name) => writeln!(out, "WAN interface: {name} (configured) is not present"),
                None => writeln!(out, "WAN interface: none (no default route)"),
            };
        }
    }
    if let Some(f) = &d.failover {
        let _ = writeln!(out, "Failover list: {f}");
    }
    let _ = writeln!(out, "ipv4: {}", choice_text(d.ipv4));
    let _ = writeln!(out, "ipv6: {}", choice_text(d.ipv6));
    if !d.candidates.is_empty() {
        let _ = writeln!(out, "\nCandidates on the WAN:");
    }
    for c in &d.candidates {
        let peer = c.peer.map_or(String::new(), |p| format!(" peer {p}"));
        let flags = if c.flags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", c.flags.join(","))
        };
        let verdict = match (c.rejected, c.chosen) {
            (None, true) => "counts: chosen".to_string(),
            (None, false) => "counts, but another one ranks higher".to_string(),
            (Some(r), _) => format!("does not count: {r}"),
        };
        let _ = writeln!(
            out,
            "  {}/{}{peer}{flags} preferred {} valid {}\n      → {verdict}",
            c.address,
            c.prefix_len,
            lifetime(c.preferred),
            lifetime(c.valid)
        );
    }
    for found in &d.http {
        let _ = writeln!(
            out,
            "\nHTTP detection ({}, [detect] mode = {}):",
            found.family, d.http_mode
        );
        for src in &found.sources {
            let said = match (&src.address, &src.problem) {
                (Some(ip), _) => ip.to_string(),
                (None, Some(p)) => p.clone(),
                (None, None) => "-".into(),
            };
            let _ = writeln!(out, "  {}: {said}", src.url);
        }
        let _ = writeln!(out, "  → {}", found.why);
    }
    if !d.hosts.is_empty() {
        let _ = writeln!(out, "\nHosts:");
    }
    for h in &d.hosts {
        let verdict = match (&h.publish, &h.why) {
            (Some(ip), _) => format!("would publish {ip}"),
            (None, Some(why)) => format!("nothing to publish: {why}"),
            (None, None) => "nothing to publish".into(),
        };
        let _ = writeln!(out, "  {} ← {}", h.record, h.source);
        if let Some(n) = &h.neighbour {
            let _ = writeln!(out, "      {n}");
        }
        let _ = writeln!(out, "      → {verdict}");
    }
    if !d.others.is_empty() {
        let _ = writeln!(out, "\nOther interfaces (not the WAN):");
        for (name, ip, len) in &d.others {
            let _ = writeln!(out, "  {name}: {ip}/{len}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RecordKey;
    use crate::state::{PublishedRecord, Stopped};
    use crate::wan::{AddrFlags, DefaultRoute, Link, NetSnapshot};
    use std::path::Path;

    #[test]
    fn unix_time_formatting() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix(1_795_416_280), "2026-11-23 06:44:40 UTC");
    }

    #[test]
    fn status_shows_published_and_stopped_records() {
        let text = "[[host]]\nhostname = \"home.example.com\"\nlogin = \"l\"\npassword = \"pw-not-shown\"\nfamily = \"both\"\n";
        let config = crate::config::parse(text, None, Path::new("/")).unwrap();
        let fp = config.hosts[0].fingerprint();
        let mut state = State::default();
        state.records.insert(
            RecordKey::new("home.example.com", Family::V4),
            PublishedRecord {
                published: Some("203.0.113.7".parse().unwrap()),
                published_at: Some(0),
                last_reply: Some("good 203.0.113.7".into()),
                ..Default::default()
            },
        );
        state.records.insert(
            RecordKey::new("home.example.com", Family::V6),
            PublishedRecord {
                last_reply: Some("nohost".into()),
                stopped: Some(Stopped {
                    reason: "nohost".into(),
                    fix: "create the AAAA DynHost record".into(),
                    at: 0,
                    config: fp,
                }),
                ..Default::default()
            },
        );
        let rows = status(&config, &state);
        assert_eq!(rows.len(), 2);
        let table = status_table(&rows);
        assert!(table.contains("203.0.113.7"), "{table}");
        assert!(table.contains("STOPPED (nohost)"), "{table}");
        assert!(table.contains("create the AAAA DynHost record"), "{table}");
        assert!(!table.contains("pw-not-shown"));
        let json = serde_json::to_string(&rows).unwrap();
        assert!(json.contains("\"stopped\":\"nohost\""), "{json}");
        // An edited entry is no longer shown as stopped.
        let edited =
            crate::config::parse(&text.replace("pw-not-shown", "new"), None, Path::new("/"))
                .unwrap();
        assert!(status(&edited, &state).iter().all(|r| r.stopped.is_none()));
    }

    #[test]
    fn text_from_a_tampered_state_file_is_escaped() {
        let text = "[[host]]\nhostname = \"home.example.com\"\nlogin = \"l\"\npassword = \"pw\"\n";
        let config = crate::config::parse(text, None, Path::new("/")).unwrap();
        let mut state = State::default();
        state.records.insert(
            RecordKey::new("home.example.com", Family::V4),
            PublishedRecord {
                last_reply: Some(format!(
                    "good\u{1b}[2J\u{202E}lmth.exe\nforged line\u{2028}{}",
                    "x".repeat(5000)
                )),
                stopped: Some(Stopped {
                    reason: "\u{2066}abuse\u{2069}\r".into(),
                    fix: "\u{200B}call\u{FEFF}".into(),
                    at: 0,
                    config: config.hosts[0].fingerprint(),
                }),
                history: vec![HistoryEntry {
                    at: 1_700_000_000,
                    event: crate::state::HistoryEvent::Error,
                    ip: None,
                    text: "500\u{202E}\nforged line".into(),
                }],
                ..Default::default()
            },
        );
        let rows = status(&config, &state);
        assert_eq!(rows[0].history[0].text, "500??forged line");
        let reply = rows[0].last_reply.as_deref().unwrap();
        assert!(
            reply.starts_with("good?[2J?lmth.exe?forged line?xxx"),
            "{reply}"
        );
        assert_eq!(reply.chars().count(), STATE_TEXT_MAX_CHARS);
        assert_eq!(rows[0].stopped.as_deref(), Some("?abuse??"));
        assert_eq!(rows[0].fix.as_deref(), Some("?call?"));
        let table = status_table(&rows);
        // The reply's line and the event's: neither text starts a line of its own.
        assert_eq!(table.lines().filter(|l| l.contains("forged")).count(), 2);
        assert!(!table.lines().any(|l| l.starts_with("forged")), "{table}");
        assert!(
            !table.contains('\u{1b}') && !table.contains('\u{202E}'),
            "{table:?}"
        );
    }

    #[test]
    fn events_are_shown_newest_first_and_recent_ones_are_few() {
        let e = |at: u64, event: &str, ip: &str| serde_json::json!({"at": at, "event": event, "ip": ip, "text": "t"});
        let row = |host: &str, record: &str, history: Vec<Value>| serde_json::json!({"hostname": host, "record": record, "history": history});
        let a = vec![
            e(10, "updated", "192.0.2.1"),
            e(30, "error", "192.0.2.2"),
            e(30, "recovered", "192.0.2.2"),
        ];
        let b: Vec<_> = (0..8)
            .map(|i| e(20 + i, "updated", "2001:db8::1"))
            .collect();
        let rows = [
            row("h.example.com", "A", a),
            row("h.example.com", "AAAA", b),
            row("quiet.example.com", "A", vec![]),
            // Over the socket, from an agent that must not rewrite the terminal.
            row(
                "x\u{202E}.example.com",
                "A",
                vec![serde_json::json!({"at": 1, "event": "error\u{1b}[2J", "text": "a\nb"})],
            ),
        ];
        let recent = recent_events(&rows);
        let lines: Vec<_> = recent.lines().filter(|l| l.contains("UTC")).collect();
        assert_eq!(lines.len(), RECENT_EVENTS, "{recent}");
        // The later of two events in the same second comes first.
        assert!(
            lines[0].contains("h.example.com/A ") && lines[0].contains("recovered"),
            "{recent}"
        );
        assert!(lines[1].contains("error"), "{recent}");
        assert!(
            lines[2].contains("2001:db8::1") && lines[2].contains("00:00:27"),
            "{recent}"
        );
        let whole = history_text("h.example.com", &rows).unwrap();
        assert_eq!(whole.lines().count(), 1 + 3 + 8, "{whole}");
        assert!(
            history_text("quiet.example.com", &rows)
                .unwrap()
                .contains("no events yet")
        );
        assert_eq!(history_text("other.example.com", &rows), None);
        let hostile = history_text("x\u{202E}.example.com", &rows).unwrap();
        assert!(
            hostile.contains("x?.example.com/A") && hostile.contains("error?[2J  -  a?b"),
            "{hostile:?}"
        );
        assert_eq!(
            history_json("h.example.com", &rows)
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(recent_events(&[]), "");
    }

    #[test]
    fn detect_explains_each_candidate() {
        let addr = |ip: &str, flags: AddrFlags| WanAddress {
            index: 4,
            addr: ip.parse().unwrap(),
            prefix_len: 64,
            peer: None,
            scope: Scope::Universe,
            flags,
            preferred: Lifetime::Forever,
            valid: Lifetime::Forever,
        };
        let view = NetView::from_snapshot(NetSnapshot {
            neighbours: Vec::new(),
            links: vec![Link {
                index: 4,
                name: "ppp0".into(),
                up: true,
                point_to_point: true,
            }],
            addrs: vec![
                addr("100.64.0.7", AddrFlags::default()),
                addr(
                    "2001:db8::1",
                    AddrFlags {
                        tentative: true,
                        ..Default::default()
                    },
                ),
            ],
            routes: vec![DefaultRoute {
                family: Family::V4,
                index: 4,
                metric: 0,
            }],
        });
        let d = detect(&view, None, &AddressPolicy::default());
        assert_eq!(d.wan.as_deref(), Some("ppp0"));
        assert_eq!(d.ipv4, WanChoice::BehindNat);
        assert_eq!(d.ipv6, WanChoice::Nothing);
        let text = detection_text(&d, None);
        assert!(text.contains("carrier-grade NAT"), "{text}");
        assert!(text.contains("tentative"), "{text}");
        let missing = detect(&view, Some("wan9"), &AddressPolicy::default());
        assert!(
            detection_text(&missing, Some("wan9")).contains("wan9 (configured) is not present")
        );
    }

    #[test]
    fn detect_explains_each_hosts_source() {
        use crate::wan::policy::HostPart;
        let mut lan = WanAddress {
            index: 5,
            addr: "2001:db8:1:2::1".parse().unwrap(),
            prefix_len: 64,
            peer: None,
            scope: Scope::Universe,
            flags: AddrFlags::default(),
            preferred: Lifetime::Secs(0),
            valid: Lifetime::Secs(600),
        };
        lan.flags.deprecated = true;
        let link = |index, name: &str| Link {
            index,
            name: name.into(),
            up: true,
            point_to_point: false,
        };
        let view = NetView::from_snapshot(NetSnapshot {
            neighbours: Vec::new(),
            links: vec![link(4, "wan0"), link(5, "lan0")],
            addrs: vec![lan],
            routes: vec![],
        });
        let p = AddressPolicy {
            accept: vec!["2001:db8::/32".parse().unwrap()],
            ignore: vec![],
        };
        let records = [
            (
                RecordKey::new("a.example.com", Family::V6),
                AddressSource::Wan,
            ),
            (
                RecordKey::new("b.example.com", Family::V6),
                AddressSource::Prefix {
                    interface: "lan0".into(),
                    host: HostPart::Suffix("::10".parse().unwrap()),
                },
            ),
            (
                RecordKey::new("c.example.com", Family::V4),
                AddressSource::Interface("wwan0".into()),
            ),
        ];
        let mut d = detect(&view, Some("wan0"), &p);
        d.hosts = host_sources(&view, Some("wan0"), &p, &records, &d);
        let text = detection_text(&d, Some("wan0"));
        for want in [
            "a.example.com/AAAA ← the [wan] interface (wan0)\n      → nothing to publish: no ipv6 address at all on wan0",
            "b.example.com/AAAA ← the prefix on lan0 + suffix ::10\n      → nothing to publish: no global prefix of ipv6 on lan0: 2001:db8:1:2::1/64 (deprecated (preferred lifetime over))",
            "c.example.com/A ← interface wwan0\n      → nothing to publish: interface wwan0 is not present",
        ] {
            assert!(text.contains(want), "{want}\n---\n{text}");
        }
    }
}
