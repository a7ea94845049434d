//! Hooks on change: the user's program (`exec = "/path/script"`), run after each update attempt
//! with what happened in its environment (`DYNHOSTD_HOST`, `DYNHOSTD_FAMILY`, `DYNHOSTD_IP`,
//! `DYNHOSTD_OLD_IP`, `DYNHOSTD_EVENT`, `DYNHOSTD_ERROR`, `DYNHOSTD_INTERFACE`). Of the agent's own environment it gets
//! only the locale and the time zone, and [`HOOK_PATH`] as its `PATH`: secrets given through
//! `*_env` stay with the agent.
//!
//! The program is executed directly, never through a shell: every value travels as an
//! environment variable, verbatim, so an error text such as `$(reboot)` from a provider's reply is
//! only ever data. It gets no stdin, shares the agent's stdout/stderr (the journal under
//! systemd) and runs in a process group of its own. The whole group is killed at the timeout,
//! as soon as the hook itself exits (a background job it left behind would otherwise outlive
//! it, unbounded), and when the agent stops; a hook that wants a lasting process must start it
//! through the service manager.
//!
//! [`HookQueue`] bounds them: at most [`MAX_RUNNING`] hooks at once, one per record; further
//! events wait, and a newer event for a record replaces the one still waiting (logged), so 300
//! failing hosts cannot make thousands of processes.

use crate::clock::UnixTime;
use crate::record::{Family, RecordKey};
use std::collections::{HashMap, HashSet, VecDeque};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// Hooks running at once, across all records. A few are enough for the usual one or two hosts;
/// more would only let a misbehaving script multiply.
pub const MAX_RUNNING: usize = 4;

/// What the update attempt came to, as `DYNHOSTD_EVENT` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// The provider took the new address.
    Updated,
    /// The provider already had it (`nochg`), or the state file said so.
    Unchanged,
    /// This attempt failed; the agent will retry.
    Error,
    /// The host is stopped until its config changes (bad credentials, abuse, …).
    Stopped,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::Updated => "updated",
            HookKind::Unchanged => "unchanged",
            HookKind::Error => "error",
            HookKind::Stopped => "stopped",
        }
    }
}

/// One update attempt's outcome, handed to the hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    pub host: String,
    pub family: Family,
    /// The address the attempt was for.
    pub ip: Option<IpAddr>,
    /// What was published before, if known.
    pub old_ip: Option<IpAddr>,
    pub event: HookKind,
    /// The user-facing summary of the failure, for `error` and `stopped`.
    pub error: Option<String>,
    /// The summary of the reply, whatever it was (`good`, `nochg`, `401 unauthorized`, …).
    pub reply: String,
    /// The first `good`/`nochg` after an `error` or `stopped` of this record.
    pub recovered: bool,
    /// When the reply came (wall clock).
    pub time: UnixTime,
    /// The interface the record's address comes from now (the active one of a failover list),
    /// or over which HTTP detection asked; None when there is none.
    pub interface: Option<String>,
}

impl HookEvent {
    /// The environment the hook sees. Empty strings, not missing variables, for absent values,
    /// so `set -u` scripts work.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let ip = |v: Option<IpAddr>| v.map(|a| a.to_string()).unwrap_or_default();
        vec![
            ("DYNHOSTD_HOST", env_value(&self.host)),
            ("DYNHOSTD_FAMILY", self.family.name().into()),
            ("DYNHOSTD_IP", ip(self.ip).into()),
            ("DYNHOSTD_OLD_IP", ip(self.old_ip).into()),
            ("DYNHOSTD_EVENT", self.event.as_str().into()),
            (
                "DYNHOSTD_ERROR",
                env_value(self.error.as_deref().unwrap_or("")),
            ),
            (
                "DYNHOSTD_INTERFACE",
                env_value(self.interface.as_deref().unwrap_or("")),
            ),
        ]
    }
}

/// An environment value cannot hold NUL (execve would refuse the whole call); everything else
/// passes untouched.
fn env_value(s: &str) -> OsString {
    s.replace('\0', "\u{FFFD}").into()
}

/// The hook's `PATH`, whatever the agent's own is: a `PATH` set by whoever started the agent (a
/// login shell, an init script, `sudo -E`) must not decide which `sed` or `curl` a root hook runs.
pub const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The locale categories (POSIX, and glibc's few more): by name, not `LC_*`, since any name may
/// hold a secret (ssh's `AcceptEnv LC_*` is a known way to carry data in).
const LOCALE: &[&str] = &[
    "LANG",
    "LC_ALL",
    "LC_ADDRESS",
    "LC_COLLATE",
    "LC_CTYPE",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NAME",
    "LC_NUMERIC",
    "LC_PAPER",
    "LC_TELEPHONE",
    "LC_TIME",
];

/// Whether the hook may see the agent's variable `name`: only the locale and the time zone, so
/// its messages and dates read as the administrator's do. Everything else stays with the agent:
/// a password given through `password_env`, an OVH secret through `*_env`, `NOTIFY_SOCKET`
/// (with it a hook could speak to systemd in the agent's name), `LD_PRELOAD`, and whatever else
/// the service manager or a shell left there.
fn inherited(name: &std::ffi::OsStr) -> bool {
    name == "TZ" || LOCALE.iter().any(|l| name == *l)
}

/// How much of a hook is read to judge it: the kernel itself looks at no more (BINPRM_BUF_SIZE,
/// the `#!` line included).
const HEAD: u64 = 256;

/// Interpreters within interpreters the kernel follows (`#!` naming another script); deeper
/// than this it gives up with ELOOP.
const MAX_NESTED: usize = 4;

/// Whether the file at `path` is something execve(2) can run on this machine: a script whose
/// `#!` interpreter exists and is itself runnable, or an ELF program of this machine's kind.
/// Anything else (a text file without `#!`, a binary built for another CPU, an object file)
/// would fail at every event with ENOEXEC, long after `check` said the config was fine. Only
/// the first [`HEAD`] bytes are read, as src/fsread.rs reads files: non-blocking open (a FIFO in
/// its place cannot hang the agent), and only a regular file.
///
/// The error names the file and what is wrong with it; the caller adds the config key.
pub fn check_program(path: &Path) -> Result<(), String> {
    check_nested(path, 0)
}

fn check_nested(path: &Path, depth: usize) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let head = match read_head(path) {
        Ok(head) => head,
        // Execute-only (mode 0711 and not ours): the kernel may still run it; nothing to judge.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|b| *b == b'\n').next().unwrap_or_default();
        let interp = line
            .split(|b| *b == b' ' || *b == b'\t')
            .find(|w| !w.is_empty())
            .unwrap_or_default();
        if interp.is_empty() {
            return Err(format!(
                "{shown} starts with \"#!\" but names no interpreter"
            ));
        }
        let interp = Path::new(std::ffi::OsStr::from_bytes(interp));
        let named = interp.display();
        // The kernel would look a relative interpreter up from the agent's working directory.
        if !interp.is_absolute() {
            return Err(format!(
                "{shown}: its interpreter {named} is not an absolute path"
            ));
        }
        let meta = std::fs::metadata(interp)
            .map_err(|e| format!("{shown}: its interpreter {named}: {e}"))?;
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "{shown}: its interpreter {named} is not an executable file"
            ));
        }
        if depth >= MAX_NESTED {
            return Err(format!(
                "{shown}: too many interpreters within interpreters"
            ));
        }
        return check_nested(interp, depth + 1)
            .map_err(|e| format!("{shown}: its interpreter is unusable: {e}"));
    }
    if head.starts_with(b"\x7fELF") {
        return elf_for_this_machine(&head).map_err(|m| format!("{shown} is {m}"));
    }
    Err(format!(
        "{shown} is neither a program (ELF) nor a script starting with \"#!\": the system cannot run it"
    ))
}

/// The first [`HEAD`] bytes of the regular file at `path`.
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut head = Vec::new();
    file.take(HEAD).read_to_end(&mut head)?;
    Ok(head)
}

/// ELF `e_machine` numbers (the System V gABI's registry) of the targets dynhostd is built for.
const MACHINES: &[(&str, u16)] = &[
    ("x86", 3),
    ("mips", 8),
    ("mips64", 8),
    ("powerpc", 20),
    ("powerpc64", 21),
    ("s390x", 22),
    ("arm", 40),
    ("x86_64", 62),
    ("aarch64", 183),
    ("riscv32", 243),
    ("riscv64", 243),
    ("loongarch64", 258),
];

/// Ok if the ELF header in `h` describes a program this machine runs: this build's word size,
/// byte order and CPU (`std::env::consts::ARCH`), or the 32-bit programs a 64-bit x86 or Arm
/// kernel also runs. Err: what the file is instead, in words ("an ELF program for aarch64").
fn elf_for_this_machine(h: &[u8]) -> Result<(), String> {
    // e_ident (16 bytes), e_type (2), e_machine (2).
    if h.len() < 20 {
        return Err("a truncated ELF file".into());
    }
    let (class, data) = (h[4], h[5]);
    let half = |at: usize| match data {
        1 => u16::from_le_bytes([h[at], h[at + 1]]),
        _ => u16::from_be_bytes([h[at], h[at + 1]]),
    };
    let (e_type, machine) = (half(16), half(18));
    // ET_EXEC, or ET_DYN (position-independent programs); not ET_REL (.o) or ET_CORE.
    if !matches!(e_type, 2 | 3) {
        return Err("an ELF file that is not a program (an object or core file)".into());
    }
    let our_class = if cfg!(target_pointer_width = "64") {
        2
    } else {
        1
    };
    let our_data = if cfg!(target_endian = "little") { 1 } else { 2 };
    let arch = std::env::consts::ARCH;
    let ours = MACHINES.iter().find(|(a, _)| *a == arch).map(|(_, m)| *m);
    // A CPU missing from the table is not judged by machine: better to accept than to refuse a
    // working hook.
    let native = class == our_class && data == our_data && ours.is_none_or(|m| m == machine);
    let compat = class == 1
        && data == our_data
        && matches!((arch, machine), ("x86_64", 3) | ("aarch64", 40));
    if native || compat {
        return Ok(());
    }
    let cpu = MACHINES
        .iter()
        .find(|(_, m)| *m == machine)
        .map_or_else(|| format!("CPU type {machine}"), |(a, _)| (*a).to_string());
    let bits = if class == 1 { 32 } else { 64 };
    let order = if data == 1 { "little" } else { "big" };
    Err(format!(
        "an ELF program for {cpu} ({bits}-bit, {order}-endian), not for this machine ({arch})"
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot run the hook {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the hook {} was still running after {timeout:?}: killed", path.display())]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("lost track of the hook {}: {source}", path.display())]
    Wait {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs `path` for `ev` and waits for it, at most `timeout`. A non-zero exit is logged and
/// returned as the status; only failing to start, timing out or losing the child is an error.
pub async fn run_hook(
    path: &Path,
    ev: &HookEvent,
    timeout: Duration,
) -> Result<ExitStatus, HookError> {
    let mut cmd = command(path, ev);
    let mut child = spawn(&mut cmd, path).await?;
    // From here on, however this future ends (done, timeout, or dropped at shutdown), the
    // hook's whole process group is killed.
    let group = Group(child.id());
    debug!(hook = %path.display(), host = %ev.host, event = ev.event.as_str(), "hook started");
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            if group.kill() {
                debug!(hook = %path.display(), host = %ev.host, "the hook left processes behind: killed");
            }
            if !status.success() {
                warn!(hook = %path.display(), host = %ev.host, event = ev.event.as_str(), "the hook failed: {status}");
            }
            Ok(status)
        }
        Ok(Err(source)) => Err(HookError::Wait {
            path: path.to_path_buf(),
            source,
        }),
        Err(_) => {
            // The leader is not reaped yet, so its pid (the group id) cannot have been reused.
            group.kill();
            let _ = child.start_kill();
            let _ = child.wait().await;
            warn!(hook = %path.display(), host = %ev.host, "the hook was still running after {timeout:?}: killed");
            Err(HookError::Timeout {
                path: path.to_path_buf(),
                timeout,
            })
        }
    }
}

/// A hook's process group (its id is the leader's pid), killed with SIGKILL when dropped.
///
/// After the leader has been reaped the id stays reserved while any member lives (Linux does not
/// hand out a pid still in use as a process group id), so the kill reaches only the hook's
/// leftovers; with none left it finds nothing (ESRCH).
struct Group(Option<u32>);

impl Group {
    /// Kills the group now; true if anything was there to kill.
    fn kill(&self) -> bool {
        match self.0.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory involved.
            Some(pgid) if pgid > 1 => unsafe { libc::kill(-pgid, libc::SIGKILL) == 0 },
            _ => false,
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One hook to run: the program, the event, its time limit.
#[derive(Debug, Clone)]
pub struct HookJob {
    pub path: PathBuf,
    pub event: HookEvent,
    pub timeout: Duration,
}

/// Runs hooks in the background, at most [`MAX_RUNNING`] at once and one at a time per record;
/// while they are busy, the latest event of each record waits and an older waiting one is
/// dropped (and logged). Dropping the queue (the agent stopping) kills every running hook's
/// process group.
pub struct HookQueue {
    tx: Option<mpsc::UnboundedSender<HookJob>>,
    supervisor: JoinSet<()>,
}

impl HookQueue {
    /// Starts the queue's task; call inside the runtime.
    pub fn new() -> HookQueue {
        HookQueue::with_limit(MAX_RUNNING)
    }

    fn with_limit(limit: usize) -> HookQueue {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut supervisor = JoinSet::new();
        supervisor.spawn(supervise(rx, limit.max(1)));
        HookQueue {
            tx: Some(tx),
            supervisor,
        }
    }

    /// Queues `job`; never waits.
    pub fn submit(&self, job: HookJob) {
        if let Some(tx) = &self.tx {
            // Fails only if the supervisor is gone (the agent is stopping): nothing to run then.
            let _ = tx.send(job);
        }
    }

    /// Takes no more jobs and waits for the queued and running ones (each bounded by its
    /// timeout): for the one-shot `dynhostd update`.
    pub async fn finish(&mut self) {
        self.tx = None;
        while self.supervisor.join_next().await.is_some() {}
    }
}

impl Default for HookQueue {
    fn default() -> Self {
        HookQueue::new()
    }
}

/// The queue's task: takes jobs as they come, starts them as room allows.
async fn supervise(mut rx: mpsc::UnboundedReceiver<HookJob>, limit: usize) {
    let mut waiting: HashMap<RecordKey, HookJob> = HashMap::new();
    let mut order: VecDeque<RecordKey> = VecDeque::new();
    let mut busy: HashSet<RecordKey> = HashSet::new();
    let mut running: JoinSet<RecordKey> = JoinSet::new();
    let mut open = true;
    loop {
        // Start what may start: the oldest waiting records whose hook is not already running.
        while running.len() < limit {
            let Some(pos) = order.iter().position(|k| !busy.contains(k)) else {
                break;
            };
            let key = order.remove(pos).expect("position is in range");
            let job = waiting.remove(&key).expect("every queued key has a job");
            busy.insert(key.clone());
            running.spawn(async move {
                if let Err(e) = run_hook(&job.path, &job.event, job.timeout).await {
                    warn!(record = %key, "hook: {e}");
                }
                key
            });
        }
        if !open && running.is_empty() && waiting.is_empty() {
            return;
        }
        tokio::select! {
            job = rx.recv(), if open => match job {
                Some(job) => {
                    let key = RecordKey::new(job.event.host.clone(), job.event.family);
                    match waiting.insert(key.clone(), job) {
                        Some(old) => warn!(
                            record = %key,
                            "hook: the \"{}\" event for {key} is dropped, superseded by a newer one before its turn (at most {limit} hooks run at once)",
                            old.event.event.as_str()
                        ),
                        None => order.push_back(key),
                    }
                }
                None => open = false,
            },
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Ok(key) = done {
                    busy.remove(&key);
                }
            }
            // Only reachable if a hook task panicked with its record marked busy: give up
            // rather than spin.
            else => return,
        }
    }
}

/// The hook's command line: the program alone (the absolute path the config resolved, so no
/// `PATH` lookup happens), no shell, the event in an environment of its own.
fn command(path: &Path, ev: &HookEvent) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    // An allowlist, not a blocklist: nothing reaches the hook unless named here.
    cmd.env_clear().env("PATH", HOOK_PATH);
    cmd.envs(std::env::vars_os().filter(|(name, _)| inherited(name)));
    cmd.envs(ev.env())
        .stdin(Stdio::null())
        // Its own process group, so the timeout reaches the children of a script too.
        .process_group(0)
        // If the agent drops the future (shutdown), the hook goes with it.
        .kill_on_drop(true);
    cmd
}

/// Spawns, retrying briefly on ETXTBSY: the script may have just been written (an editor saving
/// it, or a file descriptor inherited across another thread's fork) and exec refuses a file that
/// is still open for writing.
async fn spawn(
    cmd: &mut tokio::process::Command,
    path: &Path,
) -> Result<tokio::process::Child, HookError> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 5 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(HookError::Spawn {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    /// An executable `sh` script in `dir` with `body`.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A hook that writes each DYNHOSTD_* variable, byte for byte, to a file of its name in
    /// `out`, and what it could read from stdin.
    fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        let o = out.display();
        // One plain line per variable (no eval): the recorder itself must not interpret values.
        let mut body = String::from("set -eu\n");
        for v in [
            "HOST",
            "FAMILY",
            "IP",
            "OLD_IP",
            "EVENT",
            "ERROR",
            "INTERFACE",
        ] {
            body += &format!("printf '%s' \"$DYNHOSTD_{v}\" > '{o}/{v}'\n");
        }
        body += &format!("if [ -t 0 ]; then echo tty > '{o}/stdin'; fi\n");
        body += &format!("cat > '{o}/stdin_data'\n");
        (script(dir, "hook", &body), out)
    }

    fn read(out: &Path, name: &str) -> String {
        std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn event() -> HookEvent {
        HookEvent {
            host: "home.example.com".into(),
            family: Family::V4,
            ip: Some("203.0.113.5".parse().unwrap()),
            old_ip: Some("198.51.100.7".parse().unwrap()),
            event: HookKind::Updated,
            error: None,
            reply: "good 203.0.113.5".into(),
            recovered: false,
            time: UnixTime(1_700_000_000),
            interface: Some("wwan0".into()),
        }
    }

    #[tokio::test]
    async fn the_hook_sees_the_event_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let (hook, out) = recorder(dir.path());
        let status = run_hook(&hook, &event(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(status.success());
        assert_eq!(read(&out, "HOST"), "home.example.com");
        assert_eq!(read(&out, "FAMILY"), "ipv4");
        assert_eq!(read(&out, "IP"), "203.0.113.5");
        assert_eq!(read(&out, "OLD_IP"), "198.51.100.7");
        assert_eq!(read(&out, "EVENT"), "updated");
        assert_eq!(read(&out, "ERROR"), "");
        assert_eq!(read(&out, "INTERFACE"), "wwan0");
        // stdin is /dev/null: nothing to read, and cat did not hang.
        assert_eq!(read(&out, "stdin_data"), "");
        assert!(!out.join("stdin").exists());
    }

    #[tokio::test]
    async fn absent_values_are_empty_and_every_kind_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let (hook, out) = recorder(dir.path());
        for (kind, name) in [
            (HookKind::Updated, "updated"),
            (HookKind::Unchanged, "unchanged"),
            (HookKind::Error, "error"),
            (HookKind::Stopped, "stopped"),
        ] {
            let ev = HookEvent {
                host: "v6.example.com".into(),
                family: Family::V6,
                ip: Some("2001:db8::5".parse().unwrap()),
                old_ip: None,
                event: kind,
                error: Some("nohost".into()),
                reply: "nohost".into(),
                recovered: false,
                time: UnixTime(0),
                interface: None,
            };
            run_hook(&hook, &ev, Duration::from_secs(10)).await.unwrap();
            assert_eq!(read(&out, "EVENT"), name);
            assert_eq!(read(&out, "FAMILY"), "ipv6");
            assert_eq!(read(&out, "IP"), "2001:db8::5");
            assert_eq!(read(&out, "OLD_IP"), "");
            assert_eq!(read(&out, "INTERFACE"), "");
            assert_eq!(read(&out, "ERROR"), "nohost");
        }
    }

    #[tokio::test]
    async fn hostile_values_arrive_verbatim_and_run_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (hook, out) = recorder(dir.path());
        let d = dir.path().display();
        let hostile = format!(
            "$(touch {d}/pwned1) `touch {d}/pwned2`; touch {d}/pwned3 && \"quoted\" 'single' \\ \n second line | tee {d}/pwned4 $HOME"
        );
        let mut ev = event();
        ev.event = HookKind::Error;
        ev.ip = None;
        ev.error = Some(hostile.clone());
        ev.host = format!("$(touch {d}/pwned5)");
        run_hook(&hook, &ev, Duration::from_secs(10)).await.unwrap();
        assert_eq!(read(&out, "ERROR"), hostile);
        assert_eq!(read(&out, "HOST"), format!("$(touch {d}/pwned5)"));
        assert_eq!(read(&out, "IP"), "");
        for i in 1..=5 {
            assert!(
                !dir.path().join(format!("pwned{i}")).exists(),
                "pwned{i} was created: a value was interpreted"
            );
        }
    }

    #[tokio::test]
    async fn a_nul_in_a_value_does_not_stop_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let (hook, out) = recorder(dir.path());
        let mut ev = event();
        ev.error = Some("bad\0reply".into());
        run_hook(&hook, &ev, Duration::from_secs(10)).await.unwrap();
        assert_eq!(read(&out, "ERROR"), "bad\u{FFFD}reply");
    }

    #[test]
    fn only_the_locale_and_time_zone_are_inherited() {
        for name in ["LANG", "TZ", "LC_ALL", "LC_TIME", "LC_MESSAGES"] {
            assert!(inherited(name.as_ref()), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "LD_PRELOAD",
            "DYNHOSTD_CONFIG",
            "DYNHOSTD_HOST",
            "OVH_APPLICATION_SECRET",
            "LANGUAGE_X",
            "XTZ",
            "LC_DYNHOST_PASSWORD",
        ] {
            assert!(!inherited(name.as_ref()), "{name}");
        }
    }

    #[tokio::test]
    async fn the_hook_gets_an_environment_of_its_own() {
        // The test process has plenty the hook must not see (CARGO_*, HOME, the caller's PATH);
        // the hook dumps exactly what execve gave it, from /proc, before the shell adds anything.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let hook = script(
            dir.path(),
            "env",
            &format!("/bin/cat /proc/$$/environ > '{d}/environ'"),
        );
        let cmd = command(&hook, &event());
        assert_eq!(cmd.as_std().get_args().count(), 0, "no arguments, no shell");
        assert_eq!(cmd.as_std().get_program(), hook.as_os_str());
        run_hook(&hook, &event(), Duration::from_secs(10))
            .await
            .unwrap();
        let environ = std::fs::read(dir.path().join("environ")).unwrap();
        let vars: Vec<String> = environ
            .split(|b| *b == 0)
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(vars.contains(&format!("PATH={HOOK_PATH}")), "{vars:?}");
        for v in &vars {
            let name = v.split('=').next().unwrap();
            let event_var = event().env().iter().any(|(n, _)| *n == name);
            assert!(
                name == "PATH" || event_var || inherited(name.as_ref()),
                "{name} reached the hook: {vars:?}"
            );
        }
        // The inherited ones arrive with the agent's values.
        for (name, value) in std::env::vars_os().filter(|(n, _)| inherited(n)) {
            let want = format!("{}={}", name.to_string_lossy(), value.to_string_lossy());
            assert!(vars.contains(&want), "{want} is missing: {vars:?}");
        }
    }

    /// An ELF header: class (1: 32-bit, 2: 64-bit), data (1: little, 2: big endian), type, CPU.
    fn elf(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1];
        h.resize(16, 0);
        let half = |v: u16| {
            if data == 1 {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        h.extend_from_slice(&half(e_type));
        h.extend_from_slice(&half(machine));
        h.resize(64, 0);
        h
    }

    #[test]
    fn elf_programs_are_judged_by_word_size_byte_order_and_cpu() {
        let arch = std::env::consts::ARCH;
        let ours = MACHINES.iter().find(|(a, _)| *a == arch).unwrap().1;
        let class = if cfg!(target_pointer_width = "64") {
            2
        } else {
            1
        };
        let data = if cfg!(target_endian = "little") { 1 } else { 2 };
        // Ours, as a fixed-address or a position-independent program.
        assert_eq!(elf_for_this_machine(&elf(class, data, 2, ours)), Ok(()));
        assert_eq!(elf_for_this_machine(&elf(class, data, 3, ours)), Ok(()));
        // Another CPU, word size or byte order; an object file; a header cut short.
        let other = if ours == 62 { 183 } else { 62 };
        let e = elf_for_this_machine(&elf(class, data, 2, other)).unwrap_err();
        assert!(e.contains("an ELF program for") && e.contains(arch), "{e}");
        assert!(elf_for_this_machine(&elf(3 - class, data, 2, ours)).is_err());
        assert!(elf_for_this_machine(&elf(class, 3 - data, 2, ours)).is_err());
        assert!(elf_for_this_machine(&elf(class, data, 1, ours)).is_err());
        assert!(elf_for_this_machine(&elf(class, data, 2, ours)[..19]).is_err());
        // A 64-bit x86 or Arm kernel also runs the 32-bit programs of its family.
        let compat = match arch {
            "x86_64" => Some(3),
            "aarch64" => Some(40),
            _ => None,
        };
        if let Some(m) = compat {
            assert_eq!(elf_for_this_machine(&elf(1, data, 2, m)), Ok(()));
            assert!(elf_for_this_machine(&elf(1, data, 2, 8)).is_err());
        }
        // The program running this test is one this machine runs.
        let me = std::env::current_exe().unwrap();
        assert_eq!(check_program(&me), Ok(()));
    }

    #[tokio::test]
    async fn a_failing_hook_returns_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let hook = script(dir.path(), "fails", "exit 3");
        let status = run_hook(&hook, &event(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[tokio::test]
    async fn a_missing_hook_is_a_spawn_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_hook(&dir.path().join("nope"), &event(), Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    fn alive(pid: i32) -> bool {
        // A zombie (killed, waiting for init to reap it) counts as gone.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                !state.starts_with('Z') && !state.starts_with('X')
            }
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let hook = script(
            dir.path(),
            "hangs",
            &format!(
                "echo $$ > '{d}/shell.pid'\nsleep 1000 &\necho $! > '{d}/sleep.pid.tmp'\nmv '{d}/sleep.pid.tmp' '{d}/sleep.pid'\nwait"
            ),
        );
        let started = Instant::now();
        let err = run_hook(&hook, &event(), Duration::from_millis(500))
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, HookError::Timeout { .. }), "{err:?}");
        assert!(took >= Duration::from_millis(500), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");

        let pid = |f: &str| -> i32 {
            std::fs::read_to_string(dir.path().join(f))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        };
        let (shell, sleep) = (pid("shell.pid"), pid("sleep.pid"));
        // SIGKILL is delivered asynchronously to the orphaned sleep: give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while (alive(shell) || alive(sleep)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(shell), "the hook's shell {shell} survived");
        assert!(!alive(sleep), "the hook's child {sleep} survived");
    }

    /// Waits (boundedly) until `pid` is gone.
    async fn wait_gone(pid: i32, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "{what} {pid} survived");
    }

    async fn wait_file(path: &Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(t) = std::fs::read_to_string(path)
                && let Ok(pid) = t.trim().parse()
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "no {}", path.display());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `sleep 1000` in the background, its pid written (atomically) to `name`.
    fn leaves_a_sleep(dir: &Path, name: &str, then: &str) -> PathBuf {
        let d = dir.display();
        script(
            dir,
            &format!("{name}.sh"),
            &format!(
                "sleep 1000 &\necho $! > '{d}/{name}.tmp'\nmv '{d}/{name}.tmp' '{d}/{name}'\n{then}"
            ),
        )
    }

    #[tokio::test]
    async fn a_hook_that_exits_at_once_takes_its_background_children_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let hook = leaves_a_sleep(dir.path(), "bg", "exit 0");
        let status = run_hook(&hook, &event(), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(status.success());
        let sleep = wait_file(&dir.path().join("bg")).await;
        wait_gone(sleep, "the hook's background sleep").await;
    }

    #[tokio::test]
    async fn dropping_the_queue_kills_running_hooks_with_their_children() {
        let dir = tempfile::tempdir().unwrap();
        let hook = leaves_a_sleep(dir.path(), "fg", "wait");
        let queue = HookQueue::new();
        queue.submit(HookJob {
            path: hook,
            event: event(),
            timeout: Duration::from_secs(300),
        });
        let sleep = wait_file(&dir.path().join("fg")).await;
        assert!(alive(sleep));
        drop(queue);
        // The aborted tasks are dropped when the runtime next runs them.
        wait_gone(sleep, "the hook's child after shutdown").await;
    }

    #[tokio::test]
    async fn the_queue_runs_a_few_at_once_and_keeps_the_latest_event_per_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // Each run notes itself in `running/`, records how many it saw, waits for `go`.
        std::fs::create_dir(dir.path().join("running")).unwrap();
        let hook = script(
            dir.path(),
            "count",
            &format!(
                "touch '{d}/running/'$$\nls '{d}/running' | wc -l >> '{d}/seen'\necho \"$DYNHOSTD_HOST $DYNHOSTD_EVENT\" >> '{d}/ran'\nwhile [ ! -e '{d}/go' ]; do sleep 0.05; done\nrm '{d}/running/'$$"
            ),
        );
        let mut queue = HookQueue::with_limit(2);
        let job = |host: &str, kind: HookKind| {
            let mut ev = event();
            ev.host = host.into();
            ev.event = kind;
            HookJob {
                path: hook.clone(),
                event: ev,
                timeout: Duration::from_secs(60),
            }
        };
        for h in ["a", "b", "c", "d"] {
            queue.submit(job(h, HookKind::Error));
        }
        // Two run; c and d wait. Newer events for c replace the waiting one; a's waits for a.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(dir.path().join("ran")).map_or(0, |t| t.lines().count()) < 2 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        queue.submit(job("c", HookKind::Stopped));
        queue.submit(job("c", HookKind::Updated));
        queue.submit(job("a", HookKind::Updated));
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::write(dir.path().join("go"), "").unwrap();
        tokio::time::timeout(Duration::from_secs(30), queue.finish())
            .await
            .expect("the queue finishes");
        let ran = std::fs::read_to_string(dir.path().join("ran")).unwrap();
        let mut lines: Vec<&str> = ran.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            ["a error", "a updated", "b error", "c updated", "d error"],
            "{ran}"
        );
        let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
        assert!(
            seen.lines()
                .all(|n| n.trim().parse::<usize>().unwrap() <= 2),
            "more than 2 at once: {seen}"
        );
    }
}
