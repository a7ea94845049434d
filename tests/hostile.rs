//! Hostile inputs, black box (issue 12): the built binary meets files that are FIFOs, devices or
//! far too big; a server whose text carries control, format and bidi characters or echoes the
//! password; `Retry-After` as an HTTP-date or an absurd number; hooks that leave children
//! behind or pile up; a `good` reply naming an address we did not send.
//!
//! File tests need no network and run the binary directly against files in a temporary
//! directory (each command bounded: a hang is killed and fails the test, and an unbounded read
//! runs into a memory limit instead of the machine's). Agent tests run in a fresh user+network
//! namespace with a tun `ppp0` and the local DynHost stand-in over HTTPS. No wall-clock timing is
//! asserted: waits are for log lines, files and stand-in requests, with deadlines that only
//! bound a hang.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::{in_netns, sh, tun_available, wait_for};
use standin::{Fault, Standin, StandinConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn mkfifo(path: &Path) {
    sh(&format!("mkfifo '{}'", path.display()));
}

/// Runs the binary with `args` under a 1 GB address-space limit, killed if it is still running
/// after `LONG`: (exit code, stderr). A hang or an unbounded read fails the caller's assertions
/// instead of hanging the test or exhausting the machine.
fn run_bounded(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1000000; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .env_remove("DYNHOSTD_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LONG;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (
                None,
                String::from_utf8_lossy(&out.stdout).into_owned(),
                format!(
                    "(killed: still running after {LONG:?}) {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config for one host whose password key is `password_line`, with `extra` host lines.
fn file_config(setup: &Setup, password_line: &str, extra: &str) {
    setup.write_config_full(
        None,
        "300ms",
        "",
        "",
        &[format!(
            "hostname = \"{HOME_HOST}\"\nlogin = \"example.com-home\"\n{password_line}\nserver = \"http://127.0.0.1:9/nic/update\"\n{extra}"
        )],
    );
}

fn check(setup: &Setup) -> (Option<i32>, String) {
    let config = setup.config_path();
    let (code, _, err) = run_bounded(&["check", "--config", config.to_str().unwrap()]);
    (code, err)
}

// ---------------------------------------------------------------------------------------------
// 1. Bounded file reads

#[test]
fn password_ca_and_config_files_must_be_small_regular_files() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let fifo = dir.join("fifo");
    mkfifo(&fifo);
    let big = dir.join("big-password");
    std::fs::write(&big, "x".repeat(5000)).unwrap();

    for (line, key, file, why) in [
        (
            "password_file = \"/dev/zero\"".to_string(),
            "host[0].password_file",
            "/dev/zero".to_string(),
            "not a regular file (a character device)",
        ),
        (
            format!("password_file = \"{}\"", fifo.display()),
            "host[0].password_file",
            fifo.display().to_string(),
            "not a regular file (a FIFO)",
        ),
        (
            format!("password_file = \"{}\"", big.display()),
            "host[0].password_file",
            big.display().to_string(),
            "too large (the limit is 4 KiB)",
        ),
    ] {
        file_config(&setup, &line, "");
        let (code, err) = check(&setup);
        let want = format!("{key}: {file}: {why}");
        assert_eq!(code, Some(2), "{line}: {err}");
        assert!(err.contains(&want), "{line}: want {want:?} in {err:?}");
        assert!(!err.contains("xxxx"), "{err}");
    }

    // A CA file pointed at a device or a FIFO.
    for (ca, why) in [
        (
            "/dev/zero".to_string(),
            "not a regular file (a character device)",
        ),
        (fifo.display().to_string(), "not a regular file (a FIFO)"),
    ] {
        file_config(
            &setup,
            &format!("password = \"{PASSWORD}\""),
            &format!("ca_file = \"{ca}\""),
        );
        let (code, err) = check(&setup);
        let want = format!("host[0].ca_file: {ca}: {why}");
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains(&want), "want {want:?} in {err:?}");
    }

    // The config itself: a FIFO, a device, 2 MiB.
    let huge = dir.join("huge.toml");
    std::fs::write(&huge, format!("# {}\n", "x".repeat(2 << 20))).unwrap();
    for (path, why) in [
        (fifo.display().to_string(), "not a regular file (a FIFO)"),
        (
            "/dev/zero".to_string(),
            "not a regular file (a character device)",
        ),
        (huge.display().to_string(), "too large (the limit is 1 MiB)"),
    ] {
        let (code, _, err) = run_bounded(&["check", "--config", &path]);
        let want = format!("{path}: cannot read the configuration: {why}");
        assert_eq!(code, Some(2), "{path}: {err}");
        assert!(err.contains(&want), "want {want:?} in {err:?}");
    }
}

#[test]
fn status_reads_a_fifo_or_oversize_state_file_as_unknown() {
    let setup = Setup::new();
    file_config(&setup, &format!("password = \"{PASSWORD}\""), "");
    let state = setup.state_path();
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let config = setup.config_path();
    let status = || run_bounded(&["status", "--json", "--config", config.to_str().unwrap()]);

    // A FIFO with no writer: a blocking read would never return.
    mkfifo(&state);
    let (code, out, err) = status();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("state file unreadable (not a regular file (a FIFO))"),
        "{err}"
    );
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["published"], serde_json::Value::Null, "{out}");

    // A valid state padded past 16 MiB: refused, not read whole.
    std::fs::remove_file(&state).unwrap();
    let mut text = String::from(
        r#"{"version":1,"records":{"home.example.com/A":{"published":"203.0.113.7"}}}"#,
    );
    text.push_str(&" ".repeat(17 << 20));
    std::fs::write(&state, text).unwrap();
    let (code, out, err) = status();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("state file unreadable (too large (the limit is 16 MiB))"),
        "{err}"
    );
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["published"], serde_json::Value::Null, "{out}");

    // The same state, small: read.
    std::fs::write(
        &state,
        r#"{"version":1,"records":{"home.example.com/A":{"published":"203.0.113.7"}}}"#,
    )
    .unwrap();
    let (code, out, err) = status();
    assert_eq!(code, Some(0), "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows[0]["published"], "203.0.113.7", "{out}");
}

#[test]
fn a_fifo_state_file_and_a_fifo_password_file_on_sighup_freeze_nothing() {
    in_netns(
        "a_fifo_state_file_and_a_fifo_password_file_on_sighup_freeze_nothing",
        || {
            if !tun_available("a_fifo_state_file_and_a_fifo_password_file_on_sighup_freeze_nothing")
            {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            let pw = setup.dir.path().join("password");
            std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
            let host = format!(
                "hostname = \"{HOME_HOST}\"\nlogin = \"example.com-home\"\npassword_file = \"{}\"",
                pw.display()
            );
            setup.write_config(&s, Some("ppp0"), &[&host]);
            std::fs::create_dir_all(setup.state_path().parent().unwrap()).unwrap();
            mkfifo(&setup.state_path());
            ppp0("203.0.113.10", "10.64.0.1");

            // `run` starts (a FIFO state file used to hang it before its first line) and
            // treats every record as unknown.
            let agent = setup.start_agent(&[]);
            agent.wait_log("state file unreadable (not a regular file (a FIFO))");
            agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");

            // The password file becomes a FIFO, then SIGHUP: refused at once, named.
            std::fs::remove_file(&pw).unwrap();
            mkfifo(&pw);
            agent.signal("HUP");
            agent.wait_log(&format!(
                "reload failed, keeping the running configuration: {}:",
                setup.config_path().display()
            ));
            agent.wait_log(&format!(
                "host[0].password_file: {}: not a regular file (a FIFO)",
                pw.display()
            ));

            // The loop still runs: a change is still published.
            sh(
                "ip addr del 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0",
            );
            agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.11");

            // And SIGTERM ends it (stop() fails the test if it does not exit).
            let (status, log) = agent.stop();
            assert!(status.success(), "{status}\n{log}");
            assert!(log.contains("shutting down"), "{log}");
            assert_eq!(
                setup.published("home.example.com/A").as_deref(),
                Some("203.0.113.11")
            );
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Server text: sanitised once at the provider border, the password redacted

/// Characters that must never come through from a server.
const HOSTILE_CHARS: [char; 6] = [
    '\u{202E}', '\u{200B}', '\u{2066}', '\u{2028}', '\u{1b}', '\u{FEFF}',
];

#[test]
fn server_text_is_cleaned_and_the_password_redacted_in_logs_state_status_and_hooks() {
    in_netns(
        "server_text_is_cleaned_and_the_password_redacted_in_logs_state_status_and_hooks",
        || {
            if !tun_available(
                "server_text_is_cleaned_and_the_password_redacted_in_logs_state_status_and_hooks",
            ) {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            let out = setup.dir.path().join("hook.out");
            let hook = setup.dir.path().join("hook.sh");
            std::fs::write(
                &hook,
                format!(
                    "#!/bin/sh\nprintf '%s|%s\\n' \"$DYNHOSTD_HOST\" \"$DYNHOSTD_ERROR\" >> '{}'\n",
                    out.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            let basic = base64(format!("example.com-home:{PASSWORD}").as_bytes());
            let basic_office = base64(format!("example.com-office:{PASSWORD}").as_bytes());
            // OVH's JSON 400, with raw and escaped bidi/zero-width/separator characters and the
            // password in both forms.
            let json = format!(
                "{{\"class\":\"Client::BadRequest\",\"message\":\"bad \u{202E}gnp.exe\u{200B} \u{2066}x\u{2069} a\u{2028}b \\u202e\\u200b\\u2066\\u2028\\u001b[2J you sent {PASSWORD} as Basic {basic}\"}}"
            );
            s.fail_host(HOME_HOST, Fault::reply(400, &json), None);
            // A 200 that echoes the password in a body we can't read.
            s.fail_host(
                OFFICE_HOST,
                Fault::reply(
                    200,
                    &format!("hello {PASSWORD} {basic_office}\u{202E}\u{FEFF}\u{1b}[31m\n"),
                ),
                None,
            );
            let extra = format!(
                "{FAST_RETRY}\n[hook]\nexec = \"{}\"\ntimeout = \"5s\"\n",
                hook.display()
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME, OFFICE], &extra);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&["-vv"]);
            agent.wait_log("home.example.com/A stopped after \"badrequest: bad ?gnp.exe?");
            agent.wait_log("update of office.example.com/A to 203.0.113.10 failed (unknown reply: 200 \"hello <redacted> <redacted>???[31m\")");
            wait_for("both hooks", LONG, || {
                std::fs::read_to_string(&out).is_ok_and(|t| {
                    t.contains("home.example.com|") && t.contains("office.example.com|")
                })
            });
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");

            let (st, table, err) = setup.run(&["status"]);
            assert!(st.success(), "{err}");
            let (st, json_rows, err) = setup.run(&["status", "--json"]);
            assert!(st.success(), "{err}");
            let state = std::fs::read_to_string(setup.state_path()).unwrap();
            let hooks = std::fs::read_to_string(&out).unwrap();
            assert!(state.contains("<redacted>"), "{state}");
            assert!(hooks.contains("<redacted>"), "{hooks}");
            for (what, text) in [
                ("the log", &log),
                ("state.json", &state),
                ("status", &table),
                ("status --json", &json_rows),
                ("the hook's DYNHOSTD_ERROR", &hooks),
            ] {
                for c in HOSTILE_CHARS {
                    assert!(!text.contains(c), "{what} holds {c:?}:\n{text}");
                }
                // JSON escapes of those characters would come back as the characters.
                for esc in ["\\u202e", "\\u200b", "\\u2066", "\\u2028", "\\u001b"] {
                    assert!(
                        !text.to_lowercase().contains(esc),
                        "{what} holds {esc}:\n{text}"
                    );
                }
                for secret in [PASSWORD, basic.as_str(), basic_office.as_str()] {
                    assert!(
                        !text.contains(secret),
                        "{what} holds a secret {secret}:\n{text}"
                    );
                }
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Retry-After

/// `Sun, 06 Nov 1994 08:49:37 GMT` for Unix time `t` (IMF-fixdate, RFC 9110 §5.6.7).
fn imf_fixdate(t: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // The date from the crate's formatter side (civil_from_days); the parser under test goes
    // the other way (days_from_civil).
    let (y, m, d, rem) = dynhostd::clock::UnixTime(t).civil();
    let days = t / 86_400;
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn imf_fixdate_formats_rfc_9110s_example() {
    assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
}

#[test]
fn retry_after_as_a_date_is_honoured_and_an_absurd_number_is_capped() {
    in_netns(
        "retry_after_as_a_date_is_honoured_and_an_absurd_number_is_capped",
        || {
            if !tun_available("retry_after_as_a_date_is_honoured_and_an_absurd_number_is_capped") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config_with(&s, Some("ppp0"), &[HOME, OFFICE], FAST_RETRY);
            let t0 = unix_now();
            let date = imf_fixdate(t0 + 150);
            s.fail_host(
                HOME_HOST,
                Fault::status(503).with_header("Retry-After", &date),
                None,
            );
            s.fail_host(
                OFFICE_HOST,
                Fault::status(429).with_header("Retry-After", "100000000000000000000"),
                None,
            );
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            agent.wait_log("update of home.example.com/A to 203.0.113.10 failed (");
            agent.wait_log("update of office.example.com/A to 203.0.113.10 failed (");
            agent.wait_log_count("next try in", 2);
            let log = agent.log();
            for l in log.lines().filter(|l| l.contains("next try in")) {
                println!("{l}");
            }
            // With a 1 s back-off, an ignored hint would mean a second request within ~2 s.
            // Wait well past it; the stand-in must have seen exactly one request per host.
            std::thread::sleep(Duration::from_secs(5));
            let count = |h: &str| {
                s.requests()
                    .iter()
                    .filter(|r| r.param("hostname") == Some(h))
                    .count()
            };
            assert_eq!(count(HOME_HOST), 1, "{:?}\n{}", updates(&s), agent.log());
            assert_eq!(count(OFFICE_HOST), 1, "{:?}\n{}", updates(&s), agent.log());

            // The next try is where the server asked: the date (150 s ahead, so not before
            // 100 s from now) and a day for the absurd number.
            let (st, out, err) = setup.run(&["status", "--json"]);
            assert!(st.success(), "{err}");
            let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
            let retry_at = |h: &str| {
                rows.as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["hostname"] == h)
                    .and_then(|r| r["retry_at"].as_u64())
                    .unwrap_or_else(|| panic!("no retry_at for {h} in {out}"))
            };
            assert!(retry_at(HOME_HOST) >= t0 + 100, "{out}");
            assert!(retry_at(HOME_HOST) <= t0 + 150 + 60, "{out}");
            assert!(retry_at(OFFICE_HOST) >= t0 + 86_400 - 60, "{out}");
            assert!(retry_at(OFFICE_HOST) <= unix_now() + 86_400 + 60, "{out}");
            assert!(
                agent.log().contains("rate limited: retry after"),
                "{}",
                agent.log()
            );
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Hooks

fn alive(pid: i32) -> bool {
    // A zombie (killed, waiting to be reaped) counts as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

fn read_pid(path: &Path) -> i32 {
    let mut pid = 0;
    wait_for(&format!("{}", path.display()), LONG, || {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(|p| pid = p)
            .is_some()
    });
    pid
}

/// Waits (bounded) for `pid` to go; kills it either way so a failing run leaves nothing behind,
/// and says whether it went by itself.
fn gone_by_itself(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let gone = !alive(pid);
    if !gone {
        let _ = sh(&format!("kill -9 {pid} || true"));
    }
    gone
}

/// A hook script that starts `sleep 1000` in the background, writes its pid to `pidfile`, then
/// runs `then`.
fn sleeping_hook(dir: &Path, pidfile: &Path, then: &str) -> PathBuf {
    let hook = dir.join("hook.sh");
    let p = pidfile.display();
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nsleep 1000 &\necho $! > '{p}.tmp'\nmv '{p}.tmp' '{p}'\n{then}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook
}

fn agent_with_hook(s: &Standin, setup: &Setup, hook: &Path) -> Agent {
    let extra = format!(
        "\n[hook]\nexec = \"{}\"\ntimeout = \"300s\"\n",
        hook.display()
    );
    setup.write_config_with(s, Some("ppp0"), &[HOME], &extra);
    ppp0("203.0.113.10", "10.64.0.1");
    setup.start_agent(&["-v"])
}

#[test]
fn a_hook_that_exits_at_once_leaves_no_children_behind() {
    in_netns(
        "a_hook_that_exits_at_once_leaves_no_children_behind",
        || {
            if !tun_available("a_hook_that_exits_at_once_leaves_no_children_behind") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            let pidfile = setup.dir.path().join("sleep.pid");
            let hook = sleeping_hook(setup.dir.path(), &pidfile, "exit 0");
            let agent = agent_with_hook(&s, &setup, &hook);
            agent.wait_log("updated home.example.com/A");
            let sleep = read_pid(&pidfile);
            // Gone long before the hook's 300 s timeout: killed with the group when the hook exited.
            assert!(
                gone_by_itself(sleep),
                "the hook's background sleep {sleep} outlived the hook"
            );
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

#[test]
fn stopping_the_agent_kills_a_running_hook_and_its_children() {
    in_netns(
        "stopping_the_agent_kills_a_running_hook_and_its_children",
        || {
            if !tun_available("stopping_the_agent_kills_a_running_hook_and_its_children") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            let pidfile = setup.dir.path().join("sleep.pid");
            let hook = sleeping_hook(setup.dir.path(), &pidfile, "wait");
            let agent = agent_with_hook(&s, &setup, &hook);
            agent.wait_log("updated home.example.com/A");
            let sleep = read_pid(&pidfile);
            assert!(
                alive(sleep),
                "the hook's child should still run (timeout 300 s)"
            );
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            assert!(
                gone_by_itself(sleep),
                "the hook's child {sleep} survived the agent's shutdown:\n{log}"
            );
        },
    );
}

#[test]
fn hooks_are_bounded_and_coalesced_per_host() {
    in_netns("hooks_are_bounded_and_coalesced_per_host", || {
        if !tun_available("hooks_are_bounded_and_coalesced_per_host") {
            return;
        }
        const HOSTS: usize = 12;
        let s = Standin::start_on_thread(StandinConfig::https().numbered_hosts(HOSTS, PASSWORD))
            .expect("stand-in");
        let setup = Setup::new();
        let d = setup.dir.path().display();
        std::fs::create_dir(setup.dir.path().join("running")).unwrap();
        // Each run notes itself in running/, records how many it saw there, and lasts 2 s.
        let hook = setup.dir.path().join("hook.sh");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\ntouch '{d}/running/'$$\nls '{d}/running' | wc -l >> '{d}/seen'\necho \"$DYNHOSTD_HOST\" >> '{d}/ran'\nsleep 2\nrm '{d}/running/'$$\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let hosts: Vec<String> = (1..=HOSTS)
            .map(|k| {
                host_on(
                    &s,
                    &format!(
                        "hostname = \"h{k}.example.com\"\nlogin = \"example.com-h{k}\"\npassword = \"{PASSWORD}\""
                    ),
                )
            })
            .collect();
        for k in 1..=HOSTS {
            s.fail_host(&format!("h{k}.example.com"), Fault::status(500), None);
        }
        let extra = format!(
            "{FAST_RETRY}\n[hook]\nexec = \"{}\"\ntimeout = \"30s\"\n",
            hook.display()
        );
        setup.write_config_full(Some("ppp0"), "300ms", "", &extra, &hosts);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        // Failing every second or two, twelve hosts make events faster than 4 hooks of 2 s
        // can take them: the waiting event of a host is replaced by its newer one.
        agent.wait_log("is dropped, superseded by a newer one");
        let ran = |setup: &Setup| {
            std::fs::read_to_string(setup.dir.path().join("ran")).map_or(0, |t| t.lines().count())
        };
        wait_for("every host's hook", LONG, || ran(&setup) >= HOSTS);
        let (status, log) = agent.stop();
        assert!(status.success(), "{log}");
        let seen = std::fs::read_to_string(setup.dir.path().join("seen")).unwrap();
        let most = seen
            .lines()
            .map(|n| n.trim().parse::<usize>().unwrap())
            .max()
            .unwrap();
        println!(
            "at most {most} hooks at once over {} runs",
            seen.lines().count()
        );
        assert!(most <= 4, "{most} hooks ran at once:\n{seen}");
    });
}

// ---------------------------------------------------------------------------------------------
// 5. `good <other address>`

#[test]
fn a_good_reply_naming_another_address_is_warned_about_and_ours_kept() {
    in_netns(
        "a_good_reply_naming_another_address_is_warned_about_and_ours_kept",
        || {
            if !tun_available("a_good_reply_naming_another_address_is_warned_about_and_ours_kept") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            s.fail_host(HOME_HOST, Fault::code("good 198.51.100.99"), None);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            let warning = log
                .lines()
                .find(|l| l.contains("WARN") && l.contains("198.51.100.99"))
                .unwrap_or_else(|| panic!("no warning naming 198.51.100.99:\n{log}"));
            assert!(warning.contains("203.0.113.10"), "{warning}");
            assert_eq!(
                setup.published("home.example.com/A").as_deref(),
                Some("203.0.113.10")
            );
        },
    );
}
