//! `dynhostd update --ip ADDR`, black-box (issue #20): an address no record can take (broadcast,
//! multicast, loopback, link-local, private, CGNAT, unspecified…) is refused up front, exit 2,
//! naming its real class, before any agent is asked (it used to answer "already published",
//! exit 0) or any request sent (the error used to blame the WAN). Documentation addresses, the
//! suite's public ones, and a private range the config's `[wan] accept` lists still pass.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::in_netns;

/// (address, the class the refusal must name)
const REFUSED: &[(&str, &str)] = &[
    ("255.255.255.255", "broadcast"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("169.254.1.1", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("10.1.2.3", "private range (RFC 1918)"),
    ("192.168.1.1", "private range (RFC 1918)"),
    ("100.64.7.7", "carrier-grade NAT"),
    ("fd00::2", "unique local"),
];

/// Runs `update --ip` for every refused address: each must exit 2 naming its class, and
/// nothing may reach the stand-in.
fn all_refused(setup: &Setup, s: &standin::Standin) {
    let before = s.request_count();
    let mut wrong = Vec::new();
    for (ip, class) in REFUSED {
        let (status, out, err) = setup.run(&["update", "--ip", ip]);
        let said = format!("--ip {ip} is not a public address: {class}");
        if status.code() != Some(2) || !err.contains(&said) {
            wrong.push(format!("{ip}: exit {:?}\n{out}{err}", status.code()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(s.request_count(), before, "a refused address was sent");
}

#[test]
fn update_refuses_an_address_no_record_can_take_with_its_class() {
    in_netns(
        "update_refuses_an_address_no_record_can_take_with_its_class",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            // No agent: refused before the WAN is looked at or a request sent.
            all_refused(&setup, &s);

            // With an agent: refused before it is asked (it answered "already published").
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            setup.wait_state("the first update", |v| {
                v["records"]["home.example.com/A"]["published"] == "203.0.113.10"
            });
            all_refused(&setup, &s);
            // A documentation address, the suite's "public" one, is still handed over.
            let (status, out, err) = setup.run(&["update", "--ip", "203.0.113.10"]);
            assert!(status.success(), "{out}{err}");
            assert!(agent.stop().0.success());

            // [wan] accept can make a private range count: then it is not refused up front.
            let text = std::fs::read_to_string(setup.config_path()).unwrap();
            std::fs::write(
                setup.config_path(),
                text.replace("accept = [", "accept = [\"10.0.0.0/8\", "),
            )
            .unwrap();
            let (status, _, err) = setup.run(&["update", "--ip", "10.1.2.3", "--dry-run"]);
            assert!(status.success(), "{err}");
            assert!(err.contains("dry run: would send"), "{err}");
            let (status, _, err) = setup.run(&["update", "--ip", "255.255.255.255"]);
            assert_eq!(status.code(), Some(2), "{err}");
        },
    );
}
