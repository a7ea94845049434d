//! Names, rules and passwords of the `ovh` commands.

use super::*;
use crate::ovh::api::AccessRule;
use std::path::PathBuf;

#[test]
fn zones_and_subdomains() {
    assert_eq!(
        zone_candidates("a.home.example.com"),
        ["a.home.example.com", "home.example.com", "example.com"]
    );
    assert_eq!(zone_candidates("example.com"), ["example.com"]);
    assert_eq!(
        subdomain_in("home.example.com", "example.com").as_deref(),
        Some("home")
    );
    assert_eq!(
        subdomain_in("example.com", "example.com").as_deref(),
        Some("")
    );
    assert_eq!(subdomain_in("home.example.com", "ample.com"), None);
    assert_eq!(subdomain_in("home.example.org", "example.com"), None);
    assert_eq!(default_suffix("a.b"), "a-b");
    assert_eq!(default_suffix(""), "apex");
}

#[test]
fn rules_cover_only_the_zone() {
    let rules = access_rules(Some("example.com"));
    assert!(
        rules
            .iter()
            .all(|r| r.path.starts_with("/domain/zone/example.com/") || r.path == "/auth/time")
    );
    assert!(rules.contains(&AccessRule {
        method: "POST".into(),
        path: "/domain/zone/example.com/refresh".into()
    }));
    assert!(
        !rules
            .iter()
            .any(|r| r.method == "GET" && r.path.ends_with("refresh"))
    );
}

#[test]
fn passwords_are_long_random_and_plain() {
    let a = new_password().unwrap();
    let b = new_password().unwrap();
    assert_eq!(a.expose().len(), PASSWORD_CHARS);
    const { assert!(PASSWORD_CHARS >= 24) };
    assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dynhostd-ovh-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn no_lock_file_means_no_agent() {
    let d = tempfile_dir().join("nolock");
    let at = crate::control::Locations {
        socket: d.join("control"),
        state_dir: d,
    };
    assert_eq!(reload_agent(&at).unwrap(), Reload::NoAgent);
}
