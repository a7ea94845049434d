//! The decision core's rules, with time passed in: no sockets, no sleeping.

// Test arithmetic on known-small values; the rule against it is for the core itself.
#![allow(clippy::arithmetic_side_effects, clippy::unchecked_time_subtraction)]

use super::*;
use crate::clock::UnixTime;
use crate::config::UpdateConfig;
use crate::hook::HookKind;
use crate::provider::TransportKind;
use crate::state::{HISTORY_MAX, HistoryEvent, PublishedRecord};
use crate::wan::{AddrFlags, DefaultRoute, Lifetime, Link, NetSnapshot, Scope, WanAddress};

const DEBOUNCE: Duration = Duration::from_secs(2);

fn v4(key_host: &str) -> RecordKey {
    RecordKey::new(key_host, Family::V4)
}

fn v6(key_host: &str) -> RecordKey {
    RecordKey::new(key_host, Family::V6)
}

fn cfg(records: &[RecordKey]) -> DeciderConfig {
    DeciderConfig {
        wan_interface: Some("ppp0".into()),
        wan_uplinks: None,
        debounce: DEBOUNCE,
        policy: AddressPolicy {
            accept: vec![
                "203.0.113.0/24".parse().unwrap(),
                "198.51.100.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            ignore: vec![],
        },
        records: records
            .iter()
            .map(|k| RecordSpec {
                key: k.clone(),
                fingerprint: "f1".into(),
                source: Default::default(),
            })
            .collect(),
        backoff: UpdateConfig::default().backoff(),
        detect: detect_policy(),
        min_interval: Duration::ZERO,
        refresh: Duration::ZERO,
        verify: None,
    }
}

/// What the default `[update]` gives the core (also for the control tests).
pub(super) fn default_backoff() -> Backoff {
    UpdateConfig::default().backoff()
}

/// What the default `[detect]` gives the core (also for the control tests).
pub(super) fn detect_policy() -> DetectPolicy {
    let c = crate::config::DetectConfig::default();
    DetectPolicy {
        mode: c.mode,
        interval: c.interval,
        families: Family::ALL.to_vec(),
    }
}

impl Decider {
    /// Whether any push is still waiting for its outcome.
    fn busy(&self) -> bool {
        self.records.values().any(|r| r.in_flight().is_some()) || !self.orphans.is_empty()
    }
}

fn link(index: u32, name: &str) -> Link {
    Link {
        index,
        name: name.into(),
        up: true,
        point_to_point: true,
    }
}

fn addr(index: u32, ip: &str) -> WanAddress {
    WanAddress {
        index,
        addr: ip.parse().unwrap(),
        prefix_len: if ip.contains(':') { 64 } else { 32 },
        peer: None,
        scope: Scope::Universe,
        flags: AddrFlags::default(),
        preferred: Lifetime::Forever,
        valid: Lifetime::Forever,
    }
}

fn snapshot(index: u32, ips: &[&str]) -> Event {
    Event::Net(NetEvent::Snapshot(NetSnapshot {
        neighbours: Vec::new(),
        links: vec![link(index, "ppp0"), link(1, "lo")],
        addrs: ips.iter().map(|ip| addr(index, ip)).collect(),
        routes: vec![DefaultRoute {
            family: Family::V4,
            index,
            metric: 0,
        }],
    }))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pushes(actions: &[Action]) -> Vec<(RecordKey, IpAddr)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Push(p) => Some((p.key.clone(), p.ip)),
            Action::Save | Action::Detect { .. } | Action::Verify { .. } | Action::Hook(_) => None,
        })
        .collect()
}

fn outcome(key: &RecordKey, ip_s: &str, reply: Reply) -> Event {
    Event::Outcome {
        key: key.clone(),
        ip: ip(ip_s),
        reply,
    }
}

const UNIX: u64 = 1_700_000_000;

/// Both clocks, moving together from `t0` (tests of skew build their own [`Now`]).
struct Clock {
    t0: Instant,
    wall0: u64,
}

impl Clock {
    fn new() -> Clock {
        Clock::restarted(0)
    }
    /// A fresh monotonic clock, `secs` later on the wall clock (a restart).
    fn restarted(secs: u64) -> Clock {
        Clock {
            t0: Instant::now(),
            wall0: UNIX + secs,
        }
    }
    fn at(&self, secs: f64) -> Now {
        self.of(self.t0 + Duration::from_secs_f64(secs))
    }
    /// The same moment on the wall clock as `t` on the monotonic one.
    fn of(&self, t: Instant) -> Now {
        Now {
            mono: t,
            wall: UnixTime(self.wall0 + t.duration_since(self.t0).as_secs()),
        }
    }
}

/// A decider with an empty state, started at the clock's zero.
fn fresh(cfg: DeciderConfig, clock: &Clock) -> Decider {
    Decider::new(cfg, State::default(), clock.at(0.0), 7)
}

fn decider(records: &[RecordKey], state: State, clock: &Clock) -> Decider {
    Decider::new(cfg(records), state, clock.at(0.0), 42)
}

fn published(key: &RecordKey, ip_s: &str) -> State {
    let mut s = State::default();
    s.records.insert(
        key.clone(),
        PublishedRecord {
            published: Some(ip(ip_s)),
            ..Default::default()
        },
    );
    s
}

#[test]
fn first_dump_with_unknown_state_sends_once_then_sleeps() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    let a = d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    assert!(d.busy());
    let a = d.on_event(
        outcome(&k, "203.0.113.7", Reply::Good(Some(ip("203.0.113.7")))),
        c.at(0.3),
    );
    assert!(a.contains(&Action::Save));
    assert!(pushes(&a).is_empty());
    assert_eq!(d.record(&k).unwrap().published, Some(ip("203.0.113.7")));
    assert_eq!(d.next_wake(), None, "idle: no timer at all");
    // The same dump again (e.g. after an overrun) changes nothing.
    let a = d.on_event(snapshot(3, &["203.0.113.7"]), c.at(5.0));
    assert!(a.is_empty());
    let a = d.on_event(Event::Timer, c.at(7.1));
    assert!(pushes(&a).is_empty());
    assert_eq!(d.next_wake(), None);
}

#[test]
fn already_published_at_start_sends_nothing() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    let a = d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    assert!(pushes(&a).is_empty());
    // A restart with a different address sends it.
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    let a = d.on_event(snapshot(3, &["203.0.113.8"]), c.at(0.0));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.8"))]);
}

#[test]
fn debounce_waits_for_quiet_then_decides_once() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let a = d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        c.at(10.0),
    );
    assert!(a.is_empty());
    let a = d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.9"))),
        c.at(11.0),
    );
    assert!(a.is_empty());
    assert_eq!(
        d.next_wake(),
        Some(c.at(13.0)).map(|n| n.mono),
        "each event restarts the timer"
    );
    assert!(d.on_event(Event::Timer, c.at(12.9)).is_empty());
    let a = d.on_event(Event::Timer, c.at(13.0));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.9"))]);
}

#[test]
fn pppoe_redial_with_the_same_address_sends_nothing_and_a_new_one_sends_one() {
    for (new_ip, want) in [("203.0.113.7", 0), ("198.51.100.20", 1)] {
        let c = Clock::new();
        let k = v4("home.example.com");
        let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
        d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
        let redial = [
            NetEvent::DelAddr(addr(3, "203.0.113.7")),
            NetEvent::DelLink { index: 3 },
            NetEvent::NewLink(link(4, "ppp0")),
            NetEvent::NewAddr(addr(4, new_ip)),
            NetEvent::NewRoute(DefaultRoute {
                family: Family::V4,
                index: 4,
                metric: 0,
            }),
        ];
        let mut all = Vec::new();
        for (i, ev) in redial.into_iter().enumerate() {
            all.extend(d.on_event(Event::Net(ev), c.at(20.0 + i as f64 * 0.2)));
        }
        assert!(all.is_empty(), "nothing before the quiet period ends");
        let wake = d.next_wake().unwrap();
        let a = d.on_event(Event::Timer, c.of(wake));
        assert_eq!(pushes(&a).len(), want, "{new_ip}");
    }
}

#[test]
fn a_storm_that_ends_where_it_started_sends_nothing() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let mut t = 1.0;
    for i in 0..400u32 {
        let other = format!("198.51.100.{}", i % 250 + 1);
        let ev = if i % 2 == 0 {
            NetEvent::DelAddr(addr(3, "203.0.113.7"))
        } else {
            NetEvent::NewAddr(addr(3, "203.0.113.7"))
        };
        assert!(d.on_event(Event::Net(ev), c.at(t)).is_empty());
        assert!(
            d.on_event(Event::Net(NetEvent::NewAddr(addr(3, &other))), c.at(t))
                .is_empty()
        );
        assert!(
            d.on_event(Event::Net(NetEvent::DelAddr(addr(3, &other))), c.at(t))
                .is_empty()
        );
        t += 0.01;
        // A timer that fires early (spurious wake) decides nothing.
        assert!(d.on_event(Event::Timer, c.at(t)).is_empty());
    }
    let wake = d.next_wake().unwrap();
    assert!(pushes(&d.on_event(Event::Timer, c.of(wake))).is_empty());
    assert_eq!(d.next_wake(), None);
}

#[test]
fn events_on_other_interfaces_do_not_wake_the_agent() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(Event::Net(NetEvent::NewLink(link(7, "br-lan"))), c.at(1.0));
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(7, "198.51.100.1"))),
        c.at(1.0),
    );
    assert_eq!(d.next_wake(), None);
}

#[test]
fn no_routable_address_sends_nothing() {
    let c = Clock::new();
    let k = v4("home.example.com");
    for ips in [
        &[][..],
        &["100.64.1.2"][..],
        &["192.168.1.2", "169.254.0.1"][..],
    ] {
        let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
        let a = d.on_event(snapshot(3, ips), c.at(0.0));
        assert!(pushes(&a).is_empty(), "{ips:?}");
    }
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    assert_eq!(
        d.source_choice(Family::V4, &AddressSource::Wan),
        WanChoice::BehindNat
    );
}

#[test]
fn a_missing_wan_interface_sends_nothing_until_it_appears() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    let empty = Event::Net(NetEvent::Snapshot(NetSnapshot::default()));
    assert!(d.on_event(empty, c.at(0.0)).is_empty());
    d.on_event(Event::Net(NetEvent::NewLink(link(9, "ppp0"))), c.at(3.0));
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(9, "203.0.113.3"))),
        c.at(3.1),
    );
    let a = d.on_event(Event::Timer, c.of(d.next_wake().unwrap()));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.3"))]);
}

#[test]
fn stop_replies_stop_the_record_until_its_config_changes() {
    for reply in [
        Reply::Unauthorized,
        Reply::BadAuth,
        Reply::NoHost,
        Reply::NotFqdn,
        Reply::BadSys,
        Reply::BadAgent,
        Reply::Abuse,
        Reply::BadRequest("{'system': ['Missing data for required field.']}".into()),
    ] {
        let c = Clock::new();
        let k = v4("home.example.com");
        let other = v4("office.example.com");
        let mut d = decider(&[k.clone(), other.clone()], State::default(), &c);
        d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
        let a = d.on_event(outcome(&k, "203.0.113.7", reply.clone()), c.at(1.0));
        assert!(a.contains(&Action::Save));
        assert!(pushes(&a).is_empty(), "{reply:?}");
        let stop = d.record(&k).unwrap().stopped.clone().expect("stopped");
        assert_eq!(stop.config, "f1");
        assert!(!stop.fix.is_empty());
        // The other host carries on.
        d.on_event(outcome(&other, "203.0.113.7", Reply::Good(None)), c.at(1.0));
        // A new address later: only the other host is updated.
        d.on_event(
            Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.1"))),
            c.at(5.0),
        );
        d.on_event(
            Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
            c.at(5.0),
        );
        let a = d.on_event(Event::Timer, c.at(7.0));
        assert_eq!(pushes(&a), vec![(other.clone(), ip("203.0.113.1"))]);
        assert_eq!(d.next_wake(), None, "a stopped record sets no timer");

        // Across a restart with the same config it stays stopped ...
        let state = d.state(c.at(0.0));
        let mut same = decider(std::slice::from_ref(&k), state.clone(), &c);
        assert!(pushes(&same.on_event(snapshot(3, &["203.0.113.1"]), c.at(0.0))).is_empty());
        // ... and an edited entry gets a new chance.
        let mut edited_cfg = cfg(std::slice::from_ref(&k));
        edited_cfg.records[0].fingerprint = "f2".into();
        let mut edited = Decider::new(edited_cfg, state, c.at(0.0), 1);
        let a = edited.on_event(snapshot(3, &["203.0.113.1"]), c.at(0.0));
        assert_eq!(pushes(&a), vec![(k, ip("203.0.113.1"))]);
    }
}

#[test]
fn server_trouble_backs_off_exponentially_with_jitter_and_a_cap() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let mut now = 0.0;
    let mut delays = Vec::new();
    let replies = [
        Reply::ServerTrouble,
        Reply::DnsErr,
        Reply::ServerError(502),
        Reply::Transport {
            kind: TransportKind::Timeout,
            message: "timed out".into(),
        },
        Reply::Transport {
            kind: TransportKind::Connect,
            message: "refused".into(),
        },
        Reply::ServerTrouble,
        Reply::ServerTrouble,
        Reply::ServerTrouble,
    ];
    for reply in replies {
        let a = d.on_event(outcome(&k, "203.0.113.7", reply), c.at(now));
        assert!(pushes(&a).is_empty(), "no immediate retry");
        let wake = d.next_wake().expect("a retry timer");
        let delay = (wake - c.at(now).mono).as_secs_f64();
        delays.push(delay);
        assert!(
            pushes(&d.on_event(Event::Timer, c.of(wake - Duration::from_millis(1)))).is_empty()
        );
        let a = d.on_event(Event::Timer, c.of(wake));
        assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
        now += delay;
    }
    assert!((48.0..=72.0).contains(&delays[0]), "{delays:?}");
    assert!((96.0..=144.0).contains(&delays[1]), "{delays:?}");
    for w in delays.windows(2).take(4) {
        assert!(w[1] > w[0], "grows: {delays:?}");
    }
    for d in &delays {
        assert!(*d <= 1800.0 * 1.2, "capped: {delays:?}");
    }
    assert!(delays[7] >= 1800.0 * 0.8, "reaches the cap: {delays:?}");
    assert_eq!(d.record(&k).unwrap().failures, 8);
    // Success resets it.
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(now));
    assert_eq!(d.record(&k).unwrap().failures, 0);
    assert_eq!(d.next_wake(), None);
}

#[test]
fn a_wait_asked_by_the_server_is_honoured() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(
        outcome(
            &k,
            "203.0.113.7",
            Reply::RateLimited(Some(Duration::from_secs(600))),
        ),
        c.at(0.0),
    );
    assert!(d.next_wake().unwrap() >= c.at(600.0).mono);
}

#[test]
fn back_off_survives_a_restart() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(outcome(&k, "203.0.113.7", Reply::ServerTrouble), c.at(0.0));
    let retry_at = d.record(&k).unwrap().retry_at.unwrap();
    let state = d.state(c.at(0.0));
    // Restarted 10 s later (wall clock), with a fresh monotonic clock.
    let c2 = Clock::restarted(10);
    let mut d2 = Decider::new(cfg(std::slice::from_ref(&k)), state, c2.at(0.0), 7);
    assert!(pushes(&d2.on_event(snapshot(3, &["203.0.113.7"]), c2.at(0.0))).is_empty());
    let wake = d2.next_wake().unwrap();
    assert_eq!(wake, c2.at((retry_at - 1_700_000_010) as f64).mono);
    assert_eq!(pushes(&d2.on_event(Event::Timer, c2.of(wake))).len(), 1);
}

#[test]
fn nochg_is_success() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    d.on_event(snapshot(3, &["203.0.113.8"]), c.at(0.0));
    // Expected a change but got nochg: logged as a warning, still taken as published.
    d.on_event(
        outcome(&k, "203.0.113.8", Reply::NoChg(Some(ip("203.0.113.8")))),
        c.at(1.0),
    );
    let r = d.record(&k).unwrap();
    assert_eq!(r.published, Some(ip("203.0.113.8")));
    assert_eq!(r.last_reply.as_deref(), Some("nochg 203.0.113.8"));
}

#[test]
fn dual_stack_records_are_independent() {
    let c = Clock::new();
    let a4 = v4("home.example.com");
    let a6 = v6("home.example.com");
    let mut d = decider(&[a4.clone(), a6.clone()], State::default(), &c);
    let a = d.on_event(snapshot(3, &["203.0.113.7", "2001:db8:1::7"]), c.at(0.0));
    assert_eq!(
        pushes(&a),
        vec![
            (a4.clone(), ip("203.0.113.7")),
            (a6.clone(), ip("2001:db8:1::7"))
        ]
    );
    d.on_event(outcome(&a6, "2001:db8:1::7", Reply::NoHost), c.at(1.0));
    d.on_event(outcome(&a4, "203.0.113.7", Reply::ServerTrouble), c.at(1.0));
    assert!(d.record(&a6).unwrap().stopped.is_some());
    assert!(d.record(&a4).unwrap().stopped.is_none());
    let wake = d.next_wake().unwrap();
    assert_eq!(
        pushes(&d.on_event(Event::Timer, c.of(wake))),
        vec![(a4, ip("203.0.113.7"))]
    );
}

#[test]
fn a_change_while_a_request_is_out_is_sent_after_it() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        c.at(0.1),
    );
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.8"))),
        c.at(0.1),
    );
    // The debounce ends while the first request is still out: nothing doubled.
    assert!(pushes(&d.on_event(Event::Timer, c.at(2.1))).is_empty());
    let a = d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(3.0));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.8"))]);
}

#[test]
fn update_mode_skips_back_off_and_force_resends() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut st = published(&k, "203.0.113.7");
    st.records.get_mut(&k).unwrap().retry_at = Some(1_700_000_500);
    let mut d = decider(std::slice::from_ref(&k), st, &c);
    d.set_view(NetView::from_snapshot(
        match snapshot(3, &["203.0.113.7"]) {
            Event::Net(NetEvent::Snapshot(s)) => s,
            _ => unreachable!(),
        },
    ));
    assert!(
        pushes(&d.decide_now(c.at(0.0), false)).is_empty(),
        "already published"
    );
    assert_eq!(pushes(&d.decide_now(c.at(0.0), true)).len(), 1, "--force");
}

#[test]
fn an_override_replaces_the_interface_address_but_is_still_judged() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.set_view(NetView::default());
    d.set_override(ip("198.51.100.50"));
    assert_eq!(
        pushes(&d.decide_now(c.at(0.0), false)),
        vec![(k.clone(), ip("198.51.100.50"))]
    );
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.set_view(NetView::default());
    d.set_override(ip("100.64.0.9"));
    assert!(pushes(&d.decide_now(c.at(0.0), false)).is_empty());
    assert_eq!(
        d.source_choice(Family::V4, &AddressSource::Wan),
        WanChoice::BehindNat
    );
}

#[test]
fn records_not_configured_are_kept_in_the_state() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let gone = v4("old.example.com");
    let d = decider(
        std::slice::from_ref(&k),
        published(&gone, "203.0.113.1"),
        &c,
    );
    assert_eq!(
        d.state(c.at(0.0)).records[&gone].published,
        Some(ip("203.0.113.1"))
    );
}

#[test]
fn following_the_default_route() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut config = cfg(std::slice::from_ref(&k));
    config.wan_interface = None;
    let mut d = fresh(config, &c);
    let snap = NetSnapshot {
        neighbours: Vec::new(),
        links: vec![link(2, "eth1"), link(5, "wwan0")],
        addrs: vec![addr(2, "203.0.113.2"), addr(5, "198.51.100.5")],
        routes: vec![DefaultRoute {
            family: Family::V4,
            index: 2,
            metric: 100,
        }],
    };
    let a = d.on_event(Event::Net(NetEvent::Snapshot(snap)), c.at(0.0));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.2"))]);
    d.on_event(outcome(&k, "203.0.113.2", Reply::Good(None)), c.at(0.5));
    // Failover: the default route moves to wwan0.
    d.on_event(
        Event::Net(NetEvent::NewRoute(DefaultRoute {
            family: Family::V4,
            index: 5,
            metric: 50,
        })),
        c.at(10.0),
    );
    let a = d.on_event(Event::Timer, c.of(d.next_wake().unwrap()));
    assert_eq!(pushes(&a), vec![(k, ip("198.51.100.5"))]);
}

fn detects(actions: &[Action]) -> Vec<(Family, Option<IpAddr>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Detect { family, bind, .. } => Some((*family, *bind)),
            _ => None,
        })
        .collect()
}

fn nat_cfg(records: &[RecordKey], mode: DetectMode) -> DeciderConfig {
    let mut c = cfg(records);
    // Only 203.0.113.0/24 counts: the 100.64/10 WAN address is behind NAT.
    c.policy.accept = vec![
        "203.0.113.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    c.detect = DetectPolicy {
        mode,
        interval: Duration::from_secs(300),
        families: Family::ALL.to_vec(),
    };
    c
}

#[test]
fn behind_nat_asks_http_sources_and_rechecks_only_while_there() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    let a = d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    assert_eq!(
        detects(&a),
        vec![(Family::V4, Some(ip("100.64.1.2")))],
        "bound to the WAN address"
    );
    assert!(pushes(&a).is_empty());
    assert_eq!(
        d.next_wake(),
        None,
        "nothing to wait for while the question is out"
    );
    let a = d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.50")),
        },
        c.at(1.0),
    );
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.50"))]);
    d.on_event(outcome(&k, "203.0.113.50", Reply::Good(None)), c.at(1.5));
    assert_eq!(
        d.next_wake(),
        Some(c.at(301.0)).map(|n| n.mono),
        "re-check after the interval"
    );
    // The re-check: same answer, nothing sent.
    let a = d.on_event(Event::Timer, c.at(301.0));
    assert_eq!(detects(&a).len(), 1);
    let a = d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.50")),
        },
        c.at(302.0),
    );
    assert!(pushes(&a).is_empty());
    // A CGNAT redial (new private address): ask again at once after the debounce, not at the
    // next interval.
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "100.64.1.2"))),
        c.at(400.0),
    );
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "100.64.9.9"))),
        c.at(400.1),
    );
    let a = d.on_event(Event::Timer, c.at(402.1));
    assert_eq!(detects(&a), vec![(Family::V4, Some(ip("100.64.9.9")))]);
    let a = d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.51")),
        },
        c.at(403.0),
    );
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.51"))]);
    d.on_event(outcome(&k, "203.0.113.51", Reply::Good(None)), c.at(403.5));
    assert!(d.next_wake().is_some());
    // The interface gets a routable address: published from it, and no more polling.
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.7"))),
        c.at(500.0),
    );
    let a = d.on_event(Event::Timer, c.at(502.0));
    assert!(detects(&a).is_empty());
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(502.5));
    assert_eq!(d.next_wake(), None, "out of NAT: no timer at all");
    // A late answer from before is ignored.
    assert!(
        d.on_event(
            Event::Public {
                round: d.rounds,
                family: Family::V4,
                ip: Some(ip("203.0.113.99"))
            },
            c.at(503.0)
        )
        .is_empty()
    );
}

#[test]
fn a_routable_wan_never_asks_http_sources_in_auto_mode() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    let mut all = d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    all.extend(d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(1.0)));
    for i in 0..50 {
        all.extend(d.on_event(
            Event::Net(NetEvent::NewAddr(addr(3, "192.168.1.2"))),
            c.at(10.0 + i as f64),
        ));
        all.extend(d.on_event(Event::Timer, c.at(13.0 + i as f64)));
    }
    assert!(detects(&all).is_empty());
    assert_eq!(d.next_wake(), None);
}

#[test]
fn detection_modes_always_and_never() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut always = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Always), &c);
    let a = always.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    assert_eq!(detects(&a), vec![(Family::V4, Some(ip("203.0.113.7")))]);
    assert!(
        pushes(&a).is_empty(),
        "the interface's address is not published as it is"
    );
    let a = always.on_event(
        Event::Public {
            round: always.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.60")),
        },
        c.at(1.0),
    );
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.60"))]);

    let mut never = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Never), &c);
    let a = never.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    assert!(a.is_empty());
    assert_eq!(never.next_wake(), None);
}

#[test]
fn when_no_source_answers_nothing_is_published_and_it_backs_off() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    let mut now = 1.0;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let a = d.on_event(
            Event::Public {
                round: d.rounds,
                family: Family::V4,
                ip: None,
            },
            c.at(now),
        );
        assert!(pushes(&a).is_empty());
        let wake = d.next_wake().unwrap();
        waits.push((wake - c.at(now).mono).as_secs_f64());
        let a = d.on_event(Event::Timer, c.of(wake));
        assert_eq!(detects(&a).len(), 1);
        now = (wake - c.t0).as_secs_f64();
    }
    assert!((48.0..=72.0).contains(&waits[0]), "{waits:?}");
    assert!(waits[2] > waits[0], "{waits:?}");
}

#[test]
fn dual_stack_can_mix_http_and_interface_addresses() {
    let c = Clock::new();
    let a4 = v4("home.example.com");
    let a6 = v6("home.example.com");
    let mut d = fresh(nat_cfg(&[a4.clone(), a6.clone()], DetectMode::Auto), &c);
    let a = d.on_event(snapshot(3, &["100.64.1.2", "2001:db8:1::5"]), c.at(0.0));
    assert_eq!(detects(&a), vec![(Family::V4, Some(ip("100.64.1.2")))]);
    assert_eq!(
        pushes(&a),
        vec![(a6, ip("2001:db8:1::5"))],
        "IPv6 does not wait for IPv4"
    );
    let a = d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.50")),
        },
        c.at(1.0),
    );
    assert_eq!(pushes(&a), vec![(a4, ip("203.0.113.50"))]);
}

fn rules_cfg(records: &[RecordKey], min_interval: u64, refresh: u64) -> DeciderConfig {
    let mut c = cfg(records);
    c.min_interval = Duration::from_secs(min_interval);
    c.refresh = Duration::from_secs(refresh);
    c
}

#[test]
fn a_flapping_link_waits_out_the_minimum_interval_between_updates() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(rules_cfg(std::slice::from_ref(&k), 30, 0), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(1.0));
    // The address changes 5 s later: debounced at 7 s, but held until 31 s.
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        c.at(5.0),
    );
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.8"))),
        c.at(5.0),
    );
    assert!(pushes(&d.on_event(Event::Timer, c.at(7.0))).is_empty());
    assert_eq!(d.next_wake(), Some(c.at(31.0)).map(|n| n.mono));
    let a = d.on_event(Event::Timer, c.at(31.0));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.8"))]);
    // It survives a restart: published_at is in the state file.
    d.on_event(
        Event::Outcome {
            key: k.clone(),
            ip: ip("203.0.113.8"),
            reply: Reply::Good(None),
        },
        c.at(31.5),
    );
    let c2 = Clock::restarted(40);
    let mut d2 = Decider::new(
        rules_cfg(std::slice::from_ref(&k), 30, 0),
        d.state(c.at(0.0)),
        c2.at(0.0),
        9,
    );
    assert!(pushes(&d2.on_event(snapshot(3, &["203.0.113.9"]), c2.at(0.0))).is_empty());
    assert_eq!(d2.next_wake(), Some(c2.at(21.0).mono));
    assert_eq!(
        pushes(&d2.on_event(Event::Timer, c2.at(21.0))),
        vec![(k, ip("203.0.113.9"))]
    );
}

#[test]
fn an_unchanged_address_is_refreshed_and_refresh_zero_turns_it_off() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let day = 86_400.0;
    let mut d = fresh(rules_cfg(std::slice::from_ref(&k), 30, 25 * 86_400), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(1.0));
    // The minimum interval costs no wake-up when no change waits for it.
    assert_eq!(d.next_wake(), Some(c.at(1.0 + 25.0 * day)).map(|n| n.mono));
    let a = d.on_event(Event::Timer, c.at(1.0 + 25.0 * day));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    d.on_event(
        outcome(&k, "203.0.113.7", Reply::NoChg(None)),
        c.at(2.0 + 25.0 * day),
    );
    assert_eq!(d.record(&k).unwrap().published, Some(ip("203.0.113.7")));

    // At start, a record published long ago is refreshed at once.
    let mut st = published(&k, "203.0.113.7");
    st.records.get_mut(&k).unwrap().published_at = Some(1_700_000_000 - 26 * 86_400);
    let mut d = Decider::new(
        rules_cfg(std::slice::from_ref(&k), 30, 25 * 86_400),
        st.clone(),
        c.at(0.0),
        9,
    );
    assert_eq!(
        pushes(&d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))).len(),
        1
    );
    let mut off = Decider::new(rules_cfg(std::slice::from_ref(&k), 30, 0), st, c.at(0.0), 9);
    assert!(
        off.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))
            .is_empty()
    );
    assert_eq!(off.next_wake(), None);
}

/// A deadline that passes while a debounce is pending must not leave `next_wake` in the past
/// (the shell would spin until the debounce ends).
#[test]
fn next_wake_is_never_in_the_past() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(rules_cfg(std::slice::from_ref(&k), 30, 0), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(outcome(&k, "203.0.113.7", Reply::ServerTrouble), c.at(0.0));
    let retry = d.next_wake().unwrap();
    // A burst of events starts just before the retry and goes on past it.
    let mut t = (retry - c.t0).as_secs_f64() - 0.5;
    let mut sent = Vec::new();
    while t < (retry - c.t0).as_secs_f64() + 1.5 {
        sent.extend(pushes(&d.on_event(
            Event::Net(NetEvent::NewAddr(addr(3, "198.51.100.9"))),
            c.at(t),
        )));
        sent.extend(pushes(&d.on_event(Event::Timer, c.at(t))));
        if let Some(w) = d.next_wake() {
            assert!(
                w > c.at(t).mono,
                "next_wake {w:?} is not after now {:?}",
                c.at(t)
            );
        }
        t += 0.1;
    }
    if let Some(w) = d.next_wake() {
        sent.extend(pushes(&d.on_event(Event::Timer, c.of(w))));
    }
    assert_eq!(sent, vec![(k, ip("203.0.113.7"))]);
}

#[test]
fn reconfigure_keeps_state_and_lifts_a_stop_only_for_an_edited_entry() {
    let c = Clock::new();
    let home = v4("home.example.com");
    let office = v4("office.example.com");
    let mut d = decider(&[home.clone(), office.clone()], State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(
        outcome(&home, "203.0.113.7", Reply::Unauthorized),
        c.at(1.0),
    );
    // office's request is still out when the reload comes.
    let mut same = cfg(&[home.clone(), office.clone()]);
    let a = d.reconfigure(same.clone(), &[], c.at(2.0));
    assert!(
        pushes(&a).is_empty(),
        "unchanged entry stays stopped; in-flight is not doubled"
    );
    assert!(d.record(&home).unwrap().stopped.is_some());
    d.on_event(
        outcome(&office, "203.0.113.7", Reply::Good(None)),
        c.at(2.5),
    );
    // The entry is edited (say, a new password): tried again at once.
    same.records[0].fingerprint = "edited".into();
    let a = d.reconfigure(same, &[], c.at(3.0));
    assert_eq!(pushes(&a), vec![(home.clone(), ip("203.0.113.7"))]);
    // A host removed from the config keeps its state in the file.
    let a = d.reconfigure(cfg(std::slice::from_ref(&home)), &[], c.at(4.0));
    assert!(pushes(&a).is_empty());
    assert_eq!(
        d.state(c.at(0.0)).records[&office].published,
        Some(ip("203.0.113.7"))
    );
}

#[test]
fn check_now_looks_again_without_waiting() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.50")),
        },
        c.at(1.0),
    );
    d.on_event(outcome(&k, "203.0.113.50", Reply::Good(None)), c.at(1.5));
    // Long before the interval: SIGUSR1 asks the sources again.
    let a = d.on_event(Event::CheckNow, c.at(10.0));
    assert_eq!(detects(&a).len(), 1);
}

fn verifies(actions: &[Action]) -> Vec<RecordKey> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Verify { key } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn verify_cfg(records: &[RecordKey]) -> DeciderConfig {
    let mut c = cfg(records);
    c.verify = Some(Duration::from_secs(6 * 3600));
    c
}

#[test]
fn an_unknown_record_is_checked_at_its_name_servers_before_sending() {
    let c = Clock::new();
    let k = v4("home.example.com");
    // The DNS already holds the address: nothing is sent.
    let mut d = fresh(verify_cfg(std::slice::from_ref(&k)), &c);
    let a = d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    assert_eq!(verifies(&a), vec![k.clone()]);
    assert!(pushes(&a).is_empty(), "waits for the answer");
    let a = d.on_event(
        Event::Verified {
            key: k.clone(),
            shows: Ok(vec![ip("203.0.113.7")]),
        },
        c.at(0.2),
    );
    assert!(pushes(&a).is_empty());
    assert!(a.contains(&Action::Save));
    assert_eq!(d.record(&k).unwrap().published, Some(ip("203.0.113.7")));
    assert_eq!(
        d.next_wake(),
        Some(c.at(0.2 + 6.0 * 3600.0)).map(|n| n.mono),
        "next check on the slow schedule"
    );
    // It shows something else, or nothing, or the DNS fails: one update, no loop.
    for shows in [
        Ok(vec![ip("198.51.100.1")]),
        Ok(vec![]),
        Err("timed out".to_string()),
    ] {
        let mut d = fresh(verify_cfg(std::slice::from_ref(&k)), &c);
        d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
        let a = d.on_event(
            Event::Verified {
                key: k.clone(),
                shows,
            },
            c.at(0.2),
        );
        assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    }
    // Without a routable address there is nothing to compare: no DNS question.
    let mut d = fresh(verify_cfg(std::slice::from_ref(&k)), &c);
    assert!(verifies(&d.on_event(snapshot(3, &["192.168.1.2"]), c.at(0.0))).is_empty());
}

#[test]
fn a_record_edited_elsewhere_is_repaired_and_dns_failures_never_loop() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut st = published(&k, "203.0.113.7");
    st.records.get_mut(&k).unwrap().published_at = Some(1_700_000_000 - 3600);
    let mut d = Decider::new(verify_cfg(std::slice::from_ref(&k)), st, c.at(0.0), 1);
    assert!(
        d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))
            .is_empty(),
        "known: no check at start"
    );
    let check = d.next_wake().unwrap();
    assert_eq!(check, c.at(6.0 * 3600.0).mono);
    let a = d.on_event(Event::Timer, c.of(check));
    assert_eq!(verifies(&a), vec![k.clone()]);
    // DNS failure: logged, nothing sent, the next check on schedule.
    let a = d.on_event(
        Event::Verified {
            key: k.clone(),
            shows: Err("SERVFAIL".into()),
        },
        c.of(check),
    );
    assert!(pushes(&a).is_empty());
    assert_eq!(d.next_wake(), Some(check + Duration::from_secs(6 * 3600)));
    // Someone changed the record in the panel: corrected.
    let a = d.on_event(Event::CheckNow, c.of(check + Duration::from_secs(10)));
    assert_eq!(verifies(&a), vec![k.clone()]);
    let a = d.on_event(
        Event::Verified {
            key: k.clone(),
            shows: Ok(vec![ip("198.51.100.66")]),
        },
        c.of(check + Duration::from_secs(11)),
    );
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    d.on_event(
        outcome(&k, "203.0.113.7", Reply::Good(None)),
        c.of(check + Duration::from_secs(12)),
    );
    // Right after an update the DNS may still show the old address: not a reason to send again.
    let a = d.on_event(Event::CheckNow, c.of(check + Duration::from_secs(20)));
    assert_eq!(verifies(&a).len(), 1);
    let a = d.on_event(
        Event::Verified {
            key: k.clone(),
            shows: Ok(vec![ip("198.51.100.66")]),
        },
        c.of(check + Duration::from_secs(21)),
    );
    assert!(pushes(&a).is_empty(), "still propagating");
}

// --- The field: clocks that are wrong or step, chatty routers, odd state files ---------------

/// A state file written while the wall clock was an hour ahead (a router restoring a saved time
/// at boot): the minimum interval holds a change for at most `min_interval`, not an hour.
#[test]
fn a_published_at_in_the_future_counts_as_now() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut st = published(&k, "203.0.113.7");
    st.records.get_mut(&k).unwrap().published_at = Some(UNIX + 3600);
    let mut d = Decider::new(rules_cfg(std::slice::from_ref(&k), 30, 0), st, c.at(0.0), 1);
    assert!(pushes(&d.on_event(snapshot(3, &["203.0.113.8"]), c.at(0.0))).is_empty());
    assert_eq!(
        d.next_wake(),
        Some(c.at(30.0).mono),
        "held for min_interval, no longer"
    );
    let a = d.on_event(Event::Timer, c.at(30.0));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.8"))]);
}

/// `retry_at` at the end of time (a tampered or corrupted file) neither crashes the decider nor
/// parks the record: a saved back-off is capped at `retry_max`, a saved Retry-After at a day.
#[test]
fn saved_deadlines_are_capped_by_their_own_rule() {
    for (asked, cap) in [
        (false, UpdateConfig::default().backoff().max),
        (true, Duration::from_secs(86_400)),
    ] {
        let c = Clock::new();
        let k = v4("home.example.com");
        let mut st = published(&k, "203.0.113.7");
        let rec = st.records.get_mut(&k).unwrap();
        rec.published_at = Some(u64::MAX);
        rec.retry_at = Some(u64::MAX);
        rec.failures = 3;
        rec.retry_asked = asked;
        let mut d = decider(std::slice::from_ref(&k), st, &c);
        assert!(pushes(&d.on_event(snapshot(3, &["203.0.113.8"]), c.at(0.0))).is_empty());
        let wake = d.next_wake().expect("a retry is planned");
        assert_eq!(wake, c.at(cap.as_secs_f64()).mono, "asked={asked}");
        let saved = d.state(c.at(0.0)).records[&k].clone();
        assert_eq!(
            saved.retry_at,
            Some(UNIX + cap.as_secs()),
            "re-saved capped"
        );
        let a = d.on_event(Event::Timer, c.of(wake));
        assert_eq!(pushes(&a), vec![(k, ip("203.0.113.8"))]);
    }
}

/// The wall clock steps by years while the agent runs: deadlines are monotonic and don't move.
#[test]
fn a_wall_clock_step_moves_no_deadline() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(rules_cfg(std::slice::from_ref(&k), 30, 0), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let stepped = |secs: f64, wall: u64| Now {
        mono: c.at(secs).mono,
        wall: UnixTime(wall),
    };
    d.on_event(
        outcome(&k, "203.0.113.7", Reply::Good(None)),
        stepped(1.0, 0),
    );
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.8"))),
        stepped(2.0, u64::MAX),
    );
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        stepped(2.0, u64::MAX),
    );
    assert!(pushes(&d.on_event(Event::Timer, stepped(4.0, UNIX + 40 * 365 * 86_400))).is_empty());
    assert_eq!(
        d.next_wake(),
        Some(c.at(31.0).mono),
        "30 s after the success"
    );
    let a = d.on_event(Event::Timer, stepped(31.0, 5));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.8"))]);
}

/// A router advertisement refreshes a SLAAC address's lifetimes: the kernel sends RTM_NEWADDR
/// for the same address. That is no change, so it must not postpone an IPv4 change.
#[test]
fn lifetime_refreshes_do_not_restart_the_debounce() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    let mut slaac = addr(3, "2001:db8::7");
    slaac.preferred = Lifetime::Secs(1800);
    slaac.valid = Lifetime::Secs(3600);
    d.on_event(Event::Net(NetEvent::NewAddr(slaac.clone())), c.at(0.0));
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.on_event(Event::Net(NetEvent::NewAddr(slaac.clone())), c.at(0.1));
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.8"))),
        c.at(1.0),
    );
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        c.at(1.0),
    );
    let mut sent = Vec::new();
    for i in 0..20 {
        let t = 1.5 + f64::from(i) * 0.5;
        slaac.preferred = Lifetime::Secs(1800 - i);
        slaac.valid = Lifetime::Secs(3600 - i);
        sent.extend(pushes(
            &d.on_event(Event::Net(NetEvent::NewAddr(slaac.clone())), c.at(t)),
        ));
        if d.next_wake().is_some_and(|w| w <= c.at(t).mono) {
            sent.extend(pushes(&d.on_event(Event::Timer, c.at(t))));
        }
    }
    assert_eq!(d.next_wake(), None);
    assert_eq!(
        sent,
        vec![(k, ip("203.0.113.8"))],
        "sent once, at debounce after the change"
    );
}

/// Even real changes that never stop cannot hold a decision back for ever: it comes no later
/// than max(2 × debounce, debounce + 10 s) after the burst's first event.
#[test]
fn the_debounce_is_bounded_under_continuous_change() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let bound = debounce_bound(DEBOUNCE).as_secs_f64();
    assert_eq!(bound, 12.0);
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "198.51.100.1"))),
        c.at(5.0),
    );
    for i in 0..40 {
        // A flapping secondary, every half second.
        let ev = if i % 2 == 0 {
            NetEvent::DelAddr(addr(3, "198.51.100.1"))
        } else {
            NetEvent::NewAddr(addr(3, "198.51.100.1"))
        };
        let t = 5.5 + f64::from(i) * 0.5;
        if t >= 5.0 + bound {
            break;
        }
        d.on_event(Event::Net(ev), c.at(t));
    }
    assert_eq!(d.next_wake(), Some(c.at(5.0 + bound).mono));
}

/// Behind CGNAT, lifetime refreshes start no what's-my-IP round, and a storm of check-now
/// requests starts at most one a second, never two at once.
#[test]
fn detection_rounds_come_only_from_real_changes_and_are_spaced() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    let mut slaac = addr(3, "2001:db8::7");
    slaac.valid = Lifetime::Secs(3600);
    let a = d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0));
    assert_eq!(detects(&a).len(), 1);
    d.on_event(
        Event::Public {
            round: d.rounds,
            family: Family::V4,
            ip: Some(ip("203.0.113.9")),
        },
        c.at(0.5),
    );
    let mut rounds = 0;
    for i in 0..60 {
        let t = 1.0 + f64::from(i) * 0.5;
        slaac.valid = Lifetime::Secs(3600 - i);
        rounds += detects(&d.on_event(Event::Net(NetEvent::NewAddr(slaac.clone())), c.at(t))).len();
        if d.next_wake().is_some_and(|w| w <= c.at(t).mono) {
            rounds += detects(&d.on_event(Event::Timer, c.at(t))).len();
        }
    }
    // The first refresh is a new address (a candidate appears): one round, no more.
    assert!(rounds <= 1, "{rounds} rounds for lifetime refreshes");
    let mut storm = 0;
    let mut out = 0;
    for i in 0..130 {
        let t = 40.0 + f64::from(i) * 0.01;
        let a = d.on_event(Event::CheckNow, c.at(t));
        storm += detects(&a).len();
        out += detects(&a).len();
        assert!(out <= 1, "two rounds out at once");
        if i % 50 == 49 {
            d.on_event(
                Event::Public {
                    round: d.rounds,
                    family: Family::V4,
                    ip: Some(ip("203.0.113.9")),
                },
                c.at(t),
            );
            out = 0;
        }
    }
    assert!(storm <= 2, "{storm} rounds in 1.3 s of check-now");
}

/// A failed round whose back-off is shorter than the 1 s spacing asks again once the spacing
/// ends: the wake-up that came too early must not lose the re-check.
#[test]
fn a_failed_round_with_a_short_backoff_is_asked_again_after_the_spacing() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut config = nat_cfg(std::slice::from_ref(&k), DetectMode::Auto);
    config.backoff.initial = Duration::from_millis(200);
    let mut d = fresh(config, &c);
    assert_eq!(
        detects(&d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0))).len(),
        1
    );
    let none = Event::Public {
        round: d.rounds,
        family: Family::V4,
        ip: None,
    };
    assert!(d.on_event(none, c.at(0.1)).is_empty());
    let mut rounds = 0;
    for _ in 0..10 {
        let Some(wake) = d.next_wake() else { break };
        assert!(
            wake >= c.at(1.0).mono,
            "woken before the spacing allows a round"
        );
        rounds += detects(&d.on_event(Event::Timer, c.of(wake))).len();
        if rounds > 0 {
            break;
        }
    }
    assert_eq!(rounds, 1, "the re-check after the failed round was lost");
}

/// `dynhostd update` after a 502: the failure backs off (saved), and the pass ends with nothing
/// out and no push dropped.
#[test]
fn update_backs_off_after_a_failure_and_ends() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.set_view(NetView::from_snapshot(NetSnapshot {
        neighbours: Vec::new(),
        links: vec![link(3, "ppp0")],
        addrs: vec![addr(3, "203.0.113.7")],
        routes: vec![],
    }));
    let a = d.decide_now(c.at(0.0), false);
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    let a = d.on_event(
        outcome(&k, "203.0.113.7", Reply::ServerError(502)),
        c.at(1.0),
    );
    assert!(pushes(&a).is_empty(), "no second request in the same pass");
    assert!(!d.busy());
    assert!(d.state(c.at(1.0)).records[&k].retry_at.is_some());
}

/// A reply that comes back for a record a reload removed is still recorded: an abuse stop is
/// never lost, and re-adding the host keeps it stopped.
#[test]
fn an_abuse_reply_for_a_removed_record_is_kept() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(cfg(std::slice::from_ref(&k)), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    assert!(d.busy());
    d.reconfigure(cfg(&[]), &[], c.at(1.0));
    d.on_event(outcome(&k, "203.0.113.7", Reply::Abuse), c.at(2.0));
    assert!(d.state(c.at(2.0)).records[&k].stopped.is_some());
    let a = d.reconfigure(cfg(std::slice::from_ref(&k)), &[], c.at(3.0));
    assert!(pushes(&a).is_empty(), "still stopped");
    // Removed and added back while its request is out: the reply lands on the one record.
    let mut d = fresh(cfg(std::slice::from_ref(&k)), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    d.reconfigure(cfg(&[]), &[], c.at(1.0));
    assert!(pushes(&d.reconfigure(cfg(std::slice::from_ref(&k)), &[], c.at(2.0))).is_empty());
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(3.0));
    assert!(!d.busy());
    assert_eq!(d.record(&k).unwrap().published, Some(ip("203.0.113.7")));
}

/// A push the shell withdrew before sending (queued when the reload came) is sent again with the
/// new entry.
#[test]
fn a_push_cancelled_by_a_reload_is_sent_again() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(cfg(std::slice::from_ref(&k)), &c);
    assert_eq!(
        pushes(&d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))).len(),
        1
    );
    let mut edited = cfg(std::slice::from_ref(&k));
    edited.records[0].fingerprint = "f2".into();
    let a = d.reconfigure(edited.clone(), std::slice::from_ref(&k), c.at(1.0));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    // Not cancelled (already sent): it stays out, and nothing is sent twice.
    let a = d.reconfigure(edited, &[], c.at(2.0));
    assert!(pushes(&a).is_empty());
}

/// A zone that holds our address beside another record is right: never "corrected".
#[test]
fn a_zone_holding_our_address_among_others_holds() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = Decider::new(
        verify_cfg(std::slice::from_ref(&k)),
        published(&k, "203.0.113.7"),
        c.at(0.0),
        1,
    );
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let check = d.next_wake().unwrap();
    let a = d.on_event(Event::Timer, c.of(check));
    assert!(a.contains(&Action::Verify { key: k.clone() }));
    let shows = Ok(vec![ip("198.51.100.1"), ip("203.0.113.7")]);
    let a = d.on_event(
        Event::Verified {
            key: k.clone(),
            shows,
        },
        c.of(check),
    );
    assert!(pushes(&a).is_empty() && !a.contains(&Action::Save), "{a:?}");
}

/// Two uplinks and a LAN: `home` follows the [wan] (ppp0), `backup` follows lte0, and the AAAA of
/// `server` is the LAN prefix + a suffix.
fn sources_cfg() -> (DeciderConfig, [RecordKey; 3]) {
    let keys = [
        v4("home.example.com"),
        v4("backup.example.com"),
        v6("server.example.com"),
    ];
    let mut c = cfg(&keys);
    c.records[1].source = AddressSource::Interface("lte0".into());
    c.records[2].source = AddressSource::Prefix {
        interface: "lan0".into(),
        host: policy::HostPart::Suffix("::10".parse().unwrap()),
    };
    (c, keys)
}

fn two_wans(ppp: &str, lte: &str, lan: &str) -> NetSnapshot {
    let mut lan_addr = addr(7, lan);
    lan_addr.prefix_len = 64;
    NetSnapshot {
        neighbours: Vec::new(),
        links: vec![link(3, "ppp0"), link(5, "lte0"), link(7, "lan0")],
        addrs: vec![addr(3, ppp), addr(5, lte), lan_addr],
        routes: vec![],
    }
}

#[test]
fn each_record_follows_its_own_source_and_only_changed_ones_are_sent() {
    let c = Clock::new();
    let (config, [home, backup, server]) = sources_cfg();
    let mut d = fresh(config, &c);
    let a = d.on_event(
        Event::Net(NetEvent::Snapshot(two_wans(
            "203.0.113.1",
            "198.51.100.1",
            "2001:db8:1:2::1",
        ))),
        c.at(0.0),
    );
    let mut sent = pushes(&a);
    sent.sort();
    let mut want = vec![
        (home.clone(), ip("203.0.113.1")),
        (backup.clone(), ip("198.51.100.1")),
        (server.clone(), ip("2001:db8:1:2::10")),
    ];
    want.sort();
    assert_eq!(sent, want);
    for (k, i) in &want {
        d.on_event(outcome(k, &i.to_string(), Reply::Good(Some(*i))), c.at(0.1));
    }
    // The LTE address changes: the debounce restarts, and only backup is sent.
    let mut new = addr(5, "198.51.100.2");
    new.prefix_len = 32;
    assert!(
        d.on_event(
            Event::Net(NetEvent::DelAddr(addr(5, "198.51.100.1"))),
            c.at(1.0)
        )
        .is_empty()
    );
    assert!(
        d.on_event(Event::Net(NetEvent::NewAddr(new)), c.at(1.5))
            .is_empty()
    );
    assert!(d.next_wake().is_some());
    let a = d.on_event(Event::Timer, c.at(3.6));
    assert_eq!(pushes(&a), vec![(backup.clone(), ip("198.51.100.2"))]);
    // The LAN is renumbered: old prefix deprecated, new one added; only the AAAA moves.
    let mut old = addr(7, "2001:db8:1:2::1");
    old.preferred = Lifetime::Secs(0);
    d.on_event(Event::Net(NetEvent::NewAddr(old)), c.at(10.0));
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(7, "2001:db8:9:9::1"))),
        c.at(10.2),
    );
    let a = d.on_event(Event::Timer, c.at(12.3));
    assert_eq!(pushes(&a), vec![(server.clone(), ip("2001:db8:9:9::10"))]);
    assert_eq!(
        d.current_choice(&server),
        WanChoice::Public(ip("2001:db8:9:9::10"))
    );
    assert_eq!(
        d.current_choice(&home),
        WanChoice::Public(ip("203.0.113.1"))
    );
}

#[test]
fn a_change_on_an_interface_no_record_follows_is_no_change() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.1"), &c);
    d.on_event(
        Event::Net(NetEvent::Snapshot(two_wans(
            "203.0.113.1",
            "198.51.100.1",
            "2001:db8:1:2::1",
        ))),
        c.at(0.0),
    );
    let a = d.on_event(
        Event::Net(NetEvent::NewAddr(addr(5, "198.51.100.9"))),
        c.at(1.0),
    );
    assert!(a.is_empty());
    assert_eq!(d.next_wake(), None, "lte0 is followed by no record");
}

/// What a list of actions does, in an order-free form: the shell saves once per window anyway.
fn effects(actions: &[Action]) -> (Vec<String>, bool) {
    let mut v: Vec<String> = actions
        .iter()
        .filter(|a| **a != Action::Save)
        .map(|a| format!("{a:?}"))
        .collect();
    v.sort();
    (v, actions.contains(&Action::Save))
}

#[test]
fn a_batch_of_events_acts_as_the_same_events_one_by_one() {
    let c = Clock::new();
    let keys: Vec<RecordKey> = (0..6).map(|i| v4(&format!("h{i}.example.com"))).collect();
    let mut cfg = verify_cfg(&keys);
    cfg.min_interval = Duration::from_secs(60);
    let mut one = fresh(cfg.clone(), &c);
    let mut batch = fresh(cfg, &c);
    for d in [&mut one, &mut batch] {
        assert_eq!(
            verifies(&d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))).len(),
            6
        );
    }
    let verified = |i: usize, shows: Result<Vec<IpAddr>, String>| Event::Verified {
        key: keys[i].clone(),
        shows,
    };
    // The checks' answers: holds it, holds another, holds nothing, cannot be asked.
    let answers = vec![
        verified(0, Ok(vec![ip("203.0.113.7")])),
        verified(1, Ok(vec![ip("198.51.100.1")])),
        verified(2, Ok(vec![])),
        verified(3, Err("timed out".into())),
        verified(4, Ok(vec![ip("203.0.113.7")])),
        verified(5, Ok(vec![ip("198.51.100.9")])),
    ];
    // Then the replies, a timer with nothing due, and a kernel event (a new address, which
    // starts the debounce) amid them.
    let replies = vec![
        outcome(
            &keys[1],
            "203.0.113.7",
            Reply::Good(Some(ip("203.0.113.7"))),
        ),
        outcome(&keys[2], "203.0.113.7", Reply::ServerTrouble),
        Event::Timer,
        outcome(
            &keys[3],
            "203.0.113.7",
            Reply::NoChg(Some(ip("203.0.113.7"))),
        ),
        snapshot(3, &["203.0.113.8"]),
        outcome(&keys[5], "203.0.113.7", Reply::Abuse),
    ];
    for (events, at) in [(answers, c.at(0.3)), (replies, c.at(0.9))] {
        let mut each = Vec::new();
        for ev in events.clone() {
            each.extend(one.on_event(ev, at));
        }
        let all = batch.on_events(events, at);
        assert_eq!(effects(&all), effects(&each));
        assert_eq!(batch.state(at), one.state(at));
        assert_eq!(batch.next_wake(), one.next_wake());
    }
    // Both pushed the same four records after their checks, and saw the same replies.
    assert_eq!(
        batch.record(&keys[1]).unwrap().published,
        Some(ip("203.0.113.7"))
    );
    assert!(batch.record(&keys[5]).unwrap().stopped.is_some());
}

/// A reload (SIGHUP) in the middle of a flap re-reads the configuration but does not end the
/// debounce: only the address the flap ends on is sent, once, when the WAN has been quiet.
#[test]
fn a_reload_during_a_flap_keeps_the_debounce() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), published(&k, "203.0.113.7"), &c);
    assert!(pushes(&d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0))).is_empty());
    // Four moves within a second, the reload after the second one.
    let moves = [
        "203.0.113.7",
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ];
    let mut sent = Vec::new();
    for (i, pair) in moves.windows(2).enumerate() {
        let t = 10.0 + 0.25 * i as f64;
        let del = NetEvent::DelAddr(addr(3, pair[0]));
        sent.extend(pushes(&d.on_event(Event::Net(del), c.at(t))));
        let add = NetEvent::NewAddr(addr(3, pair[1]));
        sent.extend(pushes(&d.on_event(Event::Net(add), c.at(t + 0.01))));
        if i == 1 {
            let a = d.reconfigure(cfg(std::slice::from_ref(&k)), &[], c.at(t + 0.1));
            assert!(pushes(&a).is_empty(), "the reload decided early: {a:?}");
            assert_eq!(
                d.next_wake(),
                Some(c.at(t + 0.01).mono + DEBOUNCE),
                "the reload kept the quiet period"
            );
        }
    }
    assert!(sent.is_empty(), "sent during the flap: {sent:?}");
    // Quiet after the last move: one decision, with the address it ended on.
    let last = 10.0 + 0.25 * 3.0 + 0.01;
    assert!(pushes(&d.on_event(Event::Timer, c.at(last + 1.9))).is_empty());
    let a = d.on_event(Event::Timer, c.of(d.next_wake().unwrap()));
    assert_eq!(pushes(&a), vec![(k, ip("198.51.100.4"))]);
}

fn rounds_of(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Detect { round, .. } => Some(*round),
            _ => None,
        })
        .collect()
}

/// A family that leaves NAT while a what's-my-IP round is out, then comes back, starts a new
/// round; the old round's answer (about the WAN before) is ignored, the new one's counts.
#[test]
fn a_stale_detection_answer_does_not_land_on_a_newer_round() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = fresh(nat_cfg(std::slice::from_ref(&k), DetectMode::Auto), &c);
    let first = rounds_of(&d.on_event(snapshot(3, &["100.64.1.2"]), c.at(0.0)));
    assert_eq!(first.len(), 1);
    // A routable address while the round is out: published from the interface.
    d.on_event(
        Event::Net(NetEvent::NewAddr(addr(3, "203.0.113.7"))),
        c.at(1.0),
    );
    let a = d.on_event(Event::Timer, c.at(3.0));
    assert_eq!(pushes(&a), vec![(k.clone(), ip("203.0.113.7"))]);
    d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(3.1));
    // Gone again: behind NAT, a new round.
    d.on_event(
        Event::Net(NetEvent::DelAddr(addr(3, "203.0.113.7"))),
        c.at(5.0),
    );
    let second = rounds_of(&d.on_event(Event::Timer, c.at(7.0)));
    assert_eq!(second.len(), 1);
    assert_ne!(first, second, "each round has its own number");
    // The first round's answer comes late: ignored, the second round is still awaited.
    let stale = Event::Public {
        round: first[0],
        family: Family::V4,
        ip: Some(ip("203.0.113.66")),
    };
    let a = d.on_event(stale, c.at(8.0));
    assert!(a.is_empty(), "a stale answer was acted on: {a:?}");
    assert_eq!(d.next_wake(), None, "the second round is still out");
    let fresh_answer = Event::Public {
        round: second[0],
        family: Family::V4,
        ip: Some(ip("203.0.113.50")),
    };
    let a = d.on_event(fresh_answer, c.at(8.5));
    assert_eq!(pushes(&a), vec![(k, ip("203.0.113.50"))]);
}

fn hooks(actions: &[Action]) -> Vec<HookEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Hook(h) => Some(h.clone()),
            _ => None,
        })
        .collect()
}

fn history(d: &Decider, key: &RecordKey) -> Vec<(HistoryEvent, String)> {
    d.record(key)
        .unwrap()
        .history
        .iter()
        .map(|h| (h.event, h.text.clone()))
        .collect()
}

#[test]
fn history_keeps_changes_and_failures_and_names_the_recovery() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    let h = hooks(&d.on_event(outcome(&k, "203.0.113.7", Reply::Good(None)), c.at(1.0)));
    assert_eq!((h[0].event, h[0].recovered), (HookKind::Updated, false));
    assert_eq!(h[0].time, UnixTime(UNIX + 1));
    assert_eq!(h[0].reply, "good");
    // A nochg that changes nothing is not an event of the history.
    d.on_event(outcome(&k, "203.0.113.7", Reply::NoChg(None)), c.at(2.0));
    assert_eq!(
        history(&d, &k),
        vec![(HistoryEvent::Updated, "good".into())]
    );
    // A failure, then a success: the success is the recovery (a nochg one too).
    let h = hooks(&d.on_event(
        outcome(&k, "203.0.113.7", Reply::ServerError(500)),
        c.at(3.0),
    ));
    assert_eq!((h[0].event, h[0].recovered), (HookKind::Error, false));
    let h = hooks(&d.on_event(outcome(&k, "203.0.113.7", Reply::NoChg(None)), c.at(60.0)));
    assert_eq!((h[0].event, h[0].recovered), (HookKind::Unchanged, true));
    let h = hooks(&d.on_event(outcome(&k, "203.0.113.7", Reply::NoChg(None)), c.at(61.0)));
    assert!(!h[0].recovered, "only the first success after a failure");
    let events: Vec<_> = history(&d, &k).into_iter().map(|(e, _)| e).collect();
    use HistoryEvent::*;
    assert_eq!(events, vec![Updated, Error, Recovered]);

    // A stop, lifted by `retry`, then the fixed login works: one recovery, kept across a
    // restart like the rest of the history.
    let h = hooks(&d.on_event(outcome(&k, "203.0.113.7", Reply::Unauthorized), c.at(70.0)));
    assert_eq!(h[0].event, HookKind::Stopped);
    assert!(h[0].error.as_deref().unwrap().contains("401"));
    let state = d.state(c.at(71.0));
    let r = Clock::restarted(100);
    let mut d = decider(std::slice::from_ref(&k), state, &r);
    d.retry(&["home.example.com".to_string()], r.at(1.0))
        .unwrap();
    let h = hooks(&d.on_event(outcome(&k, "203.0.113.8", Reply::Good(None)), r.at(2.0)));
    assert_eq!((h[0].event, h[0].recovered), (HookKind::Updated, true));
    let events: Vec<_> = history(&d, &k).into_iter().map(|(e, _)| e).collect();
    assert_eq!(events, vec![Updated, Error, Recovered, Stopped, Recovered]);
}

#[test]
fn history_is_bounded_and_a_stepping_wall_clock_is_recorded_as_read() {
    let c = Clock::new();
    let k = v4("home.example.com");
    let mut d = decider(std::slice::from_ref(&k), State::default(), &c);
    d.on_event(snapshot(3, &["203.0.113.7"]), c.at(0.0));
    for i in 0..(HISTORY_MAX as u64 + 5) {
        // The wall clock steps back by a day halfway through (an NTP correction on a router
        // without RTC): the entries carry the time as read, and nothing else moves.
        let mut now = c.at(1.0 + i as f64);
        if i > 10 {
            now.wall = UnixTime(now.wall.0 - 86_400);
        }
        d.on_event(outcome(&k, "203.0.113.7", Reply::ServerError(503)), now);
    }
    let rec = d.record(&k).unwrap();
    assert_eq!(rec.history.len(), HISTORY_MAX);
    assert_eq!(rec.history.last().unwrap().at, UNIX + 25 - 86_400);
    assert_eq!(rec.history[0].at, UNIX + 6, "the oldest went first");
}
