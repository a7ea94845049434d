//! The control socket: protocol, both sides, and what is printed.

use super::client::connect;
use super::server::{accept_loop, bind};
use super::*;
use crate::decide::status::{LiveRecord, LiveStatus, Phase, StopInfo};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::sync::Arc;
use tokio::sync::mpsc;

#[tokio::test]
async fn bind_replaces_a_dead_socket_but_never_a_live_one_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run").join(SOCKET_NAME);
    // Missing directory: created. Mode 0600 from the start.
    let first = bind(&path).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600);
    // A live agent answers on it: not taken over, and the other one's pid is named.
    let e = bind(&path).unwrap_err();
    assert!(
        e.to_string().contains(&format!(
            "process (pid {}) answers on the control socket",
            std::process::id()
        )),
        "{e}"
    );
    // Left by a dead agent: replaced.
    drop(first);
    assert!(path.exists());
    let _second = bind(&path).unwrap();
    // A regular file in its place is not ours to delete.
    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, "keep me").unwrap();
    let e = bind(&file).unwrap_err();
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
}

#[test]
fn the_socket_key_must_be_absolute_and_names_itself() {
    let host =
        "[[host]]\nhostname = \"h.example.com\"\nlogin = \"example.com-h\"\npassword = \"x\"\n";
    let e = crate::config::parse(
        &format!("[state]\ncontrol = \"run/control\"\n\n{host}"),
        None,
        Path::new("/"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("state.control"), "{e}");
    let c = crate::config::parse(
        &format!("[state]\ncontrol = \"/run/x/control\"\n\n{host}"),
        None,
        Path::new("/"),
    )
    .unwrap();
    assert_eq!(socket_path(&c), Path::new("/run/x/control"));
    assert!(c.render_redacted().contains("control = \"/run/x/control\""));
}

#[test]
fn locations_read_only_the_state_section() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    // A password_credential with no $CREDENTIALS_DIRECTORY: the full load would refuse it.
    std::fs::write(
            &cfg,
            "[state]\ndir = \"/srv/dyn\"\ncontrol = \"/srv/dyn.sock\"\n\n[[host]]\nhostname = \"h.example.com\"\nlogin = \"example.com-h\"\npassword_credential = \"h\"\n",
        )
        .unwrap();
    assert_eq!(
        Locations::read(&cfg),
        Some(Locations {
            state_dir: "/srv/dyn".into(),
            socket: "/srv/dyn.sock".into(),
        })
    );
    std::fs::write(&cfg, "[state]\ncontrol = \"relative\"\n").unwrap();
    assert_eq!(
        Locations::read(&cfg),
        None,
        "left to the full load to explain"
    );
    assert_eq!(Locations::read(&dir.path().join("missing.toml")), None);
    assert_eq!(Locations::read(dir.path()), None, "a directory");
}

#[test]
fn requests_read_as_documented() {
    let r: Request =
        serde_json::from_str(r#"{"command":"retry","hosts":["a.example.com"]}"#).unwrap();
    assert_eq!(
        r,
        Request::Retry {
            hosts: vec!["a.example.com".into()]
        }
    );
    let r: Request = serde_json::from_str(r#"{"command":"check-now"}"#).unwrap();
    assert_eq!(r, Request::CheckNow {});
    let r: Request = serde_json::from_str(r#"{"command":"reload"}"#).unwrap();
    assert_eq!(r, Request::Reload {});
    let r: Request = serde_json::from_str(r#"{"command":"update","ips":["203.0.113.5"]}"#).unwrap();
    assert_eq!(
        r,
        Request::Update {
            ips: vec!["203.0.113.5".parse().unwrap()]
        }
    );
    assert!(serde_json::from_str::<Request>(r#"{"command":"rm -rf"}"#).is_err());
    assert!(serde_json::from_str::<Request>(r#"{"command":"retry","hosts":[],"x":1}"#).is_err());
}

/// Issue 20, item 16: an unknown field is refused with its name, for the commands without
/// fields too (serde ignores extra fields of a tagged unit variant), and around the command.
#[test]
fn unknown_fields_are_refused_everywhere() {
    for line in [
        r#"{"command":"status","verbose":true}"#,
        r#"{"command":"check-now","force":1}"#,
        r#"{"command":"reload","now":1}"#,
    ] {
        let e = serde_json::from_str::<Request>(line).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{line}: {e}");
    }
    let ok: Envelope =
        serde_json::from_str(r#"{"state_dir":"/var/lib/dynhostd","request":{"command":"status"}}"#)
            .unwrap();
    assert_eq!(ok.request, Request::Status {});
    assert_eq!(ok.state_dir, Path::new("/var/lib/dynhostd"));
    let e = serde_json::from_str::<Envelope>(
        r#"{"state_dir":"/var/lib/dynhostd","request":{"command":"status"},"as":"root"}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field `as`"), "{e}");
    // The state dir is not optional: an agent must know whose request it is.
    assert!(serde_json::from_str::<Envelope>(r#"{"request":{"command":"status"}}"#).is_err());
    // Replies too.
    let e = serde_json::from_str::<Response>(
        r#"{"agent":{"pid":1,"state_dir":"/x"},"ok":true,"extra":1}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}

/// Issue 20, item 5: an agent with its own state dir gets its own socket by default; the
/// default state dir keeps the socket the systemd unit, OpenWrt and pppd hooks know.
#[test]
fn the_default_socket_follows_the_state_dir() {
    assert_eq!(
        default_socket(None, Path::new("/srv/b")),
        Path::new("/srv/b/control")
    );
    assert_eq!(
        default_socket(Some(Path::new("/run/x/control")), Path::new("/srv/b")),
        Path::new("/run/x/control")
    );
    let default = default_socket(None, Path::new(crate::config::DEFAULT_STATE_DIR));
    assert_eq!(default.file_name().unwrap(), SOCKET_NAME);
    assert_ne!(
        default.parent().unwrap(),
        Path::new(crate::config::DEFAULT_STATE_DIR)
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "[state]\ndir = \"/srv/b\"\n").unwrap();
    assert_eq!(
        Locations::read(&cfg).unwrap().socket,
        Path::new("/srv/b/control")
    );
}

/// Issue 20, item 8: an error's Display holds its cause once, and the cause is not also its
/// `source` (an error printer walking the chain printed "Connection reset by peer" twice).
#[test]
fn errors_say_their_cause_once() {
    let reset = || io::Error::from(io::ErrorKind::ConnectionReset);
    let errors: Vec<Box<dyn std::error::Error>> = vec![
        Box::new(ControlError::Io {
            path: "/run/x/control".into(),
            cause: reset(),
        }),
        Box::new(ControlError::Save {
            path: "/x/state.json".into(),
            cause: reset(),
        }),
        Box::new(ControlError::Lock(LockError::Io {
            path: "/x/lock".into(),
            cause: reset(),
        })),
        Box::new(LockError::Io {
            path: "/x/lock".into(),
            cause: reset(),
        }),
    ];
    let cause = reset().to_string();
    for e in errors {
        let mut chain = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            chain += &format!(": {s}");
            next = s.source();
        }
        assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
    }
}

/// Issue 20, item 6: what the agent says is shown cleaned: no escape sequence or bidi
/// control reaches the terminal, from the table or the JSON.
#[test]
fn text_from_the_socket_is_cleaned_for_the_terminal() {
    let evil = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}moc.elpmaxe";
    let status = AgentStatus {
        pid: 1,
        state_dir: format!("/x{evil}").into(),
        now: 0,
        live: LiveStatus {
            records: vec![LiveRecord {
                hostname: format!("h{evil}"),
                record: "A".into(),
                phase: Phase::Stopped,
                published: None,
                wan: None,
                in_flight: None,
                failures: 0,
                last_reply: None,
                next: None,
                stopped: Some(StopInfo {
                    reason: format!("r{evil}"),
                    fix: format!("f{evil}"),
                }),
                interfaces: vec![format!("w{evil}"), "wwan0".into()],
                interface: Some(format!("w{evil}")),
                interface_since_ms_ago: Some(3_000),
            }],
            next_wake: None,
        },
        rows: vec![serde_json::json!({ "hostname": format!("h{evil}") })],
    };
    let table = live_table(&status);
    let json = serde_json::to_string(&live_json(&status)).unwrap();
    for out in [&table, &json, &shown(evil)] {
        assert!(
            !out.contains('\u{1b}') && !out.contains('\u{202e}') && !out.contains('\u{7}'),
            "{out:?}"
        );
    }
    assert!(table.contains("h?]0;pwned??[2J?moc.elpmaxe"), "{table}");
    assert!(table.contains("follows w?]0;pwned"), "{table}");
}

/// The agent's side of a socket in `dir`, as `run` starts it: what reaches the event loop,
/// who the agent says it is, the accept loop, and where a client finds it.
fn serving(
    dir: &Path,
) -> (
    mpsc::Receiver<Incoming>,
    Arc<Served>,
    tokio::task::JoinHandle<()>,
    Locations,
) {
    let path = dir.join(SOCKET_NAME);
    let listener = bind(&path).unwrap();
    let (tx, rx) = mpsc::channel(MAX_CLIENTS);
    let me = Arc::new(Served {
        pid: 1,
        state_dir: dir.to_path_buf(),
    });
    let accept = tokio::spawn(accept_loop(listener, tx, me.clone()));
    let at = Locations {
        state_dir: dir.to_path_buf(),
        socket: path,
    };
    (rx, me, accept, at)
}

/// Issue 20, item 7: the agent's time to answer is not the client's time limit: a request
/// the event loop answers after longer than [`CLIENT_TIMEOUT`] still gets its reply.
#[tokio::test]
async fn a_busy_agent_still_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rx, me, accept, at) = serving(dir.path());
    let client = std::thread::spawn(move || {
        let conn = connect(&at).map_err(|_| "connect").unwrap();
        ask(conn, Request::CheckNow {}, &at)
    });
    // The event loop, busy for longer than a client may take to send its request.
    let incoming = rx.recv().await.unwrap();
    assert_eq!(incoming.envelope.request, Request::CheckNow {});
    tokio::time::sleep(CLIENT_TIMEOUT + Duration::from_secs(1)).await;
    let _ = incoming.reply.send(Response::done(
        &me,
        true,
        vec!["checking everything now".into()],
    ));
    let reply = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.lines, ["checking everything now"]);
    accept.abort();
}

/// Issue 20, item 8: with every slot taken by a request the agent has not answered yet, one
/// more client is told the agent is busy (a reply, not a reset), and the others still get
/// their answers.
#[tokio::test]
async fn one_client_too_many_is_told_the_agent_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rx, me, accept, at) = serving(dir.path());
    let ask_one = |at: Locations| {
        std::thread::spawn(move || {
            let conn = connect(&at).map_err(|_| "connect").unwrap();
            ask(conn, Request::Status {}, &at).unwrap()
        })
    };
    let waiting: Vec<_> = (0..MAX_CLIENTS).map(|_| ask_one(at.clone())).collect();
    let mut pending = Vec::new();
    while pending.len() < MAX_CLIENTS {
        pending.push(rx.recv().await.unwrap());
    }
    let extra = ask_one(at.clone());
    let reply = tokio::task::spawn_blocking(move || extra.join().unwrap())
        .await
        .unwrap();
    assert!(reply.refused && !reply.ok, "{reply:?}");
    assert!(reply.lines[0].contains("the agent is busy"), "{reply:?}");
    for p in pending {
        let _ = p.reply.send(Response::done(&me, true, vec!["fine".into()]));
    }
    for w in waiting {
        let r = tokio::task::spawn_blocking(move || w.join().unwrap())
            .await
            .unwrap();
        assert_eq!(r.lines, ["fine"]);
    }
    accept.abort();
}

/// An agent that answers before reading (busy, or a client it refuses) and closes: the
/// client's write fails with EPIPE, and it still reports the agent's answer rather than
/// "Broken pipe".
#[test]
fn an_answer_given_before_the_request_was_read_is_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let me = Served {
        pid: 1,
        state_dir: dir.path().to_path_buf(),
    };
    let at = Locations {
        state_dir: dir.path().to_path_buf(),
        socket: path,
    };
    let conn = connect(&at).map_err(|_| "connect").unwrap();
    let (mut s, _) = listener.accept().unwrap();
    let mut text = serde_json::to_vec(&Response::refused(&me, "the agent is busy")).unwrap();
    text.push(b'\n');
    s.write_all(&text).unwrap();
    // Closed with the request unread: the client's write below fails with EPIPE.
    drop(s);
    let reply = ask(conn, Request::CheckNow {}, &at).unwrap();
    assert!(!reply.ok && reply.refused, "{reply:?}");
    assert_eq!(reply.lines, ["the agent is busy"]);
}

/// Issue 20, item 6: the agent serves only root and its own user, whatever the socket
/// file's mode lets through (here 0666). The other user is a thread of this test that
/// changed its own uid only (the raw syscall, unlike libc's setresuid, is per thread).
#[tokio::test]
async fn the_agent_refuses_a_client_of_another_user() {
    if crate::fsread::euid() != 0 {
        let strict = std::env::var_os("CI").is_some()
            || std::env::var("DYNHOSTD_TEST_STRICT").is_ok_and(|v| v == "1");
        assert!(!strict, "needs root to connect as another user");
        println!("SKIPPED the_agent_refuses_a_client_of_another_user: not root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOCKET_NAME);
    let listener = bind(&path).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (tx, mut rx) = mpsc::channel(MAX_CLIENTS);
    let me = Arc::new(Served {
        pid: 1,
        state_dir: dir.path().to_path_buf(),
    });
    let accept = tokio::spawn(accept_loop(listener, tx, me));
    let sock = path.clone();
    let state_dir = dir.path().to_path_buf();
    let reply = tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            // SAFETY: setresuid on this thread only; it touches no memory.
            let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
            assert_eq!(rc, 0, "{}", io::Error::last_os_error());
            let mut c = StdStream::connect(&sock).unwrap();
            // Bounds a hang if the request got through (nobody answers it here).
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let envelope = Envelope {
                state_dir,
                request: Request::CheckNow {},
            };
            let mut line = serde_json::to_vec(&envelope).unwrap();
            line.push(b'\n');
            // The agent refuses before reading, and may have closed already (EPIPE).
            let _ = c.write_all(&line);
            let mut reply = String::new();
            let _ = io::Read::read_to_string(&mut c, &mut reply);
            reply
        })
        .join()
        .unwrap()
    })
    .await
    .unwrap();
    let reply: Response = serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{e}: {reply}"));
    assert!(!reply.ok && reply.refused, "{reply:?}");
    assert!(
        reply.lines[0].contains("uid 65534 may not use this socket"),
        "{reply:?}"
    );
    assert!(rx.try_recv().is_err(), "the request reached the event loop");
    accept.abort();
}

/// Issue 20, item 9: `ovh rotate`'s reload never signals the pid in the lock file. Here the
/// lock is held by this very process (a one-shot `update`, as far as rotate can tell): a
/// SIGHUP would kill it. Once the holder lets go, there is no agent to reload.
#[cfg(feature = "ovh-api")]
#[test]
fn reload_never_signals_the_holder_of_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let held = crate::lock::acquire(&state).unwrap();
    let at = Locations {
        socket: dir.path().join(SOCKET_NAME),
        state_dir: state,
    };
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    assert_eq!(
        crate::ovh::provision::reload_agent(&at).unwrap(),
        crate::ovh::provision::Reload::NoAgent
    );
    release.join().unwrap();
}
