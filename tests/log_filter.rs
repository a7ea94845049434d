//! `DYNHOSTD_LOG` as the binary reads it: documented values are taken, a value that is not a
//! filter stops the command with exit code 2 and a message naming the variable and the
//! directive, and `-v`/`-q` ignore the variable whatever it holds. No network, no namespace:
//! `check` only reads its config.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dynhostd");

fn config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        "[[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"not-sent\"\n",
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    dir
}

fn check(dir: &tempfile::TempDir, log: &str, flags: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(flags)
        .arg("check")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .env("DYNHOSTD_LOG", log)
        .env_remove("JOURNAL_STREAM")
        .output()
        .expect("run dynhostd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn documented_values_are_taken() {
    let dir = config();
    for value in [
        "debug",
        "dynhostd=debug",
        "warn,dynhostd=debug",
        "info,dynhostd::wan=trace",
        "off",
        "",
        "INFO",
    ] {
        let (code, out, err) = check(&dir, value, &[]);
        assert_eq!(code, 0, "DYNHOSTD_LOG={value:?}: {err}");
        assert!(
            out.contains("home.example.com"),
            "DYNHOSTD_LOG={value:?}: {out}"
        );
    }
}

#[test]
fn a_value_that_is_not_a_filter_stops_the_command() {
    let dir = config();
    for (value, directive, why) in [
        ("degub", "degub", "not a level"),
        (
            "info,dynhostd=loud",
            "dynhostd=loud",
            "`loud` is not a level",
        ),
        (
            "dynhostd[run]=debug",
            "dynhostd[run]=debug",
            "span and field filters",
        ),
    ] {
        let (code, out, err) = check(&dir, value, &[]);
        assert_eq!(code, 2, "DYNHOSTD_LOG={value:?}: {err}");
        assert!(
            out.is_empty(),
            "DYNHOSTD_LOG={value:?} still ran the command: {out}"
        );
        assert!(err.contains("DYNHOSTD_LOG="), "{err}");
        assert!(err.contains(&format!("`{directive}`")), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

#[test]
fn verbose_and_quiet_ignore_the_variable() {
    let dir = config();
    for flags in [&["-v"][..], &["-q"], &["-qq"]] {
        let (code, _, err) = check(&dir, "degub", flags);
        assert_eq!(code, 0, "{flags:?}: {err}");
    }
}
