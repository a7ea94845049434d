//! Which uplink of a failover list a record follows (`interface = ["pppoe-wan", "wwan0"]`),
//! as a function of what was usable when, and `now`. Failing over to a lower-priority uplink
//! happens at the next decision (after the debounce, like any change); failing back to a
//! higher-priority one waits until it has been usable for `failback` without a break, so that a
//! flapping primary does not bounce the record. The wait is a deadline the decider wakes for;
//! nothing is pending (no timer) when the active uplink is the best usable one.

use crate::clock::later;
use std::time::{Duration, Instant};

/// One list's history, for one family: what is usable since when, and which one is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Per interface of the list (same order): since when it has been usable without a break;
    /// None while it is not.
    usable_since: Vec<Option<Instant>>,
    /// The interface followed now (its position in the list; None: none is usable).
    active: Option<usize>,
    /// Since when `active` holds; None before the first decision.
    since: Option<Instant>,
}

/// What a decision did to the active interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    Stay,
    /// From (None: nothing was usable, or the start) to (None: nothing is usable now).
    To(Option<usize>, Option<usize>),
}

impl Failover {
    pub fn new(len: usize) -> Failover {
        Failover {
            usable_since: vec![None; len],
            active: None,
            since: None,
        }
    }

    /// Folds in which interfaces are usable after an event at `now`: one that stops being
    /// usable loses its history (a flapping primary starts its failback wait again).
    pub fn observe(&mut self, usable: impl IntoIterator<Item = bool>, now: Instant) {
        for (since, ok) in self.usable_since.iter_mut().zip(usable) {
            *since = match (*since, ok) {
                (_, false) => None,
                (None, true) => Some(now),
                (kept, true) => kept,
            };
        }
    }

    /// Decides at `now`: keep the active interface while it is usable, unless a higher one
    /// has been usable for `failback`; otherwise the first usable one, at once.
    pub fn decide(&mut self, failback: Duration, now: Instant) -> Switch {
        let usable = |i: usize| self.usable_since.get(i).is_some_and(Option::is_some);
        let settled = |i: &usize| {
            let since = self.usable_since.get(*i).copied().flatten();
            since.is_some_and(|t| later(t, failback) <= now)
        };
        let before = self.active;
        let next = match before {
            Some(a) if usable(a) => (0..a).find(settled).unwrap_or(a),
            _ => (0..self.usable_since.len())
                .find(|i| usable(*i))
                .unwrap_or(usize::MAX),
        };
        let next = (next != usize::MAX).then_some(next);
        if next == before && self.since.is_some() {
            return Switch::Stay;
        }
        (self.active, self.since) = (next, Some(now));
        Switch::To(before, next)
    }

    /// The interface followed now (its position; None: none is usable), and since when (None
    /// before the first decision).
    pub fn active(&self) -> (Option<usize>, Option<Instant>) {
        (self.active, self.since)
    }

    /// When a higher-priority interface that is usable now will have been so for `failback`:
    /// the moment to decide again. None when nothing waits.
    pub fn deadline(&self, failback: Duration) -> Option<Instant> {
        let a = self.active?;
        let waiting = self.usable_since.get(..a)?.iter().flatten();
        waiting.map(|t| later(*t, failback)).min()
    }
}

#[cfg(test)]
mod tests;
