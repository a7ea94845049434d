//! One DynHost record's state machine. Its phase is a type: what it is doing now, with the one
//! deadline that phase has. The other timing rules (minimum interval, refresh, the periodic DNS
//! check) derive from when the address was last confirmed and when the zone was last asked, so
//! no deadline is kept twice. The saved form ([`PublishedRecord`]) is rendered from the phase,
//! and read back at start with every deadline capped by its own rule.

use super::status::WakeReason::{self, Backoff, MinInterval, Refresh, RetryAfter, Verify};
use super::{Action, Mode, Push, RecordSpec, Rules};
use crate::clock::{Now, UnixTime, later};
use crate::hook::{HookEvent, HookKind};
use crate::provider::{self, Reply, Verdict};
use crate::state::{HistoryEntry, HistoryEvent, PublishedRecord, Stopped};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// The longest wait a server may ask for with `Retry-After`.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(86_400);

/// How long after an update a differing DNS answer is put down to propagation rather than to
/// a wrong record (ovh-dynhost.md: "Propagation takes minutes").
pub const PROPAGATION_GRACE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    pub ip: IpAddr,
    /// False when a `nochg` is normal: the published address was unknown, or the push forced.
    pub expect_change: bool,
    /// The host entry the request was sent with: a reply about an entry that has been edited
    /// since (SIGHUP) must not stop or back off the new one.
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Nothing to do until something changes (or refresh/verification comes due).
    Idle,
    /// A changed address waits for the minimum interval after the last success.
    Held,
    /// The zone's authoritative servers are being asked what the record holds.
    Verifying,
    Pushing(InFlight),
    /// Server trouble: no push before `until`; `asked` when the server named the wait.
    BackingOff {
        until: Instant,
        asked: bool,
    },
    /// Only the user can fix this; kept across restarts until the entry changes or `retry`.
    Stopped(Stopped),
}

#[derive(Debug, Clone)]
pub struct Record {
    pub spec: RecordSpec,
    /// What the state file keeps (its `retry_at` and `stopped` are rendered from `phase`).
    pub facts: PublishedRecord,
    pub phase: Phase,
    /// When this process saw the published address confirmed (rebuilt from `published_at` at
    /// start; None: long ago, or never).
    confirmed: Option<Instant>,
    /// When the zone was last asked; None: not yet in this process.
    checked: Option<Instant>,
    /// Whether an update was accepted in this process (a DNS answer soon after may predate it).
    pushed: bool,
}

impl Record {
    /// The record as the state file left it, deadlines rebuilt and capped. A stop or a back-off
    /// earned by an entry that has since been edited is dropped.
    pub fn from_saved(
        spec: RecordSpec,
        mut facts: PublishedRecord,
        rules: &Rules,
        now: Now,
    ) -> Record {
        let edited = |c: &str| c != spec.fingerprint;
        let mut phase = match facts.stopped.take() {
            Some(stop) if edited(&stop.config) => {
                info!(record = %spec.key, "configuration changed since it was stopped ({}): trying again", stop.reason);
                facts.failures = 0;
                Phase::Idle
            }
            Some(stop) => Phase::Stopped(stop),
            None => Phase::Idle,
        };
        let asked = facts.retry_asked;
        let backoff_max = rules.backoff.max;
        let cap = if asked { RETRY_AFTER_CAP } else { backoff_max };
        let retry_at = facts.retry_at.take();
        let until = retry_at.and_then(|at| now.deadline_of(UnixTime(at), cap));
        if facts.failures > 0 && facts.attempt_config.as_deref().is_some_and(edited) {
            // The back-off was earned by the entry as it was; a fixed one is tried now.
            info!(record = %spec.key, "configuration changed since the last failure: trying again now");
            facts.failures = 0;
        } else if let (Phase::Idle, Some(until)) = (&phase, until) {
            phase = Phase::BackingOff { until, asked };
        }
        // Published with no time, or further back than the monotonic clock reaches: long ago.
        let at = facts.published_at.and_then(|t| now.instant_of(UnixTime(t)));
        let confirmed = facts.published.map(|_| at.unwrap_or(long_ago(now)));
        let known = facts.published.is_some() || matches!(phase, Phase::Stopped(_));
        Record {
            checked: known.then_some(now.mono),
            confirmed,
            spec,
            facts,
            phase,
            pushed: false,
        }
    }

    /// The saved form, with the phase's deadline and stop written out.
    pub fn saved(&self, now: Now) -> PublishedRecord {
        let mut facts = self.facts.clone();
        match &self.phase {
            Phase::BackingOff { until, asked } => {
                facts.retry_at = Some(now.wall_of(*until).0);
                facts.retry_asked = *asked;
            }
            Phase::Stopped(stop) => facts.stopped = Some(stop.clone()),
            _ => {}
        }
        facts
    }

    pub fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped(_))
    }

    pub fn in_flight(&self) -> Option<&InFlight> {
        match &self.phase {
            Phase::Pushing(f) => Some(f),
            _ => None,
        }
    }

    /// `d` after the address was last confirmed; None when the rule is off (`d` zero).
    fn confirmed_plus(&self, d: Duration) -> Option<Instant> {
        self.confirmed.filter(|_| !d.is_zero()).map(|t| later(t, d))
    }

    fn refresh_at(&self, rules: &Rules) -> Option<Instant> {
        self.confirmed_plus(rules.refresh)
            .filter(|_| self.facts.published.is_some())
    }

    fn verify_at(&self, rules: &Rules) -> Option<Instant> {
        Some(later(self.checked?, rules.verify?))
    }

    /// The deadline this record needs a wake-up for, and why.
    pub fn wake(&self, rules: &Rules) -> Option<(Instant, WakeReason)> {
        match self.phase {
            Phase::Held => Some((self.confirmed_plus(rules.min_interval)?, MinInterval)),
            Phase::BackingOff { until, asked: true } => Some((until, RetryAfter)),
            Phase::BackingOff { until, .. } => Some((until, Backoff)),
            Phase::Idle => {
                let refresh = self.refresh_at(rules).map(|t| (t, Refresh));
                let verify = self.verify_at(rules).map(|t| (t, Verify));
                refresh.into_iter().chain(verify).min()
            }
            Phase::Verifying | Phase::Pushing(_) | Phase::Stopped(_) => None,
        }
    }

    /// `dynhostd retry`: the person fixed what stopped it (or wants the back-off over). Returns
    /// whether there was anything to lift.
    pub fn lift(&mut self) -> bool {
        if !matches!(self.phase, Phase::Stopped(_) | Phase::BackingOff { .. }) {
            return false;
        }
        if let Phase::Stopped(stop) = &self.phase {
            info!(record = %self.spec.key, "retry: lifting the stop after \"{}\"", stop.reason);
        }
        self.phase = Phase::Idle;
        self.facts.failures = 0;
        true
    }

    /// `dynhostd update` asked now: an earlier back-off is skipped.
    pub fn skip_backoff(&mut self) -> bool {
        let skip = matches!(self.phase, Phase::BackingOff { .. });
        if skip {
            self.phase = Phase::Idle;
        }
        skip
    }

    /// SIGUSR1: ask the zone again now (an unknown record is asked before its first push anyway).
    pub fn check_now(&mut self, now: Now) {
        if !self.is_stopped() && self.facts.published.is_some() {
            self.checked = Some(long_ago(now));
        }
    }

    /// What this record does given what its source offers now (`choice` None: nothing to
    /// publish); None: nothing to do now.
    pub fn step(
        &mut self,
        choice: Option<IpAddr>,
        rules: &Rules,
        mode: Mode,
        now: Now,
    ) -> Option<Action> {
        match &self.phase {
            Phase::Verifying | Phase::Pushing(_) | Phase::Stopped(_) => return None,
            Phase::BackingOff { until, .. } if *until > now.mono => return None,
            _ => {}
        }
        let Some(ip) = choice else {
            self.phase = Phase::Idle;
            return None;
        };
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now.mono);
        let previous = self.facts.published;
        let changed = previous != Some(ip);
        let refresh = due(self.refresh_at(rules));
        // `update --force` sends once per pass, even what is already published.
        let force = mode == (Mode::Update { force: true }) && !self.pushed;
        let quiet = !(changed || refresh || force);
        // Unknown: the zone may already hold it, so it is asked before sending.
        let unknown = previous.is_none() && self.checked.is_none() && rules.verify.is_some();
        if unknown || quiet && mode == Mode::Agent && due(self.verify_at(rules)) {
            self.phase = Phase::Verifying;
            let key = self.spec.key.clone();
            return Some(Action::Verify { key });
        } else if quiet {
            self.phase = Phase::Idle;
            return None;
        }
        let held = self.confirmed_plus(rules.min_interval);
        if let (true, Mode::Agent, Some(end)) = (changed, mode, held.filter(|t| *t > now.mono)) {
            if self.phase != Phase::Held {
                let wait = end.saturating_duration_since(now.mono).as_secs_f64().ceil();
                info!(record = %self.spec.key, "{ip} held back by min_interval ({}): it will be sent at {} (in {wait}s)",
                    crate::duration::format_duration(rules.min_interval), now.wall_of(end));
                self.phase = Phase::Held;
            }
            return None;
        }
        if !changed && refresh && !force {
            info!(record = %self.spec.key, "refreshing {ip}: unchanged for {}", crate::duration::format_duration(rules.refresh));
        }
        self.phase = Phase::Pushing(InFlight {
            ip,
            expect_change: previous.is_some() && changed,
            fingerprint: self.spec.fingerprint.clone(),
        });
        let key = self.spec.key.clone();
        Some(Action::Push(Push { key, ip, previous }))
    }

    /// What the zone's authoritative servers hold (Err: they could not be asked). Returns
    /// whether the facts changed.
    pub fn verified(
        &mut self,
        shows: Result<Vec<IpAddr>, String>,
        current: Option<IpAddr>,
        now: Now,
    ) -> bool {
        if self.phase == Phase::Verifying {
            self.phase = Phase::Idle;
        }
        let key = self.spec.key.clone();
        let first = self.checked.is_none() && self.facts.published.is_none();
        self.checked = Some(now.mono);
        let shows = match shows {
            Ok(shows) => shows,
            Err(e) => {
                // Never a reason to send: a DNS failure must not turn into an update loop.
                warn!(record = %key, "cannot check {key} at its name servers: {e}");
                return false;
            }
        };
        let mut shown: Vec<String> = shows.iter().map(ToString::to_string).collect();
        if shown.is_empty() {
            shown.push("no record".into());
        }
        let shown = shown.join(", ");
        if first {
            if let Some(ip) = current.filter(|ip| shows.contains(ip)) {
                info!(record = %key, "{key} already holds {ip} at its name servers: nothing to send");
                self.facts.published = Some(ip);
                self.facts.published_at = Some(now.wall.0);
                self.confirmed = Some(now.mono);
                return true;
            }
            debug!(record = %key, "{key} shows {shown} at its name servers");
            return false;
        }
        let Some(p) = self.facts.published else {
            return false;
        };
        let recent = |t: Instant| now.mono.saturating_duration_since(t) < PROPAGATION_GRACE;
        let propagating = self.pushed && self.confirmed.is_some_and(recent);
        if shows.contains(&p) {
            // A zone that holds our address holds, whatever else it holds beside it.
            debug!(record = %key, "{key} holds {p} at its name servers, as published");
            false
        } else if propagating {
            debug!(record = %key, "{key} shows {shown} at its name servers: the update to {p} is still propagating");
            false
        } else {
            warn!(record = %key, "{key} shows {shown} at its name servers, not {p} as published (edited elsewhere?): correcting");
            self.facts.published = None;
            true
        }
    }

    /// A push finished; returns the hook to run, if any. `unit` is the jitter.
    pub fn outcome(
        &mut self,
        ip: IpAddr,
        reply: Reply,
        rules: &Rules,
        now: Now,
        unit: f64,
    ) -> Option<HookEvent> {
        let sent = self.in_flight().cloned();
        if sent.is_some() {
            self.phase = Phase::Idle;
        }
        let (key, config) = (self.spec.key.clone(), self.spec.fingerprint.clone());
        let expect_change = sent.as_ref().is_some_and(|f| f.expect_change && f.ip == ip);
        // Sent with an entry that has been edited since: its failure says nothing of the new one.
        let stale = sent.as_ref().is_some_and(|f| f.fingerprint != config);
        let summary = reply.summary();
        self.facts.last_reply = Some(summary.clone());
        self.facts.last_attempt_at = Some(now.wall.0);
        self.facts.attempt_config = sent.map(|f| f.fingerprint);
        let previous = self.facts.published;
        let old = previous.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let event = match provider::verdict(&reply) {
            Verdict::Published { changed } => {
                info!(record = %key, "updated {key}: {old} → {ip} ({summary})");
                if !changed && expect_change {
                    warn!(record = %key, "the provider answered nochg although {key} should have changed from {old}: was it edited elsewhere?");
                }
                self.facts.published = Some(ip);
                self.facts.published_at = Some(now.wall.0);
                self.facts.failures = 0;
                self.confirmed = Some(now.mono);
                self.pushed = true;
                match changed {
                    _ if reply == Reply::DryRun => return None,
                    true => HookKind::Updated,
                    false => HookKind::Unchanged,
                }
            }
            // An abuse stop is kept even for an edited entry: the provider blocked the host.
            Verdict::Stop { .. } | Verdict::Retry { .. } if stale && reply != Reply::Abuse => {
                warn!(record = %key, "\"{summary}\" answered a request sent with the entry as it was before the reload: trying again with the new one");
                self.facts.attempt_config = Some(config);
                HookKind::Error
            }
            Verdict::Stop { fix } => {
                error!(record = %key, "{key} stopped after \"{summary}\": {fix}. Once it is fixed (at the provider or in its [[host]] entry), run `dynhostd retry {}`", key.hostname);
                self.phase = Phase::Stopped(Stopped {
                    reason: summary.clone(),
                    fix,
                    at: now.wall.0,
                    config,
                });
                HookKind::Stopped
            }
            Verdict::Retry { after } => {
                self.facts.failures = self.facts.failures.saturating_add(1);
                let delay = rules.backoff.delay(self.facts.failures, unit);
                // Never sooner than the server asked (capped against nonsense).
                let asked = after.map(|a| a.min(RETRY_AFTER_CAP));
                let delay = delay.max(asked.unwrap_or_default());
                warn!(record = %key, "update of {key} to {ip} failed ({summary}); attempt {}, next try in {:.1}s", self.facts.failures, delay.as_secs_f64());
                let (until, asked) = (now.after(delay), asked.is_some_and(|a| a >= delay));
                self.phase = Phase::BackingOff { until, asked };
                HookKind::Error
            }
        };
        let recovered =
            matches!(event, HookKind::Updated | HookKind::Unchanged) && self.facts.troubled();
        let remembered = match event {
            _ if recovered => Some(HistoryEvent::Recovered),
            HookKind::Updated => Some(HistoryEvent::Updated),
            HookKind::Unchanged => None,
            HookKind::Error => Some(HistoryEvent::Error),
            HookKind::Stopped => Some(HistoryEvent::Stopped),
        };
        if let Some(event) = remembered {
            self.facts.remember(HistoryEntry {
                at: now.wall.0,
                event,
                ip: Some(ip),
                text: summary.clone(),
            });
        }
        Some(HookEvent {
            host: key.hostname,
            family: key.family,
            ip: Some(ip),
            old_ip: previous,
            event,
            error: matches!(event, HookKind::Error | HookKind::Stopped).then(|| summary.clone()),
            reply: summary,
            recovered,
            time: now.wall,
            // The decider names it: the record does not know which uplink it follows.
            interface: None,
        })
    }
}

/// A moment long enough ago that every rule measured from it has passed.
fn long_ago(now: Now) -> Instant {
    now.mono
        .checked_sub(Duration::from_secs(3650 * 86_400))
        .unwrap_or(now.mono)
}
