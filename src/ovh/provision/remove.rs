//! `ovh remove`: the host's login and, on request, its DynHost records.

use super::list::list_records;
use super::names::{NameKind, check_login, check_name, default_suffix, find_zone};
use super::{ProvisionError, Session, refresh_zone};
use crate::config::Config;
use reqwest::Method;

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
