//! Time as an input: every event the decision core handles carries [`Now`], the same moment on
//! the monotonic clock (for every deadline) and on the wall clock (only for facts that must
//! survive a restart). [`UnixTime`] is also how `status` and the logs show a wall-clock time.
//!
//! Routers without a real-time clock restore a saved time at boot and step it when NTP answers,
//! so the wall clock may be behind, ahead, or jump. A saved wall-clock time is therefore never
//! trusted as it is: a time in the future counts as now, and every deadline rebuilt from one is
//! capped by its own rule (the caller passes the cap). No `Instant + Duration` here can overflow.

// The same rule as the decision core: nothing here may panic on a hostile saved time.
#![deny(clippy::arithmetic_side_effects, clippy::unchecked_time_subtraction)]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall clock, read here and nowhere else: nanoseconds since the Unix epoch (0 for a clock
/// set before it).
pub fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Seconds since the Unix epoch, read from the wall clock.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    pub fn system() -> UnixTime {
        UnixTime((wall_nanos() / 1_000_000_000) as u64)
    }

    pub fn saturating_add(self, d: Duration) -> UnixTime {
        UnixTime(self.0.saturating_add(d.as_secs()))
    }
}

impl UnixTime {
    /// The proleptic Gregorian date, (year, month 1-12, day 1-31), and the second of that day:
    /// Howard Hinnant's `civil_from_days`, so no calendar crate is needed.
    // Every intermediate is bounded by the day count (at most u64::MAX / 86400, far inside i64),
    // and the two that scale it saturate.
    #[allow(clippy::arithmetic_side_effects)]
    pub fn civil(self) -> (i64, u32, u32, u64) {
        let days = i64::try_from(self.0 / 86_400).unwrap_or(i64::MAX / 2);
        let z = days.saturating_add(719_468);
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        let year = yoe
            .saturating_add(era.saturating_mul(400))
            .saturating_add(i64::from(month <= 2));
        (year, month, day, self.0 % 86_400)
    }
}

/// `1970-01-01 00:00:00 UTC`, for log lines and `status`.
impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day, secs) = self.civil();
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

/// One moment on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: UnixTime,
}

/// Far enough to mean "not in this process's life", near enough never to overflow.
const FAR: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `d` after `t`, saturating instead of overflowing.
pub fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d.min(FAR))
        .or_else(|| t.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(t)
}

impl Now {
    pub fn system() -> Now {
        Now {
            mono: Instant::now(),
            wall: UnixTime::system(),
        }
    }

    /// `d` from now on the monotonic clock.
    pub fn after(&self, d: Duration) -> Instant {
        later(self.mono, d)
    }

    /// How long ago the saved wall-clock time `at` was; a time in the future counts as now.
    pub fn since(&self, at: UnixTime) -> Duration {
        Duration::from_secs(self.wall.0.saturating_sub(at.0))
    }

    /// The monotonic instant of the saved moment `at`, for rules measured from it; None when it
    /// is further back than the monotonic clock reaches (then it is simply long ago).
    pub fn instant_of(&self, at: UnixTime) -> Option<Instant> {
        self.mono.checked_sub(self.since(at))
    }

    /// A saved deadline turned into a timer: None if it has passed, and never further than `cap`
    /// from now (a clock that was ahead when it was saved must not park a record for years).
    pub fn deadline_of(&self, at: UnixTime, cap: Duration) -> Option<Instant> {
        let left = at.0.checked_sub(self.wall.0).filter(|s| *s > 0)?;
        Some(self.after(Duration::from_secs(left).min(cap)))
    }

    /// The wall-clock time of the monotonic deadline `t`, to save it (rounded up, so a saved
    /// deadline never comes early).
    pub fn wall_of(&self, t: Instant) -> UnixTime {
        let left = t.saturating_duration_since(self.mono);
        let secs = left
            .as_secs()
            .saturating_add(u64::from(left.subsec_nanos() > 0));
        UnixTime(self.wall.0.saturating_add(secs.max(1)))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn now() -> Now {
        Now {
            mono: Instant::now(),
            wall: UnixTime(1_700_000_000),
        }
    }

    #[test]
    fn saved_times_in_the_future_count_as_now_and_deadlines_are_capped() {
        let n = now();
        assert_eq!(n.since(UnixTime(1_700_003_600)), Duration::ZERO);
        assert_eq!(n.instant_of(UnixTime(1_700_003_600)), Some(n.mono));
        assert_eq!(n.since(UnixTime(1_699_999_990)), Duration::from_secs(10));
        let cap = Duration::from_secs(60);
        assert_eq!(n.deadline_of(UnixTime(u64::MAX), cap), Some(n.after(cap)));
        assert_eq!(
            n.deadline_of(UnixTime(1_700_000_030), cap),
            Some(n.after(Duration::from_secs(30)))
        );
        assert_eq!(n.deadline_of(UnixTime(1_700_000_000), cap), None);
        assert_eq!(n.deadline_of(UnixTime(0), cap), None);
        assert!(n.instant_of(UnixTime(0)).is_some_and(|t| t <= n.mono));
    }

    #[test]
    fn nothing_overflows() {
        let n = now();
        let _ = n.after(Duration::MAX);
        let _ = later(n.mono, Duration::from_secs(u64::MAX));
        assert_eq!(
            Now {
                wall: UnixTime(u64::MAX),
                ..n
            }
            .wall_of(n.after(Duration::MAX)),
            UnixTime(u64::MAX)
        );
        assert_eq!(
            n.wall_of(n.after(Duration::from_millis(1500))),
            UnixTime(1_700_000_002)
        );
    }

    #[test]
    fn formats_utc() {
        assert_eq!(UnixTime(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            UnixTime(1_700_000_000).to_string(),
            "2023-11-14 22:13:20 UTC"
        );
        assert_eq!(UnixTime(951_782_400).to_string(), "2000-02-29 00:00:00 UTC");
        let _ = UnixTime(u64::MAX).to_string();
    }
}
