//! A client for the OVH API's signed calls (ovh-dynhost.md, "The OVH API"): the `/auth/time`
//! offset, fetched once; the `X-Ovh-*` headers and their signature; the JSON error answers
//! turned into [`OvhError`]s that say what to do.
//!
//! It reuses what the DynHost client is built from (rustls with ring, the `[http]` timeouts, a
//! CA file, no redirects) and never logs a header or a body: the consumer key travels in a
//! header, a DynHost password in a body.
//!
//! Every URL is built once, as an [`ApiUrl`], from segments the `url` crate percent-encodes one
//! by one (a login or a server-given name cannot add, remove or climb a path segment), and
//! that URL's exact text is both what is signed and what is sent. Server text (messages, a
//! `Location`, names) goes through the one sanitiser, [`crate::provider::server_text`].

use super::sign::signature;
use crate::config::ConfigError;
use crate::config::ovh_api::OvhApiConfig;
use crate::http::{ClientOptions, error_chain, install_crypto_provider};
use crate::provider::server_text;
use crate::secret::Secret;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use tracing::{debug, trace};

/// The most of an answer read: DynHost lists are short, and a server that sends forever must
/// not fill the memory of a router.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;
/// How far `/auth/time` may be from the local clock. The offset exists to absorb a router's
/// drifting clock, not a server that answers nonsense: beyond a day one of the two clocks is
/// wrong, and signing with it would only earn a `QUERY_TIME_OUT` (or sign with a time the
/// server made up).
pub const MAX_CLOCK_SKEW_SECS: i64 = 24 * 3600;
/// A consumer key is a short printable token (OVH's are 32 letters and digits).
const MAX_CONSUMER_KEY_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum OvhError {
    #[error(
        "cannot reach the OVH API at {endpoint}: {message}; check the network, and ovh_api.endpoint"
    )]
    Unreachable {
        endpoint: String,
        message: String,
        /// Whether the request may have left (false: the connection was never made).
        sent: bool,
    },
    #[error(
        "the OVH API rejected the request's signature: ovh_api.application_secret does not belong to ovh_api.application_key (or the consumer key is not the one it was issued with); copy them again from the application's page"
    )]
    InvalidSignature,
    #[error(
        "ovh_api.application_key is not known at {endpoint}: check it, and that ovh_api.endpoint is the region the application was created in"
    )]
    InvalidKey { endpoint: String },
    #[error(
        "the consumer key is not valid ({code}: not validated yet, expired or revoked): open the validation URL `dynhostd ovh auth` printed, or run `dynhostd ovh auth` again and put the new key in [ovh_api]"
    )]
    ConsumerKey { code: String },
    #[error(
        "no consumer key in [ovh_api] yet: run `dynhostd ovh auth`, open the URL it prints, then set consumer_key_file (or consumer_key_env / consumer_key_credential)"
    )]
    NoConsumerKey,
    #[error(
        "the consumer key has no right to {method} {path}: run `dynhostd ovh auth --zone {zone}` for a key that covers this zone, and put it in [ovh_api]"
    )]
    NotGranted {
        method: String,
        path: String,
        zone: String,
    },
    #[error(
        "the OVH API says this machine's clock is too far from its own ({message}); fix the clock (NTP) and try again"
    )]
    Clock { message: String },
    #[error("OVH API: {method} {path}: {status} {class}: {message}{}", query_id.as_ref().map(|q| format!(" (query id {q})")).unwrap_or_default())]
    Api {
        method: String,
        path: String,
        status: u16,
        class: String,
        message: String,
        query_id: Option<String>,
    },
    #[error("OVH API: {method} {path}: unexpected answer: {message}")]
    BadAnswer {
        method: String,
        path: String,
        message: String,
    },
    #[error(
        "the OVH API's clock (GET /auth/time: {server}) is {skew} this machine's ({local}), more than a day apart: nothing was signed or sent; fix this machine's clock (NTP), or check ovh_api.endpoint"
    )]
    ClockSkew {
        server: i64,
        local: i64,
        /// "3 days 2 h (266400 s) ahead of", or "… behind".
        skew: String,
    },
    #[error(
        "OVH API: GET /auth/time answered {answer:?}, not a Unix time after 1970 that fits: nothing was signed or sent; check ovh_api.endpoint"
    )]
    BadTime { answer: String },
    #[error(
        "OVH API: {method} {path}: answered {status}, a redirect to {location}, which is not followed (it would carry the signed request elsewhere); check ovh_api.endpoint (the scheme, the host, the /1.0 root)"
    )]
    Redirect {
        method: String,
        path: String,
        status: u16,
        location: String,
    },
    #[error(
        "{name:?} cannot be one segment of an OVH API path (empty, \".\", \"..\", a tab or a line break): nothing was sent"
    )]
    BadSegment { name: String },
    #[error(
        "OVH API: POST /auth/credential answered a consumer key that is not a short printable token ({why}): it was not written"
    )]
    BadConsumerKey { why: String },
    #[error(
        "OVH API: POST /auth/credential answered a validation URL {why}: not shown, since it could send you to log in somewhere else, and the key was not written; check ovh_api.endpoint"
    )]
    BadValidationUrl { why: String },
    #[error("cannot set up the OVH API client: {0}")]
    Setup(String),
    #[error(transparent)]
    Secret(#[from] ConfigError),
}

impl OvhError {
    /// `Client::NotFound` (a zone, login or record that does not exist).
    pub fn is_not_found(&self) -> bool {
        matches!(self, OvhError::Api { status: 404, .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, OvhError::Api { status: 409, .. })
    }

    /// Whether the API certainly did not apply the call: it never left this machine (a
    /// refused name, clock or connection), or the API answered a definite 4xx. A timeout, a
    /// cut connection, a 5xx, a redirect or an unreadable answer may follow an applied change.
    pub fn surely_not_applied(&self) -> bool {
        match self {
            OvhError::Unreachable { sent, .. } => !sent,
            OvhError::Api { status, .. } => (400..500).contains(status),
            OvhError::InvalidSignature
            | OvhError::InvalidKey { .. }
            | OvhError::ConsumerKey { .. }
            | OvhError::NoConsumerKey
            | OvhError::NotGranted { .. }
            | OvhError::Clock { .. }
            | OvhError::ClockSkew { .. }
            | OvhError::BadTime { .. }
            | OvhError::BadSegment { .. }
            | OvhError::Setup(_)
            | OvhError::Secret(_) => true,
            OvhError::BadAnswer { .. }
            | OvhError::Redirect { .. }
            | OvhError::BadConsumerKey { .. }
            | OvhError::BadValidationUrl { .. } => false,
        }
    }

    /// An "Invalid ip" `Client::BadRequest`.
    pub fn is_invalid_ip(&self) -> bool {
        matches!(self, OvhError::Api { status: 400, message, .. } if message.to_ascii_lowercase().contains("invalid ip"))
    }
}

/// The error JSON: `{class, message}`, and for 403 an `errorCode`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    class: String,
    #[serde(default)]
    message: String,
    #[serde(default, rename = "errorCode")]
    error_code: String,
}

/// One access rule of a consumer key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct AccessRule {
    pub method: String,
    pub path: String,
}

/// What `POST /auth/credential` answers.
#[derive(Deserialize)]
pub struct NewCredential {
    #[serde(rename = "consumerKey")]
    pub consumer_key: String,
    #[serde(rename = "validationUrl")]
    pub validation_url: String,
    #[serde(default)]
    pub state: String,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("consumer_key", &"<redacted>")
            .field("validation_url", &self.validation_url)
            .field("state", &self.state)
            .finish()
    }
}

pub struct OvhClient {
    http: reqwest::Client,
    /// The API root, `/1.0` included (the config's endpoint, as parsed).
    root: Url,
    application_key: String,
    application_secret: Secret,
    consumer_key: Option<Secret>,
    /// Server time minus local time, from `/auth/time`, fetched on the first signed call.
    offset: Mutex<Option<i64>>,
    /// Secrets that must not appear in an error even if the server echoes them (a generated
    /// password, besides the application secret and the consumer key).
    redact: Mutex<Vec<Secret>>,
}

impl std::fmt::Debug for OvhClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvhClient")
            .field("root", &self.root())
            .field("application_key", &self.application_key)
            .finish_non_exhaustive()
    }
}

impl OvhClient {
    /// Reads the secrets (through the config's one secret path) and builds the HTTP client.
    /// `ovh auth` makes the consumer key, so it passes `consumer_key: false`: the key is then
    /// not read (its file may not exist yet).
    pub fn new(
        cfg: &OvhApiConfig,
        opts: &ClientOptions,
        consumer_key: bool,
    ) -> Result<OvhClient, OvhError> {
        install_crypto_provider();
        let application_secret = cfg.application_secret.read()?;
        let consumer_key = match &cfg.consumer_key {
            Some(source) if consumer_key => Some(source.read()?),
            _ => None,
        };
        let https = cfg.endpoint.scheme() == "https";
        let tls = crate::http::Tls::load(https, cfg.ca_file.as_deref())
            .map_err(|e| OvhError::Setup(format!("ovh_api.ca_file: {e}")))?;
        let http = crate::http::builder(opts, &tls)
            // A redirect could carry the signed headers somewhere we weren't told to go.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| OvhError::Setup(error_chain(&e)))?;
        Ok(OvhClient {
            http,
            root: cfg.endpoint.clone(),
            application_key: cfg.application_key.clone(),
            redact: Mutex::new(
                [Some(application_secret.clone()), consumer_key.clone()]
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
            application_secret,
            consumer_key,
            offset: Mutex::new(None),
        })
    }

    /// The API root as text, `/1.0` included, no trailing slash.
    pub fn root(&self) -> &str {
        self.root.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under the root, each segment percent-encoded as one (so `/`,
    /// `?`, `%` and the like in a login stay inside it), and the query pairs form-encoded.
    /// Refused: a segment the encoder would drop or change (empty, `.`, `..`, a tab or a line
    /// break): sending another path than the one named is what this type prevents.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<ApiUrl, OvhError> {
        api_url(&self.root, segments, query).map_err(|bad| match bad {
            Some(name) => OvhError::BadSegment {
                name: self.clean(name),
            },
            None => OvhError::Setup("ovh_api.endpoint cannot hold a path".into()),
        })
    }

    /// [`OvhClient::url`] for `/domain/zone/{zone}/{rest…}`.
    pub fn zone_url(
        &self,
        zone: &str,
        rest: &[&str],
        query: &[(&str, &str)],
    ) -> Result<ApiUrl, OvhError> {
        let mut segments = vec!["domain", "zone", zone];
        segments.extend_from_slice(rest);
        self.url(&segments, query)
    }

    /// Keeps `secret` out of every later error message.
    pub fn redact_also(&self, secret: &Secret) {
        self.redact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.clone());
    }

    /// Server time minus local time, asked once (`GET /auth/time`, unsigned, a bare integer).
    /// A time that is not positive, does not fit, or is more than [`MAX_CLOCK_SKEW_SECS`] from
    /// the local clock is refused before anything is signed with it.
    async fn offset(&self) -> Result<i64, OvhError> {
        if let Some(o) = *self.offset.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(o);
        }
        let url = self.url(&["auth", "time"], &[])?;
        let (status, _, body) = self.send(Method::GET, &url, None, false).await?;
        let text = String::from_utf8_lossy(&body);
        if status != 200 {
            return Err(self.error(&Method::GET, &url, status, None, &body));
        }
        let server = match text.trim().parse::<i64>() {
            Ok(t) if t > 0 => t,
            _ => {
                return Err(OvhError::BadTime {
                    answer: self.clean(text.trim()),
                });
            }
        };
        let local = local_now();
        let offset = match server.checked_sub(local) {
            Some(o) if o.abs() <= MAX_CLOCK_SKEW_SECS => o,
            o => {
                return Err(OvhError::ClockSkew {
                    server,
                    local,
                    skew: skew_words(o),
                });
            }
        };
        debug!(offset, "OVH API clock offset");
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) = Some(offset);
        Ok(offset)
    }

    /// A signed call to `url` (from [`OvhClient::url`]); `body` is sent as compact JSON and
    /// signed byte for byte. `null` answers deserialize into `()`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &ApiUrl,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        if self.consumer_key.is_none() {
            return Err(OvhError::NoConsumerKey);
        }
        let (status, query_id, answer) = self.send(method.clone(), url, body, true).await?;
        if !(200..300).contains(&status) {
            return Err(self.error(&method, url, status, query_id, &answer));
        }
        let answer = if answer.iter().all(u8::is_ascii_whitespace) {
            b"null".to_vec()
        } else {
            answer
        };
        serde_json::from_slice(&answer).map_err(|e| OvhError::BadAnswer {
            method: method.to_string(),
            path: url.path().to_string(),
            message: self.clean(&e.to_string()),
        })
    }

    /// `POST /auth/credential`: a new consumer key with these rules, pending the user's
    /// approval at its validation URL. Carries the application key only. The key must be a
    /// short printable token and the URL https on the endpoint's site (see
    /// [`validation_url_ok`]); otherwise neither is given back, so nothing is written.
    pub async fn request_credential(
        &self,
        rules: &[AccessRule],
        redirection: Option<&str>,
    ) -> Result<NewCredential, OvhError> {
        let mut body = serde_json::json!({ "accessRules": rules });
        if let Some(r) = redirection {
            body["redirection"] = r.into();
        }
        let url = self.url(&["auth", "credential"], &[])?;
        let (status, query_id, answer) = self.send(Method::POST, &url, Some(&body), false).await?;
        if !(200..300).contains(&status) {
            return Err(self.error(&Method::POST, &url, status, query_id, &answer));
        }
        let mut new: NewCredential =
            serde_json::from_slice(&answer).map_err(|e| OvhError::BadAnswer {
                method: "POST".into(),
                path: url.path().into(),
                message: self.clean(&e.to_string()),
            })?;
        // Checked before anything else sees it: the key is a secret (never in a message), the
        // URL is what the user will log in at.
        let key = &new.consumer_key;
        let chars = key.chars().count();
        if key.is_empty()
            || chars > MAX_CONSUMER_KEY_CHARS
            || !key.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(OvhError::BadConsumerKey {
                why: format!(
                    "{chars} characters{}",
                    if key.chars().all(|c| c.is_ascii_graphic()) {
                        ""
                    } else {
                        ", some of them spaces, control or non-ASCII characters"
                    }
                ),
            });
        }
        // Refused, the URL is not repeated (it could be copied and opened): its host is.
        let shown = validation_url_ok(&self.root, &new.validation_url).map_err(|why| {
            let host = Url::parse(&new.validation_url)
                .ok()
                .and_then(|u| u.host_str().map(|h| self.clean(h)))
                .unwrap_or_else(|| "no host".into());
            OvhError::BadValidationUrl {
                why: format!("{why} ({host})"),
            }
        })?;
        new.validation_url = shown;
        Ok(new)
    }

    /// One exchange: (status, X-Ovh-QueryID, body up to [`MAX_ANSWER_BYTES`]). `signed` adds
    /// the consumer key and the signature; unsigned calls carry the application key only
    /// (`/auth/time` not even that). A redirect is an error: it is not followed.
    async fn send(
        &self,
        method: Method,
        url: &ApiUrl,
        body: Option<&serde_json::Value>,
        signed: bool,
    ) -> Result<(u16, Option<String>, Vec<u8>), OvhError> {
        let path = url.path();
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).expect("JSON values serialize"),
            None => Vec::new(),
        };
        let mut headers = HeaderMap::new();
        if path != "/auth/time" {
            headers.insert(
                "X-Ovh-Application",
                header(&self.application_key, false, "ovh_api.application_key")?,
            );
        }
        if signed && let Some(ck) = &self.consumer_key {
            let t = local_now() + self.offset_boxed().await?;
            // The text of the very `Url` handed to the HTTP client below: what is signed is
            // what goes on the wire (reqwest sends a `Url` as it is).
            let sig = signature(
                &self.application_secret,
                ck,
                method.as_str(),
                url.as_str(),
                &bytes,
                t,
            );
            headers.insert(
                "X-Ovh-Consumer",
                header(ck.expose(), true, "ovh_api.consumer_key")?,
            );
            headers.insert("X-Ovh-Timestamp", HeaderValue::from(t));
            headers.insert("X-Ovh-Signature", header(&sig, true, "signature")?);
        }
        if body.is_some() {
            headers.insert(
                reqwest::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        // The method and path only: the query never holds a secret, headers and bodies may.
        trace!(%method, path, "OVH API call");
        let unreachable = |e: reqwest::Error| OvhError::Unreachable {
            endpoint: self.root().to_string(),
            message: self.clean(&error_chain(&e)),
            sent: !e.is_connect(),
        };
        let mut response = self
            .http
            .request(method.clone(), url.url.clone())
            .headers(headers)
            .body(bytes)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .map(|v| self.clean(&String::from_utf8_lossy(v.as_bytes())))
                .filter(|l| !l.is_empty())
                .unwrap_or_else(|| "nowhere (no Location)".into());
            return Err(OvhError::Redirect {
                method: method.to_string(),
                path: path.to_string(),
                status,
                location,
            });
        }
        let query_id = response
            .headers()
            .get("X-Ovh-QueryID")
            .and_then(|v| v.to_str().ok())
            .map(|v| self.clean(v));
        let mut answer = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            let room = MAX_ANSWER_BYTES.saturating_sub(answer.len());
            answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if answer.len() >= MAX_ANSWER_BYTES {
                break;
            }
        }
        debug!(%method, path, status, "OVH API answer");
        Ok((status, query_id, answer))
    }

    /// `offset` is async and `send` calls it: boxed to break the recursion.
    fn offset_boxed(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<i64, OvhError>> + Send + '_>>
    {
        Box::pin(self.offset())
    }

    fn error(
        &self,
        method: &Method,
        url: &ApiUrl,
        status: u16,
        query_id: Option<String>,
        answer: &[u8],
    ) -> OvhError {
        let path = url.path();
        let body: ErrorBody = serde_json::from_slice(answer).unwrap_or_else(|_| ErrorBody {
            message: String::from_utf8_lossy(answer).into_owned(),
            ..ErrorBody::default()
        });
        let message = self.clean(&body.message);
        let zone = path
            .strip_prefix("/domain/zone/")
            .and_then(|rest| rest.split(['/', '?']).next())
            .unwrap_or("ZONE")
            .to_string();
        match (status, body.error_code.as_str()) {
            (403, "INVALID_SIGNATURE") => OvhError::InvalidSignature,
            (403, "INVALID_KEY") => OvhError::InvalidKey {
                endpoint: self.root().to_string(),
            },
            (403, code @ ("INVALID_CREDENTIAL" | "NOT_CREDENTIAL")) => OvhError::ConsumerKey {
                code: code.to_string(),
            },
            (403, "NOT_GRANTED_CALL") => OvhError::NotGranted {
                method: method.to_string(),
                path: path.split('?').next().unwrap_or(path).to_string(),
                zone,
            },
            (400, "QUERY_TIME_OUT") => OvhError::Clock { message },
            _ => OvhError::Api {
                method: method.to_string(),
                path: path.to_string(),
                status,
                class: self.clean(&body.class),
                message,
                query_id,
            },
        }
    }

    /// Server text made safe to print: known secrets masked, then the provider's sanitiser
    /// (control, format and bidi characters, separators shown as `?`), length capped.
    pub fn clean(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in self.redact.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !s.expose().is_empty() {
                text = text.replace(s.expose(), server_text::REDACTED);
            }
        }
        let mut out = server_text::clean(&text, MAX_MESSAGE_CHARS);
        if text.chars().count() > MAX_MESSAGE_CHARS {
            out.push('…');
        }
        out
    }
}

/// [`OvhClient::url`]'s work; the error is the refused segment (None: a root without a path).
fn api_url<'a>(
    root: &Url,
    segments: &[&'a str],
    query: &[(&str, &str)],
) -> Result<ApiUrl, Option<&'a str>> {
    // The encoder drops tabs and line breaks and skips dot segments: such a name would be sent
    // as another one. Other characters, control ones included, are percent-encoded.
    if let Some(bad) = segments
        .iter()
        .find(|s| s.is_empty() || **s == "." || **s == ".." || s.contains(['\t', '\n', '\r']))
    {
        return Err(Some(bad));
    }
    let mut url = root.clone();
    let root_len = url.as_str().trim_end_matches('/').len();
    url.path_segments_mut()
        .map_err(|()| None)?
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(ApiUrl { url, root_len })
}

/// A URL of the API, built once by [`OvhClient::url`]: signed and sent as this one text.
#[derive(Debug, Clone)]
pub struct ApiUrl {
    url: Url,
    /// Length of the root's text (no trailing slash): what follows is [`ApiUrl::path`].
    root_len: usize,
}

impl ApiUrl {
    /// The whole URL, as signed and sent.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The path and query under the root (`/domain/zone/…`), encoded as sent: for messages
    /// and `--dry-run`, and free of control characters by construction.
    pub fn path(&self) -> &str {
        &self.url.as_str()[self.root_len..]
    }
}

/// Whether `answer`, a `validationUrl`, may be shown to a user who will log in there: https,
/// on the endpoint's site. Gives the URL as parsed (percent-encoded, so no control or bidi
/// character survives). An answer could otherwise send the user to log in, with their OVH
/// account, anywhere.
///
/// The site is the endpoint host's registrable domain: OVH validates keys on its API hosts
/// (`https://eu.api.ovh.com/auth/?credentialToken=…` for `eu.api.ovh.com`, `ca.api.ovh.com`
/// likewise) and its login pages live elsewhere under the same domain (`www.ovh.com`), so
/// the exact host would be too strict and any host too loose. Without a public-suffix list the
/// registrable domain is taken as the host's last two labels, or three under a country code's
/// generic second level (`co.uk`, `com.au`, …) so that a custom endpoint never widens to a
/// public suffix. An endpoint given as an IP address or a single label admits only itself.
/// Plain http passes only when both the endpoint and the URL are on loopback (the one place
/// the config allows it: a test server).
pub fn validation_url_ok(endpoint: &Url, answer: &str) -> Result<String, &'static str> {
    let url = Url::parse(answer).map_err(|_| "that is not a URL")?;
    let loopback = |u: &Url| crate::config::is_loopback_host(u);
    match url.scheme() {
        "https" => {}
        "http" if loopback(endpoint) && loopback(&url) => {}
        _ => return Err("that is not https"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("that carries a user name");
    }
    let (Some(host), Some(ours)) = (url.host_str(), endpoint.host_str()) else {
        return Err("without a host");
    };
    let site = registrable_domain(ours);
    let on_site = host == ours
        || site
            .is_some_and(|d| host == d || host.strip_suffix(d).is_some_and(|h| h.ends_with('.')));
    if !on_site {
        return Err("on another site than the endpoint's");
    }
    Ok(url.to_string())
}

/// `ovh.com` for `eu.api.ovh.com`, `example.co.uk` for `api.example.co.uk`; None for an IP
/// address or a single label (see [`validation_url_ok`]).
fn registrable_domain(host: &str) -> Option<&str> {
    /// Second levels that countries hand out like top-level domains.
    const GENERIC_SECOND: &[&str] = &["ac", "co", "com", "edu", "gov", "net", "org", "ne", "or"];
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 2 && labels[n - 1].len() == 2 && GENERIC_SECOND.contains(&labels[n - 2]) {
        3
    } else {
        2
    };
    if n < keep {
        return None;
    }
    let skip: usize = labels[..n - keep].iter().map(|l| l.len() + 1).sum();
    Some(&host[skip..])
}

fn header(value: &str, sensitive: bool, what: &str) -> Result<HeaderValue, OvhError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| OvhError::Setup(format!("{what} holds characters a header cannot carry")))?;
    v.set_sensitive(sensitive);
    Ok(v)
}

/// How far the server's clock is from ours, and which way; `None`: the difference overflowed.
fn skew_words(skew: Option<i64>) -> String {
    let Some(s) = skew else {
        return "too far ahead of".into();
    };
    let a = s.unsigned_abs();
    format!(
        "{} days {} h ({a} s) {}",
        a / 86_400,
        a % 86_400 / 3600,
        if s > 0 { "ahead of" } else { "behind" }
    )
}

fn local_now() -> i64 {
    i64::try_from(crate::clock::UnixTime::system().0).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Url {
        Url::parse("https://eu.api.ovh.com/1.0").unwrap()
    }

    #[test]
    fn each_name_is_one_encoded_segment_and_dot_segments_are_refused() {
        let u = api_url(
            &root(),
            &[
                "domain",
                "zone",
                "example.com",
                "dynHost",
                "login",
                "a/../b c?d#e%f\\g\u{202e}\u{1b}",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "https://eu.api.ovh.com/1.0/domain/zone/example.com/dynHost/login/a%2F..%2Fb%20c%3Fd%23e%25f%5Cg%E2%80%AE%1B"
        );
        assert_eq!(
            u.path(),
            "/domain/zone/example.com/dynHost/login/a%2F..%2Fb%20c%3Fd%23e%25f%5Cg%E2%80%AE%1B"
        );
        let q = api_url(
            &root(),
            &["domain", "zone", "example.com", "dynHost", "record"],
            &[("subDomain", "a b&c=d")],
        )
        .unwrap();
        assert_eq!(
            q.path(),
            "/domain/zone/example.com/dynHost/record?subDomain=a+b%26c%3Dd"
        );
        // What the url crate would drop or rewrite is refused, not sent as another path.
        for bad in ["", ".", "..", "a\nb", "a\tb", "\r"] {
            assert_eq!(
                api_url(&root(), &["domain", "zone", bad], &[]).unwrap_err(),
                Some(bad),
                "{bad:?}"
            );
        }
        // A root given with a trailing slash or none at all.
        let bare = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            api_url(&bare, &["auth", "time"], &[]).unwrap().as_str(),
            "http://127.0.0.1:8080/auth/time"
        );
        assert_eq!(
            api_url(&bare, &["auth", "time"], &[]).unwrap().path(),
            "/auth/time"
        );
    }

    /// The signature is computed over `ApiUrl::as_str()`; the request reqwest builds from the
    /// same `ApiUrl` must carry exactly that text (no second normalisation in between).
    #[test]
    fn the_request_carries_the_signed_url() {
        install_crypto_provider();
        let hostile = "example.com-a b/../../me?x=1#y";
        let u = api_url(
            &Url::parse("https://EU.api.ovh.com:443/1.0/").unwrap(),
            &["domain", "zone", "example.com", "dynHost", "login", hostile],
            &[("subDomain", "*")],
        )
        .unwrap();
        let req = reqwest::Client::new()
            .request(Method::GET, u.url.clone())
            .build()
            .unwrap();
        assert_eq!(req.url().as_str(), u.as_str());
        assert!(
            u.as_str().starts_with("https://eu.api.ovh.com/1.0/domain/zone/example.com/dynHost/login/example.com-a%20b%2F..%2F..%2Fme%3Fx=1%23y?subDomain=*"),
            "{}",
            u.as_str()
        );
        let sig = |url: &str| signature(&Secret::new("as"), &Secret::new("ck"), "GET", url, b"", 1);
        assert_eq!(sig(req.url().as_str()), sig(u.as_str()));
    }

    #[test]
    fn validation_urls_must_be_https_on_the_endpoints_site() {
        let eu = root();
        for ok in [
            "https://eu.api.ovh.com/auth/?credentialToken=abc",
            "https://www.ovh.com/auth/?credentialToken=abc",
            "https://ovh.com/x",
        ] {
            assert!(validation_url_ok(&eu, ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://eu.api.ovh.com/auth/?credentialToken=abc",
            "https://eu.api.ovh.com.evil.example/auth/",
            "https://evilovh.com/auth/",
            "https://ovh.com@evil.example/auth/",
            "https://user@eu.api.ovh.com/auth/",
            "javascript:alert(1)",
            "eu.api.ovh.com/auth/",
            "https://203.0.113.5/auth/",
        ] {
            assert!(validation_url_ok(&eu, bad).is_err(), "{bad}");
        }
        // What is shown is the parsed URL: nothing that could drive a terminal survives.
        let shown = validation_url_ok(
            &eu,
            "https://eu.api.ovh.com/auth/?t=a\u{1b}]8;;https://evil.example\u{7}b\u{202e}c",
        )
        .unwrap();
        assert!(shown.chars().all(|c| c.is_ascii_graphic()), "{shown}");
        // A loopback test server may use http; a real endpoint may not, nor send elsewhere.
        let local = Url::parse("http://127.0.0.1:8080/1.0").unwrap();
        assert!(validation_url_ok(&local, "http://127.0.0.1:8080/auth/?credentialToken=a").is_ok());
        assert!(validation_url_ok(&local, "http://127.0.0.2/auth/").is_err());
        assert!(validation_url_ok(&local, "https://eu.api.ovh.com/auth/").is_err());
    }

    #[test]
    fn a_skew_says_how_far_and_which_way() {
        assert_eq!(
            skew_words(Some(2 * 86_400 + 7200)),
            "2 days 2 h (180000 s) ahead of"
        );
        assert_eq!(skew_words(Some(-90_000)), "1 days 1 h (90000 s) behind");
        assert_eq!(skew_words(None), "too far ahead of");
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable_domain("eu.api.ovh.com"), Some("ovh.com"));
        assert_eq!(
            registrable_domain("api.us.ovhcloud.com"),
            Some("ovhcloud.com")
        );
        assert_eq!(registrable_domain("ovh.com"), Some("ovh.com"));
        assert_eq!(
            registrable_domain("api.example.co.uk"),
            Some("example.co.uk")
        );
        assert_eq!(registrable_domain("co.uk"), None);
        assert_eq!(registrable_domain("localhost"), None);
        assert_eq!(registrable_domain("127.0.0.1"), None);
        assert_eq!(registrable_domain("[::1]"), None);
    }

    #[test]
    fn only_a_definite_refusal_means_not_applied() {
        let api = |status| OvhError::Api {
            method: "POST".into(),
            path: "/x".into(),
            status,
            class: String::new(),
            message: String::new(),
            query_id: None,
        };
        assert!(api(400).surely_not_applied() && api(409).surely_not_applied());
        assert!(!api(500).surely_not_applied() && !api(302).surely_not_applied());
        let unreachable = |sent| OvhError::Unreachable {
            endpoint: String::new(),
            message: String::new(),
            sent,
        };
        assert!(unreachable(false).surely_not_applied());
        assert!(!unreachable(true).surely_not_applied());
    }
}
