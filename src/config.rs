//! The configuration file, in two layers (ripgrep's lowargs → hiargs): a serde [`RawConfig`]
//! that mirrors the TOML and rejects unknown keys, then [`validate`] into a [`Config`] whose types
//! cannot hold a bad value (durations, prefixes, URLs, resolved passwords). Every error names the
//! key and the line. Parsing works from `&str`, so tests need no files.
//!
//! This file holds the validated types, the error, and [`load`]/[`parse`]; the rest is one job
//! per child, dependencies pointing one way (validate → ovh_api → fields, secrets; raw → ovh_api):
//! - [`raw`]: the file's shape, as serde reads it.
//! - [`validate`]: the raw layer into the validated types.
//! - [`render`]: the validated config back to TOML, passwords redacted (`check --print`).
//! - [`fields`]: checks of single values that several sections share (CA file, names, URLs).
//! - [`secrets`]: where a secret comes from, and reading it.
//! - [`notify`]: the `[[notify]]` and `[health]` sections (their URLs are secrets).
//! - [`ovh_api`]: the `[ovh_api]` section, for the `dynhostd ovh` commands.
//! - [`write`]: the config-file writers (`ovh provision --write-config`, `import`).

mod fields;
mod notify;
pub mod ovh_api;
mod raw;
mod render;
mod secrets;
mod validate;
pub mod write;

// The `ovh` commands (src/ovh/api.rs, src/ovh/provision/names.rs) check names and URLs the same way.
#[cfg(feature = "ovh-api")]
pub(crate) use fields::{is_loopback_host, validate_hostname};
pub use raw::{
    RawConfig, RawDetect, RawHook, RawHost, RawHttp, RawState, RawUpdate, RawVerify, RawWan,
};
pub use secrets::{SecretForm, SecretSource};
use validate::validate;

use crate::decide::DetectMode;
use crate::duration::{format_duration, parse_duration};
use crate::provider::Provider;
use crate::record::{Family, RecordKey};
use crate::secret::Secret;
use crate::wan::policy::{AddressPolicy, AddressSource, HostPart, Mac, Prefix, Uplinks};
use reqwest::Url;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Where the config lives unless `--config` or `DYNHOSTD_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/dynhostd/config.toml";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dynhostd";
/// Long enough to swallow a PPPoE redial (LCP down, IPCP up) on a typical link.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(2);
/// How long a higher-priority uplink must stay usable before a failover list comes back to it.
pub const DEFAULT_FAILBACK: Duration = Duration::from_secs(60);

/// Longest `http.timeout`, `http.connect_timeout` and `detect.timeout`: OVH answers in well under
/// a second, and a server silent for minutes is down. While a request hangs its record can be
/// neither retried nor sent a newer address, so a timeout of days would freeze it.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest `verify.timeout`, per DNS question: resolvers themselves give up after about 30 s.
pub const MAX_DNS_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest `hook.timeout`: a hook holds one of the few places hooks run in, and the record's
/// next event waits for it; lasting work belongs to the service manager.
pub const MAX_HOOK_TIMEOUT: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// Validated layer.

/// Which records a `[[host]]` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FamilySet {
    V4,
    V6,
    Both,
}

impl FamilySet {
    pub fn families(self) -> &'static [Family] {
        match self {
            FamilySet::V4 => &[Family::V4],
            FamilySet::V6 => &[Family::V6],
            FamilySet::Both => &[Family::V4, Family::V6],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FamilySet::V4 => "ipv4",
            FamilySet::V6 => "ipv6",
            FamilySet::Both => "both",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WanConfig {
    /// None: follow the interface of the default route (or of `uplinks`).
    pub interface: Option<String>,
    /// `interface` as a list: follow the first usable of these, with failover.
    pub uplinks: Option<Uplinks>,
    /// `failback`, for the `[wan]` list and the hosts' lists that set none.
    pub failback: Duration,
    pub failover_requires_route: bool,
    pub debounce: Duration,
    pub policy: AddressPolicy,
    /// SO_RCVBUF of the netlink event socket (bytes); None: the kernel's default.
    pub netlink_buffer: Option<usize>,
}

/// `[verify]`: checking what the zone's authoritative name servers really hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyConfig {
    /// How often a published record is checked; zero: never (not even at start).
    pub interval: Duration,
    /// Ask these directly instead of the zone's NS (split DNS, tests).
    pub nameservers: Vec<std::net::SocketAddr>,
    /// The recursive resolver used to find the NS records; None: /etc/resolv.conf.
    pub resolver: Option<std::net::SocketAddr>,
    pub timeout: Duration,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            interval: Duration::from_secs(6 * 3600),
            nameservers: Vec::new(),
            resolver: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// `[update]`: the provider's rules, beyond what a single reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConfig {
    /// Least time between two successful updates of one record, so a flapping link can't make
    /// us abusive.
    pub min_interval: Duration,
    /// Re-send an unchanged address after this long so a stale record gets corrected; zero: off.
    pub refresh: Duration,
    /// Back-off after server trouble: first wait, and the cap (ovh-dynhost.md: ~1 min, ~30 min).
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            min_interval: Duration::from_secs(30),
            // Dyn's rule of thumb: an unchanged address is re-sent at most monthly; 25 days
            // stays under the 28–30 day expiry some dyndns2 services apply.
            refresh: Duration::from_secs(25 * 86_400),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(30 * 60),
        }
    }
}

impl UpdateConfig {
    /// The decision core's retry timing.
    pub fn backoff(&self) -> crate::decide::Backoff {
        crate::decide::Backoff {
            initial: self.retry_initial,
            max: self.retry_max,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// How many update requests may be in flight at once.
    pub max_concurrent: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_concurrent: 16,
        }
    }
}

/// `[detect]`: HTTP detection of the public address, for gateways behind someone else's NAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectConfig {
    pub mode: DetectMode,
    /// Sources asked over IPv4, in order.
    pub ipv4: Vec<Url>,
    /// Sources asked over IPv6, in order.
    pub ipv6: Vec<Url>,
    /// Re-check period, only while some record depends on HTTP detection.
    pub interval: Duration,
    /// Per source request.
    pub timeout: Duration,
}

/// Built-in what's-my-IP sources: plain-text answers, HTTPS, run by different operators so
/// that two agreeing means something. Each name answers over one family only.
pub const DEFAULT_IPV4_SOURCES: &[&str] = &[
    "https://ipv4.icanhazip.com/",
    "https://api.ipify.org/",
    "https://ipv4.ident.me/",
];
pub const DEFAULT_IPV6_SOURCES: &[&str] = &[
    "https://ipv6.icanhazip.com/",
    "https://api6.ipify.org/",
    "https://ipv6.ident.me/",
];

impl Default for DetectConfig {
    fn default() -> Self {
        let urls = |v: &[&str]| {
            v.iter()
                .map(|u| Url::parse(u).expect("built-in URL"))
                .collect()
        };
        DetectConfig {
            mode: DetectMode::Auto,
            ipv4: urls(DEFAULT_IPV4_SOURCES),
            ipv6: urls(DEFAULT_IPV6_SOURCES),
            // Dyn's client rules: don't poll a what's-my-IP service more often than every few
            // minutes (ovh-dynhost.md).
            interval: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
        }
    }
}

impl DetectConfig {
    pub fn sources(&self, family: Family) -> &[Url] {
        match family {
            Family::V4 => &self.ipv4,
            Family::V6 => &self.ipv6,
        }
    }
}

/// One `[[host]]`: a DynHost login and the record(s) it keeps current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: String,
    pub login: String,
    pub password: Secret,
    pub family: FamilySet,
    pub provider: Provider,
    pub server: Url,
    pub ca_file: Option<PathBuf>,
    /// Program run after each update attempt (this host's `exec`, else `[hook] exec`).
    pub exec: Option<PathBuf>,
    pub enabled: bool,
    /// Line of the `[[host]]` entry, for messages.
    pub line: usize,
    /// Where the A record's address comes from (`interface`, else `[wan]`).
    pub source_v4: AddressSource,
    /// Where the AAAA record's address comes from (`ipv6_prefix_from`, `interface6`,
    /// `interface`, else `[wan]`).
    pub source_v6: AddressSource,
}

impl HostConfig {
    /// Where the record of `family` takes its address from.
    pub fn source(&self, family: Family) -> &AddressSource {
        match family {
            Family::V4 => &self.source_v4,
            Family::V6 => &self.source_v6,
        }
    }

    pub fn records(&self) -> impl Iterator<Item = RecordKey> + '_ {
        self.family
            .families()
            .iter()
            .map(|f| RecordKey::new(self.hostname.clone(), *f))
    }

    /// Changes whenever anything that could fix a stopped host changes (login, password,
    /// server, …). Kept in the state file so that a host stopped for bad credentials stays
    /// stopped across restarts until its entry is edited. A SHA-256 of a canonical rendering,
    /// so it is the same on every build and toolchain (a std hasher is not: an upgrade would
    /// lift every stop); truncated to 32 bits: enough to notice an edit, too little to say much
    /// about the password it covers. The `v2-` prefix sets it apart from the old format, which
    /// therefore counts as "changed" exactly once.
    pub fn fingerprint(&self) -> String {
        let ca = self.ca_file.as_deref().map(|p| p.to_string_lossy());
        let fields = [
            self.hostname.as_str(),
            self.login.as_str(),
            self.password.expose(),
            self.family.name(),
            match self.provider {
                Provider::Ovh => "ovh",
                Provider::Dyndns2 => "dyndns2",
            },
            self.server.as_str(),
            ca.as_deref().unwrap_or(""),
        ];
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for f in fields {
            // Length-prefixed, so no two different entries render alike.
            ctx.update(&(f.len() as u64).to_be_bytes());
            ctx.update(f.as_bytes());
        }
        let d = ctx.finish();
        let b = d.as_ref();
        format!("v2-{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub wan: WanConfig,
    pub state_dir: PathBuf,
    /// `[state] control`: the agent's control socket, instead of `crate::control::socket_path`'s default.
    pub control_socket: Option<PathBuf>,
    pub http: HttpConfig,
    pub detect: DetectConfig,
    pub update: UpdateConfig,
    pub verify: VerifyConfig,
    /// How long a hook may run before it is killed.
    pub hook_timeout: Duration,
    pub hosts: Vec<HostConfig>,
    /// Some `[[host]]` has its password in this file, or a `[[notify]]`/`[health]` its URL (the
    /// file must then be private).
    pub inline_passwords: bool,
    /// `[ovh_api]`, for the `ovh` commands; the agent never uses it.
    pub ovh_api: Option<ovh_api::OvhApiConfig>,
    /// `[[notify]]` targets (one per Telegram chat).
    pub notify: Vec<crate::notify::NotifyConfig>,
    /// `[health]`: pings for an uptime monitor.
    pub health: Option<crate::notify::health::HealthConfig>,
}

impl Config {
    pub fn state_file(&self) -> PathBuf {
        self.state_dir.join(crate::state::FILE_NAME)
    }

    /// `run` and `update` need something to keep current: a config with only `[ovh_api]` is
    /// valid for the `ovh` commands, not for them.
    pub fn require_host(&self) -> Result<(), ConfigError> {
        if self.hosts.is_empty() {
            return Err(ConfigError {
                file: None,
                line: None,
                key: "host".into(),
                message: "no [[host]] entry yet: add one, or let `dynhostd ovh provision HOSTNAME --write-config` add it".into(),
            });
        }
        Ok(())
    }

    pub fn enabled_hosts(&self) -> impl Iterator<Item = &HostConfig> {
        self.hosts.iter().filter(|h| h.enabled)
    }
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// A configuration problem, located: `config.toml:12: host[1].server: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}:", file.display())?;
        }
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

pub(crate) struct Ctx<'a> {
    text: &'a str,
    file: Option<&'a Path>,
    /// Where each line ends, found once: a host's password names its line, and counting from
    /// the top for each of 1000 hosts was most of the start-up time (BENCHMARKS.md).
    newlines: std::cell::OnceCell<Vec<usize>>,
}

impl Ctx<'_> {
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        let newlines = self.newlines.get_or_init(|| {
            let bytes = self.text.as_bytes();
            (0..bytes.len()).filter(|i| bytes[*i] == b'\n').collect()
        });
        newlines.partition_point(|at| *at < offset) + 1
    }

    pub(crate) fn err_at(
        &self,
        offset: Option<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.map(Path::to_path_buf),
            line: offset.map(|o| self.line_of(o)),
            key: key.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn err<T>(
        &self,
        v: &Spanned<T>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        self.err_at(Some(v.span().start), key, message)
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    // Bounded: a config pointed at a FIFO or /dev/zero is refused, never read (SIGHUP reads it
    // on the agent's one thread).
    let text = crate::fsread::read_to_string(path, crate::fsread::CONFIG_CAP).map_err(|e| {
        ConfigError {
            file: Some(path.to_path_buf()),
            line: None,
            key: String::new(),
            message: format!("cannot read the configuration: {}", e.problem),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let config = parse(&text, Some(path), base)?;
    if config.inline_passwords {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} holds a password or a notification URL's token and is readable by group or others (mode {:o}): chmod 600 it, or use password_file / url_file / *_credential",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    Ok(config)
}

/// `[wan] accept` from the config file, every other key left unread: what `update --ip` needs to
/// judge an address before anything else is asked (no secret is read, no agent contacted). An
/// unreadable file or a bad prefix counts as no prefix: the full load reports those, naming the
/// key and the line.
pub fn read_wan_accept(path: &Path) -> Vec<Prefix> {
    #[derive(Deserialize, Default)]
    struct File {
        #[serde(default)]
        wan: Wan,
    }
    #[derive(Deserialize, Default)]
    struct Wan {
        #[serde(default)]
        accept: Vec<String>,
    }
    let Ok(text) = crate::fsread::read_to_string(path, crate::fsread::CONFIG_CAP) else {
        return Vec::new();
    };
    let file: File = toml::from_str(&text).unwrap_or_default();
    file.wan
        .accept
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Parses and validates `text`. Relative `password_file` and `ca_file` paths are taken from
/// `base` (the config file's directory).
pub fn parse(text: &str, file: Option<&Path>, base: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx {
        text,
        file,
        newlines: std::cell::OnceCell::new(),
    };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        ctx.err_at(
            e.span().map(|s| s.start),
            "",
            e.message().trim_end().to_string(),
        )
    })?;
    validate(raw, &ctx, base)
}

#[cfg(test)]
mod tests;
