//! The decision core: a plain struct fed by events, with time passed in, that answers with what
//! to do next. No sockets, no clocks, no tokio, so every timing rule is a unit test.
//!
//! It owns the debounce deadline, the view of the WAN, each record's state (published address,
//! back-off, stop reason) and the rule "update only when the routable address really changed"
//! (Bali Dynamic DNS's "Update IP in database if necessary"). Timers are not actions: the shell
//! asks [`Decider::next_wake`] after every event and sleeps until then, so an idle agent has
//! no timer at all.
//!
//! # Layout
//! - this file: the dispatcher. It folds kernel events into the WAN view, restarts the debounce
//!   only for a real change, and runs each record's machine against what counts now.
//! - [`record`]: one record's phase (idle, held, verifying, pushing, backing off, stopped).
//! - [`detect`]: HTTP detection of one family's address while the WAN is behind NAT.
//! - [`crate::clock`]: [`Now`], one moment on both clocks, and how saved times are trusted.

// Deadlines are built with saturating helpers ([`crate::clock::later`], [`Now::after`]); a plain
// `Instant + Duration` could panic on a hostile state file.
#![deny(clippy::arithmetic_side_effects, clippy::unchecked_time_subtraction)]

mod detect;
mod record;

use crate::clock::later;
pub use crate::clock::{Now, UnixTime};
use crate::config::DetectMode;
use crate::hook::HookEvent;
use crate::provider::Reply;
use crate::record::{Family, RecordKey};
use crate::state::{PublishedRecord, State};
use crate::wan::policy::{self, AddressPolicy, AddressSource, WanChoice};
use crate::wan::{NetEvent, NetView};
use detect::Detection;
pub use record::PROPAGATION_GRACE;
use record::Phase;
use record::{Record, Step};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Retry timing after server trouble: ovh-dynhost.md asks for growing, jittered back-off that
/// starts near a minute and is capped near half an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(30 * 60),
        }
    }
}

impl Backoff {
    /// The wait after `failures` consecutive failures (1-based), with ±20 % jitter from
    /// `unit` in [0, 1).
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
    /// Where its address comes from.
    pub source: AddressSource,
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

impl Default for DetectPolicy {
    fn default() -> Self {
        DetectPolicy {
            mode: DetectMode::Auto,
            interval: Duration::from_secs(300),
            families: Family::ALL.to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeciderConfig {
    /// None: the WAN is the interface of the default route.
    pub wan_interface: Option<String>,
    pub debounce: Duration,
    pub policy: AddressPolicy,
    pub records: Vec<RecordSpec>,
    pub backoff: Backoff,
    pub detect: DetectPolicy,
    /// Least time between two successful updates of one record (a flapping link must not make
    /// us abusive).
    pub min_interval: Duration,
    /// Re-send an unchanged address after this long; zero: never.
    pub refresh: Duration,
    /// How often to check a published record at its authoritative name servers; None: never
    /// (then not even at start).
    pub verify: Option<Duration>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The kernel reported a change (or a full dump).
    Net(NetEvent),
    /// The deadline from [`Decider::next_wake`] has passed.
    Timer,
    /// HTTP detection of the public address of `family` finished; None when no two sources
    /// agreed (or all failed).
    Public { family: Family, ip: Option<IpAddr> },
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
    /// family) when there is one; answer with [`Event::Public`].
    Detect {
        family: Family,
        bind: Option<IpAddr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The agent: back-off and the minimum interval are honoured.
    Agent,
    /// `dynhostd update`: the user asked, so an earlier back-off is skipped; `force` also
    /// re-sends what is already published.
    Update { force: bool },
}

/// The timing rules every record follows (from [`DeciderConfig`]).
pub(crate) type Rules = DeciderConfig;

pub struct Decider {
    cfg: DeciderConfig,
    view: NetView,
    records: BTreeMap<RecordKey, Record>,
    /// Records in the state file that no enabled host keeps; written back untouched so that
    /// re-enabling a host does not cost an update.
    others: BTreeMap<RecordKey, PublishedRecord>,
    /// Records a reload removed while their request was out: the reply is still recorded.
    orphans: BTreeMap<RecordKey, Record>,
    /// The quiet period after a real WAN change, and when its burst began (the bound).
    debounce_until: Option<Instant>,
    burst_start: Option<Instant>,
    /// False until the first full dump arrived.
    have_view: bool,
    /// Addresses given by the caller (`update --ip`), which replace the interface's.
    overrides: BTreeMap<Family, IpAddr>,
    /// The address chosen last time per family and source, so a new secondary does not move it.
    chosen: BTreeMap<(Family, AddressSource), IpAddr>,
    last_choice: BTreeMap<(Family, AddressSource), (WanChoice, bool)>,
    /// Families whose address comes from HTTP detection now.
    nat: BTreeMap<Family, Detection>,
    mode: Mode,
    /// The latest moment an event was handled at: every deadline up to it has been acted on.
    last_now: Now,
    rng: u64,
}

/// The longest a burst of real changes can hold a decision back: max(2 × debounce, debounce +
/// 10 s) after its first event.
pub fn debounce_bound(debounce: Duration) -> Duration {
    debounce
        .saturating_mul(2)
        .max(debounce.saturating_add(Duration::from_secs(10)))
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
            debounce_until: None,
            burst_start: None,
            have_view: false,
            overrides: BTreeMap::new(),
            chosen: BTreeMap::new(),
            last_choice: BTreeMap::new(),
            nat: BTreeMap::new(),
            mode: Mode::Agent,
            last_now: now,
            rng: seed | 1,
        };
        d.build_records(now);
        d
    }

    /// Takes each kept record out of `others` (where the state file and any dropped record
    /// live) and rebuilds it for the current configuration.
    fn build_records(&mut self, now: Now) {
        let mut records = BTreeMap::new();
        for spec in &self.cfg.records {
            let saved = self.others.remove(&spec.key).unwrap_or_default();
            if let Some(ip) = saved.published {
                self.chosen
                    .entry((spec.key.family, spec.source.clone()))
                    .or_insert(ip);
            }
            records.insert(
                spec.key.clone(),
                Record::from_saved(spec.clone(), saved, &self.cfg, now),
            );
        }
        self.records = records;
    }

    /// Feeds one event in; returns what to do now.
    pub fn on_event(&mut self, ev: Event, now: Now) -> Vec<Action> {
        self.on_events([ev], now)
    }

    /// Feeds in events that arrived together (the shell's finished requests and checks) and
    /// decides once after them all, not once per event: a decision visits every record, and
    /// 1000 hosts bring 2000 replies. The actions are those of feeding them one by one. A
    /// kernel event in the batch is decided in its turn, after what came before it.
    pub fn on_events(&mut self, evs: impl IntoIterator<Item = Event>, now: Now) -> Vec<Action> {
        self.last_now = now;
        let mut actions = Vec::new();
        // Some(wan_changed): events taken in since the last decision.
        let mut undecided: Option<bool> = None;
        for ev in evs {
            let net = matches!(ev, Event::Net(_));
            if net && let Some(changed) = undecided.take() {
                actions.extend(self.decide(changed, now));
            }
            let changed = self.take_in(ev, now, &mut actions);
            if !net {
                undecided = Some(undecided.unwrap_or(false) | changed);
            }
        }
        if let Some(changed) = undecided {
            actions.extend(self.decide(changed, now));
        }
        actions
    }

    /// One event, without the decision that follows it (a kernel event decides by itself);
    /// returns whether the WAN counts as just changed.
    fn take_in(&mut self, ev: Event, now: Now, actions: &mut Vec<Action>) -> bool {
        match ev {
            Event::Net(net) => {
                actions.extend(self.on_net(net, now));
                false
            }
            Event::Timer => {
                let settled = self.debounce_until.is_some_and(|t| t <= now.mono);
                if settled {
                    debug!("WAN settled: deciding");
                    self.debounce_until = None;
                    self.burst_start = None;
                }
                settled
            }
            Event::Public { family, ip } => {
                let unit = self.next_unit();
                if let Some(det) = self.nat.get_mut(&family) {
                    det.answer(ip, self.cfg.detect.interval, &self.cfg.backoff, now, unit);
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
                for rec in self.records.values_mut() {
                    rec.check_now(now);
                }
                self.debounce_until = None;
                self.burst_start = None;
                true
            }
            Event::Outcome { key, ip, reply } => {
                actions.extend(self.on_outcome(key, ip, reply, now));
                false
            }
        }
    }

    /// A new configuration (SIGHUP): records are kept or added or dropped, a stopped record gets
    /// a new chance only if its entry changed, requests in flight stay in flight, and everything
    /// is decided again at once.
    /// `cancelled`: pushes the shell withdrew before sending (they held the old entry); those
    /// records are decided again like the rest.
    pub fn reconfigure(
        &mut self,
        cfg: DeciderConfig,
        cancelled: &[RecordKey],
        now: Now,
    ) -> Vec<Action> {
        self.last_now = now;
        let mut flights = BTreeMap::new();
        let orphans = std::mem::take(&mut self.orphans);
        for (key, rec) in std::mem::take(&mut self.records).into_iter().chain(orphans) {
            if let Some(f) = rec
                .in_flight()
                .filter(|_| !cancelled.contains(&key))
                .cloned()
            {
                flights.insert(key.clone(), (f, rec.clone()));
            }
            self.others.insert(key, rec.saved(now));
        }
        self.cfg = cfg;
        self.build_records(now);
        for (key, (flight, old)) in flights {
            match self.records.get_mut(&key) {
                Some(rec) if !rec.is_stopped() => rec.phase = Phase::Pushing(flight),
                Some(_) => {}
                None => {
                    self.others.remove(&key);
                    self.orphans.insert(key, old);
                }
            }
        }
        self.last_choice.clear();
        for det in self.nat.values_mut() {
            det.want();
        }
        self.debounce_until = None;
        self.burst_start = None;
        self.decide(true, now)
    }

    /// Replaces the view without deciding (`update` and `detect` take one dump).
    pub fn set_view(&mut self, view: NetView) {
        self.view = view;
        self.have_view = true;
    }

    /// Takes `ip` as the WAN address of its family instead of the interface's (`update --ip`).
    pub fn set_override(&mut self, ip: IpAddr) {
        self.overrides.insert(Family::of(&ip), ip);
    }

    /// Decides at once, skipping debounce and any earlier back-off: `dynhostd update`. The
    /// decider stays in that mode, so a public address found by HTTP detection afterwards is
    /// sent the same way; a failure now backs off as usual and ends the pass.
    pub fn decide_now(&mut self, now: Now, force: bool) -> Vec<Action> {
        self.last_now = now;
        self.debounce_until = None;
        self.mode = Mode::Update { force };
        let mut save = false;
        for rec in self.records.values_mut() {
            save |= rec.skip_backoff();
        }
        let mut actions = self.decide(true, now);
        if save {
            actions.push(Action::Save);
        }
        actions
    }

    /// When the shell must next send [`Event::Timer`]; None means sleep until an event. Only
    /// deadlines after the last event count: anything due by then was acted on, or cannot be
    /// (nothing to publish), and must not spin the shell.
    pub fn next_wake(&self) -> Option<Instant> {
        let after = |t: &Instant| *t > self.last_now.mono;
        let records = self.records.values().filter_map(|r| r.deadline(&self.cfg));
        let checks = self.nat.values().filter_map(Detection::deadline);
        match self.debounce_until {
            Some(t) => Some(t),
            None => records.chain(checks).filter(after).min(),
        }
    }

    pub fn view(&self) -> &NetView {
        &self.view
    }

    /// Whether any push is still waiting for its outcome.
    pub fn busy(&self) -> bool {
        self.records.values().any(|r| r.in_flight().is_some()) || !self.orphans.is_empty()
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

    /// What the WAN offers for `family` now.
    pub fn wan_choice(&self, family: Family) -> WanChoice {
        self.source_choice(family, &AddressSource::Wan)
    }

    /// What `source` offers for `family` now, from the interfaces alone.
    pub fn source_choice(&self, family: Family, source: &AddressSource) -> WanChoice {
        // `update --ip` names the [wan]'s address; other sources keep reading their interface.
        if *source == AddressSource::Wan
            && let Some(ip) = self.overrides.get(&family)
        {
            return match policy::judge_ip(*ip, &self.cfg.policy) {
                Ok(()) => WanChoice::Public(*ip),
                Err(r) if r.means_nat() => WanChoice::BehindNat,
                Err(_) => WanChoice::Nothing,
            };
        }
        policy::resolve(
            &self.view,
            self.cfg.wan_interface.as_deref(),
            source,
            family,
            &self.cfg.policy,
            self.chosen.get(&(family, source.clone())).copied(),
        )
    }

    /// What counts for the record `key` now: its source's address, or while its `[wan]` is
    /// behind NAT what the what's-my-IP sources last agreed on.
    pub fn current_choice(&self, key: &RecordKey) -> WanChoice {
        let source = self.source_of(key);
        match self.nat.get(&key.family) {
            Some(det) if source == AddressSource::Wan => {
                det.public.map_or(WanChoice::BehindNat, WanChoice::Public)
            }
            _ => self.source_choice(key.family, &source),
        }
    }

    fn source_of(&self, key: &RecordKey) -> AddressSource {
        self.records
            .get(key)
            .map(|r| r.spec.source.clone())
            .unwrap_or_default()
    }

    /// The signature of every interface some record follows.
    fn signature(&self) -> policy::WanSignature {
        policy::signature(
            &self.view,
            self.cfg.wan_interface.as_deref(),
            self.cfg.records.iter().map(|r| &r.source),
            &self.cfg.policy,
        )
    }

    fn on_net(&mut self, net: NetEvent, now: Now) -> Vec<Action> {
        let first = matches!(net, NetEvent::Snapshot(_)) && !self.have_view;
        let before = self.signature();
        self.view.apply(net);
        if first {
            // The state at start is not a burst: decide at once.
            self.have_view = true;
            return self.decide(true, now);
        }
        if self.signature() != before {
            // A real change restarts the quiet period (a redial removes and re-adds everything,
            // and only the state at the end of it matters), within the burst's bound.
            let start = *self.burst_start.get_or_insert(now.mono);
            let bound = later(start, debounce_bound(self.cfg.debounce));
            self.debounce_until = Some(now.after(self.cfg.debounce).min(bound));
            return Vec::new();
        }
        // No change; but a deadline that passed while this event was read must be acted on.
        if self.debounce_until.is_none() {
            debug!("WAN unchanged: deciding");
        }
        self.decide(false, now)
    }

    /// Whether `family`'s address must come from HTTP detection, given what the interface offers.
    fn needs_http(&self, family: Family, iface: WanChoice) -> bool {
        let wanted = self.records.values().any(|r| {
            r.spec.key.family == family && r.spec.source == AddressSource::Wan && !r.is_stopped()
        });
        let possible =
            self.cfg.detect.families.contains(&family) && !self.overrides.contains_key(&family);
        wanted && possible && self.cfg.detect.mode.asks_http(iface)
    }

    /// Runs every record's machine against what counts now. `wan_changed`: the WAN just settled
    /// after a real change (or this is the start, or check-now), so a public address found over
    /// HTTP before may be stale.
    fn decide(&mut self, wan_changed: bool, now: Now) -> Vec<Action> {
        if self.debounce_until.is_some() || !self.have_view {
            return Vec::new();
        }
        let mut actions = Vec::new();
        for family in Family::ALL {
            // Each source is resolved once; a record follows only its own.
            let sources: std::collections::BTreeSet<AddressSource> = self
                .records
                .values()
                .filter(|r| r.spec.key.family == family)
                .map(|r| r.spec.source.clone())
                .collect();
            for source in sources {
                let choice = if source == AddressSource::Wan {
                    self.wan_decision(family, wan_changed, now, &mut actions)
                } else {
                    let choice = self.source_choice(family, &source);
                    if let WanChoice::Public(ip) = choice {
                        self.chosen.insert((family, source.clone()), ip);
                    }
                    self.note_choice(family, &source, choice, false);
                    choice
                };
                for rec in self
                    .records
                    .values_mut()
                    .filter(|r| r.spec.key.family == family && r.spec.source == source)
                {
                    match rec.step(choice.public(), &self.cfg, self.mode, now) {
                        Step::None => {}
                        Step::Verify => actions.push(Action::Verify {
                            key: rec.spec.key.clone(),
                        }),
                        Step::Push(p) => actions.push(Action::Push(p)),
                    }
                }
            }
        }
        actions
    }

    /// What the `[wan]` offers for `family`: its own address, or while behind NAT what HTTP
    /// detection found (starting a detection when one is due).
    fn wan_decision(
        &mut self,
        family: Family,
        wan_changed: bool,
        now: Now,
        actions: &mut Vec<Action>,
    ) -> WanChoice {
        let iface = self.wan_choice(family);
        let via_http = self.needs_http(family, iface);
        let choice = if via_http {
            let bind = policy::bind_address(&self.view, self.cfg.wan_interface.as_deref(), family);
            let det = self.nat.entry(family).or_insert_with(Detection::new);
            if wan_changed {
                det.want();
            }
            if det.start(now) {
                actions.push(Action::Detect { family, bind });
            }
            det.public.map_or(WanChoice::BehindNat, WanChoice::Public)
        } else {
            // Out of NAT (or detection off): no more re-checks.
            self.nat.remove(&family);
            if let WanChoice::Public(ip) = iface {
                self.chosen.insert((family, AddressSource::Wan), ip);
            }
            iface
        };
        self.note_choice(family, &AddressSource::Wan, choice, via_http);
        choice
    }

    fn note_choice(
        &mut self,
        family: Family,
        source: &AddressSource,
        choice: WanChoice,
        via_http: bool,
    ) {
        let seen = (choice, via_http);
        if self.last_choice.insert((family, source.clone()), seen) == Some(seen) {
            return;
        }
        if *source != AddressSource::Wan {
            match choice {
                WanChoice::Public(ip) => info!(%family, "{source} gives {ip}"),
                _ => info!(
                    %family,
                    "{source} gives no usable address: nothing to publish (`dynhostd detect` says why)"
                ),
            }
            return;
        }
        let wan = self
            .view
            .wan_link(self.cfg.wan_interface.as_deref())
            .map(|l| l.name.clone());
        let wan = wan.as_deref().unwrap_or(match &self.cfg.wan_interface {
            Some(name) => name.as_str(),
            None => "(no default route)",
        });
        match (choice, via_http) {
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

    fn on_outcome(&mut self, key: RecordKey, ip: IpAddr, reply: Reply, now: Now) -> Vec<Action> {
        let unit = self.next_unit();
        let mut actions = vec![Action::Save];
        if let Some(rec) = self.records.get_mut(&key) {
            actions.extend(
                rec.outcome(ip, reply, &self.cfg, now, unit)
                    .map(Action::Hook),
            );
        } else if let Some(mut rec) = self.orphans.remove(&key) {
            // Removed by a reload while out: its reply (an abuse stop, say) is still kept.
            actions.extend(
                rec.outcome(ip, reply, &self.cfg, now, unit)
                    .map(Action::Hook),
            );
            self.others.insert(key, rec.saved(now));
        } else {
            debug!(record = %key, "outcome for a record no longer kept");
        }
        actions
    }

    /// xorshift64*: jitter only, no need for a real RNG.
    fn next_unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let v = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub mod control;

#[cfg(test)]
mod tests;
