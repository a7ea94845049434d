//! A standalone DynHost stand-in: the test server of `tests/support/standin.rs` as a program, so
//! that other clients (ddclient, inadyn, curl, a shell script) can be pointed at it by hand, and so
//! that a benchmark outside Rust can read when each request arrived.
//!
//! ```text
//! cargo run --release --example standin -- [--port 8080] [--hosts N] [--log FILE] [--https]
//! ```
//!
//! It serves on 127.0.0.1 (never anything else: loopback only). Accounts: `example.com-home`
//! for `home.example.com`, and with `--hosts N` also `example.com-hK` for `hK.example.com`
//! (K = 1..=N), all with the password `bench-password`. Each request is appended to the log
//! (default: stdout) as `<CLOCK_MONOTONIC ns> <method> <path?query> -> <answer>`, stamped when
//! the request arrived, so it can be compared with `clock_gettime(CLOCK_MONOTONIC)` taken by
//! whoever changed the address. `--print-now` prints CLOCK_MONOTONIC in ns and exits: a shell
//! script has no other way to read that clock.

#[path = "../tests/support/standin.rs"]
mod standin;

use standin::{Standin, StandinConfig};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "bench-password";

/// CLOCK_MONOTONIC in nanoseconds: the clock `Instant` reads on Linux.
fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// An `Instant` as CLOCK_MONOTONIC ns, by measuring how long ago it was.
fn instant_ns(at: Instant) -> u128 {
    let (now_ns, now) = (monotonic_ns(), Instant::now());
    now_ns - now.duration_since(at).as_nanos()
}

fn usage() -> ! {
    eprintln!(
        "usage: standin [--port PORT] [--hosts N] [--log FILE] [--https] | --print-now\n\
         serves a DynHost stand-in on 127.0.0.1; see the comment at the top of examples/standin.rs"
    );
    std::process::exit(2)
}

fn main() {
    let mut port = 0u16;
    let mut hosts = 0usize;
    let mut log: Option<String> = None;
    let mut https = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--hosts" => hosts = value().parse().unwrap_or_else(|_| usage()),
            "--log" => log = Some(value()),
            "--https" => https = true,
            "--print-now" => {
                println!("{}", monotonic_ns());
                return;
            }
            _ => usage(),
        }
    }

    let config = if https {
        StandinConfig::https()
    } else {
        StandinConfig::http()
    }
    .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    .account("example.com-home", PASSWORD, "home.example.com")
    .record("home.example.com")
    .numbered_hosts(hosts, PASSWORD);
    let server = Standin::start_on_thread(config).unwrap_or_else(|e| {
        eprintln!("standin: cannot start: {e}");
        std::process::exit(1)
    });
    eprintln!("standin: serving {}", server.url());
    if let Some(ca) = server.ca_file() {
        eprintln!("standin: test CA in {}", ca.display());
    }

    let mut out: Box<dyn Write> = match &log {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| {
                    eprintln!("standin: cannot open {path}: {e}");
                    std::process::exit(1)
                }),
        ),
        None => Box::new(std::io::stdout()),
    };
    // The stand-in stamps requests itself; this loop only copies new entries out, so its pace
    // does not change the timestamps.
    let mut written = 0;
    loop {
        let requests = server.requests();
        for r in &requests[written.min(requests.len())..] {
            let query = r
                .query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            let _ = writeln!(
                out,
                "{} {} {}?{} -> {}",
                instant_ns(r.at),
                r.method,
                r.path,
                query,
                r.answer
            );
        }
        if requests.len() > written {
            let _ = out.flush();
            written = requests.len();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
