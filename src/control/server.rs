//! The agent's side of the socket: binding it safely, accepting bounded connections, reading one
//! request each and handing it whole to the event loop as an [`Incoming`].

use super::protocol::{Envelope, Response, Served};
use super::{CLIENT_TIMEOUT, ControlError, MAX_CLIENTS, MAX_REQUEST, SOCKET_NAME, peer_cred};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// A whole request from a client, and where its reply goes.
pub struct Incoming {
    pub envelope: Envelope,
    pub(super) reply: oneshot::Sender<Response>,
    /// The agent as it started: its state dir is the one it holds the lock of, whatever a
    /// reload has put in the config since.
    pub(super) me: Arc<Served>,
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
    /// Binds the socket and starts accepting. A directory another user can write, or another
    /// agent answering on the path, stops the agent (Err): its clients would reach the wrong
    /// process. Any other failure is logged and the agent's job goes on without a socket.
    pub fn start(path: &Path, state_dir: &Path) -> Result<Control, ControlError> {
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
                let me = Arc::new(Served {
                    pid: std::process::id(),
                    state_dir: state_dir.to_path_buf(),
                });
                control.accept = Some(tokio::spawn(accept_loop(listener, tx, me)));
                info!(path = %path.display(), "control socket ready (dynhostd status, retry, update)");
            }
            Err(e @ (ControlError::UntrustedDir(_) | ControlError::Taken { .. })) => return Err(e),
            Err(e) => error!(
                "no control socket ({e}): `dynhostd status`, `retry` and `update` cannot reach this agent"
            ),
        }
        Ok(control)
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

pub(super) fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io_err = |cause| ControlError::Io {
        path: path.to_path_buf(),
        cause,
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(io_err)?;
    }
    // Where another user can create entries, the path may already be theirs (a socket bound
    // first, swapped in later): clients would talk to it as if to us.
    crate::fsread::check_dir(parent).map_err(ControlError::UntrustedDir)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if let Ok(probe) = StdStream::connect(path) {
                return Err(ControlError::Taken {
                    path: path.to_path_buf(),
                    pid: peer_cred(&probe).map_or(0, |c| c.pid),
                });
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

/// Root, or the user the agent runs as: the only ones who may give it orders (the same two
/// that may own its files).
fn trusted_client(uid: u32) -> bool {
    crate::fsread::trusted_uid(uid)
}

pub(super) async fn accept_loop(
    listener: UnixListener,
    tx: mpsc::Sender<Incoming>,
    me: Arc<Served>,
) {
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
        let uid = stream.peer_cred().map(|c| c.uid());
        if !uid.as_ref().is_ok_and(|u| trusted_client(*u)) {
            let who = uid.map_or_else(|e| format!("an unknown user ({e})"), |u| format!("uid {u}"));
            warn!(
                "control socket: refused a client running as {who}: only root and the agent's own user may use it"
            );
            refuse_now(
                stream,
                &Response::refused(
                    &me,
                    format!(
                        "{who} may not use this socket: only root and the agent's own user may"
                    ),
                ),
            );
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("control socket: {MAX_CLIENTS} clients already connected; refusing one more");
            refuse_now(
                stream,
                &Response::refused(
                    &me,
                    format!("the agent is busy: {MAX_CLIENTS} clients are connected; try again"),
                ),
            );
            continue;
        };
        let tx = tx.clone();
        let me = me.clone();
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = serve(stream, tx, me).await {
                debug!("control socket: client dropped: {e}");
            }
        });
    }
}

/// A one-line refusal, written without waiting (a fresh connection's buffer holds it), then the
/// connection is closed. What the client sent is read first, as far as it is there, so that
/// closing does not turn the refusal into a reset at the client. Plain non-blocking syscalls on
/// the descriptor: tokio's `try_*` would not even try before the reactor has seen it ready.
fn refuse_now(stream: UnixStream, response: &Response) {
    let Ok(stream) = stream.into_std() else {
        return;
    };
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        match io::Read::read(&mut &stream, &mut buf) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let mut text = serde_json::to_vec(response).unwrap_or_default();
    text.push(b'\n');
    let _ = (&stream).write_all(&text);
}

/// One connection: read one bounded line (within [`CLIENT_TIMEOUT`]), hand it to the event loop,
/// wait for its answer as long as that takes, write the reply (within [`CLIENT_TIMEOUT`]).
async fn serve(stream: UnixStream, tx: mpsc::Sender<Incoming>, me: Arc<Served>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = Vec::new();
    let limit = MAX_REQUEST as u64 + 1;
    let mut reader = tokio::io::BufReader::new(read).take(limit);
    match tokio::time::timeout(CLIENT_TIMEOUT, reader.read_until(b'\n', &mut line)).await {
        Ok(read) => read?,
        Err(_) => {
            info!(
                "control socket: dropped a client that did not finish sending its request within {}s",
                CLIENT_TIMEOUT.as_secs()
            );
            return Ok(());
        }
    };
    let response = if line.len() as u64 >= limit && !line.ends_with(b"\n") {
        warn!("control socket: refused a request longer than {MAX_REQUEST} bytes");
        Response::refused(
            &me,
            format!("request too long: at most {MAX_REQUEST} bytes on one line"),
        )
    } else if line.is_empty() {
        return Ok(());
    } else {
        match serde_json::from_slice::<Envelope>(&line) {
            Err(e) => Response::refused(&me, format!("bad request: {e}")),
            Ok(envelope) => {
                let (reply, answer) = oneshot::channel();
                let incoming = Incoming {
                    envelope,
                    reply,
                    me: me.clone(),
                };
                if tx.send(incoming).await.is_err() {
                    return Ok(());
                }
                // As long as the event loop takes: the request is being carried out, and the
                // client (its own limit) is the one to give up, not us.
                match answer.await {
                    Ok(r) => r,
                    Err(_) => Response::refused(&me, "the agent is shutting down"),
                }
            }
        }
    };
    let mut text = serde_json::to_vec(&response).unwrap_or_default();
    text.push(b'\n');
    let written = async {
        write.write_all(&text).await?;
        write.shutdown().await
    };
    match tokio::time::timeout(CLIENT_TIMEOUT, written).await {
        Ok(w) => w,
        Err(_) => {
            info!(
                "control socket: dropped a client that did not finish taking its reply within {}s",
                CLIENT_TIMEOUT.as_secs()
            );
            Ok(())
        }
    }
}
