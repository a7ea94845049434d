//! The HTTP side of a DynHost update: one GET with Basic auth, a capped read of the reply, and
//! every failure turned into a [`Reply`] for [`classify`](super::classify) and
//! [`verdict`](super::verdict) to judge.
//!
//! TLS is rustls with ring, verifying against the system roots plus an optional CA file. A TLS
//! failure is reported as such; there is no fallback without verification.

use super::server_text::Secrets;
use super::{Provider, Reply, TransportKind, classify};
use crate::secret::Secret;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Read at most this much of a body, even if the server sends forever. Only the first line
/// matters (ovh-dynhost.md, "Replies"), and real replies are a few dozen bytes.
pub const MAX_REPLY_BYTES: usize = 4096;

/// How long an idle kept-alive connection to the provider is kept.
const POOL_IDLE: Duration = Duration::from_secs(5);

pub use crate::http::{ClientError, ClientOptions, USER_AGENT, install_crypto_provider};
use crate::http::{MAX_ERROR_CHARS as MAX_MESSAGE_CHARS, Tls, error_chain};

/// One update request. Credentials travel only in the Authorization header, never in the URL.
pub struct UpdateRequest<'a> {
    pub provider: Provider,
    pub server: &'a reqwest::Url,
    pub hostname: &'a str,
    pub login: &'a str,
    pub password: &'a Secret,
    pub ip: IpAddr,
}

impl fmt::Debug for UpdateRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateRequest")
            .field("provider", &self.provider)
            .field("server", &without_userinfo(self.server).as_str())
            .field("hostname", &self.hostname)
            .field("login", &self.login)
            .field("password", &self.password)
            .field("ip", &self.ip)
            .finish()
    }
}

/// An HTTP client for DynHost updates. Cheap to clone (reqwest's client is an `Arc` inside), and
/// clones share one connection pool.
#[derive(Clone)]
pub struct DynHostClient {
    http: reqwest::Client,
    ca_file: Option<PathBuf>,
    /// The roots it was built with: a reload keeps the client while they are current.
    tls: Tls,
}

impl fmt::Debug for DynHostClient {
    // By hand: nothing of reqwest's internals (or anything it might hold one day) gets printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynHostClient")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

impl DynHostClient {
    /// The HTTP client itself, for the notifications (src/notify/): the same settings (no
    /// redirects, a short-lived pool), so one client serves both.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A client for servers reached over `https` (`https` true: the system roots plus the
    /// PEM certificates in `ca_file`) or plain HTTP only (no roots read: [`Tls`]).
    pub fn new(
        https: bool,
        ca_file: Option<&Path>,
        opts: &ClientOptions,
    ) -> Result<Self, ClientError> {
        let tls = Tls::load(https, ca_file)?;
        let http = crate::http::builder(opts, &tls)
            // A redirect would carry the request (and, to the same host, the credentials)
            // somewhere we weren't told to go, maybe over plain HTTP. A moved endpoint is a
            // configuration matter: classify reports the 3xx and the verdict says so.
            .redirect(reqwest::redirect::Policy::none())
            // Keep a connection for a burst of updates (1000 hosts reuse a few), but not for
            // the long idle stretches in between: reqwest's default (90 s) would wake an idle
            // agent once more just to close it.
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .map_err(|e| ClientError::Build(error_chain(&e)))?;
        Ok(DynHostClient {
            http,
            ca_file: ca_file.map(Path::to_path_buf),
            tls,
        })
    }

    /// Sends one update and reads the answer. Never fails: a missing answer is a
    /// [`Reply::Transport`].
    pub async fn update(&self, req: &UpdateRequest<'_>) -> Reply {
        let url = update_url(req);
        let redact = |message: String| redact(message, req);

        // basic_auth marks the header sensitive and it goes out with the first request, not
        // after a 401 challenge (ovh-dynhost.md: "sent up front").
        let sent = self
            .http
            .get(url)
            .basic_auth(req.login, Some(req.password.expose()))
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return transport(&err, redact),
        };

        let status = response.status().as_u16();
        // The wall clock is read here, in the I/O shell; the parser is given it.
        let retry_after = retry_after(response.headers(), crate::clock::UnixTime::system().0);
        let mut body = Vec::with_capacity(128);
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if push_capped(&mut body, &chunk) {
                        // Enough: dropping the response closes the connection on a server that
                        // would send forever.
                        break;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    // The status and a complete first line are an answer even if the rest of
                    // the body got lost; a 2xx with no full line tells us nothing.
                    let answered = body.contains(&b'\n') || !(200..300).contains(&status);
                    if !answered {
                        return transport(&err, redact);
                    }
                    break;
                }
            }
        }
        // The provider border: the password and its Basic form are masked in the raw body
        // before anything reads it, classify cleans and cuts what it keeps, and the result is
        // masked once more (a JSON message may spell the password with escapes).
        let secrets = Secrets::of(req.login, req.password);
        let body = secrets.redact_bytes(&body);
        let reply = classify(req.provider, status, retry_after, &body).redacted(&secrets);
        warn_if_other_address(&reply, req);
        reply
    }
}

/// `good 192.0.2.1` in answer to `myip=203.0.113.7`: the server says it published something we
/// did not ask for. What we asked for is what the decider keeps as published (a later check at
/// the name servers will tell); the user hears about it here, with both addresses.
fn warn_if_other_address(reply: &Reply, req: &UpdateRequest<'_>) {
    let (code, said) = match reply {
        Reply::Good(Some(ip)) => ("good", *ip),
        Reply::NoChg(Some(ip)) => ("nochg", *ip),
        _ => return,
    };
    if said != req.ip {
        tracing::warn!(
            host = req.hostname,
            "the server answered \"{code} {said}\" to an update of {} to {}: it names another address; keeping {} as published",
            req.hostname,
            req.ip,
            req.ip
        );
    }
}

/// Appends what fits of `chunk` under [`MAX_REPLY_BYTES`]; true once the body is full.
fn push_capped(body: &mut Vec<u8>, chunk: &[u8]) -> bool {
    let room = MAX_REPLY_BYTES.saturating_sub(body.len());
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    body.len() >= MAX_REPLY_BYTES
}

/// Clients by scheme and CA file, so 1000 hosts sharing a server share one client (and its
/// connections), and the roots are read once for all of them.
#[derive(Debug, Default, Clone)]
pub struct Clients {
    opts: ClientOptions,
    by_kind: HashMap<(bool, Option<PathBuf>), DynHostClient>,
    /// A reload's predecessor: its clients are kept where nothing they were built from changed.
    old: HashMap<(bool, Option<PathBuf>), DynHostClient>,
}

impl Clients {
    pub fn new(opts: ClientOptions) -> Self {
        Clients {
            opts,
            by_kind: HashMap::new(),
            old: HashMap::new(),
        }
    }

    /// For a reloaded configuration: `old`'s clients are reused (connections, roots and all)
    /// where the options are the same and the roots they trust are still the ones on disk.
    pub fn after(opts: ClientOptions, old: &Clients) -> Self {
        let kept = if old.opts == opts {
            old.by_kind.clone()
        } else {
            HashMap::new()
        };
        Clients {
            opts,
            by_kind: HashMap::new(),
            old: kept,
        }
    }

    /// The clients of the previous configuration that this one did not take are let go (with
    /// their idle connections): call once every host has its client.
    pub fn drop_unused(&mut self) {
        self.old.clear();
    }

    /// The client for a server reached over `https` (or not) with `ca_file`, built on first
    /// use. A failed build is not cached, so a fixed CA file is picked up on the next call.
    pub fn get(
        &mut self,
        https: bool,
        ca_file: Option<&Path>,
    ) -> Result<DynHostClient, ClientError> {
        let key = (https, ca_file.map(Path::to_path_buf));
        if let Some(client) = self.by_kind.get(&key) {
            return Ok(client.clone());
        }
        let client = match self.old.remove(&key) {
            Some(old) if old.tls.is_current() => old,
            _ => DynHostClient::new(https, ca_file, &self.opts)?,
        };
        self.by_kind.insert(key, client.clone());
        Ok(client)
    }
}

/// `<server>?<server's own query>&system=dyndns&hostname=<fqdn>&myip=<ip>`, url-encoded by `url`.
fn update_url(req: &UpdateRequest<'_>) -> reqwest::Url {
    let mut url = without_userinfo(req.server);
    url.set_fragment(None);
    url.query_pairs_mut()
        .append_pair("system", "dyndns")
        .append_pair("hostname", req.hostname)
        .append_pair("myip", &req.ip.to_string());
    url
}

/// Credentials are given as `login` and `password` only; anything in the URL's userinfo is
/// dropped rather than sent (or printed).
fn without_userinfo(url: &reqwest::Url) -> reqwest::Url {
    let mut url = url.clone();
    // These fail only for URLs that can't have userinfo, which then have none to drop.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

/// The `Retry-After` header, either form, seen at `now_unix` ([`super::retry_after`]).
fn retry_after(headers: &reqwest::header::HeaderMap, now_unix: u64) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    super::retry_after::parse(value, now_unix)
}

fn transport(err: &reqwest::Error, redact: impl Fn(String) -> String) -> Reply {
    // TLS first: a failed handshake is also a connect error. Timeout next: a connect timeout is
    // also a connect error.
    let kind = if is_tls(err) {
        TransportKind::Tls
    } else if err.is_timeout() {
        TransportKind::Timeout
    } else if err.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    Reply::Transport {
        kind,
        // Transport errors can quote the server (a malformed header, a TLS alert text).
        message: super::server_text::clean(&redact(error_chain(err)), MAX_MESSAGE_CHARS + 1),
    }
}

/// Whether a rustls error is somewhere in the chain. `io::Error::source()` skips the error it
/// wraps (it returns the inner error's source), so wrapped errors are looked into by hand.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_tls(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Belt and braces: the credentials are never in the URL and error texts don't carry headers,
/// but if either ever turned up in a message it is masked before the message goes anywhere.
fn redact(mut message: String, req: &UpdateRequest<'_>) -> String {
    for secret in [req.password.expose(), req.login] {
        if !secret.is_empty() {
            message = message.replace(secret, "<redacted>");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(server: &'a reqwest::Url, password: &'a Secret) -> UpdateRequest<'a> {
        UpdateRequest {
            provider: Provider::Ovh,
            server,
            hostname: "home.example.com",
            login: "example.com-home",
            password,
            ip: "2001:db8::1".parse().unwrap(),
        }
    }

    #[test]
    fn url_keeps_the_servers_query_and_encodes_ours() {
        let server =
            reqwest::Url::parse("https://u:p@dyn.example.net/nic/update?key=a%20b#frag").unwrap();
        let password = Secret::new("pw");
        let mut req = request(&server, &password);
        req.hostname = "h&st=x.example.com";
        let url = update_url(&req);
        assert_eq!(
            url.as_str(),
            "https://dyn.example.net/nic/update?key=a%20b&system=dyndns\
             &hostname=h%26st%3Dx.example.com&myip=2001%3Adb8%3A%3A1"
        );
    }

    #[test]
    fn debug_output_shows_no_credentials() {
        let server = reqwest::Url::parse("https://user:urlpass@dyn.example.net/").unwrap();
        let password = Secret::new("hunter2-secret");
        let req = request(&server, &password);
        let text = format!("{req:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("urlpass"),
            "{text}"
        );
        let client = DynHostClient::new(true, None, &ClientOptions::default()).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
    }

    #[test]
    fn redact_masks_login_and_password() {
        let server = reqwest::Url::parse("https://dyn.example.net/").unwrap();
        let password = Secret::new("hunter2-secret");
        let req = request(&server, &password);
        let out = redact("x hunter2-secret y example.com-home z".into(), &req);
        assert_eq!(out, "x <redacted> y <redacted> z");
    }

    #[test]
    fn retry_after_reads_both_forms_from_the_header() {
        use super::super::retry_after::MAX_RETRY_AFTER;
        use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, 0), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 120 "));
        assert_eq!(retry_after(&h, 0), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("100000000000000000000"),
        );
        assert_eq!(retry_after(&h, 0), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        // 1445412480 is that instant.
        assert_eq!(
            retry_after(&h, 1_445_412_480 - 90),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after(&h, 1_445_412_480 + 90), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h, 0), None);
    }

    #[test]
    fn a_bad_ca_file_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("dynhostd-ca-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [empty.clone(), dir.join("missing.pem")] {
            let err = DynHostClient::new(true, Some(&path), &ClientOptions::default()).unwrap_err();
            assert!(matches!(&err, ClientError::CaFile { path: p, .. } if *p == path));
            assert!(err.to_string().contains(&path.display().to_string()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn body_is_cut_at_max_reply_bytes() {
        let mut body = Vec::new();
        assert!(!push_capped(&mut body, b"good 203.0.113.7\n"));
        assert!(push_capped(&mut body, &vec![b'x'; MAX_REPLY_BYTES]));
        assert_eq!(body.len(), MAX_REPLY_BYTES);
        assert!(push_capped(&mut body, b"more"));
        assert_eq!(body.len(), MAX_REPLY_BYTES);
        assert!(body.starts_with(b"good 203.0.113.7\n"));
    }

    #[test]
    fn clients_are_shared_per_ca_file() {
        let mut clients = Clients::new(ClientOptions::default());
        let a = clients.get(true, None).unwrap();
        let _b = clients.get(true, None).unwrap();
        assert_eq!(clients.by_kind.len(), 1);
        assert!(
            clients
                .get(true, Some(Path::new("/nonexistent/ca.pem")))
                .is_err()
        );
        assert_eq!(clients.by_kind.len(), 1);
        drop(a);
    }

    /// Issue 21: a reload keeps the clients (their roots read once) whose settings and roots
    /// did not change, and builds anew those whose CA file changed or whose options did.
    #[test]
    fn a_reload_keeps_clients_whose_roots_and_options_are_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let mut first = Clients::new(ClientOptions::default());
        let plain = first.get(false, None).unwrap();
        let with_ca = first.get(false, Some(&ca)).unwrap();

        let mut again = Clients::after(ClientOptions::default(), &first);
        assert!(plain.tls.same_roots(&again.get(false, None).unwrap().tls));
        assert!(
            with_ca
                .tls
                .same_roots(&again.get(false, Some(&ca)).unwrap().tls)
        );

        // The CA file replaced: that client is built again, the other kept.
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        std::fs::write(&ca, format!("{}{}", other.cert.pem(), cert.cert.pem())).unwrap();
        let mut third = Clients::after(ClientOptions::default(), &again);
        assert!(plain.tls.same_roots(&third.get(false, None).unwrap().tls));
        assert!(
            !with_ca
                .tls
                .same_roots(&third.get(false, Some(&ca)).unwrap().tls)
        );

        // Other timeouts: nothing is kept.
        let opts = ClientOptions {
            timeout: std::time::Duration::from_secs(7),
            ..ClientOptions::default()
        };
        let mut fourth = Clients::after(opts, &third);
        assert!(!plain.tls.same_roots(&fourth.get(false, None).unwrap().tls));
    }
}
