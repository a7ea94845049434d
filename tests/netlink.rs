//! The netlink watcher against the real kernel: each test builds interfaces, addresses and
//! routes with `ip` inside its own user+network namespace, runs `watch()` on a current_thread
//! runtime (as the daemon does), folds the events into a `NetView` and checks the view.
//! Waits are bounded by deadlines; nothing asserts on how fast the kernel is.
//!
//! Only documentation (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) and
//! private/CGNAT ranges are used; nothing leaves the namespace anyway.

#[path = "support/netns.rs"]
mod netns;

use dynhostd::record::Family;
use dynhostd::wan::netlink::{WatchOptions, snapshot, watch};
use dynhostd::wan::{DefaultRoute, Lifetime, Link, NetEvent, NetView, Scope, WanAddress};
use netns::{ifindex, in_netns, ip_batch, sh, veth};
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Generous: IPv6 DAD alone takes a second or two, and CI machines are slow.
const TIMEOUT: Duration = Duration::from_secs(20);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A running `watch()` and the view folded from its events.
struct Watcher {
    rx: mpsc::Receiver<NetEvent>,
    view: NetView,
    /// Every event seen, in order, for assertions about what was sent (not just the result).
    history: Vec<NetEvent>,
    snapshots: usize,
    task: tokio::task::JoinHandle<Result<(), dynhostd::wan::netlink::NetlinkError>>,
}

impl Watcher {
    /// Starts the watcher and waits for its first event, which must be the Snapshot.
    async fn start(opts: WatchOptions) -> Watcher {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(watch(opts, tx));
        let mut w = Watcher {
            rx,
            view: NetView::default(),
            history: Vec::new(),
            snapshots: 0,
            task,
        };
        let first = w.next().await;
        assert!(
            matches!(first, NetEvent::Snapshot(_)),
            "first event must be a Snapshot, got {first:?}"
        );
        w.apply(first);
        w
    }

    async fn next(&mut self) -> NetEvent {
        match tokio::time::timeout(TIMEOUT, self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("watcher stopped: {:?}", (&mut self.task).await),
            Err(_) => panic!("no event within {TIMEOUT:?}; view: {:#?}", self.view),
        }
    }

    fn apply(&mut self, ev: NetEvent) {
        if matches!(ev, NetEvent::Snapshot(_)) {
            self.snapshots += 1;
        }
        self.history.push(ev.clone());
        self.view.apply(ev);
    }

    /// Folds events in until `cond` holds on the view (checked after every event, so
    /// short-lived states such as "tentative" are seen too).
    async fn until(&mut self, what: &str, cond: impl Fn(&NetView) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !cond(&self.view) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) => panic!("watcher stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; view: {:#?}", self.view),
            }
        }
    }

    /// Folds events in until at least `n` Snapshots have been seen in all.
    async fn until_snapshots(&mut self, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.snapshots < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) => panic!("watcher stopped while waiting for snapshot {n}"),
                Err(_) => panic!("only {} snapshots, wanted {n}", self.snapshots),
            }
        }
    }

    /// Folds events in until the view equals a fresh `snapshot()`: the watcher has told us
    /// everything the kernel knows.
    async fn settles(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let fresh = comparable(&NetView::from_snapshot(snapshot(false).await.unwrap()));
            let ours = comparable(&self.view);
            if ours == fresh {
                return;
            }
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) => panic!("watcher stopped before settling"),
                Err(_) => {
                    assert_eq!(ours, fresh, "the watcher's view never matched the kernel's");
                    unreachable!()
                }
            }
        }
    }

    fn addr(&self, a: &str) -> Option<&WanAddress> {
        self.view.addrs().find(|x| x.addr == ip(a))
    }
}

/// A view in a form that compares equal across two reads of the same kernel state: finite
/// lifetimes tick down between reads, and route order depends on event order.
fn comparable(view: &NetView) -> (Vec<Link>, Vec<WanAddress>, Vec<DefaultRoute>) {
    let tick = |l: Lifetime| match l {
        Lifetime::Forever => Lifetime::Forever,
        Lifetime::Secs(_) => Lifetime::Secs(0),
    };
    let links = view.links().cloned().collect();
    let addrs = view
        .addrs()
        .map(|a| WanAddress {
            preferred: tick(a.preferred),
            valid: tick(a.valid),
            ..a.clone()
        })
        .collect();
    let mut routes = view.default_routes().to_vec();
    routes.sort_by_key(|r| (r.family, r.index, r.metric));
    (links, addrs, routes)
}

fn route(family: Family, index: u32, metric: u32) -> DefaultRoute {
    DefaultRoute {
        family,
        index,
        metric,
    }
}

#[test]
fn initial_snapshot_holds_what_was_there_before() {
    in_netns("initial_snapshot_holds_what_was_there_before", || {
        veth("wan0", "wan0p");
        sh("ip addr add 192.0.2.2/24 dev wan0");
        sh("ip addr add 2001:db8:1::2/64 dev wan0 nodad");
        sh("ip route add default via 192.0.2.1 metric 50");
        sh("ip -6 route add default via 2001:db8:1::1 dev wan0");
        let wan0 = ifindex("wan0");
        rt().block_on(async {
            let w = Watcher::start(WatchOptions::default()).await;
            let link = w.view.link_by_name("wan0").expect("wan0 in snapshot");
            assert_eq!(link.index, wan0);
            assert!(link.up && !link.point_to_point);
            assert!(w.view.link_by_name("wan0p").is_some());
            assert!(w.view.link_by_name("lo").unwrap().up);

            let v4 = w.addr("192.0.2.2").expect("IPv4 address in snapshot");
            assert_eq!((v4.index, v4.prefix_len, v4.peer), (wan0, 24, None));
            assert_eq!(v4.scope, Scope::Universe);
            assert!(v4.flags.permanent && !v4.flags.secondary);
            assert_eq!(v4.valid, Lifetime::Forever);
            let v6 = w.addr("2001:db8:1::2").expect("IPv6 address in snapshot");
            assert_eq!((v6.index, v6.prefix_len), (wan0, 64));
            assert!(!v6.flags.tentative && !v6.flags.temporary);
            assert_eq!(w.addr("127.0.0.1").unwrap().scope, Scope::Host);

            let routes = w.view.default_routes();
            assert!(routes.contains(&route(Family::V4, wan0, 50)), "{routes:?}");
            // 1024: the kernel's default metric for IPv6 routes.
            assert!(
                routes.contains(&route(Family::V6, wan0, 1024)),
                "{routes:?}"
            );
            assert_eq!(routes.len(), 2, "only default routes: {routes:?}");
            assert_eq!(w.view.wan_link(None).unwrap().name, "wan0");
        });
    });
}

#[test]
fn veth_address_changes_become_events() {
    in_netns("veth_address_changes_become_events", || {
        veth("wan0", "wan0p");
        let wan0 = ifindex("wan0");
        rt().block_on(async {
            let mut w = Watcher::start(WatchOptions::default()).await;
            // Only the kernel's own IPv6 link-local address so far.
            assert!(w.view.addrs_on(wan0).all(|a| a.scope == Scope::Link));

            // IPv4: primary, then secondary in the same subnet.
            sh("ip addr add 192.0.2.2/24 dev wan0");
            w.until("192.0.2.2", |v| {
                v.addrs().any(|a| a.addr == ip("192.0.2.2"))
            })
            .await;
            sh("ip addr add 192.0.2.3/24 dev wan0");
            w.until("192.0.2.3", |v| {
                v.addrs().any(|a| a.addr == ip("192.0.2.3"))
            })
            .await;
            assert!(!w.addr("192.0.2.2").unwrap().flags.secondary);
            assert!(w.addr("192.0.2.3").unwrap().flags.secondary);

            // IPv4 with finite lifetimes.
            sh("ip addr add 198.51.100.9/24 dev wan0 valid_lft 300 preferred_lft 200");
            w.until("198.51.100.9", |v| {
                v.addrs().any(|a| a.addr == ip("198.51.100.9"))
            })
            .await;
            let a = w.addr("198.51.100.9").unwrap();
            assert!(
                matches!(a.preferred, Lifetime::Secs(p) if p <= 200 && p > 0),
                "{a:?}"
            );
            assert!(
                matches!(a.valid, Lifetime::Secs(v) if v <= 300 && v > 0),
                "{a:?}"
            );
            assert!(!a.flags.permanent);

            // Deletions.
            sh("ip addr del 192.0.2.3/24 dev wan0");
            w.until("192.0.2.3 gone", |v| {
                v.addrs().all(|a| a.addr != ip("192.0.2.3"))
            })
            .await;
            sh("ip addr del 192.0.2.2/24 dev wan0");
            w.until("192.0.2.2 gone", |v| {
                v.addrs().all(|a| a.addr != ip("192.0.2.2"))
            })
            .await;
            assert!(
                w.history
                    .iter()
                    .any(|e| matches!(e, NetEvent::DelAddr(a) if a.addr == ip("192.0.2.2")))
            );

            // IPv6 nodad: never tentative.
            sh("ip addr add 2001:db8:1::2/64 dev wan0 nodad");
            w.until("2001:db8:1::2", |v| {
                v.addrs().any(|a| a.addr == ip("2001:db8:1::2"))
            })
            .await;
            assert!(w.history.iter().all(|e| !matches!(e,
                NetEvent::NewAddr(a) if a.addr == ip("2001:db8:1::2") && a.flags.tentative)));
            assert_eq!(w.addr("2001:db8:1::2").unwrap().peer, None);

            // IPv6 with DAD: first tentative, then (DAD done) not.
            sh("ip addr add 2001:db8:1::3/64 dev wan0");
            w.until("2001:db8:1::3 tentative", |v| {
                v.addrs()
                    .any(|a| a.addr == ip("2001:db8:1::3") && a.flags.tentative)
            })
            .await;
            w.until("2001:db8:1::3 after DAD", |v| {
                v.addrs()
                    .any(|a| a.addr == ip("2001:db8:1::3") && !a.flags.tentative)
            })
            .await;

            // preferred_lft 0: the kernel marks it deprecated.
            sh("ip addr add 2001:db8:1::4/64 dev wan0 nodad preferred_lft 0 valid_lft 600");
            w.until("2001:db8:1::4", |v| {
                v.addrs().any(|a| a.addr == ip("2001:db8:1::4"))
            })
            .await;
            let a = w.addr("2001:db8:1::4").unwrap();
            assert!(a.flags.deprecated, "{a:?}");
            assert_eq!(a.preferred, Lifetime::Secs(0));
            assert!(
                matches!(a.valid, Lifetime::Secs(v) if v <= 600 && v > 0),
                "{a:?}"
            );

            // An existing address that becomes deprecated.
            sh("ip addr change 2001:db8:1::2/64 dev wan0 preferred_lft 0 valid_lft 600");
            w.until("2001:db8:1::2 deprecated", |v| {
                v.addrs()
                    .any(|a| a.addr == ip("2001:db8:1::2") && a.flags.deprecated)
            })
            .await;

            sh("ip addr del 2001:db8:1::3/64 dev wan0");
            w.until("2001:db8:1::3 gone", |v| {
                v.addrs().all(|a| a.addr != ip("2001:db8:1::3"))
            })
            .await;
            w.settles().await;
        });
    });
}

#[test]
fn tun_point_to_point_address_is_the_local_one() {
    in_netns("tun_point_to_point_address_is_the_local_one", || {
        if !netns::tun_available("tun_point_to_point_address_is_the_local_one") {
            return;
        }
        rt().block_on(async {
            let mut w = Watcher::start(WatchOptions::default()).await;
            sh("ip tuntap add mode tun name ppp0 && ip link set ppp0 up");
            sh("ip addr add 100.64.0.2 peer 10.64.0.1 dev ppp0");
            w.until("ppp0 address", |v| {
                v.addrs().any(|a| a.addr == ip("100.64.0.2"))
            })
            .await;
            let ppp0 = ifindex("ppp0");
            let link = w.view.link(ppp0).expect("ppp0 link");
            assert_eq!(link.name, "ppp0");
            assert!(link.point_to_point && link.up);
            let a = w.addr("100.64.0.2").unwrap();
            assert_eq!(a.index, ppp0);
            assert_eq!(a.peer, Some(ip("10.64.0.1")));
            assert_eq!(a.prefix_len, 32);
            // The peer is never mistaken for one of ours.
            assert!(w.addr("10.64.0.1").is_none());
            w.settles().await;
        });
    });
}

#[test]
fn pppoe_redial_gets_a_new_ifindex() {
    in_netns("pppoe_redial_gets_a_new_ifindex", || {
        if !netns::tun_available("pppoe_redial_gets_a_new_ifindex") {
            return;
        }
        let dial = |local: &str| {
            sh("ip tuntap add mode tun name ppp0 && ip link set ppp0 up");
            sh(&format!("ip addr add {local} peer 10.64.0.1 dev ppp0"));
            sh("ip route add default dev ppp0");
        };
        dial("100.64.0.2");
        let old = ifindex("ppp0");
        rt().block_on(async {
            let mut w = Watcher::start(WatchOptions::default()).await;
            assert_eq!(w.view.wan_link(Some("ppp0")).unwrap().index, old);
            assert_eq!(w.view.wan_link(None).unwrap().index, old);

            // The line drops: pppd deletes the interface, then dials again.
            sh("ip link del ppp0");
            dial("100.64.0.3");
            let new = ifindex("ppp0");
            assert_ne!(old, new);
            w.until("the new ppp0 with its address and route", |v| {
                v.link_by_name("ppp0").is_some_and(|l| l.index == new)
                    && v.addrs()
                        .any(|a| a.index == new && a.addr == ip("100.64.0.3"))
                    && v.wan_link(None).is_some_and(|l| l.index == new)
            })
            .await;
            assert!(w.view.link(old).is_none());
            assert_eq!(
                w.view.addrs_on(old).count(),
                0,
                "old addresses must be gone"
            );
            assert!(w.addr("100.64.0.2").is_none());
            let addrs: Vec<_> = w.view.addrs_on(new).map(|a| a.addr).collect();
            assert_eq!(addrs, vec![ip("100.64.0.3")]);
            w.settles().await;
        });
    });
}

#[test]
fn default_routes_follow_add_del_replace_and_link_down() {
    in_netns(
        "default_routes_follow_add_del_replace_and_link_down",
        || {
            veth("wana", "wanap");
            veth("wanb", "wanbp");
            sh("ip addr add 192.0.2.2/24 dev wana");
            sh("ip addr add 198.51.100.2/24 dev wanb");
            sh("ip addr add 2001:db8:a::2/64 dev wana nodad");
            let (a, b) = (ifindex("wana"), ifindex("wanb"));
            rt().block_on(async {
                let mut w = Watcher::start(WatchOptions::default()).await;
                assert!(w.view.default_routes().is_empty());

                // Two uplinks; the lower metric wins.
                sh("ip route add default via 192.0.2.1 metric 100");
                sh("ip route add default via 198.51.100.1 metric 200");
                w.until("two default routes", |v| v.default_routes().len() == 2)
                    .await;
                assert_eq!(w.view.wan_link(None).unwrap().index, a);

                // Failover: the primary route goes away.
                sh("ip route del default via 192.0.2.1 metric 100");
                w.until("primary route gone", |v| {
                    v.default_routes() == [route(Family::V4, b, 200)]
                })
                .await;
                assert_eq!(w.view.wan_link(None).unwrap().index, b);

                // Failback with a metric change: replace sends no DELROUTE for the old route.
                sh("ip route replace default via 192.0.2.1 dev wana metric 200");
                w.until("route replaced", |v| {
                    v.default_routes() == [route(Family::V4, a, 200)]
                })
                .await;
                w.settles().await;

                // IPv6 default route.
                sh("ip -6 route add default via 2001:db8:a::1 dev wana metric 300");
                w.until("IPv6 default route", |v| {
                    v.default_routes().contains(&route(Family::V6, a, 300))
                })
                .await;

                // The IPv4 uplink goes down: the kernel flushes its routes without RTM_DELROUTE.
                sh("ip route add default via 198.51.100.1 metric 400");
                w.until("backup route", |v| {
                    v.default_routes().contains(&route(Family::V4, b, 400))
                })
                .await;
                sh("ip link set wana down");
                w.until("wana routes gone", |v| {
                    v.link(a).is_some_and(|l| !l.up)
                        && v.default_routes().iter().all(|r| r.index != a)
                })
                .await;
                assert_eq!(w.view.wan_link(None).unwrap().index, b);

                // Routes in other tables are not default routes of the main table.
                sh("ip route add default via 198.51.100.1 table 100");
                sh("ip route add default via 198.51.100.1 table 1000");
                sh("ip route add unreachable default metric 900");
                sh("ip route add 203.0.113.0/24 via 198.51.100.1");
                w.settles().await;
                assert_eq!(w.view.default_routes(), [route(Family::V4, b, 400)]);
            });
        },
    );
}

#[test]
fn overrun_leads_to_a_fresh_snapshot() {
    in_netns("overrun_leads_to_a_fresh_snapshot", || {
        veth("wan0", "wan0p");
        let wan0 = ifindex("wan0");
        rt().block_on(async {
            let opts = WatchOptions {
                neighbours: false,
                recv_buffer: Some(4096),
            };
            let mut w = Watcher::start(opts).await;
            assert_eq!(w.snapshots, 1);

            // Thousands of changes while the runtime (and so the socket reader) is blocked in
            // this synchronous call: the tiny receive buffer must overflow.
            let mut lines = Vec::new();
            for i in 0..3000u32 {
                lines.push(format!("addr add 10.{}.{}.1/32 dev wan0", i / 250, i % 250));
            }
            for i in 0..3000u32 {
                if i % 2 == 0 {
                    lines.push(format!("addr del 10.{}.{}.1/32 dev wan0", i / 250, i % 250));
                }
            }
            ip_batch(&lines);

            w.until_snapshots(2).await;
            w.settles().await;
            let v4 = w.view.addrs_on(wan0).filter(|a| a.family() == Family::V4);
            assert_eq!(v4.count(), 1500);

            // And the watcher keeps working afterwards.
            sh("ip addr add 203.0.113.7/24 dev wan0");
            w.until("203.0.113.7", |v| {
                v.addrs().any(|a| a.addr == ip("203.0.113.7"))
            })
            .await;
        });
    });
}

#[test]
fn overrun_while_changes_keep_coming_still_converges() {
    in_netns("overrun_while_changes_keep_coming_still_converges", || {
        veth("wan0", "wan0p");
        let wan0 = ifindex("wan0");
        rt().block_on(async {
            let opts = WatchOptions {
                neighbours: false,
                recv_buffer: Some(4096),
            };
            let mut w = Watcher::start(opts).await;
            // A writer that keeps the socket overflowing while the watcher re-dumps.
            let writer = std::thread::spawn(|| {
                for round in 0..6u32 {
                    let mut lines = Vec::new();
                    for i in 0..500u32 {
                        lines.push(format!(
                            "addr add 10.9.{}.{}/32 dev wan0",
                            round,
                            i % 250 + 1
                        ));
                        lines.push(format!(
                            "addr del 10.9.{}.{}/32 dev wan0",
                            round,
                            i % 250 + 1
                        ));
                    }
                    ip_batch(&lines);
                }
                sh("ip addr add 203.0.113.9/24 dev wan0");
            });
            // Read slowly while the writer runs.
            while !writer.is_finished() {
                if let Ok(Some(ev)) =
                    tokio::time::timeout(Duration::from_millis(5), w.rx.recv()).await
                {
                    w.apply(ev);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            writer.join().unwrap();
            w.settles().await;
            assert!(w.snapshots >= 2, "expected at least one overrun");
            assert!(w.view.addrs_on(wan0).any(|a| a.addr == ip("203.0.113.9")));
        });
    });
}

#[test]
fn snapshot_matches_what_ip_shows() {
    in_netns("snapshot_matches_what_ip_shows", || {
        if !netns::tun_available("snapshot_matches_what_ip_shows") {
            return;
        }
        veth("wan0", "wan0p");
        sh("ip tuntap add mode tun name ppp0 && ip link set ppp0 up");
        sh("ip link add br0 type bridge && ip link set wan0p master br0");
        sh("ip addr add 192.0.2.2/24 dev wan0");
        sh("ip addr add 192.0.2.3/24 dev wan0");
        sh("ip addr add 2001:db8:1::2/64 dev wan0 nodad");
        sh("ip addr add 100.64.0.2 peer 10.64.0.1 dev ppp0");
        sh("ip route add default via 192.0.2.1 metric 10");
        sh("ip route add default dev ppp0 metric 20");
        sh("ip -6 route add default via 2001:db8:1::1 dev wan0");
        let snap = rt().block_on(snapshot(true)).unwrap();

        let links: serde_json::Value = serde_json::from_str(&sh("ip -j link show")).unwrap();
        let mut want_links: Vec<(u32, String, bool, bool)> = links
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let flags: Vec<&str> = l["flags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect();
                (
                    l["ifindex"].as_u64().unwrap() as u32,
                    l["ifname"].as_str().unwrap().to_owned(),
                    flags.contains(&"UP"),
                    flags.contains(&"POINTOPOINT"),
                )
            })
            .collect();
        let mut got_links: Vec<_> = snap
            .links
            .iter()
            .map(|l| (l.index, l.name.clone(), l.up, l.point_to_point))
            .collect();
        want_links.sort();
        got_links.sort();
        assert_eq!(got_links, want_links);

        let addrs: serde_json::Value = serde_json::from_str(&sh("ip -j addr show")).unwrap();
        let mut want_addrs: Vec<(u32, IpAddr, u8, Option<IpAddr>)> = Vec::new();
        for l in addrs.as_array().unwrap() {
            let index = l["ifindex"].as_u64().unwrap() as u32;
            for a in l["addr_info"].as_array().unwrap() {
                want_addrs.push((
                    index,
                    ip(a["local"].as_str().unwrap()),
                    a["prefixlen"].as_u64().unwrap() as u8,
                    a["address"].as_str().map(ip),
                ));
            }
        }
        let mut got_addrs: Vec<_> = snap
            .addrs
            .iter()
            .map(|a| (a.index, a.addr, a.prefix_len, a.peer))
            .collect();
        want_addrs.sort();
        got_addrs.sort();
        assert_eq!(got_addrs, want_addrs);

        let mut want_routes = Vec::new();
        for (family, cmd) in [
            (Family::V4, "ip -j route show default"),
            (Family::V6, "ip -j -6 route show default"),
        ] {
            let routes: serde_json::Value = serde_json::from_str(&sh(cmd)).unwrap();
            for r in routes.as_array().unwrap() {
                want_routes.push((
                    family,
                    ifindex(r["dev"].as_str().unwrap()),
                    r["metric"].as_u64().unwrap_or(0) as u32,
                ));
            }
        }
        let mut got_routes: Vec<_> = snap
            .routes
            .iter()
            .map(|r| (r.family, r.index, r.metric))
            .collect();
        want_routes.sort();
        got_routes.sort();
        assert_eq!(got_routes, want_routes);
        assert_eq!(want_routes.len(), 3);
    });
}
