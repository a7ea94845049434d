//! The field, through the built binary in a fresh user+network namespace: a state file written
//! by a clock that was wrong (or tampered with), an upstream router whose advertisements refresh
//! an address's lifetimes every few seconds, and the same behind CGNAT. Each of these held
//! updates back (or crashed the agent) before the decision core was rebuilt (issue 10).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/ipsource.rs"]
mod ipsource;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use ipsource::{Answer, IpSource};
use netns::{in_netns, sh, veth};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Refreshes `addr`'s lifetimes on `dev` every `every`, as the kernel does when a router
/// advertisement arrives, until the returned flag is cleared; the flag stays set while it runs.
fn refresh_lifetimes(dev: &str, addr: &str, every: Duration) -> Arc<AtomicBool> {
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let cmd = format!("ip addr change {addr} dev {dev} valid_lft 3600 preferred_lft 1800");
    std::thread::spawn(move || {
        while flag.load(Ordering::SeqCst) {
            sh(&cmd);
            std::thread::sleep(every);
        }
    });
    running
}

/// A state file saved while the wall clock was an hour ahead (`published_at` in the future), and
/// one whose `retry_at` is `u64::MAX`: the agent neither crashes nor waits for the clock to
/// catch up. The change is held for at most `min_interval`, and the back-off for at most
/// `retry_max`.
#[test]
fn saved_times_from_a_wrong_clock_hold_nothing_back() {
    in_netns("saved_times_from_a_wrong_clock_hold_nothing_back", || {
        let s = standin_https();
        let setup = Setup::new();
        let hosts = [host_on(&s, HOME), host_on(&s, OFFICE)];
        setup.write_config_full(
            Some("wan0"),
            "300ms",
            "",
            "\n[update]\nmin_interval = \"2s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n",
            &hosts,
        );
        let future = unix_now() + 3600;
        std::fs::create_dir_all(setup.state_path().parent().unwrap()).unwrap();
        std::fs::write(
            setup.state_path(),
            format!(
                r#"{{"version": 1, "records": {{
                "home.example.com/A": {{"published": "203.0.113.7", "published_at": {future}}},
                "office.example.com/A": {{"published": "203.0.113.7", "published_at": {future},
                    "failures": 4, "retry_at": 18446744073709551615}}
            }}}}"#
            ),
        )
        .unwrap();
        veth("wan0", "wan0p");
        sh("ip addr add 203.0.113.8/24 dev wan0");
        let mut agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap_or_else(|e| {
            panic!(
                "held back ({e:?}) by a clock that was wrong:\n{}",
                agent.log()
            )
        });
        let mut sent: Vec<_> = reqs
            .iter()
            .map(|r| {
                (
                    r.param("hostname").unwrap().to_string(),
                    r.param("myip").unwrap().to_string(),
                )
            })
            .collect();
        sent.sort();
        assert_eq!(
            sent,
            [
                ("home.example.com".to_string(), "203.0.113.8".to_string()),
                ("office.example.com".to_string(), "203.0.113.8".to_string())
            ]
        );
        assert!(agent.running(), "{}", agent.log());
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        assert_eq!(
            setup.published("office.example.com/A").as_deref(),
            Some("203.0.113.8")
        );
    });
}

/// Router advertisements every half second refresh an IPv6 address's lifetimes on the WAN
/// while its IPv4 address changes: the lifetime refreshes are no change, so the IPv4 update goes
/// out after the debounce, while they carry on (before, each one restarted the debounce and the
/// update waited until they stopped).
#[test]
fn lifetime_refreshes_do_not_postpone_an_ipv4_change() {
    in_netns("lifetime_refreshes_do_not_postpone_an_ipv4_change", || {
        let s = standin_https();
        let setup = Setup::new();
        let hosts = [host_on(&s, HOME)];
        setup.write_config_full(Some("wan0"), "1s", "", "", &hosts);
        veth("wan0", "wan0p");
        sh("sysctl -qw net.ipv6.conf.wan0.accept_dad=0");
        sh("ip addr add 203.0.113.7/24 dev wan0");
        sh("ip addr add 2001:db8::7/64 dev wan0 valid_lft 3600 preferred_lft 1800");
        let agent = setup.start_agent(&["-v"]);
        s.wait_for_requests_blocking(1, LONG)
            .expect("the first update");
        let ras = refresh_lifetimes("wan0", "2001:db8::7/64", Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(1200));
        // Another subnet: deleting a primary address takes its secondaries with it.
        sh("ip addr add 198.51.100.8/24 dev wan0 && ip addr del 203.0.113.7/24 dev wan0");
        // The refreshes go on for far longer than the debounce; the update must not wait for
        // them to end.
        let reqs = s.wait_for_requests_blocking(2, LONG);
        let still_refreshing = ras.load(Ordering::SeqCst);
        ras.store(false, Ordering::SeqCst);
        let reqs = reqs.unwrap_or_else(|e| panic!("no update ({e:?}):\n{}", agent.log()));
        assert_eq!(reqs[1].param("myip"), Some("198.51.100.8"));
        assert!(still_refreshing);
        assert_eq!(
            agent.log_count("WAN settled: deciding"),
            1,
            "only the IPv4 change settled a burst:\n{}",
            agent.log()
        );
    });
}

/// Behind CGNAT, lifetime refreshes every 1.5 s (longer than the debounce, so each would have
/// settled on its own) start no what's-my-IP round: only the start does.
#[test]
fn behind_cgnat_lifetime_refreshes_start_no_detection_round() {
    in_netns(
        "behind_cgnat_lifetime_refreshes_start_no_detection_round",
        || {
            let s = standin_https();
            let a = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
            let b = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
            let setup = Setup::new();
            let hosts = [host_on(&s, HOME)];
            let detect = format!(
                "\n[detect]\nmode = \"auto\"\nipv4 = [\"{}\", \"{}\"]\nipv6 = []\ninterval = \"1h\"\ntimeout = \"2s\"\n[update]\nmin_interval = \"0s\"\n",
                a.url("127.0.0.1"),
                b.url("127.0.0.1")
            );
            setup.write_config_full(Some("wan0"), "300ms", "", &detect, &hosts);
            veth("wan0", "wan0p");
            sh("sysctl -qw net.ipv6.conf.wan0.accept_dad=0");
            sh("ip addr add 100.64.1.2/10 dev wan0");
            sh("ip addr add 2001:db8::7/64 dev wan0 valid_lft 3600 preferred_lft 1800");
            sh("ip route add default via 100.64.0.1 dev wan0");
            let agent = setup.start_agent(&["-v"]);
            let reqs = s
                .wait_for_requests_blocking(1, LONG)
                .expect("the first update");
            assert_eq!(reqs[0].param("myip"), Some("203.0.113.80"));
            let asked = a.count() + b.count();
            let ras = refresh_lifetimes("wan0", "2001:db8::7/64", Duration::from_millis(1500));
            // Ten refreshes, each longer apart than the debounce.
            std::thread::sleep(Duration::from_secs(15));
            ras.store(false, Ordering::SeqCst);
            assert_eq!(
                a.count() + b.count(),
                asked,
                "lifetime refreshes asked the sources again:\n{}",
                agent.log()
            );
            assert_eq!(s.requests().len(), 1);
        },
    );
}
