//! The state file: for each record, what was published, when, the last reply, the back-off and
//! whether the host is stopped and why. One small JSON file in `state.dir`, written atomically
//! (temp file, fsync, rename, fsync of the directory), so a power cut leaves the old file or the
//! new one, never half of one. A missing or corrupt file means "unknown", never a crash: the
//! worst case is one repeated update.
//!
//! The file can be edited (or the directory written) by someone other than the agent, so
//! neither step trusts what is there: the temp file is created afresh (`O_EXCL|O_NOFOLLOW`, a
//! link planted at its name is never followed), and every text read back is cleaned as server
//! text is ([`crate::provider::server_text::clean`]) before a log line or a terminal sees it.

use crate::fsread;
use crate::provider::server_text::clean;
use crate::record::RecordKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "state.json";
/// Bumped when the format changes incompatibly; an unknown version is treated as corrupt.
pub const VERSION: u32 = 1;
/// Longest text kept from one string field of the file (a reply summary, a stop's reason or
/// fix): the agent writes well under it (a fix with the server's message is about 400).
const TEXT_MAX_CHARS: usize = 1000;
/// Longest record key kept: a hostname (253) and `/AAAA`.
const KEY_MAX_CHARS: usize = 300;
/// Events kept per record ([`PublishedRecord::history`]): enough for "what went wrong last
/// night", and a bound on the file (1000 hosts × 20 events stay well under `STATE_CAP`).
pub const HISTORY_MAX: usize = 20;

/// What happened to a record, as its history and the notifications name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryEvent {
    /// The provider took a new address.
    Updated,
    /// An attempt failed; the agent retries it.
    Error,
    /// The host was stopped until its entry or the provider is fixed.
    Stopped,
    /// The first `good`/`nochg` after an `error` or `stopped`.
    Recovered,
    /// A name this version does not know (a newer version's file): kept, shown as it is named.
    #[serde(other)]
    Other,
}

impl HistoryEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryEvent::Updated => "updated",
            HistoryEvent::Error => "error",
            HistoryEvent::Stopped => "stopped",
            HistoryEvent::Recovered => "recovered",
            HistoryEvent::Other => "other",
        }
    }
}

/// One event of a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Unix time it happened.
    pub at: u64,
    pub event: HistoryEvent,
    /// The address the attempt was for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The reply's summary (`good`, `nochg`), or what went wrong.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
}

/// Why a host was stopped, kept until its configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// The reply that stopped it, e.g. `401 unauthorized`.
    pub reason: String,
    /// What the user must fix.
    pub fix: String,
    /// Unix time it happened.
    pub at: u64,
    /// `HostConfig::fingerprint` when it happened; a different one lifts the stop.
    pub config: String,
}

/// What we know of one DynHost record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishedRecord {
    /// The address the provider last confirmed (good/nochg).
    pub published: Option<IpAddr>,
    /// Unix time of that confirmation.
    pub published_at: Option<u64>,
    /// Summary of the last reply, whatever it was.
    pub last_reply: Option<String>,
    /// Unix time of the last attempt.
    pub last_attempt_at: Option<u64>,
    /// Consecutive failed attempts (drives the back-off).
    pub failures: u32,
    /// Unix time before which no retry is sent.
    pub retry_at: Option<u64>,
    pub stopped: Option<Stopped>,
    /// `HostConfig::fingerprint` of the entry the last attempt was made with: a back-off earned
    /// by an entry that has since been edited is dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_config: Option<String>,
    /// `retry_at` is a wait the server asked for (Retry-After, capped at a day), not our own
    /// back-off (capped at `retry_max`): the cap applied when it is read back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retry_asked: bool,
    /// The last [`HISTORY_MAX`] events, oldest first. `nochg` replies that change nothing are
    /// not events. Absent from files written before it existed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

impl PublishedRecord {
    /// Every string field, cleaned ([`clean`]) and capped.
    fn clean_texts(&mut self) {
        let text = |s: &mut String| *s = clean(s, TEXT_MAX_CHARS);
        if let Some(r) = &mut self.last_reply {
            text(r);
        }
        if let Some(c) = &mut self.attempt_config {
            text(c);
        }
        if let Some(stop) = &mut self.stopped {
            text(&mut stop.reason);
            text(&mut stop.fix);
            text(&mut stop.config);
        }
        let extra = self.history.len().saturating_sub(HISTORY_MAX);
        self.history.drain(..extra);
        for h in &mut self.history {
            text(&mut h.text);
        }
    }

    /// Adds `entry` to the history, dropping the oldest beyond [`HISTORY_MAX`].
    pub fn remember(&mut self, entry: HistoryEntry) {
        if self.history.len() >= HISTORY_MAX {
            self.history.remove(0);
        }
        self.history.push(entry);
    }

    /// Whether the last event was a failure, so that the next success is a recovery.
    pub fn troubled(&self) -> bool {
        self.history
            .last()
            .is_some_and(|h| matches!(h.event, HistoryEvent::Error | HistoryEvent::Stopped))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub records: BTreeMap<RecordKey, PublishedRecord>,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    records: BTreeMap<String, PublishedRecord>,
}

/// How loading went, for the caller to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    Read,
    Missing,
    /// Unreadable or unparsable; holds why. The agent warns and starts from unknown.
    Corrupt(String),
}

impl State {
    pub fn to_json(&self) -> String {
        let disk = OnDisk {
            version: VERSION,
            records: self
                .records
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        };
        let mut s = serde_json::to_string_pretty(&disk).expect("state serialises");
        s.push('\n');
        s
    }

    pub fn from_json(text: &str) -> Result<State, String> {
        let disk: OnDisk = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if disk.version != VERSION {
            return Err(format!("unknown state version {}", disk.version));
        }
        let mut records = BTreeMap::new();
        for (k, mut v) in disk.records {
            // The agent writes only clean text; anything else was put there by hand (or by
            // someone who could write the file) and must not reach a log line or a terminal
            // as it is: a U+202E in a stop reason would rewrite the line it is logged in.
            let k = clean(&k, KEY_MAX_CHARS);
            let key = RecordKey::parse(&k).ok_or_else(|| format!("bad record key {k:?}"))?;
            v.clean_texts();
            records.insert(key, v);
        }
        Ok(State { records })
    }

    /// Writes the state to any writer (tests use memory).
    pub fn write_to<W: Write>(&self, mut w: W) -> io::Result<()> {
        w.write_all(self.to_json().as_bytes())?;
        w.flush()
    }
}

/// Reads the state file at `path`. Never fails: a missing or corrupt file gives an empty state.
/// Read through [`crate::fsread`]: a FIFO, a device or a file over [`fsread::STATE_CAP`] counts as
/// corrupt ("unknown") without being read, so neither `run` nor `status` can hang or balloon.
pub fn load(path: &Path) -> (State, Loaded) {
    match fsread::read_to_string(path, fsread::STATE_CAP) {
        Ok(text) => match State::from_json(&text) {
            Ok(state) => (state, Loaded::Read),
            Err(e) => (State::default(), Loaded::Corrupt(e)),
        },
        Err(e) if e.is_not_found() => (State::default(), Loaded::Missing),
        Err(e) => (State::default(), Loaded::Corrupt(e.problem.to_string())),
    }
}

/// Writes `state` to `path` atomically: a temp file beside it, fsync, rename over, fsync the
/// directory. Creates the directory (0700) if needed.
pub fn save(path: &Path, state: &State) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        // Whatever has the temp name (a file left by a crashed run whose pid we now have, or a
        // link someone planted to make us overwrite another file) is unlinked, never opened:
        // unlink removes a link itself, not its target. The file is then created afresh;
        // O_EXCL also fails on a link (and O_NOFOLLOW says so twice), so a name planted again
        // in between makes the save fail, not write through it.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        state.write_to(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is only durable once the directory entry is.
        if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        }) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes temp files left by a writer that was killed between creating and renaming them
/// (power loss, kill -9). Only ours by name, and never the live temp file of this process.
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let prefix = format!("{}.tmp.", name.to_string_lossy());
    let mine = temp_path(path);
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let n = e.file_name();
        let n = n.to_string_lossy();
        if n.starts_with(&prefix)
            && n[prefix.len()..].chars().all(|c| c.is_ascii_digit())
            && p != mine
        {
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Family;

    fn sample() -> State {
        let mut s = State::default();
        s.records.insert(
            RecordKey::new("home.example.com", Family::V4),
            PublishedRecord {
                published: Some("203.0.113.7".parse().unwrap()),
                published_at: Some(1_700_000_000),
                last_reply: Some("good 203.0.113.7".into()),
                last_attempt_at: Some(1_700_000_000),
                ..Default::default()
            },
        );
        s.records.insert(
            RecordKey::new("home.example.com", Family::V6),
            PublishedRecord {
                failures: 3,
                retry_at: Some(1_700_000_500),
                stopped: Some(Stopped {
                    reason: "401 unauthorized".into(),
                    fix: "check the password".into(),
                    at: 1_700_000_100,
                    config: "deadbeef".into(),
                }),
                ..Default::default()
            },
        );
        s
    }

    #[test]
    fn round_trips_through_memory() {
        let s = sample();
        let mut buf = Vec::new();
        s.write_to(&mut buf).unwrap();
        let back = State::from_json(std::str::from_utf8(&buf).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn missing_and_corrupt_files_mean_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(load(&path), (State::default(), Loaded::Missing));
        for junk in [
            "",
            "{",
            "null",
            "\0\0\u{1}garbage",
            r#"{"version":99,"records":{}}"#,
        ] {
            std::fs::write(&path, junk).unwrap();
            let (state, how) = load(&path);
            assert_eq!(state, State::default());
            assert!(matches!(how, Loaded::Corrupt(_)), "{junk:?}: {how:?}");
        }
        std::fs::write(&path, r#"{"version":1,"records":{"bad-key":{}}}"#).unwrap();
        assert!(matches!(load(&path).1, Loaded::Corrupt(_)));
    }

    #[test]
    fn a_fifo_or_an_oversize_state_file_means_unknown_without_reading_it() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo(3) touches no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Without a writer, a blocking open would never return.
        assert_eq!(
            load(&path),
            (
                State::default(),
                Loaded::Corrupt("not a regular file (a FIFO)".into())
            )
        );
        std::fs::remove_file(&path).unwrap();
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(fsread::STATE_CAP + 1).unwrap();
        assert_eq!(
            load(&path),
            (
                State::default(),
                Loaded::Corrupt("too large (the limit is 16 MiB)".into())
            )
        );
    }

    #[test]
    fn save_replaces_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(FILE_NAME);
        save(&path, &State::default()).unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path), (sample(), Loaded::Read));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE_NAME)]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "state is private");
    }

    #[test]
    fn stale_temp_files_from_a_killed_writer_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        save(&path, &sample()).unwrap();
        std::fs::write(dir.path().join("state.json.tmp.12345"), "{half").unwrap();
        std::fs::write(dir.path().join("state.json.tmp.notapid"), "x").unwrap();
        std::fs::write(dir.path().join("other.tmp.1"), "x").unwrap();
        remove_stale_temps(&path);
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["other.tmp.1", "state.json", "state.json.tmp.notapid"]
        );
        assert_eq!(load(&path).0, sample());
    }

    #[test]
    fn a_link_planted_at_the_temp_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me\n").unwrap();
        std::os::unix::fs::symlink(&victim, temp_path(&path)).unwrap();
        save(&path, &sample()).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "{meta:?}");
        assert_eq!(load(&path), (sample(), Loaded::Read));
        // A leftover regular file with our name (a crashed run with the same pid) does not
        // wedge the next save either.
        std::fs::write(temp_path(&path), "{half").unwrap();
        save(&path, &State::default()).unwrap();
        assert_eq!(load(&path), (State::default(), Loaded::Read));
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn text_read_back_from_an_edited_file_is_cleaned() {
        // Raw characters and JSON escapes (the file's text) alike.
        let text = serde_json::json!({"version": 1, "records": {"h\u{202E}.example.com/A": {
            "last_reply": "good\u{1b}[2J",
            "attempt_config": "a\u{2066}b",
            "stopped": {"reason": "401 \u{202E}evil", "fix": "x\ny", "at": 1, "config": "c\u{200B}d"},
        }}})
        .to_string();
        assert!(
            text.contains("\\u001b") && text.contains('\u{202E}'),
            "{text}"
        );
        let text = text.as_str();
        let s = State::from_json(text).unwrap();
        let (key, r) = s.records.iter().next().unwrap();
        assert_eq!(key.to_string(), "h?.example.com/A");
        assert_eq!(r.last_reply.as_deref(), Some("good?[2J"));
        assert_eq!(r.attempt_config.as_deref(), Some("a?b"));
        let stop = r.stopped.as_ref().unwrap();
        assert_eq!(
            (
                stop.reason.as_str(),
                stop.fix.as_str(),
                stop.config.as_str()
            ),
            ("401 ?evil", "x?y", "c?d")
        );
        let long = format!(
            "{{\"version\":1,\"records\":{{\"h.example.com/A\":{{\"last_reply\":\"{}\"}}}}}}",
            "x".repeat(5000)
        );
        let s = State::from_json(&long).unwrap();
        let r = s.records.values().next().unwrap();
        assert_eq!(
            r.last_reply.as_ref().unwrap().chars().count(),
            TEXT_MAX_CHARS
        );
    }

    #[test]
    fn unknown_fields_in_a_record_are_tolerated_missing_ones_default() {
        let text =
            r#"{"version":1,"records":{"h.example.com/A":{"published":"203.0.113.7","future":1}}}"#;
        let s = State::from_json(text).unwrap();
        let r = &s.records[&RecordKey::new("h.example.com", Family::V4)];
        assert_eq!(r.published, Some("203.0.113.7".parse().unwrap()));
        assert_eq!(r.failures, 0);
    }
    #[test]
    fn history_read_back_is_bounded_cleaned_and_tolerates_new_event_names() {
        // A file written before the history existed has none (the test above); one edited by
        // hand or by a newer version may have too many entries, hostile text, or an event name
        // this version does not know: none of it makes the file "corrupt".
        let mut entries: Vec<_> = (0..30)
            .map(|i| serde_json::json!({"at": i, "event": "error", "text": "500\u{202E}x"}))
            .collect();
        entries.push(serde_json::json!({"at": 99, "event": "teleported", "ip": "192.0.2.1"}));
        let text = serde_json::json!({"version": 1, "records": {"h.example.com/A": {
            "history": entries,
        }}})
        .to_string();
        let s = State::from_json(&text).unwrap();
        let h = &s.records[&RecordKey::new("h.example.com", Family::V4)].history;
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(h[0].at, 11, "the newest are kept");
        assert_eq!(h[0].text, "500?x");
        let last = h.last().unwrap();
        assert_eq!((last.event, last.text.as_str()), (HistoryEvent::Other, ""));
        assert_eq!(last.ip, Some("192.0.2.1".parse().unwrap()));
        // What is written back round-trips.
        assert_eq!(State::from_json(&s.to_json()).unwrap(), s);
    }
}
