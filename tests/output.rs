//! What the one-shot commands write, black box (issue 20, item 17): a closed stdout ends a
//! command quietly, as it ends `cat` (SIGPIPE, no panic, nothing on stderr), and an error's
//! causes are each printed once. Nothing here needs a network: the commands read a config and
//! a state directory in a temporary directory.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dynhostd");

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
