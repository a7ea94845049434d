//! `dynhostd ovh …` against a local fake OVH API (tests/support/fake_ovh.rs) that checks
//! signatures, timestamps (its clock is skewed) and access rules: the whole path from a new
//! router to a running agent in a namespace, the errors a user meets, and that no secret ever
//! shows in output or logs.

// The `ovh` commands are the `ovh-api` feature (default on).
#![cfg(feature = "ovh-api")]

#[path = "support/cli.rs"]
mod cli;
#[path = "support/fake_ovh.rs"]
mod fake_ovh;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use cli::{BIN, DEBOUNCE_MS};
use fake_ovh::{FakeConfig, FakeOvh, Hostile};
use netns::{in_netns, sh};
use standin::{DynRecord, Standin, StandinConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A key with every DynHost right on every zone, validated (for tests that skip `ovh auth`).
const WIDE_KEY: &str = "WideConsumerKey0123456789abcdefg";

struct Env {
    dir: tempfile::TempDir,
    fake: FakeOvh,
    /// Everything every command printed, to look for secrets at the end.
    seen: std::cell::RefCell<String>,
}

impl Env {
    fn new(cfg: FakeConfig) -> Env {
        let fake = FakeOvh::start(cfg).expect("fake OVH API");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("ovh-app-secret"),
            format!("{}\n", fake.application_secret()),
        )
        .unwrap();
        Env {
            dir,
            fake,
            seen: Default::default(),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// `[wan]` for the tests' addresses, `[ovh_api]` pointed at the fake, and `extra`.
    fn write_config(&self, interface: Option<&str>, ovh_extra: &str, extra: &str) {
        let mut text = String::from("# A router's first config: no host yet.\n[wan]\n");
        if let Some(i) = interface {
            text += &format!("interface = \"{i}\"\n");
        }
        text += &format!(
            "debounce = \"{DEBOUNCE_MS}ms\"\naccept = [\"203.0.113.0/24\", \"198.51.100.0/24\", \"2001:db8::/32\"]\n\n[state]\ndir = \"{}\"\n\n[http]\ntimeout = \"3s\"\nconnect_timeout = \"2s\"\n\n[update]\nmin_interval = \"0s\"\n\n[verify]\ninterval = \"0\"\n\n",
            self.dir.path().join("state").display()
        );
        text += &format!(
            "[ovh_api]\nendpoint = \"{}\"\napplication_key = \"{}\"\napplication_secret_file = \"ovh-app-secret\"  # kept beside the config\n{ovh_extra}\n{extra}",
            self.fake.endpoint(),
            self.fake.application_key()
        );
        std::fs::write(self.config_path(), text).unwrap();
        std::fs::set_permissions(self.config_path(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }

    /// A validated key with every right, in `consumer_key_file`.
    fn wide_key(&self) -> &'static str {
        self.fake.add_consumer_key(
            WIDE_KEY,
            &[
                ("GET", "/domain/zone/*"),
                ("POST", "/domain/zone/*"),
                ("PUT", "/domain/zone/*"),
                ("DELETE", "/domain/zone/*"),
            ],
        );
        std::fs::write(self.dir.path().join("ovh-ck"), WIDE_KEY).unwrap();
        "consumer_key_file = \"ovh-ck\""
    }

    /// `dynhostd -vv ovh ARGS --config …`: (success, stdout, stderr). Trace logging on, so
    /// the secret check at the end covers every log line.
    fn ovh(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .arg("-vv")
            .arg("ovh")
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("DYNHOSTD_LOG")
            .env_remove("JOURNAL_STREAM")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.seen
            .borrow_mut()
            .push_str(&format!("$ ovh {args:?}\n{stdout}{stderr}"));
        (out.status.success(), stdout, stderr)
    }

    fn dynhostd(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(self.config_path())
            .env_remove("DYNHOSTD_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        self.seen
            .borrow_mut()
            .push_str(&format!("$ {args:?}\n{stdout}{stderr}"));
        (out.status.success(), stdout, stderr)
    }

    /// No application secret, consumer key or DynHost password in anything printed so far.
    fn assert_no_secret_seen(&self) {
        let seen = self.seen.borrow();
        let mut secrets = vec![self.fake.application_secret()];
        secrets.extend(self.fake.consumer_keys().into_iter().map(|k| k.key));
        secrets.extend(self.fake.logins().into_iter().map(|l| l.password));
        for s in secrets {
            assert!(!s.is_empty());
            assert!(!seen.contains(&s), "a secret was printed:\n{seen}");
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn first_line(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// From nothing to a running agent, as the README walks it: `ovh auth`, approve, `ovh
/// provision --write-config`, `run` (publishing with the created login), `ovh rotate` (the
/// running agent reloads and its next update uses the new password), and a second `provision`
/// that changes nothing.
#[test]
fn auth_provision_run_rotate_end_to_end() {
    in_netns("auth_provision_run_rotate_end_to_end", || {
        sh(
            "ip link add wan0 type veth peer name wan0p && ip link set wan0 up && ip link set wan0p up",
        );
        sh("ip addr add 203.0.113.10/24 dev wan0 && ip route add default via 203.0.113.1 dev wan0");
        let env = Env::new(FakeConfig::new());
        let standin = Standin::start_on_thread(StandinConfig::http()).expect("stand-in");
        env.write_config(Some("wan0"), "consumer_key_file = \"ovh-consumer-key\"", "");
        let original = std::fs::read_to_string(env.config_path()).unwrap();

        // run and update need a host, and say so; check is fine with [ovh_api] alone.
        let (ok, _, err) = env.dynhostd(&["update"]);
        assert!(!ok && err.contains("no [[host]] entry yet"), "{err}");
        let (ok, _, err) = env.dynhostd(&["check"]);
        assert!(ok, "{err}");

        // 1. A consumer key for example.com only.
        let (ok, out, err) = env.ovh(&["auth", "--zone", "example.com"]);
        assert!(ok, "{out}{err}");
        let key_file = env.dir.path().join("ovh-consumer-key");
        assert_eq!(mode_of(&key_file), 0o600);
        let keys = env.fake.consumer_keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(first_line(&key_file), keys[0].key);
        assert!(
            out.contains(&format!("credentialToken={}", keys[0].token)),
            "{out}"
        );
        let mut rules = keys[0].rules.clone();
        rules.sort();
        assert_eq!(
            rules,
            [
                ("DELETE", "/domain/zone/example.com/dynHost/*"),
                ("GET", "/auth/time"),
                ("GET", "/domain/zone/example.com/dynHost/*"),
                ("POST", "/domain/zone/example.com/dynHost/*"),
                ("POST", "/domain/zone/example.com/refresh"),
                ("PUT", "/domain/zone/example.com/dynHost/*"),
            ]
            .map(|(m, p)| (m.to_string(), p.to_string()))
        );

        // Not approved yet: provision says what to do.
        let (ok, _, err) = env.ovh(&["provision", "home.example.com"]);
        assert!(!ok && err.contains("not validated yet"), "{err}");
        assert_eq!(env.fake.changes(), 0);

        // 2. Approved (the user opens the URL), then provision with the detected address.
        env.fake.validate_pending();
        let (ok, out, err) = env.ovh(&[
            "provision",
            "home.example.com",
            "--write-config",
            "--server",
            &standin.url(),
        ]);
        assert!(ok, "{out}{err}");
        let logins = env.fake.logins();
        assert_eq!(logins.len(), 1, "{logins:?}");
        let login = &logins[0];
        assert_eq!(
            (login.login.as_str(), login.sub_domain.as_str()),
            ("example.com-home", "home")
        );
        assert!(login.password.len() >= 24);
        let pw_file = env.dir.path().join("dynhost-home.example.com.password");
        assert_eq!(mode_of(&pw_file), 0o600);
        assert_eq!(first_line(&pw_file), login.password);
        let records = env.fake.records();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].sub_domain.as_str(), records[0].ip.as_str()),
            ("home", "203.0.113.10")
        );
        assert_eq!(env.fake.refreshes("example.com"), 1);
        // Appended: the old text (comments included) stays as it was, and it validates.
        let written = std::fs::read_to_string(env.config_path()).unwrap();
        assert!(written.starts_with(&original), "{written}");
        assert!(written.contains("password_file = \"dynhost-home.example.com.password\""));
        assert_eq!(mode_of(&env.config_path()), 0o600);
        let (ok, _, err) = env.dynhostd(&["check"]);
        assert!(ok, "{err}");

        // 3. The agent publishes through the DynHost stand-in with the login just made.
        standin.add_account(&login.login, &login.password, "home.example.com");
        standin.set_record("home.example.com", DynRecord::default());
        let log = env.dir.path().join("agent.log");
        let agent = Killed(
            Command::new(BIN)
                .args(["-v", "run", "--config"])
                .arg(env.config_path())
                .env_remove("DYNHOSTD_LOG")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        );
        let agent_log = || std::fs::read_to_string(&log).unwrap_or_default();
        netns::wait_for("the first update", cli::LONG, || {
            agent_log().contains("updated home.example.com/A")
        });
        let reqs = standin.requests();
        assert!(
            reqs.iter().any(|r| r.answer.contains("good 203.0.113.10")
                && r.login.as_deref() == Some("example.com-home")),
            "{reqs:?}"
        );

        // 4. Rotate: the agent holds <state.dir>/lock, and rotate asks it to reload over its
        // control socket (never a signal to the pid in the lock file).
        assert_eq!(
            dynhostd::lock::holder(&env.dir.path().join("state")).unwrap(),
            Some(Some(agent.0.id()))
        );
        let old_password = login.password.clone();
        let (ok, out, err) = env.ovh(&["rotate", "home.example.com"]);
        assert!(ok, "{out}{err}");
        assert!(
            out.contains(&format!(
                "agent (pid {}): configuration reloaded",
                agent.0.id()
            )),
            "{out}"
        );
        let new_password = env.fake.logins()[0].password.clone();
        assert_ne!(new_password, old_password);
        assert_eq!(first_line(&pw_file), new_password);
        assert_eq!(mode_of(&pw_file), 0o600);
        netns::wait_for("the reload", cli::LONG, || {
            agent_log().contains("configuration reloaded")
        });
        // OVH's side of the new password, and the next address change.
        standin.add_account("example.com-home", &new_password, "home.example.com");
        standin.clear_log();
        // (Deleting a primary IPv4 address takes its secondaries along: delete first.)
        sh(
            "ip addr del 203.0.113.10/24 dev wan0 && ip addr add 203.0.113.20/24 dev wan0 && ip route add default via 203.0.113.1 dev wan0",
        );
        netns::wait_for("the update after the rotation", cli::LONG, || {
            standin
                .requests()
                .iter()
                .any(|r| r.answer.contains("good 203.0.113.20"))
        });
        assert!(
            standin
                .requests()
                .iter()
                .all(|r| !r.answer.starts_with("401")),
            "{:?}",
            standin.requests()
        );
        // A reload to a config without hosts (valid for the ovh commands) is refused by the
        // agent, which keeps running with the one it has.
        let full = std::fs::read_to_string(env.config_path()).unwrap();
        std::fs::write(env.config_path(), &original).unwrap();
        sh(&format!("kill -HUP {}", agent.0.id()));
        netns::wait_for("the refused reload", cli::LONG, || {
            agent_log().contains("reload failed, keeping the running configuration")
                && agent_log().contains("no [[host]] entry yet")
        });
        std::fs::write(env.config_path(), &full).unwrap();
        drop(agent);

        // 5. A second provision changes nothing and says so.
        let changes = env.fake.changes();
        let config_before = std::fs::read_to_string(env.config_path()).unwrap();
        let (ok, out, err) = env.ovh(&[
            "provision",
            "home.example.com",
            "--write-config",
            "--server",
            &standin.url(),
        ]);
        assert!(ok, "{out}{err}");
        assert!(out.contains("nothing to do"), "{out}");
        assert_eq!(env.fake.changes(), changes);
        assert_eq!(
            std::fs::read_to_string(env.config_path()).unwrap(),
            config_before
        );
        assert_eq!(first_line(&pw_file), new_password);

        let mut seen = env.seen.borrow().clone();
        seen += &agent_log();
        *env.seen.borrow_mut() = seen;
        env.assert_no_secret_seen();
    });
}

/// The agent, killed when the test ends, passed or not (a live agent would keep the
/// namespace's output pipe open).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `--dry-run` shows the calls that would change something, with no password, and changes
/// nothing: no call, no file.
#[test]
fn dry_run_shows_calls_and_changes_nothing() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let before = std::fs::read_to_string(env.config_path()).unwrap();
    let (ok, out, err) = env.ovh(&[
        "provision",
        "office.example.com",
        "--ip",
        "198.51.100.7",
        "--write-config",
        "--dry-run",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(r#"would call: POST /domain/zone/example.com/dynHost/login {"loginSuffix":"office","password":"<generated>","subDomain":"office"}"#),
        "{out}"
    );
    assert!(
        out.contains(r#"would call: POST /domain/zone/example.com/dynHost/record {"ip":"198.51.100.7","subDomain":"office"}"#),
        "{out}"
    );
    assert!(
        out.contains("would call: POST /domain/zone/example.com/refresh"),
        "{out}"
    );
    assert_eq!(env.fake.changes(), 0);
    assert!(env.fake.logins().is_empty() && env.fake.records().is_empty());
    assert!(
        !env.dir
            .path()
            .join("dynhost-office.example.com.password")
            .exists()
    );
    assert_eq!(std::fs::read_to_string(env.config_path()).unwrap(), before);
    env.assert_no_secret_seen();
}

/// Provision without --write-config prints the entry; an existing record of the family is
/// reused; list shows logins and records side by side; remove asks, then deletes.
#[test]
fn provision_list_and_remove() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    // A record made in the panel, for another name, with no login.
    env.fake.add_record("example.com", "nas", "198.51.100.99");
    let (ok, out, err) = env.ovh(&[
        "provision",
        "office.example.com",
        "--ip",
        "198.51.100.7",
        "--ip",
        "2001:db8::7",
        "--family",
        "both",
        "--login-suffix",
        "office-router",
    ]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains("nothing"), "{out}");
    assert!(out.contains("[[host]]\nhostname = \"office.example.com\"\nlogin = \"example.com-office-router\"\npassword_file = \"dynhost-office.example.com.password\"\nfamily = \"both\""), "{out}");
    assert!(out.contains("--write-config"), "{out}");
    let mut ips: Vec<String> = env
        .fake
        .records()
        .into_iter()
        .filter(|r| r.sub_domain == "office")
        .map(|r| r.ip)
        .collect();
    ips.sort();
    assert_eq!(ips, ["198.51.100.7", "2001:db8::7"]);

    // Again, still without --write-config: OVH's side is done, the entry is not.
    let (ok, out, err) = env.ovh(&[
        "provision",
        "office.example.com",
        "--ip",
        "198.51.100.7",
        "--ip",
        "2001:db8::7",
        "--family",
        "both",
        "--login-suffix",
        "office-router",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("nothing changed at OVH") && out.contains("still to be added"),
        "{out}"
    );
    let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("example.com-office-router"), "{out}");
    let nas = out.lines().find(|l| l.contains("nas.example.com")).unwrap();
    assert!(nas.contains("NO LOGIN"), "{out}");
    let office = out.lines().find(|l| l.contains("2001:db8::7")).unwrap();
    assert!(office.contains("has a login"), "{out}");

    // No terminal and no --yes: nothing is removed.
    let (ok, _, err) = env.ovh(&["remove", "office.example.com"]);
    assert!(!ok && err.contains("--yes"), "{err}");
    assert_eq!(env.fake.logins().len(), 1);
    let (ok, out, err) = env.ovh(&[
        "remove",
        "office.example.com",
        "--record",
        "--yes",
        "--zone",
        "example.com",
    ]);
    // The login is not in the config: its name is the default one, which is not this login.
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("login example.com-office: already gone"),
        "{out}"
    );
    assert!(env.fake.records().iter().all(|r| r.sub_domain != "office"));
    env.assert_no_secret_seen();
}

/// Each error a user can meet names what to do, and none shows a secret.
#[test]
fn errors_say_what_to_do() {
    // A wrong application secret: the signature does not match.
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    std::fs::write(
        env.dir.path().join("ovh-app-secret"),
        "NotTheRightSecret0123456789abcd\n",
    )
    .unwrap();
    let (ok, _, err) = env.ovh(&["provision", "home.example.com", "--ip", "203.0.113.10"]);
    assert!(
        !ok && err.contains("application_secret does not belong"),
        "{err}"
    );
    assert!(!err.contains("NotTheRightSecret"), "{err}");
    std::fs::write(
        env.dir.path().join("ovh-app-secret"),
        env.fake.application_secret(),
    )
    .unwrap();

    // A zone the account does not hold.
    let (ok, _, err) = env.ovh(&["provision", "home.example.net", "--ip", "203.0.113.10"]);
    assert!(
        !ok && err.contains("no zone of this OVH account holds home.example.net"),
        "{err}"
    );
    let (ok, _, err) = env.ovh(&[
        "provision",
        "home.example.net",
        "--zone",
        "example.net",
        "--ip",
        "203.0.113.10",
    ]);
    assert!(
        !ok && err.contains("zone example.net is not in this OVH account"),
        "{err}"
    );

    // An address the API refuses (the fake can be told IPv6 records are not taken).
    let env6 = Env::new(FakeConfig {
        ipv6_records: false,
        ..FakeConfig::new()
    });
    let ck = env6.wide_key();
    env6.write_config(None, ck, "");
    let (ok, _, err) = env6.ovh(&[
        "provision",
        "v6.example.com",
        "--family",
        "ipv6",
        "--ip",
        "2001:db8::5",
    ]);
    assert!(
        !ok && err.contains("refused 2001:db8::5") && err.contains("panel"),
        "{err}"
    );
    // The login was made before the record failed; its password is on disk, not lost.
    let login = &env6.fake.logins()[0];
    assert_eq!(
        first_line(&env6.dir.path().join("dynhost-v6.example.com.password")),
        login.password
    );

    // A key without the rights for the zone.
    env.fake.add_consumer_key(
        "OtherZoneKey0123456789abcdefghij",
        &[("GET", "/domain/zone/example.org/dynHost/*")],
    );
    std::fs::write(
        env.dir.path().join("ovh-ck"),
        "OtherZoneKey0123456789abcdefghij\n",
    )
    .unwrap();
    let (ok, _, err) = env.ovh(&["provision", "home.example.com", "--ip", "203.0.113.10"]);
    assert!(
        !ok && err.contains("no right to GET /domain/zone/")
            && err.contains("ovh auth --zone example.com"),
        "{err}"
    );

    // An unknown consumer key.
    std::fs::write(
        env.dir.path().join("ovh-ck"),
        "RevokedKey0123456789abcdefghijkl\n",
    )
    .unwrap();
    let (ok, _, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(!ok && err.contains("consumer key is not valid"), "{err}");

    // No consumer key configured at all.
    env.write_config(None, "", "");
    let (ok, _, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(!ok && err.contains("run `dynhostd ovh auth`"), "{err}");

    // The API unreachable: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &env.fake.endpoint(),
        &format!("http://127.0.0.1:{port}/1.0"),
    );
    std::fs::write(env.config_path(), text).unwrap();
    let (ok, _, err) = env.ovh(&["auth", "--zone", "example.com"]);
    assert!(!ok && err.contains("cannot reach the OVH API"), "{err}");

    // An endpoint over plain http to a non-loopback host is refused at load.
    let text = std::fs::read_to_string(env.config_path()).unwrap().replace(
        &format!("http://127.0.0.1:{port}/1.0"),
        "http://api.example.net/1.0",
    );
    std::fs::write(env.config_path(), text).unwrap();
    let (ok, _, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(
        !ok && err.contains("ovh_api.endpoint") && err.contains("loopback"),
        "{err}"
    );

    env.assert_no_secret_seen();
    env6.assert_no_secret_seen();
}

/// The fake is strict where OVH is: a wrong signature and a timestamp outside ±300 s of *its*
/// clock are refused, so the client's signing and its clock offset are really exercised.
#[test]
fn the_fake_checks_signatures_and_time() {
    dynhostd::provider::client::install_crypto_provider();
    let fake = FakeOvh::start(FakeConfig::new()).unwrap();
    fake.add_consumer_key(WIDE_KEY, &[("GET", "/domain/zone/*")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/domain/zone/example.com/dynHost/record", fake.endpoint());
    let local: i64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let server: i64 = rt
        .block_on(async {
            reqwest::get(format!("{}/auth/time", fake.endpoint()))
                .await?
                .text()
                .await
        })
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((server - local - FakeConfig::new().skew).abs() <= 2);
    let call = |t: i64, secret: &str| -> (u16, String) {
        let sig = dynhostd::ovh::sign::signature(
            &dynhostd::secret::Secret::new(secret),
            &dynhostd::secret::Secret::new(WIDE_KEY),
            "GET",
            &url,
            b"",
            t,
        );
        rt.block_on(async {
            let r = reqwest::Client::new()
                .get(&url)
                .header("X-Ovh-Application", fake.application_key())
                .header("X-Ovh-Consumer", WIDE_KEY)
                .header("X-Ovh-Timestamp", t.to_string())
                .header("X-Ovh-Signature", sig)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let secret = fake.application_secret();
    assert_eq!(call(server, &secret).0, 200);
    let (status, body) = call(server, "wrong-secret");
    assert_eq!(status, 403);
    assert!(body.contains("INVALID_SIGNATURE"), "{body}");
    // The machine's own clock is 1000 s away from the fake's: refused.
    let (status, body) = call(local, &secret);
    assert_eq!(status, 400);
    assert!(body.contains("QUERY_TIME_OUT"), "{body}");
}

/// What exists is reused or refused, never overwritten behind the user's back: a record of the
/// family is kept, a login scoped elsewhere or whose password this machine lacks is refused
/// (until --reset-password), and a rotation the API refuses leaves the old password in place.
#[test]
fn existing_things_are_reused_or_refused() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    // A record made in the panel for this name, with another address.
    env.fake.add_record("example.com", "home", "198.51.100.1");
    let (ok, out, err) = env.ovh(&[
        "provision",
        "home.example.com",
        "--ip",
        "203.0.113.10",
        "--write-config",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("holds 198.51.100.1: kept; the agent will publish 203.0.113.10"),
        "{out}"
    );
    assert_eq!(env.fake.records().len(), 1);
    assert_eq!(env.fake.refreshes("example.com"), 0);

    // The same login asked for another name: its scope is not that name.
    let (ok, _, err) = env.ovh(&[
        "provision",
        "other.example.com",
        "--ip",
        "203.0.113.10",
        "--login-suffix",
        "home",
    ]);
    assert!(
        !ok && err.contains("exists with the scope \"home\""),
        "{err}"
    );

    // A login this machine has no password for: refused, then reset on request.
    let pw_file = env.dir.path().join("dynhost-home.example.com.password");
    let before = first_line(&pw_file);
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path())
            .unwrap()
            .split("# Added by")
            .next()
            .unwrap(),
    )
    .unwrap();
    std::fs::remove_file(&pw_file).unwrap();
    let (ok, _, err) = env.ovh(&["provision", "home.example.com", "--ip", "203.0.113.10"]);
    assert!(!ok && err.contains("--reset-password"), "{err}");
    assert_eq!(env.fake.logins()[0].password, before);
    let (ok, out, err) = env.ovh(&[
        "provision",
        "home.example.com",
        "--ip",
        "203.0.113.10",
        "--reset-password",
        "--write-config",
    ]);
    assert!(ok, "{out}{err}");
    let reset = first_line(&pw_file);
    assert_ne!(reset, before);
    assert_eq!(env.fake.logins()[0].password, reset);

    // A rotation the API refuses (this key may only read): the old password stays, no
    // temporary file is left.
    env.fake.add_consumer_key(
        "ReadOnlyKey0123456789abcdefghijk",
        &[("GET", "/domain/zone/*")],
    );
    std::fs::write(
        env.dir.path().join("ovh-ck"),
        "ReadOnlyKey0123456789abcdefghijk\n",
    )
    .unwrap();
    let (ok, _, err) = env.ovh(&["rotate", "home.example.com"]);
    assert!(!ok && err.contains("no right to POST"), "{err}");
    assert_eq!(first_line(&pw_file), reset);
    assert_eq!(env.fake.logins()[0].password, reset);
    let leftovers: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    env.assert_no_secret_seen();
}

/// `--credential NAME`: the password goes to the credential store the systemd unit loads from,
/// the entry says `password_credential`, and `--write-config` still validates it (as the file
/// the unit will load) although no CREDENTIALS_DIRECTORY is set here.
#[test]
fn the_password_can_go_to_the_credential_store() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let store = env.dir.path().join("credentials");
    let (ok, out, err) = env.ovh(&[
        "provision",
        "home.example.com",
        "--ip",
        "203.0.113.10",
        "--credential",
        "home",
        "--credstore",
        store.to_str().unwrap(),
        "--write-config",
    ]);
    assert!(ok, "{out}{err}");
    let pw = store.join("home");
    assert_eq!(mode_of(&pw), 0o600);
    assert_eq!(first_line(&pw), env.fake.logins()[0].password);
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    assert!(text.contains("password_credential = \"home\""), "{text}");
    assert!(
        out.contains(&format!("LoadCredential=home:{}", pw.display())),
        "{out}"
    );
    // Under systemd, the entry reads it.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(env.config_path())
        .env("CREDENTIALS_DIRECTORY", &store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.assert_no_secret_seen();
}

/// Every file under `dir`, as relative paths, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()) {
            let p = e.path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

/// Temporary files (`.NAME.tmp-PID`) in the config's directory.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .map(|e| e.path())
        .collect()
}

/// Issue 20, item 4: OVH applies changePassword and its answer never comes (the client times
/// out). The new password may be the only one that works now: it is kept, the error says
/// where and how to finish, and finishing as told works.
#[test]
fn a_rotation_whose_answer_is_lost_keeps_the_new_password() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let (ok, out, err) = env.ovh(&[
        "provision",
        "home.example.com",
        "--ip",
        "203.0.113.10",
        "--write-config",
    ]);
    assert!(ok, "{out}{err}");
    let pw_file = env.dir.path().join("dynhost-home.example.com.password");
    let old = first_line(&pw_file);

    env.fake.set_hostile(Hostile {
        hang_after: Some("/changePassword".into()),
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["rotate", "home.example.com"]);
    assert!(!ok, "{out}{err}");
    let applied = env.fake.logins()[0].password.clone();
    assert_ne!(applied, old, "the fake applied the change");
    let kept = temp_files(env.dir.path());
    assert_eq!(kept.len(), 1, "{kept:?}\n{err}");
    assert_eq!(first_line(&kept[0]), applied);
    assert_eq!(mode_of(&kept[0]), 0o600);
    assert!(
        err.contains("may have applied")
            && err.contains(&kept[0].display().to_string())
            && err.contains("dynhostd ovh rotate home.example.com")
            && err.contains(&format!("mv {} {}", kept[0].display(), pw_file.display())),
        "{err}"
    );
    assert!(!err.contains("check the network"), "{err}");
    assert_eq!(first_line(&pw_file), old, "the old file is untouched");

    // Finishing as the error says: rotate again once the API answers.
    env.fake.set_hostile(Hostile::default());
    let (ok, out, err) = env.ovh(&["rotate", "home.example.com"]);
    assert!(ok, "{out}{err}");
    assert_eq!(first_line(&pw_file), env.fake.logins()[0].password);
    env.assert_no_secret_seen();
}

/// Issue 20, item 14: a name goes into the path as one percent-encoded segment, and the URL
/// signed is the URL sent. A login as a server may list it (a space, a slash, a dot segment, a
/// '?') is fetched under its own name, with a signature the fake accepts.
#[test]
fn names_are_sent_as_encoded_segments_under_a_matching_signature() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let odd = "example.com-a b/../x?y=1";
    env.fake.add_login("example.com", odd, "home");
    let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(odd), "{out}");
    let reqs = env.fake.requests();
    let get = reqs
        .iter()
        .find(|r| r.target.contains("/dynHost/login/"))
        .unwrap_or_else(|| panic!("{reqs:#?}"));
    assert_eq!(
        get.target,
        "/1.0/domain/zone/example.com/dynHost/login/example.com-a%20b%2F..%2Fx%3Fy=1"
    );
    assert!(reqs.iter().all(|r| r.status == 200), "{reqs:#?}");
    env.assert_no_secret_seen();
}

/// Issue 20, item 20: what the API lists reaches the terminal sanitised (escape sequences,
/// terminal hyperlinks, bidi overrides, line breaks).
#[test]
fn listed_server_text_reaches_the_terminal_sanitised() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let hyperlink =
        "example.com-\u{1b}]8;;https://evil.example/\u{7}click\u{1b}]8;;\u{7}\u{202e}nigol";
    env.fake.add_login(
        "example.com",
        hyperlink,
        "home\u{1b}[2J\nzone forged.example",
    );
    env.fake.add_record(
        "example.com",
        "nas\u{2028}\u{1b}[31m",
        "198.51.100.9\u{202e}\r\nzone forged.example",
    );
    let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(ok, "{out}{err}");
    let unsafe_chars = ['\u{1b}', '\u{7}', '\u{202e}', '\u{2028}', '\r'];
    assert!(
        !out.contains(unsafe_chars) && !err.contains(unsafe_chars),
        "{out:?}{err:?}"
    );
    assert!(!out.lines().any(|l| l.starts_with("zone forged")), "{out}");
    assert!(
        out.contains("example.com-?]8;;https://evil.example/?click?]8;;??nigol"),
        "{out}"
    );
    assert!(out.contains("198.51.100.9???zone forged.example"), "{out}");
    env.assert_no_secret_seen();
}

/// Issue 20, item 20: a validation URL is shown only when it is https on the endpoint's site
/// (http on loopback, here), and then as the parsed URL, every escape encoded.
#[test]
fn a_validation_url_is_shown_only_on_the_endpoints_site() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let unsafe_chars = ['\u{1b}', '\u{7}', '\u{202e}', '\u{2028}', '\r'];
    // A validation URL on another site: not shown, and the key not written.
    let key_file = env.dir.path().join("ovh-ck");
    let before = first_line(&key_file);
    env.fake.set_hostile(Hostile {
        validation_url: Some("https://evil.example.net/auth/?credentialToken=phish".into()),
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["auth", "--zone", "example.com"]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("validation URL")
            && err.contains("another site")
            && err.contains("evil.example.net"),
        "{err}"
    );
    assert!(
        !out.contains("phish") && !err.contains("phish"),
        "{out}{err}"
    );
    assert_eq!(first_line(&key_file), before);
    // Plain http off loopback is refused the same way.
    env.fake.set_hostile(Hostile {
        validation_url: Some("http://eu.api.ovh.com/auth/?credentialToken=phish".into()),
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["auth", "--zone", "example.com"]);
    assert!(
        !ok && err.contains("not https") && !err.contains("phish"),
        "{out}{err}"
    );
    assert_eq!(first_line(&key_file), before);

    // On the endpoint's own host, with escapes in it: shown, as the parsed (encoded) URL.
    let base = env.fake.endpoint().trim_end_matches("/1.0").to_string();
    env.fake.set_hostile(Hostile {
        validation_url: Some(format!(
            "{base}/auth/?credentialToken=abc\u{1b}]8;;https://evil.example/\u{7}def\u{202e}"
        )),
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["auth", "--zone", "example.com"]);
    assert!(ok, "{out}{err}");
    assert!(!out.contains(unsafe_chars), "{out:?}");
    assert!(
        out.contains(&format!(
            "{base}/auth/?credentialToken=abc%1B]8;;https://evil.example/%07def%E2%80%AE"
        )),
        "{out}"
    );
    env.assert_no_secret_seen();
}

/// Issue 20, item 21: a hostname, zone or login suffix that is not a DNS name (or a plain
/// suffix) is refused before any API call or file write, by every ovh command that takes one.
#[test]
fn bad_names_are_refused_before_any_call_or_write() {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    let before = files_under(env.dir.path());
    let config_before = std::fs::read_to_string(env.config_path()).unwrap();
    let ip = ["--ip", "203.0.113.10", "--write-config"];
    let cases: Vec<Vec<&str>> = vec![
        [&["provision", "a/../x.example.com"][..], &ip].concat(),
        [&["provision", "a/../../../../tmp/x.example.com"][..], &ip].concat(),
        [&["provision", "x.example.com/.."][..], &ip].concat(),
        [&["provision", ".."][..], &ip].concat(),
        [&["provision", "x\u{1b}[31m.example.com"][..], &ip].concat(),
        [&["provision", "x y.example.com"][..], &ip].concat(),
        [
            &["provision", "home.example.com", "--zone", "example.com/.."][..],
            &ip,
        ]
        .concat(),
        [&["provision", "home.example.com", "--zone", "com"][..], &ip].concat(),
        [
            &["provision", "home.example.com", "--login-suffix", "../x"][..],
            &ip,
        ]
        .concat(),
        [
            &["provision", "home.example.com", "--login-suffix", "a.b"][..],
            &ip,
        ]
        .concat(),
        vec!["rotate", "a/../x.example.com"],
        vec!["rotate", "home.example.com", "--zone", "../x"],
        vec!["remove", "a/../x.example.com", "--yes", "--record"],
        vec!["remove", "home.example.com", "--zone", "a/b", "--yes"],
        vec!["list", "--zone", "../../me"],
        vec!["auth", "--zone", "example.com/../../me"],
    ];
    for args in &cases {
        let (ok, out, err) = env.ovh(args);
        assert!(!ok, "{args:?}: {out}{err}");
        assert!(
            err.contains("nothing was sent or written"),
            "{args:?}: {err}"
        );
        assert!(!err.contains('\u{1b}'), "{args:?}: {err:?}");
        assert!(
            env.fake.requests().is_empty(),
            "{args:?} reached the API: {:#?}",
            env.fake.requests()
        );
        assert_eq!(files_under(env.dir.path()), before, "{args:?}");
        assert_eq!(
            std::fs::read_to_string(env.config_path()).unwrap(),
            config_before
        );
    }

    // A credential name that would climb out of the credential store.
    let store = env.dir.path().join("store");
    for name in ["..", ".", "a/b"] {
        let (ok, out, err) = env.ovh(&[
            "provision",
            "home.example.com",
            "--ip",
            "203.0.113.10",
            "--credential",
            name,
            "--credstore",
            store.to_str().unwrap(),
        ]);
        assert!(!ok && err.contains("--credential"), "{name}: {out}{err}");
        assert!(env.fake.requests().is_empty(), "{:#?}", env.fake.requests());
        assert_eq!(files_under(env.dir.path()), before, "{name}");
    }

    // A config's login that is not <zone>-<suffix> is refused by rotate, remove and provision,
    // also before any call.
    std::fs::write(
        env.dir.path().join("home.password"),
        "OldPassword0123456789abc\n",
    )
    .unwrap();
    std::fs::set_permissions(
        env.dir.path().join("home.password"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    env.write_config(
        None,
        ck,
        "[[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-a/../../me\"\npassword_file = \"home.password\"\n",
    );
    let (ok, _, err) = env.dynhostd(&["check"]);
    assert!(ok, "the config itself is valid: {err}");
    for args in [
        &["rotate", "home.example.com"][..],
        &["remove", "home.example.com", "--yes"],
        &["provision", "home.example.com", "--ip", "203.0.113.10"],
    ] {
        let (ok, out, err) = env.ovh(args);
        assert!(
            !ok && err.contains("login") && err.contains("nothing was sent"),
            "{args:?}: {out}{err}"
        );
        assert!(env.fake.requests().is_empty(), "{:#?}", env.fake.requests());
    }
    assert!(temp_files(env.dir.path()).is_empty());
    env.assert_no_secret_seen();
}

/// A key with every right, and a config pointing at the fake.
fn ready_env() -> Env {
    let env = Env::new(FakeConfig::new());
    let ck = env.wide_key();
    env.write_config(None, ck, "");
    env
}

/// Issue 20, item 22: a list of thousands of ids (one signed call each) is refused before
/// walking it, saying how many and the limit.
#[test]
fn a_huge_id_list_is_refused_before_walking_it() {
    let env = ready_env();

    env.fake.set_hostile(Hostile {
        phantom_record_ids: 5000,
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(
        !ok && err.contains("5000 DynHost records") && err.contains("1000"),
        "{out}{err}"
    );
    let calls = env.fake.requests().len();
    assert!(calls < 10, "{calls} calls: the list was walked");
    env.assert_no_secret_seen();
}

/// Issue 20, item 22: a redirect is named as one, not followed, its Location sanitised.
#[test]
fn a_redirect_is_named_and_not_followed() {
    let env = ready_env();

    env.fake.set_hostile(Hostile {
        redirect: Some((
            301,
            "https://evil.example.net/\u{202e}gnp.exe"
                .as_bytes()
                .to_vec(),
        )),
        ..Hostile::default()
    });
    let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
    assert!(
        !ok && err.contains("301")
            && err.contains("redirect to https://evil.example.net/?gnp.exe")
            && err.contains("not followed"),
        "{out}{err}"
    );
    assert!(!err.contains('\u{202e}'), "{err:?}");
    assert!(
        env.fake
            .requests()
            .iter()
            .all(|r| !r.target.contains("evil")),
        "followed"
    );
    env.assert_no_secret_seen();
}

/// Issue 20, item 22: an `/auth/time` that is not positive, does not fit, or is more than a
/// day from the local clock is refused, naming the skew, before anything is signed with it.
#[test]
fn a_bad_server_time_is_refused_before_signing() {
    let env = ready_env();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let far = (now + 2 * 86_400).to_string();
    let past = (now - 3 * 86_400).to_string();
    for (answer, expect) in [
        ("-5", "not a Unix time"),
        ("0", "not a Unix time"),
        ("99999999999999999999", "not a Unix time"),
        ("9223372036854775807", "more than a day apart"),
        (far.as_str(), "ahead of this machine's"),
        (past.as_str(), "behind this machine's"),
    ] {
        env.fake.set_hostile(Hostile {
            time_answer: Some(answer.into()),
            ..Hostile::default()
        });
        let seen = env.fake.requests().len();
        let (ok, out, err) = env.ovh(&["list", "--zone", "example.com"]);
        assert!(!ok && err.contains(expect), "{answer}: {out}{err}");
        assert!(!err.contains("QUERY_TIME_OUT"), "{err}");
        let later = &env.fake.requests()[seen..];
        assert!(
            later.iter().all(|r| r.target == "/1.0/auth/time"),
            "{answer}: a call was signed with that time: {later:#?}"
        );
    }
    env.assert_no_secret_seen();
}

/// Issue 20, item 22: a consumer key with control characters is refused and not written (a
/// consumer key is a short printable token), and not printed either.
#[test]
fn a_consumer_key_with_control_characters_is_not_written() {
    let env = ready_env();
    env.fake.set_hostile(Hostile {
        consumer_key: Some("abc\u{1b}[8mdef\nghi".into()),
        ..Hostile::default()
    });
    let key_file = env.dir.path().join("ovh-ck");
    let (ok, out, err) = env.ovh(&["auth", "--zone", "example.com"]);
    assert!(
        !ok && err.contains("not a short printable token"),
        "{out}{err}"
    );
    assert_eq!(
        first_line(&key_file),
        WIDE_KEY,
        "the key file was overwritten"
    );
    assert!(!out.contains("credentialToken"), "{out}");
    env.assert_no_secret_seen();
}
