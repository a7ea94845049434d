//! What the binary writes, black box (issue 20, item 17): a closed stdout ends a command
//! quietly, as it ends `cat` (SIGPIPE, no panic, nothing on stderr); an error's causes are each
//! printed once; and what clients send the agent cannot flood its log. The one-shot commands
//! need no network (a config and a state directory in a temporary directory); the agent runs
//! in a fresh user+network namespace against the local DynHost stand-in.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

#[path = "support/cli.rs"]
mod cli;

use cli::{BIN, HOME, LONG, Setup, ppp0, standin_https};
use netns::in_netns;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// A config with one host and its state (and control socket) under `state_dir`.
fn config(dir: &Path, state_dir: &Path) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[state]\ndir = \"{}\"\ncontrol = \"{}\"\n\n[[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"Pw-for-tests-9f83b1\"\n",
        state_dir.display(),
        dir.join("control").display()
    );
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

fn dynhostd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("DYNHOSTD_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null());
    c
}

/// Runs `args` with stdout a pipe whose reading end is already closed, so the first print
/// fails however fast the command is: (status, stderr).
fn with_closed_stdout(args: &[&str]) -> (std::process::ExitStatus, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = dynhostd(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_each_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &dir.path().join("state"));
    let cfg = cfg.to_str().unwrap();
    let mut commands = vec![
        vec!["status", "--config", cfg],
        vec!["status", "--json", "--config", cfg],
        vec!["check", "--config", cfg],
    ];
    if cfg!(feature = "generate") {
        commands.push(vec!["generate", "man"]);
        commands.push(vec!["generate", "completions", "bash"]);
    }
    // (clap's own --help output already ignores a closed stdout: exit 0, nothing said.)
    for args in commands {
        // -q: the log's info lines (e.g. "no state file yet") are not what is looked for.
        let args = [&["-q"], &args[..]].concat();
        let (status, stderr) = with_closed_stdout(&args);
        // `check` says on stderr that the config is valid, after its output: never reached.
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{args:?} did not end as a closed pipe ends a command: {status}\n{stderr}"
        );
        assert!(stderr.is_empty(), "{args:?} wrote on stderr:\n{stderr}");
    }
}

/// An error whose type already puts its cause in its message is printed with each cause once
/// (it used to end `…: Not a directory (os error 20): Not a directory (os error 20)`).
#[test]
fn an_error_names_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    // The state directory under a regular file: it cannot be made or locked.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let cfg = config(dir.path(), &dir.path().join("file").join("state"));
    let out = dynhostd(&["retry", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("dynhostd: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(error.contains("os error"), "{error}");
    let causes: Vec<&str> = error.split(": ").collect();
    for (i, c) in causes.iter().enumerate() {
        assert!(
            !causes[..i].contains(c),
            "{c:?} is printed twice in {error:?}"
        );
    }
}

/// Clients cannot flood the agent's log (it lives in a router's RAM or flash): a request with a
/// 60 KB host list is logged in a bounded line, and a warning each oversize request causes is
/// let through a few times, not once per request.
#[test]
fn requests_to_the_agent_cannot_flood_its_log() {
    in_netns("requests_to_the_agent_cannot_flood_its_log", || {
        let s = standin_https();
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        let mut agent = setup.start_agent(&[]);
        s.wait_for_requests_blocking(1, LONG).unwrap();
        let sock = setup.control_path();

        // `retry` naming 3000 hosts: refused (none is configured), and logged.
        let hosts: Vec<String> = (0..3000).map(|i| format!("h{i:04}.example.com")).collect();
        let mut args = vec!["retry"];
        args.extend(hosts.iter().map(String::as_str));
        let (status, out, err) = setup.run(&args);
        assert_eq!(status.code(), Some(1), "{out}{err}");
        agent.wait_log("control: retry");

        // 30 requests over the size limit, one after the other.
        let mut line = vec![b'x'; 65 * 1024];
        line.push(b'\n');
        for _ in 0..30 {
            let mut c = UnixStream::connect(&sock).unwrap();
            c.set_read_timeout(Some(LONG)).unwrap();
            // The agent may close before it has read it all: EPIPE is fine.
            let _ = c.write_all(&line);
            let mut reply = String::new();
            let _ = c.read_to_string(&mut reply);
        }
        // The agent has handled them all once it answers the next one.
        let (status, out, err) = setup.run(&["status"]);
        assert!(status.success(), "{out}{err}");
        assert!(out.contains("source: the running agent"), "{out}");
        assert!(agent.running());

        let log = agent.log();
        let longest = log.lines().map(str::len).max().unwrap_or(0);
        assert!(longest < 4096, "a log line of {longest} bytes");
        assert!(log.contains("more bytes not logged]"), "{log}");
        let refused = log
            .lines()
            .filter(|l| l.contains("refused a request longer"))
            .count();
        assert!(
            (1..=10).contains(&refused),
            "{refused} warnings for 30 oversize requests"
        );
        assert!(agent.stop().0.success());
    });
}
