//! One writer per state dir, and talking to the running agent: the lock (a second `run` is
//! refused), the control socket (`status`, `retry`, `update` handed over, its bounds), and
//! pppd's ip-up hook on top of it. Through the built binary, in a fresh user+network namespace,
//! against the local DynHost stand-in. No timing is asserted: waits only bound a hang.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

#[path = "support/cli.rs"]
mod cli;

use cli::*;
use netns::{in_netns, sh};
use standin::{Standin, StandinConfig};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for `child` to exit (bounded by LONG); its status and stderr.
fn wait_exit(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the command did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Moves ppp0's address (what a redial with a new address looks like to the kernel).
fn readdress(old: &str, new: &str) {
    sh(&format!(
        "ip addr del {old} peer 10.64.0.1 dev ppp0 && ip addr add {new} peer 10.64.0.1 dev ppp0"
    ));
}

fn status_json(setup: &Setup) -> serde_json::Value {
    let (status, out, err) = setup.run(&["status", "--json"]);
    assert!(status.success(), "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn a_second_run_is_refused_and_a_change_is_sent_once() {
    in_netns("a_second_run_is_refused_and_a_change_is_sent_once", || {
        if !netns::tun_available("a_second_run_is_refused_and_a_change_is_sent_once") {
            return;
        }
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();

        let second = setup
            .cmd(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (status, err) = wait_exit(second);
        assert_eq!(status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("pid {}", agent.child.id())),
            "names the running agent's pid: {err}"
        );
        let dir = setup.state_path().parent().unwrap().display().to_string();
        assert!(err.contains(&dir), "names the state dir: {err}");
        // The refused one left the agent's lock and socket alone.
        let lock = std::fs::read_to_string(Path::new(&dir).join("lock")).unwrap();
        assert_eq!(lock.trim(), agent.child.id().to_string());
        assert!(setup.control_path().exists());

        readdress("203.0.113.10", "203.0.113.11");
        s.wait_for_requests_blocking(2, LONG).unwrap();
        agent.quiet_on("ppp0");
        assert_eq!(
            updates(&s),
            [
                ("home.example.com".into(), "203.0.113.10".into()),
                ("home.example.com".into(), "203.0.113.11".into()),
            ]
        );
        agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.11");
        assert!(agent.stop().0.success());
        // The socket goes with the agent.
        assert!(!setup.control_path().exists());
    });
}

/// pppd runs /etc/ppp/ip-up.d/* with an empty environment apart from its own variables, the
/// six arguments, and PATH; here with no systemd at all, while an agent runs.
#[test]
fn the_ip_up_hook_hands_the_address_to_the_running_agent() {
    in_netns(
        "the_ip_up_hook_hands_the_address_to_the_running_agent",
        || {
            if !netns::tun_available("the_ip_up_hook_hands_the_address_to_the_running_agent") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();
            agent.wait_log("updated home.example.com/A");
            let state = setup.state_path();
            netns::wait_for("the state file", LONG, || {
                state.exists() && setup.published("home.example.com/A").is_some()
            });
            let written_before = std::fs::metadata(&state).unwrap().ino();

            // The real binary on PATH, a logger that writes to a file, no systemctl.
            let world = setup.dir.path().join("ppp");
            let bin = world.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(BIN, bin.join("dynhostd")).unwrap();
            let log = world.join("syslog");
            let logger = bin.join("logger");
            std::fs::write(
                &logger,
                format!(
                    "#!/bin/sh\n{{ printf '[%s] ' \"$*\"; cat; }} >> '{}'\n",
                    log.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&logger, std::fs::Permissions::from_mode(0o755)).unwrap();
            let defaults = world.join("defaults");
            std::fs::write(
                &defaults,
                format!("DYNHOSTD_CONFIG={}\n", setup.config_path().display()),
            )
            .unwrap();

            readdress("203.0.113.10", "203.0.113.20");
            let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/ppp/ip-up.d/dynhostd");
            let args = ["ppp0", "eth1", "0", "203.0.113.20", "10.64.0.1", "wan"];
            let out = Command::new(&hook)
                .env_clear()
                .env(
                    "PATH",
                    format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
                )
                .env("DYNHOSTD_DEFAULTS", &defaults)
                .env("IFNAME", "ppp0")
                .env("DEVICE", "eth1")
                .env("IPLOCAL", "203.0.113.20")
                .env("IPREMOTE", "10.64.0.1")
                .env("LINKNAME", "wan")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");

            // The hook's background job logs the agent's answer when `update` ends.
            let deadline = Instant::now() + LONG;
            let text = loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("exited 0") || text.contains("failed (exit") {
                    break text;
                }
                assert!(Instant::now() < deadline, "the hook never finished: {text}");
                std::thread::sleep(Duration::from_millis(20));
            };
            assert!(text.contains("exited 0"), "{text}");
            assert!(
                text.contains(&format!("the running agent (pid {})", agent.child.id())),
                "update went to the agent: {text}"
            );
            agent.wait_log("control: update handed over");

            s.wait_for_requests_blocking(2, LONG).unwrap();
            agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.20");
            agent.quiet_on("ppp0");
            assert_eq!(
                updates(&s),
                [
                    ("home.example.com".into(), "203.0.113.10".into()),
                    ("home.example.com".into(), "203.0.113.20".into()),
                ],
                "the new address is sent exactly once"
            );
            // Only the agent wrote the state: the lock is its, and the file it last renamed
            // into place holds the new address (saved within a moment of the reply).
            setup.wait_state("the new address", |v| {
                v["records"]["home.example.com/A"]["published"] == "203.0.113.20"
            });
            let lock = std::fs::read_to_string(state.with_file_name("lock")).unwrap();
            assert_eq!(lock.trim(), agent.child.id().to_string());
            assert_ne!(std::fs::metadata(&state).unwrap().ino(), written_before);
            assert_eq!(
                setup.published("home.example.com/A").as_deref(),
                Some("203.0.113.20")
            );
            assert!(agent.stop().0.success());
        },
    );
}

#[test]
fn retry_publishes_once_the_missing_login_exists() {
    in_netns("retry_publishes_once_the_missing_login_exists", || {
        if !netns::tun_available("retry_publishes_once_the_missing_login_exists") {
            return;
        }
        // The record exists, the DynHost login not yet: the usual first run from OVH's guide.
        let s = Standin::start_on_thread(StandinConfig::https().record("home.example.com"))
            .expect("stand-in");
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let mut agent = setup.start_agent(&[]);
        let reqs = s.wait_for_requests_blocking(1, LONG).unwrap();
        assert!(reqs[0].answer.contains("401"), "{}", reqs[0].answer);
        agent.wait_log("stopped after");
        // The stop's own line says what to run.
        agent.wait_log("run `dynhostd retry home.example.com`");

        // `status` asks the agent, and says so, and the command too.
        let (st, out, err) = setup.run(&["status"]);
        assert!(st.success(), "{err}");
        assert!(
            out.contains(&format!(
                "source: the running agent (pid {}",
                agent.child.id()
            )),
            "{out}"
        );
        assert!(out.contains("STOPPED (401"), "{out}");
        assert!(out.contains("dynhostd retry home.example.com"), "{out}");

        // An unknown name changes nothing and exits 1.
        let (st, out, err) = setup.run(&["retry", "nowhere.example.com"]);
        assert_eq!(st.code(), Some(1), "{out}{err}");
        assert!(out.contains("nowhere.example.com"), "{out}{err}");
        assert_eq!(s.request_count(), 1);

        s.add_account("example.com-home", PASSWORD, "home.example.com");
        let (st, out, err) = setup.run(&["retry", "home.example.com"]);
        assert!(st.success(), "{out}{err}");
        assert!(
            out.contains("home.example.com/A: sending 203.0.113.10"),
            "{out}"
        );
        let reqs = s.wait_for_requests_blocking(2, LONG).unwrap();
        assert!(
            reqs[1].answer.contains("good 203.0.113.10"),
            "{}",
            reqs[1].answer
        );
        agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");
        assert!(agent.running(), "the agent stays up");
        let rows = status_json(&setup);
        assert_eq!(rows[0]["source"], "agent", "{rows}");
        assert_eq!(rows[0]["phase"], "idle");
        assert_eq!(rows[0]["published"], "203.0.113.10");
        assert!(rows[0]["stopped"].is_null(), "{rows}");
        // The history: the stop, then the recovery (the update after the fix), in the JSON,
        // under the table, and whole with --history; newest first where printed.
        let events: Vec<_> = rows[0]["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| (h["event"].as_str().unwrap(), h["ip"].as_str().unwrap()))
            .collect();
        assert_eq!(
            events,
            [("stopped", "203.0.113.10"), ("recovered", "203.0.113.10")],
            "{rows}"
        );
        assert!(
            rows[0]["history"][0]["text"]
                .as_str()
                .unwrap()
                .starts_with("401")
        );
        let (st, out, err) = setup.run(&["status"]);
        assert!(st.success(), "{err}");
        let recent = out
            .split("recent events")
            .nth(1)
            .unwrap_or_else(|| panic!("{out}"));
        let (r, s401) = (
            recent.find("recovered").unwrap(),
            recent.find("stopped").unwrap(),
        );
        assert!(r < s401, "newest first: {out}");
        let (st, out, err) = setup.run(&["status", "--history", "home.example.com"]);
        assert!(st.success(), "{err}");
        assert!(out.starts_with("home.example.com, newest first:"), "{out}");
        assert_eq!(
            out.lines()
                .filter(|l| l.contains("home.example.com/A"))
                .count(),
            2,
            "{out}"
        );
        let (st, out, err) = setup.run(&["status", "--history", "nowhere.example.com", "--json"]);
        assert_eq!(st.code(), Some(2), "{out}{err}");
        assert!(
            err.contains("nowhere.example.com is not a [[host]]"),
            "{err}"
        );
        assert!(agent.stop().0.success());
    });
}

/// With no agent, `retry` clears the stop in the state file under the lock, and the next
/// `update` sends.
#[test]
fn retry_without_an_agent_clears_the_stop_for_the_next_update() {
    in_netns(
        "retry_without_an_agent_clears_the_stop_for_the_next_update",
        || {
            if !netns::tun_available("retry_without_an_agent_clears_the_stop_for_the_next_update") {
                return;
            }
            let s = Standin::start_on_thread(StandinConfig::https().record("home.example.com"))
                .expect("stand-in");
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let (st, _, err) = setup.run(&["update"]);
            assert_eq!(st.code(), Some(1), "{err}");
            let (st, out, _) = setup.run(&["status"]);
            assert!(st.success());
            assert!(out.contains("source: the state file"), "{out}");
            assert!(out.contains("dynhostd retry home.example.com"), "{out}");
            let rows = status_json(&setup);
            assert_eq!(rows[0]["source"], "state-file", "{rows}");
            assert!(
                rows[0]["stopped"].as_str().unwrap().starts_with("401"),
                "{rows}"
            );
            // Still stopped: update sends nothing.
            let (st, _, _) = setup.run(&["update"]);
            assert_eq!(st.code(), Some(1));
            assert_eq!(s.request_count(), 1);

            s.add_account("example.com-home", PASSWORD, "home.example.com");
            let (st, out, err) = setup.run(&["retry"]);
            assert!(st.success(), "{out}{err}");
            assert!(out.contains("no agent running"), "{out}");
            assert!(out.contains("home.example.com/A: stop after"), "{out}");
            assert_eq!(s.request_count(), 1, "retry alone sends nothing");
            let (st, _, err) = setup.run(&["update"]);
            assert!(st.success(), "{err}");
            assert_eq!(
                updates(&s)[1],
                ("home.example.com".into(), "203.0.113.10".into())
            );
            // The history from the state file: the stop and the recovery it led to.
            let (st, out, err) = setup.run(&["status", "--history", "home.example.com", "--json"]);
            assert!(st.success(), "{err}");
            let h: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(h[0]["record"], "A", "{h}");
            let events: Vec<_> = h[0]["history"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(events, ["stopped", "recovered"], "{h}");
            let (st, out, err) = setup.run(&["retry", "nowhere.example.com"]);
            assert_eq!(st.code(), Some(1), "{out}{err}");
        },
    );
}

#[test]
fn status_shows_a_change_held_by_min_interval_and_its_end() {
    in_netns(
        "status_shows_a_change_held_by_min_interval_and_its_end",
        || {
            if !netns::tun_available("status_shows_a_change_held_by_min_interval_and_its_end") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config_with(
                &s,
                Some("ppp0"),
                &[HOME],
                "\n[update]\nmin_interval = \"1h\"\n",
            );
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();
            agent.wait_log("updated home.example.com/A");

            let before = unix_now();
            readdress("203.0.113.10", "203.0.113.11");
            agent.wait_log("203.0.113.11 held back by min_interval (1h): it will be sent at");
            assert_eq!(agent.log_count("held back by min_interval"), 1);

            let rows = status_json(&setup);
            let rec = &rows[0];
            assert_eq!(rec["source"], "agent", "{rows}");
            assert_eq!(rec["pid"], agent.child.id(), "{rows}");
            assert_eq!(rec["hostname"], "home.example.com");
            assert_eq!(rec["phase"], "held", "{rows}");
            assert_eq!(rec["wan"], "203.0.113.11");
            assert_eq!(rec["published"], "203.0.113.10");
            assert_eq!(rec["next"]["reason"], "min-interval", "{rows}");
            let end = rec["next"]["at"].as_u64().expect("the hold's end");
            // An hour after the first update, which came after `before` minus the start-up.
            assert!(
                end > before && end <= unix_now() + 3600 + 1,
                "end {end}, now {}",
                unix_now()
            );

            let (st, out, _) = setup.run(&["status"]);
            assert!(st.success());
            assert!(out.contains("held by min_interval"), "{out}");
            assert!(out.contains("min_interval hold at"), "{out}");

            // `update --ip` for the held address: the agent says so, and sends nothing.
            let (st, out, err) = setup.run(&["update", "--ip", "203.0.113.11"]);
            assert!(st.success(), "{out}{err}");
            assert!(
                out.contains("203.0.113.11 held back by min_interval: it will be sent at"),
                "{out}"
            );
            // An address the WAN does not hold is refused, naming both.
            let (st, out, err) = setup.run(&["update", "--ip", "203.0.113.99"]);
            assert_eq!(st.code(), Some(1), "{out}{err}");
            assert!(
                out.contains("203.0.113.11") && out.contains("203.0.113.99"),
                "{out}"
            );
            agent.quiet_on("ppp0");
            assert_eq!(s.request_count(), 1, "{:?}", updates(&s));
            assert!(agent.stop().0.success());
        },
    );
}

#[test]
fn the_socket_refuses_oversize_and_silent_clients_and_the_agent_goes_on() {
    in_netns(
        "the_socket_refuses_oversize_and_silent_clients_and_the_agent_goes_on",
        || {
            if !netns::tun_available(
                "the_socket_refuses_oversize_and_silent_clients_and_the_agent_goes_on",
            ) {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let mut agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();
            let sock = setup.control_path();
            let meta = std::fs::metadata(&sock).unwrap();
            assert_eq!(meta.mode() & 0o777, 0o600, "the socket is private");

            // A client that connects and sends nothing.
            let mut silent = UnixStream::connect(&sock).unwrap();
            silent.set_read_timeout(Some(LONG)).unwrap();

            // 1 MiB on one line: refused, with a reason.
            let mut big = UnixStream::connect(&sock).unwrap();
            big.set_read_timeout(Some(LONG)).unwrap();
            let mut writer = big.try_clone().unwrap();
            let feeder = std::thread::spawn(move || {
                let mut line = vec![b'x'; 1024 * 1024];
                line.push(b'\n');
                // Fails with EPIPE once the agent has closed: that is the point.
                let _ = writer.write_all(&line);
            });
            let mut reply = String::new();
            let _ = big.read_to_string(&mut reply);
            feeder.join().unwrap();
            assert!(reply.contains("request too long"), "{reply:?}");
            assert!(reply.contains("\"ok\":false"), "{reply:?}");

            // Garbage is refused too.
            let mut bad = UnixStream::connect(&sock).unwrap();
            bad.write_all(b"{\"command\":\"format-disk\"}\n").unwrap();
            let mut reply = String::new();
            bad.read_to_string(&mut reply).unwrap();
            assert!(reply.contains("bad request"), "{reply:?}");

            // While the silent client still holds its connection, others are answered.
            let rows = status_json(&setup);
            assert_eq!(rows[0]["source"], "agent", "{rows}");

            // The silent one is dropped (EOF, no reply).
            let mut rest = Vec::new();
            let n = silent.read_to_end(&mut rest).expect("dropped, not hung");
            assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
            agent.wait_log("dropped a client that did not finish");

            // And the agent goes on with its job.
            assert!(agent.running());
            readdress("203.0.113.10", "203.0.113.12");
            s.wait_for_requests_blocking(2, LONG).unwrap();
            assert_eq!(
                updates(&s)[1],
                ("home.example.com".into(), "203.0.113.12".into())
            );
            let (st, out, err) = setup.run(&["status"]);
            assert!(st.success(), "{err}");
            assert!(out.contains("source: the running agent"), "{out}");
            // SIGUSR1's twin.
            let (st, out, err) = setup.run(&["check-now"]);
            assert!(st.success(), "{out}{err}");
            agent.wait_log("control: check-now");
            assert!(agent.stop().0.success());
            let (st, _, err) = setup.run(&["check-now"]);
            assert_eq!(st.code(), Some(1), "no agent: {err}");
            assert!(err.contains("no agent is running"), "{err}");
        },
    );
}

/// Whether this test may run: it needs real root (to start the agent as another user) and
/// setpriv. Under CI (or DYNHOSTD_TEST_STRICT=1) a missing prerequisite fails the test.
fn root_prerequisite(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = root && setpriv;
    if !ok {
        let why = if root {
            "setpriv (util-linux) is missing"
        } else {
            "not running as root"
        };
        let strict = std::env::var_os("CI").is_some()
            || std::env::var("DYNHOSTD_TEST_STRICT").is_ok_and(|v| v == "1");
        assert!(!strict, "{test}: {why}, and CI/DYNHOSTD_TEST_STRICT is set");
        println!("SKIPPED {test}: {why}");
    }
    ok
}

/// systemd runs the agent as a dynamic user and its socket is that user's, mode 0600; root's
/// `dynhostd status`/`retry` reach it anyway (root bypasses file permissions), and need not
/// read the password (a `password_credential` config without $CREDENTIALS_DIRECTORY).
#[test]
fn root_reaches_the_socket_of_an_agent_running_as_another_user() {
    let test = "root_reaches_the_socket_of_an_agent_running_as_another_user";
    if !root_prerequisite(test) {
        return;
    }
    const NOBODY: u32 = 65534;
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Like /var/lib/private/dynhostd and /run/dynhostd: the service user's, private.
    let svc = top.path().join("svc");
    let run = top.path().join("run");
    let creds = top.path().join("creds");
    for d in [&svc, &run, &creds] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::write(creds.join("home"), format!("{PASSWORD}\n")).unwrap();
    std::os::unix::fs::chown(creds.join("home"), Some(NOBODY), Some(NOBODY)).unwrap();
    let cfg = top.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[wan]\ninterface = \"ppp0\"\n\n[state]\ndir = \"{}\"\n\n[verify]\ninterval = \"0\"\n\n\
             [[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-home\"\n\
             password_credential = \"home\"\nserver = \"http://127.0.0.1:9/nic/update\"\n",
            svc.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();

    // The agent as `nobody`, in a network namespace of its own (no ppp0 there: it publishes
    // nothing), with systemd's RUNTIME_DIRECTORY and CREDENTIALS_DIRECTORY.
    let log = top.path().join("agent.log");
    let mut agent = Command::new("unshare")
        .args(["-n", "--", "setpriv"])
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("RUNTIME_DIRECTORY", &run)
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    // Not the default state dir: its socket goes with it (RUNTIME_DIRECTORY serves the
    // default state dir's agent, the one the systemd unit runs), so no two agents share one.
    let sock = svc.join("control");
    let deadline = Instant::now() + LONG;
    while !sock.exists() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(Instant::now() < deadline, "no control socket: {text}");
        if let Some(st) = agent.try_wait().unwrap() {
            panic!("the agent exited ({st}): {text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let agent = Kill(&mut agent);
    let meta = std::fs::metadata(&sock).unwrap();
    assert_eq!(meta.uid(), NOBODY, "the socket is the service user's");
    assert_eq!(meta.mode() & 0o777, 0o600);

    // Root, with neither RUNTIME_DIRECTORY nor CREDENTIALS_DIRECTORY, finds the same socket;
    // here it is also named in the config, as `[state] control` may name it.
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[state]\n",
        &format!("[state]\ncontrol = \"{}\"\n", sock.display()),
    );
    let root_cfg = top.path().join("root.toml");
    std::fs::write(&root_cfg, text).unwrap();
    let client = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&root_cfg)
            .env_remove("RUNTIME_DIRECTORY")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("DYNHOSTD_LOG")
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let pid = agent.0.id();
    let (st, out, err) = client(&["status"]);
    assert!(st.success(), "{out}{err}");
    // setpriv execs the agent, unshare forks it: the agent's pid is the lock's.
    let lock = std::fs::read_to_string(svc.join("lock")).unwrap();
    assert!(
        out.contains(&format!("source: the running agent (pid {}", lock.trim())),
        "{out}{err} (spawned {pid})"
    );
    let (st, out, err) = client(&["retry"]);
    assert!(st.success(), "{out}{err}");
    assert!(out.contains("the running agent"), "{out}");
    drop(agent);
}

/// The lock and the socket belong to the state dir the agent started with: a reload naming
/// another one is refused for [state] (logged), so no second, unlocked state file appears.
#[test]
fn a_reload_does_not_move_the_state_away_from_the_lock() {
    in_netns(
        "a_reload_does_not_move_the_state_away_from_the_lock",
        || {
            if !netns::tun_available("a_reload_does_not_move_the_state_away_from_the_lock") {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            s.wait_for_requests_blocking(1, LONG).unwrap();

            let elsewhere = setup.dir.path().join("elsewhere");
            let text = std::fs::read_to_string(setup.config_path()).unwrap();
            let old_dir = setup.state_path().parent().unwrap().display().to_string();
            std::fs::write(
                setup.config_path(),
                text.replace(&old_dir, &elsewhere.display().to_string()),
            )
            .unwrap();
            agent.signal("HUP");
            agent.wait_log("[state] changes take effect at the next start");
            // It still serves (and says it serves) the state dir whose lock it holds.
            let mut c = UnixStream::connect(setup.control_path()).unwrap();
            c.set_read_timeout(Some(LONG)).unwrap();
            writeln!(
                c,
                "{{\"state_dir\":\"{old_dir}\",\"request\":{{\"command\":\"status\"}}}}"
            )
            .unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
            assert_eq!(reply["ok"], true, "{reply}");
            assert_eq!(reply["agent"]["state_dir"], old_dir.as_str(), "{reply}");
            assert_eq!(reply["status"]["state_dir"], old_dir.as_str(), "{reply}");

            readdress("203.0.113.10", "203.0.113.11");
            s.wait_for_requests_blocking(2, LONG).unwrap();
            agent.wait_log("updated home.example.com/A: 203.0.113.10 → 203.0.113.11");
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            assert_eq!(
                setup.published("home.example.com/A").as_deref(),
                Some("203.0.113.11")
            );
            assert!(!elsewhere.join("state.json").exists(), "an unlocked writer");
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 20, "Trust before reach": who may use the socket, which directories are refused, which
// agent answers, and what a busy or starting agent does.

/// A config with only what these tests need: `[state] dir` (and `control` when given), a WAN
/// that does not exist in the namespace (nothing is published), and a host that is never sent.
fn bare_config(path: &Path, state_dir: &Path, control: Option<&Path>) {
    let control = control.map_or(String::new(), |c| {
        format!("control = \"{}\"\n", c.display())
    });
    std::fs::write(
        path,
        format!(
            "[wan]\ninterface = \"ppp0\"\n\n[state]\ndir = \"{}\"\n{control}\n[verify]\ninterval = \"0\"\n\n\
             [[host]]\n{HOME}\nserver = \"http://127.0.0.1:9/nic/update\"\n",
            state_dir.display()
        ),
    )
    .unwrap();
}

/// `dynhostd ARGS --config CONFIG`: (status, stdout, stderr).
fn run_with(config: &Path, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("DYNHOSTD_LOG")
        .env_remove("RUNTIME_DIRECTORY")
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dynhostd run --config CONFIG`, its log in `log`: an [`Agent`] (killed when dropped).
fn spawn_run(config: &Path, log: &Path) -> Agent {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("DYNHOSTD_LOG", AGENT_LOG)
        .env_remove("RUNTIME_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Agent {
        child,
        log: log.to_path_buf(),
    }
}

/// Item 2: a state dir or a socket directory another user could write stops the agent before
/// it starts (exit 2, saying which and why); `update` refuses it too and sends nothing.
#[test]
fn an_untrusted_state_dir_or_socket_dir_stops_the_agent() {
    in_netns(
        "an_untrusted_state_dir_or_socket_dir_stops_the_agent",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            let state = setup.state_path().parent().unwrap().to_path_buf();
            std::fs::create_dir(&state).unwrap();
            let mode = |p: &Path, m: u32| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
            };

            // Writable by every user, sticky like /tmp: refused all the same.
            mode(&state, 0o1777);
            let agent = setup
                .cmd(&["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (status, err) = wait_exit(agent);
            assert_eq!(status.code(), Some(2), "{err}");
            assert!(
                err.contains(&format!("refusing the state dir {}", state.display()))
                    && err.contains("writable by every user"),
                "{err}"
            );
            let (st, out, err) = setup.run(&["update"]);
            assert_eq!(st.code(), Some(2), "{out}{err}");
            assert!(err.contains("refusing the state dir"), "{err}");
            assert!(!state.join("lock").exists(), "nothing written in it");

            // The state dir is fine, the socket's directory is not.
            mode(&state, 0o700);
            mode(setup.dir.path(), 0o1777);
            let agent = setup
                .cmd(&["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (status, err) = wait_exit(agent);
            assert_eq!(status.code(), Some(2), "{err}");
            assert!(
                err.contains(&format!(
                    "refusing the control socket's directory {}",
                    setup.dir.path().display()
                )) && err.contains("writable by every user"),
                "{err}"
            );
            assert!(!setup.control_path().exists());
            assert_eq!(s.request_count(), 0);
            mode(setup.dir.path(), 0o700);
        },
    );
}

/// Item 5: two agents with their own state dirs and no `[state] control` get their own sockets,
/// and each command reaches its own config's agent; an agent never takes over a socket another
/// answers on; and a client whose socket is answered by an agent of another state dir refuses
/// the answer, while that agent refuses the request untouched.
#[test]
fn each_state_dir_has_its_own_agent_on_the_socket() {
    in_netns("each_state_dir_has_its_own_agent_on_the_socket", || {
        // The default socket's directory is /run/dynhostd: a private /run, so that nothing here
        // (or a regression) touches the host's.
        sh("mount -t tmpfs tmpfs /run");
        let top = tempfile::tempdir().unwrap();
        let dir = |n: &str| top.path().join(n);
        for n in ["a", "b", "c", "e"] {
            bare_config(&dir(&format!("{n}.toml")), &dir(n), None);
        }
        let a = spawn_run(&dir("a.toml"), &dir("a.log"));
        a.wait_log("control socket ready");
        a.wait_log("started");
        let b = spawn_run(&dir("b.toml"), &dir("b.log"));
        b.wait_log("control socket ready");
        b.wait_log("started");
        assert!(dir("a").join("control").exists() && dir("b").join("control").exists());

        for (name, agent) in [("a", &a), ("b", &b)] {
            let (st, out, err) = run_with(&dir(&format!("{name}.toml")), &["status"]);
            assert!(st.success(), "{out}{err}");
            assert!(
                out.contains(&format!(
                    "source: the running agent (pid {}, state dir {})",
                    agent.child.id(),
                    dir(name).display()
                )),
                "{name}: {out}"
            );
        }

        // A third agent told to use a's socket does not take it over.
        bare_config(&dir("c.toml"), &dir("c"), Some(&dir("a").join("control")));
        let c = setup_less_exit(&dir("c.toml"));
        assert_eq!(c.0.code(), Some(2), "{}", c.1);
        assert!(
            c.1.contains(&format!(
                "another process (pid {}) answers on the control socket {}",
                a.child.id(),
                dir("a").join("control").display()
            )),
            "{}",
            c.1
        );
        let (st, out, _) = run_with(&dir("a.toml"), &["status"]);
        assert!(
            st.success() && out.contains(&format!("pid {}", a.child.id())),
            "{out}"
        );

        // A client of state dir e whose socket is a's: e's lock is held (say, by an agent
        // starting), a answers, and the answer is refused.
        bare_config(&dir("e.toml"), &dir("e"), Some(&dir("a").join("control")));
        let _held = dynhostd::lock::acquire(&dir("e")).unwrap();
        for args in [&["status"][..], &["update"], &["retry"]] {
            let (st, out, err) = run_with(&dir("e.toml"), args);
            assert_eq!(st.code(), Some(1), "{args:?}: {out}{err}");
            assert!(
                err.contains(&format!(
                    "serves the state dir {}, not {}",
                    dir("a").display(),
                    dir("e").display()
                )),
                "{args:?}: {err}"
            );
        }
        a.wait_log("control: refused a request for the state dir");
        let log = a.log();
        assert!(
            !log.contains("control: update handed over") && !log.contains("control: retry"),
            "{log}"
        );
        assert!(a.stop().0.success());
        assert!(b.stop().0.success());
    });
}

/// `dynhostd run --config CONFIG` expected to exit by itself: (status, stderr).
fn setup_less_exit(config: &Path) -> (std::process::ExitStatus, String) {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env_remove("DYNHOSTD_LOG")
        .env_remove("RUNTIME_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_exit(child)
}

/// Item 6: a socket bound by another user (here a whole dynhostd agent running as `nobody`,
/// at the path root's config names, while root's state dir is locked as by an agent starting)
/// is not talked to: root's `update` and `status` refuse it, naming its uid, and the impostor
/// never sees a request.
#[test]
fn a_socket_served_by_another_user_is_refused() {
    let test = "a_socket_served_by_another_user_is_refused";
    if !root_prerequisite(test) {
        return;
    }
    const NOBODY: u32 = 65534;
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let theirs = top.path().join("theirs");
    let sockdir = top.path().join("sock");
    for d in [&theirs, &sockdir] {
        std::fs::create_dir(d).unwrap();
        std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let sock = sockdir.join("control");
    let imp_cfg = top.path().join("impostor.toml");
    bare_config(&imp_cfg, &theirs, Some(&sock));
    std::fs::set_permissions(&imp_cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = top.path().join("impostor.log");
    let impostor = Command::new("unshare")
        .args(["-n", "--", "setpriv"])
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--"])
        .arg(BIN)
        .args(["run", "--config"])
        .arg(&imp_cfg)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DYNHOSTD_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let impostor = Agent {
        child: impostor,
        log,
    };
    impostor.wait_log("control socket ready");

    // Root's own state dir, locked as by its agent starting up.
    let ours = top.path().join("ours");
    let root_cfg = top.path().join("root.toml");
    bare_config(&root_cfg, &ours, Some(&sock));
    let _held = dynhostd::lock::acquire(&ours).unwrap();
    for args in [
        &["update", "--ip", "203.0.113.5"][..],
        &["status"],
        &["check-now"],
    ] {
        let (st, out, err) = run_with(&root_cfg, args);
        assert_eq!(st.code(), Some(1), "{args:?}: {out}{err}");
        assert!(
            err.contains(&format!("it is served by uid {NOBODY}"))
                && err.contains("refusing to talk to it"),
            "{args:?}: {err}"
        );
        assert!(!out.contains("the running agent"), "{out}");
    }
    let log = impostor.log();
    assert!(
        !log.contains("control:"),
        "the impostor saw a request:\n{log}"
    );
}

/// Item 8: idle connections (more than the old limit of 8) do not keep other clients out.
#[test]
fn idle_connections_do_not_keep_clients_out() {
    in_netns("idle_connections_do_not_keep_clients_out", || {
        if !netns::tun_available("idle_connections_do_not_keep_clients_out") {
            return;
        }
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        agent.wait_log("updated home.example.com/A");
        let idle: Vec<UnixStream> = (0..16)
            .map(|_| UnixStream::connect(setup.control_path()).unwrap())
            .collect();
        let (st, out, err) = setup.run(&["status"]);
        assert!(st.success(), "{out}{err}");
        assert!(out.contains("source: the running agent"), "{out}{err}");
        let (st, out, err) = setup.run(&["update"]);
        assert!(st.success(), "{out}{err}");
        assert!(
            out.contains("home.example.com/A: 203.0.113.10 is already published"),
            "{out}"
        );
        drop(idle);
        assert!(agent.stop().0.success());
    });
}

/// Item 8: an agent that holds the lock but does not answer (closes at once) is no reason for
/// `status` to fail: it shows the state file, saying why.
#[test]
fn status_falls_back_to_the_state_file_when_the_agent_does_not_answer() {
    let setup = Setup::new();
    setup.write_config_full(
        Some("ppp0"),
        "300ms",
        "",
        "",
        &[format!(
            "{HOME}\nserver = \"http://127.0.0.1:9/nic/update\""
        )],
    );
    let state = setup.state_path().parent().unwrap().to_path_buf();
    let _held = dynhostd::lock::acquire(&state).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(setup.control_path()).unwrap();
    let mute = std::thread::spawn(move || {
        // Takes each connection and closes it unread, as an overloaded or dying agent may.
        for conn in listener.incoming().take(2) {
            drop(conn);
        }
    });
    for args in [&["status"][..], &["status", "--json"]] {
        let (st, out, err) = setup.run(args);
        assert!(st.success(), "{args:?}: {out}{err}");
        assert!(err.contains("showing the state file instead"), "{err}");
        assert!(
            out.contains("source: the state file") || out.contains("\"source\": \"state-file\""),
            "{out}"
        );
    }
    mute.join().unwrap();
}

/// Item 9: `reload` on the socket reads the config again, and says how it went: refused, with
/// the reason, when the new config is wrong (the running one stays).
#[test]
fn reload_over_the_socket_says_how_it_went() {
    in_netns("reload_over_the_socket_says_how_it_went", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        let agent = setup.start_agent(&[]);
        let ask = |line: String| {
            let mut c = UnixStream::connect(setup.control_path()).unwrap();
            c.set_read_timeout(Some(LONG)).unwrap();
            c.write_all(line.as_bytes()).unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            serde_json::from_str::<serde_json::Value>(&reply)
                .unwrap_or_else(|e| panic!("{e}: {reply}"))
        };
        let state = setup.state_path().parent().unwrap().display().to_string();
        let reload =
            format!("{{\"state_dir\":\"{state}\",\"request\":{{\"command\":\"reload\"}}}}\n");
        let reply = ask(reload.clone());
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["agent"]["pid"], agent.child.id(), "{reply}");
        agent.wait_log("configuration reloaded");

        let good = std::fs::read_to_string(setup.config_path()).unwrap();
        std::fs::write(
            setup.config_path(),
            good.replace("[wan]", "[wan]\nbogus = 1"),
        )
        .unwrap();
        let reply = ask(reload);
        assert_eq!(reply["ok"], false, "{reply}");
        let said = reply["lines"].to_string();
        assert!(
            said.contains("reload failed") && said.contains("bogus"),
            "{said}"
        );
        agent.wait_log("reload failed, keeping the running configuration");
        std::fs::write(setup.config_path(), good).unwrap();
        assert!(agent.stop().0.success());
    });
}

/// Item 10: at boot pppd's ip-up runs a one-shot `update` while the service starts. The agent
/// waits for its lock (saying so) instead of exiting 1, and takes over once it is done.
#[test]
fn the_agent_waits_for_a_one_shot_update_that_holds_the_lock() {
    in_netns(
        "the_agent_waits_for_a_one_shot_update_that_holds_the_lock",
        || {
            if !netns::tun_available("the_agent_waits_for_a_one_shot_update_that_holds_the_lock") {
                return;
            }
            let s = standin_https();
            // The first request hangs until the one-shot's own timeout (3 s) gives up.
            s.fail_next(1, standin::Fault::hang());
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            ppp0("203.0.113.10", "10.64.0.1");
            let update = setup
                .cmd(&["update"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            s.wait_for_requests_blocking(1, LONG).unwrap();

            let mut agent = setup.spawn_agent_env(&[], &[]);
            agent.wait_log("a one-shot `dynhostd update` or `retry`; waiting up to 30s");
            let (status, err) = wait_exit(update);
            assert_eq!(status.code(), Some(1), "the hung request failed: {err}");
            agent.wait_log("the state dir's lock is ours now");
            agent.wait_log("started");
            assert!(agent.running());
            // The one-shot saved its failure before letting go: the agent starts from it (backing
            // off), and it alone answers now.
            let rows = status_json(&setup);
            assert_eq!(rows[0]["source"], "agent", "{rows}");
            assert_eq!(rows[0]["pid"], agent.child.id(), "{rows}");
            assert_eq!(rows[0]["phase"], "backing-off", "{rows}");
            assert!(rows[0]["failures"].as_u64() >= Some(1), "{rows}");
            assert!(agent.stop().0.success());
        },
    );
}

/// Item 17: `status` by a user who cannot read the state dir says what it cannot read and
/// exits 1, rather than showing every record as unknown.
#[test]
fn status_says_what_it_cannot_read() {
    let test = "status_says_what_it_cannot_read";
    if !root_prerequisite(test) {
        return;
    }
    let top = tempfile::tempdir().unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = top.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("lock"), "").unwrap();
    std::fs::write(state.join("state.json"), "{}").unwrap();
    std::fs::set_permissions(
        state.join("state.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let cfg = top.path().join("config.toml");
    bare_config(&cfg, &state, Some(&top.path().join("control")));
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_nobody = || {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(BIN)
            .args(["status", "--config"])
            .arg(&cfg)
            .env_remove("DYNHOSTD_LOG")
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The state dir itself is closed to others.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (st, out, err) = as_nobody();
    assert_eq!(st.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "cannot read the lock file {}",
            state.join("lock").display()
        )),
        "{err}"
    );
    assert!(!err.contains("control socket"), "{err}");
    // The dir can be searched, the lock read, the state file not.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o711)).unwrap();
    let (st, out, err) = as_nobody();
    assert_eq!(st.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "cannot read the state file {}",
            state.join("state.json").display()
        )),
        "{err}"
    );
    assert!(!out.contains("unknown"), "{out}");
}
