//! `dynhostd check`, black-box, on values that parse but make no sense for a DynHost client
//! (issue #20): a hostname that is an address, `localhost` or a wildcard; an update URL with a
//! query string, a fragment or port 0; timeouts of years; a back-off that starts above its cap.
//! Each is refused with exit 2, naming the file, the line and the key; the sane neighbours of
//! each are still accepted.

#[path = "support/check.rs"]
mod check;

use check::check_config;
use std::path::Path;

const HOST: &str =
    "[[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"p\"\n";

/// `check` on `text`: (exit code, stderr).
fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    check_config(dir, text)
}

/// A host whose `key = value` is the fifth line.
fn host_with(key: &str, value: &str) -> String {
    format!(
        "[[host]]\nlogin = \"example.com-home\"\npassword = \"p\"\nprovider = \"dyndns2\"\n{key} = \"{value}\"\n{}",
        if key == "hostname" {
            "server = \"https://dyndns.example.net/nic/update\"\n"
        } else {
            "hostname = \"home.example.com\"\n"
        }
    )
}

#[test]
fn check_refuses_values_no_dynhost_client_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (config, line, key, what the message must say)
    let cases: Vec<(String, usize, &str, &str)> = vec![
        (
            host_with("hostname", "192.0.2.1"),
            5,
            "host[0].hostname",
            "IP address",
        ),
        (
            host_with("hostname", "2001:db8::1"),
            5,
            "host[0].hostname",
            "IP address",
        ),
        (
            host_with("hostname", "[2001:db8::1]"),
            5,
            "host[0].hostname",
            "IP address",
        ),
        (
            host_with("hostname", "localhost"),
            5,
            "host[0].hostname",
            "own name",
        ),
        (
            host_with("hostname", "LocalHost."),
            5,
            "host[0].hostname",
            "own name",
        ),
        (
            host_with("hostname", "a.localhost"),
            5,
            "host[0].hostname",
            "own name",
        ),
        (
            host_with("hostname", "*.example.com"),
            5,
            "host[0].hostname",
            "wildcard",
        ),
        (
            host_with("hostname", "home*.example.com"),
            5,
            "host[0].hostname",
            "wildcard",
        ),
        (
            host_with(
                "server",
                "https://dyndns.example.net/nic/update?hostname=evil.example.com&myip=6.6.6.6",
            ),
            5,
            "host[0].server",
            "no query string",
        ),
        (
            host_with("server", "https://dyndns.example.net/nic/update?"),
            5,
            "host[0].server",
            "no query string",
        ),
        (
            host_with("server", "https://dyndns.example.net/nic/update#x"),
            5,
            "host[0].server",
            "fragment",
        ),
        (
            host_with("server", "https://dyndns.example.net:0/nic/update"),
            5,
            "host[0].server",
            "port 0",
        ),
        (
            format!("[detect]\nipv4 = [\"https://192.0.2.1:0/\"]\n\n{HOST}"),
            2,
            "detect.ipv4",
            "http(s) URL",
        ),
        (
            format!("[http]\ntimeout = \"3650d\"\n\n{HOST}"),
            2,
            "http.timeout",
            "at most \"5m\"",
        ),
        (
            format!("[http]\ntimeout = \"5m1s\"\n\n{HOST}"),
            2,
            "http.timeout",
            "too long",
        ),
        (
            format!("[http]\n\nconnect_timeout = \"1h\"\n\n{HOST}"),
            3,
            "http.connect_timeout",
            "at most \"5m\"",
        ),
        (
            format!("[detect]\ntimeout = \"10m\"\n\n{HOST}"),
            2,
            "detect.timeout",
            "at most \"5m\"",
        ),
        (
            format!("[verify]\ntimeout = \"2m\"\n\n{HOST}"),
            2,
            "verify.timeout",
            "at most \"1m\"",
        ),
        (
            format!("[hook]\ntimeout = \"2h\"\n\n{HOST}"),
            2,
            "hook.timeout",
            "at most \"1h\"",
        ),
        (
            format!("[update]\nretry_initial = \"2h\"\n\n{HOST}"),
            2,
            "update.retry_initial",
            "retry_initial (2h) is more than retry_max (30m, the default)",
        ),
        (
            format!("[update]\nretry_initial = \"10m\"\nretry_max = \"5m\"\n\n{HOST}"),
            3,
            "update.retry_max",
            "retry_initial (10m) is more than retry_max (5m)",
        ),
        (
            format!("[update]\nretry_max = \"30s\"\n\n{HOST}"),
            2,
            "update.retry_max",
            "retry_initial (1m) is more than retry_max (30s)",
        ),
    ];
    // Every case is tried, and all that went wrong are shown at once.
    let mut wrong = Vec::new();
    for (text, line, key, why) in &cases {
        let (code, err) = check(d, text);
        if code != Some(2)
            || !err.contains(&format!("c.toml:{line}: {key}: "))
            || !err.contains(why)
        {
            wrong.push(format!("{text}--> exit {code:?}: {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Their sane neighbours stay valid.
    let fine: Vec<String> = vec![
        host_with("hostname", "home.example.com"),
        host_with("hostname", "_dyn.home-1.example.com"),
        host_with("hostname", "localhost.example.com"),
        host_with("hostname", "192.0.2.1.example.com"),
        host_with("server", "https://dyndns.example.net:8443/nic/update"),
        host_with("server", "https://dyndns.example.net/nic/update/"),
        format!("[detect]\nipv4 = [\"https://api.ipify.org/?format=text\"]\n\n{HOST}"),
        format!("[http]\ntimeout = \"5m\"\nconnect_timeout = \"5m\"\n\n{HOST}"),
        format!("[verify]\ntimeout = \"1m\"\n\n[detect]\ntimeout = \"5m\"\n\n{HOST}"),
        format!("[hook]\ntimeout = \"1h\"\n\n{HOST}"),
        format!("[update]\nretry_initial = \"30m\"\n\n{HOST}"),
        format!("[update]\nretry_initial = \"2h\"\nretry_max = \"2h\"\n\n{HOST}"),
    ];
    for text in &fine {
        let (code, err) = check(d, text);
        assert_eq!(code, Some(0), "{text}\n{err}");
    }
}
