//! Text that came from a DynHost server, made safe once, at the provider border, before anything
//! else (logs, `state.json`, `dynhostd status`, hook environments) sees it.
//!
//! - Characters that can hide or rearrange what a reader sees become `?`: control characters
//!   (general category Cc, newlines included, so a reply can't forge a log line), format
//!   characters (Cf: the bidi embeddings, overrides and isolates, zero-width spaces and joiners,
//!   the BOM…), the line and paragraph separators (Zl, Zp) and U+FFFD (bytes that were not
//!   UTF-8). `?` rather than an escape: short, and the same mark the reply classifier always used.
//! - The length is capped by the caller (in characters, so a cut never splits one).
//! - The host's password, and its HTTP Basic form (`base64(login:password)`), are replaced by
//!   `<redacted>` wherever they occur, before the text is cut (so no prefix of them survives a
//!   cut either).

use crate::secret::Secret;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// General category Cf (Other, format), from the Unicode Character Database's
/// `extracted/DerivedGeneralCategory.txt` (Unicode 15.1 to 17.0 list the same ranges). Stable:
/// new Cf characters are rare, and a missing one is only left as it is, not misread.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),   // soft hyphen
    (0x0600, 0x0605),   // Arabic number signs
    (0x061C, 0x061C),   // Arabic letter mark (bidi)
    (0x06DD, 0x06DD),   // Arabic end of ayah
    (0x070F, 0x070F),   // Syriac abbreviation mark
    (0x0890, 0x0891),   // Arabic pound/piastre mark above
    (0x08E2, 0x08E2),   // Arabic disputed end of ayah
    (0x180E, 0x180E),   // Mongolian vowel separator
    (0x200B, 0x200F),   // zero-width space, ZWNJ, ZWJ, LRM, RLM
    (0x202A, 0x202E),   // LRE, RLE, PDF, LRO, RLO
    (0x2060, 0x2064),   // word joiner, invisible operators
    (0x2066, 0x206F),   // LRI, RLI, FSI, PDI, deprecated format characters
    (0xFEFF, 0xFEFF),   // zero-width no-break space (BOM)
    (0xFFF9, 0xFFFB),   // interlinear annotation
    (0x110BD, 0x110BD), // Kaithi number sign
    (0x110CD, 0x110CD), // Kaithi number sign above
    (0x13430, 0x1343F), // Egyptian hieroglyph format controls
    (0x1BCA0, 0x1BCA3), // shorthand format controls
    (0x1D173, 0x1D17A), // musical symbol format controls
    (0xE0001, 0xE0001), // language tag
    (0xE0020, 0xE007F), // tag characters
];

/// True for a character that must not reach a log line, a terminal or a file as it is.
pub fn is_unsafe(c: char) -> bool {
    let cp = u32::from(c);
    c.is_control() // Cc
        || c == '\u{2028}' // Zl, line separator
        || c == '\u{2029}' // Zp, paragraph separator
        || c == char::REPLACEMENT_CHARACTER
        || FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&cp))
}

/// At most `max` characters of `s`, every unsafe one shown as `?`.
pub fn clean(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if is_unsafe(c) { '?' } else { c })
        .collect()
}

/// The forms of a host's credentials that must never be repeated from a server's text.
#[derive(Clone, Default)]
pub struct Secrets {
    forms: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} forms, <redacted>)", self.forms.len())
    }
}

impl Secrets {
    /// The password and the Basic credentials (`base64(login:password)`) sent for it.
    pub fn of(login: &str, password: &Secret) -> Secrets {
        let mut forms = Vec::new();
        let pw = password.expose();
        if !pw.is_empty() {
            forms.push(pw.to_string());
            forms.push(base64(format!("{login}:{pw}").as_bytes()));
        }
        // Longest first, so a form that contains another is masked whole.
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        Secrets { forms }
    }

    /// `text` with every form replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for f in &self.forms {
            if out.contains(f.as_str()) {
                out = out.replace(f.as_str(), REDACTED);
            }
        }
        out
    }

    /// Like [`Secrets::redact`], on a raw reply body, before anything reads it.
    pub fn redact_bytes(&self, body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        for f in &self.forms {
            out = replace_bytes(&out, f.as_bytes(), REDACTED.as_bytes());
        }
        out
    }
}

fn replace_bytes(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() || hay.len() < needle.len() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Standard Base64 with padding (RFC 4648 §4), as in an `Authorization: Basic` header.
fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_zero_width_and_separators_become_question_marks() {
        let hostile = "a\u{202E}b\u{200B}c\u{2066}d\u{2028}e\u{2029}f\u{FEFF}g\u{061C}h\u{0007}i\nj\u{FFFD}k\u{E0041}l";
        assert_eq!(clean(hostile, 100), "a?b?c?d?e?f?g?h?i?j?k?l");
        // Ordinary text, accents and other scripts pass.
        assert_eq!(clean("déjà vu — 東京 ok", 100), "déjà vu — 東京 ok");
        assert_eq!(clean("abcdef", 3), "abc");
    }

    #[test]
    fn the_format_table_is_sorted_and_covers_the_bidi_controls() {
        for w in FORMAT.windows(2) {
            assert!(w[0].1 < w[1].0, "{w:x?}");
        }
        for c in ('\u{202A}'..='\u{202E}').chain('\u{2066}'..='\u{2069}') {
            assert!(is_unsafe(c), "{c:?}");
        }
        for c in ['a', ' ', 'é', '\u{2010}', '\u{2030}', '\u{FFFC}'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }

    #[test]
    fn the_password_and_its_basic_form_are_redacted() {
        let s = Secrets::of("example.com-home", &Secret::new("hunter2-secret"));
        let basic = base64(b"example.com-home:hunter2-secret");
        assert_eq!(basic, "ZXhhbXBsZS5jb20taG9tZTpodW50ZXIyLXNlY3JldA==");
        assert_eq!(
            s.redact(&format!("you sent hunter2-secret as {basic}")),
            "you sent <redacted> as <redacted>"
        );
        assert_eq!(
            s.redact_bytes(format!("x{basic}yhunter2-secretz").as_bytes()),
            b"x<redacted>y<redacted>z"
        );
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
