//! `[[notify]]` and `[health]`, black-box: the built agent against the DynHost stand-in and
//! local receivers (tests/support/receiver.rs) with the request shapes of a generic webhook,
//! ntfy and Gotify; a receiver that is down for the first minute, one that hangs, one that
//! answers 500 forever; and URL tokens that must not reach any log line. The shapes of every
//! scheme (Discord, Slack and Telegram included) are unit tests of src/notify/target.rs; the
//! hour-long give-up is a unit test of the queue (src/notify/queue.rs), which takes time as an
//! argument.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/receiver.rs"]
mod receiver;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh};
use receiver::{Answer, Receiver};
use standin::Fault;
use std::time::{Duration, Instant};

/// Every log line of the agent, at debug for every module (reqwest's and hyper's included).
const ALL_DEBUG: &[(&str, &str)] = &[("DYNHOSTD_LOG", "debug")];

fn move_wan(from: &str, to: &str) {
    sh(&format!(
        "ip addr del {from} peer 10.64.0.1 dev ppp0 && ip addr add {to} peer 10.64.0.1 dev ppp0"
    ));
}

fn events(r: &[receiver::Received]) -> Vec<String> {
    r.iter()
        .map(|r| r.json()["event"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn wait_update(s: &standin::Standin, ip: &str) {
    let deadline = Instant::now() + LONG;
    while !updates(s).iter().any(|(_, sent)| sent == ip) {
        assert!(
            Instant::now() < deadline,
            "no update to {ip}: {:?}",
            updates(s)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The story of the "done when": an address change, a 401 stop, and `retry` after
/// the fix give one `updated` (with the new and old address), one `stopped` and one
/// `recovered`, to each of three targets in its own shape; no token reaches the log.
#[test]
fn an_address_change_a_stop_and_a_retry_notify_each_target_once() {
    in_netns(
        "an_address_change_a_stop_and_a_retry_notify_each_target_once",
        || {
            let s = standin_https();
            let r = Receiver::start(Answer::Status(200));
            let setup = Setup::new();
            let extra = format!(
                "\n[[notify]]\nurl = \"{}\"\n\n[[notify]]\nurl = \"ntfy://bob:Ntfy-pa55@{}/dyn-Topic7?scheme=http&priority=high\"\n\n[[notify]]\nurl = \"gotify://{}/Gotify-Tok3n?disabletls=yes\"\n",
                r.url("/hook/Tok3n-webhook-9f2"),
                r.host(),
                r.host()
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent_env(&[], ALL_DEBUG);
            let hook = "/hook/Tok3n-webhook-9f2";
            r.wait("the first update", LONG, |_| r.to(hook).len() == 1);

            move_wan("203.0.113.10", "203.0.113.11");
            r.wait("the change", LONG, |_| r.to(hook).len() == 2);
            let change = r.to(hook)[1].clone();
            assert_eq!(change.method, "POST");
            assert_eq!(change.header("content-type"), Some("application/json"));
            let body = change.json();
            assert_eq!(body["event"], "updated");
            assert_eq!(body["host"], HOME_HOST);
            assert_eq!(body["family"], "ipv4");
            assert_eq!(body["ip"], "203.0.113.11");
            assert_eq!(body["old_ip"], "203.0.113.10");
            assert_eq!(body["error"], serde_json::Value::Null);
            assert_eq!(body["interface"], "ppp0", "the WAN it came from");
            assert!(
                body["reply"].as_str().unwrap().starts_with("good"),
                "{body}"
            );
            let time = body["time"].as_str().unwrap();
            assert!(
                time.len() == 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
                "{time}"
            );
            assert_eq!(r.to(hook)[0].json()["old_ip"], serde_json::Value::Null);

            // Refused credentials (OVH answers a wrong DynHost login with HTTP 401): the host
            // stops, once.
            s.fail_host(HOME_HOST, Fault::status(401), None);
            move_wan("203.0.113.11", "203.0.113.12");
            r.wait("the stop", LONG, |_| r.to(hook).len() == 3);
            let stop = r.to(hook)[2].json();
            assert_eq!(
                (stop["event"].as_str(), stop["ip"].as_str()),
                (Some("stopped"), Some("203.0.113.12"))
            );
            assert!(stop["error"].as_str().unwrap().starts_with("401"), "{stop}");

            // Fixed at the provider; `retry` sends again: recovered.
            s.clear_faults();
            let (st, out, err) = setup.run(&["retry", HOME_HOST]);
            assert!(st.success(), "{out}{err}");
            r.wait("the recovery", LONG, |_| r.to(hook).len() == 4);
            let rec = r.to(hook)[3].json();
            assert_eq!(
                (rec["event"].as_str(), rec["ip"].as_str()),
                (Some("recovered"), Some("203.0.113.12"))
            );

            // Each other target got the same four, in its own shape.
            r.wait("ntfy and gotify", LONG, |_| {
                r.to("/dyn-Topic7").len() == 4 && r.to("/message").len() == 4
            });
            let (_, log) = agent.stop();
            assert_eq!(
                events(&r.to(hook)),
                ["updated", "updated", "stopped", "recovered"],
                "exactly once each"
            );
            let ntfy = r.to("/dyn-Topic7");
            assert_eq!(ntfy.len(), 4);
            assert_eq!(
                ntfy[2].header("title"),
                Some("dynhostd: home.example.com stopped")
            );
            assert_eq!(ntfy[1].header("priority"), Some("high"));
            assert_eq!(
                ntfy[0].header("authorization"),
                Some(format!("Basic {}", base64(b"bob:Ntfy-pa55")).as_str())
            );
            assert!(
                ntfy[1]
                    .body
                    .contains("now points at 203.0.113.11, was 203.0.113.10"),
                "{:?}",
                ntfy[1].body
            );
            let gotify = r.to("/message");
            assert_eq!(gotify.len(), 4);
            assert_eq!(gotify[3].header("x-gotify-key"), Some("Gotify-Tok3n"));
            assert_eq!(
                gotify[3].json()["title"],
                "dynhostd: home.example.com recovered"
            );
            assert_eq!(r.received().len(), 12, "nothing else was sent");

            // No token in any log line (the whole stderr, at debug for every module).
            assert!(
                log.contains("notif"),
                "the log says something of notifications:\n{log}"
            );
            for secret in [
                "Tok3n",
                "Ntfy-pa55",
                "dyn-Topic7",
                &base64(b"bob:Ntfy-pa55"),
            ] {
                assert!(!log.contains(secret), "{secret} in the log:\n{log}");
            }
        },
    );
}

/// ddns-go #1338: the alert for a new address was lost because the network was not up yet.
/// Here the receiver refuses connections for the first minute; afterwards it gets every
/// message, once each, in order.
#[test]
fn a_receiver_down_for_the_first_minute_still_gets_every_message() {
    in_netns(
        "a_receiver_down_for_the_first_minute_still_gets_every_message",
        || {
            let s = standin_https();
            let r = Receiver::down(Answer::Status(200));
            let setup = Setup::new();
            let extra = format!("\n[[notify]]\nurl = \"{}\"\n", r.url("/down/Tok3n-down"));
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            ppp0("203.0.113.10", "10.64.0.1");
            let started = Instant::now();
            let agent = setup.start_agent(&[]);
            wait_update(&s, "203.0.113.10");
            s.fail_host(HOME_HOST, Fault::badauth(), None);
            move_wan("203.0.113.10", "203.0.113.11");
            agent.wait_log("stopped after");
            s.clear_faults();
            let (st, out, err) = setup.run(&["retry", HOME_HOST]);
            assert!(st.success(), "{out}{err}");
            wait_update(&s, "203.0.113.11");
            assert!(r.received().is_empty());

            let up = started + Duration::from_secs(60);
            std::thread::sleep(up.saturating_duration_since(Instant::now()));
            r.listen();
            // The back-off reaches about a minute by now: give it a few.
            r.wait("all three", Duration::from_secs(300), |got| got.len() >= 3);
            // A little longer, to see that nothing comes twice.
            std::thread::sleep(Duration::from_secs(3));
            let (_, log) = agent.stop();
            assert_eq!(events(&r.received()), ["updated", "stopped", "recovered"]);
            let ips: Vec<_> = r
                .received()
                .iter()
                .map(|x| x.json()["ip"].clone())
                .collect();
            assert_eq!(ips, ["203.0.113.10", "203.0.113.11", "203.0.113.11"]);
            assert!(!log.contains("given up"), "{log}");
            assert!(!log.contains("Tok3n"), "{log}");
        },
    );
}

/// A receiver that takes the request and never answers holds up nothing: the next address
/// change reaches the stand-in while the first notification is still waiting for its answer.
#[test]
fn a_hanging_receiver_does_not_hold_up_updates() {
    in_netns("a_hanging_receiver_does_not_hold_up_updates", || {
        let s = standin_https();
        let r = Receiver::start(Answer::Hang);
        let setup = Setup::new();
        let extra = format!("\n[[notify]]\nurl = \"{}\"\n", r.url("/hang"));
        setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
        // A notification may wait 30 s for its answer (the shorter of this and 30 s).
        let text = std::fs::read_to_string(setup.config_path()).unwrap();
        std::fs::write(
            setup.config_path(),
            text.replace("\ntimeout = \"3s\"", "\ntimeout = \"60s\""),
        )
        .unwrap();
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        r.wait("the first notification", LONG, |got| got.len() == 1);
        move_wan("203.0.113.10", "203.0.113.11");
        wait_update(&s, "203.0.113.11");
        assert_eq!(
            r.received().len(),
            1,
            "the update went out while the first notification still waited for its answer"
        );
        // And the agent still stops within its grace.
        let (st, log) = agent.stop();
        assert!(st.success(), "{log}");
    });
}

/// A receiver that answers 500 forever: the same message is retried (with back-off), updates go
/// on meanwhile, and the token never shows, not even in the errors.
#[test]
fn a_receiver_answering_500_is_retried_and_never_shows_its_token() {
    in_netns(
        "a_receiver_answering_500_is_retried_and_never_shows_its_token",
        || {
            let s = standin_https();
            let r = Receiver::start(Answer::Status(500));
            let setup = Setup::new();
            let extra = format!(
                "\n[[notify]]\nurl = \"{}\"\nevents = [\"updated\", \"error\", \"stopped\", \"recovered\"]\n",
                r.url("/five/Tok3n-500?key=K3y-500")
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent_env(&[], ALL_DEBUG);
            r.wait("three tries", LONG, |got| got.len() >= 3);
            let tries = r.received();
            assert!(
                tries.iter().all(|t| t.body == tries[0].body),
                "the same message each time"
            );
            move_wan("203.0.113.10", "203.0.113.11");
            wait_update(&s, "203.0.113.11");
            agent.wait_log("not delivered (HTTP 500)");
            let (_, log) = agent.stop();
            for secret in ["Tok3n", "K3y-500"] {
                assert!(!log.contains(secret), "{secret} in the log:\n{log}");
            }
        },
    );
}

/// `[health]` in the Healthchecks style: a GET every interval while all is current, then
/// `POST …/fail` with the reason while the host is stopped.
#[test]
fn health_pings_arrive_every_interval_and_fail_while_a_host_is_stopped() {
    in_netns(
        "health_pings_arrive_every_interval_and_fail_while_a_host_is_stopped",
        || {
            let s = standin_https();
            let r = Receiver::start(Answer::Status(200));
            let setup = Setup::new();
            let extra = format!(
                "\n[health]\nurl = \"{}\"\ninterval = \"1s\"\n",
                r.url("/ping/Hc-uuid-77")
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent_env(&[], ALL_DEBUG);
            wait_update(&s, "203.0.113.10");
            let ok = |got: &[receiver::Received]| {
                got.iter()
                    .filter(|x| x.method == "GET" && x.target == "/ping/Hc-uuid-77")
                    .count()
            };
            r.wait("two pings", LONG, |got| ok(got) >= 2);

            s.fail_host(HOME_HOST, Fault::badauth(), None);
            move_wan("203.0.113.10", "203.0.113.11");
            r.wait("a failure ping", LONG, |got| {
                got.iter()
                    .any(|x| x.method == "POST" && x.target == "/ping/Hc-uuid-77/fail")
            });
            let fail = r.to("/ping/Hc-uuid-77/fail").remove(0);
            assert!(
                fail.body.contains("home.example.com (A) stopped: badauth"),
                "{:?}",
                fail.body
            );
            let (_, log) = agent.stop();
            assert!(!log.contains("Hc-uuid"), "{log}");
        },
    );
}

/// `[health]` in the Uptime Kuma style: the pasted push URL's `status`/`msg` replaced by ours.
#[test]
fn uptime_kuma_pings_say_up_with_the_push_token_kept() {
    in_netns("uptime_kuma_pings_say_up_with_the_push_token_kept", || {
        let s = standin_https();
        let r = Receiver::start(Answer::Status(200));
        let setup = Setup::new();
        let extra = format!(
            "\n[health]\nurl = \"{}\"\ninterval = \"1s\"\nstyle = \"uptime-kuma\"\n",
            r.url("/api/push/KumaT0k?status=up&msg=OK&ping=")
        );
        setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        wait_update(&s, "203.0.113.10");
        r.wait("an up ping", LONG, |got| {
            got.iter()
                .any(|x| x.target == "/api/push/KumaT0k?status=up&msg=OK")
        });
        let (_, log) = agent.stop();
        assert!(!log.contains("KumaT0k"), "{log}");
    });
}

/// `--dry-run` says what it would send and sends nothing; `check` shows targets redacted.
#[test]
fn a_dry_run_logs_the_notification_and_check_redacts_the_url() {
    in_netns(
        "a_dry_run_logs_the_notification_and_check_redacts_the_url",
        || {
            let s = standin_https();
            let r = Receiver::start(Answer::Status(200));
            let setup = Setup::new();
            let extra = format!(
                "\n[[notify]]\nurl = \"ntfy://{}/Dry-Topic?scheme=http\"\n",
                r.host()
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            let (st, out, err) = setup.run(&["check"]);
            assert!(st.success(), "{err}");
            assert!(
                out.contains(&format!("url = \"ntfy://{}/***\"", r.host())),
                "{out}"
            );
            assert!(
                !out.contains("Dry-Topic") && !err.contains("Dry-Topic"),
                "{out}{err}"
            );

            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&["--dry-run"]);
            agent.wait_log("dry run: would notify updated");
            let (_, log) = agent.stop();
            assert!(r.received().is_empty(), "{:?}", r.received());
            assert!(s.request_count() == 0);
            assert!(!log.contains("Dry-Topic"), "{log}");
        },
    );
}
