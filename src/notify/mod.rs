//! Telling a person: `[[notify]]` targets told of updates, failures, stops and recoveries, and
//! `[health]` pings for an uptime monitor.
//!
//! The agent hands each update attempt's [`HookEvent`] to a [`Notifier`] and moves on: the
//! notifier is a task of its own, fed over a channel, that owns one delivery [`queue::Queue`]
//! per target and one HTTP client for all of them: the configuration's DynHost client without
//! a `ca_file` (built once per configuration, the TLS roots read only if something is https).
//! Nothing on the update path waits for it. The task
//! sleeps on its channel alone while nothing is pending, so an idle agent stays silent; it
//! wakes for a retry only while a message waits.
//!
//! - [`target`]: URL schemes → request shapes, and the events a target takes.
//! - [`queue`]: delivery order, back-off, coalescing and giving up (pure, time passed in).
//! - [`health`]: the `[health]` verdict and ping.

pub mod health;
pub mod queue;
pub mod target;

use crate::hook::HookEvent;
use crate::provider::client::{ClientError, Clients};
use crate::record::RecordKey;
use health::HealthConfig;
use queue::{Outcome, Pending, Queue};
use std::time::{Duration, Instant};
use target::{Events, Target};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// One `[[notify]]` target (a Telegram URL with several chats is one per chat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    pub target: Target,
    pub events: Events,
}

/// What a configuration's notifications need: its targets, its `[health]`, and the one client
/// they share (None when there are neither). Built where the DynHost clients are (at start,
/// and off the event loop on a reload).
#[derive(Default)]
pub struct Setup {
    targets: Vec<NotifyConfig>,
    health: Option<HealthConfig>,
    client: Option<reqwest::Client>,
    /// `[http] timeout`, at most [`MAX_REQUEST`].
    timeout: Duration,
}

/// Longest a notification or ping may take; a receiver that hangs is given up on after this
/// and retried later.
const MAX_REQUEST: Duration = Duration::from_secs(30);

impl Setup {
    /// `clients` are the configuration's DynHost clients: the one without a `ca_file`, for
    /// https if some target needs it, serves the notifications too (built if no host uses it).
    pub fn build(
        targets: &[NotifyConfig],
        health: Option<&HealthConfig>,
        clients: &mut Clients,
        timeout: Duration,
    ) -> Result<Setup, ClientError> {
        if targets.is_empty() && health.is_none() {
            return Ok(Setup::default());
        }
        let https = targets.iter().any(|t| t.target.https()) || health.is_some_and(|h| h.https());
        let client = clients.get(https, None)?.http().clone();
        Ok(Setup {
            targets: targets.to_vec(),
            health: health.cloned(),
            client: Some(client),
            timeout: timeout.min(MAX_REQUEST),
        })
    }

    fn is_empty(&self) -> bool {
        self.client.is_none()
    }
}

enum Msg {
    Event(HookEvent),
    Health(Result<(), String>),
    Reconfigure(Setup),
    /// The agent is stopping: try what waits once more now, then answer.
    Finish(oneshot::Sender<()>),
}

/// The agent's handle on the notification task. Cheap to call: one channel send, never a wait.
#[derive(Default)]
pub struct Notifier {
    tx: Option<mpsc::UnboundedSender<Msg>>,
    /// Some target is configured (else events are not even sent over).
    targets: bool,
    dry_run: bool,
}

impl Notifier {
    /// The task for `setup`, started only if it has something to do.
    pub fn start(setup: Setup, dry_run: bool) -> Notifier {
        let mut n = Notifier {
            tx: None,
            targets: false,
            dry_run,
        };
        n.reconfigure(setup);
        n
    }

    /// A reloaded configuration's targets; messages still waiting for a target that stays
    /// (same URL and events) keep their place.
    pub fn reconfigure(&mut self, setup: Setup) {
        self.targets = !setup.targets.is_empty();
        match &self.tx {
            Some(tx) => {
                let _ = tx.send(Msg::Reconfigure(setup));
            }
            None if setup.is_empty() => {}
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(Task::new(setup, self.dry_run).run(rx));
                self.tx = Some(tx);
            }
        }
    }

    /// Tells the targets that take it about an update attempt.
    pub fn event(&self, ev: &HookEvent) {
        if let Some(tx) = &self.tx
            && self.targets
        {
            let _ = tx.send(Msg::Event(ev.clone()));
        }
    }

    /// A dry run's would-be update, told as the `updated` it would be (the core tells no hook
    /// of a dry run), so the targets' dry-run lines show what they would get.
    pub fn would_push(&self, key: &RecordKey, ip: std::net::IpAddr, old: Option<std::net::IpAddr>) {
        self.event(&HookEvent {
            host: key.hostname.clone(),
            family: key.family,
            ip: Some(ip),
            old_ip: old,
            event: crate::hook::HookKind::Updated,
            error: None,
            reply: "dry run".into(),
            recovered: false,
            time: crate::clock::UnixTime::system(),
            // The dry run's line about the push names no interface either.
            interface: None,
        });
    }

    /// Pings `[health]` with `verdict`.
    pub fn health(&self, verdict: Result<(), String>) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Health(verdict));
        }
    }

    /// Before the agent (or `update`) exits: what is waiting is tried once more, for at most
    /// `grace`.
    pub async fn finish(&self, grace: Duration) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Finish(done)).is_ok() {
            let _ = tokio::time::timeout(grace, wait).await;
        }
    }
}

struct Slot {
    config: NotifyConfig,
    queue: Queue,
    /// Tells a reply to this slot apart from one to a target a reload removed.
    id: u64,
}

struct Task {
    slots: Vec<Slot>,
    health: Option<HealthConfig>,
    client: Option<reqwest::Client>,
    timeout: Duration,
    dry_run: bool,
    next_id: u64,
    rng: u64,
    /// The last ping failed (logged once until one gets through).
    health_failing: bool,
    finishing: Option<oneshot::Sender<()>>,
}

/// What a background request came back with: the slot's id (None: a health ping) and the
/// error, if any (not yet redacted).
type Sent = (Option<u64>, Result<(), String>);

// One call site per level: each costs the binary a few hundred bytes (BENCHMARKS.md,
// "Notifications: size").
fn warn_to(to: &dyn std::fmt::Display, what: std::fmt::Arguments<'_>) {
    warn!("notifications to {to}: {what}");
}

fn debug_to(to: &dyn std::fmt::Display, what: std::fmt::Arguments<'_>) {
    debug!("notifications to {to}: {what}");
}

fn info_to(to: &dyn std::fmt::Display, what: std::fmt::Arguments<'_>) {
    info!("notifications to {to}: {what}");
}

impl Task {
    fn new(setup: Setup, dry_run: bool) -> Task {
        let seed = crate::clock::wall_nanos() as u64 ^ u64::from(std::process::id());
        let mut t = Task {
            slots: Vec::new(),
            health: None,
            client: None,
            timeout: MAX_REQUEST,
            dry_run,
            next_id: 0,
            rng: seed | 1,
            health_failing: false,
            finishing: None,
        };
        t.reconfigure(setup);
        t
    }

    fn reconfigure(&mut self, setup: Setup) {
        let mut old = std::mem::take(&mut self.slots);
        for config in setup.targets {
            // A kept target keeps its queue and its id, so the reply to a request it has out
            // still reaches it.
            let slot = match old.iter().position(|s| s.config == config) {
                Some(i) => old.swap_remove(i),
                None => {
                    self.next_id += 1;
                    Slot {
                        config,
                        queue: Queue::default(),
                        id: self.next_id,
                    }
                }
            };
            self.slots.push(slot);
        }
        for gone in old.iter().filter(|s| !s.queue.is_empty()) {
            let n = gone.queue.len();
            warn_to(
                &gone.config.target,
                format_args!("{n} message(s) dropped: no longer configured"),
            );
        }
        self.health = setup.health;
        self.client = setup.client;
        self.timeout = setup.timeout;
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut out: JoinSet<Sent> = JoinSet::new();
        loop {
            self.start_due(&mut out);
            // Stopping: done once nothing is out and what still waits is backing off (a
            // receiver that failed is not tried again in a hurry).
            if out.is_empty()
                && self
                    .slots
                    .iter()
                    .all(|s| s.queue.is_empty() || s.queue.failures() > 0)
                && let Some(done) = self.finishing.take()
            {
                let _ = done.send(());
            }
            let wake = self.slots.iter().filter_map(|s| s.queue.wake()).min();
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => break,
                    Some(Msg::Event(ev)) => self.queue(&ev),
                    Some(Msg::Health(verdict)) => self.ping(verdict, &mut out),
                    Some(Msg::Reconfigure(setup)) => self.reconfigure(setup),
                    Some(Msg::Finish(done)) => self.finishing = Some(done),
                },
                Some(Ok(sent)) = out.join_next() => self.sent(sent),
                () = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// Queues `ev` for every target that takes it.
    fn queue(&mut self, ev: &HookEvent) {
        let now = Instant::now();
        for slot in &mut self.slots {
            let Some(kind) = slot.config.events.event_for(ev) else {
                continue;
            };
            let request = slot.config.target.request(kind, ev);
            let record = RecordKey::new(ev.host.clone(), ev.family);
            if slot.queue.push(Pending {
                record,
                event: kind,
                request,
                since: now,
            }) {
                warn_to(
                    &slot.config.target,
                    format_args!(
                        "{} messages wait: older ones are being dropped (counted when it answers again)",
                        queue::MAX_PENDING
                    ),
                );
            }
        }
    }

    /// Starts each target's due request (a dry run only says what it would send).
    fn start_due(&mut self, out: &mut JoinSet<Sent>) {
        let now = Instant::now();
        for slot in &mut self.slots {
            while let Some(p) = slot.queue.due(now) {
                if !self.dry_run {
                    let what = format_args!("sending {} {}", p.event.as_str(), p.record);
                    debug_to(&slot.config.target, what);
                    out.spawn(deliver(
                        Some(slot.id),
                        (self.client.clone(), self.timeout),
                        p.request.clone(),
                    ));
                    break;
                }
                let what = format_args!("dry run: would notify {} {}", p.event.as_str(), p.record);
                info_to(&slot.config.target, what);
                slot.queue.finished(true, now, 0.0);
            }
        }
    }

    fn sent(&mut self, (id, result): Sent) {
        let Some(id) = id else {
            return self.pinged(result);
        };
        let unit = self.next_unit();
        let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let to = &slot.config.target;
        let error = to.redact(result.as_ref().err().map_or("", String::as_str));
        let now = Instant::now();
        match slot.queue.finished(result.is_ok(), now, unit) {
            Outcome::Delivered { dropped: 0 } => debug_to(to, format_args!("delivered")),
            Outcome::Delivered { dropped } => warn_to(
                to,
                format_args!("delivered again; {dropped} older message(s) were dropped meanwhile"),
            ),
            Outcome::Retry { at, attempt } => debug_to(
                to,
                format_args!(
                    "not delivered ({error}); attempt {attempt}, next try in {:.0}s",
                    at.saturating_duration_since(now).as_secs_f64()
                ),
            ),
            Outcome::GaveUp { count, .. } => warn_to(
                to,
                format_args!(
                    "{count} message(s) given up after 1h without delivery (last error: {error})"
                ),
            ),
        }
    }

    fn ping(&mut self, verdict: Result<(), String>, out: &mut JoinSet<Sent>) {
        let Some(h) = &self.health else { return };
        if self.dry_run {
            let state = if verdict.is_ok() { "up" } else { "down" };
            return info_to(&h.shown(), format_args!("dry run: would ping {state}"));
        }
        out.spawn(deliver(
            None,
            (self.client.clone(), self.timeout),
            h.request(&verdict),
        ));
    }

    fn pinged(&mut self, result: Result<(), String>) {
        let Some(h) = &self.health else { return };
        match result {
            Ok(()) if self.health_failing => {
                info_to(&h.shown(), format_args!("health pings get through again"));
                self.health_failing = false;
            }
            Err(e) if !self.health_failing => {
                let e = h.redact(&e);
                warn_to(
                    &h.shown(),
                    format_args!("health ping failed ({e}); logged again only once it recovers"),
                );
                self.health_failing = true;
            }
            _ => {}
        }
    }

    fn next_unit(&mut self) -> f64 {
        crate::decide::jitter_unit(&mut self.rng)
    }
}

/// Sends one request; Ok for any 2xx. The error says what failed, without the URL (and is
/// redacted further by whoever logs it).
async fn deliver(
    id: Option<u64>,
    client: (Option<reqwest::Client>, Duration),
    r: target::Request,
) -> Sent {
    (id, send(client, r).await)
}

async fn send(
    (client, timeout): (Option<reqwest::Client>, Duration),
    r: target::Request,
) -> Result<(), String> {
    let client = client.ok_or("no HTTP client")?;
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client.request(method, r.url).timeout(timeout);
    for (name, value) in r.headers {
        req = req.header(name, value);
    }
    if !r.body.is_empty() {
        req = req.body(r.body);
    }
    let response = req.send().await.map_err(|e| crate::http::error_chain(&e))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        // Only the status: the body is the receiver's, and may echo the token.
        Err(format!("HTTP {}", status.as_u16()))
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::HookKind;
    use target::EventKind;

    fn setup(urls: &[(&str, &[EventKind])]) -> Setup {
        Setup {
            targets: urls
                .iter()
                .flat_map(|(u, e)| {
                    target::parse(u)
                        .unwrap()
                        .into_iter()
                        .map(|target| NotifyConfig {
                            target,
                            events: Events::of(e),
                        })
                })
                .collect(),
            health: None,
            client: None,
            timeout: MAX_REQUEST,
        }
    }

    fn event(kind: HookKind) -> HookEvent {
        HookEvent {
            host: "home.example.com".into(),
            family: crate::record::Family::V4,
            ip: Some("203.0.113.7".parse().unwrap()),
            old_ip: None,
            event: kind,
            error: None,
            reply: "good".into(),
            recovered: false,
            time: crate::clock::UnixTime(0),
            interface: None,
        }
    }

    /// Each target queues what it takes; a reload keeps the queue of a target it keeps and
    /// drops the others'.
    #[test]
    fn events_are_queued_per_target_and_a_reload_keeps_the_queues_of_kept_targets() {
        let a = "https://a.example/x";
        let b = "ntfy://b.example/t";
        let mut task = Task::new(
            setup(&[(a, &[EventKind::Updated]), (b, &[EventKind::Error])]),
            false,
        );
        task.queue(&event(HookKind::Updated));
        task.queue(&event(HookKind::Error));
        task.queue(&event(HookKind::Unchanged));
        let lens: Vec<usize> = task.slots.iter().map(|s| s.queue.len()).collect();
        assert_eq!(lens, [1, 1]);
        // b's message is out when the reload comes.
        let b_id = task.slots[1].id;
        assert!(task.slots[1].queue.due(Instant::now()).is_some());
        task.reconfigure(setup(&[
            ("https://c.example/y", &EventKind::ALL),
            (a, &[EventKind::Updated]),
            (b, &[EventKind::Error, EventKind::Stopped]),
        ]));
        let lens: Vec<usize> = task.slots.iter().map(|s| s.queue.len()).collect();
        assert_eq!(
            lens,
            [0, 1, 0],
            "a's message is kept; b changed, so its queue went"
        );
        // The reply to the request of a target that went reaches nobody.
        task.sent((Some(b_id), Ok(())));
        assert!(task.slots.iter().all(|s| s.id != b_id));
        // The kept target's request, out across the reload, still completes.
        assert!(task.slots[1].queue.due(Instant::now()).is_some());
        task.reconfigure(setup(&[(a, &[EventKind::Updated])]));
        let a_id = task.slots[0].id;
        task.sent((Some(a_id), Ok(())));
        assert!(task.slots[0].queue.is_empty() && !task.slots[0].queue.sending());
    }
}
