//! The benchmark driver behind `bench/run`: dynhostd side by side with ddclient and inadyn, in one
//! run, each tool in fresh network namespaces with the local DynHost stand-in on loopback.
//!
//! Not a test: nothing here asserts on time. It measures and writes a table (stdout and
//! BENCHMARKS.md). Run it through `bench/run`, which installs the competitors, builds, and
//! cleans up; the driver itself must run as root (it creates namespaces and runs strace).
//!
//! Layout: the orchestrator (`bench [options]`) starts "cells". A cell is this same program
//! re-executed as `unshare -nm -- bench cell '<json>'`: its own network namespace (with a tun
//! `ppp0` standing in for pppd's device) and its own mount namespace (only so that
//! /etc/resolv.conf can point at 127.0.0.1: inadyn looks up its hostname at start, and without
//! this its query would wait for a time-out). A cell hosts the stand-in in-process, spawns one
//! tool, changes addresses with `ip`, and prints its figures as one JSON line. Timestamps are
//! all `Instant` (CLOCK_MONOTONIC) in that one process: the stand-in stamps each request as its
//! head is read, the cell stamps just before it runs `ip`, so the two are comparable.
//!
//! Every child gets PR_SET_PDEATHSIG, so killing the orchestrator takes the cells down, and a
//! cell's death takes its tool down: nothing keeps a namespace alive after the run.

#[path = "../tests/support/standin.rs"]
mod standin;

use serde::{Deserialize, Serialize};
use standin::{LoggedRequest, Standin, StandinConfig};
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench-password";
/// In BENCHMARKS.md, everything from this line on is written by hand and kept by each run.
const KEEP_MARKER: &str = "<!-- bench/run keeps what follows -->";
/// The address the WAN starts with (documentation range, RFC 5737).
const START: &str = "203.0.113.10";
/// The point-to-point peer, as pppd would set it (CGNAT range: never routed anywhere here).
const PEER: &str = "100.64.0.1";
/// ddclient's smallest `daemon=` and inadyn's smallest `period`: what each polls at, at best.
const DDCLIENT_PERIOD: u64 = 60;
const INADYN_PERIOD: u64 = 30;
/// dynhostd's default debounce (config::DEFAULT_DEBOUNCE).
const DEFAULT_DEBOUNCE_MS: u64 = 2000;
/// dynhostd's default `[update] min_interval`: after an update it sends nothing for the same
/// record for this long (ddclient's `min-interval` is the same 30 s). Changes are made later
/// than this after the last update, as almost every real change is, so that the figures show
/// the reaction to a change and not this rate limit.
const DYNHOSTD_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// How long a tool under callgrind may take for one step (an update, its exit).
const CALLGRIND_TIMEOUT: Duration = Duration::from_secs(300);
/// Phase D: this many changes in a row, at this debounce, each this long after the previous
/// one's request arrived (long enough for its reply and state write to be done).
const SERIES_CHANGES: usize = 100;
const SERIES_DEBOUNCE_MS: u64 = 1000;
const SERIES_PAUSE: Duration = Duration::from_millis(500);
/// Phase E: the address changes of the longer agent life ("per later update" = the
/// difference between the two lives, divided by this).
const AGENT_CHANGES: usize = 5;

// ---------------------------------------------------------------------------------------------
// What a cell is asked to do, and what it answers.

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Tool {
    Dynhostd { debounce_ms: u64 },
    Ddclient,
    Inadyn,
}

impl Tool {
    fn name(self) -> String {
        match self {
            Tool::Dynhostd { debounce_ms } => {
                format!("dynhostd (debounce {}s)", debounce_ms / 1000)
            }
            Tool::Ddclient => format!("ddclient (daemon={DDCLIENT_PERIOD})"),
            Tool::Inadyn => format!("inadyn (period={INADYN_PERIOD})"),
        }
    }

    fn slug(self) -> String {
        match self {
            Tool::Dynhostd { debounce_ms } => format!("dynhostd-{debounce_ms}ms"),
            Tool::Ddclient => "ddclient".into(),
            Tool::Inadyn => "inadyn".into(),
        }
    }

    /// How long this tool waits on purpose before it can notice a change (its design, not a
    /// cost): the debounce, or the poll period.
    fn built_in_wait(self) -> Duration {
        match self {
            Tool::Dynhostd { debounce_ms } => Duration::from_millis(debounce_ms),
            Tool::Ddclient => Duration::from_secs(DDCLIENT_PERIOD),
            Tool::Inadyn => Duration::from_secs(INADYN_PERIOD),
        }
    }

    fn polls(self) -> bool {
        !matches!(self, Tool::Dynhostd { .. })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// The WAN address changes in place (new address added, old one removed).
    Change,
    /// PPPoE-style redial: ppp0 destroyed and created again with a new address.
    Redial,
    /// 400 address events that end where they started.
    Storm,
    /// Nothing happens for a while: syscalls, wake-ups, RSS.
    Idle,
    /// Many hosts, all needing an update at start.
    Hosts,
    /// One update and exit (`dynhostd update`, `inadyn --once`, ddclient `-daemon=0`), under
    /// callgrind: its instructions.
    OneShot,
    /// dynhostd as an agent under callgrind: its first update, then `rounds` address changes,
    /// each sent, then SIGTERM: the instructions of the whole life.
    AgentLife,
    /// `rounds` address changes in a row, each made a short pause after the previous one's
    /// request arrived (dynhostd with min_interval 0 s): change → request of each.
    Series,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
struct CellSpec {
    name: String,
    tool: Tool,
    scenario: Scenario,
    /// Rounds done one after the other in this cell (with one tool process).
    rounds: usize,
    /// Pollers: how long after the initial update to make the (single) change, so that the
    /// cells of one scenario sample the poll phase evenly. dynhostd: an extra wait past its
    /// min_interval, to stagger cells so that no two change at the same moment.
    phase_ms: u64,
    hosts: usize,
    /// Give up on the Hosts scenario after this long.
    cap_s: u64,
    idle_s: u64,
    dir: PathBuf,
    dynhostd: PathBuf,
    resolv_conf: PathBuf,
    /// The stand-in serves HTTPS with a fresh test CA, which each tool is given as its CA file.
    #[serde(default)]
    https: bool,
    /// The tool runs under `valgrind --tool=callgrind` (children followed for ddclient).
    #[serde(default)]
    callgrind: bool,
    /// dynhostd's `[update] min_interval`, when not its default.
    #[serde(default)]
    min_interval: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct StormRound {
    requests: usize,
    cpu_ms: f64,
    storm_ms: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct IdleFigures {
    syscalls: u64,
    /// execve calls seen by strace: processes the tool started while idle.
    spawned: u64,
    /// Voluntary + involuntary context switches of the tool's threads.
    wakeups: u64,
    cpu_ms: f64,
    rss_kb: u64,
    /// The file-backed part (RssFile + RssShmem): pages of the executable and libraries.
    #[serde(default)]
    file_kb: u64,
    /// The anonymous part of it (heap, stacks): what the process itself allocated, as opposed
    /// to pages of its executable and libraries, which the kernel can drop and re-read.
    anon_kb: u64,
    window_s: u64,
    top_syscalls: Vec<(String, u64)>,
    /// The same over the next window.
    syscalls_later: u64,
    top_syscalls_later: Vec<(String, u64)>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct HostsFigures {
    acknowledged: usize,
    total: usize,
    /// From spawning the tool to the last `good` (None: not all within the cap).
    secs: Option<f64>,
    cap_s: u64,
    peak_rss_kb: u64,
    /// From spawning the tool to the first update request at the stand-in: the tool's start-up
    /// (config, netlink dump, client set-up). The rest is the requests themselves.
    #[serde(default)]
    first_request_secs: Option<f64>,
    /// TCP connections the updates came on (keep-alive and concurrency at work).
    #[serde(default)]
    connections: u64,
    /// CPU time the tool's process tree used, from spawning to the last acknowledgement (what
    /// a busy machine makes it wait for).
    #[serde(default)]
    cpu_ms: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct CellResult {
    latencies_ms: Vec<f64>,
    storm: Vec<StormRound>,
    idle: Option<IdleFigures>,
    hosts: Option<HostsFigures>,
    /// Callgrind's total of instructions executed (Ir), summed over every out file (every
    /// process of the tool).
    #[serde(default)]
    instructions: Option<u64>,
    notes: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Small helpers: shell, ip, /proc.

fn pdeathsig(cmd: &mut Command) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        })
    }
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One `ip -batch` run for many changes, so they reach the kernel back to back.
fn ip_batch(lines: &[String]) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    {
        let mut stdin = child.stdin.take().expect("piped");
        for l in lines {
            writeln!(stdin, "{l}").map_err(|e| e.to_string())?;
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "ip -batch: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn ppp0_lines(addr: &str) -> Vec<String> {
    vec![
        "tuntap add mode tun name ppp0".into(),
        format!("addr add {addr} peer {PEER} dev ppp0"),
        "link set ppp0 up".into(),
        "route add default dev ppp0".into(),
    ]
}

/// Config files hold passwords: mode 600, as a careful user would have them (dynhostd warns
/// otherwise, and a warning is output the others would not pay for).
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn proc_field(path: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next()?.parse().ok())
}

/// `pid` and every process below it.
fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // The command name may hold spaces; fields resume after the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

fn tasks(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .map(|e| format!("/proc/{pid}/task/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU time of the tree in ns: every live thread's run time (schedstat, ns resolution), plus
/// what each process's children that already exited used (cutime + cstime, in ticks).
fn tree_cpu_ns(pid: u32) -> u64 {
    // SAFETY: sysconf has no preconditions.
    let tick_ns = 1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut total = 0;
    for p in tree(pid) {
        for t in tasks(p) {
            if let Ok(s) = std::fs::read_to_string(format!("{t}/schedstat")) {
                total += s
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
        {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After ')': state is field 3, so cutime (16) and cstime (17) are at 13 and 14.
            let ticks: u64 = [13, 14]
                .iter()
                .filter_map(|&i| f.get(i)?.parse::<u64>().ok())
                .sum();
            total += ticks * tick_ns;
        }
    }
    total
}

fn tree_ctxsw(pid: u32) -> u64 {
    tree(pid)
        .into_iter()
        .flat_map(tasks)
        .map(|t| {
            let status = format!("{t}/status");
            proc_field(&status, "voluntary_ctxt_switches:").unwrap_or(0)
                + proc_field(&status, "nonvoluntary_ctxt_switches:").unwrap_or(0)
        })
        .sum()
}

fn tree_rss_kb(pid: u32) -> u64 {
    tree_status_kb(pid, "VmRSS:")
}

fn tree_status_kb(pid: u32, key: &str) -> u64 {
    tree(pid)
        .into_iter()
        .map(|p| proc_field(&format!("/proc/{p}/status"), key).unwrap_or(0))
        .sum()
}

fn median(v: &[f64]) -> Option<f64> {
    percentile(v, 0.5)
}

/// Nearest-rank-with-interpolation percentile of a sample.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let pos = p * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(s[lo] + (s[hi] - s[lo]) * (pos - lo as f64))
}

// ---------------------------------------------------------------------------------------------
// The cell: inside its own namespaces.

struct Cell {
    spec: CellSpec,
    standin: Standin,
    tool: Option<Child>,
    current: String,
    notes: Vec<String>,
}

impl Cell {
    fn tool_pid(&self) -> u32 {
        self.tool.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn updates(&self) -> Vec<LoggedRequest> {
        self.standin
            .requests()
            .into_iter()
            .filter(|r| r.path == standin::UPDATE_PATH)
            .collect()
    }

    /// Waits for an update request carrying `ip`, arrived after `since`; its arrival time.
    fn wait_update(&self, ip: &str, since: Instant, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(r) = self
                .updates()
                .into_iter()
                .find(|r| r.at >= since && r.param("myip") == Some(ip))
            {
                return Some(r.at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn start_tool(&mut self) -> Result<(), String> {
        let dir = &self.spec.dir;
        let url = self.standin.url();
        let port = self.standin.addr().port();
        let hosts: Vec<(String, String)> = if self.spec.scenario == Scenario::Hosts {
            (1..=self.spec.hosts)
                .map(|k| (format!("h{k}.example.com"), format!("example.com-h{k}")))
                .collect()
        } else {
            vec![("home.example.com".into(), "example.com-home".into())]
        };
        // Over HTTPS, every tool is given the stand-in's test CA as its trust file.
        let ca = self
            .standin
            .ca_file()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let https = self.standin.is_https();
        let one_shot = self.spec.scenario == Scenario::OneShot;
        let log = std::fs::File::create(dir.join("tool.log")).map_err(|e| e.to_string())?;
        let mut cmd = match self.spec.tool {
            Tool::Dynhostd { debounce_ms } => {
                let mut text = format!(
                    "# Written by examples/bench.rs.\n[wan]\ninterface = \"ppp0\"\ndebounce = \"{debounce_ms}ms\"\n\
                     accept = [\"203.0.113.0/24\", \"198.51.100.0/24\", \"192.0.2.0/24\"]\n\n\
                     [state]\ndir = \"{}\"\n",
                    dir.join("state").display()
                );
                if let Some(m) = &self.spec.min_interval {
                    text += &format!("\n[update]\nmin_interval = \"{m}\"\n");
                }
                for (host, login) in &hosts {
                    text += &format!(
                        "\n[[host]]\nhostname = \"{host}\"\nlogin = \"{login}\"\npassword = \"{PASSWORD}\"\nserver = \"{url}\"\n"
                    );
                    if https {
                        text += &format!("ca_file = \"{ca}\"\n");
                    }
                }
                let conf = dir.join("dynhostd.toml");
                write_private(&conf, &text)?;
                let mut c = Command::new(&self.spec.dynhostd);
                // One-shot: one pass (empty state, so it sends), then exit.
                c.arg(if one_shot { "update" } else { "run" })
                    .arg("--config")
                    .arg(conf);
                c.env_remove("DYNHOSTD_LOG").env_remove("JOURNAL_STREAM");
                // A look at where the time goes: BENCH_DYNHOSTD_LOG=debug (with BENCH_KEEP=1)
                // leaves timestamped steps in each cell's tool.log.
                if let Some(v) = std::env::var_os("BENCH_DYNHOSTD_LOG") {
                    c.env("DYNHOSTD_LOG", v);
                }
                c
            }
            Tool::Ddclient => {
                // use=if reads `ip -4 -o addr show dev ppp0 scope global` and takes the first
                // inet address (the local one, not the peer). ssl=no keeps the update URL
                // http://; server= takes host:port.
                let mut text = format!(
                    "# Written by examples/bench.rs.\ndaemon={DDCLIENT_PERIOD}\nforeground=yes\nsyslog=no\n\
                     ssl={}\ncache={}\nuse=if, if=ppp0\nprotocol=dyndns2\nserver=127.0.0.1:{port}\n\
                     password={PASSWORD}\n",
                    if https { "yes" } else { "no" },
                    dir.join("ddclient.cache").display()
                );
                if https {
                    text += &format!("ssl_ca_file={ca}\n");
                }
                // A login per host: ddclient puts the hosts sharing a login into one request
                // (hostname=a,b,c), which OVH does not take.
                for (host, login) in &hosts {
                    text += &format!("login={login} {host}\n");
                }
                let conf = dir.join("ddclient.conf");
                write_private(&conf, &text)?;
                let mut c = Command::new("ddclient");
                c.arg("-file").arg(conf);
                if one_shot {
                    // One pass, then exit (the config's daemon= is overridden).
                    c.arg("-daemon=0");
                }
                c
            }
            Tool::Inadyn => {
                // iface= reads the address from the interface: no checkip server. The
                // checkip-* lines point at the stand-in anyway, so a stray check would show up
                // in its log instead of going anywhere. verify-address=false lets documentation
                // addresses count (as dynhostd's `accept` does).
                let mut text = format!(
                    "# Written by examples/bench.rs.\nperiod = {INADYN_PERIOD}\nverify-address = false\niface = ppp0\n"
                );
                if https {
                    text += &format!("ca-trust-file = \"{ca}\"\n");
                }
                for (i, (host, login)) in hosts.iter().enumerate() {
                    text += &format!(
                        "\ncustom bench:{} {{\n    ssl = {https}\n    ddns-server = \"127.0.0.1:{port}\"\n    \
                         ddns-path = \"/nic/update?system=dyndns&hostname=%h&myip=%i\"\n    \
                         checkip-server = \"127.0.0.1:{port}\"\n    checkip-path = \"/checkip-unused\"\n    \
                         checkip-ssl = false\n    username = \"{login}\"\n    password = \"{PASSWORD}\"\n    \
                         hostname = \"{host}\"\n}}\n",
                        i + 1
                    );
                }
                let conf = dir.join("inadyn.conf");
                write_private(&conf, &text)?;
                let cache = dir.join("inadyn-cache");
                std::fs::create_dir_all(&cache).map_err(|e| e.to_string())?;
                let mut c = Command::new("inadyn");
                if one_shot {
                    c.arg("--once");
                }
                c.args(["--foreground", "--no-pidfile", "-f"])
                    .arg(conf)
                    .arg("--cache-dir")
                    .arg(cache);
                c
            }
        };
        if self.spec.callgrind {
            cmd = under_callgrind(&cmd, dir, self.spec.tool == Tool::Ddclient);
        }
        let err = log.try_clone().map_err(|e| e.to_string())?;
        cmd.stdin(Stdio::null()).stdout(log).stderr(err);
        pdeathsig(&mut cmd);
        self.tool = Some(cmd.spawn().map_err(|e| format!("spawn: {e}"))?);
        Ok(())
    }

    fn stop_tool(&mut self) {
        if let Some(mut child) = self.tool.take() {
            // SAFETY: kill on a pid we spawned and have not reaped yet.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn initial_update(&mut self) -> Result<Instant, String> {
        // Under callgrind a tool runs tens of times slower.
        let timeout = if self.spec.callgrind {
            CALLGRIND_TIMEOUT
        } else {
            Duration::from_secs(30)
        };
        self.wait_update(START, self.t_zero(), timeout)
            .ok_or_else(|| format!("{}: no initial update within {timeout:?}", self.spec.name))
    }

    /// Waits for the tool to exit by itself; kills it after `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus, String> {
        let mut child = self.tool.take().ok_or("no tool")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{}: still running after {timeout:?}, killed",
                    self.spec.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One-shot under callgrind: it updates once and exits; its instructions.
    fn one_shot(&mut self) -> Result<u64, String> {
        let status = self.wait_exit(CALLGRIND_TIMEOUT)?;
        let good = self
            .updates()
            .iter()
            .any(|r| r.param("myip") == Some(START) && r.answer.contains(" good "));
        if !good {
            return Err(format!(
                "{}: no `good` update ({status}); its output is in tool.log of this cell \
                 (BENCH_KEEP=1 keeps it)",
                self.spec.name
            ));
        }
        if !status.success() {
            self.notes
                .push(format!("{}: exited with {status}", self.spec.name));
        }
        callgrind_total(&self.spec.dir)
    }

    /// A change of the WAN address in place (new first, then the old one removed); the moment
    /// just before `ip` runs.
    fn change_to(&mut self, new: &str) -> Result<Instant, String> {
        let lines = vec![
            format!("addr add {new} peer {PEER} dev ppp0"),
            format!("addr del {} peer {PEER} dev ppp0", self.current),
        ];
        let t0 = Instant::now();
        ip_batch(&lines)?;
        self.current = new.to_string();
        Ok(t0)
    }

    /// dynhostd's life as an agent under callgrind: the first update, `rounds` changes (each
    /// sent; a pause after each request so that its reply and state write are done), then
    /// SIGTERM; its instructions.
    fn agent_life(&mut self) -> Result<u64, String> {
        let pause = Duration::from_secs(2);
        let mut last = self.initial_update()?;
        for round in 0..self.spec.rounds {
            std::thread::sleep((last + pause).saturating_duration_since(Instant::now()));
            let new = format!("198.51.100.{}", 20 + round);
            let t0 = self.change_to(&new)?;
            last = self
                .wait_update(&new, t0, CALLGRIND_TIMEOUT)
                .ok_or_else(|| {
                    format!(
                        "{}: change {round}: no update within {CALLGRIND_TIMEOUT:?}",
                        self.spec.name
                    )
                })?;
        }
        std::thread::sleep((last + pause).saturating_duration_since(Instant::now()));
        let pid = self.tool_pid();
        // SAFETY: kill on a pid we spawned and have not reaped yet.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let status = self.wait_exit(CALLGRIND_TIMEOUT)?;
        if !status.success() {
            self.notes
                .push(format!("{}: exited with {status}", self.spec.name));
        }
        callgrind_total(&self.spec.dir)
    }

    /// `rounds` changes in a row, each SERIES_PAUSE after the previous one's request arrived:
    /// change → request of each, in ms.
    fn series(&mut self) -> Result<Vec<f64>, String> {
        let timeout = self.spec.tool.built_in_wait() + Duration::from_secs(10);
        let mut last = self.initial_update()?;
        let mut out = Vec::new();
        for round in 0..self.spec.rounds {
            std::thread::sleep((last + SERIES_PAUSE).saturating_duration_since(Instant::now()));
            // 100 distinct addresses: each is new to the record.
            let new = format!("198.51.100.{}", 20 + round % 200);
            let t0 = self.change_to(&new)?;
            match self.wait_update(&new, t0, timeout) {
                Some(at) => {
                    out.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    last = at;
                }
                None => {
                    self.notes.push(format!(
                        "{}: change {round}: no update within {timeout:?}",
                        self.spec.name
                    ));
                    last = Instant::now();
                }
            }
        }
        Ok(out)
    }

    fn t_zero(&self) -> Instant {
        Instant::now() - Duration::from_secs(3600)
    }

    /// How long to wait after the last update before the next change.
    fn settle(&self) -> Duration {
        let phase = Duration::from_millis(self.spec.phase_ms);
        match self.spec.tool {
            Tool::Dynhostd { debounce_ms } => {
                (DYNHOSTD_MIN_INTERVAL + Duration::from_secs(1) + phase)
                    .max(Duration::from_millis(debounce_ms + 700))
            }
            _ => phase,
        }
    }

    /// How long after a storm a request could still come: a poller's next poll, or dynhostd's
    /// debounce plus its min_interval (a transient address published during the storm is
    /// corrected once min_interval has passed).
    fn storm_watch(&self) -> Duration {
        let extra = match self.spec.tool {
            Tool::Dynhostd { .. } => DYNHOSTD_MIN_INTERVAL,
            _ => Duration::ZERO,
        };
        self.spec.tool.built_in_wait() + extra + Duration::from_secs(5)
    }

    fn response_timeout(&self) -> Duration {
        self.spec.tool.built_in_wait() + Duration::from_secs(30)
    }

    fn change_rounds(&mut self, redial: bool) -> Result<Vec<f64>, String> {
        let first = self.initial_update()?;
        let mut out = Vec::new();
        let mut last = first;
        for round in 0..self.spec.rounds {
            let wake = last + self.settle();
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            let new = format!("198.51.100.{}", 20 + round);
            let lines = if redial {
                let mut l = vec!["link del ppp0".to_string()];
                l.extend(ppp0_lines(&new));
                l
            } else {
                // New first, old second: the WAN never has no address, and the default route
                // (which the kernel drops with the last address) stays.
                vec![
                    format!("addr add {new} peer {PEER} dev ppp0"),
                    format!("addr del {} peer {PEER} dev ppp0", self.current),
                ]
            };
            let t0 = Instant::now();
            ip_batch(&lines)?;
            self.current = new.clone();
            match self.wait_update(&new, t0, self.response_timeout()) {
                Some(at) => {
                    out.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    last = at;
                }
                None => {
                    self.notes.push(format!(
                        "{}: round {round}: no update within {:?}",
                        self.spec.name,
                        self.response_timeout()
                    ));
                    last = Instant::now();
                }
            }
        }
        Ok(out)
    }

    fn storm_rounds(&mut self) -> Result<Vec<StormRound>, String> {
        let first = self.initial_update()?;
        let pid = self.tool_pid();
        let mut out = Vec::new();
        let mut last = first;
        for round in 0..self.spec.rounds {
            let wake = last + self.settle();
            std::thread::sleep(wake.saturating_duration_since(Instant::now()));
            // 100 cycles of four events: another address comes, ours goes, ours comes back,
            // the other goes. The address that counts changes twice per cycle and ends as it
            // started; the WAN never has no address.
            let mut lines = Vec::new();
            for k in 0..100 {
                let other = format!("192.0.2.{}", k + 100);
                let cur = &self.current;
                lines.push(format!("addr add {other} peer {PEER} dev ppp0"));
                lines.push(format!("addr del {cur} peer {PEER} dev ppp0"));
                lines.push(format!("addr add {cur} peer {PEER} dev ppp0"));
                lines.push(format!("addr del {other} peer {PEER} dev ppp0"));
            }
            let before = self.updates().len();
            let cpu0 = tree_cpu_ns(pid);
            let t0 = Instant::now();
            ip_batch(&lines)?;
            let storm_end = Instant::now();
            // CPU: from the first event to 3 s after the last (past dynhostd's default
            // debounce), the same window for every tool.
            std::thread::sleep(
                (storm_end + Duration::from_secs(3)).saturating_duration_since(Instant::now()),
            );
            let cpu1 = tree_cpu_ns(pid);
            // Requests: watch until none could still be coming.
            std::thread::sleep(
                (storm_end + self.storm_watch()).saturating_duration_since(Instant::now()),
            );
            let new: Vec<LoggedRequest> = self.updates().into_iter().skip(before).collect();
            if let Some(r) = new.last() {
                self.notes.push(format!(
                    "{}: storm {round}: {} request(s), the last {} after the last event (myip={})",
                    self.spec.name,
                    new.len(),
                    fmt_ms(r.at.saturating_duration_since(storm_end).as_secs_f64() * 1000.0),
                    r.param("myip").unwrap_or("?")
                ));
            }
            out.push(StormRound {
                requests: new.len(),
                cpu_ms: cpu1.saturating_sub(cpu0) as f64 / 1e6,
                storm_ms: storm_end.duration_since(t0).as_secs_f64() * 1000.0,
            });
            last = new.last().map_or(first, |r| r.at);
        }
        Ok(out)
    }

    fn idle(&mut self) -> Result<IdleFigures, String> {
        self.initial_update()?;
        std::thread::sleep(Duration::from_secs(5));
        let pid = self.tool_pid();
        let window = Duration::from_secs(self.spec.idle_s);

        // Window 1, untraced: context switches, CPU and RSS (strace would add its own stops).
        let ctx0 = tree_ctxsw(pid);
        let cpu0 = tree_cpu_ns(pid);
        let end = Instant::now() + window;
        let (mut rss, mut anon, mut file) = (Vec::new(), Vec::new(), Vec::new());
        while Instant::now() < end {
            rss.push(tree_rss_kb(pid) as f64);
            anon.push(tree_status_kb(pid, "RssAnon:") as f64);
            file.push((tree_status_kb(pid, "RssFile:") + tree_status_kb(pid, "RssShmem:")) as f64);
            std::thread::sleep(
                Duration::from_secs(1).min(end.saturating_duration_since(Instant::now())),
            );
        }
        let ctx1 = tree_ctxsw(pid);
        let cpu1 = tree_cpu_ns(pid);

        // Windows 2 and 3: strace -c -f on the whole tree (threads and any child it starts).
        // Two in a row, because an update leaves one-shot timers behind it (a rate limit, an
        // HTTP keep-alive connection to close): the second window shows the steady state.
        let mut traced = Vec::new();
        for n in [2, 3] {
            let out = self.spec.dir.join(format!("strace-{n}.txt"));
            let mut strace = Command::new("strace");
            strace
                .args(["-c", "-f", "-o"])
                .arg(&out)
                .args(["-p", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            pdeathsig(&mut strace);
            let mut strace = strace.spawn().map_err(|e| format!("strace: {e}"))?;
            std::thread::sleep(window);
            // SAFETY: our own child; SIGINT makes strace detach and write its summary.
            unsafe { libc::kill(strace.id() as i32, libc::SIGINT) };
            let _ = strace.wait();
            traced.push(parse_strace(
                &std::fs::read_to_string(&out).unwrap_or_default(),
            ));
        }
        let (syscalls, rows) = traced[0].clone();
        let (syscalls_later, rows_later) = traced[1].clone();
        let spawned = rows
            .iter()
            .find(|(n, _)| n == "execve")
            .map(|(_, c)| *c)
            .unwrap_or(0);
        let top = |rows: &[(String, u64)]| {
            let mut top = rows.to_vec();
            top.sort_by_key(|r| std::cmp::Reverse(r.1));
            top.truncate(6);
            top
        };
        Ok(IdleFigures {
            syscalls,
            spawned,
            wakeups: ctx1.saturating_sub(ctx0),
            cpu_ms: cpu1.saturating_sub(cpu0) as f64 / 1e6,
            rss_kb: median(&rss).unwrap_or(0.0) as u64,
            anon_kb: median(&anon).unwrap_or(0.0) as u64,
            file_kb: median(&file).unwrap_or(0.0) as u64,
            window_s: self.spec.idle_s,
            top_syscalls: top(&rows),
            syscalls_later,
            top_syscalls_later: top(&rows_later),
        })
    }

    fn hosts(&mut self, t0: Instant) -> HostsFigures {
        let pid = self.tool_pid();
        let total = self.spec.hosts;
        let cap = Duration::from_secs(self.spec.cap_s);
        let mut peak = 0;
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut last_at = None;
        let mut first_at = None;
        let mut connections = BTreeSet::new();
        let mut seen = 0;
        loop {
            peak = peak.max(tree_rss_kb(pid));
            // The request log is copied only once it may hold them all: copying it under the
            // stand-in's lock every 20 ms would slow the stand-in down, and with it the tool
            // being measured (more so for the faster one).
            let count = self.standin.request_count();
            let enough = count >= total && count > seen;
            if enough || t0.elapsed() > cap {
                let log = self.standin.requests();
                for r in &log[seen.min(log.len())..] {
                    if r.path == standin::UPDATE_PATH {
                        first_at = first_at.or(Some(r.at));
                        connections.insert(r.connection);
                    }
                    if r.answer.contains(" good ")
                        && let Some(h) = r.param("hostname")
                        && done.insert(h.to_string())
                    {
                        last_at = Some(r.at);
                    }
                }
                seen = log.len();
            }
            if done.len() >= total || t0.elapsed() > cap {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu_ms = tree_cpu_ns(pid) as f64 / 1e6;
        // The kernel's high-water mark of the main process catches a peak between samples.
        let hwm = proc_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0);
        HostsFigures {
            acknowledged: done.len(),
            total,
            secs: (done.len() >= total)
                .then(|| last_at.map(|a| a.duration_since(t0).as_secs_f64()))
                .flatten(),
            cap_s: self.spec.cap_s,
            peak_rss_kb: peak.max(hwm),
            first_request_secs: first_at.map(|a| a.duration_since(t0).as_secs_f64()),
            connections: connections.len() as u64,
            cpu_ms,
        }
    }
}

/// `cmd` run under `valgrind --tool=callgrind`, one out file per process in `dir`; with
/// `children`, the processes it starts are followed too (ddclient runs `ip` through a shell).
fn under_callgrind(cmd: &Command, dir: &Path, children: bool) -> Command {
    let mut v = Command::new("valgrind");
    v.args(["--tool=callgrind", "--quiet"])
        .arg(format!(
            "--callgrind-out-file={}/callgrind.out.%p",
            dir.display()
        ))
        .arg(format!(
            "--trace-children={}",
            if children { "yes" } else { "no" }
        ))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, val) in cmd.get_envs() {
        match val {
            Some(val) => v.env(k, val),
            None => v.env_remove(k),
        };
    }
    v
}

/// The instructions executed (callgrind's `Ir`), summed over the out files in `dir`.
fn callgrind_total(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    let mut files = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .starts_with("callgrind.out.")
        {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        // `totals:` (or, in older files, `summary:`) holds the events in the order of the
        // `events:` line, Ir first.
        let line = text
            .lines()
            .find(|l| l.starts_with("totals:"))
            .or_else(|| text.lines().find(|l| l.starts_with("summary:")));
        if let Some(ir) = line
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
        {
            total += ir;
            files += 1;
        }
    }
    if files == 0 {
        return Err("no callgrind out file with a total".into());
    }
    Ok(total)
}

fn parse_strace(summary: &str) -> (u64, Vec<(String, u64)>) {
    let mut total = 0;
    let mut rows = Vec::new();
    for line in summary.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        // Rows: % time, seconds, usecs/call, calls, [errors], name.
        if t.len() < 5 || t[0].starts_with('%') || t[0].starts_with('-') {
            continue;
        }
        let Ok(calls) = t[3].parse::<u64>() else {
            continue;
        };
        let name = t[t.len() - 1];
        if name == "total" {
            total = calls;
        } else {
            rows.push((name.to_string(), calls));
        }
    }
    (total, rows)
}

fn run_cell(spec: CellSpec) -> Result<CellResult, String> {
    // A fresh start: no state or cache from an earlier run of the same cell.
    let _ = std::fs::remove_dir_all(spec.dir.join("state"));
    let _ = std::fs::remove_dir_all(spec.dir.join("inadyn-cache"));
    let _ = std::fs::remove_file(spec.dir.join("ddclient.cache"));
    std::fs::create_dir_all(&spec.dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&spec.dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("callgrind.out.")
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    sh("ip link set lo up")?;
    // pppd's addresses all share one peer, so a second address is a "secondary"; without
    // promotion, removing the first would take the second with it.
    sh(
        "sysctl -qw net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1",
    )?;
    sh(&format!(
        "mount --bind {} /etc/resolv.conf",
        spec.resolv_conf.display()
    ))?;
    ip_batch(&ppp0_lines(START))?;
    let mut config = if spec.https {
        StandinConfig::https()
    } else {
        StandinConfig::http()
    }
    .account("example.com-home", PASSWORD, "home.example.com")
    .record("home.example.com");
    if spec.scenario == Scenario::Hosts {
        config = config.numbered_hosts(spec.hosts, PASSWORD);
    }
    let standin = Standin::start_on_thread(config).map_err(|e| format!("stand-in: {e}"))?;
    let mut cell = Cell {
        spec: spec.clone(),
        standin,
        tool: None,
        current: START.to_string(),
        notes: Vec::new(),
    };
    let t0 = Instant::now();
    cell.start_tool()?;
    let mut result = CellResult::default();
    let outcome = match spec.scenario {
        Scenario::Change => cell.change_rounds(false).map(|l| result.latencies_ms = l),
        Scenario::Redial => cell.change_rounds(true).map(|l| result.latencies_ms = l),
        Scenario::Storm => cell.storm_rounds().map(|s| result.storm = s),
        Scenario::Idle => cell.idle().map(|i| result.idle = Some(i)),
        Scenario::Hosts => {
            result.hosts = Some(cell.hosts(t0));
            Ok(())
        }
        Scenario::OneShot => cell.one_shot().map(|i| result.instructions = Some(i)),
        Scenario::AgentLife => cell.agent_life().map(|i| result.instructions = Some(i)),
        Scenario::Series => cell.series().map(|l| result.latencies_ms = l),
    };
    // Anything the tool asked for that isn't an update (a check-IP request) is worth a note.
    let strays: Vec<String> = cell
        .standin
        .requests()
        .iter()
        .filter(|r| r.path != standin::UPDATE_PATH)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    if !strays.is_empty() {
        cell.notes.push(format!(
            "{}: {} non-update request(s), e.g. {}",
            spec.name,
            strays.len(),
            strays[0]
        ));
    }
    cell.stop_tool();
    result.notes = std::mem::take(&mut cell.notes);
    outcome?;
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

struct Options {
    load_at_start: String,
    dynhostd: PathBuf,
    work: PathBuf,
    out: Option<PathBuf>,
    command: String,
    rounds: usize,
    idle_s: u64,
    hosts: usize,
    cap_s: u64,
    competitors: bool,
    /// Phases to run (A latency, B pollers/storms/idle, C many hosts, D change → request
    /// percentiles at a 1 s debounce, E instructions under callgrind); all by default.
    only: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_options() -> Options {
    let mut o = Options {
        load_at_start: load_average(),
        dynhostd: PathBuf::from("target/release/dynhostd"),
        work: std::env::temp_dir().join(format!("dynhostd-bench-{}", std::process::id())),
        out: None,
        command: "bench/run".into(),
        rounds: 5,
        idle_s: 60,
        hosts: 1000,
        cap_s: 120,
        competitors: true,
        only: "ABCDE".into(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || {
            args.next().unwrap_or_else(|| {
                eprintln!("bench: {a} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--dynhostd" => o.dynhostd = v().into(),
            "--work" => o.work = v().into(),
            "--out" => o.out = Some(v().into()),
            "--command" => o.command = v(),
            "--rounds" => o.rounds = v().parse().expect("--rounds N"),
            "--idle" => o.idle_s = v().parse().expect("--idle SECONDS"),
            "--hosts" => o.hosts = v().parse().expect("--hosts N"),
            "--cap" => o.cap_s = v().parse().expect("--cap SECONDS"),
            "--no-competitors" => o.competitors = false,
            "--only" => o.only = v().to_uppercase(),
            _ => {
                eprintln!(
                    "usage: bench [--dynhostd PATH] [--work DIR] [--out FILE] [--command TEXT] \
                     [--rounds N] [--idle S] [--hosts N] [--cap S] [--no-competitors] [--only ABCDE]"
                );
                std::process::exit(2)
            }
        }
    }
    o
}

/// A cell that was started: its child and where its stderr goes.
struct Running {
    spec: CellSpec,
    child: Child,
}

fn spawn_cell(spec: CellSpec) -> Running {
    std::fs::create_dir_all(&spec.dir).expect("cell dir");
    let exe = std::env::current_exe().expect("current_exe");
    let err = std::fs::File::create(spec.dir.join("cell.err")).expect("cell.err");
    let mut cmd = Command::new("unshare");
    cmd.args(["-nm", "--"])
        .arg(exe)
        .arg("cell")
        .arg(serde_json::to_string(&spec).expect("spec"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    pdeathsig(&mut cmd);
    let child = cmd.spawn().expect("spawn unshare");
    Running { spec, child }
}

fn collect(running: Vec<Running>) -> Vec<(CellSpec, CellResult)> {
    running
        .into_iter()
        .map(|r| {
            let out = r.child.wait_with_output().expect("cell wait");
            let text = String::from_utf8_lossy(&out.stdout);
            let parsed = text
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Result<CellResult, String>>(l).ok());
            let result = match parsed {
                Some(Ok(res)) => res,
                Some(Err(e)) => CellResult {
                    notes: vec![format!("{} failed: {e}", r.spec.name)],
                    ..Default::default()
                },
                None => CellResult {
                    // Named inside the work directory, never as a path of this machine.
                    notes: vec![format!(
                        "{} failed ({}); see {}/cell.err in the work directory (BENCH_KEEP=1 \
                         keeps it)",
                        r.spec.name, out.status, r.spec.name
                    )],
                    ..Default::default()
                },
            };
            for n in &result.notes {
                eprintln!("bench: note: {n}");
            }
            (r.spec, result)
        })
        .collect()
}

fn run_phase(label: &str, specs: Vec<CellSpec>) -> Vec<(CellSpec, CellResult)> {
    let started = Instant::now();
    eprintln!("bench: {label}: {} cell(s)…", specs.len());
    let running: Vec<Running> = specs.into_iter().map(spawn_cell).collect();
    let out = collect(running);
    eprintln!(
        "bench: {label}: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    out
}

/// Runs cells one after the other (for figures a busy machine would distort).
fn run_serial(label: &str, specs: Vec<CellSpec>) -> Vec<(CellSpec, CellResult)> {
    let started = Instant::now();
    eprintln!("bench: {label}: {} cell(s), one at a time…", specs.len());
    let mut out = Vec::new();
    for s in specs {
        out.extend(collect(vec![spawn_cell(s)]));
    }
    eprintln!(
        "bench: {label}: done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    out
}

#[derive(Default)]
struct Figures {
    latency: HashMap<Tool, Vec<f64>>,
    redial: HashMap<Tool, Vec<f64>>,
    storm: HashMap<Tool, Vec<StormRound>>,
    idle: HashMap<Tool, IdleFigures>,
    /// The default dynhostd idling after an update over https (what a DynHost user runs).
    idle_https: Option<IdleFigures>,
    hosts: HashMap<Tool, Vec<HostsFigures>>,
    /// Phase D: change → request of each change, ms (debounce included).
    series: Vec<f64>,
    /// Phase E: one-shot instructions by (tool, https).
    oneshot: HashMap<(Tool, bool), u64>,
    /// Phase E: dynhostd agent-life instructions by (https, changes after the first update).
    agent_life: HashMap<(bool, usize), u64>,
    notes: Vec<String>,
}

impl Figures {
    fn add(&mut self, results: Vec<(CellSpec, CellResult)>) {
        for (spec, r) in results {
            let t = spec.tool;
            match spec.scenario {
                Scenario::Change => self.latency.entry(t).or_default().extend(r.latencies_ms),
                Scenario::Redial => self.redial.entry(t).or_default().extend(r.latencies_ms),
                Scenario::Storm => self.storm.entry(t).or_default().extend(r.storm),
                Scenario::Idle => {
                    if let Some(i) = r.idle {
                        if spec.https {
                            self.idle_https = Some(i);
                        } else {
                            self.idle.insert(t, i);
                        }
                    }
                }
                Scenario::Hosts => self.hosts.entry(t).or_default().extend(r.hosts),
                Scenario::Series => self.series.extend(r.latencies_ms),
                Scenario::OneShot => {
                    if let Some(i) = r.instructions {
                        self.oneshot.insert((t, spec.https), i);
                    }
                }
                Scenario::AgentLife => {
                    if let Some(i) = r.instructions {
                        self.agent_life.insert((spec.https, spec.rounds), i);
                    }
                }
            }
            self.notes.extend(r.notes);
        }
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("cell") {
        let spec: CellSpec = serde_json::from_str(&std::env::args().nth(2).unwrap_or_default())
            .unwrap_or_else(|e| {
                eprintln!("bench cell: bad spec: {e}");
                std::process::exit(2)
            });
        let result = run_cell(spec);
        if let Err(e) = &result {
            eprintln!("bench cell: {e}");
        }
        println!("{}", serde_json::to_string(&result).expect("result"));
        return;
    }
    orchestrate(parse_options());
}

fn orchestrate(o: Options) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench: run as root (namespaces, strace); use bench/run");
        std::process::exit(2);
    }
    let dynhostd = std::fs::canonicalize(&o.dynhostd).unwrap_or_else(|e| {
        eprintln!(
            "bench: {}: {e} (cargo build --release first)",
            o.dynhostd.display()
        );
        std::process::exit(2)
    });
    std::fs::create_dir_all(&o.work).expect("work dir");
    // A copy: others may rebuild target/release/dynhostd while this runs.
    let snapshot = o.work.join("dynhostd");
    std::fs::copy(&dynhostd, &snapshot).expect("copy dynhostd");
    let resolv_conf = o.work.join("resolv.conf");
    std::fs::write(
        &resolv_conf,
        "# bench: lookups fail at once inside the namespaces\nnameserver 127.0.0.1\n",
    )
    .expect("resolv.conf");
    let started = Instant::now();

    let base = |name: String, tool: Tool, scenario: Scenario| CellSpec {
        dir: o.work.join(&name),
        name,
        tool,
        scenario,
        rounds: 1,
        phase_ms: 0,
        hosts: 0,
        cap_s: o.cap_s,
        idle_s: o.idle_s,
        dynhostd: snapshot.clone(),
        resolv_conf: resolv_conf.clone(),
        https: false,
        callgrind: false,
        min_interval: None,
    };
    let ours = [
        Tool::Dynhostd { debounce_ms: 0 },
        Tool::Dynhostd {
            debounce_ms: DEFAULT_DEBOUNCE_MS,
        },
    ];
    let mut competitors = Vec::new();
    if o.competitors {
        competitors = vec![Tool::Ddclient, Tool::Inadyn];
    }
    let mut figures = Figures::default();

    // Phase A: dynhostd's latencies, the only figures here in milliseconds and so the only
    // ones a busy machine could distort. One change per fresh agent, past its min_interval;
    // the cells start together (then sit idle, at zero CPU) and change one at a time,
    // STAGGER_MS apart, so each change meets a quiet machine.
    const STAGGER_MS: u64 = 2500;
    let mut specs = Vec::new();
    for t in ours {
        for (sc, what) in [(Scenario::Change, "change"), (Scenario::Redial, "redial")] {
            for i in 0..o.rounds {
                let mut s = base(format!("{}-{what}-{i}", t.slug()), t, sc);
                s.phase_ms = specs.len() as u64 * STAGGER_MS;
                specs.push(s);
            }
        }
    }
    if o.only.contains('A') {
        figures.add(run_phase("phase A (dynhostd latency)", specs));
    }

    // Phase B, all at once: the pollers' latency cells (one change each, at evenly spread
    // phases of their period, since a change may come at any moment), every storm and every
    // idle cell. None of these figures is sensitive to the machine being busy: latencies here
    // are seconds, storms count requests and CPU time, idle counts syscalls and wake-ups.
    let mut specs = Vec::new();
    for t in &competitors {
        let period_ms = t.built_in_wait().as_millis() as u64;
        for (sc, what) in [
            (Scenario::Change, "change"),
            (Scenario::Redial, "redial"),
            (Scenario::Storm, "storm"),
        ] {
            for i in 0..o.rounds {
                let mut s = base(format!("{}-{what}-{i}", t.slug()), *t, sc);
                s.phase_ms = period_ms * (2 * i as u64 + 1) / (2 * o.rounds as u64);
                specs.push(s);
            }
        }
    }
    for t in ours {
        for i in 0..o.rounds {
            let mut s = base(format!("{}-storm-{i}", t.slug()), t, Scenario::Storm);
            s.phase_ms = i as u64 * 700;
            specs.push(s);
        }
    }
    for t in ours.iter().chain(&competitors) {
        specs.push(base(format!("{}-idle", t.slug()), *t, Scenario::Idle));
    }
    // The same idle agent after an update over https: TLS code and the trust roots stay
    // mapped, and DynHost is an https service, so this is the figure its users get.
    let dyn_default = Tool::Dynhostd {
        debounce_ms: DEFAULT_DEBOUNCE_MS,
    };
    let mut s = base(
        format!("{}-idle-https", dyn_default.slug()),
        dyn_default,
        Scenario::Idle,
    );
    s.https = true;
    specs.push(s);
    if o.only.contains('B') {
        figures.add(run_phase("phase B (pollers, storms, idle)", specs));
    }

    // Phase C: many hosts, one cell at a time (this one is about throughput).
    let mut specs = Vec::new();
    for t in ours {
        for i in 0..3 {
            let mut s = base(format!("{}-hosts-{i}", t.slug()), t, Scenario::Hosts);
            s.hosts = o.hosts;
            specs.push(s);
        }
    }
    // Three runs each, competitors too: "ahead by more than the spread" needs everyone's spread.
    for t in &competitors {
        for i in 0..3 {
            let mut s = base(format!("{}-hosts-{i}", t.slug()), *t, Scenario::Hosts);
            s.hosts = o.hosts;
            specs.push(s);
        }
    }
    if o.only.contains('C') {
        figures.add(run_serial("phase C (many hosts)", specs));
    }

    // Phase D: one dynhostd agent at a 1 s debounce and no min_interval, SERIES_CHANGES changes
    // in a row: percentiles of change → request. Alone, like phase A (milliseconds).
    let series_tool = Tool::Dynhostd {
        debounce_ms: SERIES_DEBOUNCE_MS,
    };
    let mut s = base(
        format!("{}-series", series_tool.slug()),
        series_tool,
        Scenario::Series,
    );
    s.rounds = SERIES_CHANGES;
    s.min_interval = Some("0s".into());
    if o.only.contains('D') {
        figures.add(run_serial(
            "phase D (change → request percentiles, 1 s debounce)",
            vec![s],
        ));
    }

    // Phase E: instructions under callgrind, which counts them whatever the load: one-shot
    // updates of every tool over http:// and https://, and two lives of a dynhostd agent (its
    // first update alone, and followed by AGENT_CHANGES changes). One cell at a time, so that
    // none runs into its time-out on a busy machine.
    let agent = Tool::Dynhostd { debounce_ms: 0 };
    let mut specs = Vec::new();
    for https in [false, true] {
        let scheme = if https { "https" } else { "http" };
        for t in std::iter::once(&agent).chain(&competitors) {
            let name = match t {
                Tool::Dynhostd { .. } => "dynhostd".to_string(),
                t => t.slug(),
            };
            let mut s = base(format!("{name}-oneshot-{scheme}"), *t, Scenario::OneShot);
            s.https = https;
            s.callgrind = true;
            specs.push(s);
        }
        for changes in [0, AGENT_CHANGES] {
            let mut s = base(
                format!("dynhostd-agent-{changes}-{scheme}"),
                agent,
                Scenario::AgentLife,
            );
            s.https = https;
            s.callgrind = true;
            s.rounds = changes;
            s.min_interval = Some("0s".into());
            specs.push(s);
        }
    }
    if o.only.contains('E') {
        figures.add(run_serial("phase E (instructions, callgrind)", specs));
    }

    let tools: Vec<Tool> = ours.iter().chain(&competitors).copied().collect();
    let report = render(
        &o,
        &dynhostd,
        &snapshot,
        &tools,
        &figures,
        started.elapsed(),
    );
    print!("{report}");
    if let Some(out) = &o.out {
        // What follows the marker in the old report (analysis written by hand: where the time
        // goes, what the bytes are) is kept under the new figures.
        let kept = std::fs::read_to_string(out)
            .ok()
            .and_then(|old| old.find(KEEP_MARKER).map(|at| old[at..].to_string()));
        let report = match kept {
            Some(kept) => format!("{report}\n{kept}"),
            None => report,
        };
        std::fs::write(out, &report).expect("write report");
        eprintln!("bench: wrote {}", out.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The report.

fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// "median (min–max)", with p10–p90 instead when there are enough samples to mean something.
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    let Some(m) = median(v) else {
        return "—".into();
    };
    if v.len() == 1 {
        return f(m);
    }
    let (lo, hi, how) = if v.len() >= 10 {
        (percentile(v, 0.1), percentile(v, 0.9), "p10–p90")
    } else {
        (percentile(v, 0.0), percentile(v, 1.0), "min–max")
    };
    format!(
        "{} ({}–{} {how}, n={})",
        f(m),
        f(lo.unwrap_or(m)),
        f(hi.unwrap_or(m)),
        v.len()
    )
}

/// Millions of instructions.
fn mega(n: f64) -> String {
    format!("{:.2} M", n / 1e6)
}

fn kb(k: f64) -> String {
    // /proc counts in KiB; binary units throughout, said as such.
    if k >= 1024.0 {
        format!("{:.2} MiB", k / 1024.0)
    } else {
        format!("{k:.0} KiB")
    }
}

fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Size after `strip` (into a temporary copy), or as built if no strip here can read it. The
/// host's binutils strip reads only its own architecture; llvm-strip and the cross binutils
/// (if installed) read the others.
fn stripped_size(path: &Path) -> (u64, bool) {
    let tmp = std::env::temp_dir().join(format!("bench-strip-{}", std::process::id()));
    let ok = ["strip", "llvm-strip", "aarch64-linux-gnu-strip"]
        .iter()
        .any(|strip| {
            Command::new(strip)
                .arg("-o")
                .arg(&tmp)
                .arg(path)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    let size = if ok { size_of(&tmp) } else { None };
    let _ = std::fs::remove_file(&tmp);
    match size {
        Some(s) => (s, true),
        None => (size_of(path).unwrap_or(0), false),
    }
}

fn cmd_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                String::from_utf8_lossy(&o.stderr).trim().to_string()
            } else {
                s
            }
        })
        .unwrap_or_default()
}

fn render(
    o: &Options,
    dynhostd: &Path,
    snapshot: &Path,
    tools: &[Tool],
    f: &Figures,
    took: Duration,
) -> String {
    let mut r = String::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(r, "# Benchmarks\n");
    let _ = writeln!(
        r,
        "dynhostd side by side with ddclient and inadyn, produced by `{}` (examples/bench.rs). \
         Each tool runs in fresh network namespaces against the local DynHost stand-in over HTTP \
         on loopback (and over HTTPS with a test CA for the https instruction rows); the WAN is a tun device `ppp0` with point-to-point documentation \
         addresses. Figures are median (spread). Nothing was tuned for this run.\n",
        o.command
    );
    let _ = writeln!(r, "## Machine and versions\n");
    let _ = writeln!(r, "- command: `{}`", o.command);
    let _ = writeln!(
        r,
        "- machine: {} CPU(s), {cpu}, Linux {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cmd_line("uname", &["-r"])
    );
    let _ = writeln!(
        r,
        "- dynhostd: {} ({})",
        cmd_line(&snapshot.display().to_string(), &["--version"]),
        project_relative(dynhostd).display()
    );
    if tools.contains(&Tool::Ddclient) {
        let _ = writeln!(
            r,
            "- ddclient: {} (Debian package)",
            cmd_line("dpkg-query", &["-W", "-f=${Version}", "ddclient"])
        );
        let _ = writeln!(
            r,
            "- inadyn: {} (Debian package {})",
            cmd_line("inadyn", &["--version"]),
            cmd_line("dpkg-query", &["-W", "-f=${Version}", "inadyn"])
        );
    }
    let _ = writeln!(r, "- {}", cmd_line("rustc", &["--version"]));
    let _ = writeln!(
        r,
        "- strace: {}",
        cmd_line("strace", &["-V"]).lines().next().unwrap_or("")
    );
    if !f.oneshot.is_empty() || !f.agent_life.is_empty() {
        let _ = writeln!(r, "- valgrind: {}", cmd_line("valgrind", &["--version"]));
    }
    let _ = writeln!(
        r,
        "- load average (1, 5, 15 min) at the start: {}; at the end: {} (the machine may be \
         shared: other work running meanwhile shows here)",
        o.load_at_start,
        load_average()
    );
    let _ = writeln!(r, "- whole run: {:.0} s\n", took.as_secs_f64());

    let _ = writeln!(r, "## Results\n");
    let mut header = String::from("| figure |");
    let mut rule = String::from("|---|");
    for t in tools {
        header += &format!(" {} |", t.name());
        rule += "---|";
    }
    let _ = writeln!(r, "{header}\n{rule}");
    let row = |r: &mut String, label: &str, cell: &dyn Fn(Tool) -> String| {
        let mut line = format!("| {label} |");
        for t in tools {
            line += &format!(" {} |", cell(*t));
        }
        let _ = writeln!(r, "{line}");
    };
    row(&mut r, "waits by design (debounce / poll period)", &|t| {
        fmt_ms(t.built_in_wait().as_millis() as f64)
    });
    row(&mut r, "1. address change → request at server", &|t| {
        spread(f.latency.get(&t).map_or(&[][..], |v| v), fmt_ms)
    });
    row(&mut r, "1. … minus the debounce (dynhostd)", &|t| match t {
        Tool::Dynhostd { debounce_ms } => {
            let v: Vec<f64> = f.latency.get(&t).map_or(vec![], |v| {
                v.iter().map(|x| x - debounce_ms as f64).collect()
            });
            spread(&v, fmt_ms)
        }
        _ => "—".into(),
    });
    row(&mut r, "2. redial (ppp0 recreated) → request", &|t| {
        spread(f.redial.get(&t).map_or(&[][..], |v| v), fmt_ms)
    });
    row(&mut r, "2. … minus the debounce (dynhostd)", &|t| match t {
        Tool::Dynhostd { debounce_ms } => {
            let v: Vec<f64> = f.redial.get(&t).map_or(vec![], |v| {
                v.iter().map(|x| x - debounce_ms as f64).collect()
            });
            spread(&v, fmt_ms)
        }
        _ => "—".into(),
    });
    let idle = |t: Tool, g: &dyn Fn(&IdleFigures) -> String| {
        f.idle.get(&t).map(g).unwrap_or_else(|| "—".into())
    };
    row(
        &mut r,
        &format!(
            "3. idle syscalls per {} s (strace -c -f), {}–{} s after the last update",
            o.idle_s,
            5 + o.idle_s,
            5 + 2 * o.idle_s
        ),
        &|t| idle(t, &|i| i.syscalls.to_string()),
    );
    row(
        &mut r,
        &format!(
            "3. … and {}–{} s after it",
            5 + 2 * o.idle_s,
            5 + 3 * o.idle_s
        ),
        &|t| idle(t, &|i| i.syscalls_later.to_string()),
    );
    row(
        &mut r,
        &format!(
            "3. idle wake-ups per {} s (context switches), 5–{} s after the last update",
            o.idle_s,
            5 + o.idle_s
        ),
        &|t| idle(t, &|i| i.wakeups.to_string()),
    );
    row(
        &mut r,
        &format!("3. processes started per {} s idle", o.idle_s),
        &|t| idle(t, &|i| i.spawned.to_string()),
    );
    row(
        &mut r,
        &format!("3. idle CPU time per {} s", o.idle_s),
        &|t| idle(t, &|i| fmt_ms(i.cpu_ms)),
    );
    row(
        &mut r,
        "4. idle RSS, whole process tree (total: file-backed, anonymous)",
        &|t| {
            idle(t, &|i| {
                format!(
                    "{}: file {}, anonymous {}",
                    kb(i.rss_kb as f64),
                    kb(i.file_kb as f64),
                    kb(i.anon_kb as f64)
                )
            })
        },
    );
    row(
        &mut r,
        "4. … the same after an update over https (dynhostd, default debounce)",
        &|t| match (&f.idle_https, t) {
            (Some(i), Tool::Dynhostd { debounce_ms }) if debounce_ms == DEFAULT_DEBOUNCE_MS => {
                format!(
                    "{}: file {}, anonymous {}",
                    kb(i.rss_kb as f64),
                    kb(i.file_kb as f64),
                    kb(i.anon_kb as f64)
                )
            }
            _ => "—".into(),
        },
    );
    row(
        &mut r,
        "5. storm (400 events, ends unchanged): requests",
        &|t| {
            let v: Vec<f64> = f
                .storm
                .get(&t)
                .map_or(vec![], |v| v.iter().map(|s| s.requests as f64).collect());
            spread(&v, |x| format!("{x:.0}"))
        },
    );
    row(
        &mut r,
        "5. storm: CPU time (first event → last + 3 s)",
        &|t| {
            let v: Vec<f64> = f
                .storm
                .get(&t)
                .map_or(vec![], |v| v.iter().map(|s| s.cpu_ms).collect());
            spread(&v, fmt_ms)
        },
    );
    row(
        &mut r,
        &format!("6. {} hosts: start → last acknowledged", o.hosts),
        &|t| {
            let h = f.hosts.get(&t).map_or(&[][..], |v| v);
            if h.is_empty() {
                return "—".into();
            }
            let unfinished: Vec<&HostsFigures> = h.iter().filter(|x| x.secs.is_none()).collect();
            if let Some(u) = unfinished.first() {
                return format!(
                    "did not finish in {} s ({}/{} acknowledged)",
                    u.cap_s, u.acknowledged, u.total
                );
            }
            let v: Vec<f64> = h
                .iter()
                .filter_map(|x| x.secs)
                .map(|s| s * 1000.0)
                .collect();
            spread(&v, fmt_ms)
        },
    );
    let hosts_part = |t: Tool, part: &dyn Fn(&HostsFigures) -> Option<f64>| {
        let v: Vec<f64> = f.hosts.get(&t).map_or(vec![], |v| {
            v.iter().filter_map(part).map(|s| s * 1000.0).collect()
        });
        spread(&v, fmt_ms)
    };
    row(
        &mut r,
        &format!(
            "6. {} hosts: … of which start → first request (start-up)",
            o.hosts
        ),
        &|t| hosts_part(t, &|h| h.first_request_secs),
    );
    row(
        &mut r,
        &format!(
            "6. {} hosts: … and first → last acknowledged (the requests)",
            o.hosts
        ),
        &|t| {
            hosts_part(t, &|h| match (h.secs, h.first_request_secs) {
                (Some(all), Some(first)) => Some(all - first),
                _ => None,
            })
        },
    );
    row(
        &mut r,
        &format!("6. {} hosts: CPU time (whole process tree)", o.hosts),
        &|t| {
            let v: Vec<f64> = f
                .hosts
                .get(&t)
                .map_or(vec![], |v| v.iter().map(|x| x.cpu_ms).collect());
            spread(&v, fmt_ms)
        },
    );
    row(
        &mut r,
        &format!("6. {} hosts: TCP connections used", o.hosts),
        &|t| {
            let v: Vec<f64> = f
                .hosts
                .get(&t)
                .map_or(vec![], |v| v.iter().map(|x| x.connections as f64).collect());
            spread(&v, |c| format!("{c:.0}"))
        },
    );
    row(&mut r, &format!("6. {} hosts: peak RSS", o.hosts), &|t| {
        let v: Vec<f64> = f
            .hosts
            .get(&t)
            .map_or(vec![], |v| v.iter().map(|x| x.peak_rss_kb as f64).collect());
        spread(&v, kb)
    });

    let _ = writeln!(r, "\n## 7. Binary sizes\n");
    let _ = writeln!(r, "| build | size | note |\n|---|---|---|");
    let mut binaries = vec![(project_relative(dynhostd), snapshot.to_path_buf())];
    for pattern in ["target/static", "dist"] {
        if let Ok(out) = sh(&format!(
            "find {pattern} -type f \\( -path '*/release/dynhostd' -o -path 'dist/*' \\) 2>/dev/null | sort"
        )) {
            binaries.extend(out.lines().map(|l| (PathBuf::from(l), PathBuf::from(l))));
        }
    }
    for (b, file) in binaries {
        // dist/ also holds archives, man pages and completions: executables only.
        let arch = cmd_line("file", &["-b", &file.display().to_string()]);
        if !arch.starts_with("ELF") {
            continue;
        }
        let (size, stripped) = stripped_size(&file);
        let arch = arch.split(',').take(2).collect::<Vec<_>>().join(",");
        let _ = writeln!(
            r,
            "| `{}` | {:.2} MiB ({size} B) | {}{} |",
            b.display(),
            size as f64 / 1_048_576.0,
            if stripped {
                "stripped"
            } else {
                "as built (strip could not read it)"
            },
            if arch.is_empty() {
                String::new()
            } else {
                format!("; {arch}")
            }
        );
    }
    if tools.contains(&Tool::Ddclient) {
        for (pkg, main) in [
            ("ddclient", "/usr/bin/ddclient"),
            ("inadyn", "/usr/sbin/inadyn"),
        ] {
            let installed = cmd_line("dpkg-query", &["-W", "-f=${Installed-Size}", pkg]);
            let _ = writeln!(
                r,
                "| {pkg} (Debian package, for context) | {} kB installed | `{main}` alone: {} kB; {} |",
                installed,
                size_of(Path::new(main)).unwrap_or(0) / 1024,
                if pkg == "ddclient" {
                    "a Perl script: needs perl and its modules"
                } else {
                    "links libconfuse and GnuTLS"
                }
            );
        }
    }

    let series_above: Vec<f64> = f
        .series
        .iter()
        .map(|x| x - SERIES_DEBOUNCE_MS as f64)
        .collect();
    if !series_above.is_empty() {
        let _ = writeln!(
            r,
            "\n## 8. Change → request at a 1 s debounce ({} changes in a row)\n",
            series_above.len()
        );
        let _ = writeln!(
            r,
            "| figure | dynhostd (debounce 1s, min_interval 0s) |\n|---|---|"
        );
        for (what, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            let _ = writeln!(
                r,
                "| change → request, above the debounce: {what} | {} |",
                percentile(&series_above, p).map_or("—".into(), fmt_ms)
            );
        }
    }
    // Phase E's columns: dynhostd and the competitors, each as it runs one-shot.
    let agent = Tool::Dynhostd { debounce_ms: 0 };
    let per_later = |https: bool| -> Option<f64> {
        let one = *f.agent_life.get(&(https, 0))?;
        let more = *f.agent_life.get(&(https, AGENT_CHANGES))?;
        Some((more as f64 - one as f64) / AGENT_CHANGES as f64)
    };
    if !f.oneshot.is_empty() || !f.agent_life.is_empty() {
        let columns: Vec<(Tool, &str)> = [
            (agent, "dynhostd"),
            (Tool::Inadyn, "inadyn --once"),
            (Tool::Ddclient, "ddclient -daemon=0"),
        ]
        .into_iter()
        .filter(|(t, _)| !t.polls() || tools.contains(t))
        .collect();
        let _ = writeln!(
            r,
            "\n## 9. CPU instructions (callgrind, whatever the load)\n"
        );
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for (_, name) in &columns {
            header += &format!(" {name} |");
            rule += "---|";
        }
        let _ = writeln!(r, "{header}\n{rule}");
        for https in [false, true] {
            let mut line = format!(
                "| one-shot update, {}: instructions (M) |",
                if https { "https" } else { "http" }
            );
            for (t, _) in &columns {
                line += &format!(
                    " {} |",
                    f.oneshot
                        .get(&(*t, https))
                        .map_or("—".into(), |&i| mega(i as f64))
                );
            }
            let _ = writeln!(r, "{line}");
        }
        let mut line = String::from("| agent, first update then SIGTERM: instructions (M) |");
        let mut later = String::from("| agent, per later update: instructions (M) |");
        for (t, _) in &columns {
            if *t == agent {
                let each = |get: &dyn Fn(bool) -> Option<f64>| {
                    [false, true]
                        .iter()
                        .filter_map(|&https| {
                            get(https).map(|v| {
                                format!("{} ({})", mega(v), if https { "https" } else { "http" })
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                line += &format!(
                    " {} |",
                    each(&|https| f.agent_life.get(&(https, 0)).map(|&i| i as f64))
                );
                later += &format!(" {} |", each(&per_later));
            } else {
                line += " — |";
                later += " — |";
            }
        }
        let _ = writeln!(r, "{line}\n{later}");
    }

    let _ = writeln!(r, "\n## Targets (dynhostd)\n");
    for t in tools.iter().filter(|t| !t.polls()) {
        let Tool::Dynhostd { debounce_ms } = *t else {
            continue;
        };
        let limit = debounce_ms as f64 + 50.0;
        for (what, v) in [("change", f.latency.get(t)), ("redial", f.redial.get(t))] {
            if let Some(m) = v.and_then(|v| median(v)) {
                let worst = v.and_then(|v| percentile(v, 1.0)).unwrap_or(m);
                let _ = writeln!(
                    r,
                    "- latency ({what}, debounce {}s) ≤ debounce + 50 ms = {}: **{}** (median {}, worst {})",
                    debounce_ms / 1000,
                    fmt_ms(limit),
                    if worst <= limit {
                        "met"
                    } else if m <= limit {
                        "met at the median, missed at worst"
                    } else {
                        "missed"
                    },
                    fmt_ms(m),
                    fmt_ms(worst)
                );
            }
        }
    }
    let default = Tool::Dynhostd {
        debounce_ms: DEFAULT_DEBOUNCE_MS,
    };
    for t in tools.iter().filter(|t| !t.polls()) {
        if let Some(i) = f.idle.get(t) {
            let _ = writeln!(
                r,
                "- zero syscalls while idle ({}): **{}** ({} in the {} s from {} s after the \
                 last update, {} in the next {} s)",
                t.name(),
                match (i.syscalls, i.syscalls_later) {
                    (0, 0) => "met",
                    (_, 0) => "met once the last update's timers have run out, missed before",
                    _ => "missed",
                },
                i.syscalls,
                i.window_s,
                5 + i.window_s,
                i.syscalls_later,
                i.window_s
            );
        }
    }
    if let Some(i) = f.idle.get(&default) {
        let _ = writeln!(
            r,
            "- idle RSS < 3.0 MB (issue 15; 2.86 MiB, so it holds in either unit): **{}** ({}: \
             file-backed {}, pages of the executable; anonymous {})",
            if i.rss_kb * 1024 < 3_000_000 {
                "met"
            } else {
                "missed"
            },
            kb(i.rss_kb as f64),
            kb(i.file_kb as f64),
            kb(i.anon_kb as f64)
        );
    }
    if let Some(i) = &f.idle_https {
        let _ = writeln!(
            r,
            "- idle RSS < 3.0 MB after an update over https ({}): **{}** ({}: file-backed {}; \
             anonymous {}, the trust roots included)",
            default.name(),
            if i.rss_kb * 1024 < 3_000_000 {
                "met"
            } else {
                "missed"
            },
            kb(i.rss_kb as f64),
            kb(i.file_kb as f64),
            kb(i.anon_kb as f64)
        );
    }
    for t in tools.iter().filter(|t| !t.polls()) {
        if let Some(s) = f.storm.get(t) {
            let total: usize = s.iter().map(|x| x.requests).sum();
            let _ = writeln!(
                r,
                "- no request after the storm ({}): **{}** ({} request(s) in {} storm(s))",
                t.name(),
                if total == 0 { "met" } else { "missed" },
                total,
                s.len()
            );
        }
    }
    for t in tools.iter().filter(|t| !t.polls()) {
        if let Some(h) = f.hosts.get(t) {
            let secs: Vec<f64> = h.iter().filter_map(|x| x.secs).collect();
            let all = secs.len() == h.len();
            let worst = percentile(&secs, 1.0).unwrap_or(f64::INFINITY);
            let _ = writeln!(
                r,
                "- {} hosts ≤ 2 s ({}): **{}** (median {}, worst {})",
                o.hosts,
                t.name(),
                if all && worst <= 2.0 { "met" } else { "missed" },
                median(&secs).map_or("—".into(), |m| fmt_ms(m * 1000.0)),
                if all {
                    fmt_ms(worst * 1000.0)
                } else {
                    "did not finish".into()
                }
            );
        }
    }

    if !series_above.is_empty() {
        let p99 = percentile(&series_above, 0.99).unwrap_or(f64::INFINITY);
        let _ = writeln!(
            r,
            "- change → request at a 1 s debounce, p99 ≤ debounce + 5 ms: **{}** (p99 {} above \
             the debounce; p50 {}, p90 {}, max {}; n={})",
            if p99 <= 5.0 { "met" } else { "missed" },
            fmt_ms(p99),
            percentile(&series_above, 0.5).map_or("—".into(), fmt_ms),
            percentile(&series_above, 0.9).map_or("—".into(), fmt_ms),
            percentile(&series_above, 1.0).map_or("—".into(), fmt_ms),
            series_above.len()
        );
    }
    for https in [false, true] {
        if let (Some(&ours), Some(&theirs)) = (
            f.oneshot.get(&(agent, https)),
            f.oneshot.get(&(Tool::Inadyn, https)),
        ) {
            let _ = writeln!(
                r,
                "- one-shot update over {}: fewer instructions than inadyn --once: **{}** ({} vs {})",
                if https { "https" } else { "http" },
                if ours < theirs { "met" } else { "missed" },
                mega(ours as f64),
                mega(theirs as f64)
            );
        }
    }

    let _ = writeln!(r, "\n## How it is measured\n");
    let _ = writeln!(
        r,
        "- Each tool gets its own `unshare -nm` namespaces: loopback, a tun `ppp0` (local \
         {START}, peer {PEER}, default route), the stand-in on 127.0.0.1, and /etc/resolv.conf \
         bound to `nameserver 127.0.0.1` so nothing can leave. ddclient: `use=if, if=ppp0`, \
         `daemon={DDCLIENT_PERIOD}`, `protocol=dyndns2`, `server=127.0.0.1:PORT`, `ssl=no`. \
         inadyn: `iface = ppp0`, `period = {INADYN_PERIOD}`, a `custom` provider with \
         `ddns-path = \"/nic/update?system=dyndns&hostname=%h&myip=%i\"`, `ssl = false`, \
         `verify-address = false`. dynhostd: `interface = \"ppp0\"`, debounce as stated, \
         `accept` for the documentation ranges."
    );
    let _ = writeln!(
        r,
        "- Latency: the clock starts just before `ip` is run (so `ip`'s own start-up counts \
         against the tool) and stops when the stand-in has read the request's head; both are \
         `Instant` in one process. A change adds the new address, then removes the old one; a \
         redial deletes ppp0 and creates it again with the new address, in one `ip -batch`. \
         dynhostd: {n} changes per configuration, one per fresh agent, made once its \
         min_interval (30 s) has passed since its first update; the agents start together and \
         change 2.5 s apart, so each change meets an otherwise idle machine. Pollers: {n} \
         changes, one per fresh daemon, made at evenly spread points of its period after its \
         first update (a change can come at any moment), all in parallel.",
        n = o.rounds
    );
    let _ = writeln!(
        r,
        "- Idle: 5 s after the first update, a {s} s window without tracing (context switches \
         of every thread from /proc, CPU time from schedstat, RSS = sum of VmRSS, and of its \
         anonymous part RssAnon, over the process tree sampled each second, median), then two {s} s windows under `strace -c -f -p` \
         (syscalls of every thread and of any process the tool starts; execve = processes \
         started). A poller's window holds one or two of its polls.",
        s = o.idle_s
    );
    let _ = writeln!(
        r,
        "- Storm: 100 cycles of (add another address, remove ours, add ours back, remove the \
         other) in one `ip -batch`; the WAN address changes 200 times and ends unchanged. \
         Requests are counted from the first event until 5 s past the tool's period, or past \
         dynhostd's debounce + min_interval, after the last (dynhostd's storms start once \
         min_interval has passed since its last update, so it is free to send); CPU time (threads' schedstat plus exited children) from the first \
         event to 3 s after the last. {} storms per tool.",
        o.rounds
    );
    let _ = writeln!(
        r,
        "- Many hosts: {} `[[host]]` entries (one login each, as OVH DynHost logins are per \
         name; ddclient would otherwise put them all into one request), empty state, the WAN \
         already up: time from spawning the tool to the stand-in's last `good`. Peak RSS = the \
         larger of the main process's VmHWM and the tree's RSS sampled every 20 ms. Everything the tool does \
         counts, its own disk writes included (dynhostd saves its state file atomically, with \
         fsync, as updates complete; inadyn writes a cache file per host; ddclient writes its \
         cache once at the end), so this figure also depends on the disk. 3 runs per tool, \
         one at a time, each capped at {} s. The start-up part ends when the first update \
         request reaches the stand-in; the stand-in's log is read once all requests are in, so \
         watching it does not slow the stand-in down.",
        o.hosts, o.cap_s
    );
    if !f.series.is_empty() {
        let _ = writeln!(
            r,
            "- Change → request at a 1 s debounce: one dynhostd agent, `debounce = \"1s\"`, \
             `[update] min_interval = \"0s\"` (so each change is sent), {SERIES_CHANGES} address \
             changes in a row (each to an address not used before), each made {} ms after the \
             previous one's request reached the stand-in; each timed as in the latency rows (just \
             before `ip` runs → the stand-in has read the request's head), minus the debounce. \
             Alone on the machine, like the latency cells.",
            SERIES_PAUSE.as_millis()
        );
    }
    if !f.oneshot.is_empty() || !f.agent_life.is_empty() {
        let _ = writeln!(
            r,
            "- Instructions: the tool under `valgrind --tool=callgrind` (instructions executed in \
             user space, `Ir` from the `totals:` line of each out file; a count, not a time, so \
             the machine's load does not change it), in the same namespaces, against the same \
             stand-in, serving HTTPS with a fresh test CA for the https rows (each tool is given \
             that CA as its trust file: dynhostd `ca_file`, inadyn `ca-trust-file`, ddclient \
             `ssl_ca_file`). One-shot: empty state or cache, one host, the WAN up; \
             `dynhostd update --config …`, `inadyn --once --foreground`, `ddclient -daemon=0` \
             with its config as above and `ssl=yes` for https (followed into the processes it \
             starts with `--trace-children=yes`, all out files summed: ddclient runs `ip` \
             through a shell); from exec to exit, start-up and config parsing included. Agent: \
             `dynhostd run`, debounce 0, `min_interval = \"0s\"`, stopped with SIGTERM 2 s after \
             its last request; once after its first update alone, once after {AGENT_CHANGES} \
             address changes more (each sent, 2 s apart); per later update = the difference / \
             {AGENT_CHANGES}. One cell at a time."
        );
    }
    if !f.notes.is_empty() {
        let _ = writeln!(r, "\n## Notes from this run\n");
        for n in &f.notes {
            let _ = writeln!(r, "- {n}");
        }
    }
    let _ = writeln!(
        r,
        "\n## Idle detail: most frequent syscalls (first traced window; next window)\n"
    );
    let list = |rows: &[(String, u64)]| {
        if rows.is_empty() {
            "none".to_string()
        } else {
            rows.iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    for t in tools {
        if let Some(i) = f.idle.get(t) {
            let _ = writeln!(
                r,
                "- {}: {}; then {}",
                t.name(),
                list(&i.top_syscalls),
                list(&i.top_syscalls_later)
            );
        }
    }
    r
}

/// `path` as the report names it: relative to the project (bench/run runs from its top), so that
/// BENCHMARKS.md never holds a path of the machine that ran it.
/// A binary from outside the project (BENCH_DYNHOSTD=/elsewhere/x) is named by its file name.
fn project_relative(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|top| path.strip_prefix(top).ok().map(Path::to_path_buf))
        .or_else(|| {
            path.is_relative().then(|| path.to_path_buf()).or_else(|| {
                path.file_name()
                    .map(|n| Path::new("(outside the project)").join(n))
            })
        })
        .unwrap_or_else(|| path.to_path_buf())
}
