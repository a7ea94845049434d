//! Names: checking what an `ovh` command was given (hostname, zone, login), and finding the
//! zone that holds a hostname.

use super::{ProvisionError, Session};
use crate::ovh::api::OvhError;

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
pub(super) fn check_login(
    login: &str,
    hostname: &str,
    zone: Option<&str>,
) -> Result<(), ProvisionError> {
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
