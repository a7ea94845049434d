//! A local what's-my-IP source for tests: a tiny HTTP/1.1 server that answers every request
//! with a scripted answer (an address as plain text or checkip-style HTML, an error status, a
//! hang), on IPv4 and IPv6 loopback at once, and logs who asked. Include it with
//! `#[path = "support/ipsource.rs"] mod ipsource;`, beside `netns` (IPv6 on loopback is a
//! prerequisite: see `netns::need`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the source answers.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with this body.
    Body(String),
    /// This status with a short body.
    Status(u16),
    /// Read the request, never answer.
    Hang,
}

#[derive(Default)]
struct Shared {
    answer: Option<Answer>,
    peers: Vec<SocketAddr>,
}

/// A running source; it stops with the test process (threads are detached).
#[derive(Clone)]
pub struct IpSource {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl IpSource {
    /// Listens on 127.0.0.1 and [::1] (same port, when `ipv6`), answering `answer`.
    pub fn start(answer: Answer, ipv6: bool) -> IpSource {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = v4.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared {
            answer: Some(answer),
            peers: Vec::new(),
        }));
        let mut listeners = vec![v4];
        if ipv6 {
            let v6 = TcpListener::bind(("::1", port));
            crate::netns::need(
                v6.is_ok(),
                &format!(
                    "no IPv6 on loopback: cannot listen on [::1]: {}",
                    v6.as_ref().err().map(|e| e.to_string()).unwrap_or_default()
                ),
            );
            listeners.push(v6.unwrap());
        }
        for l in listeners {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for conn in l.incoming().flatten() {
                    let shared = shared.clone();
                    std::thread::spawn(move || serve(conn, &shared));
                }
            });
        }
        IpSource { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://<host>:<port>/` — use `localhost` to let the client pick the family.
    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/", self.port)
    }

    pub fn set(&self, answer: Answer) {
        self.shared.lock().unwrap().answer = Some(answer);
    }

    /// Who asked, in order.
    pub fn peers(&self) -> Vec<SocketAddr> {
        self.shared.lock().unwrap().peers.clone()
    }

    pub fn count(&self) -> usize {
        self.shared.lock().unwrap().peers.len()
    }

    pub fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

fn serve(mut conn: TcpStream, shared: &Mutex<Shared>) {
    let peer = conn.peer_addr().ok();
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 16 * 1024 {
            return;
        }
    }
    let answer = {
        let mut s = shared.lock().unwrap();
        if let Some(p) = peer {
            s.peers.push(p);
        }
        s.answer.clone()
    };
    let (status, body) = match answer {
        Some(Answer::Body(b)) => (200, b),
        Some(Answer::Status(s)) => (s, format!("status {s}\n")),
        Some(Answer::Hang) | None => {
            std::thread::sleep(Duration::from_secs(60));
            return;
        }
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
