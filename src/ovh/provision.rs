//! The panel steps as API calls and file writes: `auth` (a least-privilege consumer key),
//! `provision` (zone, login, password, records, config entry), `list`, `rotate` and `remove`.
//! Every step says what it did or would do in [`Steps`]; `cli` prints them.
//!
//! Secrets: a generated password goes to a 0600 file (or the systemd credential store) before
//! any call uses it, so a failure never leaves a login whose password nobody has. It is never
//! printed, logged, or put in an error.

use super::api::{AccessRule, ApiUrl, OvhClient, OvhError};
use crate::config::write::{
    ConfigWritten, PasswordPlace, WriteError, append_to_config, check_dir, commit, host_entry,
    password_already_in, password_place_of, prepare_dir, write_secret_file, write_temp,
};
use crate::config::{Config, ConfigError, FamilySet};
use crate::record::Family;
use crate::secret::Secret;
use crate::wan::policy::WanChoice;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Length of a generated DynHost password: "24+ random characters", and short of the 31 some
/// OVH forms cap passwords at.
pub const PASSWORD_CHARS: usize = 28;
/// Where `ovh auth` puts a new consumer key unless `consumer_key_file` names a file.
pub const CONSUMER_KEY_FILE: &str = "ovh-consumer-key";
/// Where `--credential` puts a password: the directory the shipped unit loads credentials
/// from (contrib/systemd/dynhostd.service: `LoadCredential=home:/etc/dynhostd/credentials/home`).
pub const CREDSTORE: &str = "/etc/dynhostd/credentials";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// Boxed: the API's errors carry the server's words and would make every result large.
    #[error(transparent)]
    Ovh(Box<OvhError>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(
        "no zone of this OVH account holds {hostname} (tried {tried}): check the name, that the domain uses OVH's DNS, or pass --zone"
    )]
    ZoneNotFound { hostname: String, tried: String },
    #[error(
        "zone {zone} is not in this OVH account (or not served by OVH's DNS): check --zone and the account the application belongs to"
    )]
    ZoneNotInAccount { zone: String },
    #[error("{hostname} is not in zone {zone}: give a zone that is a suffix of the hostname")]
    NotInZone { hostname: String, zone: String },
    #[error(
        "nothing to publish for {hostname} ({family}): {why}; see `dynhostd detect`, or pass --ip"
    )]
    NoAddress {
        hostname: String,
        family: Family,
        why: String,
    },
    #[error("the OVH API refused {ip} as the address of {hostname} ({message}){hint}")]
    InvalidIp {
        ip: IpAddr,
        hostname: String,
        message: String,
        hint: &'static str,
    },
    #[error(
        "the DynHost login {login} exists with the scope {scope:?}, not {wanted:?}: pass another --login-suffix, or change or remove that login"
    )]
    LoginScope {
        login: String,
        scope: String,
        wanted: String,
    },
    #[error(
        "the DynHost login {login} exists and this machine has no password for it ({path} is missing): pass --reset-password to give it a new one (other clients using it will stop working), or another --login-suffix"
    )]
    NoPassword { login: String, path: String },
    #[error(
        "login {login} is not of zone {zone} (a DynHost login is <zone>-<suffix>): fix host.login or pass --zone"
    )]
    LoginZone { login: String, zone: String },
    #[error(
        "{hostname} is already in the config with login {have}, not {want}: edit that entry or drop --login-suffix"
    )]
    HostConflict {
        hostname: String,
        have: String,
        want: String,
    },
    #[error(
        "the OVH API lists {count} {what} in zone {zone}: more than the {max} this command reads one call at a time, so it stopped before reading them; tidy the zone in the OVH panel",
        max = MAX_LISTED
    )]
    TooMany {
        what: &'static str,
        zone: String,
        count: usize,
    },
    #[error("{what} {given:?}: {rule}; nothing was sent or written")]
    BadName {
        what: &'static str,
        given: String,
        rule: &'static str,
    },
    #[error(
        "login {login}: OVH may have applied its new password, but the answer was lost ({cause}). The new password is kept in {kept} (mode 0600); {dest} still holds the old one. To finish: run `dynhostd ovh rotate {hostname}` again once the API answers (it sets a newer password either way), then delete {kept}; or, if updates now fail with 401, `mv {kept} {dest}` and reload the agent"
    )]
    RotateUnsure {
        login: String,
        hostname: String,
        kept: String,
        dest: String,
        cause: String,
    },
    #[error("cannot get random bytes from the OS")]
    Random,
    #[error("not confirmed: pass --yes to remove without asking")]
    NotConfirmed,
}

impl From<OvhError> for ProvisionError {
    fn from(e: OvhError) -> Self {
        ProvisionError::Ovh(Box::new(e))
    }
}

/// What a command did (or, dry, would do), line by line, and whether anything changed.
#[derive(Debug, Default)]
pub struct Steps {
    pub lines: Vec<String>,
    pub changed: bool,
    pub dry_run: bool,
}

impl Steps {
    pub fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

/// One OVH API session: the client, and whether changes are only shown.
pub struct Session<'a> {
    pub client: &'a OvhClient,
    pub steps: Steps,
}

impl<'a> Session<'a> {
    pub fn new(client: &'a OvhClient, dry_run: bool) -> Session<'a> {
        Session {
            client,
            steps: Steps {
                dry_run,
                ..Steps::default()
            },
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: &ApiUrl) -> Result<T, OvhError> {
        self.client.call(Method::GET, url, None).await
    }

    /// `/domain/zone/{zone}/{rest…}`, each part one encoded path segment.
    fn zone_url(&self, zone: &str, rest: &[&str]) -> Result<ApiUrl, OvhError> {
        self.client.zone_url(zone, rest, &[])
    }

    /// A call that changes something: made, or with `--dry-run` shown (with `shown`, the body
    /// as printed: secrets replaced) and not made.
    async fn change(
        &mut self,
        method: Method,
        url: &ApiUrl,
        body: Option<serde_json::Value>,
        shown: Option<serde_json::Value>,
    ) -> Result<Option<serde_json::Value>, OvhError> {
        if self.steps.dry_run {
            let shown = shown.or(body).map(|b| format!(" {b}")).unwrap_or_default();
            self.steps
                .say(format!("would call: {method} {}{shown}", url.path()));
            return Ok(None);
        }
        self.steps.changed = true;
        self.client.call(method, url, body.as_ref()).await.map(Some)
    }
}

#[derive(Debug, Deserialize)]
pub struct Login {
    pub login: String,
    #[serde(rename = "subDomain", default)]
    pub sub_domain: String,
}

#[derive(Debug, Deserialize)]
pub struct Record {
    pub id: u64,
    #[serde(rename = "subDomain", default)]
    pub sub_domain: String,
    pub ip: String,
}

// ---------------------------------------------------------------------------------------------
// Names.

/// What kind of name an `ovh` command was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Hostname,
    Zone,
    LoginSuffix,
}

/// The one check of every name an `ovh` command takes (a hostname, a zone, a login suffix, the
/// suffix of a config's login), made before any API call or file write: a name becomes part of
/// a file name (`dynhost-<hostname>.password`) and of API paths, so `a/../../x.example.com`
/// must never get that far. Hostnames and zones follow the config's own rule (one definition of
/// a DNS name); a zone has no wildcard and at least two labels; a login suffix is letters,
/// digits, `-` and `_` (the login is `<zone>-<suffix>`). Gives the name as used (lowercase, no
/// final dot).
pub fn check_name(kind: NameKind, given: &str) -> Result<String, ProvisionError> {
    let (what, rule, ok) = match kind {
        NameKind::Hostname => (
            "hostname",
            "not a DNS name like \"home.example.com\" (letters, digits, '-' and '_' in dot-separated labels)",
            crate::config::validate_hostname(given).ok(),
        ),
        NameKind::Zone => (
            "zone",
            "not a domain like \"example.com\" (two or more labels of letters, digits, '-' and '_')",
            crate::config::validate_hostname(given)
                .ok()
                .filter(|z| z.contains('.') && !z.contains('*')),
        ),
        NameKind::LoginSuffix => (
            "login suffix",
            "letters, digits, '-' and '_' only, at most 63 (the login is <zone>-<suffix>)",
            Some(given.to_string()).filter(|s| {
                !s.is_empty()
                    && s.len() <= 63
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }),
        ),
    };
    ok.ok_or_else(|| ProvisionError::BadName {
        what,
        given: crate::provider::server_text::clean(given, 100),
        rule,
    })
}

/// A config's `login` checked as `<zone>-<suffix>` for a zone that could hold `hostname` (the
/// forced one if given) and a suffix [`check_name`] takes, before any call.
fn check_login(login: &str, hostname: &str, zone: Option<&str>) -> Result<(), ProvisionError> {
    let zones = match zone {
        Some(z) => vec![z.to_string()],
        None => zone_candidates(hostname),
    };
    let fits = zones.iter().any(|z| {
        login
            .strip_prefix(z.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|suffix| check_name(NameKind::LoginSuffix, suffix).is_ok())
    });
    if fits {
        Ok(())
    } else {
        Err(ProvisionError::BadName {
            what: "login",
            given: crate::provider::server_text::clean(login, 100),
            rule: "not <zone>-<suffix> for a zone holding the hostname, with a suffix of letters, digits, '-' and '_'",
        })
    }
}

/// The zones that could hold `hostname`, longest first, down to two labels.
pub fn zone_candidates(hostname: &str) -> Vec<String> {
    let labels: Vec<&str> = hostname.split('.').collect();
    (0..labels.len().saturating_sub(1))
        .map(|i| labels[i..].join("."))
        .collect()
}

/// `home` for `home.example.com` in `example.com`; empty for the apex; None if not inside.
pub fn subdomain_in(hostname: &str, zone: &str) -> Option<String> {
    if hostname == zone {
        return Some(String::new());
    }
    hostname
        .strip_suffix(zone)
        .and_then(|s| s.strip_suffix('.'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The login suffix when none is given: the subdomain with dots as dashes (`home`, `a-b`), or
/// `apex` for the zone itself.
pub fn default_suffix(sub: &str) -> String {
    if sub.is_empty() {
        "apex".into()
    } else {
        sub.replace('.', "-")
    }
}

/// The least-privilege rules for `ovh auth`: the zone's DynHost calls, its refresh, and the
/// clock. Without a zone, every zone's (said so when printed).
pub fn access_rules(zone: Option<&str>) -> Vec<AccessRule> {
    let z = zone.unwrap_or("*");
    let mut rules: Vec<AccessRule> = ["GET", "POST", "PUT", "DELETE"]
        .into_iter()
        .map(|m| AccessRule {
            method: m.into(),
            path: format!("/domain/zone/{z}/dynHost/*"),
        })
        .collect();
    rules.push(AccessRule {
        method: "POST".into(),
        path: format!("/domain/zone/{z}/refresh"),
    });
    rules.push(AccessRule {
        method: "GET".into(),
        path: "/auth/time".into(),
    });
    rules
}

/// A password of [`PASSWORD_CHARS`] letters and digits from the OS RNG (ring's
/// `SystemRandom`), by rejection so every character is equally likely.
pub fn new_password() -> Result<Secret, ProvisionError> {
    use ring::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(PASSWORD_CHARS);
    let mut buf = [0u8; 64];
    while out.len() < PASSWORD_CHARS {
        rng.fill(&mut buf).map_err(|_| ProvisionError::Random)?;
        for b in buf {
            // 248 = 4 × 62: bytes above it would favour the first letters.
            if (b as usize) < 4 * ALPHABET.len() && out.len() < PASSWORD_CHARS {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(Secret::new(out))
}

// ---------------------------------------------------------------------------------------------
// The commands.

/// The zone holding `hostname` and the subdomain in it. With `forced`, that zone (checked to
/// exist); otherwise the longest suffix the account holds, probing from the longest: a zone
/// the key may not read answers "not granted", one the account lacks "not found".
pub async fn find_zone(
    s: &Session<'_>,
    hostname: &str,
    forced: Option<&str>,
) -> Result<(String, String), ProvisionError> {
    if let Some(zone) = forced {
        let zone = check_name(NameKind::Zone, zone)?;
        let sub = subdomain_in(hostname, &zone).ok_or_else(|| ProvisionError::NotInZone {
            hostname: hostname.into(),
            zone: zone.clone(),
        })?;
        match s
            .get::<Vec<u64>>(&s.zone_url(&zone, &["dynHost", "record"])?)
            .await
        {
            Ok(_) => return Ok((zone, sub)),
            Err(e) if e.is_not_found() => return Err(ProvisionError::ZoneNotInAccount { zone }),
            Err(e) => return Err(e.into()),
        }
    }
    let candidates = zone_candidates(hostname);
    let mut refused = None;
    for zone in &candidates {
        match s
            .get::<Vec<u64>>(&s.zone_url(zone, &["dynHost", "record"])?)
            .await
        {
            Ok(_) => {
                let sub = subdomain_in(hostname, zone).expect("a suffix of the name");
                return Ok((zone.clone(), sub));
            }
            Err(e) if e.is_not_found() => {}
            Err(e @ OvhError::NotGranted { .. }) => {
                refused.get_or_insert(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Nothing readable: if the key was refused somewhere, that is the likelier story (the
    // last candidate refused is the shortest, so the hint names the registrable domain).
    match refused {
        Some(OvhError::NotGranted { method, path, .. }) => Err(OvhError::NotGranted {
            method,
            path,
            zone: candidates.last().cloned().unwrap_or_default(),
        }
        .into()),
        _ => Err(ProvisionError::ZoneNotFound {
            hostname: hostname.into(),
            tried: candidates.join(", "),
        }),
    }
}

/// `ovh auth`: asks for a consumer key with [`access_rules`]; the key is written to
/// `key_path` (0600), never printed. Returns (validation URL, rules).
pub async fn auth(
    client: &OvhClient,
    zone: Option<&str>,
    key_path: &Path,
) -> Result<(String, Vec<AccessRule>), ProvisionError> {
    let zone = zone.map(|z| check_name(NameKind::Zone, z)).transpose()?;
    let rules = access_rules(zone.as_deref());
    let new = client.request_credential(&rules, None).await?;
    let key = Secret::new(new.consumer_key);
    client.redact_also(&key);
    write_secret_file(key_path, &key)?;
    Ok((new.validation_url, rules))
}

/// What `provision` is asked to do.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    pub hostname: String,
    pub zone: Option<String>,
    pub family: FamilySet,
    pub login_suffix: Option<String>,
    /// Addresses to publish instead of the detected ones, at most one per family.
    pub ips: Vec<IpAddr>,
    /// The `server` to write into the entry (another update URL than OVH's).
    pub server: Option<String>,
    /// Write the password as this systemd credential (in `credstore`) instead of a file.
    pub credential: Option<String>,
    pub credstore: PathBuf,
    pub reset_password: bool,
    pub write_config: bool,
}

/// `ovh provision`. Each step reuses what exists; a second run changes nothing and says so.
pub async fn provision(
    s: &mut Session<'_>,
    config: &Config,
    config_path: &Path,
    req: &ProvisionRequest,
) -> Result<(), ProvisionError> {
    // Every name checked before the first call or write.
    let hostname = check_name(NameKind::Hostname, &req.hostname)?;
    let forced = req
        .zone
        .as_deref()
        .map(|z| check_name(NameKind::Zone, z))
        .transpose()?;
    if let Some(suffix) = &req.login_suffix {
        check_name(NameKind::LoginSuffix, suffix)?;
    }
    if let Some(h) = config.hosts.iter().find(|h| h.hostname == hostname) {
        check_login(&h.login, &hostname, forced.as_deref())?;
    }
    // Before any call: where the password lives, and the one this machine already has.
    let (place, known) = local_password(config, config_path, &hostname, req)?;
    let (zone, sub) = find_zone(s, &hostname, forced.as_deref()).await?;
    s.steps.say(format!(
        "zone {zone}, subdomain {}",
        if sub.is_empty() { "(apex)" } else { &sub }
    ));
    let existing = config.hosts.iter().find(|h| h.hostname == hostname);
    let wanted_login = format!(
        "{zone}-{}",
        req.login_suffix
            .clone()
            .unwrap_or_else(|| default_suffix(&sub))
    );
    let login = match existing {
        Some(h) if req.login_suffix.is_some() && h.login != wanted_login => {
            return Err(ProvisionError::HostConflict {
                hostname,
                have: h.login.clone(),
                want: wanted_login,
            });
        }
        Some(h) => h.login.clone(),
        None => wanted_login,
    };
    let suffix = login
        .strip_prefix(&format!("{zone}-"))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProvisionError::LoginZone {
            login: login.clone(),
            zone: zone.clone(),
        })?
        .to_string();

    // The login.
    let login_url = s.zone_url(&zone, &["dynHost", "login", &login])?;
    let found: Option<Login> = match s.get::<Login>(&login_url).await {
        Ok(l) => Some(l),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let mut password_to_write: Option<Secret> = None;
    match (found, &known) {
        (Some(l), _) if l.sub_domain != sub => {
            return Err(ProvisionError::LoginScope {
                login,
                scope: s.client.clean(&l.sub_domain),
                wanted: sub,
            });
        }
        (Some(_), Some(_)) => s.steps.say(format!(
            "login {login}: exists, scoped to {}: kept",
            scope_name(&sub)
        )),
        (Some(_), None) if !req.reset_password => {
            return Err(ProvisionError::NoPassword {
                login,
                path: place
                    .as_ref()
                    .map(|p| p.path().display().to_string())
                    .unwrap_or_default(),
            });
        }
        (Some(_), None) => {
            let pw = new_password()?;
            s.client.redact_also(&pw);
            if !s.steps.dry_run {
                write_password(place.as_ref(), &pw)?;
            }
            s.change(
                Method::POST,
                &s.zone_url(&zone, &["dynHost", "login", &login, "changePassword"])?,
                Some(json!({ "password": pw.expose() })),
                Some(json!({ "password": "<generated>" })),
            )
            .await?;
            s.steps
                .say(format!("login {login}: existed; given a new password"));
            password_to_write = Some(pw);
        }
        (None, known) => {
            let pw = match known {
                Some(p) => p.clone(),
                None => {
                    let pw = new_password()?;
                    password_to_write = Some(pw.clone());
                    pw
                }
            };
            s.client.redact_also(&pw);
            if password_to_write.is_some() && !s.steps.dry_run {
                // Before the login exists: a failure here leaves nothing half-made.
                write_password(place.as_ref(), &pw)?;
            }
            s.change(
                Method::POST,
                &s.zone_url(&zone, &["dynHost", "login"])?,
                Some(json!({ "loginSuffix": suffix, "password": pw.expose(), "subDomain": sub })),
                Some(json!({ "loginSuffix": suffix, "password": "<generated>", "subDomain": sub })),
            )
            .await?;
            s.steps.say(format!(
                "login {login}: {}, scoped to {}",
                if s.steps.dry_run {
                    "would be created"
                } else {
                    "created"
                },
                scope_name(&sub)
            ));
        }
    }
    if let (Some(_), Some(p)) = (&password_to_write, &place) {
        s.steps.say(format!(
            "password: {}written to {} (mode 0600)",
            if s.steps.dry_run { "would be " } else { "" },
            p.path().display()
        ));
    }

    // The records, one per family, with the address the agent would publish now.
    let wanted = addresses(config, &hostname, req).await?;
    let records = list_records(s, &zone, Some(&sub)).await?;
    let mut created = false;
    for (family, ip) in wanted {
        let kind = if family == Family::V4 { "A" } else { "AAAA" };
        let same_family = records.iter().find(|r| {
            r.ip.parse::<IpAddr>()
                .is_ok_and(|a| Family::of(&a) == family)
        });
        match same_family {
            Some(r) if r.ip.parse::<IpAddr>().ok() == Some(ip) => s
                .steps
                .say(format!("record {hostname}/{kind}: exists (id {}), holds {ip}: kept", r.id)),
            Some(r) => s.steps.say(format!(
                "record {hostname}/{kind}: exists (id {}), holds {}: kept; the agent will publish {ip}",
                r.id, r.ip
            )),
            None => {
                let url = s.zone_url(&zone, &["dynHost", "record"])?;
                let result = s
                    .change(
                        Method::POST,
                        &url,
                        Some(json!({ "ip": ip.to_string(), "subDomain": sub })),
                        None,
                    )
                    .await;
                match result {
                    Ok(_) => {}
                    Err(e) if e.is_invalid_ip() => {
                        let OvhError::Api { message, .. } = e else {
                            unreachable!()
                        };
                        return Err(ProvisionError::InvalidIp {
                            ip,
                            hostname,
                            message,
                            hint: if ip.is_ipv6() {
                                "; whether the API takes IPv6 DynHost records is not confirmed: create the AAAA record in the panel, or provision with --family ipv4"
                            } else {
                                "; check the address with `dynhostd detect`"
                            },
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
                created = true;
                s.steps.say(format!(
                    "record {hostname}/{kind}: {} with {ip}",
                    if s.steps.dry_run { "would be created" } else { "created" }
                ));
            }
        }
    }
    if created {
        refresh_zone(s, &zone).await?;
    }

    // The config entry.
    match (existing, &place) {
        (Some(h), _) => s.steps.say(format!(
            "config: {hostname} is already a [[host]] (line {}): kept",
            h.line
        )),
        (None, Some(place)) => {
            let entry = host_entry(&hostname, &login, place, req.family, req.server.as_deref());
            if req.write_config && !s.steps.dry_run {
                let check_as = match place {
                    PasswordPlace::Credential { path, .. } => Some(host_entry(
                        &hostname,
                        &login,
                        &PasswordPlace::File {
                            path: path.clone(),
                            in_config: path.display().to_string(),
                        },
                        req.family,
                        req.server.as_deref(),
                    )),
                    PasswordPlace::File { .. } => None,
                };
                let written = append_to_config(config_path, &entry, check_as.as_deref())?;
                s.steps.changed = true;
                s.steps.say(match written {
                    ConfigWritten::InPlace => format!(
                        "config: [[host]] {hostname} appended to {}",
                        config_path.display()
                    ),
                    ConfigWritten::ThroughLink(target) => format!(
                        "config: [[host]] {hostname} appended to {} (the file the link {} leads to; the link is kept)",
                        target.display(),
                        config_path.display()
                    ),
                });
            } else {
                s.steps.say(format!(
                    "config: {} this entry{}:\n\n{entry}",
                    if req.write_config {
                        "would append"
                    } else {
                        "add"
                    },
                    if req.write_config {
                        ""
                    } else {
                        " (or run again with --write-config)"
                    }
                ));
                if !req.write_config {
                    // Printing an entry to paste is the result, not a change.
                }
            }
            if let PasswordPlace::Credential { name, .. } = place {
                s.steps.say(format!(
                    "systemd: add `LoadCredential={name}:{}` to the unit (systemctl edit dynhostd)",
                    place.path().display()
                ));
            }
        }
        (None, None) => {}
    }
    if !s.steps.changed && !s.steps.dry_run {
        s.steps.say(if existing.is_some() {
            format!(
                "nothing to do: {hostname}'s login, record(s) and config entry are already in place"
            )
        } else {
            format!(
                "nothing changed at OVH: {hostname}'s login and record(s) were already in place; the config entry above is still to be added"
            )
        });
    }
    Ok(())
}

fn scope_name(sub: &str) -> String {
    if sub.is_empty() {
        "the zone apex".into()
    } else {
        format!("{sub:?}")
    }
}

fn write_password(place: Option<&PasswordPlace>, pw: &Secret) -> Result<(), ProvisionError> {
    match place {
        Some(p) => Ok(write_secret_file(p.path(), pw)?),
        None => Ok(()),
    }
}

/// Before any API call: where `provision` keeps the host's password (the existing entry's
/// place, or a new file beside the config or a credential), and the password this machine
/// already has (the entry's, or the file's from an earlier run). A password file or credential
/// that is there but refused stops provisioning here ([`password_already_in`]), and so does a
/// directory that others can write, where the password or the config would go.
fn local_password(
    config: &Config,
    config_path: &Path,
    hostname: &str,
    req: &ProvisionRequest,
) -> Result<(Option<PasswordPlace>, Option<Secret>), ProvisionError> {
    let existing = config.hosts.iter().find(|h| h.hostname == hostname);
    let config_dir = config_path.parent().unwrap_or(Path::new("."));
    let place = match (existing, &req.credential) {
        (Some(_), _) => password_place_of(config_path, hostname, &req.credstore).ok(),
        (None, Some(name)) => Some(PasswordPlace::Credential {
            path: req.credstore.join(name),
            name: name.clone(),
        }),
        (None, None) => {
            let name = format!("dynhost-{hostname}.password");
            Some(PasswordPlace::File {
                path: config_dir.join(&name),
                in_config: name,
            })
        }
    };
    // First the file (an error names it), then the directories even when it is missing.
    let known = match (existing, &place) {
        (Some(h), _) => Some(h.password.clone()),
        (None, Some(p)) => password_already_in(p.path())?,
        (None, None) => None,
    };
    let dir_of = |p: &Path| match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if req.write_config && existing.is_none() {
        check_dir(&dir_of(config_path))?;
    }
    // A credential store not made yet is made (and checked) when the password is written.
    if let Some(dir) = place.as_ref().map(|p| dir_of(p.path()))
        && dir.exists()
    {
        check_dir(&dir)?;
    }
    Ok((place, known))
}

/// Per family asked for: the address `run` would publish now (same netlink view, policy and
/// HTTP detection), or the caller's `--ip`.
async fn addresses(
    config: &Config,
    hostname: &str,
    req: &ProvisionRequest,
) -> Result<Vec<(Family, IpAddr)>, ProvisionError> {
    let families = req.family.families();
    let given = |f: Family| req.ips.iter().copied().find(|ip| Family::of(ip) == f);
    let mut out = Vec::new();
    let need_detect = families.iter().any(|f| given(*f).is_none());
    let detection = if need_detect {
        Some(
            crate::agent::detect(
                config.wan.interface.as_deref(),
                &config.wan.policy,
                &config.detect,
                false,
                // A host being provisioned follows the `[wan]` (a machine behind the router
                // takes its address with `--ip`).
                &[],
            )
            .await
            .map_err(|e| ProvisionError::NoAddress {
                hostname: hostname.into(),
                family: families[0],
                why: e.to_string(),
            })?,
        )
    } else {
        None
    };
    for &family in families {
        if let Some(ip) = given(family) {
            if let Err(r) = crate::wan::policy::judge_ip(ip, &config.wan.policy) {
                return Err(ProvisionError::NoAddress {
                    hostname: hostname.into(),
                    family,
                    why: format!("--ip {ip}: {}", r.describe()),
                });
            }
            out.push((family, ip));
            continue;
        }
        let d = detection.as_ref().expect("detected above");
        let choice = if family == Family::V4 { d.ipv4 } else { d.ipv6 };
        match choice {
            WanChoice::Public(ip) => out.push((family, ip)),
            WanChoice::BehindNat => {
                return Err(ProvisionError::NoAddress {
                    hostname: hostname.into(),
                    family,
                    why: "the WAN address is private or CGNAT and no public address was found over HTTP".into(),
                });
            }
            WanChoice::Nothing => {
                return Err(ProvisionError::NoAddress {
                    hostname: hostname.into(),
                    family,
                    why: format!("no routable {family} address on the WAN"),
                });
            }
        }
    }
    Ok(out)
}

/// The most ids or names a listing walks: each is one signed call, made one after the other.
/// A DynHost zone holds a handful; a server that lists more is refused at once rather than
/// walked for hours.
pub const MAX_LISTED: usize = 1000;

/// The zone's DynHost records (optionally of one subdomain), each fetched; their text
/// sanitised before anything else sees it.
pub async fn list_records(
    s: &Session<'_>,
    zone: &str,
    sub: Option<&str>,
) -> Result<Vec<Record>, ProvisionError> {
    let query: Vec<(&str, &str)> = sub.map(|sub| ("subDomain", sub)).into_iter().collect();
    let url = s.client.zone_url(zone, &["dynHost", "record"], &query)?;
    let ids: Vec<u64> = s.get(&url).await?;
    too_many("DynHost records", zone, ids.len())?;
    let mut out = Vec::new();
    for id in ids {
        match s
            .get::<Record>(&s.zone_url(zone, &["dynHost", "record", &id.to_string()])?)
            .await
        {
            Ok(r) if sub.is_none_or(|sub| r.sub_domain == sub) => out.push(Record {
                id: r.id,
                sub_domain: s.client.clean(&r.sub_domain),
                ip: s.client.clean(&r.ip),
            }),
            Ok(_) => {}
            // Deleted between the two calls.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The zone's DynHost logins, each fetched (by the name as the server gave it, as one encoded
/// path segment); their text sanitised before anything else sees it.
pub async fn list_logins(s: &Session<'_>, zone: &str) -> Result<Vec<Login>, ProvisionError> {
    let names: Vec<String> = s.get(&s.zone_url(zone, &["dynHost", "login"])?).await?;
    too_many("DynHost logins", zone, names.len())?;
    let mut out = Vec::new();
    for name in names {
        match s
            .get::<Login>(&s.zone_url(zone, &["dynHost", "login", &name])?)
            .await
        {
            Ok(l) => out.push(Login {
                login: s.client.clean(&l.login),
                sub_domain: s.client.clean(&l.sub_domain),
            }),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

fn too_many(what: &'static str, zone: &str, count: usize) -> Result<(), ProvisionError> {
    if count > MAX_LISTED {
        return Err(ProvisionError::TooMany {
            what,
            zone: zone.to_string(),
            count,
        });
    }
    Ok(())
}

/// What `rotate` did with the running agent.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The agent with this pid read its configuration again (asked over its control socket).
    Reloaded(u32),
    /// No agent holds the lock: the next start reads the new password.
    NoAgent,
}

/// `ovh rotate`, in the order that keeps a working password at every step:
/// 1. the new password is written beside the old file (not over it) and synced;
/// 2. `changePassword` at OVH; if OVH surely did not apply it (nothing sent, or a 4xx), the
///    temporary file is removed and the old password (file and login) is untouched; if the
///    answer is lost (timeout, 5xx), the file is kept and the error says how to finish;
/// 3. the new file is renamed over the old one (atomic): from here on a restart reads it;
/// 4. the running agent is told to reload (over its control socket). Until then it still holds the old password:
///    an update in that window gets `401` and stops the host, and the reload (a changed
///    password) lets it go again.
pub async fn rotate(
    s: &mut Session<'_>,
    config: &Config,
    config_path: &Path,
    hostname: &str,
    zone: Option<&str>,
    credstore: &Path,
) -> Result<Reload, ProvisionError> {
    let hostname = check_name(NameKind::Hostname, hostname)?;
    let zone = zone.map(|z| check_name(NameKind::Zone, z)).transpose()?;
    let zone = zone.as_deref();
    let host = config
        .hosts
        .iter()
        .find(|h| h.hostname == hostname)
        .ok_or_else(|| WriteError::NotInConfig(hostname.clone()))?;
    check_login(&host.login, &hostname, zone)?;
    let place = password_place_of(config_path, &hostname, credstore)?;
    let (zone, _) = find_zone(s, &hostname, zone).await?;
    if !host.login.starts_with(&format!("{zone}-")) {
        return Err(ProvisionError::LoginZone {
            login: host.login.clone(),
            zone,
        });
    }
    let pw = new_password()?;
    s.client.redact_also(&pw);
    let dest = place.path();
    prepare_dir(dest)?;
    let url = s.zone_url(&zone, &["dynHost", "login", &host.login, "changePassword"])?;
    let tmp = write_temp(dest, format!("{}\n", pw.expose()).as_bytes(), 0o600)?;
    let changed = s
        .change(
            Method::POST,
            &url,
            Some(json!({ "password": pw.expose() })),
            Some(json!({ "password": "<generated>" })),
        )
        .await;
    if let Err(e) = changed {
        // Only a definite refusal proves the old password still holds: after a timeout, a
        // cut connection or a 5xx, OVH may have the new one, and then this file is the only
        // copy of it.
        if e.surely_not_applied() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
        return Err(ProvisionError::RotateUnsure {
            login: host.login.clone(),
            hostname,
            kept: tmp.display().to_string(),
            dest: dest.display().to_string(),
            cause: match e {
                OvhError::Unreachable { message, .. } => format!("no complete answer: {message}"),
                other => other.to_string(),
            },
        });
    }
    commit(&tmp, dest).map_err(|e| WriteError::Io {
        what: "OVH has the new password, but it could not be put in place: move",
        path: format!("{} to {}", tmp.display(), dest.display()),
        message: e.to_string(),
    })?;
    s.steps.say(format!(
        "login {}: new password set, written to {} (mode 0600)",
        host.login,
        dest.display()
    ));
    let reload = reload_agent(&crate::control::Locations::of(config))?;
    match reload {
        Reload::Reloaded(pid) => s.steps.say(format!(
            "agent (pid {pid}): configuration reloaded: it uses the new password now"
        )),
        Reload::NoAgent => s
            .steps
            .say("agent: none running (no lock held): the next start reads the new password"),
    }
    Ok(reload)
}

/// Tells the running agent to read its config again, over its control socket
/// ([`crate::control::reload`]): never a signal to a pid read from the lock file, which may be a
/// one-shot `update` that a SIGHUP would kill before it saves its state.
pub fn reload_agent(at: &crate::control::Locations) -> Result<Reload, ProvisionError> {
    match crate::control::reload(at) {
        Ok(Some(pid)) => Ok(Reload::Reloaded(pid)),
        Ok(None) => Ok(Reload::NoAgent),
        Err(e) => Err(WriteError::Io {
            what: "the new password is in place, but the agent was not reloaded through",
            path: at.socket.display().to_string(),
            message: format!("{e}; reload it by hand (systemctl reload dynhostd)"),
        }
        .into()),
    }
}

/// Asks OVH to apply the zone's changed records (DynHost records take effect only then).
async fn refresh_zone(s: &mut Session<'_>, zone: &str) -> Result<(), OvhError> {
    s.change(Method::POST, &s.zone_url(zone, &["refresh"])?, None, None)
        .await?;
    let done = if s.steps.dry_run {
        "would be refreshed"
    } else {
        "refreshed"
    };
    s.steps.say(format!("zone {zone}: {done}"));
    Ok(())
}

/// `ovh remove`: deletes the host's login, and with `records` its DynHost records (then
/// refreshes the zone). A login or record already gone is not an error.
pub async fn remove(
    s: &mut Session<'_>,
    config: &Config,
    hostname: &str,
    zone: Option<&str>,
    records: bool,
) -> Result<(), ProvisionError> {
    let hostname = check_name(NameKind::Hostname, hostname)?;
    let zone = zone.map(|z| check_name(NameKind::Zone, z)).transpose()?;
    let configured = config.hosts.iter().find(|h| h.hostname == hostname);
    if let Some(h) = configured {
        check_login(&h.login, &hostname, zone.as_deref())?;
    }
    let (zone, sub) = find_zone(s, &hostname, zone.as_deref()).await?;
    let login = match configured {
        Some(h) => h.login.clone(),
        None => format!("{zone}-{}", default_suffix(&sub)),
    };
    let url = s.zone_url(&zone, &["dynHost", "login", &login])?;
    match s.change(Method::DELETE, &url, None, None).await {
        Ok(_) => s.steps.say(format!("login {login}: removed")),
        Err(e) if e.is_not_found() => s.steps.say(format!("login {login}: already gone")),
        Err(e) => return Err(e.into()),
    }
    if records {
        let found = list_records(s, &zone, Some(&sub)).await?;
        for r in &found {
            s.change(
                Method::DELETE,
                &s.zone_url(&zone, &["dynHost", "record", &r.id.to_string()])?,
                None,
                None,
            )
            .await?;
            s.steps
                .say(format!("record {hostname} {} (id {}): removed", r.ip, r.id));
        }
        if found.is_empty() {
            s.steps.say(format!("records of {hostname}: none"));
        } else {
            refresh_zone(s, &zone).await?;
        }
    }
    if config.hosts.iter().any(|h| h.hostname == hostname) {
        s.steps.say(format!(
            "config: remove the [[host]] entry of {hostname} (and its password file) by hand"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_subdomains() {
        assert_eq!(
            zone_candidates("a.home.example.com"),
            ["a.home.example.com", "home.example.com", "example.com"]
        );
        assert_eq!(zone_candidates("example.com"), ["example.com"]);
        assert_eq!(
            subdomain_in("home.example.com", "example.com").as_deref(),
            Some("home")
        );
        assert_eq!(
            subdomain_in("example.com", "example.com").as_deref(),
            Some("")
        );
        assert_eq!(subdomain_in("home.example.com", "ample.com"), None);
        assert_eq!(subdomain_in("home.example.org", "example.com"), None);
        assert_eq!(default_suffix("a.b"), "a-b");
        assert_eq!(default_suffix(""), "apex");
    }

    #[test]
    fn rules_cover_only_the_zone() {
        let rules = access_rules(Some("example.com"));
        assert!(
            rules
                .iter()
                .all(|r| r.path.starts_with("/domain/zone/example.com/") || r.path == "/auth/time")
        );
        assert!(rules.contains(&AccessRule {
            method: "POST".into(),
            path: "/domain/zone/example.com/refresh".into()
        }));
        assert!(
            !rules
                .iter()
                .any(|r| r.method == "GET" && r.path.ends_with("refresh"))
        );
    }

    #[test]
    fn passwords_are_long_random_and_plain() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_eq!(a.expose().len(), PASSWORD_CHARS);
        const { assert!(PASSWORD_CHARS >= 24) };
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "dynhostd-ovh-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn no_lock_file_means_no_agent() {
        let d = tempfile_dir().join("nolock");
        let at = crate::control::Locations {
            socket: d.join("control"),
            state_dir: d,
        };
        assert_eq!(reload_agent(&at).unwrap(), Reload::NoAgent);
    }
}
