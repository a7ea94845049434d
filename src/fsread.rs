//! Bounded file reads: the one way dynhostd reads a file it is pointed at (the config, a
//! password file or credential, a CA file, the state file).
//!
//! A path can name anything: a FIFO that blocks the one thread forever, `/dev/zero` that never
//! ends, a 1 GB file. So every read here opens the path with `O_NONBLOCK` (opening a FIFO
//! then returns at once instead of waiting for a writer) and `O_NOCTTY` (a terminal never becomes
//! ours), checks with `fstat` on the open descriptor (not the path, which could be swapped in
//! between) that it is a regular file, and reads at most `cap + 1` bytes, so an oversize file is
//! reported rather than read whole. Errors name the file and say what was wrong with it; callers
//! add the config key.
//!
//! The agent runs as root (or as systemd's dynamic user), so a file or directory that another
//! user controls can be turned against it: a password file swapped for a link to `/etc/shadow`
//! would be sent to the provider, a state file's temporary name planted as a link would make it
//! overwrite any file. [`read_secret`] and [`check_dir`] are the one place that decides what is
//! trusted: a thing owned by root or by the user the agent runs as, that nobody else can write,
//! in a directory nobody else can write, never reached through a symbolic link at its last step.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The configuration file: real ones are a few KiB, 1000 hosts about 100 KiB.
pub const CONFIG_CAP: u64 = 1 << 20;
/// A password file or systemd credential: only its first line is used.
pub const PASSWORD_CAP: u64 = 4 << 10;
/// A PEM CA bundle (Debian's whole system bundle is about 220 KiB).
pub const CA_CAP: u64 = 1 << 20;
/// `state.json`: about 300 bytes per record, so room for tens of thousands.
pub const STATE_CAP: u64 = 16 << 20;

/// Why a file could not be read.
#[derive(Debug)]
pub struct ReadError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug)]
pub enum Problem {
    /// open(2) or read(2) failed (missing, permission denied, I/O error).
    Io(io::Error),
    /// A FIFO, a device, a directory or a socket: never read, it could block or never end.
    NotRegular(&'static str),
    /// Larger than the cap for this kind of file.
    TooLarge { cap: u64 },
    /// The text is not UTF-8 (for text files only).
    NotUtf8,
    /// Another user could have put it there or could change it (see [`check_dir`],
    /// [`read_secret`]); the text says who and how.
    Untrusted(String),
}

impl ReadError {
    /// True when the file does not exist (the state file's "no state yet").
    pub fn is_not_found(&self) -> bool {
        matches!(&self.problem, Problem::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            Problem::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "{e}"),
            Problem::NotRegular(kind) => write!(f, "not a regular file ({kind})"),
            Problem::TooLarge { cap } => write!(f, "too large (the limit is {})", size(*cap)),
            Problem::NotUtf8 => f.write_str("not UTF-8 text"),
            Problem::Untrusted(why) => f.write_str(why),
        }
    }
}

/// `4 KiB`, `1 MiB`, `16 MiB`, or bytes when not a round figure.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// What kind of non-regular file this is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a plain file"
    }
}

/// The bytes of the regular file at `path`, at most `cap` of them.
pub fn read(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_checked(path, cap, 0, |_| Ok(()))
}

/// Like [`read`], for a secret (a password file, a systemd credential, an API key file): the file
/// is opened without following a symbolic link, must be owned by root or by the user the agent
/// runs as and be writable by nobody else, and its directory must pass [`check_dir`]. A secret
/// that someone else could have planted or swapped is refused, never read or sent.
pub fn read_secret(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_dir(dir)?;
    read_checked(path, cap, libc::O_NOFOLLOW, |meta| {
        use std::os::unix::fs::MetadataExt;
        owned_by_us(meta.uid())?;
        if meta.mode() & 0o022 != 0 {
            return Err(format!(
                "writable by {} (mode {:04o}): a secret must be writable by its owner only",
                if meta.mode() & 0o002 != 0 {
                    "every user"
                } else {
                    "its group"
                },
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    })
    .map_err(|mut e| {
        // O_NOFOLLOW on a link fails with ELOOP: say what it means.
        if let Problem::Io(io) = &e.problem
            && io.raw_os_error() == Some(libc::ELOOP)
        {
            e.problem = Problem::Untrusted(
                "a symbolic link: a secret is read from a regular file, never through a link"
                    .into(),
            );
        }
        e
    })
}

/// Refuses a directory in which someone other than root or the agent's own user could create,
/// replace or remove entries: one owned by another user, writable by every user (sticky or
/// not), or writable by a group other than root's or the agent's; and a symbolic link owned by
/// another user (the link itself could be re-pointed). The agent's state dir, its control
/// socket's directory and the directory of every secret it reads must pass.
pub fn check_dir(path: &Path) -> Result<(), ReadError> {
    use std::os::unix::fs::MetadataExt;
    let err = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    let link = std::fs::symlink_metadata(path).map_err(|e| err(Problem::Io(e)))?;
    if link.file_type().is_symlink()
        && let Err(why) = owned_by_us(link.uid())
    {
        return Err(err(Problem::Untrusted(format!("a symbolic link {why}"))));
    }
    let meta = std::fs::metadata(path).map_err(|e| err(Problem::Io(e)))?;
    if !meta.is_dir() {
        return Err(err(Problem::NotRegular(kind_of(meta.file_type()))));
    }
    let untrusted = |why: String| Err(err(Problem::Untrusted(why)));
    if let Err(why) = owned_by_us(meta.uid()) {
        return untrusted(format!("a directory {why}"));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o002 != 0 {
        return untrusted(format!(
            "a directory writable by every user (mode {mode:04o}): another user could plant or swap files in it"
        ));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 && meta.gid() != egid() {
        return untrusted(format!(
            "a directory writable by group {} (mode {mode:04o}): its members could plant or swap files in it",
            meta.gid()
        ));
    }
    Ok(())
}

/// The user dynhostd runs as (root, or systemd's dynamic user): with root, the one trusted owner.
pub(crate) fn euid() -> u32 {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn egid() -> u32 {
    // SAFETY: getegid(2) cannot fail and touches no memory.
    unsafe { libc::getegid() }
}

/// Root, or the user the agent runs as (systemd's dynamic user owns its own state and
/// credentials).
pub(crate) fn trusted_uid(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

fn owned_by_us(uid: u32) -> Result<(), String> {
    match euid() {
        _ if trusted_uid(uid) => Ok(()),
        0 => Err(format!("owned by uid {uid}: only root may own it")),
        me => Err(format!(
            "owned by uid {uid}: only root or uid {me} (the user dynhostd runs as) may own it"
        )),
    }
}

/// A regular file opened for reading as [`read`] opens it (no blocking open, not a FIFO or a
/// device, at most `cap` bytes when opened), for a caller that reads it piece by piece: the
/// system's CA bundle is parsed a line at a time rather than held whole. Read it through
/// `Read::take(cap)`: it may grow after the check.
pub fn open(path: &Path, cap: u64) -> Result<File, ReadError> {
    Ok(open_checked(path, cap, 0, |_| Ok(()))?.0)
}

fn open_checked(
    path: &Path,
    cap: u64,
    extra: libc::c_int,
    check: impl FnOnce(&std::fs::Metadata) -> Result<(), String>,
) -> Result<(File, std::fs::Metadata), ReadError> {
    let err = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    // std opens with O_CLOEXEC already; a hook started meanwhile inherits nothing.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | extra)
        .open(path)
        .map_err(|e| err(Problem::Io(e)))?;
    let meta = file.metadata().map_err(|e| err(Problem::Io(e)))?;
    if !meta.file_type().is_file() {
        return Err(err(Problem::NotRegular(kind_of(meta.file_type()))));
    }
    check(&meta).map_err(|why| err(Problem::Untrusted(why)))?;
    if meta.len() > cap {
        return Err(err(Problem::TooLarge { cap }));
    }
    Ok((file, meta))
}

/// [`read`]'s body: open with `extra` flags, check the open file with `check` (owner, mode),
/// then read at most `cap` bytes.
fn read_checked(
    path: &Path,
    cap: u64,
    extra: libc::c_int,
    check: impl FnOnce(&std::fs::Metadata) -> Result<(), String>,
) -> Result<Vec<u8>, ReadError> {
    let err = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    let (file, meta) = open_checked(path, cap, extra, check)?;
    // The size can still grow between fstat and read: read one byte past the cap to notice.
    let mut out = Vec::with_capacity(meta.len() as usize);
    read_capped(file, cap, &mut out).map_err(|e| err(Problem::Io(e)))?;
    if out.len() as u64 > cap {
        return Err(err(Problem::TooLarge { cap }));
    }
    Ok(out)
}

fn read_capped(file: File, cap: u64, out: &mut Vec<u8>) -> io::Result<()> {
    file.take(cap.saturating_add(1)).read_to_end(out)?;
    Ok(())
}

/// Like [`read`], for text: the file must be UTF-8.
pub fn read_to_string(path: &Path, cap: u64) -> Result<String, ReadError> {
    utf8(path, read(path, cap)?)
}

/// Like [`read_secret`], for text: the file must be UTF-8.
pub fn read_secret_to_string(path: &Path, cap: u64) -> Result<String, ReadError> {
    utf8(path, read_secret(path, cap)?)
}

fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String, ReadError> {
    String::from_utf8(bytes).map_err(|_| ReadError {
        path: path.to_path_buf(),
        problem: Problem::NotUtf8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo(3) touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn a_regular_file_within_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, "0123456789").unwrap();
        assert_eq!(read_to_string(&p, 10).unwrap(), "0123456789");
        let e = read(&p, 9).unwrap_err();
        assert!(matches!(e.problem, Problem::TooLarge { cap: 9 }), "{e}");
        assert_eq!(
            e.to_string(),
            format!("{}: too large (the limit is 9 bytes)", p.display())
        );
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        mkfifo(&p);
        // Without O_NONBLOCK this open would wait for a writer forever.
        let e = read(&p, PASSWORD_CAP).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: not a regular file (a FIFO)", p.display())
        );
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let e = read(Path::new("/dev/zero"), CONFIG_CAP).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: not a regular file (a character device)"
        );
        let dir = tempfile::tempdir().unwrap();
        let e = read(dir.path(), CONFIG_CAP).unwrap_err();
        assert!(
            e.to_string().ends_with("not a regular file (a directory)"),
            "{e}"
        );
    }

    #[test]
    fn missing_and_non_utf8_files_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing");
        let e = read(&p, 10).unwrap_err();
        assert!(e.is_not_found());
        std::fs::write(&p, b"\xff\xfe").unwrap();
        let e = read_to_string(&p, 10).unwrap_err();
        assert!(e.to_string().ends_with("not UTF-8 text"), "{e}");
        assert!(!e.is_not_found());
    }

    /// Tests that give a file to another user (chown) need root; without it they fail under
    /// CI / DYNHOSTD_TEST_STRICT=1 and are skipped, saying so, elsewhere.
    fn as_root(test: &str) -> bool {
        if euid() == 0 {
            return true;
        }
        let strict = std::env::var_os("CI").is_some()
            || std::env::var_os("DYNHOSTD_TEST_STRICT").is_some_and(|v| v == "1");
        assert!(
            !strict,
            "{test}: needs root (chown to another uid), and CI/DYNHOSTD_TEST_STRICT is set"
        );
        eprintln!("{test}: skipped: needs root (chown to another uid)");
        false
    }

    const NOBODY: u32 = 65534;

    fn chmod(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private directory (0700) with a 0600 secret in it.
    fn secret_dir() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o700);
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        chmod(&p, 0o600);
        (dir, p)
    }

    #[test]
    fn a_secret_is_read_from_a_private_file_in_a_private_directory() {
        let (_dir, p) = secret_dir();
        assert_eq!(
            read_secret_to_string(&p, PASSWORD_CAP).unwrap(),
            "hunter2\n"
        );
        // Readable by others is fine (a 0644 file under a 0700 dir); writable is not.
        chmod(&p, 0o644);
        assert!(read_secret(&p, PASSWORD_CAP).is_ok());
    }

    #[test]
    fn a_secret_behind_a_symbolic_link_is_refused_unread() {
        let (dir, p) = secret_dir();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        let e = read_secret(&link, PASSWORD_CAP).unwrap_err();
        assert!(matches!(e.problem, Problem::Untrusted(_)), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "{}: a symbolic link: a secret is read from a regular file, never through a link",
                link.display()
            )
        );
        // The config and CA files still follow links (an admin's /etc layout).
        assert!(read(&link, PASSWORD_CAP).is_ok());
    }

    #[test]
    fn a_secret_others_can_write_is_refused() {
        let (_dir, p) = secret_dir();
        chmod(&p, 0o620);
        let e = read_secret(&p, PASSWORD_CAP).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "writable by its group (mode 0620): a secret must be writable by its owner only"
            ),
            "{e}"
        );
        chmod(&p, 0o602);
        let e = read_secret(&p, PASSWORD_CAP).unwrap_err().to_string();
        assert!(e.contains("writable by every user (mode 0602)"), "{e}");
        assert!(!e.contains("hunter2"));
    }

    #[test]
    fn a_secret_in_a_directory_anyone_can_write_is_refused() {
        let (dir, p) = secret_dir();
        for mode in [0o777, 0o1777, 0o703] {
            chmod(dir.path(), mode);
            let e = read_secret(&p, PASSWORD_CAP).unwrap_err();
            assert_eq!(e.path, dir.path(), "{e}");
            assert!(
                e.to_string().contains(&format!(
                    "a directory writable by every user (mode {mode:04o})"
                )),
                "{e}"
            );
            assert!(check_dir(dir.path()).is_err());
        }
        chmod(dir.path(), 0o755);
        assert!(check_dir(dir.path()).is_ok());
        assert!(read_secret(&p, PASSWORD_CAP).is_ok());
    }

    #[test]
    fn fifos_devices_and_giants_are_refused_as_secrets_too() {
        let (dir, p) = secret_dir();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let e = read_secret(&fifo, PASSWORD_CAP).unwrap_err();
        assert!(matches!(e.problem, Problem::NotRegular("a FIFO")), "{e}");
        std::fs::write(&p, vec![b'x'; PASSWORD_CAP as usize + 1]).unwrap();
        let e = read_secret(&p, PASSWORD_CAP).unwrap_err();
        assert!(matches!(e.problem, Problem::TooLarge { .. }), "{e}");
        let e = check_dir(&p).unwrap_err();
        assert!(matches!(e.problem, Problem::NotRegular(_)), "{e}");
    }

    #[test]
    fn things_another_user_owns_are_refused() {
        use std::os::unix::fs::{chown, lchown};
        if !as_root("things_another_user_owns_are_refused") {
            return;
        }
        let (dir, p) = secret_dir();
        chown(&p, Some(NOBODY), None).unwrap();
        let e = read_secret(&p, PASSWORD_CAP).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!("owned by uid {NOBODY}: only root may own it")),
            "{e}"
        );
        chown(&p, Some(0), None).unwrap();
        assert!(read_secret(&p, PASSWORD_CAP).is_ok());

        // A directory another user owns: they could swap the file at any time.
        chown(dir.path(), Some(NOBODY), None).unwrap();
        let e = check_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("a directory owned by uid {NOBODY}")),
            "{e}"
        );
        assert!(read_secret(&p, PASSWORD_CAP).is_err());
        chown(dir.path(), Some(0), None).unwrap();

        // Group-writable: fine for root's group, refused for another.
        chmod(dir.path(), 0o770);
        chown(dir.path(), None, Some(0)).unwrap();
        assert!(check_dir(dir.path()).is_ok());
        chown(dir.path(), None, Some(NOBODY)).unwrap();
        let e = check_dir(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("writable by group {NOBODY} (mode 0770)")),
            "{e}"
        );
        chmod(dir.path(), 0o750);
        assert!(check_dir(dir.path()).is_ok());

        // A link to a good directory is fine when we own the link, refused when another does.
        let parent = tempfile::tempdir().unwrap();
        let link = parent.path().join("state");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(check_dir(&link).is_ok());
        lchown(&link, Some(NOBODY), None).unwrap();
        let e = check_dir(&link).unwrap_err().to_string();
        assert!(
            e.contains(&format!("a symbolic link owned by uid {NOBODY}")),
            "{e}"
        );
    }

    #[test]
    fn sizes_are_written_for_people() {
        assert_eq!(size(PASSWORD_CAP), "4 KiB");
        assert_eq!(size(CONFIG_CAP), "1 MiB");
        assert_eq!(size(STATE_CAP), "16 MiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
