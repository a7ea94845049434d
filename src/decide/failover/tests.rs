//! The failover rules with time passed in: the list's history alone, then the whole decider fed
//! kernel events (address gone, link down, default route gone, failback, flapping, all down),
//! with a wall clock that steps to show only the monotonic one counts.

// Test arithmetic on known-small values; the rule against it is for the core itself.
#![allow(clippy::arithmetic_side_effects, clippy::unchecked_time_subtraction)]

use super::*;
use crate::clock::{Now, UnixTime};
use crate::decide::{
    Action, Backoff, Decider, DeciderConfig, DetectMode, DetectPolicy, Event, RecordSpec,
};
use crate::provider::Reply;
use crate::record::{Family, RecordKey};
use crate::state::State;
use crate::wan::policy::{AddressPolicy, AddressSource, Uplinks};
use crate::wan::{
    AddrFlags, DefaultRoute, Lifetime, Link, NetEvent, NetSnapshot, Scope, WanAddress,
};
use std::net::IpAddr;

const FAILBACK: Duration = Duration::from_secs(60);
const DEBOUNCE: Duration = Duration::from_secs(2);

fn secs(t0: Instant, s: f64) -> Instant {
    t0 + Duration::from_secs_f64(s)
}

#[test]
fn fails_over_at_once_and_back_only_after_failback() {
    let t0 = Instant::now();
    let mut f = Failover::new(2);
    f.observe([true, true], t0);
    assert_eq!(f.decide(FAILBACK, t0), Switch::To(None, Some(0)));
    assert_eq!(
        f.deadline(FAILBACK),
        None,
        "the best one is followed: no timer"
    );
    f.observe([false, true], secs(t0, 10.0));
    assert_eq!(
        f.decide(FAILBACK, secs(t0, 12.0)),
        Switch::To(Some(0), Some(1))
    );
    f.observe([true, true], secs(t0, 20.0));
    assert_eq!(f.deadline(FAILBACK), Some(secs(t0, 80.0)));
    assert_eq!(f.decide(FAILBACK, secs(t0, 79.9)), Switch::Stay);
    assert_eq!(
        f.decide(FAILBACK, secs(t0, 80.0)),
        Switch::To(Some(1), Some(0))
    );
    assert_eq!(f.active(), (Some(0), Some(secs(t0, 80.0))));
    assert_eq!(f.deadline(FAILBACK), None);
}

#[test]
fn a_flapping_primary_starts_its_wait_again_each_time() {
    let t0 = Instant::now();
    let mut f = Failover::new(2);
    f.observe([false, true], t0);
    f.decide(FAILBACK, t0);
    for i in 0..30 {
        let up = i % 2 == 0;
        f.observe([up, true], secs(t0, f64::from(i)));
        assert_eq!(
            f.decide(FAILBACK, secs(t0, f64::from(i) + 0.5)),
            Switch::Stay
        );
    }
    // Up for good from 30 s: back at 90 s, not before.
    f.observe([true, true], secs(t0, 30.0));
    assert_eq!(f.deadline(FAILBACK), Some(secs(t0, 90.0)));
    assert_eq!(f.decide(FAILBACK, secs(t0, 89.0)), Switch::Stay);
    assert_eq!(
        f.decide(FAILBACK, secs(t0, 90.0)),
        Switch::To(Some(1), Some(0))
    );
}

#[test]
fn with_nothing_usable_the_first_to_come_back_wins() {
    let t0 = Instant::now();
    let mut f = Failover::new(3);
    f.observe([true, false, false], t0);
    f.decide(FAILBACK, t0);
    f.observe([false, false, false], secs(t0, 1.0));
    assert_eq!(f.decide(FAILBACK, secs(t0, 3.0)), Switch::To(Some(0), None));
    assert_eq!(f.deadline(FAILBACK), None, "nothing to wait for");
    f.observe([false, false, true], secs(t0, 5.0));
    assert_eq!(f.decide(FAILBACK, secs(t0, 7.0)), Switch::To(None, Some(2)));
    // The second comes back too: it outranks the third, so it waits like the first would.
    f.observe([false, true, true], secs(t0, 8.0));
    assert_eq!(f.decide(FAILBACK, secs(t0, 10.0)), Switch::Stay);
    assert_eq!(f.deadline(FAILBACK), Some(secs(t0, 68.0)));
    // The active one goes: the second is taken at once, its wait notwithstanding.
    f.observe([false, true, false], secs(t0, 11.0));
    assert_eq!(
        f.decide(FAILBACK, secs(t0, 13.0)),
        Switch::To(Some(2), Some(1))
    );
}

#[test]
fn a_failback_of_zero_follows_the_best_at_every_decision() {
    let t0 = Instant::now();
    let mut f = Failover::new(2);
    f.observe([false, true], t0);
    f.decide(Duration::ZERO, t0);
    f.observe([true, true], secs(t0, 1.0));
    assert_eq!(
        f.decide(Duration::ZERO, secs(t0, 1.0)),
        Switch::To(Some(1), Some(0))
    );
}

// --- The whole decider, fed kernel events -----------------------------------------------

const PRIMARY: u32 = 3;
const BACKUP: u32 = 4;
const P_IP: &str = "203.0.113.1";
const B_IP: &str = "198.51.100.1";

fn key() -> RecordKey {
    RecordKey::new("home.example.com", Family::V4)
}

fn uplinks() -> Uplinks {
    Uplinks {
        names: vec!["wan0".into(), "wan1".into()],
        failback: FAILBACK,
        requires_route: true,
    }
}

/// One record following the list: its own (`on_wan` false), or the `[wan]`'s.
fn cfg(on_wan: bool) -> DeciderConfig {
    let list = uplinks();
    DeciderConfig {
        wan_interface: None,
        wan_uplinks: on_wan.then(|| list.clone()),
        debounce: DEBOUNCE,
        policy: AddressPolicy {
            accept: vec![
                "203.0.113.0/24".parse().unwrap(),
                "198.51.100.0/24".parse().unwrap(),
            ],
            ignore: vec![],
        },
        records: vec![RecordSpec {
            key: key(),
            fingerprint: "f1".into(),
            source: if on_wan {
                AddressSource::Wan
            } else {
                AddressSource::Uplinks(list)
            },
        }],
        backoff: Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        },
        detect: DetectPolicy {
            mode: DetectMode::Never,
            interval: Duration::from_secs(300),
            families: vec![],
        },
        min_interval: Duration::ZERO,
        refresh: Duration::ZERO,
        verify: None,
    }
}

fn link(index: u32, name: &str, up: bool) -> Link {
    Link {
        index,
        name: name.into(),
        up,
        point_to_point: false,
    }
}

fn addr(index: u32, ip: &str) -> WanAddress {
    WanAddress {
        index,
        addr: ip.parse().unwrap(),
        prefix_len: 24,
        peer: None,
        scope: Scope::Universe,
        flags: AddrFlags::default(),
        preferred: Lifetime::Forever,
        valid: Lifetime::Forever,
    }
}

fn route(index: u32, metric: u32) -> DefaultRoute {
    DefaultRoute {
        family: Family::V4,
        index,
        metric,
    }
}

fn both_up() -> Event {
    Event::Net(NetEvent::Snapshot(NetSnapshot {
        links: vec![link(PRIMARY, "wan0", true), link(BACKUP, "wan1", true)],
        addrs: vec![addr(PRIMARY, P_IP), addr(BACKUP, B_IP)],
        routes: vec![route(PRIMARY, 10), route(BACKUP, 20)],
        neighbours: vec![],
    }))
}

/// A wall clock that jumps back an hour at `step` seconds (NTP after a cold boot, say); the
/// monotonic one runs on.
struct Clock {
    t0: Instant,
    step: f64,
}

impl Clock {
    fn at(&self, s: f64) -> Now {
        let wall = 1_700_000_000 + s as u64;
        let wall = if s >= self.step { wall - 3600 } else { wall };
        Now {
            mono: secs(self.t0, s),
            wall: UnixTime(wall),
        }
    }
}

fn pushes(actions: &[Action]) -> Vec<IpAddr> {
    let push = |a: &Action| match a {
        Action::Push(p) => Some(p.ip),
        _ => None,
    };
    actions.iter().filter_map(push).collect()
}

/// Runs the decider like the shell does: each event, then every wake-up due up to `until`,
/// each push answered at once; returns the addresses sent.
struct Run {
    d: Decider,
    c: Clock,
    now: f64,
    sent: Vec<IpAddr>,
    hooks: Vec<Option<String>>,
}

impl Run {
    fn new(on_wan: bool, step: f64) -> Run {
        let c = Clock {
            t0: Instant::now(),
            step,
        };
        let d = Decider::new(cfg(on_wan), State::default(), c.at(0.0), 7);
        let mut r = Run {
            d,
            c,
            now: 0.0,
            sent: vec![],
            hooks: vec![],
        };
        r.feed(both_up());
        r
    }

    fn act(&mut self, actions: Vec<Action>) {
        for ip in pushes(&actions) {
            self.sent.push(ip);
            let reply = Reply::Good(Some(ip));
            let out = Event::Outcome {
                key: key(),
                ip,
                reply,
            };
            let more = self.d.on_event(out, self.c.at(self.now));
            for a in &more {
                if let Action::Hook(h) = a {
                    self.hooks.push(h.interface.clone());
                }
            }
            self.act(more);
        }
    }

    fn feed(&mut self, ev: Event) {
        let a = self.d.on_event(ev, self.c.at(self.now));
        self.act(a);
    }

    fn net(&mut self, ev: NetEvent) {
        self.feed(Event::Net(ev));
    }

    /// Lets time pass to `until`, waking when the decider asks.
    fn until(&mut self, until: f64) {
        while let Some(t) = self.d.next_wake() {
            let at = t.duration_since(self.c.t0).as_secs_f64();
            if at > until {
                break;
            }
            self.now = at;
            self.feed(Event::Timer);
        }
        self.now = until;
    }

    fn active(&self) -> Option<String> {
        self.d.interface_of(&key())
    }
}

fn ips(v: &[&str]) -> Vec<IpAddr> {
    v.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn the_primary_losing_its_address_link_or_route_fails_over_within_the_debounce() {
    let losses: [(&str, NetEvent); 3] = [
        ("address", NetEvent::DelAddr(addr(PRIMARY, P_IP))),
        ("link", NetEvent::NewLink(link(PRIMARY, "wan0", false))),
        ("route", NetEvent::DelRoute(route(PRIMARY, 10))),
    ];
    for on_wan in [false, true] {
        for (what, loss) in losses.clone() {
            let mut r = Run::new(on_wan, 1e9);
            assert_eq!(r.sent, ips(&[P_IP]), "{what}");
            r.until(10.0);
            r.net(loss);
            r.until(10.0 + DEBOUNCE.as_secs_f64() - 0.01);
            assert_eq!(r.sent, ips(&[P_IP]), "{what}: not before the debounce");
            r.until(10.0 + DEBOUNCE.as_secs_f64());
            assert_eq!(r.sent, ips(&[P_IP, B_IP]), "{what}: failed over");
            assert_eq!(r.active().as_deref(), Some("wan1"), "{what}");
            assert_eq!(
                r.hooks,
                [Some("wan0".into()), Some("wan1".into())],
                "{what}"
            );
            assert_eq!(r.d.next_wake(), None, "{what}: nothing pending");
        }
    }
}

#[test]
fn a_re_metriced_default_route_is_no_loss() {
    let mut r = Run::new(false, 1e9);
    r.net(NetEvent::NewRoute(route(PRIMARY, 9999)));
    r.net(NetEvent::DelRoute(route(PRIMARY, 10)));
    r.until(30.0);
    assert_eq!(r.sent, ips(&[P_IP]));
}

#[test]
fn the_primary_back_is_followed_after_failback_not_before_even_when_the_wall_clock_steps() {
    for on_wan in [false, true] {
        // The wall clock jumps back an hour in the middle of the wait.
        let mut r = Run::new(on_wan, 40.0);
        r.net(NetEvent::DelRoute(route(PRIMARY, 10)));
        r.until(5.0);
        assert_eq!(r.sent, ips(&[P_IP, B_IP]));
        r.until(10.0);
        r.net(NetEvent::NewRoute(route(PRIMARY, 10)));
        // The change settles at 12 s; the wait ends 60 s after the primary came back.
        r.until(69.9);
        assert_eq!(r.sent, ips(&[P_IP, B_IP]), "not before failback");
        let status = r.d.live_status(r.c.at(r.now));
        let rec = &status.records[0];
        assert_eq!(rec.interfaces, ["wan0", "wan1"]);
        assert_eq!(rec.interface.as_deref(), Some("wan1"));
        assert_eq!(
            rec.interface_since_ms_ago,
            Some(67_900),
            "since the failover at 2 s"
        );
        r.until(70.0);
        assert_eq!(r.sent, ips(&[P_IP, B_IP, P_IP]), "back after failback");
        assert_eq!(r.active().as_deref(), Some("wan0"));
        assert_eq!(r.d.next_wake(), None);
    }
}

#[test]
fn a_primary_flapping_every_second_does_not_move_the_record() {
    let mut r = Run::new(false, 15.0);
    r.net(NetEvent::DelRoute(route(PRIMARY, 10)));
    r.until(5.0);
    assert_eq!(r.sent, ips(&[P_IP, B_IP]));
    for i in 0..30 {
        r.until(5.0 + f64::from(i));
        if i % 2 == 0 {
            r.net(NetEvent::NewRoute(route(PRIMARY, 10)));
        } else {
            r.net(NetEvent::DelRoute(route(PRIMARY, 10)));
        }
    }
    // The last flap took it down at 34 s; up for good from 35 s: back at 95 s.
    r.until(35.0);
    r.net(NetEvent::NewRoute(route(PRIMARY, 10)));
    r.until(94.9);
    assert_eq!(r.sent, ips(&[P_IP, B_IP]), "no flap of the record");
    r.until(100.0);
    assert_eq!(r.sent, ips(&[P_IP, B_IP, P_IP]));
}

#[test]
fn with_both_down_nothing_is_published_and_the_first_back_wins() {
    let mut r = Run::new(false, 1e9);
    r.net(NetEvent::DelRoute(route(PRIMARY, 10)));
    r.net(NetEvent::DelRoute(route(BACKUP, 20)));
    r.until(10.0);
    assert_eq!(r.sent, ips(&[P_IP]));
    assert_eq!(r.active(), None);
    assert_eq!(r.d.next_wake(), None, "no timer while nothing is usable");
    r.net(NetEvent::NewRoute(route(BACKUP, 20)));
    r.until(13.0);
    assert_eq!(r.sent, ips(&[P_IP, B_IP]), "the backup came back first");
    r.net(NetEvent::NewRoute(route(PRIMARY, 10)));
    r.until(20.0);
    assert_eq!(r.sent, ips(&[P_IP, B_IP]), "the primary waits its failback");
    r.until(80.0);
    assert_eq!(r.sent, ips(&[P_IP, B_IP, P_IP]));
}

#[test]
fn without_requires_route_a_missing_route_does_not_count() {
    let mut c = cfg(false);
    let list = Uplinks {
        requires_route: false,
        ..uplinks()
    };
    c.records[0].source = AddressSource::Uplinks(list);
    let clock = Clock {
        t0: Instant::now(),
        step: 1e9,
    };
    let mut d = Decider::new(c, State::default(), clock.at(0.0), 7);
    let a = d.on_event(both_up(), clock.at(0.0));
    assert_eq!(pushes(&a), ips(&[P_IP]));
    let ev = Event::Net(NetEvent::DelRoute(route(PRIMARY, 10)));
    assert!(d.on_event(ev, clock.at(1.0)).is_empty());
    assert!(pushes(&d.on_event(Event::Timer, clock.at(10.0))).is_empty());
}

/// Behind NAT on the backup: once the `[wan]` fails over to it, the public address is asked
/// over it (bound to its own address), and the answer is published.
#[test]
fn behind_nat_on_the_backup_detection_is_bound_to_it() {
    let mut c = cfg(true);
    c.detect = DetectPolicy {
        mode: DetectMode::Auto,
        interval: Duration::from_secs(300),
        families: vec![Family::V4],
    };
    let clock = Clock {
        t0: Instant::now(),
        step: 1e9,
    };
    let mut d = Decider::new(c, State::default(), clock.at(0.0), 7);
    let cgnat = "100.64.0.2";
    let snap = NetSnapshot {
        links: vec![link(PRIMARY, "wan0", true), link(BACKUP, "wan1", true)],
        addrs: vec![addr(PRIMARY, P_IP), addr(BACKUP, cgnat)],
        routes: vec![route(PRIMARY, 10), route(BACKUP, 20)],
        neighbours: vec![],
    };
    let a = d.on_event(Event::Net(NetEvent::Snapshot(snap)), clock.at(0.0));
    assert_eq!(
        pushes(&a),
        ips(&[P_IP]),
        "the primary's own address, no detection"
    );
    assert!(!a.iter().any(|a| matches!(a, Action::Detect { .. })));
    let ip = P_IP.parse().unwrap();
    let done = Event::Outcome {
        key: key(),
        ip,
        reply: Reply::Good(Some(ip)),
    };
    d.on_event(done, clock.at(0.5));
    let ev = Event::Net(NetEvent::DelRoute(route(PRIMARY, 10)));
    assert!(d.on_event(ev, clock.at(1.0)).is_empty());
    let a = d.on_event(Event::Timer, clock.at(3.0));
    let asked: Vec<_> = a
        .iter()
        .filter_map(|a| match a {
            Action::Detect { bind, round, .. } => Some((*bind, *round)),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{a:?}");
    assert_eq!(
        asked[0].0,
        Some(cgnat.parse().unwrap()),
        "bound to the backup"
    );
    let answer = Event::Public {
        family: Family::V4,
        ip: Some(B_IP.parse().unwrap()),
        round: asked[0].1,
    };
    let a = d.on_event(answer, clock.at(3.5));
    assert_eq!(pushes(&a), ips(&[B_IP]));
    assert_eq!(d.interface_of(&key()).as_deref(), Some("wan1"));
}
