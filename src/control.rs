//! The control socket: how a person (`dynhostd status`, `retry`, `update`) and pppd's ip-up hook
//! talk to the running agent instead of writing its state file beside it.
//!
//! - **Where.** A Unix stream socket, mode 0600, owned by the agent's user, at `[state] control`,
//!   else `$RUNTIME_DIRECTORY/control` (systemd's `RuntimeDirectory=dynhostd`), else
//!   `/run/dynhostd/control`. Root reaches a socket owned by the service's dynamic user because
//!   root bypasses file permissions (CAP_DAC_OVERRIDE); nobody else can connect.
//! - **Protocol.** One JSON request on one line, one JSON reply on one line, then the agent
//!   closes. Requests: `{"command":"status"}`, `{"command":"retry","hosts":[…]}`,
//!   `{"command":"check-now"}`, `{"command":"update","ips":[…]}`.
//! - **Bounds.** A request line is at most [`MAX_REQUEST`] bytes; a client that has not sent its
//!   request and read its reply within [`CLIENT_TIMEOUT`] is dropped; at most
//!   [`MAX_CLIENTS`] are served at once. All of that lives in the per-connection tasks: the
//!   agent's event loop only receives whole requests from a channel, so an idle agent still
//!   makes no syscalls (a quiet `accept` is not a timer).
//! - **Who answers.** The agent's event loop, through [`answer`], with the decider's control
//!   methods (`crate::decide::control`). With no agent, the client side ([`route`]) takes the
//!   state dir's lock (`crate::lock`) instead, so there is only ever one writer.

use crate::config::Config;
use crate::decide::{Action, Decider, Event, Now};
use crate::lock::{self, LockError, StateLock};
use crate::report::format_unix;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// Longest request line the agent reads; a longer one is refused. A request names a few hosts
/// or addresses: 64 KiB is far more than any real one.
pub const MAX_REQUEST: usize = 64 * 1024;
/// A client must send its request and take its reply within this time, or it is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 8;
/// Longest reply a client reads (a status of thousands of records).
pub const MAX_REPLY: u64 = 16 * 1024 * 1024;
/// How long a client waits for the agent's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client waits for a state dir locked by a process that does not answer yet (an
/// agent starting up, or a one-shot `update` finishing its requests).
pub const HANDOFF_WAIT: Duration = Duration::from_secs(60);
pub const SOCKET_NAME: &str = "control";
pub const DEFAULT_DIR: &str = "/run/dynhostd";

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(
        "the state dir {} is locked by pid {}, but its control socket {} does not answer ({why}); is that agent configured with another `[state] control`?",
        dir.display(),
        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        path.display()
    )]
    NoAnswer {
        dir: PathBuf,
        pid: Option<u32>,
        path: PathBuf,
        why: String,
    },
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("control socket {}: the agent's reply is not understood: {why}", path.display())]
    BadReply { path: PathBuf, why: String },
    #[error("cannot write the state file {}: {source}", path.display())]
    Save {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One request, as sent on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status,
    /// Lift the stops (and back-off) of these hosts; all with none.
    Retry {
        #[serde(default)]
        hosts: Vec<String>,
    },
    /// SIGUSR1's twin.
    CheckNow,
    /// Addresses from pppd's ip-up (`update --ip`); none: decide now with what the WAN shows.
    Update {
        #[serde(default)]
        ips: Vec<IpAddr>,
    },
}

/// The running agent's live status, as `status` gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub pid: u32,
    pub state_dir: PathBuf,
    /// Unix seconds at the snapshot: a wake-up's end is `now + in_ms`.
    pub now: u64,
    pub live: LiveStatus,
    /// `status --json`'s rows: the same fields as from the state file (from the agent's memory,
    /// every configured host), plus `source`, `pid` and the live ones (`phase`, `wan`,
    /// `in_flight`, `next` with its end `at` in Unix seconds).
    pub rows: Vec<serde_json::Value>,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// False: the request was refused, or (update, retry) some record is not current nor on
    /// its way.
    pub ok: bool,
    /// What happened, one line per record or fact, for a person.
    #[serde(default)]
    pub lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
}

impl Response {
    fn refused(why: impl Into<String>) -> Response {
        Response {
            ok: false,
            lines: vec![why.into()],
            status: None,
        }
    }
}

/// Where the socket is for this config (see the module docs).
pub fn socket_path(config: &Config) -> PathBuf {
    default_socket(config.control_socket.as_deref())
}

fn default_socket(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    // systemd may list several directories, separated by ':'; ours is the first.
    let runtime = std::env::var_os("RUNTIME_DIRECTORY").and_then(|v| {
        v.to_str()
            .and_then(|s| s.split(':').next())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    });
    runtime
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
        .join(SOCKET_NAME)
}

// ---------------------------------------------------------------------------------------------
// The agent's side.

/// A whole request from a client, and where its reply goes.
pub struct Incoming {
    pub request: Request,
    reply: oneshot::Sender<Response>,
}

/// The agent's listening socket: its accept task, and the channel the event loop reads. The
/// socket file is removed when this is dropped.
pub struct Control {
    rx: mpsc::Receiver<Incoming>,
    /// Kept so that `recv` stays pending (not closed) when no socket could be bound.
    _tx: mpsc::Sender<Incoming>,
    accept: Option<tokio::task::JoinHandle<()>>,
    bound: Option<(PathBuf, u64, u64)>,
}

impl Control {
    /// Binds the socket (logging, not failing, when it can't: the agent's job goes on without
    /// it) and starts accepting.
    pub fn start(path: &Path) -> Control {
        let (tx, rx) = mpsc::channel(MAX_CLIENTS);
        let mut control = Control {
            rx,
            _tx: tx.clone(),
            accept: None,
            bound: None,
        };
        match bind(path) {
            Ok(listener) => {
                let id = std::fs::symlink_metadata(path)
                    .map(|m| (m.dev(), m.ino()))
                    .unwrap_or((0, 0));
                control.bound = Some((path.to_path_buf(), id.0, id.1));
                control.accept = Some(tokio::spawn(accept_loop(listener, tx)));
                info!(path = %path.display(), "control socket ready (dynhostd status, retry, update)");
            }
            Err(e) => error!(
                "no control socket ({e}): `dynhostd status`, `retry` and `update` cannot reach this agent"
            ),
        }
        control
    }

    /// The next whole request.
    pub async fn recv(&mut self) -> Incoming {
        match self.rx.recv().await {
            Some(i) => i,
            // Unreachable while `_tx` lives; never spin if it ever were.
            None => std::future::pending().await,
        }
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if let Some(task) = &self.accept {
            task.abort();
        }
        // Only our own socket: another agent may have taken the path since.
        if let Some((path, dev, ino)) = &self.bound
            && std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == *dev && m.ino() == *ino)
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if StdStream::connect(path).is_ok() {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another agent answers on it",
                )));
            }
            // Left by an agent that died: nobody listens.
            std::fs::remove_file(path).map_err(io_err)?;
        }
        Ok(_) => {
            return Err(io_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket; not touching it",
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    // Private from the first moment without touching the process-wide umask: bound inside a
    // fresh 0700 directory, made 0600, then renamed into place.
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = parent.join(format!(".control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(io_err)?;
    let staged = private.join(SOCKET_NAME);
    let result = (|| {
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    let listener = result.map_err(io_err)?;
    Ok(listener)
}

async fn accept_loop(listener: UnixListener, tx: mpsc::Sender<Incoming>) {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin on the error.
                warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("control socket: {MAX_CLIENTS} clients already connected; closing a new one");
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(CLIENT_TIMEOUT, serve(stream, tx)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("control socket: client dropped: {e}"),
                Err(_) => info!(
                    "control socket: dropped a client that did not finish within {}s",
                    CLIENT_TIMEOUT.as_secs()
                ),
            }
        });
    }
}

/// One connection: read one bounded line, hand it to the event loop, write its reply.
async fn serve(stream: UnixStream, tx: mpsc::Sender<Incoming>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let limit = MAX_REQUEST as u64 + 1;
    tokio::io::BufReader::new(read)
        .take(limit)
        .read_until(b'\n', &mut line)
        .await?;
    let response = if line.len() as u64 >= limit && !line.ends_with(b"\n") {
        warn!("control socket: refused a request longer than {MAX_REQUEST} bytes");
        Response::refused(format!(
            "request too long: at most {MAX_REQUEST} bytes on one line"
        ))
    } else if line.is_empty() {
        return Ok(());
    } else {
        match serde_json::from_slice::<Request>(&line) {
            Err(e) => Response::refused(format!("bad request: {e}")),
            Ok(request) => {
                let (reply, answer) = oneshot::channel();
                if tx.send(Incoming { request, reply }).await.is_err() {
                    return Ok(());
                }
                match answer.await {
                    Ok(r) => r,
                    Err(_) => Response::refused("the agent is shutting down"),
                }
            }
        }
    };
    let mut text = serde_json::to_vec(&response).unwrap_or_default();
    text.push(b'\n');
    write.write_all(&text).await?;
    write.shutdown().await
}

/// Answers one request in the agent's event loop: asks the decider, replies, and returns what
/// the decider wants done.
pub fn answer(decider: &mut Decider, incoming: Incoming, config: &Config, now: Now) -> Vec<Action> {
    let now_unix = now.wall.0;
    let (actions, response) = match incoming.request {
        Request::Status => {
            debug!("control: status");
            let live = decider.live_status(now);
            let rows = crate::report::status(config, &decider.state(now));
            let status = AgentStatus {
                pid: std::process::id(),
                state_dir: config.state_dir.clone(),
                now: now_unix,
                rows: agent_rows(&rows, &live, now_unix),
                live,
            };
            (
                Vec::new(),
                Response {
                    ok: true,
                    lines: Vec::new(),
                    status: Some(status),
                },
            )
        }
        Request::CheckNow => {
            info!("control: check-now: checking everything now");
            let actions = decider.on_event(Event::CheckNow, now);
            (
                actions,
                Response {
                    ok: true,
                    lines: vec!["checking everything now".into()],
                    status: None,
                },
            )
        }
        Request::Retry { hosts } => {
            info!(hosts = ?hosts, "control: retry");
            match decider.retry(&hosts, now) {
                Err(e) => (Vec::new(), Response::refused(e.to_string())),
                Ok(done) => {
                    let live = decider.live_status(now);
                    let mut lines: Vec<String> = done
                        .lifted
                        .iter()
                        .map(|k| format!("{k}: stop and back-off lifted"))
                        .collect();
                    if lines.is_empty() {
                        lines.push("nothing was stopped or backing off".into());
                    }
                    // Retry did what it could: where each record stands is news, not failure.
                    let (more, _) = describe(&live, &done.actions, now_unix, |r| {
                        hosts.is_empty() || hosts.contains(&r.hostname)
                    });
                    lines.extend(more);
                    (
                        done.actions,
                        Response {
                            ok: true,
                            lines,
                            status: None,
                        },
                    )
                }
            }
        }
        Request::Update { ips } => {
            info!(ips = ?ips, "control: update handed over");
            match decider.update_from(&ips, now) {
                Err(e) => (Vec::new(), Response::refused(e.to_string())),
                Ok(actions) => {
                    let live = decider.live_status(now);
                    let (lines, ok) = describe(&live, &actions, now_unix, |_| true);
                    (
                        actions,
                        Response {
                            ok,
                            lines,
                            status: None,
                        },
                    )
                }
            }
        }
    };
    // The client may have gone; its reply is then not needed.
    let _ = incoming.reply.send(response);
    actions
}

/// The state file's rows with what only the running agent knows added to each.
fn agent_rows(
    rows: &[crate::report::RecordStatus],
    live: &LiveStatus,
    now_unix: u64,
) -> Vec<serde_json::Value> {
    rows.iter()
        .map(|row| {
            let mut v = serde_json::to_value(row).unwrap_or_default();
            v["source"] = "agent".into();
            v["pid"] = std::process::id().into();
            let found = live
                .records
                .iter()
                .find(|r| r.hostname == row.hostname && r.record == row.record);
            if let Some(r) = found {
                v["phase"] = serde_json::to_value(r.phase).unwrap_or_default();
                v["wan"] = serde_json::to_value(r.wan).unwrap_or_default();
                v["in_flight"] = serde_json::to_value(r.in_flight).unwrap_or_default();
                v["next"] = match &r.next {
                    Some(w) => serde_json::json!({
                        "reason": w.reason,
                        "in_ms": w.in_ms,
                        "at": now_unix.saturating_add(w.in_ms.div_ceil(1000)),
                    }),
                    None => serde_json::Value::Null,
                };
            }
            v
        })
        .collect()
}

/// `status --json` from the state file: its rows, each saying where it comes from.
pub fn state_rows_json(rows: &[crate::report::RecordStatus]) -> serde_json::Value {
    rows.iter()
        .map(|row| {
            let mut v = serde_json::to_value(row).unwrap_or_default();
            v["source"] = "state-file".into();
            v
        })
        .collect()
}

fn wake_end(w: &Wake, now_unix: u64) -> String {
    format_unix(now_unix.saturating_add(w.in_ms.div_ceil(1000)))
}

/// One line per record saying where it stands after a request; `ok` when every one is current
/// or on its way (sending, held until a known time, being checked).
fn describe(
    live: &LiveStatus,
    actions: &[Action],
    now_unix: u64,
    wanted: impl Fn(&LiveRecord) -> bool,
) -> (Vec<String>, bool) {
    let mut ok = true;
    let mut lines = Vec::new();
    for r in live.records.iter().filter(|r| wanted(r)) {
        let sent_now = actions.iter().any(|a| {
            matches!(a, Action::Push(p) if p.key.hostname == r.hostname && p.key.family.record_type() == r.record)
        });
        let show = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |a| a.to_string());
        let (text, fine) = match r.phase {
            Phase::Pushing if sent_now => (format!("sending {}", show(r.in_flight)), true),
            Phase::Pushing => (
                format!("already sending {} (not sent twice)", show(r.in_flight)),
                true,
            ),
            Phase::Stopped => {
                let stop = r.stopped.as_ref();
                (
                    format!(
                        "stopped after \"{}\": {}; once fixed, run `dynhostd retry {}`",
                        stop.map_or("", |s| s.reason.as_str()),
                        stop.map_or("", |s| s.fix.as_str()),
                        r.hostname
                    ),
                    false,
                )
            }
            Phase::BackingOff => (
                format!(
                    "backing off after \"{}\": next try at {}",
                    r.last_reply.as_deref().unwrap_or("a failure"),
                    r.next
                        .as_ref()
                        .map_or("-".into(), |w| wake_end(w, now_unix))
                ),
                false,
            ),
            Phase::Held => (
                format!(
                    "{} held back by min_interval: it will be sent at {}",
                    show(r.wan),
                    r.next
                        .as_ref()
                        .map_or("-".into(), |w| wake_end(w, now_unix))
                ),
                true,
            ),
            Phase::Verifying => ("being checked at its name servers first".into(), true),
            Phase::Idle => match (r.wan, r.published) {
                (Some(w), Some(p)) if w == p => (format!("{p} is already published"), true),
                (None, _) => (
                    "nothing to publish: no address on the WAN counts".into(),
                    false,
                ),
                (Some(w), _) => (format!("{w} is not sent (see the agent's log)"), false),
            },
        };
        ok &= fine;
        lines.push(format!("{}/{}: {text}", r.hostname, r.record));
    }
    (lines, ok)
}

// ---------------------------------------------------------------------------------------------
// The client's side.

/// What a client needs to find the agent: the state dir (its lock) and the control socket.
/// Read from the config file alone, resolving nothing else: root's `dynhostd retry` under
/// systemd has no `$CREDENTIALS_DIRECTORY`, and must not need the password to talk to the agent
/// that holds it. The full config is loaded only when no agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
}

impl Locations {
    pub fn of(config: &Config) -> Locations {
        Locations {
            state_dir: config.state_dir.clone(),
            socket: socket_path(config),
        }
    }

    /// `[state] dir` and `control` from the config file, every other key left unread. None
    /// when the file can't be read or parsed: the full load then says why, naming key and line.
    pub fn read(path: &Path) -> Option<Locations> {
        #[derive(Deserialize, Default)]
        struct File {
            #[serde(default)]
            state: State,
        }
        #[derive(Deserialize, Default)]
        struct State {
            dir: Option<String>,
            control: Option<String>,
        }
        // Regular files only, bounded, and never a blocking open (a FIFO in its place).
        let text = crate::fsread::read_to_string(path, crate::fsread::CONFIG_CAP).ok()?;
        let parsed: File = toml::from_str(&text).ok()?;
        let control = match parsed.state.control {
            Some(c) if !Path::new(&c).is_absolute() => return None,
            c => c.map(PathBuf::from),
        };
        let state_dir = match parsed.state.dir {
            Some(d) if d.trim().is_empty() => return None,
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(crate::config::DEFAULT_STATE_DIR),
        };
        Some(Locations {
            state_dir,
            socket: default_socket(control.as_deref()),
        })
    }
}

/// Who does the work for a command that writes the state.
pub enum Route {
    /// An agent runs: talk to it on this connection.
    Agent { pid: Option<u32>, stream: StdStream },
    /// No agent: this process now holds the lock and may write the state itself.
    Alone(StateLock),
}

/// Takes the state dir's lock, or — when an agent holds it — connects to its socket. A holder
/// that does not answer (an agent starting up, another one-shot command) is waited for up to
/// [`HANDOFF_WAIT`].
pub fn route(at: &Locations) -> Result<Route, ControlError> {
    let path = &at.socket;
    let deadline = Instant::now() + HANDOFF_WAIT;
    loop {
        match lock::acquire(&at.state_dir) {
            Ok(held) => return Ok(Route::Alone(held)),
            Err(LockError::Held { pid, dir }) => match StdStream::connect(path) {
                Ok(stream) => return Ok(Route::Agent { pid, stream }),
                Err(e) if Instant::now() >= deadline => {
                    return Err(ControlError::NoAnswer {
                        dir,
                        pid,
                        path: path.clone(),
                        why: e.to_string(),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Connects to the running agent for `status`: None when no process holds the lock.
pub fn connect_for_status(
    at: &Locations,
) -> Result<Option<(Option<u32>, StdStream)>, ControlError> {
    let holder = lock::holder(&at.state_dir).map_err(|source| ControlError::Io {
        path: at.state_dir.join(lock::FILE_NAME),
        source,
    })?;
    let Some(pid) = holder else {
        return Ok(None);
    };
    match StdStream::connect(&at.socket) {
        Ok(s) => Ok(Some((pid, s))),
        Err(e) => Err(ControlError::NoAnswer {
            dir: at.state_dir.clone(),
            pid,
            path: at.socket.clone(),
            why: e.to_string(),
        }),
    }
}

/// Sends one request and reads the reply.
pub fn ask(stream: StdStream, request: &Request, path: &Path) -> Result<Response, ControlError> {
    let io_err = |source| ControlError::Io {
        path: path.to_path_buf(),
        source,
    };
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_err)?;
    let mut text = serde_json::to_vec(request).expect("a request serialises");
    text.push(b'\n');
    (&stream).write_all(&text).map_err(io_err)?;
    let mut line = Vec::new();
    io::BufReader::new(io::Read::take(&stream, MAX_REPLY))
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Err(ControlError::BadReply {
            path: path.to_path_buf(),
            why: "it closed the connection without answering".into(),
        });
    }
    serde_json::from_slice(&line).map_err(|e| ControlError::BadReply {
        path: path.to_path_buf(),
        why: e.to_string(),
    })
}

/// `dynhostd retry` with no agent: clears the stops (and back-off) of the named hosts' records
/// in the state file, under the lock, so the next `run` or `update` sends. Returns what it did,
/// one line per record; Err(names) for hostnames no enabled `[[host]]` has (nothing written).
pub fn retry_offline(
    config: &Config,
    hosts: &[String],
    _lock: &StateLock,
) -> Result<Result<Vec<String>, Vec<String>>, ControlError> {
    let kept: Vec<_> = config.enabled_hosts().flat_map(|h| h.records()).collect();
    let unknown: Vec<String> = hosts
        .iter()
        .filter(|h| !kept.iter().any(|k| k.hostname == **h))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Ok(Err(unknown));
    }
    let path = config.state_file();
    let (mut state, _) = crate::state::load(&path);
    let mut lines = Vec::new();
    let mut changed = false;
    for key in kept
        .iter()
        .filter(|k| hosts.is_empty() || hosts.contains(&k.hostname))
    {
        let Some(rec) = state.records.get_mut(key) else {
            lines.push(format!("{key}: not stopped (nothing known yet)"));
            continue;
        };
        if let Some(stop) = rec.stopped.take() {
            lines.push(format!(
                "{key}: stop after \"{}\" lifted; the next `dynhostd run` or `dynhostd update` sends",
                stop.reason
            ));
        } else if rec.failures > 0 || rec.retry_at.is_some() {
            lines.push(format!("{key}: back-off lifted"));
        } else {
            lines.push(format!("{key}: not stopped"));
            continue;
        }
        rec.failures = 0;
        rec.retry_at = None;
        changed = true;
    }
    if changed {
        crate::state::save(&path, &state).map_err(|source| ControlError::Save { path, source })?;
    }
    Ok(Ok(lines))
}

/// `status` from the agent, as text.
pub fn live_table(s: &AgentStatus) -> String {
    use std::fmt::Write as _;
    let mut rows = vec![[
        "HOST".to_string(),
        "RECORD".into(),
        "PUBLISHED".into(),
        "WAN".into(),
        "STATE".into(),
        "NEXT".into(),
    ]];
    let show = |ip: Option<IpAddr>| ip.map_or_else(|| "-".to_string(), |a| a.to_string());
    for r in &s.live.records {
        let state = match r.phase {
            Phase::Stopped => format!(
                "STOPPED ({})",
                r.stopped.as_ref().map_or("", |x| x.reason.as_str())
            ),
            Phase::Pushing => format!("sending {}", show(r.in_flight)),
            Phase::BackingOff => format!(
                "retrying at {} ({} failures)",
                r.next.as_ref().map_or("-".into(), |w| wake_end(w, s.now)),
                r.failures
            ),
            Phase::Held => "held by min_interval".into(),
            Phase::Verifying => "checking DNS".into(),
            Phase::Idle if r.wan.is_some() && r.wan == r.published => "ok".into(),
            Phase::Idle => "idle".into(),
        };
        rows.push([
            r.hostname.clone(),
            r.record.clone(),
            show(r.published),
            show(r.wan),
            state,
            r.next.as_ref().map_or("-".into(), |w| {
                format!("{} at {}", reason(w.reason), wake_end(w, s.now))
            }),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = format!(
        "source: the running agent (pid {}, state dir {})\n",
        s.pid,
        s.state_dir.display()
    );
    for row in &rows {
        let mut line = String::new();
        for (w, c) in widths.iter().zip(row) {
            let _ = write!(line, "{c:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    match &s.live.next_wake {
        Some(w) => {
            let _ = writeln!(
                out,
                "next wake-up: {} at {}",
                reason(w.reason),
                wake_end(w, s.now)
            );
        }
        None => out.push_str("next wake-up: none (sleeping until the WAN changes)\n"),
    }
    for r in &s.live.records {
        if let Some(stop) = &r.stopped {
            let _ = writeln!(
                out,
                "\n{}/{} is stopped after \"{}\": {}.\nOnce that is fixed (at the provider or in its [[host]] entry), run `dynhostd retry {}`.",
                r.hostname, r.record, stop.reason, stop.fix, r.hostname
            );
        }
    }
    out
}

fn reason(r: WakeReason) -> &'static str {
    match r {
        WakeReason::Debounce => "debounce",
        WakeReason::MinInterval => "min_interval hold",
        WakeReason::Backoff => "back-off",
        WakeReason::RetryAfter => "Retry-After",
        WakeReason::Verify => "verify",
        WakeReason::Refresh => "refresh",
        WakeReason::Detect => "what's-my-IP check",
    }
}

/// `status --json` from the agent: the rows, as from the state file plus the live fields.
pub fn live_json(s: &AgentStatus) -> serde_json::Value {
    serde_json::Value::Array(s.rows.clone())
}

// --- What `status` shows of the running agent (the decider fills it in: decide/control.rs).

/// Where a record is in its life, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Published and current, or nothing to publish.
    Idle,
    /// A change waits for `min_interval` to pass since the last success.
    Held,
    /// Being checked at its authoritative name servers (or waiting for that first check).
    Verifying,
    /// A request is out.
    Pushing,
    /// Waiting after server trouble.
    BackingOff,
    /// Stopped after a reply only a person can fix; `dynhostd retry` lifts it.
    Stopped,
}

/// Why the agent will next wake up for a record (or at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeReason {
    /// The WAN changed; the quiet period before deciding.
    Debounce,
    /// A change held back by `min_interval`.
    MinInterval,
    /// The back-off after server trouble.
    Backoff,
    /// The wait the server asked for (`Retry-After`).
    RetryAfter,
    /// The next check at the authoritative name servers.
    Verify,
    /// The re-send of an unchanged address (`refresh`).
    Refresh,
    /// The next ask of the what's-my-IP sources (behind NAT).
    Detect,
}

/// A wake-up: why, and in how long from the snapshot's moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub reason: WakeReason,
    pub in_ms: u64,
}

/// Why a record is stopped and what the person must fix first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopInfo {
    pub reason: String,
    pub fix: String,
}

/// One record as the running agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub hostname: String,
    /// `A` or `AAAA`.
    pub record: String,
    pub phase: Phase,
    /// What the provider last confirmed.
    pub published: Option<IpAddr>,
    /// What the WAN offers for this family now (None: nothing that counts).
    pub wan: Option<IpAddr>,
    /// The address of the request out now.
    pub in_flight: Option<IpAddr>,
    pub failures: u32,
    pub last_reply: Option<String>,
    /// When this record is next looked at, and why: its own deadlines, the debounce (every
    /// record) and the what's-my-IP re-check (its family, behind NAT). None while a request is
    /// out or it is stopped.
    pub next: Option<Wake>,
    pub stopped: Option<StopInfo>,
}

/// Everything `status` shows of the running agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub records: Vec<LiveRecord>,
    /// The agent's next wake-up of all, with its reason; None: it sleeps until an event.
    pub next_wake: Option<Wake>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_replaces_a_dead_socket_but_never_a_live_one_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join(SOCKET_NAME);
        // Missing directory: created. Mode 0600 from the start.
        let first = bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, 0o600);
        // A live agent answers on it: not taken over.
        let e = bind(&path).unwrap_err();
        assert!(e.to_string().contains("another agent answers"), "{e}");
        // Left by a dead agent: replaced.
        drop(first);
        assert!(path.exists());
        let _second = bind(&path).unwrap();
        // A regular file in its place is not ours to delete.
        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").unwrap();
        let e = bind(&file).unwrap_err();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }

    #[test]
    fn the_socket_key_must_be_absolute_and_names_itself() {
        let host =
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"example.com-h\"\npassword = \"x\"\n";
        let e = crate::config::parse(
            &format!("[state]\ncontrol = \"run/control\"\n\n{host}"),
            None,
            Path::new("/"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("state.control"), "{e}");
        let c = crate::config::parse(
            &format!("[state]\ncontrol = \"/run/x/control\"\n\n{host}"),
            None,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(socket_path(&c), Path::new("/run/x/control"));
        assert!(c.render_redacted().contains("control = \"/run/x/control\""));
    }

    #[test]
    fn locations_read_only_the_state_section() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        // A password_credential with no $CREDENTIALS_DIRECTORY: the full load would refuse it.
        std::fs::write(
            &cfg,
            "[state]\ndir = \"/srv/dyn\"\ncontrol = \"/srv/dyn.sock\"\n\n[[host]]\nhostname = \"h.example.com\"\nlogin = \"example.com-h\"\npassword_credential = \"h\"\n",
        )
        .unwrap();
        assert_eq!(
            Locations::read(&cfg),
            Some(Locations {
                state_dir: "/srv/dyn".into(),
                socket: "/srv/dyn.sock".into(),
            })
        );
        std::fs::write(&cfg, "[state]\ncontrol = \"relative\"\n").unwrap();
        assert_eq!(
            Locations::read(&cfg),
            None,
            "left to the full load to explain"
        );
        assert_eq!(Locations::read(&dir.path().join("missing.toml")), None);
        assert_eq!(Locations::read(dir.path()), None, "a directory");
    }

    #[test]
    fn requests_read_as_documented() {
        let r: Request =
            serde_json::from_str(r#"{"command":"retry","hosts":["a.example.com"]}"#).unwrap();
        assert_eq!(
            r,
            Request::Retry {
                hosts: vec!["a.example.com".into()]
            }
        );
        let r: Request = serde_json::from_str(r#"{"command":"check-now"}"#).unwrap();
        assert_eq!(r, Request::CheckNow);
        let r: Request =
            serde_json::from_str(r#"{"command":"update","ips":["203.0.113.5"]}"#).unwrap();
        assert_eq!(
            r,
            Request::Update {
                ips: vec!["203.0.113.5".parse().unwrap()]
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"command":"rm -rf"}"#).is_err());
        assert!(
            serde_json::from_str::<Request>(r#"{"command":"retry","hosts":[],"x":1}"#).is_err()
        );
    }
}
