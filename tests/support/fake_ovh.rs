//! A fake OVH API for tests: an in-memory HTTP/1.1 server on loopback that answers the calls
//! `dynhostd ovh` makes the way ovh-dynhost.md ("The OVH API") says OVH does, and is strict
//! where OVH is:
//!
//! - `GET /1.0/auth/time` gives *its* clock, which runs `skew` seconds off the machine's, so a
//!   client that does not apply the offset is caught: every signed call's `X-Ovh-Timestamp`
//!   must be within ±300 s of the fake's clock (else `400 QUERY_TIME_OUT`).
//! - Every signed call's `X-Ovh-Signature` is recomputed here (with ring's SHA-1, not the
//!   client's code) and a wrong one gets `403 INVALID_SIGNATURE`.
//! - `POST /1.0/auth/credential` (application key only) makes a consumer key with the asked
//!   access rules, *pending* until its validation URL is opened (`GET /auth/?credentialToken=`)
//!   or [`FakeOvh::validate_pending`] is called. A pending key gets `403 INVALID_CREDENTIAL`,
//!   an unknown one `403 NOT_CREDENTIAL`, an unknown application key `403 INVALID_KEY`.
//! - A key's rules are enforced (`*` matches any run of characters): anything else gets
//!   `403 NOT_GRANTED_CALL`.
//! - The DynHost login, record and refresh routes of each zone it holds, with ids, `404
//!   Client::NotFound` for a zone, login or record it lacks, `409 Client::Conflict` for a login
//!   that exists or a second record of one family for one subdomain, `400 "Invalid ip"`.
//!
//! - Path segments are percent-decoded before routing, as a real server does, and the
//!   signature is checked against the target exactly as it arrived.
//! - [`Hostile`] makes it misbehave on purpose: apply a call and never answer, list thousands
//!   of record ids, redirect everything, answer a bad `/auth/time`, a consumer key with
//!   control characters or a validation URL on another site.
//!
//! Include it with `#[path = "support/fake_ovh.rs"] mod fake_ovh;`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// OVH's tolerance for a request's timestamp.
pub const TIME_WINDOW: i64 = 300;
const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug)]
pub struct FakeLogin {
    pub login: String,
    pub zone: String,
    pub sub_domain: String,
    pub password: String,
}

#[derive(Clone, Debug)]
pub struct FakeRecord {
    pub id: u64,
    pub zone: String,
    pub sub_domain: String,
    pub ip: String,
}

#[derive(Clone, Debug)]
pub struct ConsumerKey {
    pub key: String,
    pub token: String,
    pub rules: Vec<(String, String)>,
    pub validated: bool,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct FakeRequest {
    pub method: String,
    /// Path and query, as sent (the `/1.0` root included).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
}

/// What the fake does wrong on purpose (all off by default); see [`FakeOvh::set_hostile`].
#[derive(Clone, Debug, Default)]
pub struct Hostile {
    /// A call whose path ends with this is applied, then never answered.
    pub hang_after: Option<String>,
    /// This many ids of records that do not exist are added to every record list.
    pub phantom_record_ids: usize,
    /// Every call under `/1.0` is answered with this status and `Location` (raw bytes).
    pub redirect: Option<(u16, Vec<u8>)>,
    /// The body of `GET /auth/time`, instead of the fake's clock.
    pub time_answer: Option<String>,
    /// The `consumerKey` `POST /auth/credential` answers (the key it keeps is this too).
    pub consumer_key: Option<String>,
    /// The `validationUrl` `POST /auth/credential` answers.
    pub validation_url: Option<String>,
}

pub struct FakeConfig {
    pub application_key: String,
    pub application_secret: String,
    pub zones: Vec<String>,
    /// The fake's clock minus the machine's, in seconds.
    pub skew: i64,
    /// Whether `POST dynHost/record` takes an IPv6 `ip` (not confirmed at OVH).
    pub ipv6_records: bool,
}

impl FakeConfig {
    pub fn new() -> FakeConfig {
        FakeConfig {
            application_key: "FakeAppKey1234".into(),
            application_secret: "FakeAppSecretAbcdefghijklmnopqrs".into(),
            zones: vec!["example.com".into()],
            skew: -1000,
            ipv6_records: true,
        }
    }
}

struct State {
    cfg: FakeConfig,
    keys: Vec<ConsumerKey>,
    logins: BTreeMap<String, FakeLogin>,
    records: BTreeMap<u64, FakeRecord>,
    next_id: u64,
    refreshes: HashMap<String, usize>,
    log: Vec<FakeRequest>,
    base: String,
    hostile: Hostile,
}

pub struct FakeOvh {
    state: Arc<Mutex<State>>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeOvh {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl FakeOvh {
    /// Starts on its own thread and runtime, on 127.0.0.1 and any port.
    pub fn start(cfg: FakeConfig) -> io::Result<FakeOvh> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            cfg,
            keys: Vec::new(),
            logins: BTreeMap::new(),
            records: BTreeMap::new(),
            next_id: 1_000_001,
            refreshes: HashMap::new(),
            log: Vec::new(),
            base: format!("http://{addr}"),
            hostile: Hostile::default(),
        }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("fake-ovh".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("listener");
                    let serve = async {
                        loop {
                            if let Ok((tcp, _)) = listener.accept().await {
                                let shared = shared.clone();
                                tokio::spawn(async move {
                                    let _ = serve(tcp, &shared).await;
                                });
                            }
                        }
                    };
                    tokio::select! {
                        _ = serve => {}
                        _ = stop_rx => {}
                    }
                });
            })?;
        Ok(FakeOvh {
            state,
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The API root, for `[ovh_api] endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/1.0", self.addr)
    }

    pub fn application_key(&self) -> String {
        lock(&self.state).cfg.application_key.clone()
    }

    pub fn application_secret(&self) -> String {
        lock(&self.state).cfg.application_secret.clone()
    }

    /// Approves every pending consumer key, as the user opening its URL would.
    pub fn validate_pending(&self) {
        for k in &mut lock(&self.state).keys {
            k.validated = true;
        }
    }

    pub fn consumer_keys(&self) -> Vec<ConsumerKey> {
        lock(&self.state).keys.clone()
    }

    /// A consumer key with these rules, already validated (for tests that skip `ovh auth`).
    pub fn add_consumer_key(&self, key: &str, rules: &[(&str, &str)]) {
        lock(&self.state).keys.push(ConsumerKey {
            key: key.into(),
            token: format!("token-{key}"),
            rules: rules
                .iter()
                .map(|(m, p)| (m.to_string(), p.to_string()))
                .collect(),
            validated: true,
        });
    }

    pub fn logins(&self) -> Vec<FakeLogin> {
        lock(&self.state).logins.values().cloned().collect()
    }

    pub fn records(&self) -> Vec<FakeRecord> {
        lock(&self.state).records.values().cloned().collect()
    }

    /// A record made behind the client's back (e.g. in the panel).
    pub fn add_record(&self, zone: &str, sub_domain: &str, ip: &str) -> u64 {
        let mut st = lock(&self.state);
        let id = st.next_id;
        st.next_id += 1;
        st.records.insert(
            id,
            FakeRecord {
                id,
                zone: zone.into(),
                sub_domain: sub_domain.into(),
                ip: ip.into(),
            },
        );
        id
    }

    /// A login made behind the client's back, with any name (e.g. one holding escape
    /// sequences, as a hostile server would list it).
    pub fn add_login(&self, zone: &str, login: &str, sub_domain: &str) {
        lock(&self.state).logins.insert(
            login.into(),
            FakeLogin {
                login: login.into(),
                zone: zone.into(),
                sub_domain: sub_domain.into(),
                password: "SetInThePanel0123456789".into(),
            },
        );
    }

    /// From now on, misbehave as `hostile` says.
    pub fn set_hostile(&self, hostile: Hostile) {
        lock(&self.state).hostile = hostile;
    }

    pub fn refreshes(&self, zone: &str) -> usize {
        lock(&self.state).refreshes.get(zone).copied().unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<FakeRequest> {
        lock(&self.state).log.clone()
    }

    /// Calls that changed (or tried to change) something: every method but GET.
    pub fn changes(&self) -> usize {
        lock(&self.state)
            .log
            .iter()
            .filter(|r| r.method != "GET" && !r.target.ends_with("/auth/credential"))
            .count()
    }
}

async fn serve(mut tcp: TcpStream, shared: &Mutex<State>) -> io::Result<()> {
    // One request per connection: the answer says `Connection: close`.
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_BODY_BYTES);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let body = String::from_utf8_lossy(&body).into_owned();
    let (status, answer, hostile) = {
        let mut st = lock(shared);
        let hostile = st.hostile.clone();
        let (status, answer) = match (&hostile.redirect, &hostile.time_answer) {
            (Some((status, _)), _) if target.starts_with("/1.0/") => (*status, Value::Null),
            (_, Some(t)) if target == "/1.0/auth/time" => (200, Value::String(t.clone())),
            _ => handle(&mut st, &method, &target, &headers, &body),
        };
        st.log.push(FakeRequest {
            method: method.clone(),
            target: target.clone(),
            headers: headers.clone(),
            body: body.clone(),
            status,
        });
        (status, answer, hostile)
    };
    let path = target.split('?').next().unwrap_or("");
    if hostile
        .hang_after
        .as_deref()
        .is_some_and(|h| path.ends_with(h))
    {
        // Applied above; the answer never comes (until the fake stops).
        std::future::pending::<()>().await;
    }
    if let (Some((_, location)), true) = (&hostile.redirect, target.starts_with("/1.0/")) {
        let mut reply = format!("HTTP/1.1 {status} Moved\r\nLocation: ").into_bytes();
        reply.extend_from_slice(location);
        reply.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        tcp.write_all(&reply).await?;
        return tcp.shutdown().await;
    }
    // A bare `/auth/time` answer is sent as it is (not as a JSON string).
    let text = match (&hostile.time_answer, &answer) {
        (Some(_), Value::String(t)) if target == "/1.0/auth/time" => t.clone(),
        _ => answer.to_string(),
    };
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nX-Ovh-QueryID: EU.fake-{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        now(),
        text.len()
    );
    tcp.write_all(reply.as_bytes()).await?;
    tcp.shutdown().await
}

/// `%XX` decoded (and, in a query value, `+` as a space); bad escapes kept as they are.
fn unescape_with(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unescape(segment: &str) -> String {
    unescape_with(segment, false)
}

fn err(status: u16, class: &str, message: &str, code: Option<&str>) -> (u16, Value) {
    let mut v = json!({ "class": class, "message": message });
    if let Some(c) = code {
        v["errorCode"] = c.into();
        v["httpCode"] = format!("{status}").into();
    }
    (status, v)
}

fn not_found() -> (u16, Value) {
    err(404, "Client::NotFound", "This service does not exist", None)
}

/// OVH's rule patterns: `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

fn sha1_signature(parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            ctx.update(b"+");
        }
        ctx.update(p);
    }
    let hex: String = ctx
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("$1${hex}")
}

fn random_token(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut b).unwrap();
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    b.iter().map(|x| A[*x as usize % A.len()] as char).collect()
}

fn handle(
    st: &mut State,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, Value) {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let server_time = now() + st.cfg.skew;

    // The validation page, outside the API root.
    if let Some(token) = target.strip_prefix("/auth/?credentialToken=") {
        return match st.keys.iter_mut().find(|k| k.token == token) {
            Some(k) => {
                k.validated = true;
                (200, json!("validated"))
            }
            None => not_found(),
        };
    }
    let Some(api_target) = target.strip_prefix("/1.0") else {
        return err(
            404,
            "Client::NotFound",
            "Got an invalid (or empty) URL",
            None,
        );
    };
    let (path, query) = api_target.split_once('?').unwrap_or((api_target, ""));
    let query: Vec<(&str, &str)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();

    if path == "/auth/time" && method == "GET" {
        return (200, json!(server_time));
    }
    if header("x-ovh-application") != Some(st.cfg.application_key.as_str()) {
        return err(
            403,
            "Client::Forbidden",
            "Invalid application key",
            Some("INVALID_KEY"),
        );
    }
    if path == "/auth/credential" && method == "POST" {
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            return err(400, "Client::BadRequest", "Invalid JSON", None);
        };
        let rules: Vec<(String, String)> = v["accessRules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["path"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        if rules.is_empty() {
            return err(400, "Client::BadRequest", "Missing accessRules", None);
        }
        let key = ConsumerKey {
            key: st
                .hostile
                .consumer_key
                .clone()
                .unwrap_or_else(|| random_token(32)),
            token: random_token(24),
            rules,
            validated: false,
        };
        let answer = json!({
            "consumerKey": key.key,
            "validationUrl": st
                .hostile
                .validation_url
                .clone()
                .unwrap_or_else(|| format!("{}/auth/?credentialToken={}", st.base, key.token)),
            "state": "pendingValidation",
        });
        st.keys.push(key);
        return (200, answer);
    }

    // A signed call.
    let Some(t) = header("x-ovh-timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return err(400, "Client::BadRequest", "Missing timestamp", None);
    };
    if (t - server_time).abs() > TIME_WINDOW {
        return err(
            400,
            "Client::BadRequest",
            "Query out of time",
            Some("QUERY_TIME_OUT"),
        );
    }
    let ck = header("x-ovh-consumer").unwrap_or("");
    let Some(key) = st.keys.iter().find(|k| k.key == ck).cloned() else {
        return err(
            403,
            "Client::Forbidden",
            "This credential does not exist",
            Some("NOT_CREDENTIAL"),
        );
    };
    let full_url = format!("{}{target}", st.base);
    let expected = sha1_signature(&[
        st.cfg.application_secret.as_bytes(),
        ck.as_bytes(),
        method.as_bytes(),
        full_url.as_bytes(),
        body.as_bytes(),
        t.to_string().as_bytes(),
    ]);
    if header("x-ovh-signature") != Some(expected.as_str()) {
        return err(
            403,
            "Client::Forbidden",
            "Invalid signature",
            Some("INVALID_SIGNATURE"),
        );
    }
    if !key.validated {
        return err(
            403,
            "Client::Forbidden",
            "This credential is not valid",
            Some("INVALID_CREDENTIAL"),
        );
    }
    if !key.rules.iter().any(|(m, p)| m == method && glob(p, path)) {
        return err(
            403,
            "Client::Forbidden",
            "This call has not been granted",
            Some("NOT_GRANTED_CALL"),
        );
    }
    route(st, method, path, &query, body)
}

fn route(
    st: &mut State,
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    body: &str,
) -> (u16, Value) {
    let Some(rest) = path.strip_prefix("/domain/zone/") else {
        return not_found();
    };
    let decoded: Vec<String> = rest.split('/').map(unescape).collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let zone = segs[0].to_string();
    if !st.cfg.zones.contains(&zone) {
        return not_found();
    }
    let q = |name: &str| query.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let json_body = || serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    match (method, &segs[1..]) {
        ("POST", ["refresh"]) => {
            *st.refreshes.entry(zone).or_default() += 1;
            (200, Value::Null)
        }
        ("GET", ["dynHost", "login"]) => {
            let names: Vec<&String> = st
                .logins
                .values()
                .filter(|l| l.zone == zone)
                .filter(|l| q("login").is_none_or(|v| v == l.login))
                .filter(|l| q("subDomain").is_none_or(|v| v == l.sub_domain))
                .map(|l| &l.login)
                .collect();
            (200, json!(names))
        }
        ("POST", ["dynHost", "login"]) => {
            let v = json_body();
            let (Some(suffix), Some(password), Some(sub)) = (
                v["loginSuffix"].as_str(),
                v["password"].as_str(),
                v["subDomain"].as_str(),
            ) else {
                return err(
                    400,
                    "Client::BadRequest",
                    "Missing loginSuffix, password or subDomain",
                    None,
                );
            };
            let login = format!("{zone}-{suffix}");
            if st.logins.contains_key(&login) {
                return err(
                    409,
                    "Client::Conflict",
                    &format!("The login {login} already exists"),
                    None,
                );
            }
            st.logins.insert(
                login.clone(),
                FakeLogin {
                    login: login.clone(),
                    zone: zone.clone(),
                    sub_domain: sub.into(),
                    password: password.into(),
                },
            );
            (
                200,
                json!({ "login": login, "subDomain": sub, "zone": zone }),
            )
        }
        (m, ["dynHost", "login", name, tail @ ..]) => {
            let name = name.to_string();
            let Some(l) = st.logins.get_mut(&name).filter(|l| l.zone == zone) else {
                return not_found();
            };
            match (m, tail) {
                ("GET", []) => (
                    200,
                    json!({ "login": l.login, "subDomain": l.sub_domain, "zone": l.zone }),
                ),
                ("PUT", []) => {
                    if let Some(s) = json_body()["subDomain"].as_str() {
                        l.sub_domain = s.into();
                    }
                    (200, Value::Null)
                }
                ("DELETE", []) => {
                    st.logins.remove(&name);
                    (200, Value::Null)
                }
                ("POST", ["changePassword"]) => match json_body()["password"].as_str() {
                    Some(p) => {
                        l.password = p.into();
                        (200, Value::Null)
                    }
                    None => err(400, "Client::BadRequest", "Missing password", None),
                },
                _ => not_found(),
            }
        }
        ("GET", ["dynHost", "record"]) => {
            let mut ids: Vec<u64> = st
                .records
                .values()
                .filter(|r| r.zone == zone)
                .filter(|r| q("subDomain").is_none_or(|v| unescape_with(v, true) == r.sub_domain))
                .map(|r| r.id)
                .collect();
            // Ids of nothing: each answers 404 when asked for.
            ids.extend((0..st.hostile.phantom_record_ids as u64).map(|i| 9_000_000_000 + i));
            (200, json!(ids))
        }
        ("POST", ["dynHost", "record"]) => {
            let v = json_body();
            let (Some(ip), Some(sub)) = (v["ip"].as_str(), v["subDomain"].as_str()) else {
                return err(400, "Client::BadRequest", "Missing ip or subDomain", None);
            };
            let Ok(addr) = ip.parse::<IpAddr>() else {
                return err(400, "Client::BadRequest", "Invalid ip", None);
            };
            if addr.is_ipv6() && !st.cfg.ipv6_records {
                return err(400, "Client::BadRequest", "Invalid ip", None);
            }
            if sub.contains('*') {
                return err(400, "Client::BadRequest", "Invalid subDomain", None);
            }
            let clash = st.records.values().any(|r| {
                r.zone == zone
                    && r.sub_domain == sub
                    && r.ip
                        .parse::<IpAddr>()
                        .is_ok_and(|a| a.is_ipv4() == addr.is_ipv4())
            });
            if clash {
                return err(
                    409,
                    "Client::Conflict",
                    "A DynHost record of this type already exists for this subdomain",
                    None,
                );
            }
            let id = st.next_id;
            st.next_id += 1;
            st.records.insert(
                id,
                FakeRecord {
                    id,
                    zone: zone.clone(),
                    sub_domain: sub.into(),
                    ip: ip.into(),
                },
            );
            (
                200,
                json!({ "id": id, "ip": ip, "subDomain": sub, "ttl": 60, "zone": zone }),
            )
        }
        (m, ["dynHost", "record", id]) => {
            let Some(id) = id
                .parse::<u64>()
                .ok()
                .filter(|id| st.records.get(id).is_some_and(|r| r.zone == zone))
            else {
                return not_found();
            };
            match m {
                "GET" => {
                    let r = &st.records[&id];
                    (
                        200,
                        json!({ "id": r.id, "ip": r.ip, "subDomain": r.sub_domain, "ttl": 60, "zone": r.zone }),
                    )
                }
                "PUT" => {
                    let v = json_body();
                    let r = st.records.get_mut(&id).unwrap();
                    if let Some(ip) = v["ip"].as_str() {
                        if ip.parse::<IpAddr>().is_err() {
                            return err(400, "Client::BadRequest", "Invalid ip", None);
                        }
                        r.ip = ip.into();
                    }
                    (200, Value::Null)
                }
                "DELETE" => {
                    st.records.remove(&id);
                    (200, Value::Null)
                }
                _ => not_found(),
            }
        }
        _ => not_found(),
    }
}
