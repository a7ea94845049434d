//! The DynHost client against the local stand-in, on loopback only: what a request looks like on
//! the wire, how each reply and each failure comes back, over HTTP and HTTPS with a test CA.

#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use dynhostd::provider::client::{
    ClientOptions, Clients, DynHostClient, MAX_REPLY_BYTES, USER_AGENT, UpdateRequest,
};
use dynhostd::provider::{Provider, Reply, TransportKind, Verdict, verdict};
use dynhostd::secret::Secret;
use standin::{DynRecord, Fault, Standin, StandinConfig};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

const LOGIN: &str = "example.com-home";
const PASSWORD: &str = "correct-horse-7";
const HOST: &str = "home.example.com";
const IP4: &str = "203.0.113.7";
const IP4_B: &str = "198.51.100.42";
const IP6: &str = "2001:db8::7";
const WAIT: Duration = Duration::from_secs(10);
/// Only a hung test takes this long.
const HUNG: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// One login scoped to one host that has a DynHost record.
fn with_host(config: StandinConfig) -> StandinConfig {
    config.account(LOGIN, PASSWORD, HOST).record(HOST)
}

fn client(ca_file: Option<&Path>) -> DynHostClient {
    DynHostClient::new(true, ca_file, &ClientOptions::default()).unwrap()
}

fn fast_client(ca_file: Option<&Path>) -> DynHostClient {
    let opts = ClientOptions {
        connect_timeout: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
    };
    DynHostClient::new(true, ca_file, &opts).unwrap()
}

async fn send(client: &DynHostClient, server: &str, password: &str, myip: &str) -> Reply {
    send_for(client, server, HOST, password, myip).await
}

async fn send_for(
    client: &DynHostClient,
    server: &str,
    hostname: &str,
    password: &str,
    myip: &str,
) -> Reply {
    let server = reqwest::Url::parse(server).unwrap();
    let password = Secret::new(password);
    let req = UpdateRequest {
        provider: Provider::Ovh,
        server: &server,
        hostname,
        login: LOGIN,
        password: &password,
        ip: ip(myip),
    };
    client.update(&req).await
}

fn assert_no_password(reply: &Reply) {
    // Shown with --nocapture, or when a test fails: what a user would read in the log.
    eprintln!("summary: {}", reply.summary());
    assert!(!format!("{reply:?}").contains(PASSWORD), "{reply:?}");
    assert!(!reply.summary().contains(PASSWORD), "{}", reply.summary());
}

// -- request shape -----------------------------------------------------------------------------

#[tokio::test]
async fn request_is_a_get_with_the_query_the_user_agent_and_auth_up_front() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    let server = format!("{}?token=a%20b", s.url());
    let reply = send(&client(None), &server, PASSWORD, IP4).await;
    assert_eq!(reply, Reply::Good(Some(ip(IP4))));

    let log = s.requests();
    // Exactly one request: the credentials went with the first one, no 401 round trip.
    assert_eq!(log.len(), 1, "{log:#?}");
    let r = &log[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/nic/update");
    assert!(r.authorization);
    assert_eq!(r.login.as_deref(), Some(LOGIN));
    assert_eq!(r.user_agent.as_deref(), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("dynhostd/"));
    assert_eq!(
        r.param("token"),
        Some("a b"),
        "the server's own query is kept"
    );
    assert_eq!(r.param("system"), Some("dyndns"));
    assert_eq!(r.param("hostname"), Some(HOST));
    assert_eq!(r.param("myip"), Some(IP4));
    assert!(r.peer.ip().is_loopback());
    assert_eq!(r.answer, format!("200 good {IP4}"));
}

#[tokio::test]
async fn ipv6_myip_is_encoded_and_published() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    let reply = send(&client(None), &s.url(), PASSWORD, IP6).await;
    assert_eq!(reply, Reply::Good(Some(ip(IP6))));
    assert_eq!(s.requests()[0].param("myip"), Some(IP6));
    let record = s.record(HOST).unwrap();
    assert_eq!(record.aaaa, Some(IP6.parse().unwrap()));
    assert_eq!(record.a, None);
}

// -- good / nochg ------------------------------------------------------------------------------

async fn good_then_nochg(s: &Standin, client: &DynHostClient) {
    let url = s.url();
    let first = send(client, &url, PASSWORD, IP4).await;
    assert_eq!(first, Reply::Good(Some(ip(IP4))));
    assert_eq!(verdict(&first), Verdict::Published { changed: true });
    let again = send(client, &url, PASSWORD, IP4).await;
    assert_eq!(again, Reply::NoChg(Some(ip(IP4))));
    assert_eq!(verdict(&again), Verdict::Published { changed: false });
    let moved = send(client, &url, PASSWORD, IP4_B).await;
    assert_eq!(moved, Reply::Good(Some(ip(IP4_B))));
    assert_eq!(s.record(HOST).unwrap().a, Some(IP4_B.parse().unwrap()));
}

#[tokio::test]
async fn good_then_nochg_over_http() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    let c = client(None);
    good_then_nochg(&s, &c).await;
    // reqwest keeps the connection: three requests, one connection.
    assert_eq!(s.connections(), 1);
}

#[tokio::test]
async fn good_then_nochg_over_http_with_chunked_replies() {
    let s = Standin::start(with_host(StandinConfig::http().chunked(true)))
        .await
        .unwrap();
    good_then_nochg(&s, &client(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_then_nochg_over_https_with_the_test_ca() {
    let s = Standin::start(with_host(StandinConfig::https()))
        .await
        .unwrap();
    assert!(s.url().starts_with("https://127.0.0.1:"));
    good_then_nochg(&s, &client(s.ca_file())).await;
    // The name form of the address is in the certificate too.
    let reply = send(
        &client(s.ca_file()),
        &s.url_with_host("localhost"),
        PASSWORD,
        IP6,
    )
    .await;
    assert_eq!(reply, Reply::Good(Some(ip(IP6))));
}

#[tokio::test]
async fn clients_cache_serves_https_with_its_ca_file() {
    let s = Standin::start(with_host(StandinConfig::https().chunked(true)))
        .await
        .unwrap();
    let mut clients = Clients::new(ClientOptions::default());
    let c = clients.get(true, s.ca_file()).unwrap();
    assert_eq!(
        send(&c, &s.url(), PASSWORD, IP4).await,
        Reply::Good(Some(ip(IP4)))
    );
    let again = clients.get(true, s.ca_file()).unwrap();
    assert_eq!(
        send(&again, &s.url(), PASSWORD, IP4).await,
        Reply::NoChg(Some(ip(IP4)))
    );
    assert_eq!(s.connections(), 1, "the cached client shares its pool");
}

// -- replies that aren't success ---------------------------------------------------------------

#[tokio::test]
async fn each_failure_reply_is_classified() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    let c = client(None);
    let url = s.url();
    let table: Vec<(Fault, Reply)> = vec![
        (Fault::server_trouble(), Reply::ServerTrouble),
        (Fault::dnserr(), Reply::DnsErr),
        (Fault::abuse(), Reply::Abuse),
        (Fault::badauth(), Reply::BadAuth),
        (Fault::code("nohost"), Reply::NoHost),
        (Fault::code("badsys"), Reply::BadSys),
        (Fault::code("notfqdn"), Reply::NotFqdn),
        (Fault::code("numhost"), Reply::NumHost),
        (Fault::code("badagent"), Reply::BadAgent),
        (Fault::code("!donator"), Reply::NotDonator),
        (Fault::code("!yours"), Reply::NotYours),
        (Fault::status(500), Reply::ServerError(500)),
        (Fault::status(502), Reply::ServerError(502)),
        (Fault::status(503), Reply::ServerError(503)),
        (
            Fault::unavailable(120),
            Reply::RateLimited(Some(Duration::from_secs(120))),
        ),
        (
            Fault::too_many_requests(Some(30)),
            Reply::RateLimited(Some(Duration::from_secs(30))),
        ),
        (Fault::too_many_requests(None), Reply::RateLimited(None)),
        (Fault::status(401), Reply::Unauthorized),
        (
            Fault::reply(400, standin::MISSING_SYSTEM_JSON),
            Reply::BadRequest("{'system': ['Missing data for required field.']}".into()),
        ),
        (
            Fault::reply(200, "<html>maintenance</html>\n"),
            Reply::Unknown {
                status: 200,
                first_line: "<html>maintenance</html>".into(),
            },
        ),
    ];
    for (fault, want) in table {
        s.fail_next(1, fault.clone());
        let got = send(&c, &url, PASSWORD, IP4).await;
        assert_eq!(got, want, "{fault:?}");
    }
    // Faults used up: the real answer again.
    assert_eq!(
        send(&c, &url, PASSWORD, IP4).await,
        Reply::Good(Some(ip(IP4)))
    );
}

#[tokio::test]
async fn wrong_password_is_unauthorized_and_stops() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    let reply = send(&client(None), &s.url(), "wrong-password", IP4).await;
    assert_eq!(reply, Reply::Unauthorized);
    assert!(matches!(verdict(&reply), Verdict::Stop { .. }));
    // The header was well formed, so the login shows in the log; the password doesn't.
    let log = s.requests();
    assert_eq!(log[0].login.as_deref(), Some(LOGIN));
    assert!(!format!("{log:?}").contains("wrong-password"));
    assert_eq!(s.record(HOST), Some(DynRecord::default()));
}

#[tokio::test]
async fn a_host_outside_the_scope_or_without_record_is_nohost() {
    let s = Standin::start(
        with_host(StandinConfig::http())
            .account("example.com-all", "pw-all-9", "*")
            .record("other.example.com"),
    )
    .await
    .unwrap();
    let c = client(None);
    // Our login is scoped to HOST only.
    let reply = send_for(&c, &s.url(), "other.example.com", PASSWORD, IP4).await;
    assert_eq!(reply, Reply::NoHost);
    // In scope, but no record.
    s.remove_record(HOST);
    assert_eq!(send(&c, &s.url(), PASSWORD, IP4).await, Reply::NoHost);
}

#[tokio::test]
async fn per_host_faults_hit_only_that_host() {
    let s = Standin::start(
        StandinConfig::http()
            .account(LOGIN, PASSWORD, "*")
            .record(HOST)
            .record("office.example.com"),
    )
    .await
    .unwrap();
    let c = client(None);
    s.fail_host(HOST, Fault::abuse(), Some(2));
    let office = |c: &DynHostClient| {
        let url = s.url();
        let c = c.clone();
        async move { send_for(&c, &url, "office.example.com", PASSWORD, IP4).await }
    };
    assert_eq!(send(&c, &s.url(), PASSWORD, IP4).await, Reply::Abuse);
    assert_eq!(office(&c).await, Reply::Good(Some(ip(IP4))));
    assert_eq!(send(&c, &s.url(), PASSWORD, IP4).await, Reply::Abuse);
    assert_eq!(office(&c).await, Reply::NoChg(Some(ip(IP4))));
    // Used up: the real answer again.
    assert_eq!(
        send(&c, &s.url(), PASSWORD, IP4).await,
        Reply::Good(Some(ip(IP4)))
    );
}

// -- no reply at all ---------------------------------------------------------------------------

#[tokio::test]
async fn a_hanging_server_is_a_timeout() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    s.fail_next(1, Fault::hang());
    // The client's own 1 s timeout ends it: the reply says Timeout. (The bound here only
    // fails a test that hangs; how long it took is not the point.)
    let reply = tokio::time::timeout(HUNG, send(&fast_client(None), &s.url(), PASSWORD, IP4))
        .await
        .expect("the client's timeout never fired");
    assert!(
        matches!(
            &reply,
            Reply::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(verdict(&reply), Verdict::Retry { after: None });
    assert_no_password(&reply);
}

#[tokio::test]
async fn a_hanging_https_server_is_a_timeout() {
    let s = Standin::start(with_host(StandinConfig::https()))
        .await
        .unwrap();
    s.fail_next(1, Fault::hang());
    let reply = send(&fast_client(s.ca_file()), &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(
            &reply,
            Reply::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/nic/update");
    let reply = send(&fast_client(None), &url, PASSWORD, IP4).await;
    assert!(
        matches!(
            &reply,
            Reply::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(verdict(&reply), Verdict::Retry { after: None });
    assert_no_password(&reply);
    assert!(
        reply.summary().starts_with("connect: "),
        "{}",
        reply.summary()
    );
}

#[tokio::test]
async fn a_reset_connection_is_a_transport_error() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    s.fail_next(1, Fault::reset());
    let reply = send(&fast_client(None), &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(&reply, Reply::Transport { kind, .. } if *kind != TransportKind::Tls),
        "{reply:?}"
    );
    assert_no_password(&reply);
}

// -- TLS ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unknown_ca_is_a_tls_error() {
    let s = Standin::start(with_host(StandinConfig::https()))
        .await
        .unwrap();
    // No ca_file: the system roots don't know the test CA.
    let reply = send(&client(None), &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(
            &reply,
            Reply::Transport {
                kind: TransportKind::Tls,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_eq!(verdict(&reply), Verdict::Retry { after: None });
    assert!(reply.summary().starts_with("tls: "), "{}", reply.summary());
    assert_no_password(&reply);
    // It stays an error: no request got through, so nothing was sent unverified.
    assert_eq!(s.request_count(), 0);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_tls_error() {
    let s = Standin::start(with_host(StandinConfig::https_for(&["wrong.example.net"])))
        .await
        .unwrap();
    let reply = send(&client(s.ca_file()), &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(
            &reply,
            Reply::Transport {
                kind: TransportKind::Tls,
                ..
            }
        ),
        "{reply:?}"
    );
    assert_no_password(&reply);
    assert_eq!(s.request_count(), 0);
}

#[tokio::test]
async fn plain_http_to_an_https_server_is_not_a_reply() {
    let s = Standin::start(with_host(StandinConfig::https()))
        .await
        .unwrap();
    let url = s.url().replace("https://", "http://");
    let reply = send(&fast_client(None), &url, PASSWORD, IP4).await;
    assert!(matches!(reply, Reply::Transport { .. }), "{reply:?}");
}

// -- bodies ------------------------------------------------------------------------------------

#[tokio::test]
async fn an_endless_body_is_classified_without_hanging() {
    let s = Standin::start(with_host(StandinConfig::http()))
        .await
        .unwrap();
    // The default 30 s timeout: without the cap an endless body ends in a timeout error, so
    // the classified replies below show the cap did it (not how fast it was).
    let c = client(None);
    s.fail_next(1, Fault::endless(200, "good 203.0.113.7\n"));
    assert_eq!(
        send(&c, &s.url(), PASSWORD, IP4).await,
        Reply::Good(Some(ip(IP4)))
    );
    s.fail_next(1, Fault::endless(200, ""));
    let reply = send(&c, &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(&reply, Reply::Unknown { status: 200, first_line } if first_line.len() == 100 && first_line.chars().all(|c| c == 'x')),
        "{reply:?}"
    );
    // The connection was dropped, not drained: the next update works (on a new one). The
    // injected `good` changed nothing, so this is the record's first real update.
    assert_eq!(
        send(&c, &s.url(), PASSWORD, IP4).await,
        Reply::Good(Some(ip(IP4)))
    );
    assert_eq!(s.connections(), 3);
}

#[tokio::test]
async fn an_endless_https_body_is_classified_without_hanging() {
    let s = Standin::start(with_host(StandinConfig::https()))
        .await
        .unwrap();
    s.fail_next(1, Fault::endless(503, "911\n"));
    let reply = send(&client(s.ca_file()), &s.url(), PASSWORD, IP4).await;
    assert_eq!(reply, Reply::ServerError(503));
}

#[tokio::test]
async fn a_body_over_the_cap_is_cut_and_still_read() {
    let s = Standin::start(with_host(StandinConfig::http().chunked(true)))
        .await
        .unwrap();
    let c = client(None);
    let big = format!("nochg 203.0.113.7\n{}", "y".repeat(4 * MAX_REPLY_BYTES));
    s.fail_next(1, Fault::reply(200, &big));
    assert_eq!(
        send(&c, &s.url(), PASSWORD, IP4).await,
        Reply::NoChg(Some(ip(IP4)))
    );
    // A first line longer than the cap: what is left is a short, printable Unknown.
    s.fail_next(1, Fault::reply(200, &"z".repeat(MAX_REPLY_BYTES * 2)));
    let reply = send(&c, &s.url(), PASSWORD, IP4).await;
    assert!(
        matches!(&reply, Reply::Unknown { first_line, .. } if first_line.len() == 100),
        "{reply:?}"
    );
}

// -- the stand-in itself, as ovh-dynhost.md describes the server --------------------------------

/// One raw HTTP/1.1 exchange (the client can't send the wrong requests we want to see refused).
fn raw(s: &Standin, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(s.addr()).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn auth_header() -> String {
    // base64("example.com-home:correct-horse-7")
    "Authorization: Basic ZXhhbXBsZS5jb20taG9tZTpjb3JyZWN0LWhvcnNlLTc=\r\n".to_string()
}

#[test]
fn standin_refuses_wrong_requests_like_ovh() {
    let s = Standin::start_on_thread(with_host(StandinConfig::http())).unwrap();
    let get = |query: &str, auth: &str| {
        raw(
            &s,
            &format!(
                "GET /nic/update{query} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
            ),
        )
    };
    let q = format!("?system=dyndns&hostname={HOST}&myip={IP4}");

    // No Authorization, a malformed one, a wrong one: 401.
    assert_eq!(get(&q, "").0, 401);
    assert_eq!(get(&q, "Authorization: Basic !!!\r\n").0, 401);
    assert_eq!(get(&q, "Authorization: Basic Zm9vOmJhcg==\r\n").0, 401);
    // Missing system: OVH's JSON 400.
    let (status, body) = get(&format!("?hostname={HOST}&myip={IP4}"), &auth_header());
    assert_eq!((status, body.as_str()), (400, standin::MISSING_SYSTEM_JSON));
    // POST: 200 badsys.
    let (status, body) = raw(
        &s,
        &format!(
            "POST /nic/update{q} HTTP/1.1\r\nHost: x\r\n{}Content-Length: 3\r\nConnection: close\r\n\r\nabc",
            auth_header()
        ),
    );
    assert_eq!((status, body.as_str()), (200, "badsys\n"));
    // Unparseable myip: a 400.
    assert_eq!(
        get(
            &format!("?system=dyndns&hostname={HOST}&myip=nope"),
            &auth_header()
        )
        .0,
        400
    );
    // myip omitted over IPv4: the source address is used.
    let (status, body) = get(&format!("?system=dyndns&hostname={HOST}"), &auth_header());
    assert_eq!((status, body.as_str()), (200, "good 127.0.0.1\n"));
    // Good then nochg, newline-terminated.
    assert_eq!(get(&q, &auth_header()), (200, format!("good {IP4}\n")));
    assert_eq!(get(&q, &auth_header()), (200, format!("nochg {IP4}\n")));

    let log = s.wait_for_requests_blocking(9, WAIT).unwrap();
    assert!(!log[0].authorization);
    assert!(log[1].authorization && log[1].login.is_none());
    assert_eq!(log[2].login.as_deref(), Some("foo"));
    assert_eq!(log[4].method, "POST");
}

#[test]
fn standin_wants_myip_over_ipv6() {
    let started =
        Standin::start_on_thread(with_host(StandinConfig::http()).bind("[::1]:0".parse().unwrap()));
    if !netns::prerequisite(
        "standin_wants_myip_over_ipv6",
        started.is_ok(),
        &format!(
            "cannot listen on [::1] (no IPv6 on loopback?): {}",
            started
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        ),
    ) {
        return;
    }
    let s = started.unwrap();
    let (status, body) = raw(
        &s,
        &format!(
            "GET /nic/update?system=dyndns&hostname={HOST} HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
            auth_header()
        ),
    );
    assert_eq!(status, 400);
    assert!(body.contains("myip"), "{body}");
}

#[test]
fn standin_on_its_own_thread_serves_a_blocking_caller() {
    let s = Standin::start_on_thread(with_host(StandinConfig::https())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reply = runtime.block_on(send(&client(s.ca_file()), &s.url(), PASSWORD, IP4));
    assert_eq!(reply, Reply::Good(Some(ip(IP4))));
    assert_eq!(s.wait_for_requests_blocking(1, WAIT).unwrap().len(), 1);
    drop(s); // stops the thread; must not hang
}
