//! Checks of single values that several sections share (`[[host]]` and `[ovh_api]`): a CA
//! file, a DNS name, a server URL.

use super::{ConfigError, Ctx};
use reqwest::Url;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

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
pub(super) fn validate_server(s: &str) -> Result<Url, String> {
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
