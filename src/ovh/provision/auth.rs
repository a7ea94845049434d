//! `ovh auth`: a least-privilege consumer key ([`access_rules`]), written to a 0600 file.

use super::ProvisionError;
use super::names::{NameKind, check_name};
use crate::config::write::write_secret_file;
use crate::ovh::api::{AccessRule, OvhClient};
use crate::secret::Secret;
use std::path::Path;

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
