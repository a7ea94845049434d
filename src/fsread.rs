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
    let err = |problem| ReadError {
        path: path.to_path_buf(),
        problem,
    };
    // std opens with O_CLOEXEC already; a hook started meanwhile inherits nothing.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| err(Problem::Io(e)))?;
    let meta = file.metadata().map_err(|e| err(Problem::Io(e)))?;
    if !meta.file_type().is_file() {
        return Err(err(Problem::NotRegular(kind_of(meta.file_type()))));
    }
    if meta.len() > cap {
        return Err(err(Problem::TooLarge { cap }));
    }
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
    let bytes = read(path, cap)?;
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

    #[test]
    fn sizes_are_written_for_people() {
        assert_eq!(size(PASSWORD_CAP), "4 KiB");
        assert_eq!(size(CONFIG_CAP), "1 MiB");
        assert_eq!(size(STATE_CAP), "16 MiB");
        assert_eq!(size(1000), "1000 bytes");
    }
}
