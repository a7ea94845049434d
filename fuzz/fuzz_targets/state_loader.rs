//! Fuzz target: the state-file loader. `state.json` survives power cuts, hand edits and other
//! programs, so whatever it holds, `State::from_json` never panics; a state it accepts writes
//! back to the same state (so a save never loses or changes what was loaded); and what
//! `dynhostd status` prints from it stays free of control, format and bidi characters and line
//! separators, whatever text or numbers (`u64::MAX`, times far in the future) the file holds.
//!
//! The input is the file's bytes, decoded leniently (the loader itself refuses non-UTF-8 with
//! the bounded reader before parsing).

#![no_main]

use dynhostd::config::{Config, parse};
use dynhostd::provider::server_text::is_unsafe;
use dynhostd::report::{status, status_table};
use dynhostd::state::State;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

/// The records the seeds name, both families, so `status` shows what was loaded.
fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let text = "[[host]]\nhostname = \"home.example.com\"\nlogin = \"example.com-home\"\npassword = \"fuzz-pass\"\nfamily = \"both\"\n\n[[host]]\nhostname = \"office.example.com\"\nlogin = \"example.com-office\"\npassword = \"fuzz-pass\"\n";
        parse(text, None, Path::new("/")).expect("the fixed config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(state) = State::from_json(&text) else {
        return;
    };

    // What the agent would save is what it loaded.
    let saved = state.to_json();
    let again = State::from_json(&saved).expect("a saved state loads again");
    assert_eq!(again, state, "the state changed on its way through a save");

    // `dynhostd status`, as the user would see it.
    let rows = status(config(), &state);
    let table = status_table(&rows);
    for c in table.chars() {
        assert!(
            c == '\n' || !is_unsafe(c),
            "status prints {c:?} from the state file:\n{table}"
        );
    }
    for r in &rows {
        for text in [&r.last_reply, &r.stopped, &r.fix].into_iter().flatten() {
            assert!(!text.chars().any(is_unsafe), "{text:?}");
            assert!(text.chars().count() <= 300, "{} chars", text.chars().count());
        }
    }
});
