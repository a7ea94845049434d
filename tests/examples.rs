//! The shipped example configs in `config/` stay valid: each one is checked by the real
//! validator (with its `password_file` and `url_file` paths pointed at temporary secrets).

use std::path::Path;

#[test]
fn every_example_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "example-secret\n").unwrap();
    let url = dir.path().join("url");
    std::fs::write(&url, "ntfy://ntfy.sh/example-topic\n").unwrap();
    let mut seen = 0;
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let text: String = text
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("password_file") {
                    format!("password_file = \"{}\"", secret.display())
                } else if l.trim_start().starts_with("url_file") {
                    format!("url_file = \"{}\"", url.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = dynhostd::config::parse(&text, Some(&path), dir.path())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!config.hosts.is_empty(), "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 5, "expected the example configs, found {seen}");
}

/// The address-source examples say what their comments say.
#[test]
fn the_address_source_examples_mean_what_they_say() {
    use dynhostd::record::Family;
    use dynhostd::wan::policy::{AddressSource, HostPart};
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("password_file"))
            .flat_map(|l| {
                let extra = l.starts_with("login").then_some("password = \"p\"");
                std::iter::once(l).chain(extra)
            })
            .collect::<Vec<_>>()
            .join("\n");
        dynhostd::config::parse(&text, Some(&path), dir.path())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let lan = |host: HostPart| AddressSource::Prefix {
        interface: "br-lan".into(),
        host,
    };
    let c = load("behind-router.toml");
    let sources: Vec<_> = c
        .hosts
        .iter()
        .map(|h| (h.source(Family::V4).clone(), h.source(Family::V6).clone()))
        .collect();
    assert_eq!(
        sources,
        [
            (
                AddressSource::Wan,
                lan(HostPart::Suffix("::10".parse().unwrap()))
            ),
            (
                AddressSource::Wan,
                lan(HostPart::Eui64("34:56:78:9a:bc:de".parse().unwrap()))
            ),
            (
                AddressSource::Wan,
                lan(HostPart::Neighbour("02:11:22:33:44:55".parse().unwrap()))
            ),
        ]
    );
    let c = load("two-wans.toml");
    let wwan = AddressSource::Interface("wwan0".into());
    assert_eq!(c.hosts[0].source(Family::V4), &AddressSource::Wan);
    assert_eq!(c.hosts[0].source(Family::V6), &AddressSource::Wan);
    assert_eq!(c.hosts[1].source(Family::V4), &wwan);
    assert_eq!(c.hosts[1].source(Family::V6), &wwan);
    // Failover: home follows the [wan] list, office the LTE modem alone.
    let c = load("multi-wan.toml");
    let list = c.wan.uplinks.as_ref().expect("a [wan] failover list");
    assert_eq!(list.names, ["pppoe-wan", "wwan0"]);
    assert_eq!(list.failback, std::time::Duration::from_secs(60));
    assert!(list.requires_route);
    assert_eq!(c.hosts[0].source(Family::V6), &AddressSource::Wan);
    assert_eq!(c.hosts[1].source(Family::V4), &wwan);
}
