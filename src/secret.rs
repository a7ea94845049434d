//! A password that never reaches a log line: `Debug` and `Display` print a placeholder, and the
//! only way to the text is the explicit [`Secret::expose`].
//!
//! Also the one code path that reads a secret from outside the config text: a password file or
//! systemd credential (through the bounded reader's [`fsread::read_secret`]: a regular file, not a
//! link, that only root or the agent's user owns and can write, at most [`fsread::PASSWORD_CAP`])
//! or an environment variable. The config layer validates the text and
//! names the key in errors.

use crate::fsread::{self, ReadError};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The password itself, for the one place that must send it (HTTP Basic auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The first line (trimmed) of the password file at `path`. A FIFO, a device or anything over
/// [`fsread::PASSWORD_CAP`] is refused, never read, and so is a symbolic link, a file another user
/// owns or can write, or one in a directory others can write ([`fsread::read_secret`]); the
/// error names the file, never its text.
pub fn from_file(path: &Path) -> Result<Secret, ReadError> {
    let text = fsread::read_secret_to_string(path, fsread::PASSWORD_CAP).map_err(|e| {
        // A refused directory is named by fsread; say which secret it was refused for, so the
        // error leads to the file the config names.
        match e.problem {
            fsread::Problem::Untrusted(why) if e.path != path => ReadError {
                problem: fsread::Problem::Untrusted(format!(
                    "refused: its directory {} is {}",
                    e.path.display(),
                    why.strip_prefix("a directory ").unwrap_or(&why)
                )),
                path: path.to_path_buf(),
            },
            _ => e,
        }
    })?;
    Ok(Secret::new(text.lines().next().unwrap_or("").trim()))
}

/// The (trimmed) value of the environment variable `name`, if set.
pub fn from_env(name: &str) -> Option<Secret> {
    std::env::var(name).ok().map(|v| Secret::new(v.trim()))
}

/// Where systemd put the credential `name` (`LoadCredential=NAME:PATH` makes it
/// `$CREDENTIALS_DIRECTORY/NAME`); read it with [`from_file`].
pub fn credential_path(name: &str) -> Result<PathBuf, &'static str> {
    if name.is_empty() || name.contains('/') {
        return Err("a credential name, without '/'");
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
        .ok_or("CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=)")?;
    Ok(PathBuf::from(dir).join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_gives_its_first_line_and_refuses_devices_and_giants() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "  hunter2  \nsecond\n").unwrap();
        assert_eq!(from_file(&p).unwrap().expose(), "hunter2");
        let e = from_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: not a regular file (a character device)"
        );
        std::fs::write(&p, vec![b'x'; fsread::PASSWORD_CAP as usize + 1]).unwrap();
        let e = from_file(&p).unwrap_err().to_string();
        assert!(e.ends_with("too large (the limit is 4 KiB)"), "{e}");
        assert!(!e.contains("xxx"));
    }

    #[test]
    fn a_refused_directory_is_named_with_the_secret_it_holds() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("shared");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let p = sub.join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        let e = from_file(&p).unwrap_err();
        assert_eq!(e.path, p);
        assert_eq!(
            e.to_string(),
            format!(
                "{}: refused: its directory {} is writable by every user (mode 0777): another user could plant or swap files in it",
                p.display(),
                sub.display()
            )
        );
    }

    #[test]
    fn formatting_never_shows_the_password() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert!(!format!("{s:#?}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2-very-secret");
    }
}
