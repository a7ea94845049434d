//! Black-box tests of the built `dynhostd` binary, as a user runs it: real kernel devices in a
//! fresh user+network namespace (tun as `ppp0`, veth as a DHCP-style WAN), the local DynHost
//! stand-in over HTTPS with a test CA (or HTTP on loopback), and the CLI and config file.
//! Nothing here asserts on timing: waits have generous deadlines and only bound a hang.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/ipsource.rs"]
mod ipsource;

use cli::*;
use ipsource::{Answer, IpSource};
use netns::{in_netns, sh};
use standin::{Fault, Standin, StandinConfig};
use std::io::Read;
use std::process::Command;

#[test]
fn pppoe_wan_end_to_end() {
    in_netns("pppoe_wan_end_to_end", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);

        // At start: the local address (never the peer) is published, once.
        let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
        let r = &reqs[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/nic/update");
        assert_eq!(r.param("system"), Some("dyndns"));
        assert_eq!(r.param("hostname"), Some("home.example.com"));
        assert_eq!(r.param("myip"), Some("203.0.113.10"));
        assert!(r.authorization, "Basic auth sent up front");
        assert_eq!(r.login.as_deref(), Some("example.com-home"));
        assert_eq!(
            r.user_agent.as_deref(),
            Some(concat!("dynhostd/", env!("CARGO_PKG_VERSION")))
        );
        assert!(r.answer.contains("good 203.0.113.10"), "{}", r.answer);
        agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");

        // A flap storm that ends where it started sends nothing.
        let mut lines = Vec::new();
        for i in 0..200 {
            lines.push(format!(
                "addr add 198.51.100.{} peer 10.64.0.1 dev ppp0",
                i % 250 + 1
            ));
            lines.push(format!(
                "addr del 198.51.100.{} peer 10.64.0.1 dev ppp0",
                i % 250 + 1
            ));
        }
        let mark = agent.mark();
        netns::ip_batch(&lines);
        // A poke after the storm: the agent has decided on all of it once it settles after it.
        agent.quiet_on("ppp0");
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 1, "{:?}", updates(&s));

        // PPPoE redial with the same address: ppp0 destroyed and created again (new ifindex).
        let old_index = netns::ifindex("ppp0");
        let mark = agent.mark();
        sh("ip link del ppp0");
        ppp0("203.0.113.10", "10.64.0.1");
        assert_ne!(netns::ifindex("ppp0"), old_index);
        // The redial may settle in steps; a poke of the new ppp0 makes sure the agent has
        // decided on the end of it.
        agent.quiet_on("ppp0");
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 1, "{:?}", updates(&s));

        // Redial with a new address: exactly one update.
        sh("ip link del ppp0");
        ppp0("203.0.113.77", "10.64.0.1");
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert_eq!(reqs[1].param("myip"), Some("203.0.113.77"));
        agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.77");
        agent.quiet_on_without_sending("ppp0");
        assert_eq!(s.request_count(), 2, "{:?}", updates(&s));

        // The link going away entirely sends nothing.
        let mark = agent.mark();
        sh("ip link del ppp0");
        agent.settled_without_sending(mark);
        assert_eq!(s.request_count(), 2);

        let (status, log) = agent.stop();
        assert!(status.success(), "{status}\n{log}");
        assert_eq!(
            setup.published("home.example.com/A").as_deref(),
            Some("203.0.113.77")
        );
        assert_eq!(
            setup.state()["records"]["home.example.com/A"]["last_reply"],
            "good 203.0.113.77"
        );
    });
}

#[test]
fn restart_sends_nothing_when_already_published_and_one_update_when_changed() {
    in_netns(
        "restart_sends_nothing_when_already_published_and_one_update_when_changed",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();
            agent.wait_log("updated");
            assert!(agent.stop().0.success());

            // Same address at the next start: nothing is sent.
            let agent = setup.start_agent(&[]);
            agent.wait_log("WAN address is 203.0.113.10");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 1);
            assert!(agent.stop().0.success());

            // `update` without --force agrees, and exits 0.
            let (status, _, err) = setup.run(&["update"]);
            assert!(status.success(), "{err}");
            assert_eq!(s.request_count(), 1);

            // Changed while the agent was down: one update at start.
            sh(
                "ip addr del 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0",
            );
            let agent = setup.start_agent(&[]);
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
            assert_eq!(reqs[1].param("myip"), Some("203.0.113.11"));
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 2);
            assert!(agent.stop().0.success());
        },
    );
}

#[test]
fn a_corrupt_state_file_costs_one_update_not_a_crash() {
    in_netns("a_corrupt_state_file_costs_one_update_not_a_crash", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        std::fs::create_dir_all(setup.state_path().parent().unwrap()).unwrap();
        std::fs::write(
            setup.state_path(),
            b"{\"version\":1,\"records\":{\"home.exa\x00\xff",
        )
        .unwrap();
        let agent = setup.start_agent(&[]);
        agent.wait_log("state file unreadable");
        s.wait_for_requests_blocking(1, LONG).unwrap();
        agent.wait_log("updated");
        agent.quiet_on_without_sending("ppp0");
        assert_eq!(s.request_count(), 1);
        assert!(agent.stop().0.success());
        assert_eq!(
            setup.published("home.example.com/A").as_deref(),
            Some("203.0.113.10")
        );
    });
}

#[test]
fn dhcp_style_wan_follows_the_default_route_on_veth() {
    in_netns("dhcp_style_wan_follows_the_default_route_on_veth", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, None, &[HOME]);
        netns::veth("eth1", "isp1");
        netns::veth("wwan0", "isp2");
        sh("ip addr add 203.0.113.20/24 dev eth1 && ip addr add 198.51.100.30/24 dev wwan0");
        sh("ip route add default via 203.0.113.1 dev eth1 metric 100");
        let agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
        assert_eq!(reqs[0].param("myip"), Some("203.0.113.20"));
        agent.wait_log("updated");
        // Failover: eth1's route goes, wwan0's comes.
        sh(
            "ip route del default via 203.0.113.1 dev eth1 && ip route add default via 198.51.100.1 dev wwan0 metric 600",
        );
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert_eq!(reqs[1].param("myip"), Some("198.51.100.30"));
        // A new secondary on the WAN does not move the record.
        let mark = agent.mark();
        sh("ip addr add 198.51.100.31/24 dev wwan0");
        agent.quiet_on("wwan0");
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 2);
        assert!(agent.stop().0.success());
    });
}

#[test]
fn a_host_with_bad_credentials_stops_and_the_others_carry_on() {
    in_netns(
        "a_host_with_bad_credentials_stops_and_the_others_carry_on",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let bad_home = HOME.replace(PASSWORD, "wrong-password");
            setup.write_config(&s, Some("ppp0"), &[&bad_home, OFFICE]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(2, LONG).unwrap();
            agent.wait_log("home.example.com/A stopped after \"401");
            agent.wait_log("updated office.example.com/A");

            // The next change: only the good host is sent.
            sh(
                "ip addr del 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip addr add 203.0.113.12 peer 10.64.0.1 dev ppp0",
            );
            s.wait_for_requests_blocking(3, LONG).unwrap();
            agent.quiet_on_without_sending("ppp0");
            let sent = updates(&s);
            assert_eq!(sent.len(), 3, "{sent:?}");
            assert_eq!(
                sent[2],
                ("office.example.com".into(), "203.0.113.12".into())
            );
            assert!(agent.stop().0.success());

            // status says so, and how to fix it; the JSON form too.
            let (status, out, _) = setup.run(&["status"]);
            assert!(status.success());
            assert!(out.contains("STOPPED (401"), "{out}");
            assert!(out.contains("password"), "{out}");
            let (_, json, _) = setup.run(&["status", "--json"]);
            let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(rows[0]["hostname"], "home.example.com");
            assert!(rows[0]["stopped"].as_str().unwrap().starts_with("401"));
            assert_eq!(rows[1]["published"], "203.0.113.12");

            // Still stopped across a restart with the same config: `update` exits 1 without sending.
            let (status, _, err) = setup.run(&["update"]);
            assert_eq!(status.code(), Some(1), "{err}");
            assert_eq!(s.request_count(), 3);
            // Fixing the entry lifts the stop.
            setup.write_config(&s, Some("ppp0"), &[HOME, OFFICE]);
            let (status, _, err) = setup.run(&["update"]);
            assert!(status.success(), "{err}");
            assert_eq!(
                updates(&s)[3],
                ("home.example.com".into(), "203.0.113.12".into())
            );
        },
    );
}

#[test]
fn server_trouble_is_retried_later_not_hammered() {
    in_netns("server_trouble_is_retried_later_not_hammered", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        s.fail_next(1, Fault::server_trouble());
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        agent.wait_log("next try in");
        agent.quiet_on_without_sending("ppp0");
        assert_eq!(s.request_count(), 1, "no immediate retry");
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        let st = setup.state();
        let rec = &st["records"]["home.example.com/A"];
        assert_eq!(rec["failures"], 1);
        assert!(rec["retry_at"].as_u64().is_some());
        assert_eq!(rec["last_reply"], "911");
        // The back-off survives a restart: the agent does not send at start.
        let agent = setup.start_agent(&[]);
        agent.wait_log("WAN address is 203.0.113.10");
        agent.quiet_on_without_sending("ppp0");
        assert_eq!(s.request_count(), 1);
        drop(agent);
        // `update` is the user asking: it goes now.
        let (status, _, err) = setup.run(&["update"]);
        assert!(status.success(), "{err}");
        assert_eq!(s.request_count(), 2);
    });
}

#[test]
fn shutdown_abandons_a_hung_request_and_saves() {
    in_netns("shutdown_abandons_a_hung_request_and_saves", || {
        let s = standin_https();
        let setup = Setup::new();
        // A long request timeout so that only the shutdown grace can end it.
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        let text = std::fs::read_to_string(setup.config_path()).unwrap();
        std::fs::write(
            setup.config_path(),
            text.replace("timeout = \"3s\"", "timeout = \"300s\""),
        )
        .unwrap();
        ppp0("203.0.113.10", "10.64.0.1");
        s.fail_next(1, Fault::hang());
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        let (status, log) = agent.stop();
        assert!(status.success(), "{status}\n{log}");
        assert!(log.contains("abandoned"), "{log}");
        // Saved, without pretending it was published.
        assert!(setup.state_path().exists());
        assert_eq!(setup.published("home.example.com/A"), None);
    });
}

#[test]
fn update_with_ip_from_pppd_and_force_and_exit_codes() {
    in_netns("update_with_ip_from_pppd_and_force_and_exit_codes", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        // No ppp0 at all: the caller's address is used.
        let (status, _, err) = setup.run(&["update", "--ip", "203.0.113.50"]);
        assert!(status.success(), "{err}");
        assert_eq!(
            updates(&s),
            vec![("home.example.com".into(), "203.0.113.50".into())]
        );
        let (status, _, _) = setup.run(&["update", "--ip", "203.0.113.50"]);
        assert!(status.success());
        assert_eq!(s.request_count(), 1, "already published");
        let (status, _, _) = setup.run(&["update", "--ip", "203.0.113.50", "--force"]);
        assert!(status.success());
        assert_eq!(s.request_count(), 2, "--force sends anyway");
        assert!(s.requests()[1].answer.contains("nochg"));
        // A CGNAT address from pppd: refused up front as what it is, exit 2 (tests/update_ip.rs).
        let (status, _, err) = setup.run(&["update", "--ip", "100.64.7.7"]);
        assert_eq!(status.code(), Some(2), "{err}");
        assert!(err.contains("carrier-grade NAT"), "{err}");
        // --dry-run sends nothing and writes nothing.
        let before = std::fs::read_to_string(setup.state_path()).unwrap();
        let (status, _, err) = setup.run(&["update", "--ip", "203.0.113.51", "--dry-run"]);
        assert!(status.success(), "{err}");
        assert!(err.contains("dry run: would send"), "{err}");
        assert_eq!(s.request_count(), 2);
        assert_eq!(std::fs::read_to_string(setup.state_path()).unwrap(), before);
        // Server trouble: exit 1.
        s.fail_next(1, Fault::status(502));
        let (status, _, _) = setup.run(&["update", "--ip", "203.0.113.52"]);
        assert_eq!(status.code(), Some(1));
        // Usage errors: exit 2.
        let (status, _, _) = setup.run(&["update", "--ip", "203.0.113.1", "--ip", "203.0.113.2"]);
        assert_eq!(status.code(), Some(2));
        let (status, _, _) = setup.run(&["update", "--ip", "not-an-ip"]);
        assert_eq!(status.code(), Some(2));
    });
}

#[test]
fn a_ca_file_that_cannot_be_used_stops_the_agent_at_start() {
    in_netns(
        "a_ca_file_that_cannot_be_used_stops_the_agent_at_start",
        || {
            let s = standin_https();
            let setup = Setup::new();
            // PEM armour around no certificate: the config check lets it through (it reads the
            // file), the HTTP client build does not.
            let ca = setup.config_path().with_file_name("broken-ca.pem");
            std::fs::write(
                &ca,
                "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
            )
            .unwrap();
            let host = format!(
                "{HOME}\nserver = \"{}\"\nca_file = \"{}\"\n",
                s.url(),
                ca.display()
            );
            setup.write_config_full(Some("ppp0"), "0ms", "", "", &[host]);
            ppp0("203.0.113.10", "10.64.0.1");
            // Under systemd the start fails: no READY before the exit.
            let sock_path = setup.dir.path().join("notify.sock");
            let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
            sock.set_nonblocking(true).unwrap();
            let sock_env = sock_path.to_string_lossy().into_owned();
            let mut agent = setup.spawn_agent_env(&[], &[("NOTIFY_SOCKET", &sock_env)]);
            let deadline = std::time::Instant::now() + LONG;
            while agent.running() {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the agent runs on with a CA file it cannot use:\n{}",
                    agent.log()
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let status = agent.child.wait().unwrap();
            assert!(!status.success());
            let log = agent.log();
            assert!(
                log.contains(&format!("CA file {}", ca.display())),
                "the error names the file:\n{log}"
            );
            assert_eq!(s.request_count(), 0, "nothing is sent");
            assert!(!setup.state_path().exists(), "nothing is saved");
            let mut buf = [0u8; 512];
            while let Ok(n) = sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]);
                assert!(!m.contains("READY=1"), "{m}");
            }
        },
    );
}

#[test]
fn dry_run_agent_logs_and_sends_nothing() {
    in_netns("dry_run_agent_logs_and_sends_nothing", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&["--dry-run"]);
        agent.wait_log("dry run: would send unknown → 203.0.113.10");
        // (Deleting a primary first: without promote_secondaries the kernel would take the
        // secondaries with it.)
        sh(
            "ip addr del 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0",
        );
        agent.wait_log("would send 203.0.113.10 → 203.0.113.11");
        assert!(agent.stop().0.success());
        assert_eq!(s.request_count(), 0);
        assert!(!setup.state_path().exists());
    });
}

#[test]
fn plain_http_to_loopback_and_dual_stack() {
    in_netns("plain_http_to_loopback_and_dual_stack", || {
        let s = Standin::start_on_thread(
            StandinConfig::http()
                .account("example.com-home", PASSWORD, "home.example.com")
                .record("home.example.com"),
        )
        .unwrap();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[&format!("{HOME}\nfamily = \"both\"")]);
        ppp0("203.0.113.10", "10.64.0.1");
        sh("ip -6 addr add 2001:db8:5::10/64 dev ppp0 nodad");
        let agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        let mut ips: Vec<_> = reqs
            .iter()
            .map(|r| r.param("myip").unwrap().to_string())
            .collect();
        ips.sort();
        assert_eq!(ips, vec!["2001:db8:5::10", "203.0.113.10"]);
        agent.wait_log("updated home.example.com/AAAA");
        agent.wait_log("updated home.example.com/A:");
        assert!(agent.stop().0.success());
        assert_eq!(
            setup.published("home.example.com/AAAA").as_deref(),
            Some("2001:db8:5::10")
        );
    });
}

/// At trace level, across a full run with failures, no line holds the password, its Basic auth
/// encoding or an Authorization header.
#[test]
fn secrets_never_reach_the_log_even_at_trace() {
    in_netns("secrets_never_reach_the_log_even_at_trace", || {
        let s = standin_https();
        let setup = Setup::new();
        let bad = OFFICE.replace(PASSWORD, "Other-secret-77ab");
        setup.write_config(&s, Some("ppp0"), &[HOME, &bad]);
        ppp0("203.0.113.10", "10.64.0.1");
        s.fail_host("home.example.com", Fault::status(500), Some(1));
        let agent = setup.start_agent(&["-vv"]);
        s.wait_for_requests_blocking(2, LONG).unwrap();
        agent.wait_log("stopped after");
        sh("ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0");
        // Something to log at trace after the failures: the agent deciding on this change.
        agent.quiet_on("ppp0");
        let (status, log) = agent.stop();
        assert!(status.success());
        assert!(log.contains("TRACE"), "really at trace level");
        let mut outputs = vec![log];
        for args in [
            &["check"][..],
            &["status"],
            &["status", "--json"],
            &["update", "-vv"],
        ] {
            let (_, out, err) = setup.run(args);
            outputs.push(out);
            outputs.push(err);
        }
        let b64 = |s: &str| base64(s.as_bytes());
        for text in &outputs {
            for secret in [
                PASSWORD.to_string(),
                "Other-secret-77ab".to_string(),
                b64(&format!("example.com-home:{PASSWORD}")),
                b64("example.com-office:Other-secret-77ab"),
            ] {
                assert!(
                    !text.contains(&secret),
                    "secret {secret:?} leaked in:\n{text}"
                );
            }
            for line in text.lines() {
                let l = line.to_ascii_lowercase();
                assert!(
                    !(l.contains("authorization") && l.contains("basic ")),
                    "{line}"
                );
            }
        }
    });
}

/// `detect` explains the WAN's addresses, with and without a config, and shows what the
/// what's-my-IP sources answered. Every source is local: without a config the built-in ones are
/// asked, and the namespace's resolver (127.0.0.1, where nothing listens) makes each fail at
/// once, on loopback; with a config, two local sources answer.
#[test]
fn detect_shows_the_wan_and_why_addresses_do_not_count() {
    in_netns(
        "detect_shows_the_wan_and_why_addresses_do_not_count",
        || {
            ppp0("100.64.9.9", "10.64.0.1");
            sh("ip -6 addr add 2001:db8:7::1/64 dev ppp0 nodad preferred_lft 0");
            // Names of public hosts go nowhere: this mount namespace gets its own resolver
            // config, the name server on loopback (where nothing listens), and names are looked
            // up in files and DNS only (no NSS module that would ask a resolver outside). Where
            // a file is missing, glibc's default is that already.
            let dir = tempfile::tempdir().unwrap();
            for (file, text) in [
                ("resolv.conf", "nameserver 127.0.0.1\n"),
                ("nsswitch.conf", "hosts: files dns\n"),
            ] {
                let etc = std::path::Path::new("/etc").join(file);
                if etc.exists() {
                    let ours = dir.path().join(file);
                    std::fs::write(&ours, text).unwrap();
                    sh(&format!(
                        "mount --bind {} {}",
                        ours.display(),
                        etc.display()
                    ));
                }
            }

            // No config at all.
            let out = Command::new(BIN)
                .args(["detect", "--config", "/nonexistent/config.toml"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                text.contains("WAN interface: ppp0 (default route, point-to-point)"),
                "{text}"
            );
            assert!(text.contains("100.64.9.9/32 peer 10.64.0.1"), "{text}");
            assert!(text.contains("carrier-grade NAT"), "{text}");
            assert!(text.contains("behind NAT"), "{text}");
            assert!(text.contains("deprecated"), "{text}");
            // Behind NAT, so the built-in sources were asked, each in turn, and none answered.
            assert!(
                text.contains("HTTP detection (ipv4, [detect] mode = auto):"),
                "{text}"
            );
            for url in dynhostd::config::DEFAULT_IPV4_SOURCES {
                let said = text
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("  {url}: ")))
                    .unwrap_or_else(|| panic!("{url} not shown as asked:\n{text}"));
                assert!(
                    said.parse::<std::net::IpAddr>().is_err() && !said.is_empty(),
                    "{url} answered {said:?} with no way out:\n{text}"
                );
            }
            assert!(text.contains("→ no source gave a usable answer"), "{text}");
            assert!(
                text.contains("ipv4: behind NAT"),
                "no answer, still behind NAT:\n{text}"
            );
            // JSON form.
            let out = Command::new(BIN)
                .args(["detect", "--json", "--config", "/nonexistent/config.toml"])
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["wan"], "ppp0");
            assert_eq!(v["ipv4"]["kind"], "behind-nat");
            let v4 = v["http"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["family"] == "ipv4")
                .unwrap_or_else(|| panic!("no ipv4 detection in {v}"));
            assert!(v4["address"].is_null(), "{v4}");
            let asked: Vec<&str> = v4["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|src| src["url"].as_str().unwrap())
                .collect();
            assert_eq!(asked, dynhostd::config::DEFAULT_IPV4_SOURCES, "{v4}");

            // A config with two local sources: behind NAT, they are asked and agree.
            let first = IpSource::start(Answer::Body("198.51.100.7\n".into()), false);
            let second = IpSource::start(Answer::Body("198.51.100.7\n".into()), false);
            let cfg = dir.path().join("c.toml");
            let write = |accept: &str| {
                std::fs::write(
                    &cfg,
                    format!(
                        "[wan]\ninterface = \"ppp0\"\naccept = [{accept}]\n[detect]\nipv4 = [\"{}\", \"{}\"]\ntimeout = \"5s\"\n[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n",
                        first.url("127.0.0.1"),
                        second.url("127.0.0.1")
                    ),
                )
                .unwrap();
            };
            write("\"198.51.100.0/24\"");
            let detect = |args: &[&str]| {
                let out = Command::new(BIN)
                    .arg("detect")
                    .args(args)
                    .arg("--config")
                    .arg(&cfg)
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "{text}{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                text
            };
            let text = detect(&[]);
            assert!(text.contains("ipv4: 198.51.100.7 (counts)"), "{text}");
            for src in [&first, &second] {
                assert!(
                    text.contains(&format!("  {}: 198.51.100.7\n", src.url("127.0.0.1"))),
                    "{text}"
                );
            }
            assert!(text.contains("→ 198.51.100.7: two sources agree"), "{text}");
            assert_eq!((first.count(), second.count()), (1, 1));

            // With an accept list that includes it, the address counts; `--http` still asks
            // the sources, and what they said is shown without replacing it.
            write("\"100.64.0.0/10\", \"198.51.100.0/24\"");
            let text = detect(&["--http"]);
            assert!(text.contains("ipv4: 100.64.9.9 (counts)"), "{text}");
            assert!(text.contains("→ 198.51.100.7: two sources agree"), "{text}");
            assert_eq!((first.count(), second.count()), (2, 2));
            // And without --http they are left alone.
            let text = detect(&[]);
            assert!(text.contains("ipv4: 100.64.9.9 (counts)"), "{text}");
            assert!(!text.contains("HTTP detection (ipv4"), "{text}");
            assert_eq!((first.count(), second.count()), (2, 2));
        },
    );
}

#[test]
fn check_prints_the_redacted_config_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("[wan]\ninterface = \"ppp0\"\n\n[[host]]\n{HOME}\n"),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("hostname = \"home.example.com\""), "{text}");
    assert!(
        text.contains("server = \"https://dns.eu.ovhapis.com/nic/update\""),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
    assert!(!text.contains(PASSWORD));
    // The env var names the config too.
    let out = Command::new(BIN)
        .arg("check")
        .env("DYNHOSTD_CONFIG", &good)
        .output()
        .unwrap();
    assert!(out.status.success());

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[wan]\ninterface = \"ppp0\"\ndebounce = \"soon\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("bad.toml:3: wan.debounce"), "{err}");
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    for cmd in ["run", "update", "status"] {
        let out = Command::new(BIN)
            .arg(cmd)
            .arg("--config")
            .arg(&bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
    }
    // Each command has --help.
    for cmd in ["run", "update", "check", "status", "detect"] {
        let out = Command::new(BIN).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
        let mut s = String::new();
        out.stdout.as_slice().read_to_string(&mut s).unwrap();
        assert!(s.contains("--config"), "{cmd}: {s}");
    }
}
