//! Fuzz target: `dynhostd::public_ip::parse_answer`, which reads a what's-my-IP service's answer
//! (any bytes a server sends), never panics, only looks at the first `MAX_ANSWER_BYTES`, and an
//! address it finds is really written in those bytes and is of the family asked for.
//!
//! Input layout: byte 0 bit 0 picks the family (0: IPv4, 1: IPv6); the rest is the body.
//!
//! "Really written" is exact for IPv4: `ip.to_string()` occurs in the (lossily decoded) text, as
//! std's IPv4 parser only takes the canonical dotted-decimal form (no leading zeros, four parts).
//! For IPv6 that can't hold: `2001:0DB8:0:0::1` is a correct answer whose canonical text
//! `2001:db8::1` appears nowhere. The IPv6 check is the weaker true one: some piece of the text
//! at most 45 characters long (the longest IPv6 text, `ffff:…:255.255.255.255`) parses to the
//! same address.

#![no_main]

use dynhostd::public_ip::{MAX_ANSWER_BYTES, parse_answer};
use dynhostd::record::Family;
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv6Addr};

/// The longest textual IPv6 address: eight groups with the last two as dotted IPv4.
const MAX_V6_TEXT: usize = 45;

/// Whether some substring of `text` (on character boundaries) parses as `ip`.
fn written_as_v6(text: &str, ip: Ipv6Addr) -> bool {
    let starts: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    starts.iter().any(|&s| {
        text[s..]
            .char_indices()
            .map(|(i, c)| s + i + c.len_utf8())
            .take(MAX_V6_TEXT)
            .any(|e| text[s..e].parse::<Ipv6Addr>() == Ok(ip))
    })
}

fuzz_target!(|data: &[u8]| {
    let (family, body) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (Family::V6, rest),
        Some((_, rest)) => (Family::V4, rest),
        None => (Family::V4, data),
    };
    let found = parse_answer(body, family);

    // Only the first MAX_ANSWER_BYTES count: what follows changes nothing.
    let head = &body[..body.len().min(MAX_ANSWER_BYTES)];
    assert_eq!(
        parse_answer(head, family),
        found,
        "bytes past MAX_ANSWER_BYTES changed the answer"
    );

    let Some(ip) = found else { return };
    assert_eq!(Family::of(&ip), family, "{ip} is not {family}");
    let text = String::from_utf8_lossy(head);
    match ip {
        IpAddr::V4(_) => assert!(
            text.contains(&ip.to_string()),
            "{ip} is not written in {text:?}"
        ),
        IpAddr::V6(v6) => {
            // Hex digits may be in either case, and the cheap exact check settles most inputs.
            let lower = text.to_ascii_lowercase();
            assert!(
                lower.contains(&ip.to_string()) || written_as_v6(&text, v6),
                "{ip} is not written in {text:?}"
            );
        }
    }
});
