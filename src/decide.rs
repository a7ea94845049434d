//! The decision core: a plain struct fed by events, with time passed in, that answers with what
//! to do next. No sockets, no clocks, no tokio, so every timing rule is a unit test. Timers are
//! not actions: the shell asks [`Decider::next_wake`] after every event and sleeps until then,
//! so an idle agent has no timer at all.
//!
//! - this file: the dispatcher. It folds kernel events into the WAN view, restarts the debounce
//!   only for a real change, and runs each record's machine against what counts now.
//! - [`record`]: one record's phase (idle, held, verifying, pushing, backing off, stopped).
//! - [`failover`]: which uplink of a failover list a record follows, and since when.
//! - [`detect`]: HTTP detection of one family's address while the WAN is behind NAT.
//! - [`control`]: what the control socket asks (`retry`, `update --ip`, live `status`).
//! - [`status`]: the live status and wake-up types `status` shows, which the control socket
//!   carries and renders.

// Deadlines are built with saturating helpers ([`crate::clock::later`], [`Now::after`]); a plain
// `Instant + Duration` could panic on a hostile state file.
#![deny(clippy::arithmetic_side_effects, clippy::unchecked_time_subtraction)]

mod detect;
mod failover;
mod record;

use crate::clock::later;
pub use crate::clock::{Now, UnixTime};
use crate::hook::HookEvent;
use crate::provider::Reply;
use crate::record::{Family, RecordKey};
use crate::state::{PublishedRecord, State};
use crate::wan::policy::{self, AddressPolicy, AddressSource, Uplinks, WanChoice};
use crate::wan::{NetEvent, NetView};
use detect::Detection;
use failover::{Failover, Switch};
use record::Record;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Retry timing after server trouble: growing and jittered (ovh-dynhost.md; its defaults are
/// `[update] retry_initial` and `retry_max`'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` failures in a row (1-based), ±20 % jitter from `unit` in [0, 1).
    pub fn delay(&self, failures: u32, unit: f64) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let base = self.initial.saturating_mul(1 << exp).min(self.max);
        base.mul_f64(0.8 + 0.4 * unit.clamp(0.0, 1.0))
    }
}

/// One enabled record the decider keeps current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub key: RecordKey,
    /// `HostConfig::fingerprint()`: a stop is lifted when it changes.
    pub fingerprint: String,
    pub source: AddressSource,
}

/// When the public address is asked of what's-my-IP services over HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectMode {
    /// Only while the WAN interface holds no address that counts (behind NAT or CGNAT).
    Auto,
    /// Always: the interface's addresses are never published as they are.
    Always,
    /// Never: behind NAT, nothing is published.
    Never,
}

impl DetectMode {
    /// Whether the public address must come from HTTP detection, given what the WAN interface
    /// offers for that family.
    pub fn asks_http(self, iface: WanChoice) -> bool {
        match self {
            DetectMode::Auto => iface == WanChoice::BehindNat,
            DetectMode::Always => true,
            DetectMode::Never => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DetectMode::Auto => "auto",
            DetectMode::Always => "always",
            DetectMode::Never => "never",
        }
    }
}

/// When to ask what's-my-IP sources instead of reading the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectPolicy {
    pub mode: DetectMode,
    /// Re-check period while some record depends on HTTP detection.
    pub interval: Duration,
    /// Families that have at least one source configured.
    pub families: Vec<Family>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeciderConfig {
    /// None: the WAN is the interface of the default route (or of `wan_uplinks`).
    pub wan_interface: Option<String>,
    /// `[wan] interface` as a failover list: the WAN is the one of them it follows now.
    pub wan_uplinks: Option<Uplinks>,
    pub debounce: Duration,
    pub policy: AddressPolicy,
    pub records: Vec<RecordSpec>,
    pub backoff: Backoff,
    pub detect: DetectPolicy,
    /// Least time between two successful updates of one record (a flapping link is no abuse).
    pub min_interval: Duration,
    /// Re-send an unchanged address after this long; zero: never.
    pub refresh: Duration,
    /// How often to check a record at its authoritative name servers; None: never (not at start).
    pub verify: Option<Duration>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The kernel reported a change (or a full dump).
    Net(NetEvent),
    /// The deadline from [`Decider::next_wake`] has passed.
    Timer,
    /// HTTP detection round `round` (from [`Action::Detect`]) of `family`'s public address
    /// finished; `ip` None: no two sources agreed.
    Public {
        family: Family,
        ip: Option<IpAddr>,
        round: u64,
    },
    /// "Check everything now" (SIGUSR1): as after a WAN change, without the debounce.
    CheckNow,
    /// What `key`'s authoritative name servers hold (Err: they could not be asked).
    Verified {
        key: RecordKey,
        shows: Result<Vec<IpAddr>, String>,
    },
    /// A push finished.
    Outcome {
        key: RecordKey,
        ip: IpAddr,
        reply: Reply,
    },
}

/// Send `ip` for `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub key: RecordKey,
    pub ip: IpAddr,
    /// What we believe is published now (for the log line).
    pub previous: Option<IpAddr>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Push(Push),
    /// Write [`Decider::state`] to the state file.
    Save,
    /// Ask `key`'s authoritative name servers what it holds; answer with [`Event::Verified`].
    Verify {
        key: RecordKey,
    },
    /// An update attempt ended: run the host's `exec` hook, if it has one.
    Hook(HookEvent),
    /// Ask the what's-my-IP sources of `family`, from `bind` (the WAN's own address of that
    /// family) when there is one; answer with [`Event::Public`], giving back `round`.
    Detect {
        family: Family,
        bind: Option<IpAddr>,
        round: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The agent: back-off and the minimum interval are honoured.
    Agent,
    /// `dynhostd update`: an earlier back-off is skipped; `force` re-sends what is published.
    Update { force: bool },
}

/// The timing rules every record follows (from [`DeciderConfig`]).
pub(crate) type Rules = DeciderConfig;

impl DeciderConfig {
    /// The failover list `source` follows, if it follows one.
    fn list_of<'a>(&'a self, source: &'a AddressSource) -> Option<&'a Uplinks> {
        match source {
            AddressSource::Wan => self.wan_uplinks.as_ref(),
            AddressSource::Uplinks(u) => Some(u),
            _ => None,
        }
    }
}

pub struct Decider {
    cfg: DeciderConfig,
    view: NetView,
    records: BTreeMap<RecordKey, Record>,
    /// Records in the state file that no enabled host keeps; written back untouched so that
    /// re-enabling a host does not cost an update.
    others: BTreeMap<RecordKey, PublishedRecord>,
    /// Records a reload removed while their request was out: the reply is still recorded.
    orphans: BTreeMap<RecordKey, Record>,
    /// After a real WAN change: the end of the quiet period, and when the burst began.
    burst: Option<(Instant, Instant)>,
    /// False until the first full dump arrived.
    have_view: bool,
    /// Addresses given by the caller (`update --ip`), which replace the interface's.
    overrides: BTreeMap<Family, IpAddr>,
    /// The address chosen last time per family and source, so a new secondary does not move it.
    chosen: BTreeMap<(Family, AddressSource), IpAddr>,
    last_choice: BTreeMap<(Family, AddressSource), (WanChoice, bool)>,
    /// Per family and source following a failover list (the `[wan]`'s, or a host's own): which
    /// of its interfaces is followed, and their history. A few at most: a list, not a map.
    failovers: Vec<((Family, AddressSource), Failover)>,
    /// Families whose address comes from HTTP detection now.
    nat: BTreeMap<Family, Detection>,
    /// The number of the last detection round started (any family): answers name their round.
    rounds: u64,
    mode: Mode,
    /// The latest moment an event was handled at: every deadline up to it has been acted on.
    last_now: Now,
    rng: u64,
}

/// The longest a burst of real changes can hold a decision back: max(2 × debounce, debounce +
/// 10 s) after its first event.
pub fn debounce_bound(debounce: Duration) -> Duration {
    let plus_ten = debounce.saturating_add(Duration::from_secs(10));
    debounce.saturating_mul(2).max(plus_ten)
}

impl Decider {
    /// `now` turns the state file's saved times into timers. `seed` feeds the back-off jitter.
    pub fn new(cfg: DeciderConfig, state: State, now: Now, seed: u64) -> Decider {
        let mut d = Decider {
            cfg,
            view: NetView::default(),
            records: BTreeMap::new(),
            others: state.records,
            orphans: BTreeMap::new(),
            burst: None,
            have_view: false,
            overrides: BTreeMap::new(),
            chosen: BTreeMap::new(),
            last_choice: BTreeMap::new(),
            failovers: Vec::new(),
            nat: BTreeMap::new(),
            rounds: 0,
            mode: Mode::Agent,
            last_now: now,
            rng: seed | 1,
        };
        d.build_records(now);
        d
    }

    /// Rebuilds each kept record, into an empty `records`, from `others` (the state file's and
    /// any dropped records).
    fn build_records(&mut self, now: Now) {
        for spec in &self.cfg.records {
            let saved = self.others.remove(&spec.key).unwrap_or_default();
            if let Some(ip) = saved.published {
                let source = (spec.key.family, spec.source.clone());
                self.chosen.entry(source).or_insert(ip);
            }
            let rec = Record::from_saved(spec.clone(), saved, &self.cfg, now);
            self.records.insert(spec.key.clone(), rec);
        }
        // Each failover list keeps its history across a reload that leaves it alone.
        let kept = std::mem::take(&mut self.failovers);
        for spec in &self.cfg.records {
            let key = (spec.key.family, spec.source.clone());
            let Some(list) = self.cfg.list_of(&key.1) else {
                continue;
            };
            if self.failovers.iter().any(|(k, _)| *k == key) {
                continue;
            }
            let old = kept.iter().find(|(k, _)| *k == key).map(|(_, f)| f.clone());
            let f = old.unwrap_or_else(|| Failover::new(list.names.len()));
            self.failovers.push((key, f));
        }
        self.observe_uplinks(now);
    }

    /// Folds in which failover interfaces are usable now (after every kernel event, so that a
    /// flapping one's history is exact).
    fn observe_uplinks(&mut self, now: Now) {
        for ((family, source), f) in &mut self.failovers {
            let Some(list) = self.cfg.list_of(source) else {
                continue;
            };
            // The [wan] may be behind NAT on one of them: HTTP detection then runs over it.
            let nat_ok = *source == AddressSource::Wan;
            let policy = &self.cfg.policy;
            let usable = list.names.iter();
            let usable = usable.map(|n| list.usable(&self.view, n, *family, policy, nat_ok));
            f.observe(usable, now.mono);
        }
    }

    /// Decides which interface each failover list follows now, and says so when it changes.
    fn decide_uplinks(&mut self, now: Now) {
        for ((family, source), f) in &mut self.failovers {
            let Some(list) = self.cfg.list_of(source) else {
                continue;
            };
            let name = |i: Option<usize>| i.and_then(|i| list.names.get(i)).map(String::as_str);
            let Switch::To(from, to) = f.decide(list.failback, now.mono) else {
                continue;
            };
            let (old, new) = (name(from), name(to));
            // Losing an uplink is a warning; gaining one is news.
            let (lost, what) = match (old, new) {
                (_, None) => (
                    true,
                    format!(
                        "none of {} is usable: nothing to publish until one is",
                        list.names.join(", ")
                    ),
                ),
                (None, Some(new)) => (false, format!("following {new}")),
                (Some(old), Some(new)) if from < to => (
                    true,
                    format!("failing over from {old} to {new}: {old} is not usable"),
                ),
                (Some(old), Some(new)) => (
                    false,
                    format!(
                        "failing back from {old} to {new}: usable for {}",
                        crate::duration::format_duration(list.failback)
                    ),
                ),
            };
            if lost {
                warn!(%family, "{what} ({source})");
            } else {
                info!(%family, "{what} ({source})");
            }
            if *source == AddressSource::Wan
                && let Some(det) = self.nat.get_mut(family)
            {
                // Another uplink: the public address found over the old one is stale.
                det.want();
            }
        }
    }

    /// For a source that follows a failover list: the interface it follows now (None inside:
    /// none is usable). None for any other source.
    fn failover_pick<'a>(
        &'a self,
        family: Family,
        source: &'a AddressSource,
    ) -> Option<Option<&'a str>> {
        let list = self.cfg.list_of(source)?;
        let key = |k: &&(_, _)| k.0 == (family, source.clone());
        let f = self.failovers.iter().find(key).map(|(_, f)| f);
        let active = f.and_then(|f| f.active().0);
        Some(active.and_then(|i| list.names.get(i)).map(String::as_str))
    }

    /// The interface whose address `key`'s record takes (or, behind NAT, over which its
    /// address was asked), for the hook and `status`; None when there is none.
    pub fn interface_of(&self, key: &RecordKey) -> Option<String> {
        let source = &self.records.get(key)?.spec.source;
        let name = match (self.failover_pick(key.family, source), source) {
            (Some(pick), _) => pick,
            (None, AddressSource::Wan) => {
                let wan = self.cfg.wan_interface.as_deref();
                self.view.wan_link(wan).map(|l| l.name.as_str())
            }
            (None, other) => other.interface(),
        };
        name.map(str::to_owned)
    }

    /// The `[wan]` interface for `family` now: the configured one, the one a `[wan]` failover
    /// list follows, or None for the default route's.
    fn wan_name(&self, family: Family) -> Option<&str> {
        const WAN: &AddressSource = &AddressSource::Wan;
        match self.failover_pick(family, WAN) {
            Some(pick) => pick,
            None => self.cfg.wan_interface.as_deref(),
        }
    }

    /// Feeds one event in; returns what to do now.
    pub fn on_event(&mut self, ev: Event, now: Now) -> Vec<Action> {
        self.on_events([ev], now)
    }

    /// Events that arrived together (finished requests and checks), decided once after them
    /// all: a decision visits every record, and 1000 hosts bring 2000 replies. The actions are
    /// those of feeding them one by one; a kernel event is decided in its turn.
    pub fn on_events(&mut self, evs: impl IntoIterator<Item = Event>, now: Now) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut undecided: Option<bool> = None; // Some(wan_changed) since the last decision
        for ev in evs {
            let net = matches!(ev, Event::Net(_));
            if net && let Some(changed) = undecided.take() {
                actions.extend(self.decide(changed, now));
            }
            match self.take_in(ev, now, &mut actions) {
                Some(changed) if net => actions.extend(self.decide(changed, now)),
                Some(changed) => undecided = Some(undecided.unwrap_or(false) | changed),
                None => {}
            }
        }
        if let Some(changed) = undecided {
            actions.extend(self.decide(changed, now));
        }
        actions
    }

    /// One event, without the decision that follows it; returns whether the WAN counts as
    /// just changed, or None when nothing is to be decided (a real change: the quiet period).
    fn take_in(&mut self, ev: Event, now: Now, actions: &mut Vec<Action>) -> Option<bool> {
        Some(match ev {
            Event::Net(net) => {
                let first = matches!(net, NetEvent::Snapshot(_)) && !self.have_view;
                let before = self.signature();
                self.view.apply(net);
                self.observe_uplinks(now);
                if first {
                    // The state at start is not a burst: decide at once.
                    self.have_view = true;
                } else if self.signature() != before {
                    // A real change restarts the quiet period, within the burst's bound (a
                    // redial removes and re-adds everything; only the state at its end matters).
                    if self.burst.is_none() {
                        debug!(
                            "WAN changed: deciding after {}ms without another change",
                            self.cfg.debounce.as_millis()
                        );
                    }
                    let start = self.burst.map_or(now.mono, |(_, start)| start);
                    let bound = later(start, debounce_bound(self.cfg.debounce));
                    self.burst = Some((now.after(self.cfg.debounce).min(bound), start));
                    return None;
                } else if self.burst.is_none() {
                    // No change; but a deadline that passed while this was read is acted on.
                    debug!("WAN unchanged: deciding");
                }
                first
            }
            Event::Timer => {
                let settled = self.burst.take_if(|(t, _)| *t <= now.mono).is_some();
                if settled {
                    debug!("WAN settled: deciding");
                }
                settled
            }
            Event::Public { family, ip, round } => {
                let unit = self.next_unit();
                let det = self.nat.get_mut(&family);
                if !det.is_some_and(|d| d.answer(round, ip, &self.cfg, now, unit)) {
                    // The family left NAT since, or a newer round is out: this answer is about
                    // a WAN that has changed.
                    debug!(%family, round, "what's-my-IP answer of an earlier round: ignored");
                    return None;
                }
                false
            }
            Event::Verified { key, shows } => {
                let current = self.current_choice(&key).public();
                if let Some(rec) = self.records.get_mut(&key)
                    && rec.verified(shows, current, now)
                {
                    actions.push(Action::Save);
                }
                false
            }
            Event::CheckNow => {
                // SIGUSR1: look again now, as after a WAN change (back-off still applies).
                self.records.values_mut().for_each(|r| r.check_now(now));
                self.burst = None;
                true
            }
            Event::Outcome { key, ip, reply } => {
                let unit = self.next_unit();
                actions.push(Action::Save);
                // Removed by a reload while out: its reply (an abuse stop, say) is still kept.
                let mut orphan = self.orphans.remove(&key);
                let interface = self.interface_of(&key);
                match self.records.get_mut(&key).or(orphan.as_mut()) {
                    Some(rec) => {
                        let hook = rec.outcome(ip, reply, &self.cfg, now, unit);
                        let hook = hook.map(|h| HookEvent { interface, ..h });
                        actions.extend(hook.map(Action::Hook));
                    }
                    None => debug!(record = %key, "outcome for a record no longer kept"),
                }
                if let Some(rec) = orphan {
                    self.others.insert(key, rec.saved(now));
                }
                false
            }
        })
    }

    /// A new configuration (SIGHUP): a stopped record gets a new chance only if its entry
    /// changed, requests in flight stay in flight, and everything is decided again at once,
    /// unless a WAN change is still settling: a reload re-reads the configuration, it does not
    /// end the debounce (deciding then would publish an address from the middle of a flap).
    /// `cancelled`: pushes the shell withdrew before sending (they held the old entry).
    pub fn reconfigure(
        &mut self,
        cfg: DeciderConfig,
        cancelled: &[RecordKey],
        now: Now,
    ) -> Vec<Action> {
        let mut flights = Vec::new();
        let orphans = std::mem::take(&mut self.orphans);
        for (key, rec) in std::mem::take(&mut self.records).into_iter().chain(orphans) {
            self.others.insert(key.clone(), rec.saved(now));
            if rec.in_flight().is_some() && !cancelled.contains(&key) {
                flights.push((key, rec));
            }
        }
        self.cfg = cfg;
        self.build_records(now);
        for (key, old) in flights {
            match self.records.get_mut(&key) {
                // Still `Pushing` with the entry it was sent with.
                Some(rec) if !rec.is_stopped() => rec.phase = old.phase,
                Some(_) => {}
                None => {
                    self.others.remove(&key);
                    self.orphans.insert(key, old);
                }
            }
        }
        self.last_choice.clear();
        // A pending burst keeps its deadline (and bound): the timer then decides, as after any
        // settled change.
        self.decide(true, now)
    }

    /// Replaces the view without deciding (`update` and `detect` take one dump).
    pub fn set_view(&mut self, view: NetView) {
        self.view = view;
        self.have_view = true;
        self.observe_uplinks(self.last_now);
    }

    /// Takes `ip` as the WAN address of its family instead of the interface's (`update --ip`).
    pub fn set_override(&mut self, ip: IpAddr) {
        self.overrides.insert(Family::of(&ip), ip);
    }

    /// `dynhostd update`: decides at once, skipping debounce and any earlier back-off. The mode
    /// stays (an address HTTP detection finds later is sent the same way); a failure backs off.
    pub fn decide_now(&mut self, now: Now, force: bool) -> Vec<Action> {
        self.burst = None;
        self.mode = Mode::Update { force };
        let records = self.records.values_mut();
        let save = records.fold(false, |s, r| r.skip_backoff() | s);
        let mut actions = self.decide(true, now);
        actions.extend(save.then_some(Action::Save));
        actions
    }

    /// When the shell must next send [`Event::Timer`]; None means sleep until an event. Only
    /// deadlines after the last event count: anything due by then was acted on, or cannot be
    /// (nothing to publish), and must not spin the shell.
    pub fn next_wake(&self) -> Option<Instant> {
        if let Some((quiet_until, _)) = self.burst {
            return Some(quiet_until);
        }
        let records = self.records.values().filter_map(|r| r.wake(&self.cfg));
        let checks = self.nat.values().filter_map(Detection::deadline);
        let after = |t: &Instant| *t > self.last_now.mono;
        let failbacks = self.failbacks().map(|(t, _)| t);
        let all = records.map(|(t, _)| t).chain(checks).chain(failbacks);
        all.filter(after).min()
    }

    /// Each failover list's failback deadline (a higher-priority interface waiting to be
    /// followed again), with its family and source.
    fn failbacks(&self) -> impl Iterator<Item = (Instant, &(Family, AddressSource))> {
        self.failovers.iter().filter_map(|(key, f)| {
            let list = self.cfg.list_of(&key.1)?;
            Some((f.deadline(list.failback)?, key))
        })
    }

    pub fn view(&self) -> &NetView {
        &self.view
    }

    /// The state to save: every kept record plus the untouched others.
    pub fn state(&self, now: Now) -> State {
        let mut records = self.others.clone();
        for (k, r) in self.records.iter().chain(&self.orphans) {
            records.insert(k.clone(), r.saved(now));
        }
        State { records }
    }

    /// One kept record as it would be saved now.
    pub fn record(&self, key: &RecordKey) -> Option<PublishedRecord> {
        self.records.get(key).map(|r| r.saved(self.last_now))
    }

    /// What `source` offers for `family` now, from the interfaces alone.
    pub fn source_choice(&self, family: Family, source: &AddressSource) -> WanChoice {
        // `update --ip` names the [wan]'s address; other sources keep reading their interface.
        if *source == AddressSource::Wan
            && let Some(&ip) = self.overrides.get(&family)
        {
            return match policy::judge_ip(ip, &self.cfg.policy) {
                Ok(()) => WanChoice::Public(ip),
                Err(r) if r.means_nat() => WanChoice::BehindNat,
                Err(_) => WanChoice::Nothing,
            };
        }
        let current = self.chosen.get(&(family, source.clone())).copied();
        let picked;
        let (wan, read) = match self.failover_pick(family, source) {
            None => (self.cfg.wan_interface.as_deref(), source),
            Some(None) => return WanChoice::Nothing,
            Some(Some(name)) if *source == AddressSource::Wan => (Some(name), source),
            Some(Some(name)) => {
                picked = AddressSource::Interface(name.to_owned());
                (None, &picked)
            }
        };
        policy::resolve(&self.view, wan, read, family, &self.cfg.policy, current)
    }

    /// What counts for the record `key` now: its source's address, or while its `[wan]` is
    /// behind NAT what the what's-my-IP sources last agreed on.
    pub fn current_choice(&self, key: &RecordKey) -> WanChoice {
        let source = self.records.get(key).map(|r| r.spec.source.clone());
        let source = source.unwrap_or_default();
        match self.nat.get(&key.family) {
            Some(det) if source == AddressSource::Wan => {
                det.public.map_or(WanChoice::BehindNat, WanChoice::Public)
            }
            _ => self.source_choice(key.family, &source),
        }
    }

    /// The signature of every interface some record follows.
    fn signature(&self) -> policy::WanSignature {
        let wan_list = self.cfg.wan_uplinks.clone().map(AddressSource::Uplinks);
        policy::signature(
            &self.view,
            self.wan_name(Family::V4),
            self.cfg.records.iter().map(|r| &r.source).chain(&wan_list),
            &self.cfg.policy,
        )
    }

    /// Whether `family`'s address must come from HTTP detection, given what the interface offers.
    fn needs_http(&self, family: Family, iface: WanChoice) -> bool {
        let detect = &self.cfg.detect;
        let wanted = |r: &Record| {
            r.spec.key.family == family && r.spec.source == AddressSource::Wan && !r.is_stopped()
        };
        // The records are walked last, only when detection could apply at all.
        detect.mode.asks_http(iface)
            && detect.families.contains(&family)
            && !self.overrides.contains_key(&family)
            && self.records.values().any(wanted)
    }

    /// Runs every record's machine against what counts now. `wan_changed` (a settled change,
    /// the start, check-now): an address found over HTTP before may be stale.
    fn decide(&mut self, wan_changed: bool, now: Now) -> Vec<Action> {
        self.last_now = now;
        if self.burst.is_some() || !self.have_view {
            return Vec::new();
        }
        if wan_changed {
            self.nat.values_mut().for_each(Detection::want);
        }
        self.decide_uplinks(now);
        let mut actions = Vec::new();
        // Each source is resolved once per family; a record follows only its own.
        let sources: BTreeSet<(Family, AddressSource)> = self
            .records
            .values()
            .map(|r| (r.spec.key.family, r.spec.source.clone()))
            .collect();
        for (family, source) in sources {
            let choice = self.choose(family, &source, now, &mut actions);
            let mine = |r: &&mut Record| r.spec.key.family == family && r.spec.source == source;
            for rec in self.records.values_mut().filter(mine) {
                actions.extend(rec.step(choice.public(), &self.cfg, self.mode, now));
            }
        }
        actions
    }

    /// What `source` offers for `family`; for the `[wan]` behind NAT, what HTTP detection found
    /// (starting a round when one is due).
    fn choose(
        &mut self,
        family: Family,
        source: &AddressSource,
        now: Now,
        actions: &mut Vec<Action>,
    ) -> WanChoice {
        let iface = self.source_choice(family, source);
        let wan = *source == AddressSource::Wan;
        let via_http = wan && self.needs_http(family, iface);
        let choice = if via_http {
            let bind = policy::bind_address(&self.view, self.wan_name(family), family);
            let det = self.nat.entry(family).or_insert_with(Detection::at_once);
            let round = self.rounds.wrapping_add(1);
            if det.start(now, round) {
                self.rounds = round;
                actions.push(Action::Detect {
                    family,
                    bind,
                    round,
                });
            }
            det.public.map_or(WanChoice::BehindNat, WanChoice::Public)
        } else {
            if wan {
                // Out of NAT (or detection off): no more re-checks.
                self.nat.remove(&family);
            }
            if let WanChoice::Public(ip) = iface {
                self.chosen.insert((family, source.clone()), ip);
            }
            iface
        };
        let seen = (choice, via_http);
        if self.last_choice.insert((family, source.clone()), seen) != Some(seen) {
            self.log_choice(family, source, choice, via_http);
        }
        choice
    }

    fn log_choice(&self, family: Family, source: &AddressSource, choice: WanChoice, http: bool) {
        let configured = self.wan_name(family);
        let link = self.view.wan_link(configured).map(|l| l.name.as_str());
        let wan = link.or(configured).unwrap_or("(no default route)");
        let other = *source != AddressSource::Wan;
        match (choice, http) {
            (WanChoice::Public(ip), _) if other => info!(%family, "{source} gives {ip}"),
            _ if other => info!(
                %family,
                "{source} gives no usable address: nothing to publish (`dynhostd detect` says why)"
            ),
            (WanChoice::Public(ip), false) => info!(%family, wan, "WAN address is {ip}"),
            (WanChoice::Public(ip), true) => {
                info!(%family, wan, "public address is {ip} (HTTP detection)")
            }
            (_, true) => info!(
                %family, wan,
                "no address on the WAN counts (behind NAT?): asking what's-my-IP sources"
            ),
            (WanChoice::BehindNat, false) => warn!(
                %family, wan,
                "the WAN holds only private/CGNAT addresses: behind NAT, nothing to publish from the interface"
            ),
            (WanChoice::Nothing, false) => {
                info!(%family, wan, "the WAN has no routable address: nothing to publish (`dynhostd detect` says why)")
            }
        }
    }

    fn next_unit(&mut self) -> f64 {
        jitter_unit(&mut self.rng)
    }
}

/// A number in [0, 1) for jitter, from xorshift64* state `rng` (never 0): no need for a real
/// RNG. The core's back-off and the notifications' retries draw from it.
pub fn jitter_unit(rng: &mut u64) -> f64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let v = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

pub mod control;
pub mod status;

#[cfg(test)]
mod tests;
