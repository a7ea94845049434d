//! The client's side: finding the agent ([`Locations`], [`route`]), asking it, and doing the
//! work under the state dir's lock when no agent runs.

use super::protocol::{Envelope, Request, Response};
use super::{
    AGENT_LOCK_WAIT, ControlError, HANDOFF_WAIT, MAX_REPLY, REPLY_TIMEOUT, default_socket,
    peer_cred, same_dir, shown, socket_path,
};
use crate::config::Config;
use crate::lock::{self, LockError, StateLock};
use serde::Deserialize;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::info;

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
            socket: default_socket(control.as_deref(), &state_dir),
            state_dir,
        })
    }
}

/// A connection to the agent, its peer checked: root, this user, or the state dir's owner.
pub struct AgentConn {
    stream: StdStream,
    /// The pid the kernel says is at the other end.
    pub pid: u32,
}

/// Connects to the socket and checks who listens on it. Err(Ok(e)): nobody (yet) answers;
/// Err(Err(e)): somebody does whom we must not talk to.
pub(super) fn connect(at: &Locations) -> Result<AgentConn, Result<io::Error, ControlError>> {
    let stream = StdStream::connect(&at.socket).map_err(Ok)?;
    let cred = peer_cred(&stream).map_err(|cause| {
        Err(ControlError::Io {
            path: at.socket.clone(),
            cause,
        })
    })?;
    // systemd's DynamicUser: the service's user is the one that owns its state dir.
    let owner = std::fs::metadata(&at.state_dir).ok().map(|m| m.uid());
    if cred.uid != 0 && cred.uid != crate::fsread::euid() && Some(cred.uid) != owner {
        return Err(Err(ControlError::Impostor {
            path: at.socket.clone(),
            uid: cred.uid,
            pid: cred.pid,
            state_dir: at.state_dir.clone(),
        }));
    }
    Ok(AgentConn {
        stream,
        pid: u32::try_from(cred.pid).unwrap_or(0),
    })
}

/// Who does the work for a command that writes the state.
pub enum Route {
    /// An agent runs: talk to it on this connection.
    Agent(AgentConn),
    /// No agent: this process now holds the lock and may write the state itself.
    Alone(StateLock),
}

/// Takes the state dir's lock, or — when an agent holds it — connects to its socket. A holder
/// that does not answer (an agent starting up, another one-shot command) is waited for up to
/// [`HANDOFF_WAIT`].
pub fn route(at: &Locations) -> Result<Route, ControlError> {
    let deadline = Instant::now() + HANDOFF_WAIT;
    loop {
        match lock::acquire(&at.state_dir) {
            Ok(held) => return Ok(Route::Alone(held)),
            Err(LockError::Held { pid, dir }) => match connect(at) {
                Ok(conn) => return Ok(Route::Agent(conn)),
                Err(Err(refused)) => return Err(refused),
                Err(Ok(e)) if Instant::now() >= deadline => {
                    return Err(ControlError::NoAnswer {
                        dir,
                        pid,
                        path: at.socket.clone(),
                        why: e.to_string(),
                    });
                }
                Err(Ok(_)) => std::thread::sleep(Duration::from_millis(100)),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

/// Who holds the state dir's lock: Err names the lock file when this user can't read it.
fn holder(at: &Locations) -> Result<Option<Option<u32>>, ControlError> {
    lock::holder(&at.state_dir).map_err(|cause| ControlError::Unreadable {
        path: at.state_dir.join(lock::FILE_NAME),
        cause,
    })
}

/// Connects to the running agent for `status` and `check-now`: None when no process holds the
/// lock.
pub fn connect_for_status(at: &Locations) -> Result<Option<AgentConn>, ControlError> {
    let Some(pid) = holder(at)? else {
        return Ok(None);
    };
    match connect(at) {
        Ok(conn) => Ok(Some(conn)),
        Err(Err(refused)) => Err(refused),
        Err(Ok(e)) => Err(ControlError::NoAnswer {
            dir: at.state_dir.clone(),
            pid,
            path: at.socket.clone(),
            why: e.to_string(),
        }),
    }
}

/// Sends one request for `at`'s state dir and reads the reply, waiting up to
/// [`REPLY_TIMEOUT`]; Err when the agent that answered serves another state dir.
pub fn ask(conn: AgentConn, request: Request, at: &Locations) -> Result<Response, ControlError> {
    let path = &at.socket;
    let io_err = |cause| ControlError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let stream = conn.stream;
    stream
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(REPLY_TIMEOUT))
        .map_err(io_err)?;
    let envelope = Envelope {
        state_dir: at.state_dir.clone(),
        request,
    };
    let mut text = serde_json::to_vec(&envelope).expect("a request serialises");
    text.push(b'\n');
    // The agent may answer before it reads (one client too many, or a client it refuses) and
    // close: the write then fails with EPIPE, yet its answer is there to read. Only without
    // one is the failed write the error.
    let sent = (&stream).write_all(&text);
    if let Err(e) = &sent
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(io_err(sent.unwrap_err()));
    }
    let mut line = Vec::new();
    io::BufReader::new(io::Read::take(&stream, MAX_REPLY))
        .read_until(b'\n', &mut line)
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ControlError::BadReply {
                path: path.to_path_buf(),
                why: format!(
                    "no answer within {}s (the request may still be carried out)",
                    REPLY_TIMEOUT.as_secs()
                ),
            },
            _ => io_err(e),
        })?;
    if line.is_empty() {
        return Err(match sent {
            Err(e) => io_err(e),
            Ok(()) => ControlError::BadReply {
                path: path.to_path_buf(),
                why: "it closed the connection without answering".into(),
            },
        });
    }
    let reply: Response = serde_json::from_slice(&line).map_err(|e| ControlError::BadReply {
        path: path.to_path_buf(),
        // serde's message may quote the text it choked on.
        why: shown(&e.to_string()),
    })?;
    if !same_dir(&reply.agent.state_dir, &at.state_dir) {
        return Err(ControlError::OtherAgent {
            path: path.to_path_buf(),
            pid: reply.agent.pid,
            theirs: PathBuf::from(shown(&reply.agent.state_dir.display().to_string())),
            ours: at.state_dir.clone(),
        });
    }
    Ok(reply)
}

/// `ovh rotate`'s "read the config again": asks the running agent over its socket (never a
/// signal to a pid read from a file: that pid may be a one-shot `update`, which would die of
/// it). Some(pid) once the agent has reloaded; None when no process holds the lock (the next
/// start reads the new config). A holder that does not answer (a one-shot command, an agent
/// starting) is waited for up to [`HANDOFF_WAIT`].
pub fn reload(at: &Locations) -> Result<Option<u32>, ControlError> {
    let deadline = Instant::now() + HANDOFF_WAIT;
    loop {
        let Some(pid) = holder(at)? else {
            return Ok(None);
        };
        match connect(at) {
            Ok(conn) => {
                let reply = ask(conn, Request::Reload {}, at)?;
                if !reply.ok {
                    return Err(ControlError::Refused {
                        pid: reply.agent.pid,
                        why: shown(&reply.lines.join("; ")),
                    });
                }
                return Ok(Some(reply.agent.pid));
            }
            Err(Err(refused)) => return Err(refused),
            Err(Ok(e)) if Instant::now() >= deadline => {
                return Err(ControlError::NoAnswer {
                    dir: at.state_dir.clone(),
                    pid,
                    path: at.socket.clone(),
                    why: e.to_string(),
                });
            }
            Err(Ok(_)) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The agent's lock, for `dynhostd run`. A lock held by a process that does not answer on the
/// control socket is a one-shot `update` (pppd's ip-up at boot, while the service starts) or
/// `retry`: waited for, up to [`AGENT_LOCK_WAIT`], rather than failing the start. A holder
/// that answers is another agent: refused at once.
pub async fn lock_for_agent(at: &Locations) -> Result<StateLock, LockError> {
    let deadline = Instant::now() + AGENT_LOCK_WAIT;
    let mut said = false;
    loop {
        match lock::acquire(&at.state_dir) {
            Ok(held) => {
                if said {
                    info!(dir = %at.state_dir.display(), "the state dir's lock is ours now");
                }
                return Ok(held);
            }
            Err(LockError::Held { pid, dir }) => {
                if StdStream::connect(&at.socket).is_ok() || Instant::now() >= deadline {
                    return Err(if said {
                        LockError::StillHeld {
                            pid,
                            dir,
                            waited: AGENT_LOCK_WAIT,
                        }
                    } else {
                        LockError::Held { pid, dir }
                    });
                }
                if !said {
                    info!(
                        "the state dir {} is locked by pid {}, which does not answer on {}: a one-shot `dynhostd update` or `retry`; waiting up to {}s for it to finish",
                        dir.display(),
                        pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
                        at.socket.display(),
                        AGENT_LOCK_WAIT.as_secs()
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
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
        crate::state::save(&path, &state).map_err(|cause| ControlError::Save { path, cause })?;
    }
    Ok(Ok(lines))
}
