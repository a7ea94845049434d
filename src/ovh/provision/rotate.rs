//! `ovh rotate`: a new password for a login, written where the entry keeps it, then the running
//! agent told to reload over its control socket.

use super::names::{NameKind, check_login, check_name, find_zone};
use super::{ProvisionError, Session, new_password};
use crate::config::Config;
use crate::config::write::{WriteError, commit, password_place_of, prepare_dir, write_temp};
use crate::ovh::api::OvhError;
use reqwest::Method;
use serde_json::json;
use std::path::Path;

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
