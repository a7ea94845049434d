//! The panel steps as API calls and file writes: `auth` (a least-privilege consumer key),
//! `provision` (zone, login, password, records, config entry), `list`, `rotate` and `remove`.
//! Every step says what it did or would do in [`Steps`]; `cli` prints them.
//!
//! Secrets: a generated password goes to a 0600 file (or the systemd credential store) before
//! any call uses it, so a failure never leaves a login whose password nobody has. It is never
//! printed, logged, or put in an error.

//!
//! One file per command, each importing from this one (the error, [`Session`], [`Steps`]) and
//! from [`names`], never from another command but `list` (which `provision` and `remove` use):
//! [`auth`], [`create`] (`provision`), [`list`], [`rotate`], [`remove`]; [`names`] checks
//! the names given and finds the zone.

mod auth;
mod create;
mod list;
mod names;
mod remove;
mod rotate;

pub use auth::{access_rules, auth};
pub use create::{ProvisionRequest, provision};
pub use list::{list_logins, list_records};
pub use names::{NameKind, check_name, default_suffix, find_zone, subdomain_in, zone_candidates};
pub use remove::remove;
pub use rotate::{Reload, reload_agent, rotate};

use super::api::{ApiUrl, OvhClient, OvhError};
use crate::config::ConfigError;
use crate::config::write::WriteError;
use crate::record::Family;
use crate::secret::Secret;
use reqwest::Method;
use serde::Deserialize;
use std::net::IpAddr;

/// Length of a generated DynHost password: "24+ random characters", and short of the 31 some
/// OVH forms cap passwords at.
pub const PASSWORD_CHARS: usize = 28;
/// Where `ovh auth` puts a new consumer key unless `consumer_key_file` names a file.
pub const CONSUMER_KEY_FILE: &str = "ovh-consumer-key";
/// Where `--credential` puts a password (shared with `import`).
pub use crate::config::write::CREDSTORE;

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

/// The most ids or names a listing walks: each is one signed call, made one after the other.
/// A DynHost zone holds a handful; a server that lists more is refused at once rather than
/// walked for hours.
pub const MAX_LISTED: usize = 1000;

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

#[cfg(test)]
mod tests;
