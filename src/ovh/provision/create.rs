//! `ovh provision`: zone, login, password, records and config entry, each step reusing what
//! exists, so that a second run changes nothing and says so.

use super::list::list_records;
use super::names::{NameKind, check_login, check_name, default_suffix, find_zone};
use super::{Login, ProvisionError, Session, new_password, refresh_zone};
use crate::config::write::{
    ConfigWritten, PasswordPlace, append_to_config, check_dir, host_entry, password_already_in,
    password_place_of, write_secret_file,
};
use crate::config::{Config, FamilySet};
use crate::ovh::api::OvhError;
use crate::record::Family;
use crate::secret::Secret;
use crate::wan::policy::WanChoice;
use reqwest::Method;
use serde_json::json;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

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
                config.wan.uplinks.as_ref(),
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
