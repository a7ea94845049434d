//! Writing beside and into a config file: a secret in its own 0600 file, a `[[host]]` entry
//! appended to the config (comments kept, validated as `check` does, replaced atomically under a
//! lock), and where an existing entry keeps its password. Shared by `dynhostd ovh provision`
//! and `dynhostd import`, so it is in every build.

use crate::config::FamilySet;
use crate::secret::Secret;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a file beside or of the config was not written. Nothing is left half-written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{what} {path}: {message}")]
    Io {
        what: &'static str,
        path: String,
        message: String,
    },
    #[error("no [[host]] for {0} in the config: `dynhostd ovh provision {0}` adds one")]
    NotInConfig(String),
    #[error(
        "{hostname} keeps its password {form}: rotate writes password_file or password_credential only; move the password to a file first"
    )]
    PasswordForm {
        hostname: String,
        form: &'static str,
    },
    #[error("the changed config did not validate, so {path} was left as it was: {message}")]
    ConfigRewrite { path: String, message: String },
}

pub fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl Fn(std::io::Error) -> WriteError + 'a {
    move |e| WriteError::Io {
        what,
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// A config file's text through the bounded reader (regular file, size-capped).
pub fn read_text(path: &Path, cap: u64) -> Result<String, WriteError> {
    crate::fsread::read_to_string(path, cap).map_err(|e| WriteError::Io {
        what: "cannot read",
        path: path.display().to_string(),
        message: e.problem.to_string(),
    })
}

/// `path`'s temporary sibling, written (0600, or `mode`) and fsynced but not yet renamed.
/// Whatever has its name is unlinked (a link itself, never its target), then the file is made
/// afresh with `O_EXCL|O_NOFOLLOW`: a link planted at the name is never written through.
pub fn write_temp(path: &Path, text: &[u8], mode: u32) -> Result<PathBuf, WriteError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("cannot write", &tmp))?;
    f.write_all(text).and_then(|()| f.sync_all()).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("cannot write", &tmp)(e)
    })?;
    Ok(tmp)
}

/// Renames `tmp` over `path` and syncs the directory, so the new file survives a power cut.
pub fn commit(tmp: &Path, path: &Path) -> Result<(), WriteError> {
    std::fs::rename(tmp, path).map_err(io_err("cannot replace", path))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The directory `path` goes in, created if missing, and refused if another user could plant
/// or swap files in it ([`crate::fsread::check_dir`]): a secret or a config written there could
/// be read, replaced or turned into a link by them.
pub fn prepare_dir(path: &Path) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    check_dir(dir)
}

/// [`crate::fsread::check_dir`], as a refusal to write there.
pub fn check_dir(dir: &Path) -> Result<(), WriteError> {
    crate::fsread::check_dir(dir).map_err(|e| WriteError::Io {
        what: "refusing to write in",
        path: e.path.display().to_string(),
        message: e.problem.to_string(),
    })
}

/// A secret in its own 0600 file, replaced atomically, in a directory only root or we can
/// write.
pub fn write_secret_file(path: &Path, secret: &Secret) -> Result<(), WriteError> {
    prepare_dir(path)?;
    let tmp = write_temp(path, format!("{}\n", secret.expose()).as_bytes(), 0o600)?;
    commit(&tmp, path)
}

/// The password a file (or credential) already holds, from an earlier run: `None` when there
/// is no such file yet. A file that is there but refused (a link, another user's, writable by
/// others, in a directory others can write: [`crate::secret::from_file`]) is an error, never
/// "no password yet": it could be a link to `/etc/shadow`, which would then be sent to OVH.
pub fn password_already_in(path: &Path) -> Result<Option<Secret>, WriteError> {
    // Nothing there: not a refusal of a password (the directory is checked before writing).
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    match crate::secret::from_file(path) {
        Ok(pw) if pw.expose().is_empty() => Ok(None),
        Ok(pw) => Ok(Some(pw)),
        // No file yet (or no directory yet: it is made when the password is written).
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(WriteError::Io {
            what: "refusing the password already in",
            path: path.display().to_string(),
            message: if e.path == path {
                e.problem.to_string()
            } else {
                e.to_string()
            },
        }),
    }
}

/// Where [`append_to_config`] wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigWritten {
    /// The file at the given path, replaced.
    InPlace,
    /// The config path is a symbolic link: the file it leads to was replaced (the new text
    /// written beside it and renamed over it), and the link kept.
    ThroughLink(PathBuf),
}

/// An exclusive `flock` on the config file that stays the one at `path`: a writer that
/// renamed a new file over it in the meantime has let go of an old inode, so the lock is taken
/// again on the new one. Held from the read to the rename by every `provision --write-config`,
/// so two at once each append to what the other wrote instead of one losing its entry.
pub fn lock_config(path: &Path) -> Result<std::fs::File, WriteError> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(io_err("cannot open", path))?;
        // Waits (no LOCK_NB) for another writer to finish.
        crate::lock::flock(&file, libc::LOCK_EX).map_err(io_err("cannot lock", path))?;
        let held = file.metadata().map_err(io_err("cannot read", path))?;
        let now = std::fs::symlink_metadata(path).map_err(io_err("cannot read", path))?;
        if (held.dev(), held.ino()) == (now.dev(), now.ino()) {
            return Ok(file);
        }
    }
}

/// Appends `entry` to the config at `path`: the old text kept as it is (comments included),
/// the result validated as `check` does, then put in place atomically with the file's mode.
/// On any failure the old file stays. `check_as`, if given, is validated in place of `entry`:
/// a `password_credential` can only be read under systemd, so it is checked as the file the
/// unit will load.
///
/// The file is locked from the read to the rename ([`lock_config`]). A config that is a
/// symbolic link is written through: the link is resolved once, the new text written beside
/// the file it leads to and renamed over that file, so the link stays a link. The directory
/// written in must pass [`crate::fsread::check_dir`].
pub fn append_to_config(
    path: &Path,
    entry: &str,
    check_as: Option<&str>,
) -> Result<ConfigWritten, WriteError> {
    use std::os::unix::fs::PermissionsExt;
    let is_link = std::fs::symlink_metadata(path)
        .map_err(io_err("cannot read", path))?
        .file_type()
        .is_symlink();
    let (target, written) = if is_link {
        let target =
            std::fs::canonicalize(path).map_err(io_err("cannot resolve the link", path))?;
        (target.clone(), ConfigWritten::ThroughLink(target))
    } else {
        (path.to_path_buf(), ConfigWritten::InPlace)
    };
    prepare_dir(&target)?;
    let lock = lock_config(&target)?;
    let old = read_text(&target, crate::fsread::CONFIG_CAP)?;
    let mode = lock
        .metadata()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let mut new = old.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push('\n');
    let checked = format!("{new}{}", check_as.unwrap_or(entry));
    new.push_str(entry);
    // Relative paths in the config are relative to where it is read from: the link's directory.
    let base = path.parent().unwrap_or(Path::new("."));
    crate::config::parse(&checked, Some(path), base).map_err(|e| WriteError::ConfigRewrite {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let tmp = write_temp(&target, new.as_bytes(), mode)?;
    commit(&tmp, &target)?;
    drop(lock);
    Ok(written)
}

/// Where `--credential` puts a password: the directory the shipped unit loads credentials
/// from (contrib/systemd/dynhostd.service: `LoadCredential=home:/etc/dynhostd/credentials/home`).
/// Shared by `ovh provision --credential` and `import --credential`.
pub const CREDSTORE: &str = "/etc/dynhostd/credentials";

/// The `[[host]]` entry `provision` prints or appends.
pub fn host_entry(
    hostname: &str,
    login: &str,
    password: &PasswordPlace,
    family: FamilySet,
    server: Option<&str>,
) -> String {
    HostEntry {
        comment: &format!("Added by `dynhostd ovh provision {hostname}`."),
        hostname,
        login,
        password: Some(password),
        password_env: None,
        family,
        provider: None,
        server,
        interface: None,
        interface6: None,
        enabled: true,
    }
    .render()
}

/// A `[[host]]` entry as the commands that write one render it (`ovh provision`, `import`):
/// only the keys that differ from the defaults, after a comment saying where it came from.
pub struct HostEntry<'a> {
    pub comment: &'a str,
    pub hostname: &'a str,
    pub login: &'a str,
    pub password: Option<&'a PasswordPlace>,
    /// `password_env`, for a password that stays in the environment.
    pub password_env: Option<&'a str>,
    pub family: FamilySet,
    /// None: OVH, the default.
    pub provider: Option<&'a str>,
    pub server: Option<&'a str>,
    pub interface: Option<&'a str>,
    pub interface6: Option<&'a str>,
    pub enabled: bool,
}

impl HostEntry<'_> {
    pub fn render(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        // The comment is one line whatever it quotes.
        let comment: String = self
            .comment
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut out = format!(
            "# {comment}\n[[host]]\nhostname = {}\nlogin = {}\n",
            q(self.hostname),
            q(self.login)
        );
        match self.password {
            Some(PasswordPlace::File { in_config, .. }) => {
                out += &format!("password_file = {}\n", q(in_config))
            }
            Some(PasswordPlace::Credential { name, .. }) => {
                out += &format!("password_credential = {}\n", q(name))
            }
            None => {}
        }
        if let Some(v) = self.password_env {
            out += &format!("password_env = {}\n", q(v));
        }
        out += &format!("family = {}\n", q(self.family.name()));
        for (k, v) in [
            ("provider", self.provider),
            ("server", self.server),
            ("interface", self.interface),
            ("interface6", self.interface6),
        ] {
            if let Some(v) = v {
                out += &format!("{k} = {}\n", q(v));
            }
        }
        if !self.enabled {
            out += "enabled = false\n";
        }
        out
    }
}

/// Where a host's password lives on this machine.
#[derive(Debug, Clone)]
pub enum PasswordPlace {
    /// `path` on disk; `in_config` as the config names it (relative to the config's directory).
    File { path: PathBuf, in_config: String },
    /// A systemd credential: written to `path` in the credential store, named `name`.
    Credential { path: PathBuf, name: String },
}

impl PasswordPlace {
    pub fn path(&self) -> &Path {
        match self {
            PasswordPlace::File { path, .. } | PasswordPlace::Credential { path, .. } => path,
        }
    }
}

/// Where an existing `[[host]]` keeps its password, from the file's own text (the validated
/// config holds the password, not where it came from).
pub fn password_place_of(
    config_path: &Path,
    hostname: &str,
    credstore: &Path,
) -> Result<PasswordPlace, WriteError> {
    let text = read_text(config_path, crate::fsread::CONFIG_CAP)?;
    let table: toml::Table =
        text.parse()
            .map_err(|e: toml::de::Error| WriteError::ConfigRewrite {
                path: config_path.display().to_string(),
                message: e.to_string(),
            })?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let hosts = table.get("host").and_then(|h| h.as_array());
    let host = hosts
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_table())
        .find(|h| {
            h.get("hostname").and_then(|v| v.as_str()).is_some_and(|n| {
                n.trim()
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(hostname)
            })
        })
        .ok_or_else(|| WriteError::NotInConfig(hostname.to_string()))?;
    let s = |k: &str| host.get(k).and_then(|v| v.as_str()).map(str::to_string);
    if let Some(f) = s("password_file") {
        return Ok(PasswordPlace::File {
            path: base.join(&f),
            in_config: f,
        });
    }
    if let Some(name) = s("password_credential") {
        return Ok(PasswordPlace::Credential {
            path: credstore.join(&name),
            name,
        });
    }
    Err(WriteError::PasswordForm {
        hostname: hostname.to_string(),
        form: if s("password_env").is_some() {
            "in an environment variable"
        } else {
            "inline in the config"
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rewrite_keeps_the_old_config() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("config.toml");
        let old = "# my comment\n[ovh_api]\napplication_key = \"Ak\"\napplication_secret = \"s\"\n";
        std::fs::write(&path, old).unwrap();
        // A password file that does not exist: the result would not validate.
        let bad = "[[host]]\nhostname = \"h.example.com\"\nlogin = \"example.com-h\"\npassword_file = \"nope\"\n";
        let e = append_to_config(&path, bad, None).unwrap_err();
        assert!(matches!(e, WriteError::ConfigRewrite { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        std::fs::write(dir.join("pw"), "secret\n").unwrap();
        append_to_config(&path, &bad.replace("nope", "pw"), None).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(
            new.starts_with(old) && new.contains("# my comment"),
            "{new}"
        );
    }
}
