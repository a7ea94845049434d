//! Fuzz target: the state-file loader. `state.json` survives power cuts, hand edits and other
//! programs, so whatever it holds, `State::from_json` never panics; a state it accepts writes
//! back to the same state (so a save never loses or changes what was loaded); and what
//! `dynhostd status` prints from it stays free of control, format and bidi characters and line
//! separators, whatever text or numbers (`u64::MAX`, times far in the future) the file holds.
//! The decider is then built from it, at a wall clock of 0, of today and of `u64::MAX` (a clock
//! that is wrong either way), asked for its next wake-up and given a timer event: a saved time
//! must never overflow a deadline (architecture.md, "Field rules": a saved time in the future
//! means now, no `Instant + Duration` that can overflow).
//!
//! The input is the file's bytes, decoded leniently (the loader itself refuses non-UTF-8 with
//! the bounded reader before parsing).

#![no_main]

use dynhostd::agent::decider_config;
use dynhostd::clock::{Now, UnixTime};
use dynhostd::config::{Config, parse};
use dynhostd::decide::{Decider, Event};
use dynhostd::provider::server_text::is_unsafe;
use dynhostd::report::{status, status_table};
use dynhostd::state::State;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
            assert!(
                text.chars().count() <= 300,
                "{} chars",
                text.chars().count()
            );
        }
    }

    // The decider built from it, at clocks right and wrong.
    let mono = Instant::now();
    for wall in [0, 1_780_000_000, u64::MAX] {
        let now = Now {
            mono,
            wall: UnixTime(wall),
        };
        let mut decider = Decider::new(decider_config(config()), state.clone(), now, 0);
        let wake = decider.next_wake();
        // Just past the wake-up (the harness's own arithmetic must not be what overflows).
        let at = wake.unwrap_or(mono).max(mono);
        let later = Now {
            mono: at.checked_add(Duration::from_secs(1)).unwrap_or(at),
            wall: UnixTime(wall.saturating_add(1)),
        };
        let _ = decider.on_event(Event::Timer, later);
        let _ = decider.next_wake();
        let _ = decider.state(later).to_json();
    }
});
