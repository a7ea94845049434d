//! The OpenWrt UCI → TOML translation (contrib/openwrt/files/uci2toml.sh), run off-OpenWrt
//! with the UCI stand-in in contrib/openwrt/test/uci-stub.sh on the sample UCI files there, under
//! every POSIX shell at hand (dash, and busybox ash as on OpenWrt). Each result is judged by the
//! built binary's `dynhostd check` and by the library's own config parser, so a value that
//! survives the trip changed (a password's quotes and backslashes) fails here.

#[path = "support/netns.rs"]
mod netns;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The shells to run `test`'s translation with: /bin/sh, and busybox's ash (OpenWrt's shell).
/// Without busybox only /bin/sh is left: a [`netns::prerequisite`] (a failure under CI).
fn shells(test: &str) -> Vec<Vec<String>> {
    let mut v = vec![vec!["/bin/sh".to_string()]];
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|bb| Path::new(bb).exists());
    if netns::prerequisite(
        test,
        busybox.is_some(),
        "busybox is not installed (apt-get install busybox): translated with /bin/sh only, not with OpenWrt's ash",
    ) {
        v.push(vec![busybox.unwrap().to_string(), "sh".to_string()]);
    }
    v
}

struct Translated {
    out: Output,
    dir: tempfile::TempDir,
}

impl Translated {
    fn stdout(&self) -> String {
        String::from_utf8(self.out.stdout.clone()).unwrap()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Writes the TOML where the init script would (mode 0600) and returns its path.
    fn write_toml(&self) -> PathBuf {
        let path = self.dir.path().join("dynhostd.toml");
        fs::write(&path, &self.out.stdout).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

/// Runs uci2toml.sh on `uci` (the text of /etc/config/dynhostd) with `shell`.
fn translate_text(shell: &[String], uci: &str) -> Translated {
    uci2toml(shell, uci, false)
}

/// uci2toml.sh on `uci` under the UCI stub; with `network`, also the stubs of netifd's
/// network.sh and of `uci` for /etc/config/network, so UCI interface names resolve to devices.
fn uci2toml(shell: &[String], uci: &str, network: bool) -> Translated {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("config");
    fs::create_dir(&conf_dir).unwrap();
    fs::write(conf_dir.join("dynhostd"), uci).unwrap();
    let mut cmd = Command::new(&shell[0]);
    cmd.args(&shell[1..])
        .arg(repo("contrib/openwrt/files/uci2toml.sh"))
        .env(
            "DYNHOSTD_FUNCTIONS_SH",
            repo("contrib/openwrt/test/uci-stub.sh"),
        )
        .env("UCI_CONFIG_DIR", &conf_dir);
    if network {
        cmd.env(
            "DYNHOSTD_NETWORK_SH",
            repo("contrib/openwrt/test/network-stub.sh"),
        )
        .env(
            "DYNHOSTD_UCI",
            repo("contrib/openwrt/test/uci-network-stub.sh"),
        );
    }
    let out = cmd.output().unwrap();
    Translated { out, dir }
}

fn translate(shell: &[String], sample: &str) -> Translated {
    let text = fs::read_to_string(repo(sample)).unwrap();
    translate_text(shell, &text)
}

fn check(toml: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dynhostd"))
        .args(["check", "--config"])
        .arg(toml)
        .output()
        .unwrap()
}

fn ok_check(t: &Translated) -> (PathBuf, String) {
    assert!(
        t.out.status.success(),
        "translation failed: {}\n{}",
        t.stderr(),
        t.stdout()
    );
    let path = t.write_toml();
    let out = check(&path);
    assert!(
        out.status.success(),
        "dynhostd check refused:\n{}\n--- the TOML:\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.stdout()
    );
    (path, String::from_utf8(out.stdout).unwrap())
}

#[test]
fn a_full_config_translates_and_checks() {
    for sh in shells("a_full_config_translates_and_checks") {
        let t = translate(&sh, "contrib/openwrt/test/full.uci");
        let (path, rendered) = ok_check(&t);

        // Judged by the library parser: the exact values, not just "it parsed".
        let config = dynhostd::config::load(&path).unwrap();
        assert_eq!(config.wan.interface.as_deref(), Some("pppoe-wan"), "{sh:?}");
        assert_eq!(config.wan.debounce, std::time::Duration::from_secs(3));
        let accept: Vec<String> = config
            .wan
            .policy
            .accept
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(accept, ["100.64.0.0/10", "2001:db8:100::/40"]);
        let ignore: Vec<String> = config
            .wan
            .policy
            .ignore
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(ignore, ["2001:db8:ffff::/48"]);
        assert_eq!(config.state_dir, Path::new("/tmp/dynhostd-state"));
        assert_eq!(
            config.control_socket.as_deref(),
            Some(Path::new("/var/run/dynhostd/control")),
            "OpenWrt has no /run"
        );

        assert_eq!(config.hosts.len(), 3, "{sh:?}");
        let [home, old, relay] = &config.hosts[..] else {
            unreachable!()
        };
        assert_eq!(home.hostname, "home.example.com");
        assert_eq!(home.login, "example.com-home");
        assert_eq!(
            home.password.expose(),
            r#"p"w\d\\x'q#$(touch /tmp/pwned)`id`\"#,
            "{sh:?}"
        );
        assert_eq!(home.family.name(), "both");
        assert!(home.enabled);

        assert_eq!(old.hostname, "old.example.com");
        assert_eq!(old.login, r#"example.com-"old""#);
        assert_eq!(old.password.expose(), r#"back\slash "quoted""#);
        assert!(!old.enabled, "the disabled host must stay disabled");

        assert_eq!(relay.password.expose(), "plain word");
        assert_eq!(
            relay.server.as_str(),
            "https://dyndns.example.net/nic/update"
        );
        assert!(relay.enabled);

        // What `check` prints agrees, and never the password.
        assert!(rendered.contains("interface = \"pppoe-wan\""), "{rendered}");
        assert!(rendered.contains("enabled = false"), "{rendered}");
        assert!(!rendered.contains("touch /tmp/pwned"), "{rendered}");
        // Each [[host]] carries the UCI section it came from, for the user reading an error.
        assert!(t.stdout().contains("# UCI dynhostd.home\n[[host]]"));
        assert!(t.stdout().contains("# UCI dynhostd.cfg"));
    }
}

#[test]
fn the_shipped_uci_config_is_valid() {
    for sh in shells("the_shipped_uci_config_is_valid") {
        let t = translate(&sh, "contrib/openwrt/files/dynhostd.config");
        let (path, _) = ok_check(&t);
        let config = dynhostd::config::load(&path).unwrap();
        assert_eq!(config.hosts[0].hostname, "home.example.com");
        // Commented-out options stay unset: the daemon's defaults apply.
        assert_eq!(config.wan.interface, None);
    }
}

#[test]
fn a_bad_boolean_is_refused_by_name() {
    for sh in shells("a_bad_boolean_is_refused_by_name") {
        let t = translate(&sh, "contrib/openwrt/test/bad-bool.uci");
        assert_eq!(t.out.status.code(), Some(1), "{sh:?}: {}", t.stderr());
        assert!(
            t.stderr()
                .contains("dynhostd.home.enabled: 'maybe' is not a boolean"),
            "{sh:?}: {}",
            t.stderr()
        );
        // Nothing half-written for the init script to pick up.
        assert_eq!(t.stdout(), "");
    }
}

#[test]
fn an_option_where_a_list_belongs_is_refused() {
    for sh in shells("an_option_where_a_list_belongs_is_refused") {
        let t = translate(&sh, "contrib/openwrt/test/option-for-list.uci");
        assert_eq!(t.out.status.code(), Some(1), "{sh:?}");
        assert!(
            t.stderr()
                .contains("dynhostd.main.accept: write it as 'list accept"),
            "{}",
            t.stderr()
        );
    }
}

#[test]
fn values_only_dynhostd_can_judge_are_named_by_check() {
    for (sample, key) in [
        ("contrib/openwrt/test/bad-family.uci", "host[0].family"),
        ("contrib/openwrt/test/bad-prefix.uci", "wan.accept"),
    ] {
        for sh in shells("values_only_dynhostd_can_judge_are_named_by_check") {
            let t = translate(&sh, sample);
            assert!(t.out.status.success(), "{sample}: {}", t.stderr());
            let out = check(&t.write_toml());
            assert_eq!(out.status.code(), Some(2), "{sample}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(key), "{sample}: {err}");
        }
    }
}

#[test]
fn a_control_character_in_a_value_is_refused() {
    // A tab (or a line break) pasted into a password: dynhostd would refuse it, so say so here.
    let uci = "config host 'home'\n\toption hostname 'home.example.com'\n\toption login 'l'\n\toption password 'two\tparts'\n";
    for sh in shells("a_control_character_in_a_value_is_refused") {
        let t = translate_text(&sh, uci);
        assert_eq!(t.out.status.code(), Some(1), "{sh:?}: {}", t.stdout());
        assert!(
            t.stderr()
                .contains("dynhostd.home.password: holds a control character"),
            "{}",
            t.stderr()
        );
    }
}

#[test]
fn no_host_section_is_refused() {
    for sh in shells("no_host_section_is_refused") {
        let t = translate_text(&sh, "config dynhostd 'main'\n\toption enabled '1'\n");
        assert_eq!(t.out.status.code(), Some(1));
        assert!(
            t.stderr().contains("no 'config host' section"),
            "{}",
            t.stderr()
        );
    }
}

#[test]
fn without_uci_functions_it_says_so() {
    let out = Command::new("/bin/sh")
        .arg(repo("contrib/openwrt/files/uci2toml.sh"))
        .env("DYNHOSTD_FUNCTIONS_SH", "/nonexistent/functions.sh")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/functions.sh not found"));
}

/// A host's `interface`, `interface6` and `ipv6_prefix_from` name UCI network interfaces and come
/// out as devices: 'lan' through network_get_device (up: br-lan), 'wan2' (PPPoE, down) through
/// /etc/config/network as netifd names it, 'wan6' as an alias of it, and a device name as is.
#[test]
fn host_sources_name_uci_interfaces_and_come_out_as_devices() {
    use dynhostd::record::Family;
    use dynhostd::wan::policy::{AddressSource, HostPart};
    let uci = fs::read_to_string(repo("contrib/openwrt/test/sources.uci")).unwrap();
    for sh in shells("host_sources_name_uci_interfaces_and_come_out_as_devices") {
        let t = uci2toml(&sh, &uci, true);
        let (path, _) = ok_check(&t);
        let config = dynhostd::config::load(&path).unwrap();
        let [server, backup, nas, laptop] = &config.hosts[..] else {
            panic!("{sh:?}: {}", t.stdout())
        };
        assert_eq!(
            server.source(Family::V4),
            &AddressSource::Interface("wwan0".into()),
            "{sh:?}"
        );
        assert_eq!(
            server.source(Family::V6),
            &AddressSource::Prefix {
                interface: "br-lan".into(),
                host: HostPart::Suffix("::10".parse().unwrap()),
            },
            "{sh:?}"
        );
        assert_eq!(
            backup.source(Family::V4),
            &AddressSource::Interface("pppoe-wan2".into())
        );
        assert_eq!(
            nas.source(Family::V6),
            &AddressSource::Interface("pppoe-wan2".into())
        );
        assert_eq!(
            laptop.source(Family::V6),
            &AddressSource::Prefix {
                interface: "eth9".into(),
                host: HostPart::Neighbour("34:56:78:9a:bc:de".parse().unwrap()),
            }
        );
    }
}

/// Failover (issue 25): `list interface 'wan2'` / `list interface 'lte'` in the main section
/// become `[wan] interface = ["pppoe-wan2", "wwan0"]`, with its failback and route rule; a
/// host's `list interface6` its own list (UCI names resolved to devices, a device name as is).
#[test]
fn uci_interface_lists_become_failover_lists() {
    use dynhostd::record::Family;
    use dynhostd::wan::policy::{AddressSource, Uplinks};
    use std::time::Duration;
    let uci = fs::read_to_string(repo("contrib/openwrt/test/failover.uci")).unwrap();
    for sh in shells("uci_interface_lists_become_failover_lists") {
        let t = uci2toml(&sh, &uci, true);
        let (path, _) = ok_check(&t);
        let toml = t.stdout();
        assert!(
            toml.contains("interface = [\"pppoe-wan2\", \"wwan0\"]\n"),
            "{sh:?}: {toml}"
        );
        let config = dynhostd::config::load(&path).unwrap();
        let wan = Uplinks {
            names: vec!["pppoe-wan2".into(), "wwan0".into()],
            failback: Duration::from_secs(30),
            requires_route: false,
        };
        assert_eq!(config.wan.uplinks.as_ref(), Some(&wan), "{sh:?}");
        assert_eq!(config.hosts[0].source(Family::V4), &AddressSource::Wan);
        let own = Uplinks {
            names: vec!["br-lan".into(), "eth7".into()],
            failback: Duration::from_secs(120),
            requires_route: false,
        };
        assert_eq!(
            config.hosts[1].source(Family::V6),
            &AddressSource::Uplinks(own),
            "{sh:?}"
        );
    }
}

/// Issue 24 on OpenWrt: `config notify` sections (any number; `enabled '0'` left out) become
/// `[[notify]]`, `config health` becomes `[health]`, and `dynhostd check` takes them, showing
/// no token.
#[test]
fn uci_notify_and_health_sections_become_notifications() {
    use dynhostd::notify::target::EventKind;
    use std::os::unix::fs::PermissionsExt;
    let uci = fs::read_to_string(repo("contrib/openwrt/test/notify.uci")).unwrap();
    for sh in shells("uci_notify_and_health_sections_become_notifications") {
        let secrets = tempfile::tempdir().unwrap();
        let url_file = secrets.path().join("hook.url");
        fs::write(&url_file, "https://hooks.example.net/Tok3n-hook\n").unwrap();
        fs::set_permissions(&url_file, fs::Permissions::from_mode(0o600)).unwrap();
        let text = uci.replace("/etc/dynhostd/hook.url", url_file.to_str().unwrap());
        let t = translate_text(&sh, &text);
        let (path, shown) = ok_check(&t);
        let toml = t.stdout();
        assert_eq!(toml.matches("[[notify]]").count(), 2, "{sh:?}: {toml}");
        assert!(
            !toml.contains("unused"),
            "the disabled one is left out: {toml}"
        );
        assert!(
            !shown.contains("Tok3n"),
            "{sh:?}: check showed a token: {shown}"
        );
        let config = dynhostd::config::load(&path).unwrap();
        assert_eq!(config.notify.len(), 2, "{sh:?}");
        let phone = config.notify[0].events;
        assert!(phone.takes(EventKind::Updated) && phone.takes(EventKind::Stopped));
        assert!(!phone.takes(EventKind::Recovered), "only the listed events");
        assert!(
            config.notify[1].events.takes(EventKind::Recovered),
            "the default set"
        );
        let health = config.health.as_ref().expect("[health]");
        assert_eq!(health.interval, std::time::Duration::from_secs(120));
        assert_eq!(health.style.name(), "uptime-kuma");
    }
    // A second health section is refused, naming it.
    let twice = format!("{uci}\nconfig health 'again'\n\toption url 'https://hc.example.net/x'\n");
    let t = translate_text(&["/bin/sh".to_string()], &twice);
    assert!(!t.out.status.success(), "{}", t.stdout());
    assert!(
        t.stderr()
            .contains("dynhostd.again: a second 'config health'"),
        "{}",
        t.stderr()
    );
}
