//! Drives the built `dynhostd` binary as a user does, for the black-box tests: writes a config
//! pointing at a local DynHost stand-in, runs commands, starts the agent with its log captured,
//! and reads the state file. Include it after `netns` and `standin`:
//! `#[path = "support/cli.rs"] mod cli;`.

#![allow(dead_code)]

use crate::netns::sh;
use crate::standin::{Standin, StandinConfig};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_dynhostd");
pub const PASSWORD: &str = "Pw-for-tests-9f83b1";
pub const LONG: Duration = Duration::from_secs(20);
/// Debounce used by the agent in these tests.
pub const DEBOUNCE_MS: u64 = 300;

/// The agent's DEBUG line when its debounce has settled and it decides (contract 2). Tests wait
/// for it to prove a quiet period instead of sleeping through one.
pub const SETTLED: &str = "WAN settled: deciding";
/// An event on the WAN that changes nothing the policy looks at, with no debounce pending: the
/// agent has read everything before it and decided.
pub const UNCHANGED: &str = "WAN unchanged: deciding";

/// The log filter of agents the tests start: the user's default (info), plus the DEBUG lines
/// "nothing was sent" checks rely on: [`SETTLED`]; `sending <old> → <new>`, which the agent
/// writes as it starts each request, right after the decision (no await between); and
/// `HTTP detection: …` at the end of each round of what's-my-IP questions.
/// `-v`/`-vv` or the test's own `DYNHOSTD_LOG` take precedence.
pub const AGENT_LOG: &str =
    "info,dynhostd::decide=debug,dynhostd::agent=debug,dynhostd::public_ip=debug";

/// A pppd-like WAN: a point-to-point tun device with a local address and a peer.
pub fn ppp0(local: &str, peer: &str) {
    sh(&format!(
        "ip tuntap add mode tun name ppp0 && ip addr add {local} peer {peer} dev ppp0 && ip link set ppp0 up && ip route add default dev ppp0"
    ));
}

pub fn standin_https() -> Standin {
    Standin::start_on_thread(
        StandinConfig::https()
            .account("example.com-home", PASSWORD, "home.example.com")
            .account("example.com-office", PASSWORD, "office.example.com")
            .record("home.example.com")
            .record("office.example.com"),
    )
    .expect("stand-in")
}

pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The agent's control socket (`[state] control`): in the test's own directory, never the
    /// host's /run.
    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("control")
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state").join("state.json")
    }

    /// Writes a config for `hosts` (TOML `[[host]]` bodies) against `s`.
    pub fn write_config(&self, s: &Standin, interface: Option<&str>, hosts: &[&str]) {
        self.write_config_with(s, interface, hosts, "");
    }

    /// Like `write_config`, with `extra` TOML (e.g. a `[detect]` section) before the hosts.
    pub fn write_config_with(
        &self,
        s: &Standin,
        interface: Option<&str>,
        hosts: &[&str],
        extra: &str,
    ) {
        let hosts: Vec<String> = hosts.iter().map(|h| host_on(s, h)).collect();
        self.write_config_full(interface, &format!("{DEBOUNCE_MS}ms"), "", extra, &hosts);
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("DYNHOSTD_LOG")
            .env_remove("JOURNAL_STREAM");
        c
    }

    /// Runs a command to completion: (status, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.state_path()).unwrap()).unwrap()
    }

    /// Waits until the state file (written by the agent: temp file, then rename) satisfies
    /// `pred`: the agent's own record of what it did and what it plans.
    pub fn wait_state(&self, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let read = || {
            std::fs::read_to_string(self.state_path())
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let deadline = Instant::now() + LONG;
        while !read().is_some_and(|v| pred(&v)) {
            assert!(
                Instant::now() < deadline,
                "the state file never showed {what}: {:?}",
                read()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn published(&self, record: &str) -> Option<String> {
        self.state()["records"][record]["published"]
            .as_str()
            .map(str::to_string)
    }

    pub fn start_agent(&self, extra: &[&str]) -> Agent {
        let log = self.dir.path().join(format!("agent-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let child = self
            .cmd(&args)
            .env("DYNHOSTD_LOG", AGENT_LOG)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let agent = Agent { child, log };
        agent.wait_log("started");
        agent
    }
}

pub fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub const HOME: &str = "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"Pw-for-tests-9f83b1\"";
pub const OFFICE: &str = "hostname = \"office.example.com\"\nlogin = \"example.com-office\"\npassword = \"Pw-for-tests-9f83b1\"";
pub const HOME_HOST: &str = "home.example.com";
pub const OFFICE_HOST: &str = "office.example.com";
/// Back-off for fault tests: 1 s doubling to 2 s, so an ignored hint shows as a quick retry.
pub const FAST_RETRY: &str =
    "\n[update]\nmin_interval = \"0s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n";

pub struct Agent {
    pub child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + LONG;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the agent's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        sh(&format!("kill -{sig} {}", self.child.id()));
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failed test shows what the agent did: the one clue to a failure seen only under load.
        if std::thread::panicking() {
            eprintln!(
                "---- agent log ({}) ----\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

pub fn updates(s: &Standin) -> Vec<(String, String)> {
    s.requests()
        .iter()
        .map(|r| {
            (
                r.param("hostname").unwrap_or("").to_string(),
                r.param("myip").unwrap_or("").to_string(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Additions for the reliability tests (tests/reliability*.rs): configs whose hosts talk to
// different servers, agents with extra environment, SIGKILL, file modes.

/// A `[[host]]` body pointed at `s`: `body` plus its `server` and, over HTTPS, its `ca_file`.
pub fn host_on(s: &Standin, body: &str) -> String {
    let mut text = format!("{body}\nserver = \"{}\"\n", s.url());
    if let Some(ca) = s.ca_file() {
        text += &format!("ca_file = \"{}\"\n", ca.display());
    }
    text
}

impl Setup {
    /// A config written in full by the caller's parts: `wan` holds extra `[wan]` lines (after
    /// interface, debounce and the tests' accept list), `extra` whole sections (without an
    /// `[update]` section, `min_interval = "0s"` is added as in `write_config`), `hosts` complete
    /// `[[host]]` bodies, server included (see [`host_on`]). `[http]` has the same short
    /// timeouts as `write_config`.
    pub fn write_config_full(
        &self,
        interface: Option<&str>,
        debounce: &str,
        wan: &str,
        extra: &str,
        hosts: &[String],
    ) {
        let mut text = String::from("[wan]\n");
        if let Some(i) = interface {
            text += &format!("interface = \"{i}\"\n");
        }
        text += &format!(
            "debounce = \"{debounce}\"\naccept = [\"203.0.113.0/24\", \"198.51.100.0/24\", \"2001:db8::/32\"]\n{wan}\n\n[state]\ndir = \"{}\"\ncontrol = \"{}\"\n\n[http]\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\n",
            self.state_path().parent().unwrap().display(),
            self.control_path().display()
        );
        if !extra.contains("[update]") {
            text += "\n[update]\nmin_interval = \"0s\"\n";
        }
        // Checking the DNS at start would wait out a timeout in every test (no name server in
        // the namespace); tests of verification bring their own [verify] section.
        if !extra.contains("[verify]") {
            text += "\n[verify]\ninterval = \"0\"\n";
        }
        text += extra;
        for h in hosts {
            text += &format!("\n[[host]]\n{h}\n");
        }
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// Sets the config file's permission bits (e.g. 0o644, 0o600).
    pub fn set_config_mode(&self, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.config_path(), std::fs::Permissions::from_mode(mode))
            .unwrap();
    }

    /// Runs a command with extra environment variables: (status, stdout, stderr).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
        let mut c = self.cmd(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts `dynhostd run` with extra environment, without waiting for anything.
    pub fn spawn_agent_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let log = self.dir.path().join(format!("agent-{}.log", rand_suffix()));
        let file = std::fs::File::create(&log).unwrap();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let mut c = self.cmd(&args);
        c.env("DYNHOSTD_LOG", AGENT_LOG);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Agent { child, log }
    }

    /// Like `start_agent`, with extra environment: waits until it has started.
    pub fn start_agent_env(&self, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let agent = self.spawn_agent_env(extra, env);
        agent.wait_log("started");
        agent
    }
}

impl Agent {
    /// SIGKILL, then reap it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + LONG;
        while self.log_count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "fewer than {n} {needle:?} in the agent's log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Standard base64 with padding: what an `Authorization: Basic` header carries, so tests can
/// look for a leaked credential in its encoded form too.
pub fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

// ---------------------------------------------------------------------------------------------
// Quiet periods by event (issue 9): instead of sleeping "long enough" and then checking that
// nothing was sent, wait for the agent to say it has settled and decided, then look.

/// What an agent had done at one moment: how often it had settled and how many requests it had
/// started. Take one before a change, then wait for the agent to settle after it.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub settled: usize,
    pub sent: usize,
}

/// Whether `line` is the agent's `sending <old> → <new>` line (one per request it starts).
fn is_send_line(line: &str) -> bool {
    line.contains("DEBUG") && line.contains("sending ") && line.contains(" → ")
}

impl Agent {
    /// How many requests the agent has started, from its log (needs [`AGENT_LOG`] or `-v`).
    pub fn sent(&self) -> usize {
        self.log().lines().filter(|l| is_send_line(l)).count()
    }

    pub fn mark(&self) -> Mark {
        let log = self.log();
        Mark {
            settled: log.lines().filter(|l| l.contains(SETTLED)).count(),
            sent: log.lines().filter(|l| is_send_line(l)).count(),
        }
    }

    /// Waits until the agent has settled after `mark`: it has debounced what happened since and
    /// decided. A request it decided on is then already in its log: the `sending` line is
    /// written in the same step, before the agent reads its next event.
    pub fn wait_settled(&self, mark: Mark) {
        self.wait_log_count(SETTLED, mark.settled + 1);
    }

    /// The `sending <old> → <new>` lines (with their `record=`) written since `mark`.
    pub fn sends_since(&self, mark: Mark) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| is_send_line(l))
            .skip(mark.sent)
            .map(str::to_string)
            .collect()
    }

    /// The agent started no request since `mark` (its log says so; the stand-in's count may lag
    /// behind by a request in flight).
    pub fn assert_nothing_sent_since(&self, mark: Mark) {
        assert_eq!(
            self.sent(),
            mark.sent,
            "the agent sent something when it should not have:\n{}",
            self.log()
        );
    }

    /// [`Agent::wait_settled`], then: the agent started no request since `mark`.
    pub fn settled_without_sending(&self, mark: Mark) {
        self.wait_settled(mark);
        self.assert_nothing_sent_since(mark);
    }

    /// A quiet period where there is no change to settle on (after the start, or after an
    /// outcome): pokes the WAN `dev` with a change that moves no address (its MTU), which the
    /// agent must debounce, and waits until it has settled after that. Netlink delivers events
    /// in order, so by then the agent has decided on everything before the poke, and a request
    /// from any of those decisions is in its log. Returns the mark taken before the poke.
    pub fn quiet_on(&self, dev: &str) -> Mark {
        let mark = self.mark();
        let before = self.log_count(UNCHANGED);
        poke(dev);
        // The poke is no change: it is either decided at once (no debounce pending), or the
        // debounce it found pending settles.
        let deadline = Instant::now() + LONG;
        while self.log_count(SETTLED) <= mark.settled && self.log_count(UNCHANGED) <= before {
            assert!(
                Instant::now() < deadline,
                "the agent did not settle after a poke on {dev}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        mark
    }

    /// [`Agent::quiet_on`], then: the agent started no request since the poke.
    pub fn quiet_on_without_sending(&self, dev: &str) {
        let mark = self.quiet_on(dev);
        self.assert_nothing_sent_since(mark);
    }
}

/// Changes `dev`'s MTU (1400 ⇄ 1401): a link change on the WAN that moves no address.
pub fn poke(dev: &str) {
    let line = sh(&format!("ip -o link show dev {dev}"));
    let mtu = line
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .unwrap_or_else(|| panic!("no mtu in {line:?}"));
    let next = if mtu == "1400" { 1401 } else { 1400 };
    sh(&format!("ip link set dev {dev} mtu {next}"));
}
