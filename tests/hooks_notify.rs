//! The edges of the agent, black-box: `exec` hooks run after each update attempt with the
//! documented environment (and never through a shell), and the systemd notify protocol
//! (READY, RELOADING, STOPPING, WATCHDOG) spoken to a socket the test listens on.

#[path = "support/check.rs"]
mod check;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use check::check_config;
use cli::*;
use netns::{in_netns, sh, wait_for};
use standin::Fault;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// A hook that appends its DYNHOSTD_* environment, one event per line, to `out`.
fn write_hook(dir: &Path, out: &Path) -> std::path::PathBuf {
    let hook = dir.join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf 'host=%s family=%s ip=%s old=%s event=%s error=%s\\n' \"$DYNHOSTD_HOST\" \"$DYNHOSTD_FAMILY\" \"$DYNHOSTD_IP\" \"$DYNHOSTD_OLD_IP\" \"$DYNHOSTD_EVENT\" \"$DYNHOSTD_ERROR\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook
}

fn events(out: &Path) -> Vec<BTreeMap<String, String>> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            // "key=value" pairs; the error text may hold spaces, so it is the rest of the line.
            let (head, error) = l.split_once(" error=").unwrap();
            let mut m: BTreeMap<String, String> = head
                .split(' ')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            m.insert("error".into(), error.to_string());
            m
        })
        .collect()
}

#[test]
fn exec_hooks_run_after_each_attempt_with_the_documented_environment() {
    in_netns(
        "exec_hooks_run_after_each_attempt_with_the_documented_environment",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let out = setup.dir.path().join("hook.out");
            let hook = write_hook(setup.dir.path(), &out);
            let bad = format!(
                "{}\nexec = \"{}\"",
                OFFICE.replace(PASSWORD, "wrong"),
                hook.display()
            );
            // A global hook for every host; the office entry names its own (the same script).
            let extra = format!(
                "\n[hook]\nexec = \"{}\"\ntimeout = \"5s\"\n",
                hook.display()
            );
            setup.write_config_with(&s, Some("ppp0"), &[HOME, &bad], &extra);
            sh(
                "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
            );
            let agent = setup.start_agent(&[]);
            wait_for("two hook runs", LONG, || events(&out).len() >= 2);
            let ev = events(&out);
            let home = ev.iter().find(|e| e["host"] == "home.example.com").unwrap();
            assert_eq!(home["event"], "updated");
            assert_eq!(home["family"], "ipv4");
            assert_eq!(home["ip"], "203.0.113.10");
            assert_eq!(home["old"], "");
            assert_eq!(home["error"], "");
            let office = ev
                .iter()
                .find(|e| e["host"] == "office.example.com")
                .unwrap();
            assert_eq!(office["event"], "stopped");
            assert!(office["error"].starts_with("401"), "{office:?}");

            // A change: the old address is passed; server trouble is an `error` event.
            s.fail_next(1, Fault::status(500));
            sh(
                "ip addr del 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip addr add 203.0.113.11 peer 10.64.0.1 dev ppp0",
            );
            wait_for("the error hook", LONG, || events(&out).len() >= 3);
            let e = &events(&out)[2];
            assert_eq!(
                (e["event"].as_str(), e["ip"].as_str(), e["old"].as_str()),
                ("error", "203.0.113.11", "203.0.113.10")
            );
            assert!(e["error"].contains("500"), "{e:?}");
            assert!(agent.stop().0.success());

            // `update` sends the address the 500 kept out (the office host is stopped, so it exits
            // 1; the home hook still runs) ...
            let (status, _, err) = setup.run(&["update"]);
            assert_eq!(status.code(), Some(1), "{err}");
            let last = events(&out).pop().unwrap();
            assert_eq!(
                (last["event"].as_str(), last["ip"].as_str()),
                ("updated", "203.0.113.11")
            );
            // ... and `--force` on the unchanged address gives `unchanged` (nochg).
            let (status, _, err) = setup.run(&["update", "--force"]);
            assert_eq!(status.code(), Some(1), "{err}");
            let last = events(&out).pop().unwrap();
            assert_eq!(
                (last["host"].as_str(), last["event"].as_str()),
                ("home.example.com", "unchanged")
            );
            // Dry runs run no hook.
            let before = events(&out).len();
            let (_, _, _) = setup.run(&["update", "--ip", "203.0.113.99", "--dry-run"]);
            assert_eq!(events(&out).len(), before);
        },
    );
}

/// A hook sees an allowlist: a fixed PATH, the locale, the time zone and the event; never the
/// password given through `password_env`, nor anything else the agent was started with.
#[test]
fn a_hook_gets_only_the_allowlisted_environment() {
    in_netns("a_hook_gets_only_the_allowlisted_environment", || {
        let s = standin_https();
        let setup = Setup::new();
        let out = setup.dir.path().join("environ");
        let hook = setup.dir.path().join("env.sh");
        // What execve handed over, from /proc, before the shell adds anything of its own.
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh
/bin/cat /proc/$$/environ > '{}'
",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword_env = \"DYNHOSTD_PASSWORD\"";
        let extra = format!("\n[hook]\nexec = \"{}\"\n", hook.display());
        setup.write_config_with(&s, Some("ppp0"), &[home], &extra);
        let (status, _, err) = setup.run_env(
            &["update", "--ip", "203.0.113.50"],
            &[
                ("DYNHOSTD_PASSWORD", PASSWORD),
                ("OVH_APPLICATION_SECRET", "ovh-secret-0b9e"),
                ("UNRELATED", "x"),
                ("LC_SECRET", "ovh-secret-in-lc"),
                ("LD_PRELOAD", ""),
                ("PATH", "/nonexistent-evil:/usr/bin:/bin"),
                ("LANG", "C.UTF-8"),
                ("LC_TIME", "C"),
                ("TZ", "UTC"),
            ],
        );
        assert!(status.success(), "{err}");
        let environ = std::fs::read(&out).expect("the hook ran");
        let vars: BTreeMap<String, String> = environ
            .split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| {
                let v = String::from_utf8_lossy(v);
                let (k, v) = v.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let names: Vec<&str> = vars.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "DYNHOSTD_ERROR",
                "DYNHOSTD_EVENT",
                "DYNHOSTD_FAMILY",
                "DYNHOSTD_HOST",
                // The interface the address came from (issue 25): here none, `update --ip`.
                "DYNHOSTD_INTERFACE",
                "DYNHOSTD_IP",
                "DYNHOSTD_OLD_IP",
                "LANG",
                "LC_TIME",
                "PATH",
                "TZ"
            ],
            "{vars:?}"
        );
        assert_eq!(
            vars["PATH"],
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
        assert_eq!(
            (vars["LANG"].as_str(), vars["TZ"].as_str()),
            ("C.UTF-8", "UTC")
        );
        assert_eq!(vars["DYNHOSTD_EVENT"], "updated");
        let text = String::from_utf8_lossy(&environ);
        assert!(
            !text.contains(PASSWORD) && !text.contains("ovh-secret"),
            "{text}"
        );
    });
}

#[test]
fn a_hook_that_is_not_executable_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[[host]]\n{HOME}\nexec = \"{}\"\n", hook.display()),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host[0].exec") && err.contains("not an executable file"),
        "{err}"
    );
}

/// `exec = "hookprobe"` with a relative `--config` is the file next to the config, resolved once;
/// it is that file that runs, never a `hookprobe` found in the caller's `$PATH`.
#[test]
fn a_relative_hook_runs_the_file_next_to_the_config_never_one_from_path() {
    in_netns(
        "a_relative_hook_runs_the_file_next_to_the_config_never_one_from_path",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let evil = tempfile::tempdir().unwrap();
            let marker = |name: &str| setup.dir.path().join(name);
            for (dir, name) in [(setup.dir.path(), "good"), (evil.path(), "evil")] {
                let hook = dir.join("hookprobe");
                std::fs::write(
                    &hook,
                    format!("#!/bin/sh\n: > '{}'\n", marker(name).display()),
                )
                .unwrap();
                std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            setup.write_config_with(
                &s,
                Some("ppp0"),
                &[HOME],
                "\n[hook]\nexec = \"hookprobe\"\n",
            );
            let path = format!("{}:/usr/bin:/bin", evil.path().display());
            let run = |args: &[&str]| {
                std::process::Command::new(BIN)
                    .args(args)
                    .args(["--config", "config.toml"])
                    .current_dir(setup.dir.path())
                    .env("PATH", &path)
                    .env_remove("DYNHOSTD_LOG")
                    .output()
                    .unwrap()
            };
            let out = run(&["update", "--ip", "203.0.113.50"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(marker("good").exists(), "the checked hook did not run");
            assert!(!marker("evil").exists(), "the hook from $PATH ran");
            // `check` shows the one file it resolved.
            let out = run(&["check"]);
            let shown = String::from_utf8_lossy(&out.stdout);
            let want = setup.dir.path().join("hookprobe");
            assert!(
                shown.contains(&format!("exec = \"{}\"", want.display())),
                "{shown}"
            );
        },
    );
}

/// A hook anyone but its owner can write is a way in: `check` (and the agent at start, which
/// reads the config the same way) says so, naming the key, and still accepts it.
#[test]
fn a_hook_writable_by_others_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\n").unwrap();
    let text = "[hook]\nexec = \"hook.sh\"\n\n[[host]]\n".to_string() + HOME;
    let check = || {
        let (code, stderr) = check_config(dir.path(), &text);
        assert_eq!(code, Some(0), "{stderr}");
        stderr
    };
    for mode in [0o775, 0o757] {
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = check();
        assert!(
            err.contains("WARN")
                && err.contains("c.toml:2: hook.exec:")
                && err.contains("writable by group or others"),
            "{mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = check();
    assert!(!err.contains("writable"), "{err}");
}

/// The agent says it too, at start.
#[test]
fn the_agent_warns_at_start_about_a_hook_others_may_write() {
    in_netns(
        "the_agent_warns_at_start_about_a_hook_others_may_write",
        || {
            let s = standin_https();
            let setup = Setup::new();
            let hook = setup.dir.path().join("hook.sh");
            std::fs::write(&hook, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o777)).unwrap();
            let extra = format!("\n[hook]\nexec = \"{}\"\n", hook.display());
            setup.write_config_with(&s, Some("ppp0"), &[HOME], &extra);
            let agent = setup.start_agent(&["--dry-run"]);
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
            assert!(
                log.lines().any(|l| l.contains("WARN")
                    && l.contains("hook.exec:")
                    && l.contains("writable by group or others (mode 777)")),
                "{log}"
            );
        },
    );
}

/// An ELF header for `machine`, little-endian, 64-bit, of type `e_type`.
fn elf(machine: u16, e_type: u16) -> Vec<u8> {
    let mut h = b"\x7fELF\x02\x01\x01".to_vec();
    h.resize(16, 0);
    h.extend_from_slice(&e_type.to_le_bytes());
    h.extend_from_slice(&machine.to_le_bytes());
    h.resize(64, 0);
    h
}

/// A hook execve(2) would refuse (ENOEXEC, ENOENT for its interpreter) is refused by `check`,
/// naming the key and the line, instead of failing at every event later.
#[test]
fn a_hook_this_machine_cannot_run_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = |name: &str, body: &[u8], mode: u32| {
        let p = d.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let not_x = file("not-x", b"#!/bin/sh\n", 0o644);
    let foreign = if std::env::consts::ARCH == "x86_64" {
        183
    } else {
        62
    };
    let bad: Vec<(std::path::PathBuf, &str)> = vec![
        (
            file("no-interp", b"#!/nonexistent/sh\necho\n", 0o755),
            "/nonexistent/sh",
        ),
        (
            file(
                "interp-not-x",
                format!("#!{}\n", not_x.display()).as_bytes(),
                0o755,
            ),
            "is not an executable file",
        ),
        (
            file("empty-interp", b"#!  \necho\n", 0o755),
            "names no interpreter",
        ),
        (
            file("relative-interp", b"#!sh\n", 0o755),
            "not an absolute path",
        ),
        (
            file("text", b"echo hello\n", 0o755),
            "neither a program (ELF) nor a script",
        ),
        (
            file("empty", b"", 0o755),
            "neither a program (ELF) nor a script",
        ),
        (
            file("foreign", &elf(foreign, 2), 0o755),
            "an ELF program for",
        ),
        (file("object", &elf(62, 1), 0o755), "not a program"),
        (file("truncated", b"\x7fELF\x02\x01", 0o755), "truncated"),
    ];
    let check = |hook: &Path| {
        check_config(
            d,
            &format!("[[host]]\n{HOME}\nexec = \"{}\"\n", hook.display()),
        )
    };
    for (hook, why) in &bad {
        let (code, err) = check(hook);
        assert_eq!(code, Some(2), "{}: {err}", hook.display());
        assert!(
            err.contains("c.toml:5: host[0].exec:") && err.contains(why),
            "{}: {err}",
            hook.display()
        );
    }
    // What this machine runs: a script with a real interpreter, one through env, this very
    // program (an ELF of this machine's kind).
    let env_script = file("env-sh", b"#!/usr/bin/env sh\n", 0o755);
    let sh_script = file("sh", b"#!/bin/sh -e\n", 0o755);
    for good in [sh_script.as_path(), env_script.as_path(), Path::new(BIN)] {
        let (code, err) = check(good);
        assert_eq!(code, Some(0), "{}: {err}", good.display());
    }
}

#[test]
fn systemd_notify_ready_reloading_stopping_and_watchdog() {
    in_netns(
        "systemd_notify_ready_reloading_stopping_and_watchdog",
        || {
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            sh(
                "ip tuntap add mode tun name ppp0 && ip addr add 203.0.113.10 peer 10.64.0.1 dev ppp0 && ip link set ppp0 up",
            );
            let sock_path = setup.dir.path().join("notify.sock");
            let sock = UnixDatagram::bind(&sock_path).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let sock_env = sock_path.to_string_lossy().into_owned();
            let agent = setup.start_agent_env(
                &[],
                &[("NOTIFY_SOCKET", &sock_env), ("WATCHDOG_USEC", "400000")],
            );
            let mut got: Vec<String> = Vec::new();
            let until = |what: &str, got: &mut Vec<String>| {
                let deadline = std::time::Instant::now() + LONG;
                let mut buf = [0u8; 512];
                while !got.iter().any(|m| m.contains(what)) {
                    assert!(std::time::Instant::now() < deadline, "no {what} in {got:?}");
                    if let Ok(n) = sock.recv(&mut buf) {
                        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                }
            };
            until("READY=1", &mut got);
            // The watchdog is fed every half WATCHDOG_USEC.
            until("WATCHDOG=1", &mut got);
            got.retain(|m| !m.contains("WATCHDOG=1"));
            until("WATCHDOG=1", &mut got);
            got.clear();
            agent.signal("HUP");
            until("RELOADING=1", &mut got);
            assert!(got.iter().any(|m| m.contains("MONOTONIC_USEC=")), "{got:?}");
            got.clear();
            until("READY=1", &mut got);
            agent.signal("TERM");
            until("STOPPING=1", &mut got);
            let (status, log) = agent.stop();
            assert!(status.success(), "{log}");
        },
    );
}

/// Under systemd (JOURNAL_STREAM set) log lines carry the syslog priority for journald and no
/// timestamp of our own; otherwise they are timestamped.
#[test]
fn logs_are_journald_friendly_under_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n\n[[host]]\n{HOME}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A corrupt state file makes `status` warn.
    std::fs::write(dir.path().join("state.json"), "{not json").unwrap();
    let run = |journal: bool| {
        let mut c = std::process::Command::new(BIN);
        c.arg("status")
            .arg("--config")
            .arg(&cfg)
            .env_remove("DYNHOSTD_LOG");
        if journal {
            c.env("JOURNAL_STREAM", "8:12345");
        } else {
            c.env_remove("JOURNAL_STREAM");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let journal = run(true);
    let line = journal
        .lines()
        .find(|l| l.contains("state file unreadable"))
        .expect(&journal);
    assert!(line.starts_with("<4> WARN"), "{line}");
    assert!(!line.contains("Z "), "no timestamp of our own: {line}");
    let plain = run(false);
    let line = plain
        .lines()
        .find(|l| l.contains("state file unreadable"))
        .expect(&plain);
    assert!(line.contains("WARN") && !line.starts_with('<'), "{line}");
    assert!(line.starts_with("20"), "timestamped: {line}");
}
