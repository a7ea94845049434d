//! A local notification receiver for tests: a tiny HTTP/1.1 server on 127.0.0.1 that records
//! every request (method, target, headers, body) and answers as told: 200, another status, or
//! not at all (hang). It can also be started late on a port chosen beforehand, to play a
//! receiver that is down at first. Include it with `#[path = "support/receiver.rs"] mod receiver;`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Read the request, record it, never answer (the connection stays open).
    Hang,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The request target: path and query.
    pub target: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

struct Shared {
    answer: Answer,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl Receiver {
    /// Listening now, on a port of its own.
    pub fn start(answer: Answer) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let r = Receiver::unbound(l.local_addr().unwrap().port(), answer);
        r.serve(l);
        r
    }

    /// A receiver for `port` that is not listening yet (connections are refused): call
    /// [`Self::listen`] to bring it up. The port is picked free by binding and letting go; the
    /// test runs in a network namespace of its own, so nobody else takes it meanwhile.
    pub fn down(answer: Answer) -> Receiver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Receiver::unbound(port, answer)
    }

    fn unbound(port: u16, answer: Answer) -> Receiver {
        Receiver {
            port,
            shared: Arc::new(Mutex::new(Shared {
                answer,
                received: Vec::new(),
            })),
        }
    }

    pub fn listen(&self) {
        let l = TcpListener::bind(("127.0.0.1", self.port)).expect("bind the receiver's port");
        self.serve(l);
    }

    fn serve(&self, l: TcpListener) {
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || serve(conn, &shared));
            }
        });
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `127.0.0.1:<port>`, for shoutrrr URLs.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set(&self, answer: Answer) {
        self.shared.lock().unwrap().answer = answer;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// The requests whose target starts with `prefix`.
    pub fn to(&self, prefix: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.target.starts_with(prefix))
            .collect()
    }

    /// Waits (up to `timeout`) until `pred` holds of what was received.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !pred(&self.received()) {
            assert!(
                Instant::now() < deadline,
                "the receiver never got {what}: {:#?}",
                self.received()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve(mut conn: TcpStream, shared: &Mutex<Shared>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (
        first.next().unwrap_or("").to_string(),
        first.next().unwrap_or("").to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let answer = {
        let mut s = shared.lock().unwrap();
        s.received.push(Received {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        s.answer
    };
    match answer {
        Answer::Hang => {
            // Held until the client gives up (its read returns 0) or the test ends.
            let _ = conn.set_read_timeout(None);
            let _ = conn.read(&mut chunk);
        }
        Answer::Status(status) => {
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
            );
        }
    }
}
