//! Reliability and security of the built `dynhostd` binary, black box (issue 4, items 1, 3, 6):
//! the provider's rules (minimum interval between updates, back-off and a server's Retry-After,
//! all surviving a restart; refresh settings), signals (SIGHUP reload, SIGUSR1 check-now) and
//! secrets (password_file, password_env, systemd credentials, the readable-config warning, and
//! no secret in any output of a full run at trace level).
//!
//! Real kernel devices in a fresh user+network namespace, the local DynHost stand-in over HTTPS
//! with a test CA, what's-my-IP stand-ins for NAT. Waits have generous deadlines that only bound
//! a hang, and wait for events (the agent settling, a log line, a request at the stand-in, the
//! state file). Nothing asserts how long the test took: a rule about time is checked by what the
//! agent did, a request that must not come *before* its time is a lower bound on when the
//! stand-in saw it, which load can't make fail.

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
use standin::{Fault, Standin, StandinConfig};
use std::time::Duration;

/// Moves ppp0 (made by `ppp0`) from `old` to `new`. The old one goes first: both share the
/// peer's prefix, so the new one would be a secondary that the kernel deletes with the primary.
fn readdress(old: &str, new: &str) {
    sh(&format!(
        "ip addr del {old} peer 10.64.0.1 dev ppp0 && ip addr add {new} peer 10.64.0.1 dev ppp0"
    ));
}

/// Checks that every request in the agent's log carried the WAN address it had last logged
/// (`WAN address is …`) when it started it (`sending <old> → <new>`): what it sent is what it
/// knew, however the test's changes fell in time. Returns the addresses sent, in order.
fn sent_what_it_knew(log: &str) -> Vec<String> {
    let mut latest: Option<&str> = None;
    let mut sent = Vec::new();
    for line in log.lines() {
        if let Some(ip) = line
            .split("WAN address is ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
        {
            latest = Some(ip);
        }
        if line.contains("DEBUG") && line.contains("sending ") {
            let Some(new) = line
                .split(" → ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            else {
                continue;
            };
            assert_eq!(
                Some(new),
                latest,
                "sent {new}, but the WAN address it knew was {latest:?}:\n{log}"
            );
            sent.push(new.to_string());
        }
    }
    sent
}

/// The `next try in Ns` of the agent's log lines about `record`.
fn next_tries(log: &str, record: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(&format!("update of {record} ")))
        .filter_map(|l| l.split("next try in ").nth(1))
        .map(|rest| {
            // Logged with a tenth of a second (`12.0s`); whole seconds are enough here.
            rest.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<f64>()
                .map(|secs| secs as u64)
                .unwrap_or_else(|_| panic!("unparsable delay in {rest:?}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The provider's rules

/// `[update] min_interval`: a change soon after a success waits for the interval (only the latest
/// address is then sent), and the interval survives a restart.
#[test]
fn min_interval_holds_changes_and_survives_a_restart() {
    in_netns("min_interval_holds_changes_and_survives_a_restart", || {
        const MIN: Duration = Duration::from_secs(8);
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[HOME],
            "\n[update]\nmin_interval = \"8s\"\n",
        );
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        let first = s.wait_for_requests_blocking(1, LONG).unwrap()[0].clone();
        assert_eq!(first.param("myip"), Some("203.0.113.10"));
        agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");

        // Two changes, each settled on, inside the interval: nothing goes out yet. (Whether
        // they really were inside it is read from the agent's log below, not from a clock.)
        let mark = agent.mark();
        readdress("203.0.113.10", "203.0.113.11");
        agent.wait_log("WAN address is 203.0.113.11");
        agent.wait_settled(mark);
        let mark = agent.mark();
        readdress("203.0.113.11", "203.0.113.12");
        agent.wait_log("WAN address is 203.0.113.12");
        agent.wait_settled(mark);

        // When the interval is over, the latest address the agent knows is sent, and never
        // before: a lower bound on when the stand-in saw it, which load can't break.
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert!(
            reqs[1].at.duration_since(first.at) >= MIN - Duration::from_millis(200),
            "sent {:?} after the previous success, min_interval is {MIN:?}",
            reqs[1].at.duration_since(first.at)
        );
        // The usual case: the agent knew .12 by then, and .11 is never sent. A runner so slow
        // that the second change came after the hold was over sees .11 go out, then .12 after
        // its own interval.
        agent.wait_log("updated home.example.com/A: 203.0.113.10 → ");
        let sent = sent_what_it_knew(&agent.log());
        assert_eq!(reqs[1].param("myip"), Some(sent[1].as_str()));
        if sent[1] == "203.0.113.11" {
            let reqs = s.wait_for_requests_blocking(3, LONG).unwrap();
            assert_eq!(reqs[2].param("myip"), Some("203.0.113.12"));
            assert!(
                reqs[2].at.duration_since(reqs[1].at) >= MIN - Duration::from_millis(200),
                "sent {:?} after the previous success, min_interval is {MIN:?}",
                reqs[2].at.duration_since(reqs[1].at)
            );
        }
        agent.wait_log("→ 203.0.113.12 (");
        let second = s.requests().last().unwrap().clone();
        let sent_before_restart = s.request_count();

        // Restart right after that success, with a new address: still held.
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        readdress("203.0.113.12", "203.0.113.13");
        let agent = setup.start_agent(&[]);
        agent.wait_log("WAN address is 203.0.113.13");
        // Held across the restart: the first request after it keeps the interval from the
        // success before it (a restart that forgot it would send at once).
        let reqs = s
            .wait_for_requests_blocking(sent_before_restart + 1, LONG)
            .unwrap();
        let third = reqs[sent_before_restart].clone();
        assert_eq!(third.param("myip"), Some("203.0.113.13"));
        // The state file keeps the time in whole seconds: allow that much earlier.
        assert!(
            third.at.duration_since(second.at) >= MIN - Duration::from_millis(1200),
            "min_interval forgotten by a restart: sent {:?} after the previous success, \
             min_interval is {MIN:?}",
            third.at.duration_since(second.at)
        );
        agent.wait_log("updated home.example.com/A: 203.0.113.12 → 203.0.113.13");

        // A change and back again inside the interval: nothing to send, then or later.
        let sent = s.request_count();
        readdress("203.0.113.13", "203.0.113.14");
        agent.wait_log("WAN address is 203.0.113.14");
        readdress("203.0.113.14", "203.0.113.13");
        agent.wait_log_count("WAN address is 203.0.113.13", 2);
        // "Later" is when the hold is over: the agent has a timer for it (it held .14). Past
        // that moment, one more settle (a poke) shows what it decided.
        let until = third.at + MIN + Duration::from_secs(2);
        std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()));
        agent.quiet_on("ppp0");
        // What was sent is what the agent knew, and none of it before the interval was over.
        // Usually that is nothing at all: it knew .14 only while the hold was on, and .13 is
        // published. (Only a runner that made the change after the hold was over sees .14 and
        // then .13 go out, each after its own interval.)
        let after = sent_what_it_knew(&agent.log());
        let mut published = "203.0.113.13";
        let mut success_at = third.at;
        for (r, knew) in s.requests()[sent..].iter().zip(&after[1..]) {
            let ip = r.param("myip").unwrap();
            assert_eq!(ip, knew);
            assert_ne!(ip, published, "re-sent: {:?}", updates(&s));
            assert!(
                r.at.duration_since(success_at) >= MIN - Duration::from_millis(200),
                "sent inside min_interval: {:?}",
                updates(&s)
            );
            (published, success_at) = (knew, r.at);
        }
        assert_eq!(
            s.request_count() - sent,
            after.len() - 1,
            "{:?}",
            updates(&s)
        );
        assert!(agent.stop().0.success());
    });
}

/// A 503 or 429 with `Retry-After: N`: the next try is at least N s away (longer than the
/// configured back-off), nothing comes meanwhile, not even across a restart, and then it does.
#[test]
fn retry_after_is_honoured_and_the_wait_survives_a_restart() {
    in_netns(
        "retry_after_is_honoured_and_the_wait_survives_a_restart",
        || {
            const ASKED: u64 = 12;
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config_with(
                &s,
                Some("ppp0"),
                &[HOME, OFFICE],
                "\n[update]\nmin_interval = \"0s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n",
            );
            ppp0("203.0.113.10", "10.64.0.1");
            s.fail_host("home.example.com", Fault::unavailable(ASKED), Some(1));
            s.fail_host(
                "office.example.com",
                Fault::too_many_requests(Some(ASKED)),
                Some(1),
            );
            let agent = setup.start_agent(&[]);
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
            let failed_at = reqs[1].at;
            agent.wait_log("update of home.example.com/A");
            agent.wait_log("update of office.example.com/A");
            let log = agent.log();
            for record in ["home.example.com/A", "office.example.com/A"] {
                let tries = next_tries(&log, record);
                assert_eq!(tries.len(), 1, "{log}");
                assert!(
                    tries[0] >= ASKED,
                    "{record}: next try in {}s although the server asked for {ASKED}s:\n{log}",
                    tries[0]
                );
            }
            // The configured back-off alone (≤ 2.4 s) would retry long before ASKED: the
            // lower bound on the retries below shows it did not.

            // Across a restart: the wait is in the state file and honoured.
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            let st = setup.state();
            for record in ["home.example.com/A", "office.example.com/A"] {
                let rec = &st["records"][record];
                let (attempt, retry) = (
                    rec["last_attempt_at"].as_u64().unwrap(),
                    rec["retry_at"].as_u64().unwrap(),
                );
                assert!(retry >= attempt + ASKED, "{record}: {rec}");
            }
            let agent = setup.start_agent(&[]);
            agent.wait_log("WAN address is 203.0.113.10");

            // Then both go through, and not before the server's time: neither the configured
            // back-off nor the restart (which would send at once if it forgot) brought them
            // earlier. A lower bound on when the stand-in saw them, which load can't break.
            let reqs = s.wait_for_requests_blocking(4, LONG).unwrap();
            for r in &reqs[2..] {
                assert!(r.answer.contains("good 203.0.113.10"), "{}", r.answer);
                // Saved in whole seconds: allow that much earlier.
                assert!(
                    r.at.duration_since(failed_at)
                        >= Duration::from_secs(ASKED - 1) - Duration::from_millis(300),
                    "retried {:?} after the failure (Retry-After forgotten, by the back-off or \
                     by the restart?); the server asked for {ASKED}s",
                    r.at.duration_since(failed_at)
                );
            }
            agent.wait_log("updated home.example.com/A");
            agent.wait_log("updated office.example.com/A");
            assert!(agent.stop().0.success());
        },
    );
}

/// Back-off after server trouble survives a restart (no request before it is over) and then
/// retries on its own; the state file shows when.
#[test]
fn backoff_survives_a_restart_then_retries_by_itself() {
    in_netns("backoff_survives_a_restart_then_retries_by_itself", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[HOME],
            "\n[update]\nmin_interval = \"0s\"\nretry_initial = \"10s\"\nretry_max = \"20s\"\n",
        );
        ppp0("203.0.113.10", "10.64.0.1");
        s.fail_next(1, Fault::status(500));
        let agent = setup.start_agent(&[]);
        let failed_at = s.wait_for_requests_blocking(1, LONG).unwrap()[0].at;
        agent.wait_log("next try in");
        let tries = next_tries(&agent.log(), "home.example.com/A");
        assert_eq!(tries.len(), 1);
        // 10 s ± 20 %.
        assert!((7..=12).contains(&tries[0]), "{tries:?}");
        assert!(agent.stop().0.success());
        let rec = setup.state()["records"]["home.example.com/A"].clone();
        assert_eq!(rec["failures"], 1, "{rec}");
        assert!(
            rec["retry_at"].as_u64().unwrap() >= rec["last_attempt_at"].as_u64().unwrap() + 7,
            "{rec}"
        );
        assert!(rec["published"].is_null(), "{rec}");

        let agent = setup.start_agent(&[]);
        agent.wait_log("WAN address is 203.0.113.10");
        // No address change, no signal: the agent retries when the back-off is over, and not
        // before (a restart that forgot it would send at once): a lower bound on when the
        // stand-in saw the retry, which load can't break.
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert!(
            reqs[1].answer.contains("good 203.0.113.10"),
            "{}",
            reqs[1].answer
        );
        assert!(
            reqs[1].at.duration_since(failed_at) >= Duration::from_secs(6),
            "back-off forgotten by a restart: retried after {:?}",
            reqs[1].at.duration_since(failed_at)
        );
        agent.wait_log("updated home.example.com/A");
        assert!(agent.stop().0.success());
        let rec = setup.state()["records"]["home.example.com/A"].clone();
        assert_eq!(rec["failures"], 0, "{rec}");
        assert!(rec["retry_at"].is_null(), "{rec}");
    });
}

/// `refresh` can't be watched in real time (at least an hour); `check` shows it, "0" turns it
/// off, and anything under an hour is refused with the key and line.
#[test]
fn refresh_is_shown_by_check_zero_turns_it_off_and_short_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let check = |update: &str| {
        std::fs::write(
            &path,
            format!("[wan]\ninterface = \"ppp0\"\n{update}\n[[host]]\n{HOME}\n"),
        )
        .unwrap();
        let out = std::process::Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = check("");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("refresh = \"25d\""), "{out}");
    assert!(out.contains("min_interval = \"30s\""), "{out}");
    let (code, out, err) = check("[update]\nrefresh = \"0\"\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("refresh = \"0s\""), "{out}");
    let (code, out, err) = check("[update]\nrefresh = \"2h\"\nmin_interval = \"1m\"\n");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("refresh = \"2h\""), "{out}");
    assert!(out.contains("min_interval = \"1m\""), "{out}");
    let (code, _, err) = check("[update]\nrefresh = \"30m\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("config.toml:4: update.refresh"), "{err}");
}

/// `refresh` re-sends an unchanged address once it is older than the refresh period. Real time
/// can't wait 25 days, but the state file can say the address was published 26 days ago: the
/// agent then re-sends it once at start; at 24 days, or with `refresh = "0"`, it sends nothing.
#[test]
fn refresh_resends_an_old_unchanged_address_once_and_zero_turns_it_off() {
    in_netns(
        "refresh_resends_an_old_unchanged_address_once_and_zero_turns_it_off",
        || {
            let s = Standin::start_on_thread(
                StandinConfig::https()
                    .account("example.com-home", PASSWORD, "home.example.com")
                    .record_at("home.example.com", "203.0.113.10".parse().unwrap()),
            )
            .unwrap();
            let setup = Setup::new();
            ppp0("203.0.113.10", "10.64.0.1");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let published_days_ago = |days: u64| {
                std::fs::create_dir_all(setup.state_path().parent().unwrap()).unwrap();
                let at = now - days * 86_400;
                std::fs::write(
                    setup.state_path(),
                    format!(
                        r#"{{"version":1,"records":{{"home.example.com/A":{{"published":"203.0.113.10","published_at":{at},"last_reply":"good 203.0.113.10","last_attempt_at":{at},"failures":0}}}}}}"#
                    ),
                )
                .unwrap();
            };
            let refresh =
                |r: &str| format!("\n[update]\nmin_interval = \"0s\"\nrefresh = \"{r}\"\n");

            // 24 days old, refresh 25 days: nothing yet.
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &refresh("25d"));
            published_days_ago(24);
            let agent = setup.start_agent(&[]);
            agent.wait_log("WAN address is 203.0.113.10");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 0, "{:?}", updates(&s));
            assert!(agent.stop().0.success());

            // Refresh off: nothing, however old.
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &refresh("0"));
            published_days_ago(400);
            let agent = setup.start_agent(&[]);
            agent.wait_log("WAN address is 203.0.113.10");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 0, "{:?}", updates(&s));
            assert!(agent.stop().0.success());

            // 26 days old: re-sent once (nochg, without a warning about it).
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &refresh("25d"));
            published_days_ago(26);
            let agent = setup.start_agent(&[]);
            let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
            assert_eq!(reqs[0].param("myip"), Some("203.0.113.10"));
            assert!(reqs[0].answer.contains("nochg"), "{}", reqs[0].answer);
            agent.wait_log("refreshing 203.0.113.10");
            agent.wait_log("updated home.example.com/A");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 1, "{:?}", updates(&s));
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            assert!(!log.contains("should have changed"), "{log}");
            let st = setup.state();
            assert!(
                st["records"]["home.example.com/A"]["published_at"]
                    .as_u64()
                    .unwrap()
                    >= now
            );
            // And the refresh counts from then: a restart sends nothing.
            let agent = setup.start_agent(&[]);
            agent.wait_log("WAN address is 203.0.113.10");
            agent.quiet_on_without_sending("ppp0");
            assert_eq!(s.request_count(), 1, "{:?}", updates(&s));
            assert!(agent.stop().0.success());
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Signals

/// SIGHUP: a host stopped on 401 stays stopped while its entry is the same, and is retried once
/// its password was edited; the other host is not re-sent.
#[test]
fn sighup_retries_a_stopped_host_only_when_its_entry_changed() {
    in_netns(
        "sighup_retries_a_stopped_host_only_when_its_entry_changed",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let bad_home = HOME.replace(PASSWORD, "wrong-password");
            setup.write_config(&s, Some("ppp0"), &[&bad_home, OFFICE]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            agent.wait_log("home.example.com/A stopped after \"401");
            agent.wait_log("updated office.example.com/A");
            assert_eq!(s.request_count(), 2);

            // Same config: reloaded, still stopped. (The reload decides at once; a poke after
            // it makes sure that decision is in the log.)
            let mark = agent.mark();
            agent.signal("HUP");
            agent.wait_log("configuration reloaded");
            agent.quiet_on("ppp0");
            agent.assert_nothing_sent_since(mark);
            assert_eq!(s.request_count(), 2, "{:?}", updates(&s));
            assert!(!agent.log().contains("trying again"), "{}", agent.log());
            // And it stays stopped through a change that the other host follows.
            let mark = agent.mark();
            readdress("203.0.113.10", "203.0.113.11");
            s.wait_for_requests_blocking(3, LONG).unwrap();
            agent.quiet_on("ppp0");
            let sent = agent.sends_since(mark);
            assert!(
                sent.len() == 1 && sent[0].contains("office.example.com/A"),
                "{sent:#?}"
            );
            assert_eq!(
                updates(&s)[2..],
                [("office.example.com".into(), "203.0.113.11".into())]
            );

            // The password edited: retried at once, with the current address.
            setup.write_config(&s, Some("ppp0"), &[HOME, OFFICE]);
            let mark = agent.mark();
            agent.signal("HUP");
            agent.wait_log_count("configuration reloaded", 2);
            let reqs = s.wait_for_requests_blocking(4, LONG).unwrap();
            assert_eq!(reqs[3].param("hostname"), Some("home.example.com"));
            assert!(
                reqs[3].answer.contains("good 203.0.113.11"),
                "{}",
                reqs[3].answer
            );
            agent.wait_log("configuration changed since it was stopped");
            agent.wait_log("updated home.example.com/A: unknown → 203.0.113.11");
            agent.quiet_on("ppp0");
            let sent = agent.sends_since(mark);
            assert!(
                sent.len() == 1 && sent[0].contains("home.example.com/A"),
                "only the fixed host is sent: {sent:#?}"
            );
            assert_eq!(s.request_count(), 4, "{:?}", updates(&s));
            assert!(agent.stop().0.success());
            let (_, out, _) = setup.run(&["status"]);
            assert!(!out.contains("STOPPED"), "{out}");
        },
    );
}

/// SIGHUP in the middle of a flap re-reads the configuration without deciding early (issue 20,
/// item 11): with a long debounce, a move, a reload and another move send nothing; the address
/// the flap ends on is sent once (check-now ends the wait instead of a minute of quiet).
#[test]
fn sighup_during_a_flap_does_not_publish_the_middle_of_it() {
    in_netns(
        "sighup_during_a_flap_does_not_publish_the_middle_of_it",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config_full(Some("ppp0"), "60s", "", "", &[host_on(&s, HOME)]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();
            agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");

            readdress("203.0.113.10", "203.0.113.11");
            agent.wait_log("WAN changed: deciding after");
            agent.signal("HUP");
            agent.wait_log("configuration reloaded");
            readdress("203.0.113.11", "203.0.113.12");
            // The agent has taken the last move in once its live status shows it (the reload is
            // handled in full before the next request is answered).
            netns::wait_for("the agent to see 203.0.113.12", LONG, || {
                setup.run(&["status"]).1.contains("203.0.113.12")
            });
            agent.signal("USR1");
            agent.wait_log("SIGUSR1: checking everything now");
            agent.wait_log("→ 203.0.113.12");
            agent.quiet_on("ppp0");
            assert_eq!(
                updates(&s),
                [
                    ("home.example.com".into(), "203.0.113.10".into()),
                    ("home.example.com".into(), "203.0.113.12".into())
                ],
                "{}",
                agent.log()
            );
            assert!(agent.stop().0.success());
        },
    );
}

/// Opens a [`held_relay`]'s gate: replies held back go on, later ones pass at once.
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }

    /// Waits until the gate is open (bounded: a test that never opens it hangs no longer).
    fn wait(&self) {
        let (lock, cvar) = &*self.0;
        let open = cvar
            .wait_timeout_while(lock.lock().unwrap(), LONG, |open| !*open)
            .unwrap()
            .0;
        assert!(*open, "the relay's gate was never opened");
    }
}

/// A TCP relay on 127.0.0.1 to `to` that holds every reply back until the returned gate is
/// opened (plain HTTP: the first bytes back are the reply), so a reload lands while a request
/// is out however slow the machine is.
fn held_relay(to: std::net::SocketAddr) -> (u16, Gate) {
    use std::net::{Shutdown, TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let gate = Gate::default();
    let held = gate.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let held = held.clone();
            std::thread::spawn(move || {
                let Ok(server) = TcpStream::connect(to) else {
                    return;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(Shutdown::Write);
                });
                let (mut s_in, mut c_out) = (server, client);
                let mut buf = [0u8; 4096];
                let mut first = true;
                loop {
                    use std::io::{Read, Write};
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if first {
                        held.wait();
                        first = false;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c_out.shutdown(Shutdown::Write);
            });
        }
    });
    (port, gate)
}

/// A 401 to a request sent with the old password, arriving after a reload that fixed the
/// password, is about the old entry: the fixed entry must still be tried.
#[test]
fn a_stop_for_a_request_sent_before_a_reload_does_not_stop_the_fixed_entry() {
    in_netns(
        "a_stop_for_a_request_sent_before_a_reload_does_not_stop_the_fixed_entry",
        || {
            const NEW_PW: &str = "New-pw-after-change-41";
            let s = Standin::start_on_thread(
                StandinConfig::http()
                    .account("example.com-home", NEW_PW, "home.example.com")
                    .record("home.example.com"),
            )
            .unwrap();
            let (port, gate) = held_relay(s.addr());
            let setup = Setup::new();
            let write = |pw: &str| {
                setup.write_config_full(
                    Some("ppp0"),
                    "300ms",
                    "",
                    "",
                    &[format!(
                        "{}\nserver = \"http://127.0.0.1:{port}/nic/update\"",
                        HOME.replace(PASSWORD, pw)
                    )],
                );
                let text = std::fs::read_to_string(setup.config_path()).unwrap();
                std::fs::write(
                    setup.config_path(),
                    text.replace("timeout = \"3s\"", "timeout = \"15s\""),
                )
                .unwrap();
            };
            // The password was changed at the provider; the config still has the old one.
            write(PASSWORD);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
            assert!(reqs[0].answer.starts_with("401"), "{}", reqs[0].answer);
            // While that 401 is on its way back, the user fixes the password and reloads.
            write(NEW_PW);
            agent.signal("HUP");
            agent.wait_log("configuration reloaded");
            // Only now does the 401 come back.
            gate.open();
            // The late 401 is recognised as being about the old entry: no stop.
            agent.wait_log("\"401 unauthorized\" answered a request sent with the entry as it was before the reload");
            assert!(!agent.log().contains("stopped after"), "{}", agent.log());
            // The fixed entry is tried.
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap_or_else(|r| {
                panic!(
                    "the fixed entry was never tried: {:?}\n{}",
                    r.iter().map(|r| &r.answer).collect::<Vec<_>>(),
                    agent.log()
                )
            });
            assert!(
                reqs[1].answer.contains("good 203.0.113.10"),
                "{}",
                reqs[1].answer
            );
            agent.wait_log("updated home.example.com/A");
            assert!(agent.stop().0.success());
            let (_, out, _) = setup.run(&["status"]);
            assert!(!out.contains("STOPPED"), "{out}");
        },
    );
}

/// The password kept in a password_file: a host stopped on 401 is retried after the file is
/// fixed and SIGHUP sent (the config file itself unchanged).
#[test]
fn sighup_after_fixing_a_password_file_retries_the_stopped_host() {
    in_netns(
        "sighup_after_fixing_a_password_file_retries_the_stopped_host",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let pw = setup.dir.path().join("home.pw");
            std::fs::write(&pw, "Wrong-file-password\n").unwrap();
            setup.write_config_full(
                Some("ppp0"),
                "300ms",
                "",
                "",
                &[host_on(
                    &s,
                    "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword_file = \"home.pw\"",
                )],
            );
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            agent.wait_log("home.example.com/A stopped after \"401");
            std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
            agent.signal("HUP");
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
            assert!(
                reqs[1].answer.contains("good 203.0.113.10"),
                "{}",
                reqs[1].answer
            );
            agent.wait_log("updated home.example.com/A");
            assert!(agent.stop().0.success());
        },
    );
}

/// SIGHUP with a config that fails validation (or fails to load its CA) keeps the running one,
/// with an error logged, and the agent still follows the WAN; a host added by a reload is
/// updated.
#[test]
fn sighup_with_a_bad_config_keeps_running_and_a_new_host_is_updated() {
    in_netns(
        "sighup_with_a_bad_config_keeps_running_and_a_new_host_is_updated",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            let good = std::fs::read_to_string(setup.config_path()).unwrap();
            ppp0("203.0.113.10", "10.64.0.1");
            let mut agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();

            std::fs::write(
                setup.config_path(),
                good.replace("debounce = ", "debounce = \"soon\"\n#"),
            )
            .unwrap();
            agent.signal("HUP");
            agent.wait_log("reload failed, keeping the running configuration");
            assert!(agent.log().contains("wan.debounce"), "{}", agent.log());
            // Valid TOML, but a CA file that isn't there.
            std::fs::write(
                setup.config_path(),
                good.replace("ca_file = \"", "ca_file = \"/nonexistent"),
            )
            .unwrap();
            agent.signal("HUP");
            agent.wait_log_count("reload failed, keeping the running configuration", 2);
            assert!(agent.running(), "{}", agent.log());

            // Still following the WAN, with the old config.
            readdress("203.0.113.10", "203.0.113.11");
            let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
            assert_eq!(reqs[1].param("myip"), Some("203.0.113.11"));
            assert!(reqs[1].answer.starts_with("200 good"), "{}", reqs[1].answer);

            // A new host by reload: updated with the current address; the old one isn't re-sent.
            setup.write_config(&s, Some("ppp0"), &[HOME, OFFICE]);
            let mark = agent.mark();
            agent.signal("HUP");
            let reqs = s.wait_for_requests_blocking(3, LONG).unwrap();
            assert_eq!(reqs[2].param("hostname"), Some("office.example.com"));
            assert!(
                reqs[2].answer.contains("good 203.0.113.11"),
                "{}",
                reqs[2].answer
            );
            agent.wait_log("updated office.example.com/A");
            agent.quiet_on("ppp0");
            let sent = agent.sends_since(mark);
            assert!(
                sent.len() == 1 && sent[0].contains("office.example.com/A"),
                "the old host was re-sent: {sent:#?}"
            );
            assert_eq!(s.request_count(), 3, "{:?}", updates(&s));
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// SIGUSR1 says so and, with nothing changed, sends nothing; behind NAT it makes the
/// what's-my-IP sources be asked again long before their interval, and a new public address
/// found that way is published.
#[test]
fn sigusr1_checks_now_and_asks_the_nat_sources_again() {
    in_netns("sigusr1_checks_now_and_asks_the_nat_sources_again", || {
        let s = standin_https();
        let a = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
        let b = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
        let setup = Setup::new();
        setup.write_config_with(
            &s,
            Some("ppp0"),
            &[HOME],
            &format!(
                "\n[detect]\nmode = \"auto\"\nipv4 = [\"{}\", \"{}\"]\nipv6 = []\ninterval = \"10m\"\ntimeout = \"2s\"\n",
                a.url("127.0.0.1"),
                b.url("127.0.0.1")
            ),
        );
        // Routable first: SIGUSR1 looks again and finds nothing to do.
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        agent.wait_log("updated home.example.com/A");
        let mark = agent.mark();
        agent.signal("USR1");
        agent.wait_log("SIGUSR1: checking everything now");
        // SIGUSR1 decides at once; a poke after it makes sure that decision is in the log
        // (a routable WAN: the poke asks no source either).
        agent.quiet_on("ppp0");
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 1, "{:?}", updates(&s));
        assert_eq!(
            a.count() + b.count(),
            0,
            "sources asked with a routable WAN"
        );

        // Behind CGNAT: the sources find the public address.
        readdress("203.0.113.10", "100.64.1.2");
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert_eq!(reqs[1].param("myip"), Some("203.0.113.80"));
        agent.wait_log("public address is 203.0.113.80 (HTTP detection)");
        let asked = a.count();
        assert!(asked >= 1);
        // The interval is 10 minutes: only SIGUSR1 can make them be asked again now.
        let rounds = agent.log_count("HTTP detection: ");
        let mark = agent.mark();
        agent.signal("USR1");
        agent.wait_log_count("SIGUSR1: checking everything now", 2);
        assert!(
            a.wait_for(asked + 1, LONG),
            "SIGUSR1 did not ask the sources again"
        );
        // The round is over when the detector says what it found (the agent decides on that
        // next; a request from that decision would show in the next step as an unexpected
        // 203.0.113.80).
        agent.wait_log_count("HTTP detection: ", rounds + 1);
        agent.assert_nothing_sent_since(mark);
        assert_eq!(s.request_count(), 2, "same public address: nothing to send");
        // A new public address: found and published on SIGUSR1. (A SIGUSR1 that lands before
        // the agent has taken the last round's answer starts no new round: send it again
        // until the sources are asked.)
        a.set(Answer::Body("203.0.113.81\n".into()));
        b.set(Answer::Body("203.0.113.81\n".into()));
        let asked = a.count();
        netns::wait_for("SIGUSR1 to ask the sources again", LONG, || {
            agent.signal("USR1");
            a.wait_for(asked + 1, Duration::from_millis(500))
        });
        let reqs = s.wait_for_requests_blocking(3, LONG).unwrap();
        assert_eq!(reqs[2].param("myip"), Some("203.0.113.81"));
        agent.wait_log("updated home.example.com/A: 203.0.113.80 → 203.0.113.81");
        assert!(agent.stop().0.success());
    });
}

// ---------------------------------------------------------------------------------------------
// 6. Secrets

const FILE_PW: &str = "File-pw-3c41d9e2";
const ENV_PW: &str = "Env-pw-8b02f7aa";
const CRED_PW: &str = "Cred-pw-51e6c0b3";

fn three_account_standin() -> Standin {
    Standin::start_on_thread(
        StandinConfig::https()
            .account("example.com-home", FILE_PW, "home.example.com")
            .account("example.com-office", ENV_PW, "office.example.com")
            .account("example.com-lab", CRED_PW, "lab.example.com")
            .record("home.example.com")
            .record("office.example.com")
            .record("lab.example.com"),
    )
    .unwrap()
}

/// The three hosts of `three_account_standin`, their passwords from a file (relative to the
/// config), an environment variable and a systemd credential. Returns the credentials dir.
fn three_secret_hosts(setup: &Setup, s: &Standin) -> (Vec<String>, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let pw = setup.dir.path().join("home.pw");
    std::fs::write(&pw, format!("{FILE_PW}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let creds = setup.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("dynhost-lab"), CRED_PW).unwrap();
    let hosts = vec![
        host_on(
            s,
            "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword_file = \"home.pw\"",
        ),
        host_on(
            s,
            "hostname = \"office.example.com\"\nlogin = \"example.com-office\"\npassword_env = \"DYNHOSTD_TEST_OFFICE_PW\"",
        ),
        host_on(
            s,
            "hostname = \"lab.example.com\"\nlogin = \"example.com-lab\"\npassword_credential = \"dynhost-lab\"",
        ),
    ];
    (hosts, creds)
}

/// password_file, password_env and password_credential each authenticate, in `update` and in
/// the agent; a missing variable or credential is a config error naming the key.
#[test]
fn passwords_from_a_file_the_environment_and_a_credential_authenticate() {
    in_netns(
        "passwords_from_a_file_the_environment_and_a_credential_authenticate",
        || {
            let s = three_account_standin();
            let setup = Setup::new();
            let (hosts, creds) = three_secret_hosts(&setup, &s);
            setup.write_config_full(Some("ppp0"), "300ms", "", "", &hosts);
            ppp0("203.0.113.10", "10.64.0.1");
            let creds = creds.to_str().unwrap();
            let env = [
                ("DYNHOSTD_TEST_OFFICE_PW", ENV_PW),
                ("CREDENTIALS_DIRECTORY", creds),
            ];

            // Without the variable, or without the credentials directory: config errors.
            let (status, _, err) = setup.run_env(&["check"], &env[1..]);
            assert_eq!(status.code(), Some(2), "{err}");
            assert!(err.contains("password_env"), "{err}");
            assert!(err.contains("DYNHOSTD_TEST_OFFICE_PW"), "{err}");
            let (status, _, err) = setup.run_env(&["check"], &env[..1]);
            assert_eq!(status.code(), Some(2), "{err}");
            assert!(err.contains("password_credential"), "{err}");
            assert_eq!(s.request_count(), 0);

            let (status, _, err) = setup.run_env(&["update"], &env);
            assert!(status.success(), "{err}");
            let reqs = s.requests();
            assert_eq!(reqs.len(), 3, "{:?}", updates(&s));
            for r in &reqs {
                let host = r.param("hostname").unwrap();
                let login = format!("example.com-{}", host.split('.').next().unwrap());
                assert_eq!(r.login.as_deref(), Some(login.as_str()));
                assert!(
                    r.answer.contains("good 203.0.113.10"),
                    "{host}: {}",
                    r.answer
                );
            }

            // The agent too, after a change.
            let agent = setup.start_agent_env(&[], &env);
            readdress("203.0.113.10", "203.0.113.11");
            let reqs = s.wait_for_requests_blocking(6, LONG).unwrap();
            for r in &reqs[3..] {
                assert!(r.answer.contains("good 203.0.113.11"), "{}", r.answer);
            }
            assert!(agent.stop().0.success());
        },
    );
}

/// An inline password in a config readable by group or others draws a warning that names
/// chmod; 0600, or secrets kept out of the file, draw none.
#[test]
fn a_readable_config_with_an_inline_password_is_warned_about() {
    let setup = Setup::new();
    let s_url = "https://127.0.0.1:9/nic/update";
    let inline = format!("{HOME}\nserver = \"{s_url}\"");
    let pw = setup.dir.path().join("home.pw");
    std::fs::write(&pw, "Some-file-pw\n").unwrap();
    let from_file = format!(
        "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword_file = \"home.pw\"\nserver = \"{s_url}\""
    );
    let inline_office = format!("{OFFICE}\nserver = \"{s_url}\"");
    let from_env = format!(
        "hostname = \"office.example.com\"\nlogin = \"example.com-office\"\npassword_env = \"DYNHOSTD_TEST_PW\"\nserver = \"{s_url}\""
    );
    let env = [("DYNHOSTD_TEST_PW", "Env-pw-x")];
    let warned = |mode: u32| {
        setup.set_config_mode(mode);
        let mut warnings = Vec::new();
        for args in [&["check"][..], &["status"]] {
            let (status, _, err) = setup.run_env(args, &env);
            assert!(status.success(), "{args:?}: {err}");
            warnings.push(err.contains("chmod") || err.contains("readable by group or others"));
            if err.contains("readable") {
                assert!(err.contains("chmod"), "the warning names the fix: {err}");
            }
        }
        assert_eq!(warnings[0], warnings[1], "check and status agree");
        warnings[0]
    };
    setup.write_config_full(Some("ppp0"), "1s", "", "", std::slice::from_ref(&inline));
    assert!(warned(0o644), "inline password at 0644: no warning");
    assert!(warned(0o640), "inline password at 0640: no warning");
    assert!(!warned(0o600), "0600 warned");
    assert!(!warned(0o400), "0400 warned");
    setup.write_config_full(Some("ppp0"), "1s", "", "", &[from_file.clone(), from_env]);
    assert!(!warned(0o644), "no inline password, yet warned");
    setup.write_config_full(Some("ppp0"), "1s", "", "", &[from_file, inline_office]);
    assert!(
        warned(0o604),
        "one inline password among others: no warning"
    );
}

/// Everything a user can make dynhostd print, at trace level: an agent with good updates, a 401
/// stop, a 500 retry, a TLS failure, a reload, NAT detection and SIGUSR1; a dry run; check,
/// status, status --json, update (plain, forced, dry), detect; config errors. No line holds a
/// password, a Basic credential or an Authorization header.
#[test]
fn no_secret_in_any_output_of_a_full_run_at_trace_level() {
    in_netns(
        "no_secret_in_any_output_of_a_full_run_at_trace_level",
        || {
            const WRONG_PW: &str = "Wrong-pw-6a7d21f0";
            const FIXED_PW: &str = "Fixed-pw-e09b4c3a";
            const TLS_PW: &str = "Tls-pw-77c2a9d4";
            let s = three_account_standin();
            s.add_account("example.com-nat", PASSWORD, "nat.example.com");
            s.set_record("nat.example.com", Default::default());
            // A server whose certificate names someone else.
            let wrong_name = Standin::start_on_thread(
                StandinConfig::https_for(&["wrong.example"])
                    .account("example.com-tls", TLS_PW, "tls.example.com")
                    .record("tls.example.com"),
            )
            .unwrap();
            let src1 = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
            let src2 = IpSource::start(Answer::Body("203.0.113.80\n".into()), false);
            let setup = Setup::new();
            let (mut hosts, creds) = three_secret_hosts(&setup, &s);
            let creds = creds.to_str().unwrap().to_string();
            let env = [
                ("DYNHOSTD_TEST_OFFICE_PW", ENV_PW),
                ("CREDENTIALS_DIRECTORY", creds.as_str()),
            ];
            let nat_host = |pw: &str| {
                host_on(
                    &s,
                    &format!(
                        "hostname = \"nat.example.com\"\nlogin = \"example.com-nat\"\npassword = \"{pw}\""
                    ),
                )
            };
            hosts.push(nat_host(WRONG_PW));
            hosts.push(host_on(
            &wrong_name,
            &format!(
                "hostname = \"tls.example.com\"\nlogin = \"example.com-tls\"\npassword = \"{TLS_PW}\""
            ),
        ));
            let extra = format!(
                "\n[update]\nmin_interval = \"0s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n\n[detect]\nipv4 = [\"{}\", \"{}\"]\nipv6 = []\ninterval = \"1s\"\ntimeout = \"2s\"\n",
                src1.url("127.0.0.1"),
                src2.url("127.0.0.1")
            );
            let write = |hosts: &[String]| {
                setup.write_config_full(Some("ppp0"), "300ms", "", &extra, hosts);
                setup.set_config_mode(0o600);
            };
            write(&hosts);
            ppp0("203.0.113.10", "10.64.0.1");
            s.fail_host("lab.example.com", Fault::status(500), Some(1));

            let mut outputs: Vec<(String, String)> = Vec::new();
            let agent = setup.start_agent_env(&["-vv"], &env);
            agent.wait_log("nat.example.com/A stopped after \"401");
            agent.wait_log("updated home.example.com/A");
            agent.wait_log("updated office.example.com/A");
            agent.wait_log("update of lab.example.com/A to 203.0.113.10 failed (500");
            agent.wait_log("updated lab.example.com/A"); // the retry
            agent.wait_log("update of tls.example.com/A to 203.0.113.10 failed (tls");
            // A reload that fixes the 401.
            s.add_account("example.com-nat", FIXED_PW, "nat.example.com");
            hosts[3] = nat_host(FIXED_PW);
            write(&hosts);
            agent.signal("HUP");
            agent.wait_log("updated nat.example.com/A");
            // Behind NAT: detection, then publication of what the sources say.
            readdress("203.0.113.10", "100.64.1.2");
            agent.wait_log("public address is 203.0.113.80 (HTTP detection)");
            agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.80");
            agent.signal("USR1");
            agent.wait_log("SIGUSR1: checking everything now");
            // A reload that fails.
            std::fs::write(
                setup.config_path(),
                std::fs::read_to_string(setup.config_path())
                    .unwrap()
                    .replace("debounce = ", "debounce = \"x\"\n#"),
            )
            .unwrap();
            agent.signal("HUP");
            agent.wait_log("reload failed");
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            assert!(log.contains("TRACE"), "really at trace level");
            outputs.push(("run -vv".into(), log));
            write(&hosts);

            // A dry run at trace level.
            readdress("100.64.1.2", "203.0.113.12");
            let agent = setup.start_agent_env(&["--dry-run", "-vv"], &env);
            agent.wait_log("dry run: would send");
            outputs.push(("run --dry-run -vv".into(), agent.stop().1));

            // Every other command, at trace level where it logs.
            for args in [
                &["check", "-vv"][..],
                &["status", "-vv"],
                &["status", "--json"],
                &["update", "-vv"],
                &["update", "--force", "-vv"],
                &["update", "--dry-run", "--force", "-vv"],
                &["update", "--ip", "203.0.113.44", "-vv"],
                &["detect", "-vv"],
                &["detect", "--json", "--http", "-vv"],
            ] {
                let (_, out, err) = setup.run_env(args, &env);
                outputs.push((format!("{args:?} stdout"), out));
                outputs.push((format!("{args:?} stderr"), err));
            }
            // All-crates tracing by the environment rather than -vv.
            let (_, out, err) = setup.run_env(
                &["update", "--force"],
                &[env[0], env[1], ("DYNHOSTD_LOG", "trace")],
            );
            assert!(err.contains("TRACE"), "{err}");
            outputs.push(("DYNHOSTD_LOG=trace update".into(), format!("{out}{err}")));

            // Config errors around a password: a control character, two sources, a syntax error
            // inside the string, a bad neighbour key.
            let mut secrets = vec![
                PASSWORD.to_string(),
                FILE_PW.into(),
                ENV_PW.into(),
                CRED_PW.into(),
                WRONG_PW.into(),
                FIXED_PW.into(),
                TLS_PW.into(),
            ];
            let good_text = std::fs::read_to_string(setup.config_path()).unwrap();
            for (n, broken) in [
                ("Ctl-pw-0f1e2d3c", "password = \"Ctl-pw-0f1e2d3c\\u0007\""),
                (
                    "Two-pw-4b5a6978",
                    "password = \"Two-pw-4b5a6978\"\npassword_file = \"home.pw\"",
                ),
                ("Syntax-pw-9a8b7c6d", "password = \"Syntax-pw-9a8b7c6d"),
                (
                    "Typo-pw-1d2c3b4a",
                    "password = \"Typo-pw-1d2c3b4a\"\nfamily = \"ipv5\"",
                ),
            ] {
                secrets.push(n.to_string());
                std::fs::write(
                setup.config_path(),
                format!(
                    "{good_text}\n[[host]]\nlogin = \"example.com-x\"\nhostname = \"x.example.com\"\n{broken}\n"
                ),
            )
            .unwrap();
                for args in [&["check", "-vv"][..], &["run", "-vv"], &["update", "-vv"]] {
                    let (status, out, err) = setup.run_env(args, &env);
                    assert_eq!(
                        status.code(),
                        Some(2),
                        "{broken}: {args:?} accepted it: {err}"
                    );
                    outputs.push((format!("{args:?} with {broken:?}"), format!("{out}{err}")));
                }
            }

            let logins = [
                ("example.com-home", FILE_PW),
                ("example.com-office", ENV_PW),
                ("example.com-lab", CRED_PW),
                ("example.com-nat", WRONG_PW),
                ("example.com-nat", FIXED_PW),
                ("example.com-tls", TLS_PW),
            ];
            let mut needles = secrets.clone();
            for (login, pw) in logins {
                let b = base64(format!("{login}:{pw}").as_bytes());
                // Also without padding, as some encoders print it.
                needles.push(b.trim_end_matches('=').to_string());
            }
            let mut lines = 0;
            for (what, text) in &outputs {
                for line in text.lines() {
                    lines += 1;
                    for needle in &needles {
                        assert!(
                            !line.contains(needle.as_str()),
                            "secret {needle:?} leaked by {what}:\n{line}"
                        );
                    }
                    let l = line.to_ascii_lowercase();
                    assert!(
                        !l.contains("authorization: basic") && !l.contains("\"authorization\""),
                        "an Authorization header in the output of {what}:\n{line}"
                    );
                    assert!(
                        !(l.contains("authorization") && l.contains("basic ")),
                        "an Authorization header in the output of {what}:\n{line}"
                    );
                }
            }
            assert!(lines > 200, "suspiciously little output: {lines} lines");
            // The TLS failure really was refused, not worked around.
            assert_eq!(wrong_name.request_count(), 0);
        },
    );
}
