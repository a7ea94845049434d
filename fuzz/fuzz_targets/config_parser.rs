//! Fuzz target: `dynhostd::config::parse` on any text (the input bytes, decoded leniently) never
//! panics, and a config it accepts survives `dynhostd check`'s rendering: `render_redacted()`
//! parses again, to the same settings, renders to the same text, and does not depend on the
//! passwords.
//!
//! The parser reads the files a config names (`password_file`, `ca_file`, systemd credentials).
//! Relative ones are read from a scratch directory made once, holding a password file and a
//! PEM-looking CA file so that the accepting paths are reached too; inputs naming an absolute
//! path or `..` are skipped, so a fuzzed `/dev/zero` or FIFO can't hang or exhaust the run.

#![no_main]

use dynhostd::config::{Config, parse};
use dynhostd::secret::Secret;
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// Set for `password_env = "DYNHOSTD_FUZZ_PASSWORD"` in the seeds.
const PASSWORD_ENV: &str = "DYNHOSTD_FUZZ_PASSWORD";

fn base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("dynhostd-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        std::fs::write(dir.join("secret"), "fuzz-secret-pass\n").expect("password file");
        std::fs::write(
            dir.join("ca.pem"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .expect("CA file");
        // SAFETY: set once, before anything reads the environment, in this single-threaded
        // harness.
        unsafe {
            std::env::set_var("CREDENTIALS_DIRECTORY", &dir);
            std::env::set_var(PASSWORD_ENV, "fuzz-env-pass");
        }
        dir
    })
}

/// Whether a path the config names would be read from outside the scratch directory.
fn escapes(path: &str) -> bool {
    Path::new(path)
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Whether `text` names a file outside the scratch directory. Reads the text with the same TOML
/// parser dynhostd uses, so escaped or quoted keys are seen as dynhostd would see them.
fn names_outside_file(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false; // dynhostd fails at the same step, before reading any file.
    };
    // [ovh_api] ca_file is read at load too (its secrets only by the `ovh` commands).
    if let Some(api) = table.get("ovh_api").and_then(|a| a.as_table())
        && api.get("ca_file").is_some_and(|v| v.as_str().is_none_or(escapes))
    {
        return true;
    }
    let Some(hosts) = table.get("host").and_then(|h| h.as_array()) else {
        return false;
    };
    hosts.iter().filter_map(|h| h.as_table()).any(|h| {
        ["password_file", "ca_file"]
            .iter()
            .filter_map(|k| h.get(*k))
            .any(|v| v.as_str().is_none_or(escapes))
    })
}

/// Everything `render_redacted` shows must come back from parsing it. Passwords are rendered
/// redacted and line numbers move, so neither is compared. Everything else is, so a setting
/// added later and left out of the rendering is caught here.
fn assert_same_settings(a: &Config, b: &Config, rendered: &str) {
    let mut b = b.clone();
    b.inline_passwords = a.inline_passwords;
    assert_eq!(
        a.hosts.len(),
        b.hosts.len(),
        "host count changed:\n{rendered}"
    );
    for (x, y) in a.hosts.iter().zip(&mut b.hosts) {
        y.password = x.password.clone();
        y.line = x.line;
    }
    // The OVH API's secrets are rendered redacted, whatever their form.
    if let (Some(x), Some(y)) = (&a.ovh_api, &mut b.ovh_api) {
        y.application_secret = x.application_secret.clone();
        y.consumer_key = x.consumer_key.clone();
        y.consumer_key_file = x.consumer_key_file.clone();
    }
    assert_eq!(
        a, &b,
        "settings changed through render_redacted:\n{rendered}"
    );
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let text = String::from_utf8_lossy(data);
    if names_outside_file(&text) {
        return;
    }
    let Ok(config) = parse(&text, None, base) else {
        return;
    };
    let rendered = config.render_redacted();
    let again = match parse(&rendered, None, base) {
        Ok(c) => c,
        Err(e) => panic!("render_redacted does not parse again: {e}\n--- rendered:\n{rendered}"),
    };
    assert_same_settings(&config, &again, &rendered);
    assert_eq!(
        again.render_redacted(),
        rendered,
        "rendering is not a fixed point"
    );
    // The rendering does not depend on the passwords: it cannot show them.
    let mut other = config.clone();
    for h in &mut other.hosts {
        h.password = Secret::new(format!("{}-changed", h.password.expose()));
    }
    assert_eq!(
        other.render_redacted(),
        rendered,
        "render_redacted shows a password"
    );
});
