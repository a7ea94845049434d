//! The configuration file, in two layers (ripgrep's lowargs → hiargs): a serde [`RawConfig`]
//! that mirrors the TOML and rejects unknown keys, then [`validate`] into a [`Config`] whose types
//! cannot hold a bad value (durations, prefixes, URLs, resolved passwords). Every error names the
//! key and the line. Parsing works from `&str`, so tests need no files.
//!
//! - [`ovh_api`]: the `[ovh_api]` section, for the `dynhostd ovh` commands.

pub mod ovh_api;
pub mod write;

use crate::decide::DetectMode;
use crate::duration::{format_duration, parse_duration};
use crate::provider::Provider;
use crate::record::{Family, RecordKey};
use crate::secret::Secret;
use crate::wan::policy::{AddressPolicy, AddressSource, HostPart, Mac, Prefix};
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
// Raw layer: exactly the file's shape.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub wan: RawWan,
    #[serde(default)]
    pub state: RawState,
    #[serde(default)]
    pub http: RawHttp,
    #[serde(default)]
    pub detect: RawDetect,
    #[serde(default)]
    pub update: RawUpdate,
    #[serde(default)]
    pub verify: RawVerify,
    #[serde(default)]
    pub hook: RawHook,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Spanned<RawHost>>,
    /// For the `ovh` commands only (src/config/ovh_api.rs).
    pub ovh_api: Option<Spanned<ovh_api::RawOvhApi>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWan {
    pub interface: Option<Spanned<String>>,
    pub debounce: Option<Spanned<String>>,
    pub accept: Option<Vec<Spanned<String>>>,
    pub ignore: Option<Vec<Spanned<String>>>,
    pub netlink_buffer: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<Spanned<String>>,
    pub control: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub timeout: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub exec: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub interval: Option<Spanned<String>>,
    pub nameservers: Option<Vec<Spanned<String>>>,
    pub resolver: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    pub min_interval: Option<Spanned<String>>,
    pub refresh: Option<Spanned<String>>,
    pub retry_initial: Option<Spanned<String>>,
    pub retry_max: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDetect {
    pub mode: Option<Spanned<String>>,
    pub ipv4: Option<Vec<Spanned<String>>>,
    pub ipv6: Option<Vec<Spanned<String>>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub hostname: Option<Spanned<String>>,
    pub login: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub password_credential: Option<Spanned<String>>,
    pub family: Option<Spanned<String>>,
    pub provider: Option<Spanned<String>>,
    pub server: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub exec: Option<Spanned<String>>,
    pub enabled: Option<Spanned<bool>>,
    pub interface: Option<Spanned<String>>,
    pub interface6: Option<Spanned<String>>,
    pub ipv6_prefix_from: Option<Spanned<String>>,
    pub ipv6_suffix: Option<Spanned<String>>,
    pub ipv6_eui64: Option<Spanned<String>>,
    pub ipv6_neighbour: Option<Spanned<String>>,
}

impl RawHost {
    fn inline_password(&self) -> bool {
        self.password.is_some()
    }
}

impl fmt::Debug for RawHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawHost")
            .field("hostname", &self.hostname.as_ref().map(|s| s.get_ref()))
            .field("login", &self.login.as_ref().map(|s| s.get_ref()))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_file", &self.password_file)
            .finish_non_exhaustive()
    }
}

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
    /// None: follow the interface of the default route.
    pub interface: Option<String>,
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
    /// Some `[[host]]` has its password in this file (the file must then be private).
    pub inline_passwords: bool,
    /// `[ovh_api]`, for the `ovh` commands; the agent never uses it.
    pub ovh_api: Option<ovh_api::OvhApiConfig>,
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

    /// The effective configuration as TOML, passwords replaced by `<redacted>`.
    pub fn render_redacted(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |v: &[Prefix]| {
            v.iter()
                .map(|p| q(&p.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        out += "[wan]\n";
        match &self.wan.interface {
            Some(i) => out += &format!("interface = {}\n", q(i)),
            None => out += "# interface: not set, following the default route\n",
        }
        out += &format!("debounce = {}\n", q(&format_duration(self.wan.debounce)));
        out += &format!("accept = [{}]\n", list(&self.wan.policy.accept));
        out += &format!("ignore = [{}]\n", list(&self.wan.policy.ignore));
        if let Some(b) = self.wan.netlink_buffer {
            out += &format!("netlink_buffer = {b}\n");
        }
        out += &format!(
            "\n[state]\ndir = {}\n",
            q(&self.state_dir.display().to_string())
        );
        if let Some(c) = &self.control_socket {
            out += &format!("control = {}\n", q(&c.display().to_string()));
        }
        out += &format!(
            "\n[http]\ntimeout = {}\nconnect_timeout = {}\nmax_concurrent = {}\n",
            q(&format_duration(self.http.timeout)),
            q(&format_duration(self.http.connect_timeout)),
            self.http.max_concurrent
        );
        let urls = |v: &[Url]| {
            v.iter()
                .map(|u| q(u.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "\n[detect]\nmode = {}\nipv4 = [{}]\nipv6 = [{}]\ninterval = {}\ntimeout = {}\n",
            q(self.detect.mode.name()),
            urls(&self.detect.ipv4),
            urls(&self.detect.ipv6),
            q(&format_duration(self.detect.interval)),
            q(&format_duration(self.detect.timeout)),
        );
        out += &format!(
            "\n[update]\nmin_interval = {}\nrefresh = {}\nretry_initial = {}\nretry_max = {}\n",
            q(&format_duration(self.update.min_interval)),
            q(&format_duration(self.update.refresh)),
            q(&format_duration(self.update.retry_initial)),
            q(&format_duration(self.update.retry_max)),
        );
        let servers = |v: &[std::net::SocketAddr]| {
            v.iter()
                .map(|s| q(&s.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "\n[verify]\ninterval = {}\nnameservers = [{}]\n{}timeout = {}\n",
            q(&format_duration(self.verify.interval)),
            servers(&self.verify.nameservers),
            self.verify.resolver.map_or(String::new(), |r| format!(
                "resolver = {}\n",
                q(&r.to_string())
            )),
            q(&format_duration(self.verify.timeout)),
        );
        out += &format!(
            "\n[hook]\ntimeout = {}\n",
            q(&format_duration(self.hook_timeout))
        );
        for h in &self.hosts {
            out += &format!(
                "\n[[host]]\nhostname = {}\nlogin = {}\npassword = \"<redacted>\"\nfamily = {}\nprovider = {}\nserver = {}\n",
                q(&h.hostname),
                q(&h.login),
                q(h.family.name()),
                q(match h.provider {
                    Provider::Ovh => "ovh",
                    Provider::Dyndns2 => "dyndns2",
                }),
                q(h.server.as_str()),
            );
            if let Some(ca) = &h.ca_file {
                out += &format!("ca_file = {}\n", q(&ca.display().to_string()));
            }
            if let Some(exec) = &h.exec {
                out += &format!("exec = {}\n", q(&exec.display().to_string()));
            }
            out += &render_sources(h, q);
            out += &format!("enabled = {}\n", h.enabled);
        }
        if let Some(api) = &self.ovh_api {
            out += &api.render_redacted();
        }
        out
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
                "{} holds a password and is readable by group or others (mode {:o}): chmod 600 it, or use password_file / password_credential",
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

fn validate(raw: RawConfig, ctx: &Ctx<'_>, base: &Path) -> Result<Config, ConfigError> {
    let wan = validate_wan(raw.wan, ctx)?;
    let state_dir = match raw.state.dir {
        Some(d) if d.get_ref().trim().is_empty() => {
            return Err(ctx.err(&d, "state.dir", "must not be empty"));
        }
        Some(d) => PathBuf::from(d.into_inner()),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };
    let control_socket = match raw.state.control {
        Some(c) if !Path::new(c.get_ref()).is_absolute() => {
            return Err(ctx.err(&c, "state.control", "must be an absolute path"));
        }
        Some(c) => Some(PathBuf::from(c.into_inner())),
        None => None,
    };
    let http = validate_http(raw.http, ctx)?;
    let detect = validate_detect(raw.detect, ctx)?;
    let update = validate_update(raw.update, ctx)?;
    let verify = validate_verify(raw.verify, ctx)?;
    let global_exec = match &raw.hook.exec {
        Some(e) => Some(validate_exec(e, "hook.exec", ctx, base)?),
        None => None,
    };
    let hook_timeout = match &raw.hook.timeout {
        Some(t) => {
            let d = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "hook.timeout", m))?;
            if d.is_zero() {
                return Err(ctx.err(t, "hook.timeout", "must be more than 0"));
            }
            at_most(d, MAX_HOOK_TIMEOUT, t, "hook.timeout", ctx)?
        }
        None => Duration::from_secs(30),
    };
    let ovh_api = match raw.ovh_api {
        Some(o) => Some(ovh_api::validate(o, ctx, base)?),
        None => None,
    };
    // With [ovh_api] and no host yet, the file is the first step on a new router (the `ovh`
    // commands add the hosts); `run` and `update` ask for a host themselves (`require_host`).
    if raw.hosts.is_empty() && ovh_api.is_none() {
        return Err(ctx.err_at(
            None,
            "host",
            "no [[host]] entry: add at least one (hostname, login, password)",
        ));
    }
    let mut hosts = Vec::new();
    let mut seen = BTreeSet::new();
    let inline_passwords = raw.hosts.iter().any(|h| h.get_ref().inline_password());
    // Each host's line is counted on from the previous host's, not from the top: from the
    // top it is quadratic, and with 1000 hosts that was most of the start-up time (BENCHMARKS.md).
    let (mut counted_to, mut line_there) = (0, 1);
    for (i, h) in raw.hosts.into_iter().enumerate() {
        let start = h.span().start;
        let line = if start >= counted_to {
            line_there += ctx.text.as_bytes()[counted_to..start.min(ctx.text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            counted_to = start.min(ctx.text.len());
            line_there
        } else {
            ctx.line_of(start)
        };
        let mut host = validate_host(h.into_inner(), i, line, start, ctx, base)?;
        if host.exec.is_none() {
            host.exec = global_exec.clone();
        }
        for key in host.records() {
            if !seen.insert(key.clone()) {
                return Err(ctx.err_at(
                    Some(start),
                    &format!("host[{i}].hostname"),
                    format!("the {key} record is already kept by an earlier [[host]]"),
                ));
            }
        }
        hosts.push(host);
    }
    Ok(Config {
        wan,
        state_dir,
        control_socket,
        http,
        detect,
        update,
        verify,
        hook_timeout,
        hosts,
        inline_passwords,
        ovh_api,
    })
}

fn validate_wan(raw: RawWan, ctx: &Ctx<'_>) -> Result<WanConfig, ConfigError> {
    let interface = match raw.interface {
        Some(i) => {
            let name = i.get_ref();
            // IFNAMSIZ is 16 including the NUL.
            if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
                return Err(ctx.err(
                    &i,
                    "wan.interface",
                    format!("{name:?} is not a Linux interface name (1 to 15 characters, no '/' or spaces)"),
                ));
            }
            Some(i.into_inner())
        }
        None => None,
    };
    let debounce = match raw.debounce {
        Some(d) => {
            let v = parse_duration(d.get_ref()).map_err(|m| ctx.err(&d, "wan.debounce", m))?;
            if v > Duration::from_secs(600) {
                return Err(ctx.err(&d, "wan.debounce", "at most 10m"));
            }
            v
        }
        None => DEFAULT_DEBOUNCE,
    };
    let prefixes = |list: Option<Vec<Spanned<String>>>, key: &str| {
        list.unwrap_or_default()
            .into_iter()
            .map(|p| {
                p.get_ref()
                    .parse::<Prefix>()
                    .map_err(|m| ctx.err(&p, key, m))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let netlink_buffer = match raw.netlink_buffer {
        None => None,
        Some(b) => {
            let v = *b.get_ref();
            if !(4096..=64 * 1024 * 1024).contains(&v) {
                return Err(ctx.err(&b, "wan.netlink_buffer", "bytes, between 4096 and 67108864"));
            }
            Some(v as usize)
        }
    };
    Ok(WanConfig {
        interface,
        debounce,
        netlink_buffer,
        policy: AddressPolicy {
            accept: prefixes(raw.accept, "wan.accept")?,
            ignore: prefixes(raw.ignore, "wan.ignore")?,
        },
    })
}

fn validate_http(raw: RawHttp, ctx: &Ctx<'_>) -> Result<HttpConfig, ConfigError> {
    let mut http = HttpConfig::default();
    let positive = |v: &Spanned<String>, key: &str| -> Result<Duration, ConfigError> {
        let d = parse_duration(v.get_ref()).map_err(|m| ctx.err(v, key, m))?;
        if d.is_zero() {
            return Err(ctx.err(v, key, "must be more than 0"));
        }
        Ok(d)
    };
    if let Some(t) = &raw.timeout {
        http.timeout = at_most(
            positive(t, "http.timeout")?,
            MAX_HTTP_TIMEOUT,
            t,
            "http.timeout",
            ctx,
        )?;
    }
    if let Some(t) = &raw.connect_timeout {
        http.connect_timeout = at_most(
            positive(t, "http.connect_timeout")?,
            MAX_HTTP_TIMEOUT,
            t,
            "http.connect_timeout",
            ctx,
        )?;
    }
    if let Some(n) = raw.max_concurrent {
        let v = *n.get_ref();
        if !(1..=1024).contains(&v) {
            return Err(ctx.err(&n, "http.max_concurrent", "must be between 1 and 1024"));
        }
        http.max_concurrent = v as usize;
    }
    Ok(http)
}

/// `d`, or an error at `v` when it is longer than `max`.
fn at_most(
    d: Duration,
    max: Duration,
    v: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Duration, ConfigError> {
    if d > max {
        return Err(ctx.err(
            v,
            key,
            format!(
                "{:?} is too long: at most {:?}",
                v.get_ref(),
                format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// Extra trust anchors: a readable, bounded file (relative to the config) holding PEM
/// certificates. Read here so a wrong one fails at start, not at the first update.
pub(crate) fn validate_ca_file(
    c: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<PathBuf, ConfigError> {
    let path = base.join(c.get_ref());
    let text = crate::fsread::read_to_string(&path, crate::fsread::CA_CAP)
        .map_err(|e| ctx.err(c, key, e.to_string()))?;
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(ctx.err(
            c,
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(path)
}

/// A hook program: an absolute path, or one relative to the config file's directory, to an
/// executable file this machine can run. Resolved here, once, to an absolute path: that exact
/// file is what runs (a relative name would be looked up in `$PATH` by exec, finding another
/// file than the one checked). It is run directly, never through a shell.
fn validate_exec(
    v: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let joined = base.join(v.get_ref());
    let path = std::path::absolute(&joined)
        .map_err(|e| ctx.err(v, key, format!("{}: {e}", joined.display())))?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| ctx.err(v, key, format!("{}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if !meta.is_file() || mode & 0o111 == 0 {
        return Err(ctx.err(
            v,
            key,
            format!("{} is not an executable file", path.display()),
        ));
    }
    crate::hook::check_program(&path).map_err(|m| ctx.err(v, key, m))?;
    if mode & 0o022 != 0 {
        // Not refused (it runs as the agent's user either way), but whoever can write it can
        // run anything as that user, root on most routers.
        tracing::warn!(
            "{}",
            ctx.err(
                v,
                key,
                format!(
                    "{} is writable by group or others (mode {:o}): anyone who can write it runs commands as this agent; chmod go-w it",
                    path.display(),
                    mode & 0o7777
                ),
            )
        );
    }
    Ok(path)
}

fn validate_verify(raw: RawVerify, ctx: &Ctx<'_>) -> Result<VerifyConfig, ConfigError> {
    let mut v = VerifyConfig::default();
    if let Some(i) = &raw.interval {
        v.interval = parse_duration(i.get_ref()).map_err(|m| ctx.err(i, "verify.interval", m))?;
        if !v.interval.is_zero() && v.interval < Duration::from_secs(60) {
            return Err(ctx.err(
                i,
                "verify.interval",
                "at least 1m (or \"0\" to turn verification off)",
            ));
        }
    }
    let server = |s: &Spanned<String>, key: &str| {
        crate::dns::parse_server(s.get_ref()).ok_or_else(|| {
            ctx.err(
                s,
                key,
                format!("{:?}: an IP address, optionally with :port", s.get_ref()),
            )
        })
    };
    for s in raw.nameservers.unwrap_or_default() {
        v.nameservers.push(server(&s, "verify.nameservers")?);
    }
    if let Some(r) = &raw.resolver {
        v.resolver = Some(server(r, "verify.resolver")?);
    }
    if let Some(t) = &raw.timeout {
        v.timeout = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "verify.timeout", m))?;
        if v.timeout.is_zero() {
            return Err(ctx.err(t, "verify.timeout", "must be more than 0"));
        }
        at_most(v.timeout, MAX_DNS_TIMEOUT, t, "verify.timeout", ctx)?;
    }
    Ok(v)
}

fn validate_update(raw: RawUpdate, ctx: &Ctx<'_>) -> Result<UpdateConfig, ConfigError> {
    let mut u = UpdateConfig::default();
    let dur = |v: &Spanned<String>, key: &str| {
        parse_duration(v.get_ref()).map_err(|m| ctx.err(v, key, m))
    };
    if let Some(v) = &raw.min_interval {
        u.min_interval = dur(v, "update.min_interval")?;
    }
    if let Some(v) = &raw.refresh {
        u.refresh = dur(v, "update.refresh")?;
        if !u.refresh.is_zero() && u.refresh < Duration::from_secs(3600) {
            return Err(ctx.err(v, "update.refresh", "at least 1h (or \"0\" to turn it off): refreshing more often is what gets clients blocked"));
        }
    }
    if let Some(v) = &raw.retry_initial {
        u.retry_initial = dur(v, "update.retry_initial")?;
        if u.retry_initial < Duration::from_secs(1) {
            return Err(ctx.err(v, "update.retry_initial", "at least 1s"));
        }
    }
    if let Some(v) = &raw.retry_max {
        u.retry_max = dur(v, "update.retry_max")?;
    }
    // Checked once both are known: a retry_initial above the default retry_max is as wrong as
    // a retry_max below the default retry_initial.
    if u.retry_max < u.retry_initial {
        let (at, key) = match (&raw.retry_max, &raw.retry_initial) {
            (Some(v), _) => (v, "update.retry_max"),
            (None, Some(v)) => (v, "update.retry_initial"),
            (None, None) => unreachable!("the defaults are in order"),
        };
        return Err(ctx.err(
            at,
            key,
            format!(
                "retry_initial ({}) is more than retry_max ({}{}): the back-off starts at the first and stops growing at the second",
                format_duration(u.retry_initial),
                format_duration(u.retry_max),
                if raw.retry_max.is_none() { ", the default" } else { "" },
            ),
        ));
    }
    Ok(u)
}

fn validate_detect(raw: RawDetect, ctx: &Ctx<'_>) -> Result<DetectConfig, ConfigError> {
    let mut d = DetectConfig::default();
    if let Some(m) = &raw.mode {
        d.mode = match m.get_ref().as_str() {
            "auto" => DetectMode::Auto,
            "always" => DetectMode::Always,
            "never" => DetectMode::Never,
            other => {
                return Err(ctx.err(
                    m,
                    "detect.mode",
                    format!("{other:?}: use \"auto\", \"always\" or \"never\""),
                ));
            }
        };
    }
    let sources = |list: Vec<Spanned<String>>, key: &str, family: Family| {
        list.into_iter()
            .map(|u| {
                let url = Url::parse(u.get_ref()).map_err(|e| {
                    ctx.err(&u, key, format!("{:?} is not a URL: {e}", u.get_ref()))
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || url.port() == Some(0)
                {
                    return Err(ctx.err(
                        &u,
                        key,
                        format!("{:?}: an http(s) URL is needed", u.get_ref()),
                    ));
                }
                // A literal address of the other family could only answer the other question.
                let literal = url.host_str().and_then(|h| {
                    h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .ok()
                });
                if let Some(ip) = literal
                    && Family::of(&ip) != family
                {
                    return Err(ctx.err(&u, key, format!("{ip} cannot answer over {family}")));
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    if let Some(v) = raw.ipv4 {
        d.ipv4 = sources(v, "detect.ipv4", Family::V4)?;
    }
    if let Some(v) = raw.ipv6 {
        d.ipv6 = sources(v, "detect.ipv6", Family::V6)?;
    }
    if let Some(i) = &raw.interval {
        let v = parse_duration(i.get_ref()).map_err(|m| ctx.err(i, "detect.interval", m))?;
        // Dyn's rule: not more often than every few minutes; tests and labs may go lower, but
        // never below a second.
        if v < Duration::from_secs(1) {
            return Err(ctx.err(
                i,
                "detect.interval",
                "at least 1s (a few minutes is polite)",
            ));
        }
        d.interval = v;
    }
    if let Some(t) = &raw.timeout {
        let v = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "detect.timeout", m))?;
        if v.is_zero() {
            return Err(ctx.err(t, "detect.timeout", "must be more than 0"));
        }
        d.timeout = at_most(v, MAX_HTTP_TIMEOUT, t, "detect.timeout", ctx)?;
    }
    Ok(d)
}

fn validate_host(
    raw: RawHost,
    i: usize,
    line: usize,
    start: usize,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<HostConfig, ConfigError> {
    let key = |k: &str| format!("host[{i}].{k}");
    let missing =
        |k: &str, what: &str| ctx.err_at(Some(start), &key(k), format!("missing: {what}"));

    let hostname_raw = raw.hostname.clone().ok_or_else(|| {
        missing(
            "hostname",
            "the DynHost name to keep current, e.g. \"home.example.com\"",
        )
    })?;
    let hostname = validate_hostname(hostname_raw.get_ref())
        .map_err(|m| ctx.err(&hostname_raw, &key("hostname"), m))?;

    let login_raw = raw
        .login
        .clone()
        .ok_or_else(|| missing("login", "the DynHost login, e.g. \"example.com-home\""))?;
    let login = login_raw.get_ref().clone();
    if login.is_empty() || login.contains(':') || login.chars().any(char::is_control) {
        return Err(ctx.err(
            &login_raw,
            &key("login"),
            "must be non-empty, without ':' or control characters (HTTP Basic auth)",
        ));
    }

    let password = resolve_password(&raw, &key, start, ctx, base)?;

    let family = match &raw.family {
        None => FamilySet::V4,
        Some(f) => match f.get_ref().as_str() {
            "ipv4" => FamilySet::V4,
            "ipv6" => FamilySet::V6,
            "both" => FamilySet::Both,
            other => {
                return Err(ctx.err(
                    f,
                    &key("family"),
                    format!("{other:?}: use \"ipv4\", \"ipv6\" or \"both\""),
                ));
            }
        },
    };

    let provider = match &raw.provider {
        None => Provider::Ovh,
        Some(p) => match p.get_ref().as_str() {
            "ovh" => Provider::Ovh,
            "dyndns2" => Provider::Dyndns2,
            other => {
                return Err(ctx.err(
                    p,
                    &key("provider"),
                    format!("{other:?}: use \"ovh\" or \"dyndns2\""),
                ));
            }
        },
    };

    let server = match (&raw.server, provider.default_server()) {
        (Some(s), _) => validate_server(s.get_ref()).map_err(|m| ctx.err(s, &key("server"), m))?,
        (None, Some(default)) => Url::parse(default).expect("built-in URL"),
        (None, None) => {
            return Err(missing(
                "server",
                "a dyndns2 provider needs its update URL, e.g. \"https://dyndns.example.net/nic/update\"",
            ));
        }
    };

    let ca_file = match &raw.ca_file {
        None => None,
        Some(c) => Some(validate_ca_file(c, &key("ca_file"), ctx, base)?),
    };

    let exec = match &raw.exec {
        Some(e) => Some(validate_exec(e, &key("exec"), ctx, base)?),
        None => None,
    };

    let (source_v4, source_v6) = validate_sources(&raw, family, &key, ctx)?;

    Ok(HostConfig {
        hostname,
        login,
        password,
        family,
        provider,
        server,
        ca_file,
        exec,
        enabled: raw.enabled.map(Spanned::into_inner).unwrap_or(true),
        line,
        source_v4,
        source_v6,
    })
}

/// `interface`, `interface6`, `ipv6_prefix_from` and one host part: where each record's address
/// comes from. Nothing set: both follow `[wan]`, as before these keys existed.
fn validate_sources(
    raw: &RawHost,
    family: FamilySet,
    key: &dyn Fn(&str) -> String,
    ctx: &Ctx<'_>,
) -> Result<(AddressSource, AddressSource), ConfigError> {
    let ifname = |v: &Option<Spanned<String>>, k: &str| -> Result<Option<String>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let name = v.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(ctx.err(
                v,
                &key(k),
                format!(
                    "{name:?} is not a Linux interface name (1 to 15 characters, no '/' or spaces)"
                ),
            ));
        }
        Ok(Some(name.clone()))
    };
    let has_v6 = family != FamilySet::V4;
    let v6_only = |v: &Option<Spanned<String>>, k: &str| match v {
        Some(v) if !has_v6 => Err(ctx.err(
            v,
            &key(k),
            "applies to the AAAA record only: set family = \"ipv6\" or \"both\"",
        )),
        _ => Ok(()),
    };
    let interface = ifname(&raw.interface, "interface")?;
    let interface6 = ifname(&raw.interface6, "interface6")?;
    let prefix_from = ifname(&raw.ipv6_prefix_from, "ipv6_prefix_from")?;
    for (v, k) in [
        (&raw.interface6, "interface6"),
        (&raw.ipv6_prefix_from, "ipv6_prefix_from"),
        (&raw.ipv6_suffix, "ipv6_suffix"),
        (&raw.ipv6_eui64, "ipv6_eui64"),
        (&raw.ipv6_neighbour, "ipv6_neighbour"),
    ] {
        v6_only(v, k)?;
    }
    if let (Some(_), Some(p)) = (&raw.interface6, &raw.ipv6_prefix_from) {
        return Err(ctx.err(
            p,
            &key("ipv6_prefix_from"),
            "conflicts with interface6: the AAAA record takes its address from one of them",
        ));
    }
    let mut host_parts = Vec::new();
    if let Some(v) = &raw.ipv6_suffix {
        let suffix: Ipv6Addr = v.get_ref().parse().map_err(|_| {
            ctx.err(
                v,
                &key("ipv6_suffix"),
                format!(
                    "{:?} is not an IPv6 interface identifier (like \"::1:2:3:4\")",
                    v.get_ref()
                ),
            )
        })?;
        if u128::from(suffix) >> 64 != 0 || suffix.is_unspecified() {
            return Err(ctx.err(
                v,
                &key("ipv6_suffix"),
                format!("{suffix} must be a non-zero identifier within the low 64 bits (a prefix longer than /64 cannot take a suffix)"),
            ));
        }
        host_parts.push((v, "ipv6_suffix", HostPart::Suffix(suffix)));
    }
    if let Some(v) = &raw.ipv6_eui64 {
        let mac: Mac = v
            .get_ref()
            .parse()
            .map_err(|m| ctx.err(v, &key("ipv6_eui64"), m))?;
        host_parts.push((v, "ipv6_eui64", HostPart::Eui64(mac)));
    }
    if let Some(v) = &raw.ipv6_neighbour {
        let mac: Mac = v
            .get_ref()
            .parse()
            .map_err(|m| ctx.err(v, &key("ipv6_neighbour"), m))?;
        host_parts.push((v, "ipv6_neighbour", HostPart::Neighbour(mac)));
    }
    let v6 = match (prefix_from, host_parts.as_slice()) {
        (Some(interface), [(_, _, host)]) => AddressSource::Prefix {
            interface,
            host: host.clone(),
        },
        (Some(_), []) => {
            return Err(ctx.err_at(
                raw.ipv6_prefix_from.as_ref().map(|p| p.span().start),
                &key("ipv6_prefix_from"),
                "needs a host part: ipv6_suffix, ipv6_eui64 or ipv6_neighbour",
            ));
        }
        (None, [(v, k, _), ..]) => {
            return Err(ctx.err(
                v,
                &key(k),
                "needs ipv6_prefix_from: the interface whose prefix it completes",
            ));
        }
        (Some(_), [(_, first, _), (v, k, _), ..]) => {
            return Err(ctx.err(
                v,
                &key(k),
                format!("conflicts with {first}: give one host part"),
            ));
        }
        (None, []) => match interface6.or_else(|| interface.clone()) {
            Some(i) => AddressSource::Interface(i),
            None => AddressSource::Wan,
        },
    };
    let v4 = interface.map_or(AddressSource::Wan, AddressSource::Interface);
    Ok((v4, v6))
}

/// The source keys of a host, as `validate_sources` reads them back.
fn render_sources(h: &HostConfig, q: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    if let AddressSource::Interface(i) = &h.source_v4 {
        out += &format!("interface = {}\n", q(i));
    }
    match &h.source_v6 {
        AddressSource::Interface(i) if h.source_v4 != h.source_v6 => {
            out += &format!("interface6 = {}\n", q(i));
        }
        AddressSource::Prefix { interface, host } => {
            out += &format!("ipv6_prefix_from = {}\n", q(interface));
            out += &match host {
                HostPart::Suffix(s) => format!("ipv6_suffix = {}\n", q(&s.to_string())),
                HostPart::Eui64(m) => format!("ipv6_eui64 = {}\n", q(&m.to_string())),
                HostPart::Neighbour(m) => format!("ipv6_neighbour = {}\n", q(&m.to_string())),
            };
        }
        _ => {}
    }
    out
}

/// Exactly one of `password`, `password_file`, `password_env`, `password_credential`.
fn resolve_password(
    raw: &RawHost,
    key: &dyn Fn(&str) -> String,
    start: usize,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    let forms = [
        &raw.password,
        &raw.password_file,
        &raw.password_env,
        &raw.password_credential,
    ];
    secret_source("password", forms, key, ctx, base)?
        .ok_or_else(|| ctx.err_at(Some(start), &key("password"), missing_secret("password")))?
        .read()
}

/// "missing: set NAME, NAME_file, NAME_env or NAME_credential".
pub(crate) fn missing_secret(name: &str) -> String {
    format!("missing: set {name}, {name}_file, {name}_env or {name}_credential")
}

/// Where a secret comes from, checked when the config is loaded and read by [`Self::read`]: the
/// one code path for every secret (DynHost passwords, read at load; the OVH API's
/// application secret and consumer key, read only by the `ovh` commands).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    pub form: SecretForm,
    /// The config key that named it (`host[0].password_file`), for messages.
    pub key: String,
    file: Option<PathBuf>,
    line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretForm {
    Inline(Secret),
    /// Its first line, trimmed.
    File(PathBuf),
    Env(String),
    /// A systemd credential name (`$CREDENTIALS_DIRECTORY/NAME`).
    Credential(String),
}

/// Exactly one of `NAME`, `NAME_file`, `NAME_env`, `NAME_credential`, or none (`Ok(None)`).
pub(crate) fn secret_source(
    name: &str,
    forms: [&Option<Spanned<String>>; 4],
    key: &dyn Fn(&str) -> String,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Option<SecretSource>, ConfigError> {
    let names = [
        name.to_string(),
        format!("{name}_file"),
        format!("{name}_env"),
        format!("{name}_credential"),
    ];
    let given: Vec<(usize, &Spanned<String>)> = forms
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.as_ref().map(|v| (i, v)))
        .collect();
    let (which, value) = match given.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        [_, (second, v), ..] => {
            return Err(ctx.err(
                v,
                &key(&names[*second]),
                format!(
                    "set only one of {}, {}, {}, {}",
                    names[0], names[1], names[2], names[3]
                ),
            ));
        }
    };
    let form = match which {
        0 => {
            check_password(value.get_ref()).map_err(|m| ctx.err(value, &key(&names[0]), m))?;
            SecretForm::Inline(Secret::new(value.get_ref().clone()))
        }
        1 => SecretForm::File(base.join(value.get_ref())),
        2 => SecretForm::Env(value.get_ref().clone()),
        _ => {
            let name = value.get_ref();
            if name.is_empty() || name.contains('/') {
                return Err(ctx.err(value, &key(&names[3]), "a credential name, without '/'"));
            }
            SecretForm::Credential(name.clone())
        }
    };
    Ok(Some(SecretSource {
        form,
        key: key(&names[which]),
        file: ctx.file.map(Path::to_path_buf),
        line: ctx.line_of(value.span().start),
    }))
}

impl SecretSource {
    /// The secret itself. Errors name the key, the line and the file or variable, never the
    /// value.
    pub fn read(&self) -> Result<Secret, ConfigError> {
        let err = |message: String| ConfigError {
            file: self.file.clone(),
            line: Some(self.line),
            key: self.key.clone(),
            message,
        };
        // Read through crate::secret (bounded: a FIFO, a device or a giant file is refused).
        let from_file = |path: PathBuf| -> Result<Secret, ConfigError> {
            let secret = crate::secret::from_file(&path).map_err(|e| err(e.to_string()))?;
            check_password(secret.expose()).map_err(|m| err(format!("{}: {m}", path.display())))?;
            Ok(secret)
        };
        match &self.form {
            SecretForm::Inline(s) => Ok(s.clone()),
            SecretForm::File(path) => from_file(path.clone()),
            SecretForm::Env(var) => {
                let v = crate::secret::from_env(var)
                    .ok_or_else(|| err(format!("the environment variable {var} is not set")))?;
                check_password(v.expose()).map_err(|m| err(format!("${var}: {m}")))?;
                Ok(v)
            }
            SecretForm::Credential(name) => {
                let path = crate::secret::credential_path(name).map_err(|m| err(m.to_string()))?;
                from_file(path)
            }
        }
    }
}

fn check_password(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("the password is empty".into());
    }
    // A newline in the Basic auth header makes OVH answer 401 (ovh-dynhost.md).
    if p.chars().any(char::is_control) {
        return Err("the password holds a control character (a stray newline?)".into());
    }
    Ok(())
}

/// A DNS name as DynHost takes it: letters, digits, '-' and '_' labels, dot-separated; not an
/// address, `localhost` or a wildcard (a `*` label is refused with its own message).
pub(crate) fn validate_hostname(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*')
        });
    // An address is not a record; the last label of a name is never all digits (RFC 3696 §2).
    let last = name.rsplit('.').next().unwrap_or_default();
    let bare = s.trim().trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() || (ok && last.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!(
            "{s:?} is (or reads as) an IP address: give the DNS name whose record DynHost keeps, like \"home.example.com\""
        ));
    }
    if !ok {
        return Err(format!("{s:?} is not a DNS name like \"home.example.com\""));
    }
    if name == "localhost" || name.ends_with(".localhost") {
        return Err(format!(
            "{s:?} is this machine's own name (RFC 6761), never a record at a provider"
        ));
    }
    if name.contains('*') {
        return Err(format!(
            "{s:?} is a wildcard: an update names one record, like \"home.example.com\""
        ));
    }
    Ok(name)
}

/// Whether the URL's host is this machine (`localhost`, 127.0.0.0/8, `[::1]`): the one place
/// plain http is allowed.
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// https only; plain http is accepted for loopback (a local relay or a test server).
fn validate_server(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put the credentials in login/password, not in the URL".into());
    }
    let host = url.host_str().unwrap_or("");
    let loopback = is_loopback_host(&url);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "{s:?}: plain http would send the password in clear; use https (http is only allowed to a loopback address)"
            ));
        }
        other => return Err(format!("{s:?}: scheme {other:?} is not http(s)")),
    }
    if host.is_empty() {
        return Err(format!("{s:?} has no host"));
    }
    if url.port() == Some(0) {
        return Err(format!("{s:?}: port 0 is not a port one can connect to"));
    }
    // dynhostd adds hostname= and myip= itself; parameters already in the URL would come first,
    // and a server may take the first of each (`?hostname=evil.example.com&myip=…`).
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{s:?}: no query string (?…) or fragment (#…) in the update URL: dynhostd adds the parameters itself"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(
            text,
            Some(Path::new("test.toml")),
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn line_numbers_count_the_newlines_before_the_offset() {
        let text = "a\n\nbc\nd";
        let ctx = Ctx {
            text,
            file: None,
            newlines: std::cell::OnceCell::new(),
        };
        for offset in 0..text.len() + 3 {
            let naive = text.as_bytes()[..offset.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            assert_eq!(ctx.line_of(offset), naive, "offset {offset}");
        }
    }

    const MINIMAL: &str = r#"
[[host]]
hostname = "home.example.com"
login = "example.com-home"
password = "s3cret-pass"
"#;

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.wan.interface, None);
        assert_eq!(c.wan.debounce, DEFAULT_DEBOUNCE);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        let h = &c.hosts[0];
        assert_eq!(h.family, FamilySet::V4);
        assert_eq!(h.provider, Provider::Ovh);
        assert_eq!(h.server.as_str(), Provider::OVH_DEFAULT_SERVER);
        assert!(h.enabled);
        assert_eq!(h.line, 2);
    }

    #[test]
    fn full_config() {
        let c = parse_str(
            r#"
[wan]
interface = "ppp0"
debounce = "1m30s"
accept = ["203.0.113.0/24"]
ignore = ["2001:db8:dead::/48"]

[state]
dir = "/tmp/x"

[http]
timeout = "5s"
connect_timeout = "2s"
max_concurrent = 4

[[host]]
hostname = "Home.Example.com."
login = "example.com-home"
password = "p"
family = "both"
provider = "dyndns2"
server = "http://127.0.0.1:8080/nic/update"
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(c.wan.interface.as_deref(), Some("ppp0"));
        assert_eq!(c.wan.debounce, Duration::from_secs(90));
        assert_eq!(c.wan.policy.accept.len(), 1);
        assert_eq!(c.http.max_concurrent, 4);
        let h = &c.hosts[0];
        assert_eq!(h.hostname, "home.example.com");
        assert_eq!(h.family, FamilySet::Both);
        assert_eq!(h.records().count(), 2);
        assert!(!h.enabled);
    }

    /// Every error names the key and the line it is on.
    #[test]
    fn errors_name_key_and_line() {
        let cases: &[(&str, &str, usize)] = &[
            ("[wan]\ndebounce = \"2x\"\n", "wan.debounce", 2),
            ("[wan]\n\naccept = [\"203.0.113.0/99\"]\n", "wan.accept", 3),
            (
                "[wan]\ninterface = \"a very long interface name\"\n",
                "wan.interface",
                2,
            ),
            (
                "[[host]]\nhostname = \"bad host\"\nlogin = \"l\"\npassword = \"p\"\n",
                "host[0].hostname",
                2,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nserver = \"http://dns.example.com/nic/update\"\n",
                "host[0].server",
                5,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nfamily = \"ipv5\"\n",
                "host[0].family",
                5,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\n",
                "host[0].password",
                1,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nprovider = \"dyndns2\"\n",
                "host[0].server",
                1,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n[[host]]\nhostname = \"h.example.com\"\nlogin = \"m\"\npassword = \"q\"\n",
                "host[1].hostname",
                5,
            ),
            (
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"a:b\"\npassword = \"p\"\n",
                "host[0].login",
                3,
            ),
            ("[http]\nmax_concurrent = 0\n", "http.max_concurrent", 2),
        ];
        for (text, key, line) in cases {
            let e = parse_str(text).unwrap_err();
            assert_eq!(e.key, *key, "{text}: {e}");
            assert_eq!(e.line, Some(*line), "{text}: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("test.toml:{line}: {key}: ")),
                "{shown}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_line() {
        let e = parse_str("[wan]\ninterface = \"ppp0\"\nintreface = \"eth0\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("intreface"), "{e}");
        let e = parse_str(&format!("{MINIMAL}pasword = \"x\"\n")).unwrap_err();
        assert!(e.message.contains("pasword"), "{e}");
        let e = parse_str("[wan\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn no_host_is_an_error() {
        let e = parse_str("[wan]\ninterface = \"eth0\"\n").unwrap_err();
        assert_eq!(e.key, "host");
    }

    #[test]
    fn password_file_first_line_trimmed_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "  s3cret  \nsecond line\n").unwrap();
        let text =
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword_file = \"pw\"\n";
        let c = parse(text, None, dir.path()).unwrap();
        assert_eq!(c.hosts[0].password.expose(), "s3cret");
        let missing = text.replace("\"pw\"", "\"nope\"");
        let e = parse(&missing, None, dir.path()).unwrap_err();
        assert_eq!((e.key.as_str(), e.line), ("host[0].password_file", Some(4)));
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let empty = text.replace("\"pw\"", "\"empty\"");
        assert!(parse(&empty, None, dir.path()).is_err());
        let both = format!("{text}password = \"x\"\n");
        assert!(parse(&both, None, dir.path()).is_err());
    }

    #[test]
    fn servers() {
        assert!(validate_server("https://dns.eu.ovhapis.com/nic/update").is_ok());
        assert!(validate_server("https://www.ovh.com/nic/update").is_ok());
        assert!(validate_server("http://127.0.0.1:8080/nic/update").is_ok());
        assert!(validate_server("http://[::1]:8080/nic/update").is_ok());
        assert!(validate_server("http://localhost/nic/update").is_ok());
        assert!(validate_server("http://192.0.2.1/nic/update").is_err());
        assert!(validate_server("ftp://127.0.0.1/").is_err());
        assert!(validate_server("https://user:pw@dns.example.com/").is_err());
        assert!(validate_server("not a url").is_err());
    }

    #[test]
    fn redacted_rendering_hides_the_password_and_reparses() {
        let c = parse_str(MINIMAL).unwrap();
        let shown = c.render_redacted();
        assert!(!shown.contains("s3cret-pass"));
        assert!(shown.contains("<redacted>"));
        assert!(!format!("{c:?}").contains("s3cret-pass"));
        // What `check` prints is itself a valid config (with the placeholder password).
        let again = parse_str(&shown).unwrap();
        assert_eq!(again.hosts[0].hostname, c.hosts[0].hostname);
        assert_eq!(again.wan, c.wan);
    }

    #[test]
    fn fingerprint_changes_with_the_password() {
        let a = parse_str(MINIMAL).unwrap();
        let b = parse_str(&MINIMAL.replace("s3cret-pass", "other")).unwrap();
        assert_eq!(a.hosts[0].fingerprint(), a.hosts[0].fingerprint());
        assert_ne!(a.hosts[0].fingerprint(), b.hosts[0].fingerprint());
        // A digest, not a std hasher: the same on every build and toolchain, so an upgrade
        // never lifts a stop (checked by hand: SHA-256 of the length-prefixed fields).
        assert_eq!(a.hosts[0].fingerprint(), "v2-2dea44e0");
    }

    #[test]
    fn address_sources_and_their_errors() {
        let host = |extra: &str| {
            format!(
                "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n{extra}"
            )
        };
        let c = parse_str(&host("family = \"both\"\n")).unwrap();
        assert_eq!(c.hosts[0].source_v4, AddressSource::Wan);
        assert_eq!(c.hosts[0].source_v6, AddressSource::Wan);
        let c = parse_str(&host(
            "family = \"both\"\ninterface = \"wan2\"\ninterface6 = \"wan6\"\n",
        ))
        .unwrap();
        assert_eq!(
            c.hosts[0].source(Family::V4),
            &AddressSource::Interface("wan2".into())
        );
        assert_eq!(
            c.hosts[0].source(Family::V6),
            &AddressSource::Interface("wan6".into())
        );
        let c = parse_str(&host("family = \"both\"\ninterface = \"wan2\"\n")).unwrap();
        assert_eq!(
            c.hosts[0].source_v6,
            AddressSource::Interface("wan2".into())
        );
        let c = parse_str(&host(
            "family = \"ipv6\"\nipv6_prefix_from = \"br-lan\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\n",
        ))
        .unwrap();
        assert_eq!(
            c.hosts[0].source_v6,
            AddressSource::Prefix {
                interface: "br-lan".into(),
                host: HostPart::Eui64("34:56:78:9a:bc:de".parse().unwrap()),
            }
        );
        // The redacted rendering reads back to the same sources.
        let again = parse_str(&c.render_redacted().replace("<redacted>", "p")).unwrap();
        assert_eq!(again.hosts[0].source_v6, c.hosts[0].source_v6);

        let cases: &[(&str, &str, usize)] = &[
            (
                "interface = \"a very long interface name\"\n",
                "host[0].interface",
                5,
            ),
            ("interface6 = \"wan6\"\n", "host[0].interface6", 5),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\n",
                "host[0].ipv6_prefix_from",
                6,
            ),
            (
                "family = \"ipv6\"\nipv6_suffix = \"::10\"\n",
                "host[0].ipv6_suffix",
                6,
            ),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"2001:db8::10\"\n",
                "host[0].ipv6_suffix",
                7,
            ),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"banana\"\n",
                "host[0].ipv6_suffix",
                7,
            ),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_eui64 = \"34:56:78\"\n",
                "host[0].ipv6_eui64",
                7,
            ),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::1\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\n",
                "host[0].ipv6_eui64",
                8,
            ),
            (
                "family = \"ipv6\"\ninterface6 = \"wan6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::1\"\n",
                "host[0].ipv6_prefix_from",
                7,
            ),
        ];
        let neighbour: &[(&str, &str, usize)] = &[
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_neighbour = \"34:56\"\n",
                "host[0].ipv6_neighbour",
                7,
            ),
            (
                "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\nipv6_neighbour = \"34:56:78:9a:bc:de\"\n",
                "host[0].ipv6_neighbour",
                8,
            ),
            (
                "family = \"ipv4\"\nipv6_neighbour = \"34:56:78:9a:bc:de\"\n",
                "host[0].ipv6_neighbour",
                6,
            ),
        ];
        for (extra, key, line) in cases.iter().chain(neighbour) {
            let e = parse_str(&host(extra)).unwrap_err();
            assert_eq!(e.key, *key, "{extra}: {e}");
            assert_eq!(e.line, Some(*line), "{extra}: {e}");
        }
    }
}
