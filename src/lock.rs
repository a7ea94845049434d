//! One writer per state dir: the running agent (or a one-shot `update`/`retry` when no agent
//! runs) holds an exclusive `flock` on `<state.dir>/lock` and writes its pid into it. The kernel
//! drops the lock when the process dies, so a `kill -9` leaves nothing stale to clean up; the
//! pid in the file is only a hint for the message, the lock is the truth (nothing ever signals
//! it). The state dir must be one only root or the agent's own user can write: every writer
//! comes through [`acquire`], which refuses any other.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "lock";

// The Display texts hold their cause in words; none is also given as `source`, so an error
// printer that walks the chain does not print it twice.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: an agent, or a one-shot command.
    #[error("another dynhostd (pid {}) holds the state dir {}: only one process may write it", pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()), dir.display())]
    Held { pid: Option<u32>, dir: PathBuf },
    /// A starting agent waited for a one-shot command's lock in vain.
    #[error("the state dir {} is still locked by pid {} after {}s: only one process may write it, and that one does not finish", dir.display(), pid.map_or_else(|| "unknown".to_string(), |p| p.to_string()), waited.as_secs())]
    StillHeld {
        pid: Option<u32>,
        dir: PathBuf,
        waited: std::time::Duration,
    },
    #[error("cannot lock {}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    /// The state dir is one another user could change: nothing is written in it.
    #[error("refusing the state dir {0}")]
    Untrusted(crate::fsread::ReadError),
}

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    path: PathBuf,
}

impl StateLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StateLock {
    fn drop(&mut self) {
        // Emptied so a reader never names a dead pid; the lock itself goes with the fd.
        let _ = self.file.set_len(0);
    }
}

/// flock(2) with `op` (`LOCK_EX` or `LOCK_SH`, plus `LOCK_NB` not to wait), retried after a
/// signal: Ok(false) when `LOCK_NB` found it held. The one flock call of the program.
pub(crate) fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// The pid written in the lock file, if it holds a sane one (bounded read: it is one line).
fn read_pid(file: &mut File) -> Option<u32> {
    let mut buf = [0u8; 32];
    file.rewind().ok()?;
    let n = file.read(&mut buf).ok()?;
    std::str::from_utf8(&buf[..n])
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Takes the exclusive lock of `dir` (created 0700 if missing) without waiting, and writes our
/// pid into it. A `dir` that another user could write (see `crate::fsread::check_dir`) is
/// refused with [`LockError::Untrusted`], or [`LockError::Held`] when a process holds its lock
/// (the caller then talks to it and writes nothing). [`LockError::Held`] names the holder when another process has it.
pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
    let path = dir.join(FILE_NAME);
    let io_err = |cause| LockError::Io {
        path: path.clone(),
        cause,
    };
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err)?;
    }
    // Every writer (the agent, a one-shot `update` or `retry`) comes through here first: a
    // directory another user can write is refused before anything is created or written in it.
    // Unless someone already holds its lock: then nothing is written here, the caller only
    // talks to the holder (root's `dynhostd retry` to the agent of systemd's dynamic user, whose
    // state dir that user owns).
    if let Err(e) = crate::fsread::check_dir(dir) {
        if let Ok(Some(pid)) = holder(dir) {
            return Err(LockError::Held {
                pid,
                dir: dir.to_path_buf(),
            });
        }
        return Err(LockError::Untrusted(e));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(io_err)?;
    if !file.metadata().map_err(io_err)?.is_file() {
        return Err(io_err(io::Error::other("not a regular file")));
    }
    if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(io_err)? {
        return Err(LockError::Held {
            pid: read_pid(&mut file),
            dir: dir.to_path_buf(),
        });
    }
    let pid = format!("{}\n", std::process::id());
    (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(pid.as_bytes())?;
        file.flush()
    })()
    .map_err(io_err)?;
    Ok(StateLock { file, path })
}

/// Who holds the lock of `dir` now: `Some(pid)` (pid unknown: `Some(None)`) while a process
/// holds it, `None` when nobody does (or there is no lock file). Takes and drops a shared lock
/// to find out, so it never waits.
pub fn holder(dir: &Path) -> io::Result<Option<Option<u32>>> {
    let path = dir.join(FILE_NAME);
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if flock(&file, libc::LOCK_SH | libc::LOCK_NB)? {
        // Free: released again when `file` closes.
        return Ok(None);
    }
    Ok(Some(read_pid(&mut file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_pid_and_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let held = acquire(&state).unwrap();
        assert_eq!(
            std::fs::read_to_string(held.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        // flock locks belong to the open file description: a second open in this process
        // conflicts just as another process would.
        match acquire(&state) {
            Err(e @ LockError::Held { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&std::process::id().to_string()), "{msg}");
                assert!(msg.contains(&state.display().to_string()), "{msg}");
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert_eq!(holder(&state).unwrap(), Some(Some(std::process::id())));
        drop(held);
        assert_eq!(holder(&state).unwrap(), None);
        let again = acquire(&state).unwrap();
        drop(again);
    }

    /// Issue 20, item 2: a state dir another user could write is refused before anything is
    /// created or locked in it, saying why.
    #[test]
    fn a_state_dir_others_can_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777)).unwrap();
        match acquire(&state) {
            Err(e @ LockError::Untrusted(_)) => {
                let msg = e.to_string();
                assert!(msg.contains("writable by every user"), "{msg}");
                assert!(msg.contains(&state.display().to_string()), "{msg}");
            }
            other => panic!("expected Untrusted, got {other:?}"),
        }
        assert!(!state.join(FILE_NAME).exists(), "nothing created in it");
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        drop(acquire(&state).unwrap());
    }

    #[test]
    fn no_lock_file_means_nobody_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_fifo_in_place_of_the_lock_file_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Opened read-write a FIFO does not block; it is then refused as not a regular file.
        let e = acquire(dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
