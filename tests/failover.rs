//! Multi-WAN failover (issue 25), through the built binary in a fresh user+network namespace
//! with two veth uplinks, each with an address and a default route (wan0 the primary, wan1 the
//! backup): the primary losing its address, its link or its default route fails over; its
//! return is followed only after `failback`; a primary flapping every second for 30 s does not
//! move the record; with both down nothing is published and the first back wins. Every test
//! counts the updates the stand-in received, exactly.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh, veth};
use std::time::Duration;

const PRIMARY: &str = "203.0.113.1";
const BACKUP: &str = "198.51.100.1";
const PRIMARY_ROUTE: &str = "default via 203.0.113.254 dev wan0 metric 10";
const BACKUP_ROUTE: &str = "default via 198.51.100.254 dev wan1 metric 20";
const LIST: &str = "interface = [\"wan0\", \"wan1\"]";

/// Both uplinks up, each with its address and default route.
fn two_uplinks() {
    veth("wan0", "wan0p");
    veth("wan1", "wan1p");
    sh(&format!(
        "ip addr add {PRIMARY}/24 dev wan0 && ip addr add {BACKUP}/24 dev wan1 && ip route add {PRIMARY_ROUTE} && ip route add {BACKUP_ROUTE}"
    ));
}

/// Where the list is configured: in `[wan]` (the host follows it), or on the host itself.
#[derive(Clone, Copy)]
enum ListIn {
    Wan,
    Host,
}

/// A config with the list in `at`, a 300 ms debounce and `failback`; `extra` goes to `[wan]`.
fn configure(setup: &Setup, s: &standin::Standin, at: ListIn, failback: &str, host_extra: &str) {
    let fb = format!("failback = \"{failback}\"");
    let (wan, host) = match at {
        ListIn::Wan => (format!("{LIST}\n{fb}"), format!("{HOME}{host_extra}")),
        ListIn::Host => (fb, format!("{HOME}\n{LIST}{host_extra}")),
    };
    let host = host_on(s, &host);
    setup.write_config_full(None, &format!("{DEBOUNCE_MS}ms"), &wan, "", &[host]);
}

/// Waits for `n` requests in all; returns every `myip` sent, in order.
fn sent(s: &standin::Standin, n: usize, agent: &Agent) -> Vec<String> {
    s.wait_for_requests_blocking(n, LONG)
        .unwrap_or_else(|e| panic!("fewer than {n} requests ({e:?}):\n{}", agent.log()));
    updates(s).into_iter().map(|(_, ip)| ip).collect()
}

/// Nothing more was sent: the agent settled on everything before a poke, and the stand-in
/// holds exactly `n` requests.
fn exactly(s: &standin::Standin, n: usize, agent: &Agent) {
    agent.quiet_on("wan1");
    assert_eq!(updates(s).len(), n, "{:?}\n{}", updates(s), agent.log());
}

/// The primary goes (by `loss`) and the record moves to the backup, once.
fn fails_over(test: &str, at: ListIn, loss: &str) {
    in_netns(test, || {
        let s = standin_https();
        let setup = Setup::new();
        two_uplinks();
        let dir = setup.dir.path();
        let hook = dir.join("hook.sh");
        let seen = dir.join("seen");
        let script = format!(
            "#!/bin/sh\necho \"$DYNHOSTD_INTERFACE $DYNHOSTD_IP\" >> '{}'\n",
            seen.display()
        );
        std::fs::write(&hook, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let exec = format!("\nexec = \"{}\"", hook.display());
        configure(&setup, &s, at, "3s", &exec);
        let agent = setup.start_agent(&[]);
        assert_eq!(sent(&s, 1, &agent), [PRIMARY]);
        sh(loss);
        assert_eq!(sent(&s, 2, &agent), [PRIMARY, BACKUP]);
        agent.wait_log("failing over from wan0 to wan1");
        exactly(&s, 2, &agent);
        netns::wait_for("both hooks", LONG, || {
            std::fs::read_to_string(&seen).is_ok_and(|t| t.lines().count() == 2)
        });
        let lines = std::fs::read_to_string(&seen).unwrap();
        assert_eq!(lines, format!("wan0 {PRIMARY}\nwan1 {BACKUP}\n"));
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
    });
}

#[test]
fn the_primary_losing_its_address_fails_over() {
    fails_over(
        "the_primary_losing_its_address_fails_over",
        ListIn::Wan,
        &format!("ip addr del {PRIMARY}/24 dev wan0"),
    );
}

#[test]
fn the_primary_link_going_down_fails_over() {
    fails_over(
        "the_primary_link_going_down_fails_over",
        ListIn::Host,
        "ip link set wan0 down",
    );
}

/// What mwan3 does to a dead uplink: its default route goes, its address stays.
#[test]
fn the_primary_losing_its_default_route_fails_over() {
    fails_over(
        "the_primary_losing_its_default_route_fails_over",
        ListIn::Wan,
        &format!("ip route del {PRIMARY_ROUTE}"),
    );
}

/// The primary's route comes back: the record stays on the backup when the change settles,
/// `status` says so, and moves back once `failback` has passed.
#[test]
fn the_primary_restored_is_followed_after_failback_not_before() {
    in_netns(
        "the_primary_restored_is_followed_after_failback_not_before",
        || {
            let s = standin_https();
            let setup = Setup::new();
            two_uplinks();
            configure(&setup, &s, ListIn::Host, "5s", "");
            let agent = setup.start_agent(&[]);
            assert_eq!(sent(&s, 1, &agent), [PRIMARY]);
            sh(&format!("ip route del {PRIMARY_ROUTE}"));
            assert_eq!(sent(&s, 2, &agent), [PRIMARY, BACKUP]);
            exactly(&s, 2, &agent);
            let mark = agent.mark();
            sh(&format!("ip route add {PRIMARY_ROUTE}"));
            // Settled on the primary's return, and sent nothing: it waits out its failback.
            agent.settled_without_sending(mark);
            let (ok, out, err) = setup.run(&["status"]);
            assert!(ok.success(), "{out}\n{err}");
            assert!(
                out.contains("home.example.com/A follows wan1 since"),
                "{out}"
            );
            assert!(out.contains("failover list: wan0, wan1"), "{out}");
            assert!(out.contains("failback at"), "{out}");
            let (ok, out, err) = setup.run(&["status", "--json"]);
            assert!(ok.success(), "{out}\n{err}");
            let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(rows[0]["interface"], "wan1", "{out}");
            assert_eq!(
                rows[0]["interfaces"],
                serde_json::json!(["wan0", "wan1"]),
                "{out}"
            );
            assert!(rows[0]["interface_since"].is_u64(), "{out}");
            assert_eq!(sent(&s, 3, &agent), [PRIMARY, BACKUP, PRIMARY]);
            agent.wait_log("failing back from wan1 to wan0");
            exactly(&s, 3, &agent);
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// The primary fails, then flaps every second for 30 s (its default route added and removed):
/// the record stays on the backup throughout, and comes back once the primary holds for
/// `failback`.
#[test]
fn a_primary_flapping_every_second_does_not_flap_the_record() {
    in_netns(
        "a_primary_flapping_every_second_does_not_flap_the_record",
        || {
            let s = standin_https();
            let setup = Setup::new();
            two_uplinks();
            configure(&setup, &s, ListIn::Wan, "3s", "");
            let agent = setup.start_agent(&[]);
            assert_eq!(sent(&s, 1, &agent), [PRIMARY]);
            sh(&format!("ip route del {PRIMARY_ROUTE}"));
            assert_eq!(sent(&s, 2, &agent), [PRIMARY, BACKUP]);
            for i in 0..30 {
                std::thread::sleep(Duration::from_secs(1));
                let op = if i % 2 == 0 { "add" } else { "del" };
                sh(&format!("ip route {op} {PRIMARY_ROUTE}"));
            }
            // The last flap took the route away; everything so far is settled, nothing more sent.
            exactly(&s, 2, &agent);
            sh(&format!("ip route add {PRIMARY_ROUTE}"));
            assert_eq!(sent(&s, 3, &agent), [PRIMARY, BACKUP, PRIMARY]);
            exactly(&s, 3, &agent);
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// Both uplinks lose their default route: nothing is published, with a WARN. The backup comes
/// back first and is followed at once; the primary, back later, only after `failback`.
#[test]
fn with_both_down_nothing_is_published_and_the_first_back_wins() {
    in_netns(
        "with_both_down_nothing_is_published_and_the_first_back_wins",
        || {
            let s = standin_https();
            let setup = Setup::new();
            two_uplinks();
            configure(&setup, &s, ListIn::Host, "3s", "");
            let agent = setup.start_agent(&[]);
            assert_eq!(sent(&s, 1, &agent), [PRIMARY]);
            let mark = agent.mark();
            sh(&format!(
                "ip route del {PRIMARY_ROUTE} && ip route del {BACKUP_ROUTE}"
            ));
            agent.settled_without_sending(mark);
            agent.wait_log("none of wan0, wan1 is usable");
            assert!(
                agent
                    .log()
                    .lines()
                    .any(|l| l.contains("WARN") && l.contains("none of wan0, wan1")),
                "{}",
                agent.log()
            );
            exactly(&s, 1, &agent);
            sh(&format!("ip route add {BACKUP_ROUTE}"));
            assert_eq!(sent(&s, 2, &agent), [PRIMARY, BACKUP]);
            sh(&format!("ip route add {PRIMARY_ROUTE}"));
            assert_eq!(sent(&s, 3, &agent), [PRIMARY, BACKUP, PRIMARY]);
            agent.wait_log("failing back from wan1 to wan0");
            exactly(&s, 3, &agent);
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// `dynhostd detect` shows the `[wan]` list (which interface is usable for which family) and
/// what a freshly started agent would follow; a host's own list names the interface it would
/// follow now.
#[test]
fn detect_shows_the_lists_and_what_a_fresh_start_follows() {
    in_netns(
        "detect_shows_the_lists_and_what_a_fresh_start_follows",
        || {
            let s = standin_https();
            let setup = Setup::new();
            two_uplinks();
            sh(&format!("ip route del {PRIMARY_ROUTE}"));
            let wan = format!("{LIST}\nfailback = \"3s\"");
            let office = host_on(&s, &format!("{OFFICE}\ninterface = [\"wan1\", \"wan0\"]"));
            let hosts = [host_on(&s, HOME), office];
            setup.write_config_full(None, "300ms", &wan, "", &hosts);
            let (status, out, err) = setup.run(&["detect"]);
            assert!(status.success(), "{out}\n{err}");
            assert!(
                out.contains("WAN interface: wan1 (the first usable of the failover list)"),
                "{out}"
            );
            assert!(
                out.contains("Failover list: wan0 (not usable), wan1 (usable for ipv4)"),
                "{out}"
            );
            assert!(
                out.contains("office.example.com/A ← the first usable of wan1, wan0 (now wan1)"),
                "{out}"
            );
            assert!(out.contains(BACKUP), "{out}");
            assert!(updates(&s).is_empty(), "detect sends nothing");
        },
    );
}
