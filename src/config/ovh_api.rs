//! The `[ovh_api]` section: the raw TOML shape and its validated form. The two secrets
//! (application secret, consumer key) take the four forms of a DynHost password through
//! [`crate::config::secret_source`], and are only read when an `ovh` command needs them: the
//! agent never touches them.

use crate::config::secrets::{SecretSource, missing_secret, secret_source};
use crate::config::{ConfigError, Ctx};
use reqwest::Url;
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The API roots by region name (ovh-dynhost.md, "The OVH API").
pub const ENDPOINTS: [(&str, &str); 3] = [
    ("ovh-eu", "https://eu.api.ovh.com/1.0"),
    ("ovh-ca", "https://ca.api.ovh.com/1.0"),
    ("ovh-us", "https://api.us.ovhcloud.com/1.0"),
];

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOvhApi {
    pub endpoint: Option<Spanned<String>>,
    pub application_key: Option<Spanned<String>>,
    pub application_secret: Option<Spanned<String>>,
    pub application_secret_file: Option<Spanned<String>>,
    pub application_secret_env: Option<Spanned<String>>,
    pub application_secret_credential: Option<Spanned<String>>,
    pub consumer_key: Option<Spanned<String>>,
    pub consumer_key_file: Option<Spanned<String>>,
    pub consumer_key_env: Option<Spanned<String>>,
    pub consumer_key_credential: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
}

impl fmt::Debug for RawOvhApi {
    // By hand: the inline secrets must not show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<Spanned<String>>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("RawOvhApi")
            .field("endpoint", &self.endpoint)
            .field("application_key", &self.application_key)
            .field("application_secret", &redacted(&self.application_secret))
            .field("application_secret_file", &self.application_secret_file)
            .field("application_secret_env", &self.application_secret_env)
            .field(
                "application_secret_credential",
                &self.application_secret_credential,
            )
            .field("consumer_key", &redacted(&self.consumer_key))
            .field("consumer_key_file", &self.consumer_key_file)
            .field("consumer_key_env", &self.consumer_key_env)
            .field("consumer_key_credential", &self.consumer_key_credential)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// A validated `[ovh_api]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OvhApiConfig {
    /// The API root, `/1.0` included, without a trailing slash.
    pub endpoint: Url,
    /// The region's name when `endpoint` was one (`ovh-eu`), for messages and `check`.
    pub region: Option<&'static str>,
    pub application_key: String,
    pub application_secret: SecretSource,
    /// None until `dynhostd ovh auth` has made one and the user put it here.
    pub consumer_key: Option<SecretSource>,
    /// Where `consumer_key_file` points, if that is its form: `ovh auth` writes the new key there.
    pub consumer_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

impl OvhApiConfig {
    /// `[ovh_api]` for `check`, secrets named by their form only.
    pub fn render_redacted(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let mut out = String::from("\n[ovh_api]\n");
        out += &format!(
            "endpoint = {}\napplication_key = {}\napplication_secret = \"<redacted>\"\n",
            q(self.region.unwrap_or(self.endpoint.as_str())),
            q(&self.application_key)
        );
        if self.consumer_key.is_some() {
            out += "consumer_key = \"<redacted>\"\n";
        } else {
            out += "# consumer_key: not set yet (dynhostd ovh auth)\n";
        }
        if let Some(ca) = &self.ca_file {
            out += &format!("ca_file = {}\n", q(&ca.display().to_string()));
        }
        out
    }
}

pub(crate) fn validate(
    raw: Spanned<RawOvhApi>,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<OvhApiConfig, ConfigError> {
    let start = raw.span().start;
    let raw = raw.into_inner();
    let key = |k: &str| format!("ovh_api.{k}");
    let (endpoint, region) = match &raw.endpoint {
        None => (
            Url::parse(ENDPOINTS[0].1).expect("built-in URL"),
            Some(ENDPOINTS[0].0),
        ),
        Some(e) => match ENDPOINTS.iter().find(|(name, _)| *name == e.get_ref()) {
            Some((name, url)) => (Url::parse(url).expect("built-in URL"), Some(*name)),
            None => (
                validate_endpoint(e.get_ref()).map_err(|m| ctx.err(e, &key("endpoint"), m))?,
                None,
            ),
        },
    };
    let application_key = raw.application_key.as_ref().ok_or_else(|| {
        ctx.err_at(
            Some(start),
            &key("application_key"),
            "missing: the application key from https://eu.api.ovh.com/createApp/ (or your region's)",
        )
    })?;
    let ak = application_key.get_ref();
    if ak.is_empty() || !ak.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ctx.err(
            application_key,
            &key("application_key"),
            "must be the letters and digits OVH gave when the application was created",
        ));
    }
    let application_secret = secret_source(
        "application_secret",
        [
            &raw.application_secret,
            &raw.application_secret_file,
            &raw.application_secret_env,
            &raw.application_secret_credential,
        ],
        &key,
        ctx,
        base,
    )?
    .ok_or_else(|| {
        ctx.err_at(
            Some(start),
            &key("application_secret"),
            missing_secret("application_secret"),
        )
    })?;
    let consumer_key = secret_source(
        "consumer_key",
        [
            &raw.consumer_key,
            &raw.consumer_key_file,
            &raw.consumer_key_env,
            &raw.consumer_key_credential,
        ],
        &key,
        ctx,
        base,
    )?;
    let consumer_key_file = raw
        .consumer_key_file
        .as_ref()
        .map(|f| base.join(f.get_ref()));
    let ca_file = match &raw.ca_file {
        None => None,
        Some(c) => Some(crate::config::fields::validate_ca_file(
            c,
            &key("ca_file"),
            ctx,
            base,
        )?),
    };
    Ok(OvhApiConfig {
        endpoint,
        region,
        application_key: ak.clone(),
        application_secret,
        consumer_key,
        consumer_key_file,
        ca_file,
    })
}

/// https only; plain http only to a loopback address (a test server), as for `server`.
fn validate_endpoint(s: &str) -> Result<Url, String> {
    let names = ENDPOINTS.map(|(n, _)| n).join("\", \"");
    let mut url =
        Url::parse(s).map_err(|e| format!("{s:?} is neither \"{names}\" nor a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{s:?}: no credentials in the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "{s:?}: the API root takes no query or fragment, like \"https://eu.api.ovh.com/1.0\""
        ));
    }
    let host = url.host_str().unwrap_or("");
    let loopback = crate::config::fields::is_loopback_host(&url);
    match url.scheme() {
        "https" if !host.is_empty() => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "{s:?}: plain http would expose the consumer key; use https (http is only allowed to a loopback address)"
            ));
        }
        _ => {
            return Err(format!(
                "{s:?}: use \"{names}\" or an https URL of the API root"
            ));
        }
    }
    // Paths are appended to the root: keep it without a trailing slash.
    let path = url.path().trim_end_matches('/').to_string();
    url.set_path(&path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use crate::config::{SecretForm, parse};
    use std::path::Path;

    fn parse_str(text: &str) -> Result<crate::config::Config, crate::config::ConfigError> {
        parse(text, None, Path::new("/etc/dynhostd"))
    }

    #[test]
    fn a_config_with_only_ovh_api_is_valid_and_reads_no_secret() {
        let c = parse_str(
            "[ovh_api]\napplication_key = \"Ak1\"\napplication_secret_file = \"ovh.secret\"\nconsumer_key_file = \"missing-yet\"\n",
        )
        .unwrap();
        assert!(c.hosts.is_empty());
        let api = c.ovh_api.unwrap();
        assert_eq!(api.endpoint.as_str(), "https://eu.api.ovh.com/1.0");
        assert_eq!(
            api.application_secret.form,
            SecretForm::File("/etc/dynhostd/ovh.secret".into())
        );
        assert_eq!(
            api.consumer_key_file.as_deref(),
            Some(Path::new("/etc/dynhostd/missing-yet"))
        );
        // Reading happens later, and names the key and the line.
        let e = api.consumer_key.unwrap().read().unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.line),
            ("ovh_api.consumer_key_file", Some(4))
        );
    }

    #[test]
    fn endpoints_and_errors() {
        let with = |extra: &str| {
            parse_str(&format!(
                "[ovh_api]\napplication_key = \"Ak1\"\napplication_secret = \"s\"\n{extra}"
            ))
        };
        let ca = with("endpoint = \"ovh-ca\"\n").unwrap().ovh_api.unwrap();
        assert_eq!(ca.endpoint.as_str(), "https://ca.api.ovh.com/1.0");
        let local = with("endpoint = \"http://127.0.0.1:8080/1.0/\"\n")
            .unwrap()
            .ovh_api
            .unwrap();
        assert_eq!(local.endpoint.as_str(), "http://127.0.0.1:8080/1.0");
        for (extra, key, needle) in [
            (
                "endpoint = \"http://api.example.net/1.0\"\n",
                "ovh_api.endpoint",
                "loopback",
            ),
            ("endpoint = \"ovh-xx\"\n", "ovh_api.endpoint", "ovh-eu"),
            (
                "application_secret_env = \"X\"\n",
                "ovh_api.application_secret_env",
                "only one",
            ),
            (
                "consumer_key_credential = \"a/b\"\n",
                "ovh_api.consumer_key_credential",
                "without '/'",
            ),
            ("token = \"x\"\n", "", "unknown field"),
        ] {
            let e = with(extra).unwrap_err();
            assert_eq!(e.key, key, "{extra}");
            assert!(e.message.contains(needle), "{extra}: {e}");
        }
        let e = parse_str("[ovh_api]\napplication_key = \"Ak1\"\n").unwrap_err();
        assert_eq!(e.key, "ovh_api.application_secret");
        assert!(e.message.contains("application_secret_file"), "{e}");
    }

    #[test]
    fn inline_secrets_never_show() {
        let c = parse_str(
            "[ovh_api]\napplication_key = \"Ak1\"\napplication_secret = \"AS-very-secret\"\nconsumer_key = \"CK-very-secret\"\n",
        )
        .unwrap();
        for shown in [
            format!("{c:?}"),
            c.render_redacted(),
            format!(
                "{:?}",
                toml::from_str::<crate::config::RawConfig>(
                    "[ovh_api]\napplication_secret = \"AS-very-secret\"\n"
                )
                .unwrap()
            ),
        ] {
            assert!(!shown.contains("very-secret"), "{shown}");
        }
        // What `check` prints parses again into the same settings, secrets aside (the fuzz
        // target config_parser checks the same).
        let again = parse_str(&c.render_redacted()).unwrap();
        let (a, mut b) = (c.ovh_api.unwrap(), again.ovh_api.unwrap());
        b.application_secret = a.application_secret.clone();
        b.consumer_key = a.consumer_key.clone();
        assert_eq!(a, b);
    }

    #[test]
    fn no_host_and_no_ovh_api_is_still_an_error() {
        let e = parse_str("[wan]\n").unwrap_err();
        assert_eq!(e.key, "host");
    }
}
