//! The decider's side of the control socket: what a person (or pppd's hook) asks the running
//! agent. Lift the stops of named hosts (`dynhostd retry`), take addresses a client hands over
//! (`dynhostd update --ip` while an agent runs) and decide now, and a live snapshot of every
//! record for `dynhostd status`: its phase, the request in flight, the next wake-up and why.

use super::record::Phase as RecordPhase;
use super::status::{LiveRecord, LiveStatus, Phase, StopInfo, Wake, WakeReason};
use super::{Action, Decider, Now};
use crate::record::{Family, RecordKey};
use crate::wan::policy::{self, AddressSource};
use std::net::IpAddr;
use std::time::Instant;

/// `retry` named hostnames no enabled `[[host]]` keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no enabled [[host]] has the hostname {}", .0.join(", "))]
pub struct UnknownHosts(pub Vec<String>);

/// What `retry` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// Records whose stop (or back-off) was lifted.
    pub lifted: Vec<RecordKey>,
    pub actions: Vec<Action>,
}

/// `update --ip` handed the agent an address its WAN does not show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the WAN shows {}, not {given}: the running agent publishes what the WAN holds", wan.map_or_else(|| "no address that counts".to_string(), |a| a.to_string()))]
pub struct NotOnWan {
    pub given: IpAddr,
    pub wan: Option<IpAddr>,
}

impl Decider {
    /// `dynhostd retry [HOSTNAME...]`: lifts the stop and any back-off of the named hosts' records
    /// (every record's with no names) and decides at once; `min_interval` still holds. Nothing
    /// changes when a name is unknown.
    pub fn retry(&mut self, hostnames: &[String], now: Now) -> Result<Retried, UnknownHosts> {
        let kept = |h: &&String| self.records.keys().any(|k| k.hostname == **h);
        let unknown: Vec<String> = hostnames.iter().filter(|h| !kept(h)).cloned().collect();
        if !unknown.is_empty() {
            return Err(UnknownHosts(unknown));
        }
        let named = |k: &RecordKey| hostnames.is_empty() || hostnames.contains(&k.hostname);
        let lifted: Vec<RecordKey> = self
            .records
            .iter_mut()
            .filter_map(|(k, r)| (named(k) && r.lift()).then(|| k.clone()))
            .collect();
        let save = (!lifted.is_empty()).then_some(Action::Save);
        let actions = save.into_iter().chain(self.decide(false, now)).collect();
        Ok(Retried { lifted, actions })
    }

    /// `dynhostd update --ip ADDR...` handed to the running agent (pppd's ip-up): the addresses
    /// must be what the WAN shows (the agent follows the kernel, it takes no override); then
    /// everything is decided now, back-off and `min_interval` still applying. An address the
    /// policy does not count (private, CGNAT…) is no mismatch: there is nothing to send from it.
    pub fn update_from(&mut self, ips: &[IpAddr], now: Now) -> Result<Vec<Action>, NotOnWan> {
        for &given in ips {
            let family = Family::of(&given);
            let wan = self.source_choice(family, &AddressSource::Wan).public();
            let counts = policy::judge_ip(given, &self.cfg.policy).is_ok();
            if counts && wan != Some(given) && self.records.keys().any(|k| k.family == family) {
                return Err(NotOnWan { given, wan });
            }
        }
        self.burst = None;
        Ok(self.decide(false, now))
    }

    /// The live picture of every kept record, and the agent's next wake-up with its reason.
    pub fn live_status(&self, now: Now) -> LiveStatus {
        let wake = |(at, reason): (Instant, WakeReason)| {
            let in_ms = at.saturating_duration_since(now.mono).as_millis();
            let in_ms = u64::try_from(in_ms).unwrap_or(u64::MAX);
            Wake { reason, in_ms }
        };
        let debounce = self.burst.map(|(t, _)| (t, WakeReason::Debounce));
        let detect = |f: &Family| Some((self.nat.get(f)?.deadline()?, WakeReason::Detect));
        let detects = self.nat.keys().map(detect);
        let mut soonest = detects.chain([debounce]).flatten().min();
        let mut records = Vec::new();
        for (key, rec) in &self.records {
            let (phase, stopped) = match &rec.phase {
                RecordPhase::Idle => (Phase::Idle, None),
                RecordPhase::Held => (Phase::Held, None),
                RecordPhase::Verifying => (Phase::Verifying, None),
                RecordPhase::Pushing(_) => (Phase::Pushing, None),
                RecordPhase::BackingOff { .. } => (Phase::BackingOff, None),
                RecordPhase::Stopped(s) => {
                    let (reason, fix) = (s.reason.clone(), s.fix.clone());
                    (Phase::Stopped, Some(StopInfo { reason, fix }))
                }
            };
            let source = (key.family, rec.spec.source.clone());
            let failback = self.failbacks().find(|(_, k)| **k == source);
            let failback = failback.map(|(t, _)| (t, WakeReason::Failback));
            let wakes = [rec.wake(&self.cfg), debounce, detect(&key.family), failback];
            // Nothing but an outcome or a person wakes a record that is out or stopped.
            let next = match phase {
                Phase::Pushing | Phase::Stopped => None,
                _ => wakes.into_iter().flatten().min(),
            };
            soonest = soonest.into_iter().chain(next).min();
            let list = self.cfg.list_of(&source.1);
            let f = self.failovers.iter().find(|(k, _)| *k == source);
            let (active, since) = f.map_or((None, None), |(_, f)| f.active());
            let ago = |t: Instant| now.mono.saturating_duration_since(t).as_millis();
            records.push(LiveRecord {
                hostname: key.hostname.clone(),
                record: key.family.record_type().to_string(),
                phase,
                published: rec.facts.published,
                wan: self.current_choice(key).public(),
                in_flight: rec.in_flight().map(|f| f.ip),
                failures: rec.facts.failures,
                last_reply: rec.facts.last_reply.clone(),
                next: next.map(wake),
                stopped,
                interfaces: list.map(|l| l.names.clone()).unwrap_or_default(),
                interface: list.zip(active).and_then(|(l, i)| l.names.get(i).cloned()),
                interface_since_ms_ago: since.map(|t| u64::try_from(ago(t)).unwrap_or(u64::MAX)),
            });
        }
        LiveStatus {
            records,
            next_wake: soonest.map(wake),
        }
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::decide::{DeciderConfig, Event, RecordSpec};
    use crate::provider::Reply;
    use crate::state::State;
    use crate::wan::policy::AddressPolicy;
    use crate::wan::{
        AddrFlags, DefaultRoute, Lifetime, Link, NetEvent, NetSnapshot, Scope, WanAddress,
    };
    use std::time::Duration;
    use std::time::Instant;

    fn home() -> RecordKey {
        RecordKey::new("home.example.com", Family::V4)
    }

    /// `secs` after `t0` on both clocks.
    fn at(t0: Instant, secs: u64) -> Now {
        Now {
            mono: t0 + Duration::from_secs(secs),
            wall: crate::clock::UnixTime(1_000_000 + secs),
        }
    }

    fn decider(min_interval: Duration, now: Now) -> Decider {
        let cfg = DeciderConfig {
            wan_interface: Some("ppp0".into()),
            wan_uplinks: None,
            debounce: Duration::from_secs(2),
            policy: AddressPolicy {
                accept: vec!["203.0.113.0/24".parse().unwrap()],
                ignore: vec![],
            },
            records: vec![RecordSpec {
                key: home(),
                fingerprint: "f1".into(),
                source: Default::default(),
            }],
            backoff: crate::decide::tests::default_backoff(),
            detect: crate::decide::tests::detect_policy(),
            min_interval,
            refresh: Duration::ZERO,
            verify: None,
        };
        Decider::new(cfg, State::default(), now, 7)
    }

    fn wan(ip: &str) -> WanAddress {
        WanAddress {
            index: 2,
            addr: ip.parse().unwrap(),
            prefix_len: 32,
            peer: None,
            scope: Scope::Universe,
            flags: AddrFlags::default(),
            preferred: Lifetime::Forever,
            valid: Lifetime::Forever,
        }
    }

    fn snapshot(ip: &str) -> Event {
        Event::Net(NetEvent::Snapshot(NetSnapshot {
            neighbours: Vec::new(),
            links: vec![Link {
                index: 2,
                name: "ppp0".into(),
                up: true,
                point_to_point: true,
            }],
            addrs: vec![wan(ip)],
            routes: vec![DefaultRoute {
                family: Family::V4,
                index: 2,
                metric: 0,
            }],
        }))
    }

    fn pushes(actions: &[Action]) -> Vec<IpAddr> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Push(p) => Some(p.ip),
                _ => None,
            })
            .collect()
    }

    fn outcome(ip: &str, reply: Reply) -> Event {
        Event::Outcome {
            key: home(),
            ip: ip.parse().unwrap(),
            reply,
        }
    }

    #[test]
    fn retry_lifts_a_stop_and_sends_now_and_an_unknown_name_changes_nothing() {
        let t0 = Instant::now();
        let n0 = at(t0, 0);
        let mut d = decider(Duration::ZERO, n0);
        assert_eq!(pushes(&d.on_event(snapshot("203.0.113.5"), n0)).len(), 1);
        d.on_event(outcome("203.0.113.5", Reply::Unauthorized), n0);
        let live = d.live_status(n0);
        assert_eq!(live.records[0].phase, Phase::Stopped);
        assert_eq!(live.records[0].next, None, "nothing wakes a stopped record");

        let err = d.retry(&["nowhere.example.com".into()], n0).unwrap_err();
        assert_eq!(err.0, ["nowhere.example.com"]);
        assert_eq!(d.live_status(n0).records[0].phase, Phase::Stopped);

        let done = d.retry(&["home.example.com".into()], n0).unwrap();
        assert_eq!(done.lifted, [home()]);
        assert_eq!(pushes(&done.actions), [ip("203.0.113.5")]);
        assert!(done.actions.contains(&Action::Save));
        assert_eq!(d.live_status(n0).records[0].phase, Phase::Pushing);
        // Asked again while the request is out: nothing is sent twice.
        let again = d.retry(&[], n0).unwrap();
        assert!(pushes(&again.actions).is_empty());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_held_change_shows_its_hold_and_end() {
        let t0 = Instant::now();
        let n0 = at(t0, 0);
        let min = Duration::from_secs(30);
        let mut d = decider(min, n0);
        d.on_event(snapshot("203.0.113.5"), n0);
        d.on_event(
            outcome("203.0.113.5", Reply::Good(Some(ip("203.0.113.5")))),
            n0,
        );
        let t1 = at(t0, 10);
        d.on_event(snapshot("203.0.113.6"), t1);
        // Debounce first…
        assert_eq!(
            d.live_status(t1).next_wake.unwrap().reason,
            WakeReason::Debounce
        );
        let t2 = at(t0, 12);
        assert!(pushes(&d.on_event(Event::Timer, t2)).is_empty());
        // …then the hold, ending 30 s after the success.
        let live = d.live_status(t2);
        let rec = &live.records[0];
        assert_eq!(rec.phase, Phase::Held);
        assert_eq!(rec.wan, Some(ip("203.0.113.6")));
        let next = rec.next.unwrap();
        assert_eq!(next.reason, WakeReason::MinInterval);
        assert_eq!(next.in_ms, 18_000);
        assert_eq!(live.next_wake, Some(next));
        // update --ip of the held address: still held, nothing sent.
        assert!(pushes(&d.update_from(&[ip("203.0.113.6")], t2).unwrap()).is_empty());
        let t3 = at(t0, 30);
        assert_eq!(pushes(&d.on_event(Event::Timer, t3)), [ip("203.0.113.6")]);
    }

    #[test]
    fn update_from_cuts_the_debounce_and_refuses_an_address_the_wan_lacks() {
        let t0 = Instant::now();
        let n0 = at(t0, 0);
        let mut d = decider(Duration::ZERO, n0);
        d.on_event(snapshot("203.0.113.5"), n0);
        d.on_event(
            outcome("203.0.113.5", Reply::Good(Some(ip("203.0.113.5")))),
            n0,
        );
        d.on_event(snapshot("203.0.113.7"), n0);
        let err = d.update_from(&[ip("203.0.113.8")], n0).unwrap_err();
        assert_eq!(err.wan, Some(ip("203.0.113.7")));
        assert!(err.to_string().contains("203.0.113.8"), "{err}");
        // A private address is no mismatch: nothing to send from it, the WAN's is decided.
        let sent = d.update_from(&[ip("192.168.1.2")], n0).unwrap();
        assert_eq!(pushes(&sent), [ip("203.0.113.7")]);
        // The same address again while it is out: not sent twice.
        assert!(pushes(&d.update_from(&[ip("203.0.113.7")], n0).unwrap()).is_empty());
        assert_eq!(
            d.live_status(n0).records[0].in_flight,
            Some(ip("203.0.113.7"))
        );
    }

    #[test]
    fn a_wait_the_server_asked_for_is_told_from_back_off() {
        let t0 = Instant::now();
        let n0 = at(t0, 0);
        let mut d = decider(Duration::ZERO, n0);
        d.on_event(snapshot("203.0.113.5"), n0);
        d.on_event(
            outcome(
                "203.0.113.5",
                Reply::RateLimited(Some(Duration::from_secs(3600))),
            ),
            n0,
        );
        let rec = &d.live_status(n0).records[0];
        assert_eq!(rec.phase, Phase::BackingOff);
        let next = rec.next.unwrap();
        assert_eq!(next.reason, WakeReason::RetryAfter);
        assert_eq!(next.in_ms, 3_600_000);
        // retry lifts a back-off too.
        let done = d.retry(&[], n0).unwrap();
        assert_eq!(done.lifted, [home()]);
        assert_eq!(pushes(&done.actions), [ip("203.0.113.5")]);
    }
}
