//! The shipped example configs in `config/` stay valid: each one is checked by the real
//! validator (with its `password_file` paths pointed at a temporary secret).

use std::path::Path;

#[test]
fn every_example_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "example-secret\n").unwrap();
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
