//! Fuzz target: a DynHost/dyndns2 server's reply, whatever it holds, is classified, judged and
//! summarised without panicking, and what ends up in logs and the state file stays short and free
//! of control characters and undecodable bytes.
//!
//! Input layout: byte 0 picks the provider (bit 0) and whether the status comes from a table of
//! statuses servers really send (bit 1) or is any u16; bytes 1..3 are the status (an index into
//! the table, or big-endian); byte 3 bit 0 says whether a Retry-After is present, and bytes 4..12
//! are its seconds (big-endian u64). The rest is the body.

#![no_main]

use dynhostd::provider::{Provider, Reply, Verdict, classify, verdict};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const HEADER: usize = 12;

/// Statuses seen from OVH and dyndns2 servers, and the ones the classifier treats specially.
const STATUSES: [u16; 16] = [
    200, 201, 204, 301, 302, 400, 401, 403, 404, 408, 429, 500, 502, 503, 504, 0,
];

/// `Reply::Unknown`'s first line is at most 100 characters, shown with `{:?}`, which writes a
/// character as at most 10 (`\u{10ffff}`); plus the words around it. A `BadRequest` message is
/// at most 200 characters. Anything longer floods the log and the state file.
const SUMMARY_MAX_CHARS: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let mut header = [0u8; HEADER];
    let n = data.len().min(HEADER);
    header[..n].copy_from_slice(&data[..n]);
    let body = &data[n..];

    let provider = if header[0] & 1 == 0 {
        Provider::Ovh
    } else {
        Provider::Dyndns2
    };
    let raw_status = u16::from_be_bytes([header[1], header[2]]);
    let status = if header[0] & 2 == 0 {
        STATUSES[usize::from(raw_status) % STATUSES.len()]
    } else {
        raw_status
    };
    let retry_after = (header[3] & 1 == 1)
        .then(|| Duration::from_secs(u64::from_be_bytes(header[4..12].try_into().unwrap())));

    let reply = classify(provider, status, retry_after, body);
    let v = verdict(&reply);
    let summary = reply.summary();

    assert!(
        summary.chars().count() <= SUMMARY_MAX_CHARS,
        "summary of {} chars: {summary:?}",
        summary.chars().count()
    );
    assert!(!summary.is_empty(), "empty summary for {reply:?}");
    assert!(
        !summary
            .chars()
            .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER),
        "unprintable summary: {summary:?}"
    );

    // The parts of the reply that came from the server are cut and cleaned where they are made.
    match &reply {
        Reply::Unknown { first_line, .. } => {
            assert!(first_line.chars().count() <= 100, "{first_line:?}");
            assert!(!first_line.chars().any(char::is_control), "{first_line:?}");
        }
        Reply::BadRequest(message) => {
            assert!(status == 400, "BadRequest from status {status}");
            assert!(message.chars().count() <= 200, "{message:?}");
        }
        // Success only on a 2xx: an error page starting with "good" has published nothing.
        Reply::Good(_) | Reply::NoChg(_) => {
            assert!(
                (200..300).contains(&status),
                "{reply:?} from status {status}"
            );
        }
        Reply::Unauthorized => assert_eq!(status, 401),
        Reply::RateLimited(after) => {
            assert!(status == 429 || (status == 503 && after.is_some()));
            assert_eq!(*after, retry_after);
        }
        _ => {}
    }
    match &v {
        Verdict::Stop { fix } => assert!(!fix.is_empty(), "a stop must tell the user what to fix"),
        Verdict::Retry { after } => {
            if let Some(after) = after {
                assert_eq!(Some(*after), retry_after, "a wait nobody asked for");
            }
        }
        Verdict::Published { .. } => {
            assert!(
                matches!(reply, Reply::Good(_) | Reply::NoChg(_)),
                "{reply:?}"
            );
        }
    }
});
