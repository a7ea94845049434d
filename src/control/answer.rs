//! How the agent's event loop answers a request, with the decider's control methods
//! (`crate::decide::control`): the [`Answer`], and the lines that say where each record stands.

use super::protocol::{AgentStatus, Request, Response, Served};
use super::render::wake_end;
use super::server::Incoming;
use super::{same_dir, shown};
use crate::config::Config;
use crate::decide::status::{LiveRecord, LiveStatus, Phase};
use crate::decide::{Action, Decider, Event, Now};
use std::net::IpAddr;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// What the event loop does with a request: done (with the decider's actions), or a reload,
/// which only the agent's shell can do; it then answers through [`PendingReload::done`].
pub enum Answer {
    Done(Vec<Action>),
    Reload(PendingReload),
}

/// A `reload` request waiting for the agent to read its configuration again.
pub struct PendingReload {
    reply: oneshot::Sender<Response>,
    me: Served,
}

impl PendingReload {
    /// Answers the client: Ok(what was reloaded) or Err(why the running configuration stays).
    pub fn done(self, outcome: Result<String, String>) {
        let response = match outcome {
            Ok(what) => Response::done(&self.me, true, vec![what]),
            Err(why) => Response::refused(
                &self.me,
                format!("reload failed, the running configuration stays: {why}"),
            ),
        };
        let _ = self.reply.send(response);
    }
}

/// Answers one request in the agent's event loop: asks the decider, replies, and returns what
/// the decider wants done. A request for another state dir than the agent's is refused
/// untouched.
pub fn answer(decider: &mut Decider, incoming: Incoming, config: &Config, now: Now) -> Answer {
    let now_unix = now.wall.0;
    let Incoming {
        envelope,
        reply,
        me,
    } = incoming;
    let me = Served::clone(&me);
    if !same_dir(&envelope.state_dir, &me.state_dir) {
        warn!(
            "control: refused a request for the state dir {}: this agent serves {}",
            shown(&envelope.state_dir.display().to_string()),
            me.state_dir.display()
        );
        let _ = reply.send(Response::refused(
            &me,
            format!(
                "this agent serves the state dir {}, not {}",
                me.state_dir.display(),
                envelope.state_dir.display()
            ),
        ));
        return Answer::Done(Vec::new());
    }
    let (actions, response) = match envelope.request {
        Request::Reload {} => {
            info!("control: reload");
            return Answer::Reload(PendingReload { reply, me });
        }
        Request::Status {} => {
            debug!("control: status");
            let live = decider.live_status(now);
            let rows = crate::report::status(config, &decider.state(now));
            let status = AgentStatus {
                pid: me.pid,
                state_dir: me.state_dir.clone(),
                now: now_unix,
                rows: agent_rows(&rows, &live, now_unix),
                live,
            };
            let mut response = Response::done(&me, true, Vec::new());
            response.status = Some(status);
            (Vec::new(), response)
        }
        Request::CheckNow {} => {
            info!("control: check-now: checking everything now");
            let actions = decider.on_event(Event::CheckNow, now);
            (
                actions,
                Response::done(&me, true, vec!["checking everything now".into()]),
            )
        }
        Request::Retry { hosts } => {
            info!(hosts = ?hosts, "control: retry");
            match decider.retry(&hosts, now) {
                Err(e) => (Vec::new(), Response::refused(&me, e.to_string())),
                Ok(done) => {
                    let live = decider.live_status(now);
                    let mut lines: Vec<String> = done
                        .lifted
                        .iter()
                        .map(|k| format!("{k}: stop and back-off lifted"))
                        .collect();
                    if lines.is_empty() {
                        lines.push("nothing was stopped or backing off".into());
                    }
                    // Retry did what it could: where each record stands is news, not failure.
                    let (more, _) = describe(&live, &done.actions, now_unix, |r| {
                        hosts.is_empty() || hosts.contains(&r.hostname)
                    });
                    lines.extend(more);
                    (done.actions, Response::done(&me, true, lines))
                }
            }
        }
        Request::Update { ips } => {
            info!(ips = ?ips, "control: update handed over");
            match decider.update_from(&ips, now) {
                Err(e) => (Vec::new(), Response::refused(&me, e.to_string())),
                Ok(actions) => {
                    let live = decider.live_status(now);
                    let (lines, ok) = describe(&live, &actions, now_unix, |_| true);
                    (actions, Response::done(&me, ok, lines))
                }
            }
        }
    };
    // The client may have gone; its reply is then not needed.
    let _ = reply.send(response);
    Answer::Done(actions)
}

/// The state file's rows with what only the running agent knows added to each.
fn agent_rows(
    rows: &[crate::report::RecordStatus],
    live: &LiveStatus,
    now_unix: u64,
) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| {
            let mut v = serde_json::to_value(row).unwrap_or_default();
            v["source"] = "agent".into();
            v["pid"] = std::process::id().into();
            let found = live
                .records
                .iter()
                .find(|r| r.hostname == row.hostname && r.record == row.record);
            if let Some(r) = found {
                v["phase"] = serde_json::to_value(r.phase).unwrap_or_default();
                v["wan"] = serde_json::to_value(r.wan).unwrap_or_default();
                v["in_flight"] = serde_json::to_value(r.in_flight).unwrap_or_default();
                v["next"] = match &r.next {
                    Some(w) => serde_json::json!({
                        "reason": w.reason,
                        "in_ms": w.in_ms,
                        "at": now_unix.saturating_add(w.in_ms.div_ceil(1000)),
                    }),
                    None => serde_json::Value::Null,
                };
                if !r.interfaces.is_empty() {
                    // A failover list: its interfaces, the active one, and since when (Unix s).
                    let since = r
                        .interface_since_ms_ago
                        .map(|ms| now_unix.saturating_sub(ms / 1000));
                    v["interfaces"] = r.interfaces.clone().into();
                    v["interface"] = r.interface.clone().into();
                    v["interface_since"] = since.into();
                }
            }
            v
        })
        .collect()
}

/// One line per record saying where it stands after a request; `ok` when every one is current
/// or on its way (sending, held until a known time, being checked).
fn describe(
    live: &LiveStatus,
    actions: &[Action],
    now_unix: u64,
    wanted: impl Fn(&LiveRecord) -> bool,
) -> (Vec<String>, bool) {
    let mut ok = true;
    let mut lines = Vec::new();
    for r in live.records.iter().filter(|r| wanted(r)) {
        let sent_now = actions.iter().any(|a| {
            matches!(a, Action::Push(p) if p.key.hostname == r.hostname && p.key.family.record_type() == r.record)
        });
        let show = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |a| a.to_string());
        let (text, fine) = match r.phase {
            Phase::Pushing if sent_now => (format!("sending {}", show(r.in_flight)), true),
            Phase::Pushing => (
                format!("already sending {} (not sent twice)", show(r.in_flight)),
                true,
            ),
            Phase::Stopped => {
                let stop = r.stopped.as_ref();
                (
                    format!(
                        "stopped after \"{}\": {}; once fixed, run `dynhostd retry {}`",
                        stop.map_or("", |s| s.reason.as_str()),
                        stop.map_or("", |s| s.fix.as_str()),
                        r.hostname
                    ),
                    false,
                )
            }
            Phase::BackingOff => (
                format!(
                    "backing off after \"{}\": next try at {}",
                    r.last_reply.as_deref().unwrap_or("a failure"),
                    r.next
                        .as_ref()
                        .map_or("-".into(), |w| wake_end(w, now_unix))
                ),
                false,
            ),
            Phase::Held => (
                format!(
                    "{} held back by min_interval: it will be sent at {}",
                    show(r.wan),
                    r.next
                        .as_ref()
                        .map_or("-".into(), |w| wake_end(w, now_unix))
                ),
                true,
            ),
            Phase::Verifying => ("being checked at its name servers first".into(), true),
            Phase::Idle => match (r.wan, r.published) {
                (Some(w), Some(p)) if w == p => (format!("{p} is already published"), true),
                (None, _) => (
                    "nothing to publish: no address on the WAN counts".into(),
                    false,
                ),
                (Some(w), _) => (format!("{w} is not sent (see the agent's log)"), false),
            },
        };
        ok &= fine;
        lines.push(format!("{}/{}: {text}", r.hostname, r.record));
    }
    (lines, ok)
}
