//! `dynhostd import [--from FORMAT] FILE|-`: reads the other client's config, prints the
//! dynhostd TOML on stdout (or with `--write-config` appends it to the config, passwords to 0600
//! files or systemd credentials), and every note on stderr as `dynhostd: FILE:LINE: …`. Exit 0
//! when every entry was carried over, 1 when something was left out (or could not be written),
//! 2 when the input cannot be read or parsed: then nothing is written. No password is ever
//! printed: the output says where each would go.

use super::{Format, Import, Password, Placement};
use crate::config::write::{self, ConfigWritten, PasswordPlace};
use crate::fsread;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct ImportArgs {
    /// The file, or `-` for standard input.
    pub file: PathBuf,
    pub from: Option<Format>,
    pub config: PathBuf,
    pub write_config: bool,
    pub credential: bool,
    pub credstore: PathBuf,
    pub dry_run: bool,
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("dynhostd: {message}");
    ExitCode::from(code)
}

/// Standard input, bounded like a file: `uci export ddns | dynhostd import -`.
fn read_stdin() -> Result<String, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(super::INPUT_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if bytes.len() as u64 > super::INPUT_CAP {
        return Err(format!(
            "standard input: too large (the limit is {} MiB), not a configuration file",
            super::INPUT_CAP >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|_| "standard input: not UTF-8 text".to_string())
}

/// An executable named `name` in `$PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// An OpenWrt network name's Linux device, as netifd reports it (`l3_device`: `pppoe-wan` for a
/// PPPoE `wan`).
fn ubus_device(ubus: Option<&Path>, name: &str) -> Result<String, String> {
    let Some(ubus) = ubus else {
        return Err("no ubus on this machine".into());
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err("not a network name ubus knows".into());
    }
    let call = format!("`ubus call network.interface.{name} status`");
    let out = std::process::Command::new(ubus)
        .args(["call", &format!("network.interface.{name}"), "status"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{call} could not run: {e}"))?;
    if !out.status.success() {
        return Err(format!("{call} failed"));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|_| format!("{call} did not answer JSON"))?;
    let dev = v
        .get("l3_device")
        .or_else(|| v.get("device"))
        .and_then(|d| d.as_str())
        .ok_or_else(|| format!("{call} names no l3_device (is the interface up?)"))?;
    if dev.is_empty() || dev.len() > 15 || dev.contains(['/', ' ', '\0']) {
        return Err(format!(
            "{call} answered {dev:?}, not a Linux interface name"
        ));
    }
    Ok(dev.to_string())
}

/// The hostnames and families and the top-level tables an existing config has; None when
/// there is no config yet.
struct Existing {
    records: Vec<(String, String)>,
    tables: Vec<String>,
}

fn existing(path: &Path) -> Result<Option<Existing>, String> {
    if std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    let text = fsread::read_to_string(path, fsread::CONFIG_CAP).map_err(|e| e.to_string())?;
    // The loader's own raw layer (no second TOML reader in the binary); the full check runs
    // when the entries are appended.
    let raw: crate::config::RawConfig = toml::from_str(&text)
        .map_err(|e: toml::de::Error| format!("{}: {}", path.display(), e.message()))?;
    let records = raw
        .hosts
        .iter()
        .map(|h| {
            let h = h.get_ref();
            let s = |v: &Option<toml::Spanned<String>>, d: &str| {
                v.as_ref().map_or(d, |v| v.get_ref().as_str()).to_string()
            };
            (
                s(&h.hostname, "")
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
                s(&h.family, "ipv4"),
            )
        })
        .collect();
    // Top-level tables, from the text: `[wan]` and the like at the start of a line.
    let tables = text
        .lines()
        .filter_map(|l| {
            let t = l.trim_start().strip_prefix('[')?;
            let (name, _) = t.split_once(']')?;
            (!name.starts_with('[')).then(|| name.trim().to_string())
        })
        .collect();
    Ok(Some(Existing { records, tables }))
}

pub fn run(a: ImportArgs) -> ExitCode {
    let stdin = a.file.as_os_str() == "-";
    let name = if stdin {
        "<stdin>".to_string()
    } else {
        a.file.display().to_string()
    };
    let text = if stdin {
        read_stdin()
    } else {
        fsread::read_to_string(&a.file, super::INPUT_CAP).map_err(|e| format!("cannot read {e}"))
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => return fail(2, e),
    };
    let format = match a.from {
        Some(f) => f,
        None => match Format::recognise(&text) {
            Some(f) => {
                eprintln!(
                    "dynhostd: reading {name} as {}'s configuration (recognised from its content; --from says otherwise)",
                    f.name()
                );
                f
            }
            None => {
                if let Err(e) = super::check_text(&text, &name) {
                    return fail(2, e);
                }
                let only_comments = text.lines().all(|l| {
                    let t = l.trim();
                    t.is_empty() || t.starts_with('#') || t.starts_with("//")
                });
                if only_comments {
                    return fail(
                        1,
                        format!(
                            "{name}: nothing but comments and blank lines: no host entry to import"
                        ),
                    );
                }
                return fail(
                    2,
                    format!(
                        "{name}: neither ddclient's key=value lines, inadyn's sections nor UCI's config/option lines: cannot tell which client's configuration this is; say it with --from ddclient|inadyn|ddns-scripts"
                    ),
                );
            }
        },
    };
    let mut read = |p: &Path| {
        fsread::read_to_string(p, super::INPUT_CAP).map_err(|e| format!("cannot read {e}"))
    };
    let ubus = on_path("ubus");
    let mut resolve = |n: &str| ubus_device(ubus.as_deref(), n);
    let mut imp = match super::parse(format, &text, &name, &mut read, &mut resolve) {
        Ok(i) => i,
        Err(e) => return fail(2, e),
    };

    let writing = a.write_config && !a.dry_run;
    let have = if a.write_config {
        match existing(&a.config) {
            Ok(h) => h,
            Err(e) => return fail(2, format!("the config to append to: {e}")),
        }
    } else {
        None
    };
    let mut left_out = Vec::new();
    let found_hosts = !imp.hosts.is_empty();
    if let Some(have) = &have {
        imp.hosts.retain(|h| {
            let clash = have.records.iter().any(|(n, f)| {
                n.eq_ignore_ascii_case(&h.hostname)
                    && (f == "both"
                        || h.family == crate::config::FamilySet::Both
                        || f == h.family.name())
            });
            if clash {
                left_out.push(format!(
                    "{}: left out: {}: {} already has a [[host]] for this record",
                    h.at,
                    h.hostname,
                    a.config.display()
                ));
            }
            !clash
        });
    }
    let skip = |t: &str| {
        have.as_ref()
            .is_some_and(|h| h.tables.iter().any(|x| x == t))
    };
    let (sections, skipped) = super::render_sections(&imp, &skip);
    // A config that has its own [wan]: each host names the interface it follows instead.
    let wan = imp.wan_interface().filter(|_| !skip("wan"));
    for s in skipped.into_iter().filter(|s| *s != "wan") {
        left_out.push(format!(
            "left out: the imported [{s}] settings: {} already has a [{s}] section; merge them by hand:\n{}",
            a.config.display(),
            super::render_sections(&imp, &|t| t != s).0.trim_end()
        ));
    }

    let placement = Placement {
        config_dir: match a.config.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        },
        credstore: a.credential.then(|| a.credstore.clone()),
    };
    let mut taken = Vec::new();
    let places: Vec<Option<PasswordPlace>> = imp
        .hosts
        .iter()
        .map(|h| placement.place(h, &mut taken))
        .collect();
    let hosts = super::render_hosts(&imp, &places, wan);
    let header = format!(
        "# Imported by `dynhostd import` from {name} ({}).\n",
        format.name()
    );

    for n in &imp.notes {
        eprintln!("dynhostd: {n}");
    }
    for l in &left_out {
        eprintln!("dynhostd: {l}");
    }
    let would = if writing { "" } else { "would be " };
    for (h, place) in imp.hosts.iter().zip(&places) {
        match place {
            Some(PasswordPlace::File { path, .. }) => eprintln!(
                "dynhostd: {}: password {would}written to {} (mode 0600)",
                h.hostname,
                path.display()
            ),
            Some(PasswordPlace::Credential { path, name }) => eprintln!(
                "dynhostd: {}: password {would}written to {} (mode 0600); systemd: add `LoadCredential={name}:{}` to the unit (systemctl edit dynhostd)",
                h.hostname,
                path.display(),
                path.display()
            ),
            None => {}
        }
    }
    let body = format!("{sections}{hosts}");
    let code = if imp.left_out() || !left_out.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    if imp.hosts.is_empty() {
        eprintln!(
            "dynhostd: {name}: {}",
            if found_hosts {
                "nothing left to import"
            } else {
                "no OVH or dyndns2 host entry to import"
            }
        );
        return ExitCode::from(1);
    }
    if !writing {
        if a.write_config {
            println!("# dry run: would append to {}:", a.config.display());
        }
        print!("{header}{body}");
        if !a.write_config {
            eprintln!(
                "dynhostd: nothing written: run again with --write-config to append this to {} and write the passwords",
                a.config.display()
            );
        }
        return code;
    }
    match write_all(&a, &imp, &places, &header, &sections, &hosts, wan) {
        Ok(written) => {
            eprintln!(
                "dynhostd: {} [[host]] entr{} appended to {}",
                imp.hosts.len(),
                if imp.hosts.len() == 1 { "y" } else { "ies" },
                match &written {
                    ConfigWritten::InPlace => a.config.display().to_string(),
                    ConfigWritten::ThroughLink(t) => format!(
                        "{} (the file the link {} leads to)",
                        t.display(),
                        a.config.display()
                    ),
                }
            );
            code
        }
        Err(e) => fail(1, format!("{e}; nothing was written")),
    }
}

/// The passwords, then the config (created when missing): all or nothing. A password file or
/// credential that already holds another password is never overwritten.
fn write_all(
    a: &ImportArgs,
    imp: &Import,
    places: &[Option<PasswordPlace>],
    header: &str,
    sections: &str,
    hosts: &str,
    wan: Option<&str>,
) -> Result<ConfigWritten, String> {
    write::prepare_dir(&a.config).map_err(|e| e.to_string())?;
    let mut to_write = Vec::new();
    for (h, place) in imp.hosts.iter().zip(places) {
        let (Some(place), Password::Value(pw)) = (place, &h.password) else {
            continue;
        };
        match write::password_already_in(place.path()).map_err(|e| e.to_string())? {
            Some(old) if old == *pw => {}
            Some(_) => {
                return Err(format!(
                    "{} already holds another password for {}: move it away first",
                    place.path().display(),
                    h.hostname
                ));
            }
            None => to_write.push((place.path().to_path_buf(), pw)),
        }
    }
    let mut written: Vec<PathBuf> = Vec::new();
    let mut created_config = false;
    let result = (|| {
        for (path, pw) in &to_write {
            write::write_secret_file(path, pw).map_err(|e| e.to_string())?;
            written.push(path.clone());
        }
        if std::fs::symlink_metadata(&a.config).is_err() {
            create_config(&a.config, header)?;
            created_config = true;
        }
        // A credential is read under systemd only: checked as the file the unit loads.
        let check_places: Vec<Option<PasswordPlace>> = places
            .iter()
            .map(|p| match p {
                Some(PasswordPlace::Credential { path, .. }) => Some(PasswordPlace::File {
                    path: path.clone(),
                    in_config: path.display().to_string(),
                }),
                other => other.clone(),
            })
            .collect();
        let check_as = a
            .credential
            .then(|| format!("{sections}{}", super::render_hosts(imp, &check_places, wan)));
        let entry = if created_config {
            format!("{sections}{hosts}")
        } else {
            format!("{header}{sections}{hosts}")
        };
        let check = check_as.map(|c| {
            if created_config {
                c
            } else {
                format!("{header}{c}")
            }
        });
        write::append_to_config(&a.config, &entry, check.as_deref()).map_err(|e| e.to_string())
    })();
    if result.is_err() {
        for p in &written {
            let _ = std::fs::remove_file(p);
        }
        if created_config {
            let _ = std::fs::remove_file(&a.config);
        }
    }
    result
}

/// A new config holding only `header`, 0600 (it will name password files), never over a file
/// that appeared meanwhile.
fn create_config(path: &Path, header: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(header.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
