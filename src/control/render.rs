//! What `status` prints from the agent's answer (a table or JSON), and the JSON rows from the
//! state file; every string cleaned by [`super::shown`] before it reaches a terminal.

use super::protocol::AgentStatus;
use super::shown;
use crate::decide::status::{Phase, Wake, WakeReason};
use crate::report::format_unix;
use std::net::IpAddr;

/// `status` from the agent, as text.
pub fn live_table(s: &AgentStatus) -> String {
    use std::fmt::Write as _;
    let mut rows = vec![[
        "HOST".to_string(),
        "RECORD".into(),
        "PUBLISHED".into(),
        "WAN".into(),
        "STATE".into(),
        "NEXT".into(),
    ]];
    let show = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |a| a.to_string());
    for r in &s.live.records {
        let state = match r.phase {
            Phase::Stopped => format!(
                "STOPPED ({})",
                r.stopped.as_ref().map_or("", |x| x.reason.as_str())
            ),
            Phase::Pushing => format!("sending {}", show(r.in_flight)),
            Phase::BackingOff => format!(
                "retrying at {} ({} failures)",
                r.next.as_ref().map_or("-".into(), |w| wake_end(w, s.now)),
                r.failures
            ),
            Phase::Held => "held by min_interval".into(),
            Phase::Verifying => "checking DNS".into(),
            Phase::Idle if r.wan.is_some() && r.wan == r.published => "ok".into(),
            Phase::Idle => "idle".into(),
        };
        rows.push([
            r.hostname.clone(),
            r.record.clone(),
            show(r.published),
            show(r.wan),
            state,
            r.next.as_ref().map_or("-".into(), |w| {
                format!("{} at {}", reason(w.reason), wake_end(w, s.now))
            }),
        ]);
    }
    // Everything in the table came over the socket: cleaned before it reaches the terminal.
    for row in rows.iter_mut() {
        for c in row.iter_mut() {
            *c = shown(c);
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "source: the running agent (pid {}, state dir {})\n",
        s.pid,
        shown(&s.state_dir.display().to_string())
    );
    for row in &rows {
        let mut line = String::new();
        for (w, c) in widths.iter().zip(row) {
            let _ = write!(line, "{c:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    match &s.live.next_wake {
        Some(w) => {
            let _ = writeln!(
                out,
                "next wake-up: {} at {}",
                reason(w.reason),
                wake_end(w, s.now)
            );
        }
        None => out.push_str("next wake-up: none (sleeping until the WAN changes)\n"),
    }
    out.push_str(&crate::report::recent_events(&s.rows));
    for r in &s.live.records {
        if !r.interfaces.is_empty() {
            let since = r.interface_since_ms_ago.map_or_else(String::new, |ms| {
                let at = s.now.saturating_sub(ms / 1000);
                format!(
                    " since {} ({} ago)",
                    format_unix(at),
                    crate::duration::format_duration(std::time::Duration::from_secs(ms / 1000))
                )
            });
            let active = r.interface.as_deref().map_or_else(
                || "none (no interface is usable)".into(),
                |a| format!("follows {a}"),
            );
            let line = format!(
                "{}/{} {active}{since}; failover list: {}",
                r.hostname,
                r.record,
                r.interfaces.join(", ")
            );
            // Names came over the socket: cleaned like the table.
            let _ = writeln!(out, "{}", shown(&line));
        }
    }
    for r in &s.live.records {
        if let Some(stop) = &r.stopped {
            let _ = writeln!(
                out,
                "\n{}/{} is stopped after \"{}\": {}.\nOnce that is fixed (at the provider or in its [[host]] entry), run `dynhostd retry {}`.",
                shown(&r.hostname),
                shown(&r.record),
                shown(&stop.reason),
                shown(&stop.fix),
                shown(&r.hostname)
            );
        }
    }
    out
}

fn reason(r: WakeReason) -> &'static str {
    match r {
        WakeReason::Debounce => "debounce",
        WakeReason::MinInterval => "min_interval hold",
        WakeReason::Backoff => "back-off",
        WakeReason::RetryAfter => "Retry-After",
        WakeReason::Verify => "verify",
        WakeReason::Refresh => "refresh",
        WakeReason::Detect => "what's-my-IP check",
        WakeReason::Failback => "failback",
    }
}

/// `status --json` from the agent: the rows, as from the state file plus the live fields.
/// Its strings are cleaned like the table's: JSON escapes control characters, not bidi ones.
pub fn live_json(s: &AgentStatus) -> serde_json::Value {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(t) => *t = shown(t),
            serde_json::Value::Array(a) => a.iter_mut().for_each(clean),
            serde_json::Value::Object(o) => o.values_mut().for_each(clean),
            _ => {}
        }
    }
    let mut rows = serde_json::Value::Array(s.rows.clone());
    clean(&mut rows);
    rows
}

/// `status --json` from the state file: its rows, each saying where it comes from.
pub fn state_rows_json(rows: &[crate::report::RecordStatus]) -> serde_json::Value {
    let mut rows = crate::report::rows_json(rows);
    for v in &mut rows {
        v["source"] = "state-file".into();
    }
    rows.into()
}

/// When a wake ends, as a time of day (the agent tells how long from now).
pub(super) fn wake_end(w: &Wake, now_unix: u64) -> String {
    format_unix(now_unix.saturating_add(w.in_ms.div_ceil(1000)))
}
