//! What is really published: a small DNS client that finds a zone's authoritative name servers
//! through its NS records and asks them directly (recursion off), so no cache stands between us
//! and the answer. Used to check that a record holds what we think we published, and to repair it
//! when it doesn't (an edit in the OVH panel, a lost update).
//!
//! Only what that needs is implemented (RFC 1035): A, AAAA and NS questions over UDP, TCP when
//! the answer is truncated, name compression, and a strict parser that never panics on garbage.

use crate::record::Family;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
const RCODE_NXDOMAIN: u8 = 3;
/// Pointers followed while reading one name; a loop or a hostile packet stops here.
const MAX_POINTERS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("{0}: no answer within the timeout")]
    Timeout(SocketAddr),
    #[error("{server}: {message}")]
    Io { server: SocketAddr, message: String },
    #[error("{server}: malformed answer ({what})")]
    Malformed {
        server: SocketAddr,
        what: &'static str,
    },
    #[error("{server}: answered {rcode}")]
    Rcode {
        server: SocketAddr,
        rcode: &'static str,
    },
    #[error("{server} is not authoritative for {name}")]
    NotAuthoritative { server: SocketAddr, name: String },
    #[error("no name server found for {0}")]
    NoZone(String),
    #[error("{0:?} is not a DNS name")]
    BadName(String),
    #[error("no resolver: none configured and none in /etc/resolv.conf")]
    NoResolver,
    #[error("the system's random number generator failed")]
    NoRandom,
}

/// The parts of a response we use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub rcode: u8,
    /// AA: the server answered from its own zone.
    pub authoritative: bool,
    pub truncated: bool,
    /// A/AAAA records for the name asked (after following nothing: no CNAME chasing).
    pub addrs: Vec<IpAddr>,
    /// NS records for the name asked.
    pub ns: Vec<String>,
}

/// A question in wire format.
pub fn build_query(id: u16, name: &str, qtype: u16, recursion: bool) -> Result<Vec<u8>, DnsError> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&(if recursion { 0x0100u16 } else { 0 }).to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT 1
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(DnsError::BadName(name.to_string()));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(DnsError::BadName(name.to_string()));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        (self.pos + n <= self.buf.len()).then(|| self.pos += n)
    }

    /// A possibly compressed name, lower-cased, without the trailing dot.
    fn name(&mut self) -> Option<String> {
        let mut labels: Vec<String> = Vec::new();
        let mut pos = self.pos;
        let mut jumped = false;
        let mut pointers = 0;
        loop {
            let len = *self.buf.get(pos)?;
            match len {
                0 => {
                    if !jumped {
                        self.pos = pos + 1;
                    }
                    break;
                }
                l if l & 0xC0 == 0xC0 => {
                    let target = usize::from(l & 0x3F) << 8 | usize::from(*self.buf.get(pos + 1)?);
                    if !jumped {
                        self.pos = pos + 2;
                    }
                    jumped = true;
                    pointers += 1;
                    if pointers > MAX_POINTERS || target >= self.buf.len() {
                        return None;
                    }
                    pos = target;
                }
                l if l & 0xC0 == 0 => {
                    let l = usize::from(l);
                    let label = self.buf.get(pos + 1..pos + 1 + l)?;
                    labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
                    if labels.iter().map(|s| s.len() + 1).sum::<usize>() > 255 {
                        return None;
                    }
                    pos += 1 + l;
                }
                _ => return None, // 0x40/0x80: reserved label types
            }
        }
        Some(labels.join("."))
    }
}

/// Reads a response to the question (`id`, `name`, `qtype`). Never panics.
pub fn parse_response(
    buf: &[u8],
    id: u16,
    name: &str,
    qtype: u16,
) -> Result<Response, &'static str> {
    let mut r = Reader { buf, pos: 0 };
    let got_id = r.u16().ok_or("short header")?;
    if got_id != id {
        return Err("wrong id");
    }
    let flags = r.u16().ok_or("short header")?;
    if flags & 0x8000 == 0 {
        return Err("not a response");
    }
    let qd = r.u16().ok_or("short header")?;
    let an = r.u16().ok_or("short header")?;
    r.u16().ok_or("short header")?; // NSCOUNT
    r.u16().ok_or("short header")?; // ARCOUNT
    let want = name.trim_end_matches('.').to_ascii_lowercase();
    for _ in 0..qd {
        let qname = r.name().ok_or("bad question")?;
        let qt = r.u16().ok_or("bad question")?;
        r.u16().ok_or("bad question")?;
        if qname != want || qt != qtype {
            return Err("answer to another question");
        }
    }
    let mut resp = Response {
        rcode: (flags & 0x000F) as u8,
        authoritative: flags & 0x0400 != 0,
        truncated: flags & 0x0200 != 0,
        ..Response::default()
    };
    for _ in 0..an {
        let owner = r.name().ok_or("bad record")?;
        let rtype = r.u16().ok_or("bad record")?;
        let class = r.u16().ok_or("bad record")?;
        r.skip(4).ok_or("bad record")?; // TTL
        let len = usize::from(r.u16().ok_or("bad record")?);
        let start = r.pos;
        let data = buf.get(start..start + len).ok_or("bad record length")?;
        if owner == want && class == CLASS_IN {
            match (rtype, len) {
                (TYPE_A, 4) => resp.addrs.push(IpAddr::V4(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                ))),
                (TYPE_AAAA, 16) => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(data);
                    resp.addrs.push(IpAddr::V6(Ipv6Addr::from(a)));
                }
                (TYPE_NS, _) => {
                    let mut sub = Reader { buf, pos: start };
                    resp.ns.push(sub.name().ok_or("bad NS name")?);
                }
                (TYPE_A | TYPE_AAAA, _) => return Err("bad address length"),
                _ => {}
            }
        }
        r.skip(len).ok_or("bad record length")?;
    }
    Ok(resp)
}

fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "an error",
    }
}

/// A random query id from the OS generator: the answer decides whether an update is sent, so an
/// off-path guess of the id must not be able to fake it (RFC 5452).
fn query_id() -> Result<u16, DnsError> {
    use ring::rand::SecureRandom;
    let mut id = [0u8; 2];
    ring::rand::SystemRandom::new()
        .fill(&mut id)
        .map_err(|_| DnsError::NoRandom)?;
    Ok(u16::from_ne_bytes(id))
}

/// Asks `server` one question, over UDP, then TCP if the answer was truncated.
pub async fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    recursion: bool,
    timeout: Duration,
) -> Result<Response, DnsError> {
    let id = query_id()?;
    let packet = build_query(id, name, qtype, recursion)?;
    let io = |e: std::io::Error| DnsError::Io {
        server,
        message: e.to_string(),
    };
    let udp = async {
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0".parse().expect("static")
        } else {
            "[::]:0".parse().expect("static")
        };
        let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io)?;
        sock.connect(server).await.map_err(io)?;
        sock.send(&packet).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await.map_err(io)?;
            // Ignore stray datagrams that are not the answer to this question.
            if let Ok(resp) = parse_response(&buf[..n], id, name, qtype) {
                return Ok(resp);
            }
        }
    };
    let resp = tokio::time::timeout(timeout, udp)
        .await
        .map_err(|_| DnsError::Timeout(server))??;
    if !resp.truncated {
        return Ok(resp);
    }
    let tcp = async {
        let mut s = tokio::net::TcpStream::connect(server).await.map_err(io)?;
        let mut framed = (packet.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&packet);
        s.write_all(&framed).await.map_err(io)?;
        let len = s.read_u16().await.map_err(io)?;
        let mut buf = vec![0u8; usize::from(len)];
        s.read_exact(&mut buf).await.map_err(io)?;
        parse_response(&buf, id, name, qtype).map_err(|what| DnsError::Malformed { server, what })
    };
    tokio::time::timeout(timeout, tcp)
        .await
        .map_err(|_| DnsError::Timeout(server))?
}

/// The first `nameserver` of a resolv.conf text.
pub fn resolver_from_resolv_conf(text: &str) -> Option<SocketAddr> {
    text.lines()
        .filter_map(|l| l.split('#').next())
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// Parses `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53` or `[2001:db8::53]:5353`.
pub fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    s.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Records checked at once by one verifier: 1000 hosts must not mean 1000 sockets at once
/// (nor 1000 questions at once to one resolver).
pub const MAX_CHECKS: usize = 32;

/// How long the recursive resolver's answers (a zone's NS, a name server's addresses) and
/// resolv.conf are reused: one pass over the records. The next periodic check asks again.
pub const PASS: Duration = Duration::from_secs(10);

/// Asks the authoritative servers of a record's zone what it holds. Clones share one cap on
/// checks at once and one pass's resolver answers.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Servers to ask directly; empty: find them through the zone's NS records.
    pub nameservers: Vec<SocketAddr>,
    /// The recursive resolver used only to find the NS records and their addresses.
    pub resolver: Option<SocketAddr>,
    pub timeout: Duration,
    shared: std::sync::Arc<Shared>,
}

/// A resolver question: the resolver, the name, the type.
type Question = (SocketAddr, String, u16);
type SharedAnswer = std::sync::Arc<tokio::sync::OnceCell<Result<Response, DnsError>>>;

/// What the clones of a verifier share.
#[derive(Debug)]
struct Shared {
    checks: tokio::sync::Semaphore,
    /// Answers by question, with when they were asked; one in flight is awaited by every
    /// record that needs it.
    answers: std::sync::Mutex<Answers>,
    /// resolv.conf's first `nameserver`, and when it was read.
    resolv_conf: std::sync::Mutex<Option<(Instant, Option<SocketAddr>)>>,
}

#[derive(Debug)]
struct Answers {
    by_question: std::collections::HashMap<Question, (Instant, SharedAnswer)>,
    /// Old answers are dropped at most once a pass, so that costs nothing per question.
    swept: Instant,
}

impl Verifier {
    pub fn new(
        nameservers: Vec<SocketAddr>,
        resolver: Option<SocketAddr>,
        timeout: Duration,
    ) -> Self {
        Verifier {
            nameservers,
            resolver,
            timeout,
            shared: std::sync::Arc::new(Shared {
                checks: tokio::sync::Semaphore::new(MAX_CHECKS),
                answers: std::sync::Mutex::new(Answers {
                    by_question: std::collections::HashMap::new(),
                    swept: Instant::now(),
                }),
                resolv_conf: std::sync::Mutex::new(None),
            }),
        }
    }

    fn resolver(&self) -> Result<SocketAddr, DnsError> {
        if let Some(r) = self.resolver {
            return Ok(r);
        }
        let mut cached = self
            .shared
            .resolv_conf
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let found = match *cached {
            Some((at, found)) if at.elapsed() < PASS => found,
            _ => {
                // Bounded like every file dynhostd reads (a resolv.conf is a few lines).
                let found = crate::fsread::read_to_string(
                    std::path::Path::new("/etc/resolv.conf"),
                    64 << 10,
                )
                .ok()
                .and_then(|t| resolver_from_resolv_conf(&t));
                *cached = Some((Instant::now(), found));
                found
            }
        };
        found.ok_or(DnsError::NoResolver)
    }

    /// Asks the recursive resolver, or shares the answer another record of this pass got (or
    /// is waiting for) to the same question.
    async fn ask_resolver(
        &self,
        resolver: SocketAddr,
        name: &str,
        qtype: u16,
    ) -> Result<Response, DnsError> {
        let answer = {
            let mut answers = self
                .shared
                .answers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let fresh = |(at, a): &(Instant, SharedAnswer)| {
                now.saturating_duration_since(*at) < PASS || !a.initialized()
            };
            if now.saturating_duration_since(answers.swept) >= PASS {
                answers.by_question.retain(|_, e| fresh(e));
                answers.swept = now;
            }
            let question = (resolver, name.to_string(), qtype);
            match answers.by_question.get(&question) {
                Some(e) if fresh(e) => e.1.clone(),
                _ => {
                    let a = SharedAnswer::default();
                    answers.by_question.insert(question, (now, a.clone()));
                    a
                }
            }
        };
        answer
            .get_or_init(|| query(resolver, name, qtype, true, self.timeout))
            .await
            .clone()
    }

    /// The zone's authoritative servers: walk up from `hostname` until a name has NS records,
    /// then resolve those names.
    pub async fn authoritative_servers(&self, hostname: &str) -> Result<Vec<SocketAddr>, DnsError> {
        if !self.nameservers.is_empty() {
            let mut servers = self.nameservers.clone();
            let mut seen = std::collections::HashSet::new();
            servers.retain(|s| seen.insert(*s));
            return Ok(servers);
        }
        let resolver = self.resolver()?;
        let mut name = hostname.trim_end_matches('.').to_string();
        loop {
            let resp = self.ask_resolver(resolver, &name, TYPE_NS).await?;
            if resp.rcode != 0 && resp.rcode != RCODE_NXDOMAIN {
                return Err(DnsError::Rcode {
                    server: resolver,
                    rcode: rcode_name(resp.rcode),
                });
            }
            if !resp.ns.is_empty() {
                let mut servers = Vec::new();
                for ns in &resp.ns {
                    for qtype in [TYPE_A, TYPE_AAAA] {
                        if let Ok(r) = self.ask_resolver(resolver, ns, qtype).await {
                            servers.extend(r.addrs.iter().map(|ip| SocketAddr::new(*ip, 53)));
                        }
                    }
                }
                // Name servers often share addresses (ns1/ns2 on one host): ask each once.
                let mut seen = std::collections::HashSet::new();
                servers.retain(|s| seen.insert(*s));
                if servers.is_empty() {
                    return Err(DnsError::NoZone(hostname.to_string()));
                }
                return Ok(servers);
            }
            match name.split_once('.') {
                // Stop before the TLD: a DynHost name lives in a registered domain.
                Some((_, parent)) if parent.contains('.') => name = parent.to_string(),
                _ => return Err(DnsError::NoZone(hostname.to_string())),
            }
        }
    }

    /// The addresses of `family` that `hostname` has at its authoritative servers (empty: no
    /// such record). The first server that answers authoritatively decides.
    pub async fn published(&self, hostname: &str, family: Family) -> Result<Vec<IpAddr>, DnsError> {
        // Waiting for a turn counts in the caller's cap on the whole check.
        let _turn = self.shared.checks.acquire().await;
        let servers = self.authoritative_servers(hostname).await?;
        let qtype = match family {
            Family::V4 => TYPE_A,
            Family::V6 => TYPE_AAAA,
        };
        let mut last = DnsError::NoZone(hostname.to_string());
        for server in servers {
            match query(server, hostname, qtype, false, self.timeout).await {
                Ok(r) if !r.authoritative => {
                    last = DnsError::NotAuthoritative {
                        server,
                        name: hostname.to_string(),
                    }
                }
                Ok(r) if r.rcode == 0 || r.rcode == RCODE_NXDOMAIN => {
                    let mut addrs = r.addrs;
                    addrs.retain(|a| Family::of(a) == family);
                    return Ok(addrs);
                }
                Ok(r) => {
                    last = DnsError::Rcode {
                        server,
                        rcode: rcode_name(r.rcode),
                    }
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response built by hand: header, the question, then answers given as raw records.
    fn response(id: u16, flags: u16, name: &str, qtype: u16, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut q = build_query(id, name, qtype, false).unwrap();
        q[2..4].copy_from_slice(&flags.to_be_bytes());
        q[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for a in answers {
            q.extend_from_slice(a);
        }
        q
    }

    /// A record whose owner is a pointer to the question name (offset 12).
    fn rr(rtype: u16, data: &[u8]) -> Vec<u8> {
        let mut r = vec![0xC0, 12];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&60u32.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn query_wire_format() {
        let q = build_query(0x1234, "home.example.com.", TYPE_A, false).unwrap();
        assert_eq!(&q[..4], &[0x12, 0x34, 0, 0]);
        assert_eq!(&q[12..17], b"\x04home");
        assert!(q.ends_with(&[0, 0, 1, 0, 1]));
        assert!(build_query(1, "a..b", TYPE_A, true).is_err());
        assert!(build_query(1, &"x".repeat(64), TYPE_A, true).is_err());
    }

    #[test]
    fn parses_addresses_and_ns_with_compression() {
        let a = rr(TYPE_A, &[203, 0, 113, 7]);
        let mut aaaa_data = [0u8; 16];
        aaaa_data[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        aaaa_data[15] = 1;
        let aaaa = rr(TYPE_AAAA, &aaaa_data);
        let buf = response(7, 0x8400, "Home.Example.com", TYPE_A, &[a, aaaa]);
        let r = parse_response(&buf, 7, "home.example.com", TYPE_A).unwrap();
        assert!(r.authoritative);
        assert_eq!(
            r.addrs,
            vec![
                "203.0.113.7".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        // NS: "ns1" + pointer to the zone part of the question name (offset 12+5 = "example.com").
        let ns = rr(TYPE_NS, &[3, b'n', b's', b'1', 0xC0, 17]);
        let buf = response(8, 0x8180, "home.example.com", TYPE_NS, &[ns]);
        let r = parse_response(&buf, 8, "home.example.com", TYPE_NS).unwrap();
        assert_eq!(r.ns, vec!["ns1.example.com".to_string()]);
    }

    #[test]
    fn rejects_the_wrong_answer_and_never_panics_on_garbage() {
        let buf = response(
            9,
            0x8400,
            "home.example.com",
            TYPE_A,
            &[rr(TYPE_A, &[1, 2, 3, 4])],
        );
        assert!(
            parse_response(&buf, 10, "home.example.com", TYPE_A).is_err(),
            "wrong id"
        );
        assert!(
            parse_response(&buf, 9, "other.example.com", TYPE_A).is_err(),
            "other question"
        );
        assert!(
            parse_response(&buf, 9, "home.example.com", TYPE_AAAA).is_err(),
            "other type"
        );
        let bad_len = response(
            9,
            0x8400,
            "home.example.com",
            TYPE_A,
            &[rr(TYPE_A, &[1, 2, 3])],
        );
        assert!(parse_response(&bad_len, 9, "home.example.com", TYPE_A).is_err());
        // A pointer loop.
        let mut looped = response(9, 0x8400, "home.example.com", TYPE_A, &[]);
        looped[6..8].copy_from_slice(&1u16.to_be_bytes());
        let at = looped.len() as u16;
        looped.extend_from_slice(&[0xC0 | (at >> 8) as u8, at as u8]);
        looped.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        assert!(parse_response(&looped, 9, "home.example.com", TYPE_A).is_err());
        // Every truncation and a pile of pseudo-random bytes.
        for cut in 0..buf.len() {
            let _ = parse_response(&buf[..cut], 9, "home.example.com", TYPE_A);
        }
        let mut x: u32 = 1;
        for _ in 0..2000 {
            let junk: Vec<u8> = (0..64)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let _ = parse_response(&junk, u16::from_be_bytes([junk[0], junk[1]]), "a.b", TYPE_A);
        }
    }

    #[test]
    fn resolv_conf_and_server_syntax() {
        let text = "# comment\nsearch lan\nnameserver fe80::1%eth0\nnameserver 192.0.2.53\n";
        assert_eq!(
            resolver_from_resolv_conf(text),
            Some("[fe80::1]:53".parse().unwrap())
        );
        assert_eq!(resolver_from_resolv_conf("search lan\n"), None);
        assert_eq!(
            parse_server("192.0.2.53"),
            Some("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("192.0.2.53:5353"),
            Some("192.0.2.53:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server("2001:db8::53"),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[2001:db8::53]:5353"),
            Some("[2001:db8::53]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("ns1.example.com"), None);
    }

    /// The question of a query: (id, name, type).
    fn question(q: &[u8]) -> (u16, String, u16) {
        let mut r = Reader { buf: q, pos: 12 };
        let name = r.name().unwrap();
        let qtype = r.u16().unwrap();
        (u16::from_be_bytes([q[0], q[1]]), name, qtype)
    }

    /// How often each question was asked, and the most questions that waited at once.
    type Seen =
        std::sync::Arc<std::sync::Mutex<(std::collections::HashMap<(String, u16), usize>, usize)>>;

    /// A resolver on loopback for `example.com` (NS ns1.example.com at 127.0.0.1; names under
    /// it have no NS of their own; any other name is refused), counting every question it
    /// gets. It answers once more than `hold` questions wait, or after a quiet moment.
    async fn resolver(hold: usize) -> (SocketAddr, Seen) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let seen = Seen::default();
        let log = seen.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut waiting = Vec::new();
            loop {
                let quiet = std::time::Duration::from_millis(300);
                let got = tokio::time::timeout(quiet, sock.recv_from(&mut buf)).await;
                if let Ok(Ok((n, from))) = got {
                    let (id, name, qtype) = question(&buf[..n]);
                    let mut l = log.lock().unwrap();
                    *l.0.entry((name.clone(), qtype)).or_default() += 1;
                    waiting.push((id, name, qtype, from));
                    l.1 = l.1.max(waiting.len());
                    if waiting.len() <= hold {
                        continue;
                    }
                }
                for (id, name, qtype, from) in waiting.drain(..) {
                    let answers = match (name.as_str(), qtype) {
                        ("example.com", TYPE_NS) => {
                            vec![rr(TYPE_NS, b"\x03ns1\x07example\x03com\x00")]
                        }
                        ("ns1.example.com", TYPE_A) => vec![rr(TYPE_A, &[127, 0, 0, 1])],
                        _ => vec![],
                    };
                    // REFUSED outside example.com.
                    let flags = if name.ends_with("example.com") {
                        0x8180
                    } else {
                        0x8185
                    };
                    let reply = response(id, flags, &name, qtype, &answers);
                    sock.send_to(&reply, from).await.unwrap();
                }
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn the_records_of_one_zone_share_its_name_server_lookups() {
        let (addr, seen) = resolver(0).await;
        let v = Verifier::new(vec![], Some(addr), Duration::from_secs(20));
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..40 {
            let v = v.clone();
            checks
                .spawn(async move { v.authoritative_servers(&format!("h{i}.example.com")).await });
        }
        while let Some(servers) = checks.join_next().await {
            assert_eq!(servers.unwrap(), Ok(vec!["127.0.0.1:53".parse().unwrap()]));
        }
        let seen = seen.lock().unwrap().0.clone();
        // Each name once: its own NS (it could be a zone of its own), then the zone's NS and
        // the name server's addresses once for all 40.
        assert_eq!(seen.len(), 40 + 3, "{seen:?}");
        assert!(seen.values().all(|n| *n == 1), "{seen:?}");
        assert_eq!(seen.get(&("example.com".into(), TYPE_NS)), Some(&1));
        assert_eq!(seen.get(&("ns1.example.com".into(), TYPE_AAAA)), Some(&1));
    }

    #[tokio::test]
    async fn only_so_many_records_are_checked_at_once() {
        let (addr, seen) = resolver(MAX_CHECKS).await;
        let v = Verifier::new(vec![], Some(addr), Duration::from_secs(20));
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..3 * MAX_CHECKS {
            let v = v.clone();
            checks
                .spawn(async move { v.published(&format!("h{i}.example.net"), Family::V4).await });
        }
        let mut done = 0;
        while let Some(r) = checks.join_next().await {
            assert!(matches!(
                r.unwrap(),
                Err(DnsError::Rcode {
                    rcode: "REFUSED",
                    ..
                })
            ));
            done += 1;
        }
        assert_eq!(done, 3 * MAX_CHECKS);
        let most = seen.lock().unwrap().1;
        assert!((1..=MAX_CHECKS).contains(&most), "{most} questions at once");
    }
}
