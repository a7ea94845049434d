//! Trust before reach (issue 20), black box: the built binary refuses a secret another user
//! could have planted or swapped (a link, a file others can write or own, a directory anyone
//! can write) before any request is made; `ovh provision` never takes such a file as "the
//! password we already have"; its config rewrite is locked (two at once lose nothing) and goes
//! through a symlinked config to its target; the agent's state file neither follows a link
//! planted at its temp name nor logs raw text edited into it.
//!
//! The `check`/`run` and `ovh` tests run the binary directly against files in a temporary
//! directory and local servers on loopback (the fake OVH API, the DynHost stand-in); tests that
//! give a file to another user (uid 65534) need root and fail under CI/DYNHOSTD_TEST_STRICT
//! without it. The agent test runs in a fresh user+network namespace with a tun `ppp0`.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/fake_ovh.rs"]
mod fake_ovh;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::*;
use fake_ovh::{FakeConfig, FakeOvh};
use netns::{in_netns, tun_available};
use standin::{Standin, StandinConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const NOBODY: u32 = 65534;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Tests that give a file to another user need root: without it they fail under CI /
/// DYNHOSTD_TEST_STRICT=1 and are skipped, saying so, elsewhere.
fn as_root(test: &str) -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let strict = std::env::var_os("CI").is_some()
        || std::env::var_os("DYNHOSTD_TEST_STRICT").is_some_and(|v| v == "1");
    assert!(
        !strict,
        "{test}: needs root (chown to uid {NOBODY}), and CI/DYNHOSTD_TEST_STRICT is set"
    );
    eprintln!("{test}: SKIPPED: needs root (chown to uid {NOBODY})");
    false
}

/// Runs the binary to completion, killed (and the test failed) if still running after `LONG`:
/// a `run` that wrongly accepted its config would otherwise keep running.
fn run_bounded(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("DYNHOSTD_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LONG;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} still running after {LONG:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// `check` and `run`: a password file someone else could control

/// A config for one host whose password is read from `password_file`, against `s`, following
/// an interface that does not exist (a `run` that got past its config would publish nothing).
fn password_file_config(setup: &Setup, s: &Standin, password_file: &Path) {
    setup.write_config_full(
        Some("dhd-none0"),
        "300ms",
        "",
        "",
        &[host_on(
            s,
            &format!(
                "hostname = \"{HOME_HOST}\"\nlogin = \"example.com-home\"\npassword_file = \"{}\"",
                password_file.display()
            ),
        )],
    );
}

/// `check` and `run` refuse `password_file`, naming the key, the file and `why`, and no request
/// reaches the server.
fn assert_refused(setup: &Setup, s: &Standin, file: &Path, why: &str) {
    password_file_config(setup, s, file);
    let config = setup.config_path();
    let want = format!("host[0].password_file: {}: {why}", file.display());
    for cmd in ["check", "run"] {
        let (code, err) = run_bounded(&[cmd.as_ref(), "--config".as_ref(), config.as_os_str()]);
        assert_eq!(code, Some(2), "{cmd} {}: {err}", file.display());
        assert!(err.contains(&want), "{cmd}: want {want:?} in {err:?}");
        assert!(!err.contains(PASSWORD), "{err}");
    }
    assert!(s.requests().is_empty(), "{:?}", s.requests());
}

#[test]
fn check_and_run_refuse_a_password_file_others_could_swap() {
    let s = Standin::start_on_thread(StandinConfig::http().account(
        "example.com-home",
        PASSWORD,
        HOME_HOST,
    ))
    .expect("stand-in");
    let setup = Setup::new();
    let dir = setup.dir.path();
    let good = dir.join("password");
    std::fs::write(&good, format!("{PASSWORD}\n")).unwrap();
    chmod(&good, 0o600);
    // The same file, as it should be, passes: the refusals below are about what changed.
    password_file_config(&setup, &s, &good);
    let (code, err) = run_bounded(&[
        "check".as_ref(),
        "--config".as_ref(),
        setup.config_path().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{err}");

    // A link to it (it could as well lead to /etc/shadow).
    let link = dir.join("password-link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert_refused(
        &setup,
        &s,
        &link,
        "a symbolic link: a secret is read from a regular file, never through a link",
    );

    // Writable by every user.
    let open = dir.join("password-0666");
    std::fs::write(&open, format!("{PASSWORD}\n")).unwrap();
    chmod(&open, 0o666);
    assert_refused(
        &setup,
        &s,
        &open,
        "writable by every user (mode 0666): a secret must be writable by its owner only",
    );

    // A private file in a directory anyone can write (and so replace the file in).
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let in_shared = shared.join("password");
    std::fs::write(&in_shared, format!("{PASSWORD}\n")).unwrap();
    chmod(&in_shared, 0o600);
    assert_refused(
        &setup,
        &s,
        &in_shared,
        &format!(
            "refused: its directory {} is writable by every user (mode 0777)",
            shared.display()
        ),
    );

    // Owned by another user.
    if as_root("check_and_run_refuse_a_password_file_others_could_swap") {
        let theirs = dir.join("password-nobody");
        std::fs::write(&theirs, format!("{PASSWORD}\n")).unwrap();
        chmod(&theirs, 0o600);
        std::os::unix::fs::chown(&theirs, Some(NOBODY), None).unwrap();
        assert_refused(
            &setup,
            &s,
            &theirs,
            &format!("owned by uid {NOBODY}: only root may own it"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `ovh provision`: the fake OVH API, a config beside it

/// A validated key with every DynHost right on every zone.
const WIDE_KEY: &str = "WideConsumerKey0123456789abcdefg";

struct Env {
    dir: tempfile::TempDir,
    fake: FakeOvh,
}

impl Env {
    /// The fake API, its application secret and a wide consumer key in files beside a config
    /// with `[ovh_api]` and no host (written at `config_path()`).
    fn new() -> Env {
        let fake = FakeOvh::start(FakeConfig::new()).expect("fake OVH API");
        fake.add_consumer_key(
            WIDE_KEY,
            &[
                ("GET", "/domain/zone/*"),
                ("POST", "/domain/zone/*"),
                ("PUT", "/domain/zone/*"),
                ("DELETE", "/domain/zone/*"),
            ],
        );
        let env = Env {
            dir: tempfile::tempdir().unwrap(),
            fake,
        };
        let d = env.dir.path();
        std::fs::write(
            d.join("ovh-app-secret"),
            format!("{}\n", env.fake.application_secret()),
        )
        .unwrap();
        std::fs::write(d.join("ovh-ck"), format!("{WIDE_KEY}\n")).unwrap();
        let text = format!(
            "# A router's config.\n[wan]\naccept = [\"203.0.113.0/24\"]\n\n[state]\ndir = \"{}\"\n\n[verify]\ninterval = \"0\"\n\n[ovh_api]\nendpoint = \"{}\"\napplication_key = \"{}\"\napplication_secret_file = \"ovh-app-secret\"\nconsumer_key_file = \"ovh-ck\"\n",
            d.join("state").display(),
            env.fake.endpoint(),
            env.fake.application_key()
        );
        std::fs::write(env.config_path(), text).unwrap();
        chmod(&env.config_path(), 0o600);
        env
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn provision_cmd(&self, host: &str, extra: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(["ovh", "provision", host, "--ip", "203.0.113.10"])
            .args(extra)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("DYNHOSTD_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null());
        c
    }

    /// `ovh provision HOST --ip 203.0.113.10 EXTRA…`: (success, stdout, stderr).
    fn provision(&self, host: &str, extra: &[&str]) -> (bool, String, String) {
        let out = self.provision_cmd(host, extra).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Nothing was asked of the API but reads, and no request carried `text`.
    fn assert_nothing_sent(&self, text: &str) {
        let reqs = self.fake.requests();
        assert!(
            reqs.iter().all(|r| r.method == "GET"),
            "a change was asked for: {reqs:?}"
        );
        assert!(
            reqs.iter().all(|r| !r.body.contains(text)),
            "sent: {reqs:?}"
        );
        assert!(self.fake.logins().is_empty());
    }
}

/// What a planted link led to: a stand-in for /etc/shadow, which must be neither sent nor
/// changed.
const SHADOW: &str = "root:$6$fakesalt$fakehashfakehashfakehash:19000:0:99999:7:::\n";

/// The scenario: any user makes a credential store anyone can write, with a link named
/// like the credential to a file only root can read; root's `provision --credential` must not
/// read it as "the password we already have" and send it to OVH.
#[test]
fn provision_refuses_a_planted_credential_and_sends_nothing() {
    let env = Env::new();
    let d = env.dir.path();
    let shadow = d.join("shadow");
    std::fs::write(&shadow, SHADOW).unwrap();
    chmod(&shadow, 0o600);
    let store = d.join("cs");
    std::fs::create_dir(&store).unwrap();
    chmod(&store, 0o777);
    let link = store.join("home");
    std::os::unix::fs::symlink(&shadow, &link).unwrap();
    let store_arg = store.to_str().unwrap();
    let args = ["--credential", "home", "--credstore", store_arg];

    let (ok, out, err) = env.provision("home.example.com", &args);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "{}: refused: its directory {store_arg} is writable by every user (mode 0777)",
            link.display()
        )),
        "{err}"
    );
    env.assert_nothing_sent("root:");

    // The store made private, the link is still refused (not followed), and stays as it was.
    chmod(&store, 0o700);
    let (ok, out, err) = env.provision("home.example.com", &args);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "refusing the password already in {}: a symbolic link",
            link.display()
        )),
        "{err}"
    );
    env.assert_nothing_sent("root:");
    // --reset-password does not get past it either.
    let mut reset = args.to_vec();
    reset.push("--reset-password");
    let (ok, _, err) = env.provision("home.example.com", &reset);
    assert!(!ok && err.contains("a symbolic link"), "{err}");
    env.assert_nothing_sent("root:");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&shadow).unwrap(), SHADOW);

    // An empty store anyone can write: nothing is written there.
    let open = d.join("cs-open");
    std::fs::create_dir(&open).unwrap();
    chmod(&open, 0o777);
    let (ok, out, err) = env.provision(
        "home.example.com",
        &[
            "--credential",
            "home",
            "--credstore",
            open.to_str().unwrap(),
        ],
    );
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "refusing to write in {}: a directory writable by every user (mode 0777)",
            open.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
    env.assert_nothing_sent("root:");
}

/// The same with the password file `provision` keeps beside the config: a link planted at
/// `<configdir>/dynhost-H.password` is refused, not read, sent or replaced.
#[test]
fn provision_refuses_a_planted_password_file_beside_the_config() {
    let env = Env::new();
    let d = env.dir.path();
    let shadow = d.join("shadow");
    std::fs::write(&shadow, SHADOW).unwrap();
    chmod(&shadow, 0o600);
    let link = d.join("dynhost-home.example.com.password");
    std::os::unix::fs::symlink(&shadow, &link).unwrap();
    for extra in [&[][..], &["--write-config"][..], &["--reset-password"][..]] {
        let (ok, out, err) = env.provision("home.example.com", extra);
        assert!(!ok, "{extra:?}: {out}{err}");
        assert!(
            err.contains(&format!(
                "refusing the password already in {}: a symbolic link",
                link.display()
            )),
            "{extra:?}: {err}"
        );
        env.assert_nothing_sent("root:");
    }
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(std::fs::read_to_string(&shadow).unwrap(), SHADOW);
    assert!(
        !std::fs::read_to_string(env.config_path())
            .unwrap()
            .contains("[[host]]")
    );

    // Owned by another user (a regular file, not a link): refused as well.
    if as_root("provision_refuses_a_planted_password_file_beside_the_config") {
        std::fs::remove_file(&link).unwrap();
        std::fs::write(&link, "TheirPassword123\n").unwrap();
        chmod(&link, 0o600);
        std::os::unix::fs::chown(&link, Some(NOBODY), None).unwrap();
        let (ok, out, err) = env.provision("home.example.com", &[]);
        assert!(!ok, "{out}{err}");
        assert!(
            err.contains(&format!("owned by uid {NOBODY}: only root may own it")),
            "{err}"
        );
        env.assert_nothing_sent("TheirPassword123");
    }
}

/// The `[ovh_api]` secrets are read the same way: a consumer key file that is a link (or
/// writable by others) is refused, naming the key and the file, before any call.
#[test]
fn ovh_api_secret_files_are_refused_like_passwords() {
    let env = Env::new();
    let d = env.dir.path();
    let ck = d.join("ovh-ck");
    let real = d.join("ovh-ck-real");
    std::fs::rename(&ck, &real).unwrap();
    std::os::unix::fs::symlink(&real, &ck).unwrap();
    let (ok, out, err) = env.provision("home.example.com", &[]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "ovh_api.consumer_key_file: {}: a symbolic link",
            ck.display()
        )),
        "{err}"
    );
    std::fs::remove_file(&ck).unwrap();
    std::fs::rename(&real, &ck).unwrap();
    chmod(&ck, 0o646);
    let (ok, out, err) = env.provision("home.example.com", &[]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains(&format!(
            "ovh_api.consumer_key_file: {}: writable by every user (mode 0646)",
            ck.display()
        )),
        "{err}"
    );
    assert!(!err.contains(WIDE_KEY), "{err}");
    assert!(env.fake.requests().is_empty(), "{:?}", env.fake.requests());
}

/// `--write-config` from many provisions at once: each appends to what the others wrote (the
/// config is locked from the read to the rename), none is lost, and the result validates.
#[test]
fn concurrent_provisions_into_one_config_keep_every_entry() {
    const N: usize = 14;
    let env = Env::new();
    let hosts: Vec<String> = (0..N).map(|i| format!("h{i}.example.com")).collect();
    let children: Vec<_> = hosts
        .iter()
        .map(|h| {
            env.provision_cmd(h, &["--write-config"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (h, c) in hosts.iter().zip(children) {
        let out = c.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{h}: {text}");
        assert!(text.contains(&format!("[[host]] {h} appended")), "{text}");
    }
    let config = std::fs::read_to_string(env.config_path()).unwrap();
    for h in &hosts {
        assert!(
            config.contains(&format!("hostname = \"{h}\"")),
            "{h} lost:\n{config}"
        );
    }
    assert_eq!(config.matches("[[host]]").count(), N, "{config}");
    assert!(config.starts_with("# A router's config.\n"), "{config}");
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(env.config_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A config that is a symbolic link (to a file kept elsewhere, as on a read-only root with
/// /etc/dynhostd/config.toml → /data/…) is written through: the file it leads to gets the entry,
/// and the link stays a link. The output says which file was written.
#[test]
fn provision_writes_a_symlinked_config_through_to_its_target() {
    let env = Env::new();
    let d = env.dir.path();
    let target = d.join("real-config.toml");
    std::fs::rename(env.config_path(), &target).unwrap();
    std::os::unix::fs::symlink("real-config.toml", env.config_path()).unwrap();
    let (ok, out, err) = env.provision("home.example.com", &["--write-config"]);
    assert!(ok, "{out}{err}");
    // As the output names it: resolved (a /tmp that is itself a link is resolved too).
    let target = std::fs::canonicalize(&target).unwrap();
    assert!(
        std::fs::symlink_metadata(env.config_path())
            .unwrap()
            .is_symlink(),
        "the link was replaced"
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(text.contains("hostname = \"home.example.com\""), "{text}");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        out.contains(&format!(
            "appended to {} (the file the link {} leads to; the link is kept)",
            target.display(),
            env.config_path().display()
        )),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// The agent's state file

/// A stop reason and fix edited into the state file (with a bidi override) reach the log
/// cleaned; a link planted at the state file's temp name (`state.json.tmp.<pid>`) is not
/// followed when the agent saves on its way out: its target keeps its text and `state.json`
/// stays a regular file.
#[test]
fn the_state_file_neither_follows_a_planted_temp_link_nor_logs_raw_text() {
    in_netns(
        "the_state_file_neither_follows_a_planted_temp_link_nor_logs_raw_text",
        || {
            if !tun_available(
                "the_state_file_neither_follows_a_planted_temp_link_nor_logs_raw_text",
            ) {
                return;
            }
            let s = standin_https();
            let setup = Setup::new();
            setup.write_config(&s, Some("ppp0"), &[HOME]);
            let state = setup.state_path();
            std::fs::create_dir_all(state.parent().unwrap()).unwrap();
            // Stopped with an entry that has since changed: the agent logs the old reason as it
            // lets the host go again.
            let edited = serde_json::json!({"version": 1, "records": {"home.example.com/A": {
                "stopped": {"reason": "401 \u{202E}live\u{1b}[2J", "fix": "x", "at": 1, "config": "an-older-entry"},
            }}});
            std::fs::write(&state, edited.to_string()).unwrap();
            ppp0("203.0.113.10", "10.64.0.1");
            let agent = setup.start_agent(&[]);
            agent.wait_log("configuration changed since it was stopped (401 ?live?[2J)");
            agent.wait_log("updated home.example.com/A: unknown → 203.0.113.10");

            let victim = setup.dir.path().join("victim");
            std::fs::write(&victim, "keep me\n").unwrap();
            let tmp = state.with_file_name(format!("state.json.tmp.{}", agent.child.id()));
            std::os::unix::fs::symlink(&victim, &tmp).unwrap();
            let (status, log) = agent.stop();
            assert!(status.success(), "{status}\n{log}");
            for c in ['\u{202E}', '\u{1b}'] {
                assert!(!log.contains(c), "{c:?} in the log:\n{log}");
            }
            assert!(!log.contains("cannot write the state file"), "{log}");
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
            assert!(
                std::fs::symlink_metadata(&state)
                    .unwrap()
                    .file_type()
                    .is_file()
            );
            assert!(!tmp.exists() && std::fs::symlink_metadata(&tmp).is_err());
            assert_eq!(
                setup.published("home.example.com/A").as_deref(),
                Some("203.0.113.10")
            );
        },
    );
}
