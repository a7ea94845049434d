//! `dynhostd import`: another DDNS client's configuration read into dynhostd's model, then
//! rendered as TOML. One reader per foreign format ([`ddclient`], [`inadyn`], [`uci`] for
//! OpenWrt's ddns-scripts), each a plain line parser that fills the same [`Import`]: the hosts
//! that map, the global settings that mean something here, and a [`Note`] for every entry or key
//! that does not carry over, with its file and line. Nothing is dropped silently: a key is
//! either used, noted as not needed (polling, logging), or listed as left out with the reason.
//!
//! Passwords stay [`Secret`]s from the reader to the file they are written to: the rendered
//! TOML names where a password goes (`password_file`, `password_credential`, `password_env`),
//! never the password.

pub mod cli;
pub mod ddclient;
pub mod inadyn;
pub mod uci;

use crate::config::FamilySet;
use crate::config::write::{HostEntry, PasswordPlace};
use crate::provider::Provider;
use crate::secret::Secret;
use std::fmt;
use std::path::{Path, PathBuf};

/// Largest file (or standard input) an import reads: real configs are a few KiB.
pub const INPUT_CAP: u64 = crate::fsread::CONFIG_CAP;

/// The formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ddclient,
    Inadyn,
    DdnsScripts,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Ddclient => "ddclient",
            Format::Inadyn => "inadyn",
            Format::DdnsScripts => "ddns-scripts",
        }
    }

    pub fn from_name(s: &str) -> Option<Format> {
        match s {
            "ddclient" => Some(Format::Ddclient),
            "inadyn" => Some(Format::Inadyn),
            "ddns-scripts" | "uci" | "openwrt" => Some(Format::DdnsScripts),
            _ => None,
        }
    }

    /// The format `text` is written in, from its first statements: UCI starts with `config` or
    /// `package`; inadyn has `provider`/`custom` sections in braces or `key = value` with
    /// spaces; ddclient has `key=value` pairs. None when nothing says.
    pub fn recognise(text: &str) -> Option<Format> {
        let mut inadyn = false;
        let mut ddclient = false;
        for line in text.lines() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with("//") {
                continue;
            }
            let first = t
                .split(|c: char| c.is_whitespace() || c == '=' || c == '{')
                .next()
                .unwrap_or("")
                .to_ascii_lowercase();
            if (first == "config" || first == "package") && !t.contains('=') {
                return Some(Format::DdnsScripts);
            }
            if ((first == "provider" || first == "custom") && !t.contains('='))
                || t.contains('{')
                || first.starts_with("include(")
                || first == "include"
            {
                inadyn = true;
            } else if t.contains('=') {
                // inadyn writes `key = value`, ddclient `key=value[, …]`: only the other
                // signs decide, this one counts for ddclient when nothing else is there.
                ddclient = true;
            }
        }
        if inadyn {
            Some(Format::Inadyn)
        } else if ddclient {
            Some(Format::Ddclient)
        } else {
            None
        }
    }
}

/// A place in an imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: String,
    pub line: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// The file cannot be read or parsed: exit 2, nothing written.
#[derive(Debug)]
pub struct ParseError {
    pub at: Loc,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Something that did not become part of the dynhostd config, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Loc,
    pub kind: NoteKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A setting or entry the user relied on that has no equivalent here: exit 1.
    LeftOut,
    /// A setting dynhostd has no use for (a polling period, a log file): said, not an error.
    NotNeeded,
    /// Carried over, but check it (a logical name kept as it was, plain http made https).
    Warning,
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            NoteKind::LeftOut => "left out",
            NoteKind::NotNeeded => "not needed",
            NoteKind::Warning => "warning",
        };
        write!(f, "{}: {what}: {}", self.at, self.text)
    }
}

/// Where an imported host's password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// Written in the old config: goes to a file or credential of its own.
    Value(Secret),
    /// ddclient 4's `password_env=VAR`: stays in the environment.
    Env(String),
}

/// One `[[host]]` to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub at: Loc,
    pub hostname: String,
    pub login: String,
    pub password: Password,
    pub family: FamilySet,
    pub provider: Provider,
    /// The dyndns2 update URL; None for OVH's default endpoint.
    pub server: Option<String>,
    /// The interface the record(s) follow (the AAAA one's for an IPv6-only host).
    pub interface: Option<String>,
    /// The AAAA record's interface when it differs.
    pub interface6: Option<String>,
    pub enabled: bool,
    /// What it was in the old config, for the comment above the entry.
    pub was: String,
}

/// What a foreign config becomes.
#[derive(Debug, Default)]
pub struct Import {
    pub hosts: Vec<Host>,
    pub detect_v4: Vec<String>,
    pub detect_v6: Vec<String>,
    /// `[update] refresh` and `min_interval`, as dynhostd durations.
    pub refresh: Option<String>,
    pub min_interval: Option<String>,
    pub notes: Vec<Note>,
}

impl Import {
    /// Kept in file order, whichever step notes it (an entry's own note comes after its
    /// keys', a global key may follow the sections): after the last note of its file at its
    /// line or before.
    pub fn note(&mut self, at: &Loc, kind: NoteKind, text: impl Into<String>) {
        let same = |n: &Note| n.at.file == at.file;
        let pos = match self
            .notes
            .iter()
            .rposition(|n| same(n) && n.at.line <= at.line)
        {
            Some(i) => i + 1,
            None => self.notes.iter().position(same).unwrap_or(self.notes.len()),
        };
        let note = Note {
            at: at.clone(),
            kind,
            text: text.into(),
        };
        self.notes.insert(pos, note);
    }

    pub fn left_out(&self) -> bool {
        self.notes.iter().any(|n| n.kind == NoteKind::LeftOut)
    }

    pub fn add_detect(&mut self, v6: bool, url: String) {
        let list = if v6 {
            &mut self.detect_v6
        } else {
            &mut self.detect_v4
        };
        if !list.contains(&url) {
            list.push(url);
        }
    }

    /// One host per record: an A and an AAAA entry for the same name, login, password and
    /// server (inadyn's `default@` and `ipv6@` pair, ddns-scripts' `_ipv4`/`_ipv6` services)
    /// become one host with both records; a record seen twice is left out the second time.
    pub fn merge_hosts(&mut self) {
        let mut out: Vec<Host> = Vec::new();
        for h in std::mem::take(&mut self.hosts) {
            let same_name = |o: &Host| o.hostname.eq_ignore_ascii_case(&h.hostname);
            let overlap =
                |a: FamilySet, b: FamilySet| a.families().iter().any(|f| b.families().contains(f));
            if let Some(o) = out
                .iter()
                .find(|o| same_name(o) && overlap(o.family, h.family))
            {
                let at = o.at.clone();
                self.note(
                    &h.at,
                    NoteKind::LeftOut,
                    format!(
                        "{}: this record is already imported from line {}",
                        h.hostname, at.line
                    ),
                );
                continue;
            }
            if let Some(o) = out.iter_mut().find(|o| {
                same_name(o)
                    && o.login == h.login
                    && o.password == h.password
                    && o.provider == h.provider
                    && o.server == h.server
                    && o.enabled == h.enabled
            }) {
                let (v4, v6) = if o.family == FamilySet::V4 {
                    (o.interface.clone(), h.interface.clone())
                } else {
                    (h.interface.clone(), o.interface.clone())
                };
                o.family = FamilySet::Both;
                o.interface = v4.clone().or(v6.clone());
                o.interface6 = if v6 != o.interface { v6 } else { None };
                o.was = format!("{}; {} (line {})", o.was, h.was, h.at.line);
                continue;
            }
            out.push(h);
        }
        self.hosts = out;
    }

    /// The interface `[wan]` follows: the first one a host names. Hosts that name another get
    /// their own `interface`.
    pub fn wan_interface(&self) -> Option<&str> {
        self.hosts.iter().find_map(|h| h.interface.as_deref())
    }
}

/// `key`'s value when it is a yes/true/1 or no/false/0 word.
pub fn truth(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A host name as OVH's DynHost endpoints spell it (`www.ovh.com`, `dns.eu.ovhapis.com`, the
/// CA and US sites), from a bare name, `name:port` or a URL.
pub fn is_ovh_server(server: &str) -> bool {
    let host = host_of(server).to_ascii_lowercase();
    let host = host.trim_end_matches('.');
    [
        "ovh.com",
        "ovh.net",
        "ovh.ca",
        "ovhapis.com",
        "ovhcloud.com",
    ]
    .iter()
    .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// The host part of `s`: a bare name, `name:port`, `name/path` or a URL with credentials.
pub fn host_of(s: &str) -> &str {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, r)| r);
    let s = s.split(['/', '?']).next().unwrap_or("");
    let s = s.rsplit_once('@').map_or(s, |(_, r)| r);
    if let Some(r) = s.strip_prefix('[') {
        return r.split(']').next().unwrap_or("");
    }
    s.split(':').next().unwrap_or("")
}

/// A dyndns2 update URL from a server (`name`, `name:port` or a URL) and a path: https unless
/// the server itself says http to a loopback address (dynhostd never sends a password in
/// clear elsewhere).
pub fn update_url(server: &str, path: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    let (scheme, rest) = match s.split_once("://") {
        Some((sch, r)) => (sch.to_ascii_lowercase(), r),
        None => ("https".to_string(), s),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split(['/', '?']).next().unwrap_or("");
    let loopback = matches!(host_of(hostport), "127.0.0.1" | "::1" | "localhost");
    let scheme = if scheme == "http" && loopback {
        "http"
    } else {
        "https"
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    let path = if path.is_empty() { "/nic/update" } else { path };
    let slash = if path.starts_with('/') { "" } else { "/" };
    format!("{scheme}://{hostport}{slash}{path}")
}

/// Plain seconds (inadyn, ddclient without a unit) or `N<unit>` as a dynhostd duration.
pub fn seconds_or_duration(v: &str) -> Option<String> {
    let v = v.trim().to_ascii_lowercase();
    let d = if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() {
        format!("{v}s")
    } else {
        v
    };
    crate::duration::parse_duration(&d).ok()?;
    Some(d)
}

/// Where each host's password goes when written.
pub struct Placement {
    pub config_dir: PathBuf,
    /// `Some(store)`: systemd credentials in this directory, named after the host.
    pub credstore: Option<PathBuf>,
}

impl Placement {
    /// The file or credential of `h`'s password (None for `password_env`); `taken` holds the
    /// names already given, so that two entries for one name never share a file.
    pub fn place(&self, h: &Host, taken: &mut Vec<String>) -> Option<PasswordPlace> {
        if matches!(h.password, Password::Env(_)) {
            return None;
        }
        let base = h.hostname.to_ascii_lowercase();
        let mut name = base.clone();
        let mut n = 1;
        while taken.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        taken.push(name.clone());
        Some(match &self.credstore {
            Some(store) => PasswordPlace::Credential {
                path: store.join(&name),
                name,
            },
            None => {
                let file = format!("dynhost-{name}.password");
                PasswordPlace::File {
                    path: self.config_dir.join(&file),
                    in_config: file,
                }
            }
        })
    }
}

/// The TOML of the global sections an import sets (`[wan]`, `[detect]`, `[update]`), each
/// with the tables an existing config already has left out (`skip`).
pub fn render_sections(imp: &Import, skip: &dyn Fn(&str) -> bool) -> (String, Vec<&'static str>) {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let list = |v: &[String]| v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ");
    let mut out = String::new();
    let mut skipped = Vec::new();
    let mut section = |name: &'static str, body: String| {
        if body.is_empty() {
            return;
        }
        if skip(name) {
            skipped.push(name);
            return;
        }
        out += &format!("[{name}]\n{body}\n");
    };
    section(
        "wan",
        imp.wan_interface()
            .map(|i| format!("interface = {}\n", q(i)))
            .unwrap_or_default(),
    );
    let mut detect = String::new();
    if !imp.detect_v4.is_empty() {
        detect += &format!("ipv4 = [{}]\n", list(&imp.detect_v4));
    }
    if !imp.detect_v6.is_empty() {
        detect += &format!("ipv6 = [{}]\n", list(&imp.detect_v6));
    }
    section("detect", detect);
    let mut update = String::new();
    if let Some(r) = &imp.refresh {
        update += &format!("refresh = {}\n", q(r));
    }
    if let Some(m) = &imp.min_interval {
        update += &format!("min_interval = {}\n", q(m));
    }
    section("update", update);
    (out, skipped)
}

/// The `[[host]]` entries, each with the place its password goes (`places[i]` for
/// `hosts[i]`). `wan`: the `[wan] interface` the config will have; a host that follows
/// another interface names it.
pub fn render_hosts(imp: &Import, places: &[Option<PasswordPlace>], wan: Option<&str>) -> String {
    let mut out = String::new();
    for (h, place) in imp.hosts.iter().zip(places) {
        let comment = format!("From {}: {}.", h.at, h.was);
        let env = match &h.password {
            Password::Env(v) => Some(v.as_str()),
            Password::Value(_) => None,
        };
        let interface = h.interface.as_deref().filter(|i| Some(*i) != wan);
        let entry = HostEntry {
            comment: &comment,
            hostname: &h.hostname,
            login: &h.login,
            password: place.as_ref(),
            password_env: env,
            family: h.family,
            provider: (h.provider == Provider::Dyndns2).then_some("dyndns2"),
            server: h.server.as_deref(),
            interface,
            interface6: h.interface6.as_deref(),
            enabled: h.enabled,
        };
        out += &entry.render();
        out.push('\n');
    }
    out
}

/// Reads `format` from `text` (named `file` in messages). `read` fetches an inadyn
/// `include()`d file, bounded like the first one.
pub fn parse(
    format: Format,
    text: &str,
    file: &str,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Import, ParseError> {
    check_text(text, file)?;
    let mut imp = match format {
        Format::Ddclient => ddclient::parse(text, file)?,
        Format::Inadyn => inadyn::parse(text, file, read)?,
        Format::DdnsScripts => uci::parse(text, file, resolve)?,
    };
    imp.merge_hosts();
    Ok(imp)
}

/// Text files only: a NUL or other control byte means binary data, not a config to guess at.
pub fn check_text(text: &str, file: &str) -> Result<(), ParseError> {
    for (i, line) in text.split('\n').enumerate() {
        if line
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\x0c'))
        {
            return Err(ParseError {
                at: Loc {
                    file: file.to_string(),
                    line: i + 1,
                },
                message: "binary data (control characters), not a configuration file".into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_from_their_content() {
        assert_eq!(
            Format::recognise("# x\nprotocol=ovh,\nlogin=a\nh.example.com\n"),
            Some(Format::Ddclient)
        );
        assert_eq!(
            Format::recognise("period = 300\nprovider default@ovh.com {\n}\n"),
            Some(Format::Inadyn)
        );
        assert_eq!(
            Format::recognise("package ddns\n\nconfig service 'x'\n\toption a 'b'\n"),
            Some(Format::DdnsScripts)
        );
        assert_eq!(
            Format::recognise("config ddns \"global\"\n\toption x y\n"),
            Some(Format::DdnsScripts)
        );
        assert_eq!(Format::recognise("# nothing\n\n"), None);
        assert_eq!(Format::recognise("hello world\n"), None);
    }

    #[test]
    fn ovh_servers_and_update_urls() {
        for s in [
            "www.ovh.com",
            "https://www.ovh.com/nic/update",
            "dns.eu.ovhapis.com:443",
            "WWW.OVH.COM.",
            "https://u:p@dns.eu.ovhapis.com/nic/update?system=dyndns",
        ] {
            assert!(is_ovh_server(s), "{s}");
        }
        for s in ["members.dyndns.org", "notovh.com", "ovh.com.evil.example"] {
            assert!(!is_ovh_server(s), "{s}");
        }
        assert_eq!(
            update_url("members.dyndns.org", ""),
            "https://members.dyndns.org/nic/update"
        );
        assert_eq!(
            update_url(
                "http://[USERNAME]:[PASSWORD]@your.provider.net",
                "/nic/update?x=1"
            ),
            "https://your.provider.net/nic/update"
        );
        assert_eq!(
            update_url("http://127.0.0.1:8080", "nic/update"),
            "http://127.0.0.1:8080/nic/update"
        );
        assert_eq!(seconds_or_duration("300").as_deref(), Some("300s"));
        assert_eq!(seconds_or_duration("25d").as_deref(), Some("25d"));
        assert_eq!(seconds_or_duration("soon"), None);
    }

    #[test]
    fn a_parse_error_never_quotes_a_piece_of_a_password() {
        let no = |_: &Path| -> Result<String, String> { Err("none".into()) };
        let mut read = no;
        let mut resolve = |_: &str| -> Result<String, String> { Err("none".into()) };
        for (format, text) in [
            (
                Format::Ddclient,
                "login=a, password=half s3cr\"et h.example.com\n",
            ),
            (
                Format::Inadyn,
                "provider default@ovh.com {\n password = half s3cr\"et\n}\n",
            ),
            (Format::Inadyn, "password = half s3cret\n"),
            (
                Format::DdnsScripts,
                "config service x\n option password half\n s3cret\n",
            ),
        ] {
            let e = parse(format, text, "f", &mut read, &mut resolve).unwrap_err();
            assert!(!e.to_string().contains("s3cr"), "{format:?}: {e}");
        }
    }

    #[test]
    fn binary_input_is_refused_with_its_line() {
        let e = check_text("a=b\nc\0d\n", "f").unwrap_err();
        assert_eq!(e.at.line, 2);
        assert!(e.message.contains("binary"), "{e}");
    }
}
