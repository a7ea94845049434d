//! The `Retry-After` header (RFC 9110 §10.2.3): a number of seconds, or an HTTP-date. Pure: the
//! current wall time is passed in, as every time is (architecture.md, "Field rules").
//!
//! - Seconds: `1*DIGIT`. A value too big for any integer is still a (huge) wait, so it is capped
//!   like any other, not ignored.
//! - HTTP-date: the preferred IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), and the two obsolete
//!   forms RFC 9110 §5.6.7 says recipients MUST accept: RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
//!   and asctime (`Sun Nov  6 08:49:37 1994`). Proxies and load balancers send dates.
//! - Capped at [`MAX_RETRY_AFTER`] (a day): a broken or hostile header must not park a host for
//!   weeks. A negative number, a date now or in the past, or anything unreadable is "no hint":
//!   the normal back-off applies.

use std::time::Duration;

/// A `Retry-After` longer than this is taken as this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait `value` asks for, seen at `now_unix` (Unix seconds), capped at [`MAX_RETRY_AFTER`];
/// `None` when it asks for none or can't be read.
pub fn parse(value: &str, now_unix: u64) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Only digits: a number of seconds, however long (overflow means "very long").
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = http_date(value, now_unix)?;
    let now = i64::try_from(now_unix).ok()?;
    if at <= now {
        return None;
    }
    let wait = u64::try_from(at - now).ok()?;
    Some(Duration::from_secs(wait).min(MAX_RETRY_AFTER))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Unix seconds of an HTTP-date in any of its three forms.
fn http_date(s: &str, now_unix: u64) -> Option<i64> {
    let (year, month, day, time) = if let Some((day_name, rest)) = s.split_once(',') {
        let words: Vec<&str> = rest.split_ascii_whitespace().collect();
        match words.as_slice() {
            // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`
            [day, mon, year, time, "GMT"] if DAYS.contains(&day_name) => {
                (number(year, 4)?, month(mon)?, number(day, 2)?, *time)
            }
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`
            [date, time, "GMT"] if LONG_DAYS.contains(&day_name) => {
                let mut parts = date.split('-');
                let (day, mon, yy) = (parts.next()?, parts.next()?, parts.next()?);
                if parts.next().is_some() {
                    return None;
                }
                let year = two_digit_year(number(yy, 2)?, now_unix);
                (year, month(mon)?, number(day, 2)?, *time)
            }
            _ => return None,
        }
    } else {
        // asctime: `Sun Nov  6 08:49:37 1994` (the day is space-padded: split on runs of space).
        let words: Vec<&str> = s.split_ascii_whitespace().collect();
        match words.as_slice() {
            [day_name, mon, day, time, year] if DAYS.contains(day_name) && day.len() <= 2 => {
                (number(year, 4)?, month(mon)?, number_1_or_2(day)?, *time)
            }
            _ => return None,
        }
    };
    let (h, m, sec) = clock(time)?;
    if !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Exactly `len` ASCII digits.
fn number(s: &str, len: usize) -> Option<i64> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn number_1_or_2(s: &str) -> Option<i64> {
    number(s, 1).or_else(|| number(s, 2))
}

/// Month names are case-sensitive in HTTP-date.
fn month(s: &str) -> Option<i64> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as i64 + 1)
}

/// `HH:MM:SS`; 60 seconds is a leap second (RFC 9110 allows it).
fn clock(s: &str) -> Option<(i64, i64, i64)> {
    let mut parts = s.split(':');
    let h = number(parts.next()?, 2)?;
    let m = number(parts.next()?, 2)?;
    let sec = number(parts.next()?, 2)?;
    if parts.next().is_some() || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h, m, sec))
}

/// RFC 9110 §5.6.7: a two-digit year that would be more than 50 years in the future is the most
/// recent past year with the same last two digits.
fn two_digit_year(yy: i64, now_unix: u64) -> i64 {
    let (now_year, ..) = crate::clock::UnixTime(now_unix).civil();
    let century = now_year - now_year.rem_euclid(100);
    let mut year = century + yy;
    if year > now_year + 50 {
        year -= 100;
    }
    year
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:37 UTC, RFC 9110's example.
    const EXAMPLE: u64 = 784_111_777;

    #[test]
    fn seconds_are_read_and_capped() {
        assert_eq!(parse(" 120 ", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse("0", 0), Some(Duration::ZERO));
        assert_eq!(parse("99999999999", 0), Some(MAX_RETRY_AFTER));
        // Too big for u64: still a long wait, capped, not ignored.
        assert_eq!(parse("100000000000000000000", 0), Some(MAX_RETRY_AFTER));
        for junk in ["-5", "+5", "1.5", "5s", "", "  ", "0x10", "١٢"] {
            assert_eq!(parse(junk, 0), None, "{junk:?}");
        }
    }

    #[test]
    fn all_three_date_forms_give_the_same_instant() {
        let before = EXAMPLE - 150;
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse(form, before),
                Some(Duration::from_secs(150)),
                "{form}"
            );
            assert_eq!(http_date(form, before), Some(EXAMPLE as i64), "{form}");
        }
    }

    #[test]
    fn past_and_present_dates_are_no_hint_and_far_ones_are_capped() {
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(parse(date, EXAMPLE), None);
        assert_eq!(parse(date, EXAMPLE + 1), None);
        assert_eq!(parse(date, EXAMPLE - 1), Some(Duration::from_secs(1)));
        assert_eq!(
            parse("Fri, 31 Dec 9999 23:59:59 GMT", 0),
            Some(MAX_RETRY_AFTER)
        );
        // A Unix time too big for i64 can't compare with anything: no hint, no panic.
        assert_eq!(parse(date, u64::MAX), None);
    }

    #[test]
    fn malformed_dates_are_no_hint() {
        for junk in [
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1993 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sunday, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37",
            "Nov  6 08:49:37 1994",
            "tomorrow",
        ] {
            assert_eq!(parse(junk, 0), None, "{junk:?}");
        }
        assert!(parse("Tue, 29 Feb 2028 00:00:00 GMT", 0).is_some());
    }

    #[test]
    fn a_two_digit_year_is_never_more_than_50_years_ahead() {
        let y2026 = 1_780_000_000; // mid-2026
        assert_eq!(two_digit_year(94, y2026), 1994);
        assert_eq!(two_digit_year(26, y2026), 2026);
        assert_eq!(two_digit_year(76, y2026), 2076);
        assert_eq!(two_digit_year(77, y2026), 1977);
        let year = |days: i64| crate::clock::UnixTime(days as u64 * 86_400).civil().0;
        assert_eq!(year(0), 1970);
        assert_eq!(year(days_from_civil(2000, 2, 29)), 2000);
    }
}
