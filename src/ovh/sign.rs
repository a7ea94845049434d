//! The OVH API request signature (ovh-dynhost.md, "The OVH API"):
//! `"$1$" + hex(SHA1(AS + "+" + CK + "+" + METHOD + "+" + FULL_URL + "+" + BODY + "+" + T))`.
//! SHA-1 is what OVH asks for; ring keeps it as `SHA1_FOR_LEGACY_USE_ONLY`.

use crate::secret::Secret;
use ring::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};

/// The `X-Ovh-Signature` value for one request. `full_url` includes the `/1.0` root and the
/// query string; `body` is the exact bytes sent (empty for none); `timestamp` is the server's
/// time as the client computes it (local time plus the `/auth/time` offset).
pub fn signature(
    application_secret: &Secret,
    consumer_key: &Secret,
    method: &str,
    full_url: &str,
    body: &[u8],
    timestamp: i64,
) -> String {
    let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(application_secret.expose().as_bytes());
    ctx.update(b"+");
    ctx.update(consumer_key.expose().as_bytes());
    ctx.update(b"+");
    ctx.update(method.as_bytes());
    ctx.update(b"+");
    ctx.update(full_url.as_bytes());
    ctx.update(b"+");
    ctx.update(body);
    ctx.update(b"+");
    ctx.update(timestamp.to_string().as_bytes());
    let digest = ctx.finish();
    let mut out = String::with_capacity(3 + 40);
    out.push_str("$1$");
    for b in digest.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vectors shared by OVH's Python and Go clients (ovh-dynhost.md).
    #[test]
    fn get_with_empty_body() {
        let s = signature(
            &Secret::new("9ufkBmLaTQ9nz5yMUlg79taH0GNnzDjk"),
            &Secret::new("5mBuy6SUQcRw2ZUxg0cG68BoDKpED4KY"),
            "GET",
            "https://eu.api.ovh.com/1.0/auth",
            b"",
            1457018875,
        );
        assert_eq!(s, "$1$e9556054b6309771395efa467c22e627407461ad");
    }

    #[test]
    fn post_with_a_body() {
        let s = signature(
            &Secret::new("9ufkBmLaTQ9nz5yMUlg79taH0GNnzDjk"),
            &Secret::new("5mBuy6SUQcRw2ZUxg0cG68BoDKpED4KY"),
            "POST",
            "https://eu.api.ovh.com/1.0/auth",
            br#"{"a":"b","c":"d"}"#,
            1457018875,
        );
        assert_eq!(s, "$1$ec2fb5c7a81f64723c77d2e5b609ae6f58a84fc1");
    }

    #[test]
    fn older_vector_with_a_trailing_slash() {
        let s = signature(
            &Secret::new("EXEgWIz07P0HYwtQDs7cNIqCiQaWSuHF"),
            &Secret::new("MtSwSrPpNjqfVSmJhLbPyr2i45lSwPU1"),
            "GET",
            "https://eu.api.ovh.com/1.0/domains/",
            b"",
            1366560945,
        );
        assert_eq!(s, "$1$d3705e8afb27a0d2970a322b96550abfc67bb798");
    }

    #[test]
    fn every_part_counts() {
        let base = || {
            signature(
                &Secret::new("as"),
                &Secret::new("ck"),
                "GET",
                "https://eu.api.ovh.com/1.0/x",
                b"",
                1,
            )
        };
        let other = signature(
            &Secret::new("as"),
            &Secret::new("ck"),
            "GET",
            "https://eu.api.ovh.com/1.0/x",
            b"",
            2,
        );
        assert_ne!(base(), other);
        assert_eq!(base(), base());
    }
}
