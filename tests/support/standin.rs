//! A local stand-in for OVH's DynHost endpoint, for tests and benchmarks: it answers
//! `GET /nic/update?system=dyndns&hostname=…&myip=…` the way `shared/docs/ovh-dynhost.md` says OVH
//! does, over plain HTTP or HTTPS (with a throw-away test CA), and can be told to misbehave.
//!
//! Use it from a test crate with `#[path = "support/standin.rs"] mod standin;`. It depends only on
//! tokio, tokio-rustls, rcgen and tempfile, so an `examples/` binary can wrap it too.
//!
//! ```ignore
//! let s = Standin::start(StandinConfig::https()
//!     .account("example.com-home", "secret", "home.example.com")
//!     .record("home.example.com")).await?;
//! // point the client at s.url() with s.ca_file() as its CA file
//! s.fail_next(1, Fault::server_trouble());     // next request gets `911`
//! let log = s.wait_for_requests(2, Duration::from_secs(5)).await?;
//! ```
//!
//! Behaviour (in this order): injected fault → path must be `/nic/update` (else 404) → Basic
//! auth (missing, malformed or wrong: 401) → method must be GET (else `200 badsys`) → `system`
//! must be `dyndns` (missing: OVH's JSON 400; other value: `badsys`) → `hostname` (missing: JSON
//! 400; several names: `numhost`; outside the login's scope or no record: `nohost`) → `myip`
//! (missing: the source address for IPv4, a JSON 400 over IPv6; unparseable: JSON 400) →
//! `good <ip>` if the record changed, `nochg <ip>` if not. Every reply ends with a newline.
//! The 400 bodies other than the `system` one, and `numhost`, are our guesses at OVH's wording
//! (the doc lists those cases as unverified); the client only relies on their class.
//!
//! HTTP/1.1 is done by hand: a request line and headers, `Content-Length` bodies skipped,
//! keep-alive honoured (reqwest pools connections), `Connection: close` respected.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The only path served; OVH's update endpoint (ovh-dynhost.md, "The update request").
pub const UPDATE_PATH: &str = "/nic/update";

/// OVH's answer to a request without `system=dyndns`, verbatim from ovh-dynhost.md.
pub const MISSING_SYSTEM_JSON: &str = r#"{"class":"Client::BadRequest","message":"{'system': ['Missing data for required field.']}"}"#;

/// A request head bigger than this is refused: a test server needn't buffer without end.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Request bodies (only a wrong POST has one) are skipped up to this size.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A TLS handshake that takes longer than this is given up (a client that connected and left).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Configuration

/// A DynHost login (ovh-dynhost.md: form `<zone>-<suffix>`, scope one sub-domain or `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    pub password: String,
    /// A hostname, or `*` for every name in the login's zone (the part of the login before its
    /// last `-`; a login without `-` gets every name).
    pub scope: String,
}

impl Account {
    fn covers(&self, hostname: &str) -> bool {
        if self.scope != "*" {
            return self.scope.eq_ignore_ascii_case(hostname);
        }
        match self.login.rsplit_once('-') {
            Some((zone, _)) => {
                let zone = zone.to_ascii_lowercase();
                hostname == zone || hostname.ends_with(&format!(".{zone}"))
            }
            None => true,
        }
    }
}

/// The DynHost records of one name: at OVH an A and an AAAA record are two records; here one
/// entry holds both, and either may be unset yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynRecord {
    pub a: Option<Ipv4Addr>,
    pub aaaa: Option<Ipv6Addr>,
}

impl DynRecord {
    pub fn get(&self, family_of: IpAddr) -> Option<IpAddr> {
        match family_of {
            IpAddr::V4(_) => self.a.map(IpAddr::V4),
            IpAddr::V6(_) => self.aaaa.map(IpAddr::V6),
        }
    }

    fn set(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.a = Some(v4),
            IpAddr::V6(v6) => self.aaaa = Some(v6),
        }
    }
}

/// How to start a stand-in. `StandinConfig::http()` or `::https()`, then the builder methods.
#[derive(Clone, Debug)]
pub struct StandinConfig {
    bind: SocketAddr,
    /// `Some(names)`: HTTPS with a leaf certificate for these names.
    tls_names: Option<Vec<String>>,
    chunked: bool,
    accounts: Vec<Account>,
    records: Vec<(String, DynRecord)>,
}

impl StandinConfig {
    /// Plain HTTP on `127.0.0.1:<any port>`.
    pub fn http() -> Self {
        StandinConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls_names: None,
            chunked: false,
            accounts: Vec::new(),
            records: Vec::new(),
        }
    }

    /// HTTPS with a fresh test CA; the leaf is valid for `localhost`, `127.0.0.1` and `::1`.
    pub fn https() -> Self {
        StandinConfig {
            tls_names: Some(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ]),
            ..Self::http()
        }
    }

    /// HTTPS whose leaf certificate names only `names` (e.g. to see a hostname mismatch fail).
    pub fn https_for(names: &[&str]) -> Self {
        StandinConfig {
            tls_names: Some(names.iter().map(|n| n.to_string()).collect()),
            ..Self::http()
        }
    }

    /// Where to listen; default `127.0.0.1:0`.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// Send bodies with `Transfer-Encoding: chunked`, split inside the first line.
    pub fn chunked(mut self, chunked: bool) -> Self {
        self.chunked = chunked;
        self
    }

    pub fn account(mut self, login: &str, password: &str, scope: &str) -> Self {
        self.accounts.push(Account {
            login: login.to_string(),
            password: password.to_string(),
            scope: scope.to_string(),
        });
        self
    }

    /// A DynHost record for `hostname` with no address yet.
    pub fn record(mut self, hostname: &str) -> Self {
        self.records
            .push((hostname.to_ascii_lowercase(), DynRecord::default()));
        self
    }

    /// A DynHost record for `hostname` already holding `ip`.
    pub fn record_at(mut self, hostname: &str, ip: IpAddr) -> Self {
        let mut record = DynRecord::default();
        record.set(ip);
        self.records.push((hostname.to_ascii_lowercase(), record));
        self
    }

    /// `n` more hosts, `h1.example.com` … `hN.example.com`, each with its own login
    /// `example.com-hK` (OVH DynHost logins are per name) and `password`: for the many-hosts
    /// scenarios of the benchmark.
    pub fn numbered_hosts(mut self, n: usize, password: &str) -> Self {
        for k in 1..=n {
            let host = format!("h{k}.example.com");
            self = self
                .account(&format!("example.com-h{k}"), password, &host)
                .record(&host);
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// A way to misbehave, instead of the normal answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status, extra headers and body, whatever the request.
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Read the request, never answer (until the client gives up or the stand-in stops).
    Hang,
    /// Reset the connection (TCP RST) instead of answering.
    Reset,
    /// Send `status`, then `prefix`, then filler bytes forever (chunked).
    EndlessBody { status: u16, prefix: String },
}

impl Fault {
    /// `status` with `body` as it is (add the newline yourself if you want one).
    pub fn reply(status: u16, body: &str) -> Fault {
        Fault::Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    /// `200 <code>\n`, e.g. `Fault::code("abuse")`.
    pub fn code(code: &str) -> Fault {
        Fault::reply(200, &format!("{code}\n"))
    }

    /// `911`: server-side trouble.
    pub fn server_trouble() -> Fault {
        Fault::code("911")
    }

    pub fn dnserr() -> Fault {
        Fault::code("dnserr")
    }

    pub fn abuse() -> Fault {
        Fault::code("abuse")
    }

    pub fn badauth() -> Fault {
        Fault::code("badauth")
    }

    /// A bare HTTP error, body = reason phrase.
    pub fn status(status: u16) -> Fault {
        Fault::reply(status, &format!("{}\n", reason(status)))
    }

    /// `503` with `Retry-After: <secs>`.
    pub fn unavailable(retry_after_secs: u64) -> Fault {
        Fault::status(503).with_header("Retry-After", &retry_after_secs.to_string())
    }

    /// `429`, with `Retry-After` if given.
    pub fn too_many_requests(retry_after_secs: Option<u64>) -> Fault {
        let fault = Fault::status(429);
        match retry_after_secs {
            Some(secs) => fault.with_header("Retry-After", &secs.to_string()),
            None => fault,
        }
    }

    pub fn hang() -> Fault {
        Fault::Hang
    }

    pub fn reset() -> Fault {
        Fault::Reset
    }

    pub fn endless(status: u16, prefix: &str) -> Fault {
        Fault::EndlessBody {
            status,
            prefix: prefix.to_string(),
        }
    }

    /// Adds a header to a `Fault::Reply` (no effect on the others).
    pub fn with_header(mut self, name: &str, value: &str) -> Fault {
        if let Fault::Reply { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Request log

/// One request as the stand-in saw it, and what it did about it.
#[derive(Clone, Debug)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    pub user_agent: Option<String>,
    /// Whether an Authorization header came with this request.
    pub authorization: bool,
    /// The login from a well-formed Basic header (even if the password was wrong).
    pub login: Option<String>,
    pub peer: SocketAddr,
    pub at: Instant,
    /// Which accepted connection it came on (from 1), and its place there (from 1): shows
    /// keep-alive at work.
    pub connection: u64,
    pub nth_on_connection: u64,
    /// What was done: `200 good 203.0.113.7`, `401`, `hang`, `reset`, `endless 200`.
    pub answer: String,
}

impl LoggedRequest {
    /// The first query parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// A running stand-in. Dropping it stops it (connections included).
pub struct Standin {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<TestCa>,
    runner: Runner,
}

impl fmt::Debug for Standin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Standin")
            .field("url", &self.url())
            .field("ca_file", &self.ca_file())
            .finish_non_exhaustive()
    }
}

/// The test CA, kept on disk for as long as the stand-in lives.
struct TestCa {
    _dir: tempfile::TempDir,
    ca_file: PathBuf,
    ca_pem: String,
}

enum Runner {
    /// Spawned on the caller's runtime; aborting the accept loop drops every connection task.
    Task(tokio::task::JoinHandle<()>),
    /// Its own thread and current-thread runtime.
    Thread {
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
}

impl Drop for Standin {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Task(handle) => handle.abort(),
            Runner::Thread { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    connections: AtomicU64,
}

struct State {
    accounts: HashMap<String, Account>,
    records: HashMap<String, DynRecord>,
    chunked: bool,
    /// Global faults for the next requests: (fault, how many more times).
    next: VecDeque<(Fault, usize)>,
    /// Per-hostname faults: (fault, how many more times; None = until cleared).
    per_host: HashMap<String, (Fault, Option<usize>)>,
    log: Vec<LoggedRequest>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every later assertion down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What `bind` hands back: everything but the runner.
struct Bound {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<TestCa>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
}

impl Bound {
    async fn bind(config: StandinConfig) -> io::Result<Bound> {
        let (acceptor, tls) = match &config.tls_names {
            Some(names) => {
                let (acceptor, ca) = make_tls(names)?;
                (Some(acceptor), Some(ca))
            }
            None => (None, None),
        };
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let state = State {
            accounts: config
                .accounts
                .into_iter()
                .map(|a| (a.login.clone(), a))
                .collect(),
            records: config.records.into_iter().collect(),
            chunked: config.chunked,
            next: VecDeque::new(),
            per_host: HashMap::new(),
            log: Vec::new(),
        };
        Ok(Bound {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                connections: AtomicU64::new(0),
            }),
            addr,
            tls,
            listener,
            acceptor,
        })
    }

    /// Splits into the handle's parts and the future that serves.
    fn split(
        self,
    ) -> (
        Arc<Shared>,
        SocketAddr,
        Option<TestCa>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let serve = accept_loop(self.listener, self.acceptor, self.shared.clone());
        (self.shared, self.addr, self.tls, serve)
    }
}

impl Standin {
    /// Starts on the current tokio runtime (current-thread or multi-thread; needs IO and time).
    pub async fn start(config: StandinConfig) -> io::Result<Standin> {
        let (shared, addr, tls, serve) = Bound::bind(config).await?.split();
        Ok(Standin {
            shared,
            addr,
            tls,
            runner: Runner::Task(tokio::spawn(serve)),
        })
    }

    /// Starts on a thread of its own with its own runtime, for synchronous tests (or tests whose
    /// runtime must not be shared). Dropping the handle stops the thread.
    pub fn start_on_thread(config: StandinConfig) -> io::Result<Standin> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dynhost-standin".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Bound::bind(config).await {
                        Ok(bound) => {
                            let (shared, addr, tls, serve) = bound.split();
                            let _ = ready_tx.send(Ok((shared, addr, tls)));
                            tokio::select! {
                                _ = serve => {}
                                _ = stop_rx => {}
                            }
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
                // Dropping the runtime here cancels every connection task.
            })?;
        let (shared, addr, tls) = ready_rx
            .recv()
            .map_err(|_| io::Error::other("stand-in thread died while starting"))??;
        Ok(Standin {
            shared,
            addr,
            tls,
            runner: Runner::Thread {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn is_https(&self) -> bool {
        self.tls.is_some()
    }

    /// `http://127.0.0.1:PORT` (or `https://…`, `[::1]` for IPv6).
    pub fn base_url(&self) -> String {
        let scheme = if self.is_https() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The update endpoint: `base_url()` + `/nic/update`.
    pub fn url(&self) -> String {
        format!("{}{UPDATE_PATH}", self.base_url())
    }

    /// The update endpoint under another host name, same port (e.g. `localhost`).
    pub fn url_with_host(&self, host: &str) -> String {
        let scheme = if self.is_https() { "https" } else { "http" };
        format!("{scheme}://{host}:{}{UPDATE_PATH}", self.addr.port())
    }

    /// The test CA's certificate (PEM file), for the client's `ca_file`. `None` over plain HTTP.
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|ca| ca.ca_file.as_path())
    }

    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|ca| ca.ca_pem.as_str())
    }

    // -- accounts and records ------------------------------------------------------------------

    pub fn add_account(&self, login: &str, password: &str, scope: &str) {
        let account = Account {
            login: login.to_string(),
            password: password.to_string(),
            scope: scope.to_string(),
        };
        self.shared
            .lock()
            .accounts
            .insert(login.to_string(), account);
    }

    pub fn remove_account(&self, login: &str) {
        self.shared.lock().accounts.remove(login);
    }

    /// Creates or replaces the record of `hostname`.
    pub fn set_record(&self, hostname: &str, record: DynRecord) {
        self.shared
            .lock()
            .records
            .insert(hostname.to_ascii_lowercase(), record);
    }

    pub fn remove_record(&self, hostname: &str) {
        self.shared
            .lock()
            .records
            .remove(&hostname.to_ascii_lowercase());
    }

    /// What the record of `hostname` holds now.
    pub fn record(&self, hostname: &str) -> Option<DynRecord> {
        self.shared
            .lock()
            .records
            .get(&hostname.to_ascii_lowercase())
            .cloned()
    }

    pub fn set_chunked(&self, chunked: bool) {
        self.shared.lock().chunked = chunked;
    }

    // -- faults ----------------------------------------------------------------------------------

    /// The next `n` requests (any hostname, any path) get `fault`. Calls queue up in order.
    pub fn fail_next(&self, n: usize, fault: Fault) {
        if n > 0 {
            self.shared.lock().next.push_back((fault, n));
        }
    }

    /// Requests for `hostname` get `fault`, `times` times or (None) until cleared. Global
    /// faults from `fail_next` go first.
    pub fn fail_host(&self, hostname: &str, fault: Fault, times: Option<usize>) {
        self.shared
            .lock()
            .per_host
            .insert(hostname.to_ascii_lowercase(), (fault, times));
    }

    pub fn clear_faults(&self) {
        let mut state = self.shared.lock();
        state.next.clear();
        state.per_host.clear();
    }

    // -- request log -----------------------------------------------------------------------------

    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().log.clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.lock().log.len()
    }

    pub fn clear_log(&self) {
        self.shared.lock().log.clear();
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests were logged; `Err` holds what came if `timeout` passed.
    pub async fn wait_for_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<LoggedRequest>, Vec<LoggedRequest>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return Ok(self.requests());
            }
            if Instant::now() >= deadline {
                return Err(self.requests());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The blocking twin of [`wait_for_requests`](Self::wait_for_requests). Don't call it from
    /// the runtime a [`start`](Self::start)ed stand-in runs on: it would starve it.
    pub fn wait_for_requests_blocking(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<LoggedRequest>, Vec<LoggedRequest>> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.request_count() >= n {
                return Ok(self.requests());
            }
            if Instant::now() >= deadline {
                return Err(self.requests());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn accept_loop(listener: TcpListener, acceptor: Option<TlsAcceptor>, shared: Arc<Shared>) {
    // Connection tasks live in this set, so stopping this future stops them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let id = shared.connections.fetch_add(1, Ordering::Relaxed) + 1;
                    let shared = shared.clone();
                    let acceptor = acceptor.clone();
                    connections.spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        match acceptor {
                            None => serve(tcp, peer, id, &shared).await,
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout(
                                    HANDSHAKE_TIMEOUT,
                                    acceptor.accept(tcp),
                                );
                                // A failed handshake (e.g. the client rejected our certificate)
                                // just ends the connection; the client reports it.
                                if let Ok(Ok(tls)) = handshake.await {
                                    serve(tls, peer, id, &shared).await;
                                }
                            }
                        }
                    });
                }
                // Out of file descriptors and the like: pause rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A connection, plain or TLS, with its TCP socket reachable (to reset it).
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
}

impl Conn for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// What to do with one request.
enum Action {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    Hang,
    Reset,
    Endless {
        status: u16,
        prefix: String,
    },
}

async fn serve<C: Conn>(mut conn: C, peer: SocketAddr, id: u64, shared: &Shared) {
    let mut buf = Vec::with_capacity(1024);
    let mut nth = 0;
    loop {
        let request = match read_request(&mut conn, &mut buf).await {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(_) => {
                let _ = respond(&mut conn, 400, &[], "Bad Request\n", false, true).await;
                return;
            }
        };
        nth += 1;
        let (action, chunked) = {
            let mut state = shared.lock();
            let action = decide(&mut state, &request, peer);
            let entry = log_entry(&request, peer, id, nth, &action);
            state.log.push(entry);
            (action, state.chunked)
        };
        let close = request.wants_close();
        match action {
            Action::Respond {
                status,
                headers,
                body,
            } => {
                if respond(&mut conn, status, &headers, &body, chunked, close)
                    .await
                    .is_err()
                    || close
                {
                    return;
                }
            }
            Action::Hang => {
                // Never answer; keep reading so the task ends when the client gives up.
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Action::Reset => {
                // SO_LINGER 0 turns the close into an RST.
                let _ = conn.tcp().set_zero_linger();
                return;
            }
            Action::Endless { status, prefix } => {
                let _ = endless(&mut conn, status, &prefix).await;
                return;
            }
        }
    }
}

fn log_entry(
    request: &Request,
    peer: SocketAddr,
    connection: u64,
    nth_on_connection: u64,
    action: &Action,
) -> LoggedRequest {
    let auth = request.header("authorization");
    let answer = match action {
        Action::Respond { status, body, .. } => {
            let line = body.lines().next().unwrap_or("");
            if line.is_empty() {
                status.to_string()
            } else {
                format!("{status} {line}")
            }
        }
        Action::Hang => "hang".to_string(),
        Action::Reset => "reset".to_string(),
        Action::Endless { status, .. } => format!("endless {status}"),
    };
    LoggedRequest {
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        user_agent: request.header("user-agent").map(str::to_string),
        authorization: auth.is_some(),
        login: auth.and_then(parse_basic).map(|(login, _)| login),
        peer,
        at: Instant::now(),
        connection,
        nth_on_connection,
        answer,
    }
}

/// The DynHost logic, on the locked state.
fn decide(state: &mut State, request: &Request, peer: SocketAddr) -> Action {
    let hostname = request
        .param("hostname")
        .map(|h| h.trim().to_ascii_lowercase());

    if let Some(fault) = take_fault(state, hostname.as_deref()) {
        return match fault {
            Fault::Reply {
                status,
                headers,
                body,
            } => Action::Respond {
                status,
                headers,
                body,
            },
            Fault::Hang => Action::Hang,
            Fault::Reset => Action::Reset,
            Fault::EndlessBody { status, prefix } => Action::Endless { status, prefix },
        };
    }

    let text = |status: u16, body: &str| Action::Respond {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    };
    let json = |body: String| Action::Respond {
        status: 400,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    };
    let missing = |field: &str| {
        json(format!(
            r#"{{"class":"Client::BadRequest","message":"{{'{field}': ['Missing data for required field.']}}"}}"#
        ))
    };

    if request.path != UPDATE_PATH {
        return text(404, "Not Found\n");
    }

    // Basic auth: missing, malformed or wrong all get a bare 401 (ovh-dynhost.md).
    let account = request
        .header("authorization")
        .and_then(parse_basic)
        .and_then(|(login, password)| {
            state
                .accounts
                .get(&login)
                .filter(|a| a.password == password)
                .cloned()
        });
    let Some(account) = account else {
        return Action::Respond {
            status: 401,
            headers: vec![("WWW-Authenticate".into(), r#"Basic realm="DynHost""#.into())],
            body: "401 Unauthorized\n".into(),
        };
    };

    // POST is wrong: OVH answers `200 badsys`.
    if request.method != "GET" {
        return text(200, "badsys\n");
    }

    match request.param("system") {
        None => return json(MISSING_SYSTEM_JSON.to_string()),
        Some(system) if system != "dyndns" => return text(200, "badsys\n"),
        Some(_) => {}
    }

    let Some(hostname) = hostname.filter(|h| !h.is_empty()) else {
        return missing("hostname");
    };
    // Several names in one request: unverified at OVH; numhost is the dyndns2 word for it.
    if hostname.contains(',') {
        return text(200, "numhost\n");
    }
    if !account.covers(&hostname) || !state.records.contains_key(&hostname) {
        return text(200, "nohost\n");
    }

    let ip = match request.param("myip") {
        Some(myip) => match myip.trim().parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                return json(
                    r#"{"class":"Client::BadRequest","message":"{'myip': ['Not a valid IP address.']}"}"#
                        .to_string(),
                );
            }
        },
        // OVH takes the source address for IPv4; its endpoint isn't reachable over IPv6, so
        // there myip is mandatory (ovh-dynhost.md).
        None => match peer.ip() {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return missing("myip"),
            },
        },
    };

    let record = state.records.get_mut(&hostname).expect("checked above");
    if record.get(ip) == Some(ip) {
        text(200, &format!("nochg {ip}\n"))
    } else {
        record.set(ip);
        text(200, &format!("good {ip}\n"))
    }
}

fn take_fault(state: &mut State, hostname: Option<&str>) -> Option<Fault> {
    if let Some((fault, left)) = state.next.front_mut() {
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            state.next.pop_front();
        }
        return Some(fault);
    }
    let hostname = hostname?;
    let (fault, left) = state.per_host.get_mut(hostname)?;
    let fault = fault.clone();
    if let Some(left) = left {
        *left -= 1;
        if *left == 0 {
            state.per_host.remove(hostname);
        }
    }
    Some(fault)
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1, by hand

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    version: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn wants_close(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            !connection.contains("keep-alive")
        } else {
            connection.contains("close")
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of the connection between requests.
async fn read_request<C: Conn>(conn: &mut C, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too big"));
        }
        if conn.read_buf(buf).await? == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);

    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed request");
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().ok_or_else(bad)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad());
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let request = Request {
        method: method.to_string(),
        path: percent_decode(path),
        query: parse_query(query),
        version: version.to_string(),
        headers,
    };

    if request.header("transfer-encoding").is_some() {
        // No client of ours sends a chunked request body.
        return Err(bad());
    }
    let length: usize = match request.header("content-length") {
        Some(v) => v.parse().map_err(|_| bad())?,
        None => 0,
    };
    if length > MAX_BODY_BYTES {
        return Err(bad());
    }
    while buf.len() < length {
        if conn.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    buf.drain(..length);
    Ok(Some(request))
}

async fn respond<C: Conn>(
    conn: &mut C,
    status: u16,
    headers: &[(String, String)],
    body: &str,
    chunked: bool,
    close: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nServer: dynhost-standin\r\n",
        reason(status)
    );
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        conn.write_all(head.as_bytes()).await?;
        conn.flush().await?;
        // Split inside the first line, in two writes, so the client has to put it together.
        let cut = body.len().min(3);
        let cut = (cut..=body.len())
            .find(|&i| body.is_char_boundary(i))
            .unwrap_or(body.len());
        for piece in [&body[..cut], &body[cut..]] {
            if !piece.is_empty() {
                conn.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
                    .await?;
                conn.flush().await?;
            }
        }
        conn.write_all(b"0\r\n\r\n").await?;
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        conn.write_all(head.as_bytes()).await?;
    }
    conn.flush().await
}

/// Headers, `prefix`, then chunks of filler until the client stops reading.
async fn endless<C: Conn>(conn: &mut C, status: u16, prefix: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
        reason(status)
    );
    conn.write_all(head.as_bytes()).await?;
    if !prefix.is_empty() {
        conn.write_all(format!("{:x}\r\n{prefix}\r\n", prefix.len()).as_bytes())
            .await?;
    }
    let filler = vec![b'x'; 16 * 1024];
    let mut chunk = format!("{:x}\r\n", filler.len()).into_bytes();
    chunk.extend_from_slice(&filler);
    chunk.extend_from_slice(b"\r\n");
    loop {
        conn.write_all(&chunk).await?;
        conn.flush().await?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `%XX` and `+` (form encoding, as `url`'s query serializer writes spaces); a broken escape is
/// kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Basic <base64(login:password)>` → (login, password); `None` for anything malformed.
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(encoded)?).ok()?;
    let (login, password) = decoded.split_once(':')?;
    Some((login.to_string(), password.to_string()))
}

/// Strict standard base64 with padding: any stray byte (whitespace, a newline) fails, as a
/// malformed header should.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let quads = bytes.len() / 4;
    for (n, quad) in bytes.chunks(4).enumerate() {
        let last = n + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &c in &quad[..4 - pad] {
            acc = (acc << 6) | value(c)?;
        }
        acc <<= 6 * pad as u32;
        let three = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// TLS

/// A fresh CA and a leaf signed by it for `names`. The leaf says `CA:FALSE`: rustls rejects a
/// self-signed leaf used as its own CA (build-notes.md).
fn make_tls(names: &[String]) -> io::Result<(TlsAcceptor, TestCa)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    fn err<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
        io::Error::other(e)
    }

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "dynhostd test CA");
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().map_err(err)?;
    let mut leaf_params = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "dynhost stand-in");
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer).map_err(err)?;

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    // Our own provider, so the stand-in doesn't depend on (or set) the process default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .map_err(err)?;

    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("ca.pem");
    let ca_pem = ca_cert.pem();
    std::fs::write(&ca_file, &ca_pem)?;
    Ok((
        TlsAcceptor::from(Arc::new(config)),
        TestCa {
            _dir: dir,
            ca_file,
            ca_pem,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("dXNlcjpwdw==").unwrap(), b"user:pw");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("dXNlcjpwdw==\n").is_none());
        assert!(base64_decode("dXNlcjpwdw").is_none());
        assert!(base64_decode("dX=lcjpw").is_none());
        assert!(base64_decode("").is_none());
        assert_eq!(
            parse_basic("Basic dXNlcjpwdw=="),
            Some(("user".into(), "pw".into()))
        );
        assert_eq!(parse_basic("Bearer dXNlcjpwdw=="), None);
        assert_eq!(parse_basic("Basic YWJj"), None); // no colon
    }

    #[test]
    fn query_is_percent_decoded() {
        assert_eq!(
            parse_query("a=b%20c&hostname=h%26x&myip=2001%3Adb8%3A%3A1&s=x+y&bad=%zz&e"),
            vec![
                ("a".into(), "b c".into()),
                ("hostname".into(), "h&x".into()),
                ("myip".into(), "2001:db8::1".into()),
                ("s".into(), "x y".into()),
                ("bad".into(), "%zz".into()),
                ("e".into(), "".into()),
            ]
        );
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn star_scope_covers_the_logins_zone() {
        let a = Account {
            login: "example.com-home".into(),
            password: "p".into(),
            scope: "*".into(),
        };
        assert!(a.covers("home.example.com"));
        assert!(a.covers("example.com"));
        assert!(!a.covers("home.example.org"));
        assert!(!a.covers("badexample.com"));
    }
}
