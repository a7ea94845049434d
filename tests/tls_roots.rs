//! Where the TLS roots come from, black-box (issue 21): the system's CA store is read only when
//! some URL is `https`, from one source (`SSL_CERT_FILE` here), and a store that cannot be read
//! is a clear error for `https`, never a hang, and no concern of a config that is all `http://`.
//! The store given is a FIFO (a read would block forever), a device and garbage.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use netns::in_netns;
use standin::{Standin, StandinConfig};

const HOME: &str = "hostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"Pw-for-tests-9f83b1\"";

fn standin(config: StandinConfig) -> Standin {
    Standin::start_on_thread(
        config
            .account("example.com-home", PASSWORD, "home.example.com")
            .record("home.example.com"),
    )
    .expect("stand-in")
}

/// Stores no client could use: a FIFO, a device, garbage.
fn broken_stores(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let fifo = dir.join("store.fifo");
    netns::sh(&format!("mkfifo {}", fifo.display()));
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, b"\x00\x01 not a certificate \xff\n").unwrap();
    vec![fifo, "/dev/zero".into(), garbage]
}

#[test]
fn plain_http_never_reads_the_system_store() {
    in_netns("plain_http_never_reads_the_system_store", || {
        let s = standin(StandinConfig::http());
        let setup = Setup::new();
        setup.write_config(&s, Some("ppp0"), &[HOME]);
        ppp0("203.0.113.10", "10.64.0.1");
        for (i, store) in broken_stores(setup.dir.path()).iter().enumerate() {
            let store = store.display().to_string();
            let (status, out, err) = setup.run_env(
                &["update", "--force"],
                &[("SSL_CERT_FILE", &store), ("SSL_CERT_DIR", &store)],
            );
            assert!(status.success(), "SSL_CERT_FILE={store}:\n{out}{err}");
            assert_eq!(s.request_count(), i + 1, "{out}{err}");
        }
    });
}

#[test]
fn https_reads_the_one_store_named_and_says_when_it_cannot() {
    in_netns(
        "https_reads_the_one_store_named_and_says_when_it_cannot",
        || {
            let s = standin(StandinConfig::https());
            let setup = Setup::new();
            // No ca_file: the stand-in's CA is trusted only through SSL_CERT_FILE.
            let host = format!("{HOME}\nserver = \"{}\"\n", s.url());
            setup.write_config_full(Some("ppp0"), "300ms", "", "", &[host]);
            ppp0("203.0.113.10", "10.64.0.1");
            let ca = s.ca_file().unwrap().display().to_string();
            let (status, out, err) =
                setup.run_env(&["update", "--force"], &[("SSL_CERT_FILE", &ca)]);
            assert!(status.success(), "{out}{err}");
            assert_eq!(s.request_count(), 1);

            for store in broken_stores(setup.dir.path()) {
                let store = store.display().to_string();
                let (status, out, err) = setup.run_env(
                    &["update", "--force"],
                    &[("SSL_CERT_FILE", &store), ("SSL_CERT_DIR", "/nonexistent")],
                );
                assert!(!status.success(), "SSL_CERT_FILE={store}:\n{out}{err}");
                assert!(
                    err.contains("no CA certificates for https") && err.contains(&store),
                    "SSL_CERT_FILE={store}:\n{out}{err}"
                );
            }
            assert_eq!(s.request_count(), 1, "nothing sent without roots");

            // With a ca_file, a broken system store is a warning: the ca_file's roots serve.
            let host = host_on(&s, HOME);
            setup.write_config_full(Some("ppp0"), "300ms", "", "", &[host]);
            let fifo = setup.dir.path().join("store.fifo").display().to_string();
            let (status, out, err) =
                setup.run_env(&["update", "--force"], &[("SSL_CERT_FILE", &fifo)]);
            assert!(status.success(), "{out}{err}");
            assert!(err.contains("trusting only the ca_file"), "{err}");
            assert_eq!(s.request_count(), 2);
        },
    );
}
