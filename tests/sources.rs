//! Where each record's address comes from (issue 14), through the built binary in a fresh
//! user+network namespace: two uplinks with a host on each, a machine behind the router built
//! from the LAN prefix (suffix and EUI-64), its renumbering, and a PD-only WAN whose prefix is on
//! the LAN.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh, veth};

/// Waits for `n` requests in all and returns them as (hostname, myip), in arrival order.
fn wait_updates(s: &standin::Standin, n: usize, agent: &Agent) -> Vec<(String, String)> {
    s.wait_for_requests_blocking(n, LONG)
        .unwrap_or_else(|e| panic!("fewer than {n} requests ({e:?}):\n{}", agent.log()));
    updates(s)
}

fn pair(h: &str, ip: &str) -> (String, String) {
    (h.to_string(), ip.to_string())
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// Two uplinks: home follows `[wan] interface = "wan0"`, office `interface = "wan1"`. A new
/// address on wan1 sends office's request, and only that one.
#[test]
fn two_wans_each_host_follows_its_own() {
    in_netns("two_wans_each_host_follows_its_own", || {
        let s = standin_https();
        let setup = Setup::new();
        veth("wan0", "wan0p");
        veth("wan1", "wan1p");
        sh("ip addr add 203.0.113.1/24 dev wan0 && ip addr add 198.51.100.1/24 dev wan1");
        let office = format!("{OFFICE}\ninterface = \"wan1\"");
        setup.write_config(&s, Some("wan0"), &[HOME, &office]);
        let agent = setup.start_agent(&[]);
        let first = wait_updates(&s, 2, &agent);
        assert_eq!(
            sorted(first),
            [
                pair("home.example.com", "203.0.113.1"),
                pair("office.example.com", "198.51.100.1")
            ]
        );
        sh("ip addr del 198.51.100.1/24 dev wan1 && ip addr add 198.51.100.2/24 dev wan1");
        let all = wait_updates(&s, 3, &agent);
        assert_eq!(all[2], pair("office.example.com", "198.51.100.2"));
        // And a change on wan0 moves home alone.
        sh("ip addr del 203.0.113.1/24 dev wan0 && ip addr add 203.0.113.2/24 dev wan0");
        let all = wait_updates(&s, 4, &agent);
        assert_eq!(all[3], pair("home.example.com", "203.0.113.2"));
        agent.quiet_on("wan0");
        assert_eq!(updates(&s).len(), 4, "{:?}\n{}", updates(&s), agent.log());
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
    });
}

/// A LAN with a global /64 set by hand: the AAAA of a host with `ipv6_suffix` is prefix::suffix
/// while its A record follows the WAN. Renumbering (old prefix deprecated, new one added) moves
/// the AAAA once and leaves the A record alone.
#[test]
fn a_machine_behind_the_router_follows_the_lan_prefix() {
    in_netns("a_machine_behind_the_router_follows_the_lan_prefix", || {
        let s = standin_https();
        let setup = Setup::new();
        veth("wan0", "wan0p");
        veth("lan0", "lan0p");
        sh("ip addr add 203.0.113.1/24 dev wan0");
        sh("ip -6 addr add 2001:db8:1:2::1/64 dev lan0 nodad");
        let home = format!(
            "{HOME}\nfamily = \"both\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::1:2:3:4\""
        );
        setup.write_config(&s, Some("wan0"), &[&home]);
        let agent = setup.start_agent(&[]);
        let first = wait_updates(&s, 2, &agent);
        assert_eq!(
            sorted(first),
            [
                pair("home.example.com", "2001:db8:1:2:1:2:3:4"),
                pair("home.example.com", "203.0.113.1"),
            ]
        );
        sh("ip -6 addr change 2001:db8:1:2::1/64 dev lan0 preferred_lft 0");
        sh("ip -6 addr add 2001:db8:9:9::1/64 dev lan0 nodad");
        let all = wait_updates(&s, 3, &agent);
        assert_eq!(all[2], pair("home.example.com", "2001:db8:9:9:1:2:3:4"));
        agent.quiet_on("lan0");
        assert_eq!(updates(&s).len(), 3, "{:?}\n{}", updates(&s), agent.log());
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        assert_eq!(
            setup.published("home.example.com/AAAA").as_deref(),
            Some("2001:db8:9:9:1:2:3:4")
        );
        assert_eq!(
            setup.published("home.example.com/A").as_deref(),
            Some("203.0.113.1")
        );
    });
}

/// PD only: the WAN has only a link-local IPv6 address and the delegated prefix sits on the LAN.
/// The host built from the LAN prefix (EUI-64 of a MAC) is published; the one following the WAN
/// alone is not, and `detect` says why.
#[test]
fn pd_only_publishes_from_the_lan_prefix() {
    in_netns("pd_only_publishes_from_the_lan_prefix", || {
        let s = standin_https();
        let setup = Setup::new();
        veth("wan0", "wan0p");
        veth("lan0", "lan0p");
        sh("ip -6 addr add fe80::1/64 dev wan0 nodad");
        sh("ip -6 addr add 2001:db8:1:2::1/64 dev lan0 nodad");
        let home = format!(
            "{HOME}\nfamily = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_eui64 = \"34:56:78:9a:bc:de\""
        );
        let office = format!("{OFFICE}\nfamily = \"ipv6\"");
        setup.write_config(&s, Some("wan0"), &[&home, &office]);
        let agent = setup.start_agent(&[]);
        let first = wait_updates(&s, 1, &agent);
        // RFC 2464's worked example: 34-56-78-9A-BC-DE gives 3656:78ff:fe9a:bcde.
        assert_eq!(
            first,
            [pair("home.example.com", "2001:db8:1:2:3656:78ff:fe9a:bcde")]
        );
        agent.quiet_on("wan0");
        assert_eq!(updates(&s).len(), 1, "{:?}\n{}", updates(&s), agent.log());
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        let (status, out, err) = setup.run(&["detect"]);
        assert!(status.success(), "{out}\n{err}");
        assert!(
            out.contains(
                "home.example.com/AAAA ← the prefix on lan0 + EUI-64 of 34:56:78:9a:bc:de\n      → would publish 2001:db8:1:2:3656:78ff:fe9a:bcde"
            ),
            "detect does not show home's source and address:\n{out}"
        );
        assert!(
            out.contains(
                "office.example.com/AAAA ← the [wan] interface (wan0)\n      → nothing to publish: no routable address of ipv6 on wan0: fe80::1/64 (link-local)"
            ),
            "detect does not say why office has nothing:\n{out}"
        );
    });
}

/// Whether this namespace can make another one with `ip netns` (a tmpfs on /run first, so the
/// host's /run is never touched); a missing prerequisite fails under CI / DYNHOSTD_TEST_STRICT.
fn second_namespace(test: &str, name: &str) -> bool {
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "mount -t tmpfs none /run && mkdir -p /run/netns && ip netns add {name}"
        ))
        .status()
        .is_ok_and(|s| s.success());
    netns::prerequisite(test, ok, "`ip netns add` is not possible here")
}

/// Sends one datagram to `ip` so the kernel resolves it: a real neighbour entry, learnt by
/// neighbour discovery.
fn poke(ip: &str) {
    let sock = std::net::UdpSocket::bind("[::]:0").unwrap();
    let _ = sock.send_to(b"x", format!("[{ip}]:9"));
}

/// A machine behind the LAN veth (its own namespace, a known MAC): the record takes the address
/// it really uses, follows it when it changes, and while there is no entry nothing is published
/// and `detect` says why.
#[test]
fn a_neighbour_source_follows_the_address_the_machine_uses() {
    in_netns(
        "a_neighbour_source_follows_the_address_the_machine_uses",
        || {
            if !second_namespace(
                "a_neighbour_source_follows_the_address_the_machine_uses",
                "behind",
            ) {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            veth("wan0", "wan0p");
            sh("ip addr add 203.0.113.1/24 dev wan0");
            sh(
                "ip link add lan0 type veth peer name lan0p && ip link set lan0p netns behind && ip link set lan0 up",
            );
            sh("ip -6 addr add 2001:db8:1:2::1/64 dev lan0 nodad");
            sh(
                "ip netns exec behind sh -c 'ip link set lan0p address 34:56:78:9a:bc:de && ip link set lan0p up && ip -6 addr add 2001:db8:1:2::abcd/64 dev lan0p nodad'",
            );
            let home = format!(
                "{HOME}\nfamily = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_neighbour = \"34:56:78:9a:bc:de\""
            );
            setup.write_config(&s, Some("wan0"), &[&home]);
            // No entry yet: nothing to publish, and detect says which entry is missing.
            let (status, out, err) = setup.run(&["detect"]);
            assert!(status.success(), "{out}\n{err}");
            assert!(
                out.contains("no neighbour entry for 34:56:78:9a:bc:de on lan0")
                    && out.contains("nothing to publish"),
                "{out}"
            );
            let agent = setup.start_agent(&[]);
            agent.wait_log("gives no usable address");
            assert!(updates(&s).is_empty(), "{:?}", updates(&s));
            poke("2001:db8:1:2::abcd");
            let first = wait_updates(&s, 1, &agent);
            assert_eq!(first, [pair("home.example.com", "2001:db8:1:2::abcd")]);
            let (status, out, err) = setup.run(&["detect"]);
            assert!(status.success(), "{out}\n{err}");
            assert!(
                out.contains("neighbour 34:56:78:9a:bc:de on lan0: 2001:db8:1:2::abcd (")
                    && out.contains("would publish 2001:db8:1:2::abcd"),
                "{out}"
            );
            // The machine moves to another address in the prefix; the old entry goes.
            sh(
                "ip netns exec behind sh -c 'ip -6 addr add 2001:db8:1:2::beef/64 dev lan0p nodad && ip -6 addr del 2001:db8:1:2::abcd/64 dev lan0p'",
            );
            sh("ip -6 neigh del 2001:db8:1:2::abcd dev lan0");
            poke("2001:db8:1:2::beef");
            let all = wait_updates(&s, 2, &agent);
            assert_eq!(all[1], pair("home.example.com", "2001:db8:1:2::beef"));
            // Gone from the table: nothing more is sent, and detect explains.
            sh("ip -6 neigh del 2001:db8:1:2::beef dev lan0");
            agent.wait_log_count("gives no usable address", 2);
            agent.quiet_on("lan0");
            assert_eq!(updates(&s).len(), 2, "{:?}\n{}", updates(&s), agent.log());
            let (status, out, _) = setup.run(&["detect"]);
            assert!(status.success());
            assert!(
                out.contains("no neighbour entry for 34:56:78:9a:bc:de on lan0"),
                "{out}"
            );
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// `dynhostd update` (no agent) resolves the same sources from one dump: the two-uplink host and
/// the LAN prefix host are sent once each; with the LAN prefix gone it says why and fails.
#[test]
fn a_one_shot_update_resolves_each_source() {
    in_netns("a_one_shot_update_resolves_each_source", || {
        let s = standin_https();
        let setup = Setup::new();
        veth("wan0", "wan0p");
        veth("wan1", "wan1p");
        veth("lan0", "lan0p");
        sh("ip addr add 203.0.113.1/24 dev wan0 && ip addr add 198.51.100.1/24 dev wan1");
        sh("ip -6 addr add 2001:db8:1:2::1/64 dev lan0 nodad");
        let home = format!(
            "{HOME}\nfamily = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::10\""
        );
        let office = format!("{OFFICE}\ninterface = \"wan1\"");
        setup.write_config(&s, Some("wan0"), &[&home, &office]);
        let (status, out, err) = setup.run(&["update"]);
        assert!(status.success(), "{out}\n{err}");
        assert_eq!(
            sorted(updates(&s)),
            [
                pair("home.example.com", "2001:db8:1:2::10"),
                pair("office.example.com", "198.51.100.1")
            ]
        );
        sh("ip -6 addr del 2001:db8:1:2::1/64 dev lan0");
        let (status, out, err) = setup.run(&["update", "--force"]);
        assert!(!status.success(), "{out}\n{err}");
        assert!(
            err.contains("the prefix on lan0 + suffix ::10 gives no usable ipv6 address"),
            "{err}"
        );
        assert_eq!(updates(&s).len(), 3, "only office is sent again (forced)");
    });
}
