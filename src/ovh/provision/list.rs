//! `ovh list`: the zone's DynHost records and logins, each listing bounded by [`super::MAX_LISTED`].

use super::{Login, MAX_LISTED, ProvisionError, Record, Session};

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

pub(super) fn too_many(what: &'static str, zone: &str, count: usize) -> Result<(), ProvisionError> {
    if count > MAX_LISTED {
        return Err(ProvisionError::TooMany {
            what,
            zone: zone.to_string(),
            count,
        });
    }
    Ok(())
}
