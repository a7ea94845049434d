//! What is really published: the built binary asks a real authoritative DNS server (dnsmasq
//! from Debian, authoritative for example.com inside the test's own namespace), found through
//! the zone's NS records or named directly, and repairs a record edited behind its back. DNS
//! failures never turn into updates.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// dnsmasq, authoritative for example.com on `listen:port`, serving the names in a hosts file
/// that the test rewrites (then SIGHUP) to play the OVH panel.
struct Zone {
    child: Child,
    hosts: PathBuf,
}

impl Zone {
    fn start(dir: &Path, listen: &str, port: u16, records: &str) -> Zone {
        let hosts = dir.join(format!("zone-{port}.hosts"));
        std::fs::write(&hosts, records).unwrap();
        let child = Command::new(dnsmasq())
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                &format!("--listen-address={listen}"),
                &format!("--port={port}"),
                &format!("--auth-server=ns1.example.com,{listen}"),
                "--auth-zone=example.com",
                "--auth-ttl=60",
                &format!("--host-record=ns1.example.com,{listen}"),
                &format!("--addn-hosts={}", hosts.display()),
                "--log-facility=-",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        // Ready when it answers.
        netns::wait_for("dnsmasq to answer", LONG, || {
            std::net::UdpSocket::bind("127.0.0.1:0")
                    .and_then(|s| {
                        s.set_read_timeout(Some(Duration::from_millis(200)))?;
                        // A minimal query for example.com SOA.
                        let q = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x06\x00\x01";
                        s.send_to(q, (listen, port))?;
                        let mut buf = [0u8; 512];
                        s.recv(&mut buf).map(|_| ())
                    })
                    .is_ok()
        });
        Zone { child, hosts }
    }

    /// The panel edit: the record now holds `records` (once dnsmasq has re-read it: callers
    /// wait for the answer to change).
    fn set(&self, records: &str) {
        std::fs::write(&self.hosts, records).unwrap();
        sh(&format!("kill -HUP {}", self.child.id()));
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq() -> &'static str {
    if Path::new("/usr/sbin/dnsmasq").exists() {
        "/usr/sbin/dnsmasq"
    } else {
        "dnsmasq"
    }
}

fn have_dnsmasq() -> bool {
    Command::new(dnsmasq()).arg("--version").output().is_ok()
}

/// Whether `test` must be skipped for want of dnsmasq (a failure instead under CI, see
/// [`netns::prerequisite`]). Asked outside the namespace only: the child inherits the answer.
fn skip_without_dnsmasq(test: &str) -> bool {
    !netns::inside()
        && !netns::prerequisite(
            test,
            have_dnsmasq(),
            "dnsmasq is not installed (apt-get install dnsmasq-base)",
        )
}

#[test]
fn records_are_checked_at_the_zones_name_servers_and_repaired() {
    if skip_without_dnsmasq("records_are_checked_at_the_zones_name_servers_and_repaired") {
        return;
    }
    in_netns(
        "records_are_checked_at_the_zones_name_servers_and_repaired",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let zone = Zone::start(
                setup.dir.path(),
                "127.0.0.1",
                53,
                "203.0.113.10 home.example.com\n",
            );
            // Found through the NS records: the resolver is asked for example.com's NS, then
            // ns1.example.com is asked directly.
            let verify =
                "\n[verify]\ninterval = \"1m\"\nresolver = \"127.0.0.1\"\ntimeout = \"2s\"\n";
            setup.write_config_with(&s, Some("ppp0"), &[HOME], verify);
            sh(
                "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
            );

            // Unknown state at start, and the zone already holds the address: nothing to send.
            let agent = setup.start_agent(&[]);
            agent.wait_log("home.example.com/A already holds 203.0.113.10 at its name servers");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 0);
            setup.wait_state("the address the zone holds", |v| {
                v["records"]["home.example.com/A"]["published"] == "203.0.113.10"
            });
            let (_, out, _) = setup.run(&["status", "--verify"]);
            assert!(out.contains("203.0.113.10 (matches)"), "{out}");

            // Someone edits the record in the panel: the next check (SIGUSR1 here; every
            // `interval` otherwise) repairs it.
            zone.set("198.51.100.66 home.example.com\n");
            let mut out = String::new();
            netns::wait_for("the edited zone to be served", LONG, || {
                out = setup.run(&["status", "--verify"]).1;
                !out.contains("203.0.113.10 (matches)")
            });
            assert!(
                out.contains("198.51.100.66 (differs from 203.0.113.10)"),
                "{out}"
            );
            agent.signal("USR1");
            let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
            assert_eq!(reqs[0].param("myip"), Some("203.0.113.10"));
            agent.wait_log("not 203.0.113.10 as published (edited elsewhere?): correcting");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 1, "{:?}", updates(&s));

            // The name server goes away: checks fail, and never turn into updates.
            drop(zone);
            let mark = agent.mark();
            for n in 0..3 {
                let checks = agent.log_count("cannot check home.example.com/A");
                agent.signal("USR1");
                agent.wait_log_count("SIGUSR1: checking everything now", 2 + n);
                agent.wait_log_count("cannot check home.example.com/A", checks + 1);
            }
            // The last failed check was decided on before the poke's settle.
            agent.quiet_on("ppp0");
            agent.assert_nothing_sent_since(mark);
            assert_eq!(s.request_count(), 1, "{:?}", updates(&s));
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            let (_, out, _) = setup.run(&["status", "--verify"]);
            assert!(out.contains("cannot check"), "{out}");
        },
    );
}

#[test]
fn configured_name_servers_are_asked_directly_for_split_dns() {
    if skip_without_dnsmasq("configured_name_servers_are_asked_directly_for_split_dns") {
        return;
    }
    in_netns(
        "configured_name_servers_are_asked_directly_for_split_dns",
        || {
            let s = standin_https();
            let setup = Setup::new();
            // Two views of the zone: the "public" one on :53 and an internal one on :5353. Only
            // the configured one may be asked.
            let _public = Zone::start(
                setup.dir.path(),
                "127.0.0.1",
                53,
                "198.51.100.1 home.example.com\n",
            );
            let _internal = Zone::start(
                setup.dir.path(),
                "127.0.0.1",
                5353,
                "203.0.113.10 home.example.com\n",
            );
            let verify = "\n[verify]\nnameservers = [\"127.0.0.1:5353\"]\ntimeout = \"2s\"\n";
            setup.write_config_with(&s, Some("ppp0"), &[HOME], verify);
            sh(
                "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
            );
            let (status, _, err) = setup.run(&["update"]);
            assert!(status.success(), "{err}");
            assert!(err.contains("already holds 203.0.113.10"), "{err}");
            assert_eq!(s.request_count(), 0);
            // verify.interval = "0" turns it off: then an unknown record is simply sent.
            let setup2 = Setup::new();
            setup2.write_config_with(
                &s,
                Some("ppp0"),
                &[HOME],
                "\n[verify]\ninterval = \"0\"\nnameservers = [\"127.0.0.1:5353\"]\n",
            );
            let (status, _, err) = setup2.run(&["update"]);
            assert!(status.success(), "{err}");
            assert_eq!(s.request_count(), 1);
        },
    );
}
