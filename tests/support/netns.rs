//! Test harness for real-kernel tests: each test runs inside a fresh user + network namespace.
//!
//! `in_netns` re-executes the current test binary under `unshare -rn`, asking libtest to run
//! just that one test. Inside, we are "root" of a private network stack: `ip` can create veth,
//! tun, bridge and macvlan devices and routes without real privileges, nothing touches the
//! host's network, tests can run in parallel, and everything disappears with the process.
//! Works the same whether the outer process is root (CI) or an ordinary user.
//!
//! Include it with `#[path = "support/netns.rs"] mod netns;`.

#![allow(dead_code)]

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

/// Set in the re-executed child to say "you are inside the namespace: run the body".
const INSIDE: &str = "DYNHOSTD_TEST_IN_NETNS";

/// True when running inside the namespace created by [`in_netns`].
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some_and(|v| v == "1")
}

/// Runs `body` inside a fresh user+net namespace. Outside: re-execs current_exe() as
/// `unshare -rnm -- <exe> <test_name> --exact --nocapture --test-threads=1` with env
/// DYNHOSTD_TEST_IN_NETNS=1 and asserts it succeeded (forwarding its output).
/// Inside (env var set): brings `lo` up and runs body.
/// Where `unshare -rnm` cannot work (no util-linux, user namespaces off) that is a missing
/// [`prerequisite`]: a failure under CI, a `SKIPPED` line otherwise.
///
/// `test_name` must be the libtest name of the calling test (for a top-level fn in an
/// integration test file, just the fn name).
pub fn in_netns(test_name: &str, body: impl FnOnce()) {
    if inside() {
        // RUST_LOG=dynhostd=trace shows what the code under test did, in the child's output.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        sh("ip link set lo up");
        body();
        return;
    }
    let userns = user_namespaces();
    if !prerequisite(
        test_name,
        userns.is_ok(),
        userns.as_ref().err().map_or("", |e| e),
    ) {
        return;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("unshare")
        .arg("-rnm")
        .arg("--")
        .arg(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux) for {test_name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Forward the child's output; print! (not io::stdout) so libtest's capture still applies.
    // Except a skip decided inside (e.g. no tun): that must be seen without --nocapture.
    print!("{stdout}");
    for line in stderr.lines() {
        if line.starts_with("SKIPPED ") {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            eprintln!("{line}");
        }
    }
    // The child skipped the test (see `need_tun`): nothing more to check.
    if out.status.success() && stderr.lines().any(|l| l.starts_with("SKIPPED ")) {
        return;
    }
    // libtest exits with 101 when the test fails; anything else means the namespace itself
    // could not be set up.
    assert!(
        out.status.success(),
        "{test_name} failed inside the namespace ({}){}",
        out.status,
        if out.status.code() == Some(101) {
            ""
        } else {
            "; is `unshare -rn` allowed here (user namespaces enabled)?"
        }
    );
    // A misspelt name would make libtest run nothing and still succeed.
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "{test_name}: the child did not run exactly one test; does the name match the fn?"
    );
}

/// Runs a shell command (e.g. "ip link add v0 type veth peer name v1"), panics with stderr on
/// failure. Returns stdout. A command that makes a tun device (`ip tuntap add`, e.g. a test's
/// `ppp0`) first checks that /dev/net/tun can be opened: see [`need_tun`].
pub fn sh(cmd: &str) -> String {
    if cmd.contains("tuntap add") {
        need_tun();
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh for `{cmd}`: {e}"));
    assert!(
        out.status.success(),
        "`{cmd}` failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Feeds `lines` to `ip -batch -` (one `ip` invocation for thousands of changes, so they reach
/// the kernel faster than a watcher can read them). Panics on failure.
pub fn ip_batch(lines: &[String]) {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip -batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A veth pair with both ends up (so it has carrier and IPv6 DAD runs).
pub fn veth(name: &str, peer: &str) {
    sh(&format!(
        "ip link add {name} type veth peer name {peer} && ip link set {name} up && ip link set {peer} up"
    ));
}

/// The ifindex of `name` in this namespace (from `ip`, since /sys still shows the host's).
pub fn ifindex(name: &str) -> u32 {
    let out = sh(&format!("ip -o link show dev {name}"));
    out.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ifindex for {name} in {out:?}"))
}

/// Whether tun devices can be created here. `/dev/net/tun` is a host device node: a user
/// namespace does not change its permissions, and some hosts make it 0600 root. A missing one
/// is a [`prerequisite`]: it fails the test under `CI` / `DYNHOSTD_TEST_STRICT=1`.
pub fn tun_available(test_name: &str) -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .is_ok();
    prerequisite(test_name, ok, "/dev/net/tun cannot be opened by this user")
}

/// For a helper deep inside a namespaced test that needs a tun device: where /dev/net/tun cannot
/// be opened, a failure under [`strict`]; otherwise the test is skipped from here: the child
/// prints `SKIPPED <test>: <why>` and exits 0, and [`in_netns`] reports the skip. (libtest
/// names the thread that runs a test after the test.)
pub fn need_tun() {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if !tun_available(&test) {
        assert!(inside(), "{test}: need_tun outside the namespace");
        std::process::exit(0);
    }
}

/// Like [`need_tun`], for any prerequisite found missing inside the namespace.
pub fn need(ok: bool, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if !prerequisite(&test, ok, why) {
        assert!(inside(), "{test}: need() outside the namespace");
        std::process::exit(0);
    }
}

/// Whether a missing prerequisite fails the test instead of skipping it (contract 1): when `CI`
/// is set (any value) or `DYNHOSTD_TEST_STRICT=1` (`scripts/test-all` exports it). A green run
/// there means every test really ran.
pub fn strict() -> bool {
    std::env::var_os("CI").is_some()
        || std::env::var_os("DYNHOSTD_TEST_STRICT").is_some_and(|v| v == "1")
}

/// The one place that decides what a missing prerequisite does. Returns `ok`. When it is false:
/// under [`strict`] the test fails here, naming what is missing; otherwise this prints
/// `SKIPPED <test>: <why>` and the caller returns (or leaves out the part that needs it).
///
/// The line goes straight to the process's stderr, past libtest's capture, so a developer
/// running `cargo test` by hand sees it without `--nocapture`.
pub fn prerequisite(test_name: &str, ok: bool, why: &str) -> bool {
    if ok {
        return true;
    }
    assert!(
        !strict(),
        "{test_name}: missing prerequisite: {why} (CI or DYNHOSTD_TEST_STRICT=1 is set, so this \
         fails instead of skipping)"
    );
    let _ = writeln!(std::io::stderr(), "SKIPPED {test_name}: {why}");
    false
}

/// Whether `unshare -rn` works here (util-linux installed, user namespaces allowed). Asked once
/// per test binary.
fn user_namespaces() -> Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    PROBE
        .get_or_init(|| {
            match Command::new("unshare")
                .args(["-rnm", "--", "true"])
                .output()
            {
                Ok(out) if out.status.success() => Ok(()),
                Ok(out) => Err(format!(
                    "`unshare -rnm` fails here ({}): user namespaces disabled? {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Err(format!("cannot run unshare (util-linux): {e}")),
            }
        })
        .clone()
}

/// Polls `cond` until it is true or `timeout` passes; panics with `what` on timeout.
/// For waiting on the kernel without asserting on timing.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
