//! The configuration's parsing and validation, from `&str`.

use super::fields::validate_server;
use super::*;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(
        text,
        Some(Path::new("test.toml")),
        Path::new("/nonexistent"),
    )
}

#[test]
fn line_numbers_count_the_newlines_before_the_offset() {
    let text = "a\n\nbc\nd";
    let ctx = Ctx {
        text,
        file: None,
        newlines: std::cell::OnceCell::new(),
    };
    for offset in 0..text.len() + 3 {
        let naive = text.as_bytes()[..offset.min(text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        assert_eq!(ctx.line_of(offset), naive, "offset {offset}");
    }
}

const MINIMAL: &str = r#"
[[host]]
hostname = "home.example.com"
login = "example.com-home"
password = "s3cret-pass"
"#;

#[test]
fn minimal_config_gets_the_defaults() {
    let c = parse_str(MINIMAL).unwrap();
    assert_eq!(c.wan.interface, None);
    assert_eq!(c.wan.debounce, DEFAULT_DEBOUNCE);
    assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    let h = &c.hosts[0];
    assert_eq!(h.family, FamilySet::V4);
    assert_eq!(h.provider, Provider::Ovh);
    assert_eq!(h.server.as_str(), Provider::OVH_DEFAULT_SERVER);
    assert!(h.enabled);
    assert_eq!(h.line, 2);
}

#[test]
fn full_config() {
    let c = parse_str(
        r#"
[wan]
interface = "ppp0"
debounce = "1m30s"
accept = ["203.0.113.0/24"]
ignore = ["2001:db8:dead::/48"]

[state]
dir = "/tmp/x"

[http]
timeout = "5s"
connect_timeout = "2s"
max_concurrent = 4

[[host]]
hostname = "Home.Example.com."
login = "example.com-home"
password = "p"
family = "both"
provider = "dyndns2"
server = "http://127.0.0.1:8080/nic/update"
enabled = false
"#,
    )
    .unwrap();
    assert_eq!(c.wan.interface.as_deref(), Some("ppp0"));
    assert_eq!(c.wan.debounce, Duration::from_secs(90));
    assert_eq!(c.wan.policy.accept.len(), 1);
    assert_eq!(c.http.max_concurrent, 4);
    let h = &c.hosts[0];
    assert_eq!(h.hostname, "home.example.com");
    assert_eq!(h.family, FamilySet::Both);
    assert_eq!(h.records().count(), 2);
    assert!(!h.enabled);
}

/// Every error names the key and the line it is on.
#[test]
fn errors_name_key_and_line() {
    let cases: &[(&str, &str, usize)] = &[
        ("[wan]\ndebounce = \"2x\"\n", "wan.debounce", 2),
        ("[wan]\n\naccept = [\"203.0.113.0/99\"]\n", "wan.accept", 3),
        (
            "[wan]\ninterface = \"a very long interface name\"\n",
            "wan.interface",
            2,
        ),
        (
            "[[host]]\nhostname = \"bad host\"\nlogin = \"l\"\npassword = \"p\"\n",
            "host[0].hostname",
            2,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nserver = \"http://dns.example.com/nic/update\"\n",
            "host[0].server",
            5,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nfamily = \"ipv5\"\n",
            "host[0].family",
            5,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\n",
            "host[0].password",
            1,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\nprovider = \"dyndns2\"\n",
            "host[0].server",
            1,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n[[host]]\nhostname = \"h.example.com\"\nlogin = \"m\"\npassword = \"q\"\n",
            "host[1].hostname",
            5,
        ),
        (
            "[[host]]\nhostname = \"h.example.com\"\nlogin = \"a:b\"\npassword = \"p\"\n",
            "host[0].login",
            3,
        ),
        ("[http]\nmax_concurrent = 0\n", "http.max_concurrent", 2),
    ];
    for (text, key, line) in cases {
        let e = parse_str(text).unwrap_err();
        assert_eq!(e.key, *key, "{text}: {e}");
        assert_eq!(e.line, Some(*line), "{text}: {e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("test.toml:{line}: {key}: ")),
            "{shown}"
        );
    }
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let e = parse_str("[wan]\ninterface = \"ppp0\"\nintreface = \"eth0\"\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("intreface"), "{e}");
    let e = parse_str(&format!("{MINIMAL}pasword = \"x\"\n")).unwrap_err();
    assert!(e.message.contains("pasword"), "{e}");
    let e = parse_str("[wan\n").unwrap_err();
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn no_host_is_an_error() {
    let e = parse_str("[wan]\ninterface = \"eth0\"\n").unwrap_err();
    assert_eq!(e.key, "host");
}

#[test]
fn password_file_first_line_trimmed_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), "  s3cret  \nsecond line\n").unwrap();
    let text = "[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword_file = \"pw\"\n";
    let c = parse(text, None, dir.path()).unwrap();
    assert_eq!(c.hosts[0].password.expose(), "s3cret");
    let missing = text.replace("\"pw\"", "\"nope\"");
    let e = parse(&missing, None, dir.path()).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("host[0].password_file", Some(4)));
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let empty = text.replace("\"pw\"", "\"empty\"");
    assert!(parse(&empty, None, dir.path()).is_err());
    let both = format!("{text}password = \"x\"\n");
    assert!(parse(&both, None, dir.path()).is_err());
}

#[test]
fn servers() {
    assert!(validate_server("https://dns.eu.ovhapis.com/nic/update").is_ok());
    assert!(validate_server("https://www.ovh.com/nic/update").is_ok());
    assert!(validate_server("http://127.0.0.1:8080/nic/update").is_ok());
    assert!(validate_server("http://[::1]:8080/nic/update").is_ok());
    assert!(validate_server("http://localhost/nic/update").is_ok());
    assert!(validate_server("http://192.0.2.1/nic/update").is_err());
    assert!(validate_server("ftp://127.0.0.1/").is_err());
    assert!(validate_server("https://user:pw@dns.example.com/").is_err());
    assert!(validate_server("not a url").is_err());
}

#[test]
fn redacted_rendering_hides_the_password_and_reparses() {
    let c = parse_str(MINIMAL).unwrap();
    let shown = c.render_redacted();
    assert!(!shown.contains("s3cret-pass"));
    assert!(shown.contains("<redacted>"));
    assert!(!format!("{c:?}").contains("s3cret-pass"));
    // What `check` prints is itself a valid config (with the placeholder password).
    let again = parse_str(&shown).unwrap();
    assert_eq!(again.hosts[0].hostname, c.hosts[0].hostname);
    assert_eq!(again.wan, c.wan);
}

#[test]
fn fingerprint_changes_with_the_password() {
    let a = parse_str(MINIMAL).unwrap();
    let b = parse_str(&MINIMAL.replace("s3cret-pass", "other")).unwrap();
    assert_eq!(a.hosts[0].fingerprint(), a.hosts[0].fingerprint());
    assert_ne!(a.hosts[0].fingerprint(), b.hosts[0].fingerprint());
    // A digest, not a std hasher: the same on every build and toolchain, so an upgrade
    // never lifts a stop (checked by hand: SHA-256 of the length-prefixed fields).
    assert_eq!(a.hosts[0].fingerprint(), "v2-2dea44e0");
}

#[test]
fn address_sources_and_their_errors() {
    let host = |extra: &str| {
        format!("[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n{extra}")
    };
    let c = parse_str(&host("family = \"both\"\n")).unwrap();
    assert_eq!(c.hosts[0].source_v4, AddressSource::Wan);
    assert_eq!(c.hosts[0].source_v6, AddressSource::Wan);
    let c = parse_str(&host(
        "family = \"both\"\ninterface = \"wan2\"\ninterface6 = \"wan6\"\n",
    ))
    .unwrap();
    assert_eq!(
        c.hosts[0].source(Family::V4),
        &AddressSource::Interface("wan2".into())
    );
    assert_eq!(
        c.hosts[0].source(Family::V6),
        &AddressSource::Interface("wan6".into())
    );
    let c = parse_str(&host("family = \"both\"\ninterface = \"wan2\"\n")).unwrap();
    assert_eq!(
        c.hosts[0].source_v6,
        AddressSource::Interface("wan2".into())
    );
    let c = parse_str(&host(
        "family = \"ipv6\"\nipv6_prefix_from = \"br-lan\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\n",
    ))
    .unwrap();
    assert_eq!(
        c.hosts[0].source_v6,
        AddressSource::Prefix {
            interface: "br-lan".into(),
            host: HostPart::Eui64("34:56:78:9a:bc:de".parse().unwrap()),
        }
    );
    // The redacted rendering reads back to the same sources.
    let again = parse_str(&c.render_redacted().replace("<redacted>", "p")).unwrap();
    assert_eq!(again.hosts[0].source_v6, c.hosts[0].source_v6);

    let cases: &[(&str, &str, usize)] = &[
        (
            "interface = \"a very long interface name\"\n",
            "host[0].interface",
            5,
        ),
        ("interface6 = \"wan6\"\n", "host[0].interface6", 5),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\n",
            "host[0].ipv6_prefix_from",
            6,
        ),
        (
            "family = \"ipv6\"\nipv6_suffix = \"::10\"\n",
            "host[0].ipv6_suffix",
            6,
        ),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"2001:db8::10\"\n",
            "host[0].ipv6_suffix",
            7,
        ),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"banana\"\n",
            "host[0].ipv6_suffix",
            7,
        ),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_eui64 = \"34:56:78\"\n",
            "host[0].ipv6_eui64",
            7,
        ),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::1\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\n",
            "host[0].ipv6_eui64",
            8,
        ),
        (
            "family = \"ipv6\"\ninterface6 = \"wan6\"\nipv6_prefix_from = \"lan0\"\nipv6_suffix = \"::1\"\n",
            "host[0].ipv6_prefix_from",
            7,
        ),
    ];
    let neighbour: &[(&str, &str, usize)] = &[
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_neighbour = \"34:56\"\n",
            "host[0].ipv6_neighbour",
            7,
        ),
        (
            "family = \"ipv6\"\nipv6_prefix_from = \"lan0\"\nipv6_eui64 = \"34:56:78:9a:bc:de\"\nipv6_neighbour = \"34:56:78:9a:bc:de\"\n",
            "host[0].ipv6_neighbour",
            8,
        ),
        (
            "family = \"ipv4\"\nipv6_neighbour = \"34:56:78:9a:bc:de\"\n",
            "host[0].ipv6_neighbour",
            6,
        ),
    ];
    for (extra, key, line) in cases.iter().chain(neighbour) {
        let e = parse_str(&host(extra)).unwrap_err();
        assert_eq!(e.key, *key, "{extra}: {e}");
        assert_eq!(e.line, Some(*line), "{extra}: {e}");
    }
}

#[test]
fn notify_and_health_sections_are_read_and_rendered_without_their_tokens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kuma-url"),
        "http://kuma.lan/api/push/KumaT0ken\n",
    )
    .unwrap();
    let text = format!(
        "{MINIMAL}
[[notify]]
url = \"ntfy://ntfy.example/Topic-S3cret\"

[[notify]]
url = \"https://hooks.example.net/Hook-S3cret\"
events = [\"error\", \"updated\"]

[[notify]]
url = \"telegram://1:Bot-S3cret@telegram?chats=1,2\"

[health]
url_file = \"kuma-url\"
interval = \"2s\"
style = \"uptime-kuma\"
"
    );
    let c = parse(&text, Some(Path::new("test.toml")), dir.path()).unwrap();
    assert_eq!(c.notify.len(), 4, "one target per Telegram chat");
    use crate::notify::target::EventKind::*;
    assert!(c.notify[0].events.takes(Stopped) && !c.notify[0].events.takes(Error));
    assert!(c.notify[1].events.takes(Error) && !c.notify[1].events.takes(Stopped));
    let h = c.health.as_ref().unwrap();
    assert_eq!(
        (h.interval, h.style.name()),
        (Duration::from_secs(2), "uptime-kuma")
    );
    let shown = c.render_redacted();
    assert!(
        shown.contains("url = \"ntfy://ntfy.example/***\""),
        "{shown}"
    );
    assert!(
        shown.contains("events = [\"updated\", \"error\"]"),
        "{shown}"
    );
    assert!(shown.contains("url = \"http://kuma.lan/***\""), "{shown}");
    let debug = format!("{c:?}");
    for secret in ["S3cret", "KumaT0ken"] {
        assert!(!shown.contains(secret), "{shown}");
        assert!(!debug.contains(secret), "{debug}");
    }
}

#[test]
fn notify_errors_name_the_key_and_line_never_the_url() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[[notify]]\nurl = \"ntfy://ntfy.sh/T0pic?icon=S3cret\"\n",
            "notify[0].url",
            "\"icon\" is not supported",
        ),
        (
            "[[notify]]\nurl = \"pushover://S3cret@x\"\n",
            "notify[0].url",
            "pushover:// is not supported",
        ),
        (
            "[[notify]]\nurl = \"https://x/S3cret\"\nevents = [\"changed\"]\n",
            "notify[0].events",
            "not an event",
        ),
        (
            "[[notify]]\nevents = [\"error\"]\n",
            "notify[0].url",
            "missing",
        ),
        (
            "[[notify]]\nurl = \"https://x/S3cret\"\nurl_env = \"X\"\n",
            "notify[0].url_env",
            "set only one",
        ),
        (
            "[health]\nurl = \"https://hc/S3cret\"\ninterval = \"0s\"\n",
            "health.interval",
            "between 1s",
        ),
        (
            "[health]\nurl = \"https://hc/S3cret\"\nstyle = \"nagios\"\n",
            "health.style",
            "uptime-kuma",
        ),
        (
            "[health]\nurl = \"ftp://hc/S3cret\"\n",
            "health.url",
            "http:// or https://",
        ),
    ];
    for (extra, key, says) in cases {
        let e = parse_str(&format!("{MINIMAL}\n{extra}")).unwrap_err();
        assert_eq!(e.key, *key, "{e}");
        // A missing URL has no line to name (the section carries no span).
        assert!(e.line.is_some() || *says == "missing", "{e}");
        assert!(e.message.contains(says), "{e}");
        assert!(!e.to_string().contains("S3cret"), "{e}");
    }
}

/// Issue 25: `interface` (and `interface6`) as an ordered failover list, in `[wan]` and per
/// host; one name (or a list of one) is the plain interface it always was.
#[test]
fn interface_lists_are_failover_and_a_single_name_is_unchanged() {
    let host = |extra: &str| {
        format!("[[host]]\nhostname = \"h.example.com\"\nlogin = \"l\"\npassword = \"p\"\n{extra}")
    };
    let list = |names: &[&str], failback: u64, requires_route| {
        AddressSource::Uplinks(Uplinks {
            names: names.iter().map(|n| n.to_string()).collect(),
            failback: Duration::from_secs(failback),
            requires_route,
        })
    };
    let c = parse_str(&host("interface = [\"wan\"]\n")).unwrap();
    assert_eq!(c.hosts[0].source_v4, AddressSource::Interface("wan".into()));
    let c = parse_str(&host(
        "family = \"both\"\ninterface = [\"pppoe-wan\", \"wwan0\"]\nfailback = \"5m\"\n",
    ))
    .unwrap();
    assert_eq!(
        c.hosts[0].source_v4,
        list(&["pppoe-wan", "wwan0"], 300, true)
    );
    assert_eq!(c.hosts[0].source_v6, c.hosts[0].source_v4);
    let again = parse_str(&c.render_redacted().replace("<redacted>", "p")).unwrap();
    let sources = |c: &Config| (c.hosts[0].source_v4.clone(), c.hosts[0].source_v6.clone());
    assert_eq!(sources(&again), sources(&c));

    let text = format!(
        "[wan]\ninterface = [\"wan\", \"wwan\"]\nfailback = \"10s\"\nfailover_requires_route = false\n{}",
        host("interface6 = [\"a\", \"b\"]\nfamily = \"ipv6\"\n")
    );
    let c = parse_str(&text).unwrap();
    assert_eq!(c.wan.interface, None);
    let wan = c.wan.uplinks.clone().map(AddressSource::Uplinks);
    assert_eq!(wan, Some(list(&["wan", "wwan"], 10, false)));
    // A host's list takes the [wan]'s failback and route rule unless it sets its own.
    assert_eq!(c.hosts[0].source_v6, list(&["a", "b"], 10, false));
    assert_eq!(c.hosts[0].source_v4, AddressSource::Wan);
    let again = parse_str(&c.render_redacted().replace("<redacted>", "p")).unwrap();
    assert_eq!(again.wan, c.wan);
    assert_eq!(sources(&again), sources(&c));

    let cases: &[(&str, &str, usize)] = &[
        ("interface = []\n", "host[0].interface", 5),
        ("interface = [\"a\", \"a\"]\n", "host[0].interface", 5),
        (
            "interface = [\"a\", \"has space\"]\n",
            "host[0].interface",
            5,
        ),
        // serde names the line and what it expected.
        ("interface = [\"a\", 3]\n", "", 5),
        (
            "interface = \"a\"\nfailback = \"1m\"\n",
            "host[0].failback",
            6,
        ),
        (
            "interface = [\"a\", \"b\"]\nfailback = \"soon\"\n",
            "host[0].failback",
            6,
        ),
        (
            "interface = [\"a\", \"b\"]\nfailback = \"2d\"\n",
            "host[0].failback",
            6,
        ),
    ];
    for (extra, key, line) in cases {
        let e = parse_str(&host(extra)).unwrap_err();
        assert!(e.key.starts_with(key), "{extra}: {e}");
        assert_eq!(e.line, Some(*line), "{extra}: {e}");
    }
    let e = parse_str(&format!("[wan]\nfailback = \"x\"\n{}", host(""))).unwrap_err();
    assert_eq!((e.key.as_str(), e.line), ("wan.failback", Some(2)), "{e}");
}
