//! HTTP detection of one family's public address: a small state machine beside the records. A
//! round of what's-my-IP questions starts only on a real WAN change, the re-check interval (or
//! its back-off) or "check now": never two at once nor two in [`MIN_SPACING`], whatever asks.
//!
//! Each round has a number, carried in [`super::Action::Detect`] and back in its
//! [`super::Event::Public`]: only the answer to the round out now counts. A family that leaves
//! NAT mid-round and comes back starts a new round, and the old one's answer, about a WAN that
//! has since changed, must not land on it.

use super::Rules;
use crate::clock::{Now, later};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tracing::warn;

/// Least time between the starts of two rounds.
pub const MIN_SPACING: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct Detection {
    /// The address the sources agreed on last.
    pub public: Option<IpAddr>,
    /// The round out now, by number.
    asking: Option<u64>,
    /// Something asked for a round (start, a WAN change, check-now) that has not started yet.
    wanted: bool,
    last_start: Option<Instant>,
    /// When the interval (or the back-off after a failed round) asks again.
    next_check: Option<Instant>,
    failures: u32,
}

impl Detection {
    /// A family that just came to depend on detection: ask at once.
    pub fn at_once() -> Detection {
        Detection {
            wanted: true,
            ..Detection::default()
        }
    }

    /// A real WAN change or "check now": the last answer may be stale.
    pub fn want(&mut self) {
        self.wanted = true;
    }

    /// Whether a round starts now; if so it is round number `round`.
    pub fn start(&mut self, now: Now, round: u64) -> bool {
        let due = self.wanted || self.next_check.is_some_and(|t| t <= now.mono);
        let spaced = |t: Instant| later(t, MIN_SPACING) <= now.mono;
        if self.asking.is_some() || !due || !self.last_start.is_none_or(spaced) {
            return false;
        }
        self.asking = Some(round);
        self.wanted = false;
        self.next_check = None;
        self.last_start = Some(now.mono);
        true
    }

    /// Round `round` finished; `ip` None when no two sources agreed. Returns false, changing
    /// nothing, when it is not the round out now (a stale answer).
    pub fn answer(
        &mut self,
        round: u64,
        ip: Option<IpAddr>,
        rules: &Rules,
        now: Now,
        unit: f64,
    ) -> bool {
        if self.asking != Some(round) {
            return false;
        }
        self.asking = None;
        let wait = match ip {
            Some(ip) => {
                self.public = Some(ip);
                self.failures = 0;
                rules.detect.interval
            }
            None => {
                self.failures = self.failures.saturating_add(1);
                let delay = rules.backoff.delay(self.failures, unit);
                warn!(
                    "no public address from the what's-my-IP sources; asking again in {}s",
                    delay.as_secs()
                );
                delay
            }
        };
        self.next_check = Some(now.after(wait));
        true
    }

    /// When this machine needs a wake-up.
    pub fn deadline(&self) -> Option<Instant> {
        let spaced = self.last_start.map(|t| later(t, MIN_SPACING));
        match (self.asking.is_some(), self.wanted) {
            (true, _) => None,
            (false, true) => spaced,
            // Not before the spacing lets a round start: a deadline that passed unused is lost.
            (false, false) => self.next_check.map(|t| spaced.map_or(t, |s| t.max(s))),
        }
    }
}
