//! The control socket: how a person (`dynhostd status`, `retry`, `update`), pppd's ip-up hook
//! and `dynhostd ovh rotate` talk to the running agent instead of writing its state file beside
//! it or signalling a pid read from a file.
//!
//! - **Where.** A Unix stream socket, mode 0600, owned by the agent's user, at `[state] control`;
//!   else, for the default state dir, `$RUNTIME_DIRECTORY/control` (systemd's
//!   `RuntimeDirectory=dynhostd`) or `/run/dynhostd/control`; for any other state dir,
//!   `<state dir>/control`, so that two agents with their own state dirs never share a socket.
//!   Root reaches a socket owned by the service's dynamic user because root bypasses file
//!   permissions (CAP_DAC_OVERRIDE).
//! - **Who may talk.** Both ends check the other's credentials (`SO_PEERCRED`), since a socket
//!   path proves nothing: the agent serves only root and its own user; a client accepts only an
//!   agent running as root, as itself, or as the owner of the state dir (systemd's dynamic
//!   user). The agent refuses to bind in a directory another user can write (where anybody
//!   could have planted the path first) and never takes over a socket another agent answers on.
//! - **Protocol.** One JSON request on one line, one JSON reply on one line, then the agent
//!   closes. A request names the state dir of the client's config, and the agent refuses one
//!   for another state dir: `{"state_dir":"/var/lib/dynhostd","request":{"command":"status"}}`;
//!   commands `status`, `retry` (`"hosts":[…]`), `check-now`, `update` (`"ips":[…]`),
//!   `reload`. Unknown fields are refused. Every reply says which agent answered
//!   (`"agent":{"pid":…,"state_dir":…}`), and the client checks it serves its state dir. Text
//!   from the socket is cleaned (control and bidi characters) before it reaches a terminal.
//! - **Bounds.** A request line is at most [`MAX_REQUEST`] bytes and must arrive within
//!   [`CLIENT_TIMEOUT`]; the reply must be taken within [`CLIENT_TIMEOUT`] too. Waiting for the
//!   agent's answer is not bounded here (a busy agent still answers, and its work is done
//!   either way): the client waits up to [`REPLY_TIMEOUT`]. At most [`MAX_CLIENTS`] connections
//!   are served at once; one more is told the agent is busy. All of that lives in the
//!   per-connection tasks: the agent's event loop only receives whole requests from a channel,
//!   so an idle agent still makes no syscalls (a quiet `accept` is not a timer).
//! - **Who answers.** The agent's event loop, through [`answer`], with the decider's control
//!   methods (`crate::decide::control`). With no agent, the client side ([`route`]) takes the
//!   state dir's lock (`crate::lock`) instead, so there is only ever one writer.
//!
//! The parts, one job each, their imports pointing one way (answer → server, render; and
//! server, render, client → protocol): [`protocol`] (the lines on the wire), [`server`] (the agent's socket),
//! [`answer`] (the event loop's answer), [`client`] (the commands' side), [`render`] (what
//! `status` prints). This file holds where the socket is, who may talk, and the error.

mod answer;
mod client;
mod protocol;
mod render;
mod server;

pub use answer::{Answer, PendingReload, answer};
pub use client::{
    AgentConn, Locations, Route, ask, connect_for_status, lock_for_agent, reload, retry_offline,
    route,
};
pub use protocol::{AgentStatus, Envelope, Request, Response, Served};
pub use render::{live_json, live_table, state_rows_json};
pub use server::{Control, Incoming};

use crate::config::Config;
use crate::fsread::ReadError;
use crate::lock::LockError;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest request line the agent reads; a longer one is refused. A request names a few hosts
/// or addresses: 64 KiB is far more than any real one.
pub const MAX_REQUEST: usize = 64 * 1024;
/// A client must send its request within this time, and take its reply within this time, or it
/// is dropped. The agent's own time to answer is not counted.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; one more is answered "busy" and closed. Each costs a task and at
/// most [`MAX_REQUEST`] bytes, and only root or the agent's user can connect at all.
pub const MAX_CLIENTS: usize = 64;
/// Longest reply a client reads (a status of thousands of records).
pub const MAX_REPLY: u64 = 16 * 1024 * 1024;
/// How long a client waits for the agent's reply: longer than anything the agent does between
/// two events (a reload that builds its HTTP clients, a state save on slow flash).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client waits for a state dir locked by a process that does not answer yet (an
/// agent starting up, or a one-shot `update` finishing its requests).
pub const HANDOFF_WAIT: Duration = Duration::from_secs(60);
/// How long a starting agent waits for a state dir locked by a process that does not answer on
/// the control socket: a one-shot `update` (pppd's ip-up at boot) finishing its requests.
pub const AGENT_LOCK_WAIT: Duration = Duration::from_secs(30);
/// Longest line of the agent's text shown on a terminal, in characters.
const SHOWN_MAX: usize = 2000;
pub const SOCKET_NAME: &str = "control";
pub const DEFAULT_DIR: &str = "/run/dynhostd";

// Display texts hold their cause in words; none is also given as `source`, so an error printer
// that walks the chain does not print it twice.
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
    #[error("control socket {}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("control socket {}: the agent's reply is not understood: {why}", path.display())]
    BadReply { path: PathBuf, why: String },
    #[error("cannot write the state file {}: {cause}", path.display())]
    Save { path: PathBuf, cause: io::Error },
    /// The lock file (or the state dir) can't be read by this user.
    #[error(
        "cannot read the lock file {}: {cause}; run this as root or as the user the agent runs as",
        path.display()
    )]
    Unreadable { path: PathBuf, cause: io::Error },
    /// Someone other than root, the client or the state dir's owner serves the socket.
    #[error(
        "control socket {}: it is served by uid {uid} (pid {pid}), which is neither root, you, nor the owner of the state dir {}: refusing to talk to it (another user may have bound it first)",
        path.display(),
        state_dir.display()
    )]
    Impostor {
        path: PathBuf,
        uid: u32,
        pid: i32,
        state_dir: PathBuf,
    },
    /// The agent that answered serves another state dir than the client's config names.
    #[error(
        "control socket {}: the agent that answers (pid {pid}) serves the state dir {}, not {}: give each agent its own `[state] control`",
        path.display(),
        theirs.display(),
        ours.display()
    )]
    OtherAgent {
        path: PathBuf,
        pid: u32,
        theirs: PathBuf,
        ours: PathBuf,
    },
    /// The agent refused the request (busy, another state dir, a failed reload…); its words.
    #[error("the agent (pid {pid}) refused: {why}")]
    Refused { pid: u32, why: String },
    /// The control socket's directory could be written by another user: the agent does not
    /// start.
    #[error("refusing the control socket's directory {0}")]
    UntrustedDir(ReadError),
    /// Another agent answers on the socket path: the agent does not start.
    #[error(
        "another process (pid {pid}) answers on the control socket {}: is a second agent configured with the same `[state] control`? Each agent needs its own",
        path.display()
    )]
    Taken { path: PathBuf, pid: i32 },
}

/// Where the socket is for this config (see the module docs).
pub fn socket_path(config: &Config) -> PathBuf {
    default_socket(config.control_socket.as_deref(), &config.state_dir)
}

fn default_socket(configured: Option<&Path>, state_dir: &Path) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    // Another state dir is another agent: its socket goes with it, never to the shared default
    // where it would take over (or be taken for) the default agent's.
    if state_dir != Path::new(crate::config::DEFAULT_STATE_DIR) {
        return state_dir.join(SOCKET_NAME);
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

/// Whether two state dir paths name the same directory: the same path, or (a link, another
/// spelling) the same inode.
pub fn same_dir(a: &Path, b: &Path) -> bool {
    if a == b {
        return true;
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The credentials of the process at the other end of a connected Unix socket, as the kernel
/// recorded them at connect(2)/listen(2): they can't be forged by what is sent on it.
fn peer_cred(fd: &impl AsRawFd) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt(SO_PEERCRED) on a descriptor we own writes at most `len` bytes into
    // `cred`, a live, properly sized ucred.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}

/// Cleans text that came over the socket before it reaches a terminal: control characters
/// (escape sequences), bidi and other format characters become `?`, and it is cut.
pub fn shown(text: &str) -> String {
    crate::provider::server_text::clean(text, SHOWN_MAX)
}

#[cfg(test)]
mod tests;
