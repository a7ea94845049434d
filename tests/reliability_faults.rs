//! Server faults, black box (issue 4, item 8): for each fault of the local DynHost stand-in (500,
//! a hang past `[http] timeout`, a connection reset, TLS with the wrong name or an unknown CA,
//! 401, nohost, abuse), two hosts of which one is hit: the right reaction (retried with back-off,
//! or stopped with `dynhostd status` saying why), the other host updated as if nothing happened,
//! and recovery once the fault ends (for a stop: once the entry is fixed and SIGHUP sent).
//!
//! Real kernel devices in a fresh user+network namespace, the built binary, the stand-in over
//! HTTPS with a test CA. TLS faults go through a small switchable TCP relay, so the fault can
//! end without touching the config; the relay also sees the first byte of every connection,
//! which shows that no plain-HTTP fallback was ever tried. Deadlines only bound hangs; the only
//! timing assertion is a lower bound (retries are not closer than the back-off allows).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh};
use standin::{Fault, LoggedRequest, Standin, StandinConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The least gap between two attempts that 1 s − 20 % jitter allows, less a little slack.
const MIN_GAP: Duration = Duration::from_millis(700);

fn readdress(old: &str, new: &str) {
    sh(&format!(
        "ip addr del {old} peer 10.64.0.1 dev ppp0 && ip addr add {new} peer 10.64.0.1 dev ppp0"
    ));
}

fn requests_for(s: &Standin, hostname: &str) -> Vec<LoggedRequest> {
    s.requests()
        .into_iter()
        .filter(|r| r.param("hostname") == Some(hostname))
        .collect()
}

/// Waits until `s` logged a request for `hostname` that `pred` accepts.
fn wait_request(
    s: &Standin,
    hostname: &str,
    what: &str,
    pred: impl Fn(&LoggedRequest) -> bool,
) -> LoggedRequest {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(r) = requests_for(s, hostname).into_iter().find(|r| pred(r)) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no request for {hostname} {what}; got {:?}",
            updates(s)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_row<'a>(rows: &'a serde_json::Value, hostname: &str) -> &'a serde_json::Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["hostname"] == hostname)
        .unwrap_or_else(|| panic!("no {hostname} in {rows}"))
}

fn status_json(setup: &Setup) -> serde_json::Value {
    let (status, out, err) = setup.run(&["status", "--json"]);
    assert!(status.success(), "{err}");
    serde_json::from_str(&out).unwrap()
}

/// The `status` table line of `hostname`.
fn status_line(setup: &Setup, hostname: &str) -> String {
    let (status, out, err) = setup.run(&["status"]);
    assert!(status.success(), "{err}");
    out.lines()
        .find(|l| l.starts_with(hostname))
        .unwrap_or_else(|| panic!("no {hostname} in\n{out}"))
        .to_string()
}

/// Consecutive attempts are at least the back-off apart.
fn assert_backed_off(attempts: &[Instant], what: &str) {
    for w in attempts.windows(2) {
        let gap = w[1].duration_since(w[0]);
        assert!(
            gap >= MIN_GAP,
            "{what}: two attempts {gap:?} apart, the back-off allows no less than ~800 ms"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Faults that are retried

/// The home host meets `fault` at `s` for as long as it lasts; `summary` is how the agent's log
/// names it. Checks: retried with back-off, never stopped, the office host unaffected (also
/// through a change), recovery at the first retry after the fault is cleared.
fn retried_until_the_fault_ends(fault: Fault, summary: &str) {
    let s = standin_https();
    let setup = Setup::new();
    setup.write_config_with(&s, Some("ppp0"), &[HOME, OFFICE], FAST_RETRY);
    ppp0("203.0.113.10", "10.64.0.1");
    s.fail_host(HOME_HOST, fault, None);
    let agent = setup.start_agent(&[]);
    agent.wait_log("updated office.example.com/A: unknown → 203.0.113.10");
    let failed = format!("update of home.example.com/A to 203.0.113.10 failed ({summary}");
    agent.wait_log(&failed);
    agent.wait_log("attempt 2, next try in");
    let log = agent.log();
    println!("{}", log.lines().find(|l| l.contains(&failed)).unwrap());

    // The other host follows a change while the first one keeps failing.
    readdress("203.0.113.10", "203.0.113.11");
    wait_request(&s, OFFICE_HOST, "with 203.0.113.11", |r| {
        r.param("myip") == Some("203.0.113.11") && r.answer.contains("good 203.0.113.11")
    });
    wait_request(&s, HOME_HOST, "retrying with 203.0.113.11", |r| {
        r.param("myip") == Some("203.0.113.11")
    });
    agent.wait_log(&format!(
        "update of home.example.com/A to 203.0.113.11 failed ({summary}"
    ));
    let attempts: Vec<Instant> = requests_for(&s, HOME_HOST).iter().map(|r| r.at).collect();
    assert!(attempts.len() >= 3, "{:?}", updates(&s));
    assert_backed_off(&attempts, summary);
    assert!(!agent.log().contains("stopped after"), "{}", agent.log());

    // `status`: retrying, not stopped; the other host ok.
    let rows = status_json(&setup);
    let home = status_row(&rows, HOME_HOST);
    assert!(home["stopped"].is_null(), "{home}");
    assert!(home["failures"].as_u64().unwrap() >= 1, "{home}");
    assert!(
        home["last_reply"].as_str().unwrap().starts_with(summary),
        "{home}"
    );
    assert_eq!(status_row(&rows, OFFICE_HOST)["published"], "203.0.113.11");
    let line = status_line(&setup, HOME_HOST);
    assert!(line.contains("retrying at"), "{line}");

    // The fault ends: the next retry goes through, and then nothing more is sent.
    s.clear_faults();
    let ok = wait_request(&s, HOME_HOST, "answered good", |r| {
        r.answer.contains("good 203.0.113.11")
    });
    agent.wait_log("updated home.example.com/A: unknown → 203.0.113.11");
    let mark = agent.mark();
    // The agent's own plan, saved: published, no failure, no retry left to come.
    setup.wait_state("home published with no retry planned", |st| {
        let rec = &st["records"]["home.example.com/A"];
        rec["published"] == "203.0.113.11" && rec["failures"] == 0 && rec["retry_at"].is_null()
    });
    // And deciding again (after a poke of the WAN) sends nothing.
    agent.quiet_on("ppp0");
    agent.assert_nothing_sent_since(mark);
    let after: Vec<_> = requests_for(&s, HOME_HOST)
        .into_iter()
        .filter(|r| r.at > ok.at)
        .collect();
    assert!(after.is_empty(), "sent again after recovering: {after:?}");
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let rows = status_json(&setup);
    let home = status_row(&rows, HOME_HOST);
    assert_eq!(home["published"], "203.0.113.11", "{home}");
    assert_eq!(home["failures"], 0, "{home}");
    assert!(home["retry_at"].is_null(), "{home}");
    assert_eq!(status_row(&rows, OFFICE_HOST)["published"], "203.0.113.11");
}

#[test]
fn server_error_500_is_retried_with_backoff_until_it_ends() {
    in_netns(
        "server_error_500_is_retried_with_backoff_until_it_ends",
        || {
            retried_until_the_fault_ends(Fault::status(500), "500");
        },
    );
}

#[test]
fn a_hang_past_the_timeout_is_retried_with_backoff_until_it_ends() {
    in_netns(
        "a_hang_past_the_timeout_is_retried_with_backoff_until_it_ends",
        || {
            // [http] timeout is 3 s in these configs.
            retried_until_the_fault_ends(Fault::hang(), "timeout");
        },
    );
}

#[test]
fn a_connection_reset_is_retried_with_backoff_until_it_ends() {
    in_netns(
        "a_connection_reset_is_retried_with_backoff_until_it_ends",
        || {
            retried_until_the_fault_ends(Fault::reset(), "");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// TLS faults, through a switchable relay

/// A TCP relay on 127.0.0.1 to one backend or another, switchable at any time (new connections
/// go to the new backend). Records the first byte each client sent.
struct Relay {
    port: u16,
    backend: Arc<Mutex<SocketAddr>>,
    first_bytes: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn start(backend: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let backend = Arc::new(Mutex::new(backend));
        let first_bytes = Arc::new(Mutex::new(Vec::new()));
        let (b, f) = (backend.clone(), first_bytes.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let to = *b.lock().unwrap();
                let f = f.clone();
                std::thread::spawn(move || relay(client, to, &f));
            }
        });
        Relay {
            port,
            backend,
            first_bytes,
        }
    }

    fn switch(&self, to: SocketAddr) {
        *self.backend.lock().unwrap() = to;
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/nic/update", self.port)
    }

    fn first_bytes(&self) -> Vec<u8> {
        self.first_bytes.lock().unwrap().clone()
    }
}

fn relay(mut client: TcpStream, to: SocketAddr, first: &Mutex<Vec<u8>>) {
    let Ok(mut server) = TcpStream::connect(to) else {
        return;
    };
    let mut byte = [0u8; 1];
    if client.read_exact(&mut byte).is_err() {
        return;
    }
    first.lock().unwrap().push(byte[0]);
    if server.write_all(&byte).is_err() {
        return;
    }
    let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut s2);
        let _ = s2.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn accounts(c: StandinConfig) -> StandinConfig {
    c.account("example.com-home", PASSWORD, HOME_HOST)
        .account("example.com-office", PASSWORD, OFFICE_HOST)
        .record(HOME_HOST)
        .record(OFFICE_HOST)
}

/// The home host talks through a relay to `bad` (a TLS server it must refuse), trusting
/// `ca_file` (or the system roots only); the office host talks to `good` directly. Checks that
/// home is refused, reported as tls, retried, never worked around, and that office carries on.
fn tls_refused(
    bad: &Standin,
    good: &Standin,
    ca_file: Option<&std::path::Path>,
) -> (Setup, Agent, Relay) {
    let relay = Relay::start(bad.addr());
    let setup = Setup::new();
    let home = |ca: Option<&std::path::Path>| {
        let mut h = format!("{HOME}\nserver = \"{}\"\n", relay.url());
        if let Some(ca) = ca {
            h += &format!("ca_file = \"{}\"\n", ca.display());
        }
        h
    };
    setup.write_config_full(
        Some("ppp0"),
        &format!("{DEBOUNCE_MS}ms"),
        "",
        FAST_RETRY,
        &[home(ca_file), host_on(good, OFFICE)],
    );
    ppp0("203.0.113.10", "10.64.0.1");
    let agent = setup.start_agent(&[]);
    agent.wait_log("updated office.example.com/A: unknown → 203.0.113.10");
    agent.wait_log("update of home.example.com/A to 203.0.113.10 failed (tls");
    agent.wait_log("attempt 3, next try in");
    let log = agent.log();
    assert!(!log.contains("stopped after"), "{log}");
    println!(
        "{}",
        log.lines().find(|l| l.contains("failed (tls")).unwrap()
    );
    // Refused, and never worked around: the bad server never got a request, and every
    // connection to it began a TLS handshake (0x16), not plain HTTP.
    assert_eq!(
        bad.request_count(),
        0,
        "a request got through a bad TLS server"
    );
    let first = relay.first_bytes();
    assert!(first.len() >= 3, "{first:?}");
    assert!(
        first.iter().all(|b| *b == 0x16),
        "a connection that did not start with a TLS handshake: {first:?}"
    );
    assert!(requests_for(good, HOME_HOST).is_empty());
    let rows = status_json(&setup);
    let row = status_row(&rows, HOME_HOST);
    assert!(row["stopped"].is_null(), "{row}");
    assert!(
        row["last_reply"].as_str().unwrap().starts_with("tls"),
        "{row}"
    );

    // The other host follows a change meanwhile.
    readdress("203.0.113.10", "203.0.113.11");
    wait_request(good, OFFICE_HOST, "with 203.0.113.11", |r| {
        r.answer.contains("good 203.0.113.11")
    });
    (setup, agent, relay)
}

/// After the fix, home's retry reaches `at` and the state says it is published.
fn tls_recovered(setup: &Setup, agent: Agent, at: &Standin) {
    wait_request(at, HOME_HOST, "answered good", |r| {
        r.answer.contains("good 203.0.113.11")
    });
    agent.wait_log("updated home.example.com/A: unknown → 203.0.113.11");
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    assert_eq!(
        setup.published("home.example.com/A").as_deref(),
        Some("203.0.113.11")
    );
}

#[test]
fn tls_with_the_wrong_name_is_refused_retried_and_recovers() {
    in_netns(
        "tls_with_the_wrong_name_is_refused_retried_and_recovers",
        || {
            let wrong =
                Standin::start_on_thread(accounts(StandinConfig::https_for(&["wrong.example"])))
                    .unwrap();
            let good = Standin::start_on_thread(accounts(StandinConfig::https())).unwrap();
            // Both CAs trusted: only the name is wrong.
            let dir = tempfile::tempdir().unwrap();
            let bundle = dir.path().join("cas.pem");
            std::fs::write(
                &bundle,
                format!("{}{}", wrong.ca_pem().unwrap(), good.ca_pem().unwrap()),
            )
            .unwrap();
            let (setup, agent, relay) = tls_refused(&wrong, &good, Some(&bundle));
            assert!(
                agent.log().contains("not valid for name"),
                "{}",
                agent.log()
            );
            // The server is fixed (a certificate for its name): the next retry goes through,
            // with no change on our side.
            relay.switch(good.addr());
            tls_recovered(&setup, agent, &good);
            assert_eq!(wrong.request_count(), 0);
        },
    );
}

#[test]
fn tls_from_an_unknown_ca_is_refused_retried_and_recovers() {
    in_netns(
        "tls_from_an_unknown_ca_is_refused_retried_and_recovers",
        || {
            // The right name, signed by the stand-in's own CA, and no ca_file: only the
            // system roots, which don't know it.
            let unknown = Standin::start_on_thread(accounts(StandinConfig::https())).unwrap();
            let good = Standin::start_on_thread(accounts(StandinConfig::https())).unwrap();
            let (setup, agent, _relay) = tls_refused(&unknown, &good, None);
            assert!(agent.log().contains("UnknownIssuer"), "{}", agent.log());
            // The user trusts that CA (ca_file) and reloads: the retry goes through.
            let text = std::fs::read_to_string(setup.config_path()).unwrap();
            let home_end = text.find("[[host]]\nhostname = \"office").unwrap();
            let fixed = format!(
                "{}\nca_file = \"{}\"\n\n{}",
                &text[..home_end].trim_end_matches('\n'),
                unknown.ca_file().unwrap().display(),
                &text[home_end..]
            );
            std::fs::write(setup.config_path(), fixed).unwrap();
            agent.signal("HUP");
            agent.wait_log("configuration reloaded");
            tls_recovered(&setup, agent, &unknown);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Faults that stop the host

/// The home host, configured as `home`, is stopped with `reason`; the office host carries on;
/// `status` says STOPPED; a reload with the same entry keeps it stopped; `prepare_fix` ends the
/// fault at the server, then the entry `fixed` and SIGHUP bring it back.
fn stopped_until_fixed_and_reloaded(
    s: &Standin,
    home: &str,
    home_host: &str,
    reason: &str,
    prepare_fix: impl FnOnce(),
    fixed: &str,
) {
    let setup = Setup::new();
    setup.write_config_with(s, Some("ppp0"), &[home, OFFICE], FAST_RETRY);
    ppp0("203.0.113.10", "10.64.0.1");
    let agent = setup.start_agent(&[]);
    let record = format!("{home_host}/A");
    agent.wait_log(&format!("{record} stopped after \"{reason}"));
    agent.wait_log("updated office.example.com/A: unknown → 203.0.113.10");
    let stop_line = agent
        .log()
        .lines()
        .find(|l| l.contains("stopped after"))
        .unwrap()
        .to_string();
    assert!(stop_line.contains("ERROR"), "said loudly: {stop_line}");
    assert_eq!(requests_for(s, home_host).len(), 1);

    // Stopped: not retried, not even for a new address, while the other host follows it.
    let mark = agent.mark();
    readdress("203.0.113.10", "203.0.113.11");
    wait_request(s, OFFICE_HOST, "with 203.0.113.11", |r| {
        r.answer.contains("good 203.0.113.11")
    });
    // Settled after the change (and a poke): only the office host was sent.
    agent.quiet_on("ppp0");
    let sent = agent.sends_since(mark);
    assert!(
        sent.len() == 1 && sent[0].contains("office.example.com/A"),
        "{sent:#?}"
    );
    assert_eq!(requests_for(s, home_host).len(), 1, "{:?}", updates(s));

    let line = status_line(&setup, home_host);
    assert!(line.contains(&format!("STOPPED ({reason}")), "{line}");
    let rows = status_json(&setup);
    let row = status_row(&rows, home_host);
    assert!(
        row["stopped"].as_str().unwrap().starts_with(reason),
        "{row}"
    );
    assert!(row["fix"].as_str().is_some_and(|f| !f.is_empty()), "{row}");
    assert_eq!(status_row(&rows, OFFICE_HOST)["published"], "203.0.113.11");

    // The fault ends at the server, but the entry is unchanged: a reload keeps it stopped.
    prepare_fix();
    let mark = agent.mark();
    agent.signal("HUP");
    agent.wait_log("configuration reloaded");
    // The reload decides at once; a poke after it makes sure that decision is in the log.
    agent.quiet_on("ppp0");
    agent.assert_nothing_sent_since(mark);
    assert_eq!(requests_for(s, home_host).len(), 1, "{:?}", updates(s));

    // Fixed entry + SIGHUP: updated with the current address.
    setup.write_config_with(s, Some("ppp0"), &[fixed, OFFICE], FAST_RETRY);
    let mark = agent.mark();
    agent.signal("HUP");
    wait_request(s, HOME_HOST, "answered good", |r| {
        r.answer.contains("good 203.0.113.11")
    });
    agent.wait_log("updated home.example.com/A");
    agent.quiet_on("ppp0");
    let sent = agent.sends_since(mark);
    assert!(
        sent.len() == 1 && sent[0].contains("home.example.com/A"),
        "only the fixed host is sent: {sent:#?}"
    );
    assert_eq!(
        requests_for(s, OFFICE_HOST).len(),
        2,
        "the other host was re-sent: {:?}",
        updates(s)
    );
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let line = status_line(&setup, HOME_HOST);
    assert!(
        line.contains("203.0.113.11") && line.ends_with("ok"),
        "{line}"
    );
}

#[test]
fn unauthorized_401_stops_the_host_until_the_password_is_fixed() {
    in_netns(
        "unauthorized_401_stops_the_host_until_the_password_is_fixed",
        || {
            let s = standin_https();
            let wrong = HOME.replace(PASSWORD, "Wrong-password-1");
            stopped_until_fixed_and_reloaded(&s, &wrong, HOME_HOST, "401", || {}, HOME);
        },
    );
}

#[test]
fn nohost_stops_the_host_until_the_hostname_is_fixed() {
    in_netns("nohost_stops_the_host_until_the_hostname_is_fixed", || {
        let s = standin_https();
        // A name outside the login's scope.
        let typo = HOME.replace(HOME_HOST, "hom.example.com");
        stopped_until_fixed_and_reloaded(&s, &typo, "hom.example.com", "nohost", || {}, HOME);
    });
}

#[test]
fn abuse_stops_the_host_until_its_entry_changes() {
    in_netns("abuse_stops_the_host_until_its_entry_changes", || {
        let s = standin_https();
        s.fail_host(HOME_HOST, Fault::abuse(), None);
        // After talking to the provider: a new password for the login.
        let new_pw = "New-password-after-abuse-2";
        let fixed = HOME.replace(PASSWORD, new_pw);
        stopped_until_fixed_and_reloaded(
            &s,
            HOME,
            HOME_HOST,
            "abuse",
            || {
                s.clear_faults();
                s.add_account("example.com-home", new_pw, HOME_HOST);
            },
            &fixed,
        );
    });
}
