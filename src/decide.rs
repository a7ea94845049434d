//! The decision core: a plain struct fed by events, with time passed in, that answers with what
//! to do next. No sockets, no clocks, no tokio, so every timing rule is a unit test.
//!
//! It owns the debounce deadline, the view of the WAN, each record's state (published address,
//! back-off, stop reason) and the rule "update only when the routable address really changed"
//! (Bali Dynamic DNS's "Update IP in database if necessary"). Timers are not actions: the shell
//! asks [`Decider::next_wake`] after every event and sleeps until then, so an idle agent has
//! no timer at all.

use crate::config::DetectMode;
use crate::hook::{HookEvent, HookKind};
use crate::provider::{self, Reply, Verdict};
use crate::record::{Family, RecordKey};
use crate::state::{PublishedRecord, State, Stopped};
use crate::wan::policy::{self, AddressPolicy, WanChoice};
use crate::wan::{NetEvent, NetView, Scope};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

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

/// How long after an update a differing DNS answer is put down to propagation rather than to
/// a wrong record (ovh-dynhost.md: "Propagation takes minutes").
pub const PROPAGATION_GRACE: Duration = Duration::from_secs(600);

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
    /// What `key`'s authoritative name servers hold (Err: they could not be asked). `at`: Unix
    /// seconds.
    Verified {
        key: RecordKey,
        shows: Result<Vec<IpAddr>, String>,
        at: u64,
    },
    /// A push finished. `at` is the wall-clock time (Unix seconds) it finished.
    Outcome {
        key: RecordKey,
        ip: IpAddr,
        reply: Reply,
        at: u64,
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

/// HTTP detection state of one family, kept only while some record depends on it.
#[derive(Debug, Clone, Default)]
struct Nat {
    /// The address the sources agreed on last.
    public: Option<IpAddr>,
    in_flight: bool,
    /// When to ask again: the interval after an answer, back-off after a failure.
    next_check: Option<Instant>,
    /// Time to ask (the first time, or `next_check` has passed).
    due: bool,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    ip: IpAddr,
    /// False when a `nochg` is normal: the published address was unknown, or the push forced.
    expect_change: bool,
    /// The host entry the request was sent with: a reply about an entry that has been edited
    /// since (SIGHUP) must not stop or back off the new one.
    fingerprint: String,
}

#[derive(Debug, Clone)]
struct Record {
    spec: RecordSpec,
    saved: PublishedRecord,
    in_flight: Option<InFlight>,
    /// Back-off after a failure: no push before then (in the agent).
    retry_deadline: Option<Instant>,
    /// The minimum interval after the last success: no change is sent before then.
    hold_until: Option<Instant>,
    /// A change is waiting for `hold_until` (only then is it worth a wake-up).
    held: bool,
    /// When the unchanged address is to be re-sent.
    refresh_at: Option<Instant>,
    refresh_due: bool,
    /// Next DNS check of what is published.
    verify_at: Option<Instant>,
    verify_due: bool,
    verifying: bool,
    /// Unknown at start: wait for the DNS answer before sending (it may already be right).
    awaiting_verify: bool,
    /// When this process last had an update accepted: a DNS answer soon after may predate it.
    pushed_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The agent: back-off is honoured.
    Agent,
    /// `dynhostd update`: the user asked, so back-off is skipped; `force` also re-sends what is
    /// already published.
    Update { force: bool },
}

pub struct Decider {
    cfg: DeciderConfig,
    view: NetView,
    records: BTreeMap<RecordKey, Record>,
    /// Records in the state file that no enabled host keeps; written back untouched so that
    /// re-enabling a host does not cost an update.
    others: BTreeMap<RecordKey, PublishedRecord>,
    debounce_until: Option<Instant>,
    /// False until the first full dump arrived.
    have_view: bool,
    /// Addresses given by the caller (`update --ip`), which replace the interface's.
    overrides: BTreeMap<Family, IpAddr>,
    /// The address chosen last time per family, so a new secondary does not move it.
    chosen: BTreeMap<Family, IpAddr>,
    last_choice: BTreeMap<Family, (WanChoice, bool)>,
    /// Families whose address comes from HTTP detection now.
    nat: BTreeMap<Family, Nat>,
    mode: Mode,
    rng: u64,
}

/// The kept records from what the state file says, with saved wall-clock times turned into
/// timers. Takes each kept record out of `saved`, leaving the others there. A stop is lifted
/// when the host's entry changed since.
fn build_records(
    cfg: &DeciderConfig,
    saved: &mut BTreeMap<RecordKey, PublishedRecord>,
    now: Instant,
    now_unix: u64,
) -> (BTreeMap<RecordKey, Record>, BTreeMap<Family, IpAddr>) {
    let mut records = BTreeMap::new();
    let mut chosen = BTreeMap::new();
    for spec in &cfg.records {
        let mut rec = saved.remove(&spec.key).unwrap_or_default();
        if let Some(stop) = &rec.stopped
            && stop.config != spec.fingerprint
        {
            info!(record = %spec.key, "configuration changed since it was stopped ({}): trying again", stop.reason);
            rec.stopped = None;
            rec.failures = 0;
            rec.retry_at = None;
        }
        if rec.failures > 0
            && rec
                .attempt_config
                .as_ref()
                .is_some_and(|c| *c != spec.fingerprint)
        {
            // The back-off was earned by the entry as it was; a fixed one (server, ca_file…)
            // is tried now.
            info!(record = %spec.key, "configuration changed since the last failure: trying again now");
            rec.failures = 0;
            rec.retry_at = None;
        }
        // What has passed is due now.
        let timer = |at: u64| now + Duration::from_secs(at.saturating_sub(now_unix));
        let retry_deadline = rec.retry_at.filter(|at| *at > now_unix).map(timer);
        let hold_until = rec
            .published_at
            .map(|at| at.saturating_add(cfg.min_interval.as_secs()))
            .filter(|at| *at > now_unix)
            .map(timer);
        let refresh_at = rec
            .published_at
            .filter(|_| !cfg.refresh.is_zero())
            .map(|at| timer(at.saturating_add(cfg.refresh.as_secs())));
        if let Some(ip) = rec.published {
            chosen.entry(spec.key.family).or_insert(ip);
        }
        let unknown = rec.published.is_none() && rec.stopped.is_none();
        let verify_due = cfg.verify.is_some() && unknown;
        let verify_at = match cfg.verify {
            Some(every) if !unknown => Some(now + every),
            _ => None,
        };
        records.insert(
            spec.key.clone(),
            Record {
                spec: spec.clone(),
                saved: rec,
                in_flight: None,
                retry_deadline,
                hold_until,
                held: false,
                refresh_at,
                refresh_due: false,
                verify_at,
                verify_due,
                verifying: false,
                awaiting_verify: verify_due,
                pushed_at: None,
            },
        );
    }
    (records, chosen)
}

impl Decider {
    /// `now`/`now_unix` are the same moment on the monotonic and wall clocks; they turn saved
    /// back-off deadlines into timers. `seed` feeds the back-off jitter.
    pub fn new(
        cfg: DeciderConfig,
        state: State,
        now: Instant,
        now_unix: u64,
        seed: u64,
    ) -> Decider {
        let mut others = state.records;
        let (records, chosen) = build_records(&cfg, &mut others, now, now_unix);
        Decider {
            cfg,
            view: NetView::default(),
            records,
            others,
            debounce_until: None,
            have_view: false,
            overrides: BTreeMap::new(),
            chosen,
            last_choice: BTreeMap::new(),
            nat: BTreeMap::new(),
            mode: Mode::Agent,
            rng: seed | 1,
        }
    }

    /// Feeds one event in; returns what to do now.
    pub fn on_event(&mut self, ev: Event, now: Instant) -> Vec<Action> {
        let became_due = self.expire(now);
        match ev {
            Event::Net(net) => {
                let mut actions = self.on_net(net, now);
                // A deadline that passed while this (unrelated) event was being read must still
                // be acted on: the timer that named it is gone.
                if became_due && self.debounce_until.is_none() && self.have_view {
                    actions.extend(self.decide(false));
                }
                actions
            }
            Event::Timer => {
                let settled = self.debounce_until.is_some_and(|t| t <= now);
                if settled {
                    self.debounce_until = None;
                }
                if self.debounce_until.is_some() || !self.have_view {
                    return Vec::new();
                }
                if settled {
                    // Contract 2: tests wait for this line to prove a quiet period.
                    debug!("WAN settled: deciding");
                }
                self.decide(settled)
            }
            Event::Public { family, ip } => self.on_public(family, ip, now),
            Event::Verified { key, shows, at } => self.on_verified(key, shows, at, now),
            Event::CheckNow => {
                // SIGUSR1: look again now, as after a WAN change (back-off still applies).
                if self.cfg.verify.is_some() {
                    for rec in self.records.values_mut() {
                        rec.verify_due = rec.saved.stopped.is_none();
                    }
                }
                if !self.have_view {
                    return Vec::new();
                }
                self.debounce_until = None;
                self.decide(true)
            }
            Event::Outcome { key, ip, reply, at } => self.on_outcome(key, ip, reply, at, now),
        }
    }

    /// A new configuration (SIGHUP): records are kept or added or dropped, a stopped record gets
    /// a new chance only if its entry changed, requests in flight stay in flight, and everything
    /// is decided again at once.
    pub fn reconfigure(&mut self, cfg: DeciderConfig, now: Instant, now_unix: u64) -> Vec<Action> {
        let in_flight: Vec<(RecordKey, InFlight)> = self
            .records
            .iter()
            .filter_map(|(k, r)| r.in_flight.clone().map(|f| (k.clone(), f)))
            .collect();
        let mut saved = self.state().records;
        let (mut records, chosen) = build_records(&cfg, &mut saved, now, now_unix);
        for (key, flight) in in_flight {
            if let Some(r) = records.get_mut(&key) {
                r.in_flight = Some(flight);
            }
        }
        for (family, ip) in chosen {
            self.chosen.entry(family).or_insert(ip);
        }
        self.records = records;
        self.others = saved;
        self.cfg = cfg;
        self.last_choice.clear();
        for nat in self.nat.values_mut() {
            nat.due = true;
        }
        self.debounce_until = None;
        if !self.have_view {
            return Vec::new();
        }
        self.decide(true)
    }

    /// Turns every deadline that has passed into what it stands for, so that the deadlines
    /// left are all in the future and [`Decider::next_wake`] never names a past instant (which
    /// would spin the shell while a debounce is pending).
    /// Returns whether any deadline passed.
    fn expire(&mut self, now: Instant) -> bool {
        let mut any = false;
        let mut passed = |t: &mut Option<Instant>| -> bool {
            let p = t.is_some_and(|t| t <= now);
            if p {
                *t = None;
                any = true;
            }
            p
        };
        for rec in self.records.values_mut() {
            if passed(&mut rec.retry_deadline) {
                rec.saved.retry_at = None;
            }
            passed(&mut rec.hold_until);
            if passed(&mut rec.refresh_at) {
                rec.refresh_due = true;
            }
            if passed(&mut rec.verify_at) {
                rec.verify_due = true;
            }
        }
        for nat in self.nat.values_mut() {
            if passed(&mut nat.next_check) {
                nat.due = true;
            }
        }
        any
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

    /// Decides at once, skipping debounce and back-off: `dynhostd update`. The decider stays in
    /// that mode, so a public address found by HTTP detection afterwards is sent the same way.
    pub fn decide_now(&mut self, now: Instant, force: bool) -> Vec<Action> {
        self.expire(now);
        self.debounce_until = None;
        self.mode = Mode::Update { force };
        self.decide(true)
    }

    /// When the shell must next send [`Event::Timer`]; None means sleep until an event.
    pub fn next_wake(&self) -> Option<Instant> {
        let retries = self
            .records
            .values()
            .filter(|r| r.in_flight.is_none() && r.saved.stopped.is_none())
            .flat_map(|r| {
                [
                    r.retry_deadline,
                    r.hold_until.filter(|_| r.held),
                    r.refresh_at,
                    r.verify_at,
                ]
            })
            .flatten();
        let checks = self
            .nat
            .values()
            .filter(|n| !n.in_flight)
            .filter_map(|n| n.next_check);
        self.debounce_until
            .into_iter()
            .chain(retries)
            .chain(checks)
            .min()
    }

    pub fn view(&self) -> &NetView {
        &self.view
    }

    /// Whether any push is still waiting for its outcome.
    pub fn busy(&self) -> bool {
        self.records.values().any(|r| r.in_flight.is_some())
    }

    /// The state to save: every kept record plus the untouched others.
    pub fn state(&self) -> State {
        let mut records = self.others.clone();
        for (k, r) in &self.records {
            records.insert(k.clone(), r.saved.clone());
        }
        State { records }
    }

    pub fn record(&self, key: &RecordKey) -> Option<&PublishedRecord> {
        self.records.get(key).map(|r| &r.saved)
    }

    /// What the WAN offers for `family` now.
    pub fn wan_choice(&self, family: Family) -> WanChoice {
        if let Some(ip) = self.overrides.get(&family) {
            return match policy::judge_ip(*ip, &self.cfg.policy) {
                Ok(()) => WanChoice::Public(*ip),
                Err(r) if r.means_nat() => WanChoice::BehindNat,
                Err(_) => WanChoice::Nothing,
            };
        }
        let Some(link) = self.view.wan_link(self.cfg.wan_interface.as_deref()) else {
            return WanChoice::Nothing;
        };
        policy::choose(
            self.view.addrs_on(link.index),
            family,
            &self.cfg.policy,
            self.chosen.get(&family).copied(),
        )
    }

    /// What counts for `family` now: the interface's address, or while behind NAT what the
    /// what's-my-IP sources last agreed on.
    pub fn current_choice(&self, family: Family) -> WanChoice {
        match self.nat.get(&family) {
            Some(nat) => nat.public.map_or(WanChoice::BehindNat, WanChoice::Public),
            None => self.wan_choice(family),
        }
    }

    fn on_net(&mut self, net: NetEvent, now: Instant) -> Vec<Action> {
        let first = matches!(net, NetEvent::Snapshot(_)) && !self.have_view;
        let before = self.wan_index();
        let touched = match &net {
            NetEvent::Snapshot(_) => None,
            NetEvent::NewLink(l) => Some(l.index),
            NetEvent::DelLink { index } => Some(*index),
            NetEvent::NewAddr(a) | NetEvent::DelAddr(a) => Some(a.index),
            NetEvent::NewRoute(r) | NetEvent::DelRoute(r) => Some(r.index),
        };
        let is_snapshot = touched.is_none();
        self.view.apply(net);
        if first {
            // The state at start is not a burst: decide at once.
            self.have_view = true;
            return self.decide(true);
        }
        let after = self.wan_index();
        let relevant = is_snapshot
            || before != after
            || touched.is_some_and(|i| Some(i) == before || Some(i) == after);
        if relevant {
            // Every relevant event restarts the quiet period: a redial removes and re-adds
            // everything, and only the state at the end of it matters.
            self.debounce_until = Some(now + self.cfg.debounce);
        }
        Vec::new()
    }

    fn wan_index(&self) -> Option<u32> {
        self.view
            .wan_link(self.cfg.wan_interface.as_deref())
            .map(|l| l.index)
    }

    /// Whether `family`'s address must come from HTTP detection, given what the interface offers.
    fn needs_http(&self, family: Family, iface: WanChoice) -> bool {
        let wanted = self
            .records
            .values()
            .any(|r| r.spec.key.family == family && r.saved.stopped.is_none());
        let possible =
            self.cfg.detect.families.contains(&family) && !self.overrides.contains_key(&family);
        wanted && possible && self.cfg.detect.mode.asks_http(iface)
    }

    /// The WAN's own address of `family` to send detection requests from, so the question is
    /// asked over the WAN (not over another uplink or the other family).
    fn wan_bind(&self, family: Family) -> Option<IpAddr> {
        let link = self.view.wan_link(self.cfg.wan_interface.as_deref())?;
        self.view
            .addrs_on(link.index)
            .filter(|a| a.family() == family && a.scope == Scope::Universe)
            .filter(|a| !a.flags.tentative && !a.flags.dadfailed)
            .min_by_key(|a| {
                (
                    a.flags.deprecated,
                    a.flags.secondary && a.addr.is_ipv4(),
                    a.addr,
                )
            })
            .map(|a| a.addr)
    }

    /// `wan_changed`: the WAN just settled after a change (or this is the start), so a public
    /// address found over HTTP before may be stale: ask again.
    fn decide(&mut self, wan_changed: bool) -> Vec<Action> {
        let mode = self.mode;
        let mut actions = Vec::new();
        let mut save = false;
        for family in Family::ALL {
            if !self.records.keys().any(|k| k.family == family) {
                continue;
            }
            let iface = self.wan_choice(family);
            let via_http = self.needs_http(family, iface);
            let choice = if via_http {
                let bind = self.wan_bind(family);
                let nat = self.nat.entry(family).or_insert_with(|| Nat {
                    due: true,
                    ..Nat::default()
                });
                if (wan_changed || nat.due) && !nat.in_flight {
                    nat.in_flight = true;
                    nat.due = false;
                    nat.next_check = None;
                    actions.push(Action::Detect { family, bind });
                }
                nat.public.map_or(WanChoice::BehindNat, WanChoice::Public)
            } else {
                // Out of NAT (or detection off): no more re-checks.
                self.nat.remove(&family);
                if let WanChoice::Public(ip) = iface {
                    self.chosen.insert(family, ip);
                }
                iface
            };
            self.note_choice(family, choice, via_http);
            for rec in self
                .records
                .values_mut()
                .filter(|r| r.spec.key.family == family)
            {
                if rec.in_flight.is_some() || rec.saved.stopped.is_some() {
                    continue;
                }
                if rec.retry_deadline.is_some() {
                    if mode == Mode::Agent {
                        continue;
                    }
                    // `update`: the user asked now.
                    rec.retry_deadline = None;
                    rec.saved.retry_at = None;
                    save = true;
                }
                let WanChoice::Public(ip) = choice else {
                    // Behind NAT with no answer yet, or no address: nothing to publish (and
                    // nothing to compare the DNS with).
                    continue;
                };
                if rec.verify_due && !rec.verifying {
                    rec.verify_due = false;
                    rec.verifying = true;
                    actions.push(Action::Verify {
                        key: rec.spec.key.clone(),
                    });
                }
                if rec.awaiting_verify {
                    continue;
                }
                let changed = rec.saved.published != Some(ip);
                let force = mode == Mode::Update { force: true };
                if !changed && !force && !rec.refresh_due {
                    continue;
                }
                if changed && mode == Mode::Agent && rec.hold_until.is_some() {
                    // Too soon after the last success: sent when the minimum interval is over.
                    rec.held = true;
                    continue;
                }
                rec.held = false;
                if !changed && rec.refresh_due && !force {
                    info!(record = %rec.spec.key, "refreshing {ip}: unchanged for {}", crate::config::format_duration(self.cfg.refresh));
                }
                rec.refresh_due = false;
                let previous = rec.saved.published;
                rec.in_flight = Some(InFlight {
                    ip,
                    expect_change: previous.is_some() && changed,
                    fingerprint: rec.spec.fingerprint.clone(),
                });
                actions.push(Action::Push(Push {
                    key: rec.spec.key.clone(),
                    ip,
                    previous,
                }));
            }
        }
        if save {
            actions.push(Action::Save);
        }
        actions
    }

    fn on_verified(
        &mut self,
        key: RecordKey,
        shows: Result<Vec<IpAddr>, String>,
        at: u64,
        now: Instant,
    ) -> Vec<Action> {
        let every = self.cfg.verify;
        let current = match self.current_choice(key.family) {
            WanChoice::Public(ip) => Some(ip),
            _ => None,
        };
        let Some(rec) = self.records.get_mut(&key) else {
            return Vec::new();
        };
        rec.verifying = false;
        rec.verify_at = every.map(|e| now + e);
        let first = std::mem::take(&mut rec.awaiting_verify);
        let mut save = false;
        match shows {
            Err(e) => {
                // Never a reason to send: a DNS failure must not turn into an update loop.
                warn!(record = %key, "cannot check {key} at its name servers: {e}");
            }
            Ok(shows) => {
                let holds = |ip: IpAddr| shows.len() == 1 && shows[0] == ip;
                let shown = || {
                    if shows.is_empty() {
                        "no record".to_string()
                    } else {
                        shows
                            .iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                if first {
                    if let Some(ip) = current.filter(|ip| holds(*ip)) {
                        info!(record = %key, "{key} already holds {ip} at its name servers: nothing to send");
                        rec.saved.published = Some(ip);
                        rec.saved.published_at = Some(at);
                        save = true;
                    } else {
                        debug!(record = %key, "{key} shows {} at its name servers", shown());
                    }
                } else if let Some(p) = rec.saved.published {
                    let settled = rec
                        .pushed_at
                        .is_none_or(|t| now.saturating_duration_since(t) >= PROPAGATION_GRACE);
                    if holds(p) {
                        debug!(record = %key, "{key} holds {p} at its name servers, as published");
                    } else if settled {
                        warn!(record = %key, "{key} shows {} at its name servers, not {p} as published (edited elsewhere?): correcting", shown());
                        rec.saved.published = None;
                        save = true;
                    } else {
                        debug!(record = %key, "{key} shows {} at its name servers: the update to {p} is still propagating", shown());
                    }
                }
            }
        }
        let mut actions = Vec::new();
        if save {
            actions.push(Action::Save);
        }
        if self.debounce_until.is_none() && self.have_view {
            actions.extend(self.decide(false));
        }
        actions
    }

    fn on_public(&mut self, family: Family, ip: Option<IpAddr>, now: Instant) -> Vec<Action> {
        let unit = self.next_unit();
        let interval = self.cfg.detect.interval;
        let backoff = self.cfg.backoff;
        let Some(nat) = self.nat.get_mut(&family) else {
            // The interface got a routable address meanwhile: the answer is not needed.
            return Vec::new();
        };
        nat.in_flight = false;
        match ip {
            Some(ip) => {
                nat.public = Some(ip);
                nat.failures = 0;
                nat.next_check = Some(now + interval);
            }
            None => {
                nat.failures = nat.failures.saturating_add(1);
                let delay = backoff.delay(nat.failures, unit);
                warn!(%family, "no public address from the what's-my-IP sources; asking again in {}s", delay.as_secs());
                nat.next_check = Some(now + delay);
            }
        }
        if self.debounce_until.is_some() || !self.have_view {
            return Vec::new();
        }
        self.decide(false)
    }

    fn note_choice(&mut self, family: Family, choice: WanChoice, via_http: bool) {
        if self.last_choice.insert(family, (choice, via_http)) == Some((choice, via_http)) {
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

    fn on_outcome(
        &mut self,
        key: RecordKey,
        ip: IpAddr,
        reply: Reply,
        at: u64,
        now: Instant,
    ) -> Vec<Action> {
        let unit = self.next_unit();
        let Some(rec) = self.records.get_mut(&key) else {
            debug!(record = %key, "outcome for a record no longer kept");
            return vec![Action::Save];
        };
        let flight = rec.in_flight.take();
        let expect_change = flight
            .as_ref()
            .is_some_and(|f| f.expect_change && f.ip == ip);
        // Sent with an entry that has been edited since: its failure says nothing about the
        // new one.
        let stale = flight
            .as_ref()
            .is_some_and(|f| f.fingerprint != rec.spec.fingerprint);
        let summary = reply.summary();
        rec.saved.last_reply = Some(summary.clone());
        rec.saved.last_attempt_at = Some(at);
        rec.saved.attempt_config = flight.map(|f| f.fingerprint);
        let old = rec
            .saved
            .published
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let previous = rec.saved.published;
        let verdict = provider::verdict(&reply);
        let kind = match &verdict {
            _ if reply == Reply::DryRun => None,
            Verdict::Published { changed: true } => Some(HookKind::Updated),
            Verdict::Published { changed: false } => Some(HookKind::Unchanged),
            Verdict::Stop { .. } | Verdict::Retry { .. } if stale => Some(HookKind::Error),
            Verdict::Stop { .. } => Some(HookKind::Stopped),
            Verdict::Retry { .. } => Some(HookKind::Error),
        };
        let hook = kind.map(|event| {
            Action::Hook(HookEvent {
                host: key.hostname.clone(),
                family: key.family,
                ip: Some(ip),
                old_ip: previous,
                event,
                error: matches!(event, HookKind::Error | HookKind::Stopped)
                    .then(|| summary.clone()),
            })
        });
        match verdict {
            Verdict::Published { changed } => {
                info!(record = %key, "updated {key}: {old} → {ip} ({summary})");
                if !changed && expect_change {
                    warn!(record = %key, "the provider answered nochg although {key} should have changed from {old}: was it edited elsewhere?");
                }
                rec.saved.published = Some(ip);
                rec.saved.published_at = Some(at);
                rec.saved.failures = 0;
                rec.saved.retry_at = None;
                rec.retry_deadline = None;
                rec.hold_until =
                    (!self.cfg.min_interval.is_zero()).then(|| now + self.cfg.min_interval);
                rec.pushed_at = Some(now);
                rec.refresh_at = (!self.cfg.refresh.is_zero()).then(|| now + self.cfg.refresh);
            }
            Verdict::Stop { .. } | Verdict::Retry { .. } if stale => {
                warn!(record = %key, "\"{summary}\" answered a request sent with the entry as it was before the reload: trying again with the new one");
                rec.saved.attempt_config = Some(rec.spec.fingerprint.clone());
            }
            Verdict::Stop { fix } => {
                error!(record = %key, "{key} stopped after \"{summary}\": {fix}. dynhostd will not send for it again until its [[host]] entry changes");
                rec.saved.stopped = Some(Stopped {
                    reason: summary,
                    fix,
                    at,
                    config: rec.spec.fingerprint.clone(),
                });
                rec.retry_deadline = None;
                rec.saved.retry_at = None;
            }
            Verdict::Retry { after } => {
                rec.saved.failures = rec.saved.failures.saturating_add(1);
                let mut delay = self.cfg.backoff.delay(rec.saved.failures, unit);
                if let Some(asked) = after {
                    // Never sooner than the server asked (capped at a day against nonsense).
                    delay = delay.max(asked.min(Duration::from_secs(86_400)));
                }
                warn!(
                    record = %key,
                    "update of {key} to {ip} failed ({summary}); attempt {}, next try in {:.1}s",
                    rec.saved.failures,
                    delay.as_secs_f64()
                );
                rec.retry_deadline = Some(now + delay);
                rec.saved.retry_at = Some(at + delay.as_secs().max(1));
            }
        }
        let mut actions = vec![Action::Save];
        actions.extend(hook);
        // The WAN may have moved while the request was out; once any debounce is over, look again.
        if self.debounce_until.is_none() && self.have_view {
            actions.extend(self.decide(false));
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

#[cfg(test)]
mod tests;
