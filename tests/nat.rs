//! Behind NAT: the built binary finds the public address over HTTP from local what's-my-IP
//! stand-ins, in a fresh user+network namespace, and only while the WAN has no address that
//! counts. Also dual stack at the provider, and IPv6 renumbering (by hand and by SLAAC).

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
use netns::{in_netns, sh};
use standin::{Standin, StandinConfig};
use std::net::IpAddr;
use std::time::Duration;

/// `[detect]` with the given sources and a short interval for the test.
fn detect_section(ipv4: &[String], ipv6: &[String], interval: &str) -> String {
    let list = |v: &[String]| {
        v.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "\n[detect]\nmode = \"auto\"\nipv4 = [{}]\nipv6 = [{}]\ninterval = \"{interval}\"\ntimeout = \"2s\"\n",
        list(ipv4),
        list(ipv6)
    )
}

/// The tests' accept list makes documentation ranges count; CGNAT and private stay out.
fn cgnat_ppp0() {
    sh(
        "ip tuntap add mode tun name ppp0 && ip addr add 100.64.1.2 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up && ip route add default dev ppp0",
    );
}

#[test]
fn cgnat_wan_publishes_what_two_sources_agree_on_and_polls_only_while_behind_nat() {
    in_netns(
        "cgnat_wan_publishes_what_two_sources_agree_on_and_polls_only_while_behind_nat",
        || {
            let s = standin_https();
            let broken = IpSource::start(Answer::Status(500), false);
            let plain = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
            let html = IpSource::start(
                Answer::Body("<html><body>Current IP Address: 203.0.113.80</body></html>".into()),
                false,
            );
            let setup = Setup::new();
            let sources = [
                broken.url("127.0.0.1"),
                plain.url("127.0.0.1"),
                html.url("127.0.0.1"),
            ];
            setup.write_config_with(
                &s,
                Some("ppp0"),
                &[HOME],
                // The two sources are switched one after the other below, so a re-check may
                // catch them disagreeing: a short back-off keeps the test quick.
                &format!(
                    "{}\n[update]\nmin_interval = \"0s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n",
                    detect_section(&sources, &[], "1s")
                ),
            );
            cgnat_ppp0();
            let agent = setup.start_agent(&[]);
            let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
            assert_eq!(reqs[0].param("myip"), Some("203.0.113.80"));
            agent.wait_log("public address is 203.0.113.80 (HTTP detection)");
            // The failing source was reported, and every question went out from the WAN's address.
            agent.wait_log("what's-my-IP source: HTTP 500");
            for src in [&broken, &plain, &html] {
                for peer in src.peers() {
                    assert_eq!(
                        peer.ip(),
                        "100.64.1.2".parse::<IpAddr>().unwrap(),
                        "bound to the WAN address"
                    );
                }
            }
            // While behind NAT it re-checks every interval (and sends nothing new).
            let before = plain.count();
            assert!(
                plain.wait_for(before + 2, LONG),
                "re-checks while behind NAT"
            );
            assert_eq!(s.request_count(), 1);
            // The failing source was asked once, then left alone (backed off) while the
            // others were asked again and again.
            assert_eq!(broken.count(), 1, "a failing source is backed off");
            // The public address changes: the next re-check publishes it.
            plain.set(Answer::Body("203.0.113.81\n".into()));
            html.set(Answer::Body("203.0.113.81".into()));
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
            assert_eq!(reqs[1].param("myip"), Some("203.0.113.81"));
            // A routable address on the WAN: published from the interface, and polling stops.
            sh("ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0");
            let reqs = s.wait_for_requests_blocking(3, LONG).unwrap();
            assert_eq!(reqs[2].param("myip"), Some("203.0.113.10"));
            agent.wait_log("WAN address is 203.0.113.10");
            let asked = plain.count() + html.count() + broken.count();
            std::thread::sleep(Duration::from_secs(3));
            assert_eq!(
                plain.count() + html.count() + broken.count(),
                asked,
                "no polling once routable"
            );
            assert!(agent.stop().0.success());
        },
    );
}

#[test]
fn with_a_routable_wan_no_source_is_ever_asked() {
    in_netns("with_a_routable_wan_no_source_is_ever_asked", || {
        let s = standin_https();
        let src = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
        let setup = Setup::new();
        let sources = [src.url("127.0.0.1"), src.url("127.0.0.1")];
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[HOME],
            &detect_section(&sources, &[], "1s"),
        );
        sh(
            "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
        );
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        // Redials and flaps that end routable: still never asked.
        sh(
            "ip link del ppp0 && ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
        );
        s.wait_for_requests_blocking(2, LONG).unwrap();
        // Polling only ever starts from a decision that asks the sources; once the agent has
        // settled after a poke (so every decision so far is in its log), none has.
        agent.quiet_on("ppp0");
        assert_eq!(
            agent.log_count("asking what's-my-IP sources"),
            0,
            "{}",
            agent.log()
        );
        assert_eq!(src.count(), 0);
        assert!(agent.stop().0.success());
        // `update` agrees.
        let (status, _, err) = setup.run(&["update", "--force"]);
        assert!(status.success(), "{err}");
        assert_eq!(src.count(), 0);
    });
}

#[test]
fn disagreeing_or_unroutable_answers_publish_nothing() {
    in_netns("disagreeing_or_unroutable_answers_publish_nothing", || {
        let s = standin_https();
        let a = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
        let b = IpSource::start(Answer::Body("203.0.113.99\n".into()), false);
        let private = IpSource::start(Answer::Body("10.1.2.3\n".into()), false);
        let setup = Setup::new();
        let sources = [
            a.url("127.0.0.1"),
            b.url("127.0.0.1"),
            private.url("127.0.0.1"),
        ];
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[HOME],
            &detect_section(&sources, &[], "1s"),
        );
        cgnat_ppp0();
        let (status, _, err) = setup.run(&["update"]);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(err.contains("does not count"), "{err}");
        assert_eq!(s.request_count(), 0);
        // `detect` shows each source's answer and the verdict.
        let (status, out, _) = setup.run(&["detect"]);
        assert!(status.success());
        assert!(
            out.contains("203.0.113.80") && out.contains("203.0.113.99"),
            "{out}"
        );
        assert!(out.contains("no two sources agree"), "{out}");
        // Once two agree, `update` publishes.
        b.set(Answer::Body("203.0.113.80".into()));
        let (status, _, err) = setup.run(&["update"]);
        assert!(status.success(), "{err}");
        assert_eq!(
            updates(&s),
            vec![("home.example.com".into(), "203.0.113.80".into())]
        );
        let (_, out, _) = setup.run(&["detect"]);
        assert!(out.contains("two sources agree"), "{out}");
    });
}

#[test]
fn each_family_is_asked_over_its_own_family() {
    in_netns("each_family_is_asked_over_its_own_family", || {
        let s = Standin::start_on_thread(
            StandinConfig::http()
                .account("example.com-home", PASSWORD, "home.example.com")
                .record("home.example.com"),
        )
        .unwrap();
        // Each source listens on 127.0.0.1 and [::1], and its name resolves to both (a hosts
        // file of our own, in the test's mount namespace): only the family asked may be used.
        // The two families' answers differ, so a mix-up would show.
        let hosts = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(hosts.path(), "127.0.0.1 dual.test\n::1 dual.test\n").unwrap();
        sh(&format!(
            "mount --bind {} /etc/hosts",
            hosts.path().display()
        ));
        let v4 = IpSource::start(Answer::Body("203.0.113.80\n".into()), true);
        let v6 = IpSource::start(Answer::Body("2001:db8:99::80\n".into()), true);
        let setup = Setup::new();
        let detect = detect_section(
            &[v4.url("dual.test"), v4.url("dual.test")],
            &[v6.url("dual.test"), v6.url("dual.test")],
            "5m",
        );
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[&format!("{HOME}\nfamily = \"both\"")],
            &detect,
        );
        cgnat_ppp0();
        // A ULA on the WAN: IPv6 behind NAT66 too.
        sh("ip -6 addr add fd00:1::2/64 dev ppp0 nodad");
        let (status, _, err) = setup.run(&["update"]);
        assert!(status.success(), "{err}");
        let mut sent: Vec<_> = updates(&s).into_iter().map(|(_, ip)| ip).collect();
        sent.sort();
        assert_eq!(sent, vec!["2001:db8:99::80", "203.0.113.80"]);
        assert!(v4.count() >= 2 && v6.count() >= 2);
        assert!(
            v4.peers()
                .iter()
                .all(|p| p.ip() == "100.64.1.2".parse::<IpAddr>().unwrap()),
            "{:?}",
            v4.peers()
        );
        assert!(
            v6.peers()
                .iter()
                .all(|p| p.ip() == "fd00:1::2".parse::<IpAddr>().unwrap()),
            "{:?}",
            v6.peers()
        );
    });
}

/// Dual stack at OVH: one family failing (here bad credentials on the A record's login) never
/// blocks the other.
#[test]
fn dual_stack_records_fail_independently() {
    in_netns("dual_stack_records_fail_independently", || {
        let s = standin_https();
        let setup = Setup::new();
        let a = format!("{}\nfamily = \"ipv4\"", HOME.replace(PASSWORD, "wrong"));
        let aaaa = format!("{HOME}\nfamily = \"ipv6\"");
        setup.write_config(&s, Some("ppp0"), &[&a, &aaaa]);
        sh(
            "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up && ip -6 addr add 2001:db8:1::10/64 dev ppp0 nodad",
        );
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(2, LONG).unwrap();
        agent.wait_log("home.example.com/A stopped");
        agent.wait_log("updated home.example.com/AAAA");
        // The IPv6 address changes: the AAAA record still follows.
        sh(
            "ip -6 addr add 2001:db8:2::10/64 dev ppp0 nodad && ip -6 addr del 2001:db8:1::10/64 dev ppp0",
        );
        let reqs = s.wait_for_requests_blocking(3, LONG).unwrap();
        assert_eq!(reqs[2].param("myip"), Some("2001:db8:2::10"));
        assert!(agent.stop().0.success());
        let st = setup.state();
        assert!(st["records"]["home.example.com/A"]["stopped"].is_object());
        assert_eq!(
            st["records"]["home.example.com/AAAA"]["published"],
            "2001:db8:2::10"
        );
    });
}

/// Renumbering by hand: the old address goes deprecated (preferred_lft 0), a new one appears,
/// and the AAAA record moves; a temporary (privacy-style) address is never published.
#[test]
fn ipv6_renumbering_by_hand_moves_the_aaaa_record() {
    in_netns("ipv6_renumbering_by_hand_moves_the_aaaa_record", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("wan0"), &[&format!("{HOME}\nfamily = \"ipv6\"")]);
        netns::veth("wan0", "isp0");
        sh("ip -6 addr add 2001:db8:1::10/64 dev wan0 nodad valid_lft 7200 preferred_lft 3600");
        let agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
        assert_eq!(reqs[0].param("myip"), Some("2001:db8:1::10"));
        sh("ip -6 addr add 2001:db8:2::10/64 dev wan0 nodad valid_lft 86400 preferred_lft 14400");
        sh("ip -6 addr change 2001:db8:1::10/64 dev wan0 valid_lft 7200 preferred_lft 0");
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert_eq!(reqs[1].param("myip"), Some("2001:db8:2::10"));
        agent.quiet_on_without_sending("wan0");
        assert_eq!(s.request_count(), 2);
        assert!(agent.stop().0.success());
    });
}

/// SLAAC for real: radvd on the ISP end of a veth advertises a prefix, the WAN end takes
/// addresses from the router advertisements (with privacy addresses on), then the advertised
/// prefix changes. The AAAA record follows the stable address and never a temporary one.
#[test]
fn slaac_prefix_change_with_radvd() {
    if !netns::inside()
        && !netns::prerequisite(
            "slaac_prefix_change_with_radvd",
            have("radvd"),
            "radvd is not installed (apt-get install radvd)",
        )
    {
        return;
    }
    in_netns("slaac_prefix_change_with_radvd", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("wan0"), &[&format!("{HOME}\nfamily = \"ipv6\"")]);
        netns::veth("wan0", "isp0");
        // isp0 is the router; wan0 takes RAs (accept_ra=2: even with forwarding on) and makes
        // privacy addresses too.
        sh("sysctl -qw net.ipv6.conf.all.forwarding=1");
        sh(
            "sysctl -qw net.ipv6.conf.wan0.accept_ra=2 net.ipv6.conf.wan0.use_tempaddr=2 net.ipv6.conf.wan0.dad_transmits=0 net.ipv6.conf.isp0.dad_transmits=0",
        );
        let dir = setup.dir.path();
        let conf = dir.join("radvd.conf");
        let ra = |prefixes: &[(&str, u32)]| {
            let mut c = String::from(
                "interface isp0 {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n",
            );
            for (p, preferred) in prefixes {
                c += &format!(
                    "  prefix {p} {{\n    AdvOnLink on;\n    AdvAutonomous on;\n    AdvValidLifetime 7200;\n    AdvPreferredLifetime {preferred};\n  }};\n"
                );
            }
            c += "};\n";
            c
        };
        std::fs::write(&conf, ra(&[("2001:db8:1::/64", 3600)])).unwrap();
        let pid = dir.join("radvd.pid");
        let mut radvd = std::process::Command::new("radvd")
            .args(["-n", "-C"])
            .arg(&conf)
            .arg("-p")
            .arg(&pid)
            .args(["-m", "stderr"])
            .spawn()
            .expect("radvd");
        let agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
        let first: std::net::Ipv6Addr = reqs[0].param("myip").unwrap().parse().unwrap();
        assert_eq!(first.segments()[..4], [0x2001, 0xdb8, 1, 0]);
        let temporaries = |prefix: &str| -> Vec<String> {
            sh(&format!(
                "ip -6 -o addr show dev wan0 temporary to {prefix}"
            ))
            .lines()
            .filter_map(|l| {
                l.split_whitespace()
                    .nth(3)
                    .map(|a| a.split('/').next().unwrap().to_string())
            })
            .collect()
        };
        netns::wait_for("a temporary address", LONG, || {
            !temporaries("2001:db8:1::/64").is_empty()
        });
        assert!(
            !temporaries("2001:db8:1::/64").contains(&first.to_string()),
            "a temporary address was published"
        );

        // The ISP renumbers: the old prefix is advertised deprecated, a new one appears.
        std::fs::write(
            &conf,
            ra(&[("2001:db8:1::/64", 0), ("2001:db8:2::/64", 3600)]),
        )
        .unwrap();
        sh(&format!("kill -HUP {}", radvd.id()));
        let reqs = s
            .wait_for_requests_blocking(2, Duration::from_secs(40))
            .unwrap();
        let second: std::net::Ipv6Addr = reqs[1].param("myip").unwrap().parse().unwrap();
        assert_eq!(second.segments()[..4], [0x2001, 0xdb8, 2, 0]);
        netns::wait_for("a new temporary address", LONG, || {
            !temporaries("2001:db8:2::/64").is_empty()
        });
        assert!(!temporaries("2001:db8:2::/64").contains(&second.to_string()));
        // Stable: what follows sends nothing more. Further RAs (every 3-4 s) refresh the
        // addresses' lifetimes and temporary addresses come and go (RTM_NEWADDR on wan0): none
        // of that is a change for the policy, so each is decided at once ("WAN unchanged"),
        // no debounce is started, and nothing is sent.
        let mark = agent.mark();
        let unchanged = agent.log_count(UNCHANGED);
        agent.wait_log_count(UNCHANGED, unchanged + 2);
        assert_eq!(
            agent.log_count(SETTLED),
            mark.settled,
            "an RA counted as a change"
        );
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 2, "{:?}", updates(&s));
        assert!(agent.stop().0.success());
        let _ = radvd.kill();
        let _ = radvd.wait();
    });
}

fn have(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} || test -x /usr/sbin/{cmd}"))
        .output()
        .is_ok_and(|o| o.status.success())
}
