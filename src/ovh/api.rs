//! A client for the OVH API's signed calls (ovh-dynhost.md, "The OVH API"): the `/auth/time`
//! offset, fetched once; the `X-Ovh-*` headers and their signature; the JSON error answers
//! turned into [`OvhError`]s that say what to do.
//!
//! It reuses what the DynHost client is built from (rustls with ring, the `[http]` timeouts, a
//! CA file, no redirects) and never logs a header or a body: the consumer key travels in a
//! header, a DynHost password in a body.

use super::config::OvhApiConfig;
use super::sign::signature;
use crate::config::ConfigError;
use crate::provider::client::{ClientOptions, USER_AGENT, install_crypto_provider};
use crate::secret::Secret;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{debug, trace};

/// The most of an answer read: DynHost lists are short, and a server that sends forever must
/// not fill the memory of a router.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Longest server message kept in an error.
const MAX_MESSAGE_CHARS: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum OvhError {
    #[error(
        "cannot reach the OVH API at {endpoint}: {message}; check the network, and ovh_api.endpoint"
    )]
    Unreachable { endpoint: String, message: String },
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
    /// The API root, `/1.0` included, no trailing slash.
    root: String,
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
            .field("root", &self.root)
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
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.timeout)
            // A redirect could carry the signed headers somewhere we weren't told to go.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &cfg.ca_file {
            let pem = crate::fsread::read(path, crate::fsread::CA_CAP)
                .map_err(|e| OvhError::Setup(format!("ovh_api.ca_file {e}")))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| OvhError::Setup(format!("ovh_api.ca_file {}: {e}", path.display())))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| OvhError::Setup(e.to_string()))?;
        Ok(OvhClient {
            http,
            root: cfg.endpoint.as_str().trim_end_matches('/').to_string(),
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

    pub fn root(&self) -> &str {
        &self.root
    }

    /// Keeps `secret` out of every later error message.
    pub fn redact_also(&self, secret: &Secret) {
        self.redact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(secret.clone());
    }

    /// Server time minus local time, asked once (`GET /auth/time`, unsigned, a bare integer).
    async fn offset(&self) -> Result<i64, OvhError> {
        if let Some(o) = *self.offset.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(o);
        }
        let (status, _, body) = self.send(Method::GET, "/auth/time", None, false).await?;
        let text = String::from_utf8_lossy(&body);
        let server: i64 = match (status, text.trim().parse()) {
            (200, Ok(t)) => t,
            _ => {
                return Err(OvhError::BadAnswer {
                    method: "GET".into(),
                    path: "/auth/time".into(),
                    message: format!("{status} {}", self.clean(&text)),
                });
            }
        };
        let offset = server - local_now();
        debug!(offset, "OVH API clock offset");
        *self.offset.lock().unwrap_or_else(|e| e.into_inner()) = Some(offset);
        Ok(offset)
    }

    /// A signed call. `path` starts with `/` and may carry a query string; `body` is sent as
    /// compact JSON and signed byte for byte. `null` answers deserialize into `()`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, OvhError> {
        if self.consumer_key.is_none() {
            return Err(OvhError::NoConsumerKey);
        }
        let (status, query_id, answer) = self.send(method.clone(), path, body, true).await?;
        if !(200..300).contains(&status) {
            return Err(self.error(&method, path, status, query_id, &answer));
        }
        let answer = if answer.iter().all(u8::is_ascii_whitespace) {
            b"null".to_vec()
        } else {
            answer
        };
        serde_json::from_slice(&answer).map_err(|e| OvhError::BadAnswer {
            method: method.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// `POST /auth/credential`: a new consumer key with these rules, pending the user's
    /// approval at its validation URL. Carries the application key only.
    pub async fn request_credential(
        &self,
        rules: &[AccessRule],
        redirection: Option<&str>,
    ) -> Result<NewCredential, OvhError> {
        let mut body = serde_json::json!({ "accessRules": rules });
        if let Some(r) = redirection {
            body["redirection"] = r.into();
        }
        let path = "/auth/credential";
        let (status, query_id, answer) = self.send(Method::POST, path, Some(&body), false).await?;
        if !(200..300).contains(&status) {
            return Err(self.error(&Method::POST, path, status, query_id, &answer));
        }
        serde_json::from_slice(&answer).map_err(|e| OvhError::BadAnswer {
            method: "POST".into(),
            path: path.into(),
            message: e.to_string(),
        })
    }

    /// One exchange: (status, X-Ovh-QueryID, body up to [`MAX_ANSWER_BYTES`]). `signed` adds
    /// the consumer key and the signature; unsigned calls carry the application key only
    /// (`/auth/time` not even that).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        signed: bool,
    ) -> Result<(u16, Option<String>, Vec<u8>), OvhError> {
        let url = format!("{}{path}", self.root);
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
            let sig = signature(
                &self.application_secret,
                ck,
                method.as_str(),
                &url,
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
            endpoint: self.root.clone(),
            message: self.clean(&error_chain(&e)),
        };
        let mut response = self
            .http
            .request(method.clone(), &url)
            .headers(headers)
            .body(bytes)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
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
        path: &str,
        status: u16,
        query_id: Option<String>,
        answer: &[u8],
    ) -> OvhError {
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
                endpoint: self.root.clone(),
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

    /// Server text made safe to print: known secrets masked, control and format characters
    /// dropped, length capped.
    fn clean(&self, text: &str) -> String {
        let mut text = text.to_string();
        for s in self.redact.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            if !s.expose().is_empty() {
                text = text.replace(s.expose(), "<redacted>");
            }
        }
        let mut out: String = text
            .chars()
            .filter(|c| !c.is_control() && !is_format(*c))
            .take(MAX_MESSAGE_CHARS)
            .collect();
        if text.chars().count() > MAX_MESSAGE_CHARS {
            out.push('…');
        }
        out
    }
}

/// Bidi and other invisible format characters (Unicode Cf) that could make a message lie.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{00ad}')
}

fn header(value: &str, sensitive: bool, what: &str) -> Result<HeaderValue, OvhError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| OvhError::Setup(format!("{what} holds characters a header cannot carry")))?;
    v.set_sensitive(sensitive);
    Ok(v)
}

fn local_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// "error sending request: …: Connection refused", the sources joined, repeats dropped.
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let s = e.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_characters_are_dropped() {
        assert!(is_format('\u{202e}'));
        assert!(!is_format('a'));
    }
}
