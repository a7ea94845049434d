//! Durations as the config file writes them (`"500ms"`, `"2s"`, `"5m"`, `"1h"`, `"25d"`): parsed by
//! the config loader, formatted by it and by the core's log lines. A leaf: it imports nothing of
//! the crate, so both can use it.

use std::time::Duration;

/// The longest duration accepted anywhere: ten years. Longer makes no sense for any setting,
/// and timers that far out would overflow the clock.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// `"500ms"`, `"2s"`, `"5m"`, `"1h"`, `"25d"`, or `"0"`; several parts may follow each other
/// (`"1m30s"`). At most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (like \"2s\", \"5m\", \"1h\", \"25d\")");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
            "d" => Duration::from_secs(n.checked_mul(86400).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
        if total > MAX_DURATION {
            return Err(format!("{s:?} is too long (at most \"3650d\")"));
        }
    }
    Ok(total)
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}d", ms / 86_400_000)
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("25d"), Ok(Duration::from_secs(25 * 86400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "s", "2", "2x", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in [0, 1, 90, 300, 3600, 86400] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
