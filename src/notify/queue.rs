//! The delivery queue of one notification target: what is still to be sent, in order, and when
//! to try again. Pure, like the decision core: time comes in as an argument, the jitter too, so
//! the hour-long give-up and the coalescing are unit tests.
//!
//! One request at a time per target, oldest first, so a receiver sees a record's events in the
//! order they happened. While the receiver (or the network) is down the head waits with a
//! growing, jittered back-off; messages older than [`GIVE_UP`] are dropped with one WARN line.
//! At most [`MAX_PENDING`] wait: past that, an older message of the same record makes room
//! (its news is superseded), else the oldest of all.

use super::target::{EventKind, Request};
use crate::decide::Backoff;
use crate::record::RecordKey;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages waiting per target.
pub const MAX_PENDING: usize = 100;
/// How long a message is retried before it is given up.
pub const GIVE_UP: Duration = Duration::from_secs(3600);
/// Retry timing while a receiver is unreachable: soon at first (the network was just coming
/// up, ddns-go #1338), then every few minutes.
pub const RETRY: Backoff = Backoff {
    initial: Duration::from_secs(2),
    max: Duration::from_secs(300),
};

/// One message waiting to be sent.
#[derive(Debug, Clone)]
pub struct Pending {
    pub record: RecordKey,
    pub event: EventKind,
    pub request: Request,
    /// When it was queued; it is given up [`GIVE_UP`] later.
    pub since: Instant,
}

/// What a finished attempt led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; `dropped` messages were lost to the cap since the last delivery.
    Delivered { dropped: u64 },
    /// Failed; the next try is at this moment.
    Retry { at: Instant, attempt: u32 },
    /// Failed, and this many messages had waited [`GIVE_UP`]: dropped.
    GaveUp { count: usize, next: Option<Instant> },
}

#[derive(Debug, Default)]
pub struct Queue {
    items: VecDeque<Pending>,
    /// The head is out.
    sending: bool,
    failures: u32,
    retry_at: Option<Instant>,
    /// Lost to the cap since the last delivery.
    dropped: u64,
}

impl Queue {
    /// Queues `p`; true when another message had to make room (the first time since the last
    /// delivery: the caller logs that once).
    pub fn push(&mut self, p: Pending) -> bool {
        let mut first_drop = false;
        if self.items.len() >= MAX_PENDING {
            // The head may be out: never take it from under the sender.
            let from = usize::from(self.sending);
            let same = (from..self.items.len()).find(|i| self.items[*i].record == p.record);
            let victim = same.unwrap_or(from);
            if victim < self.items.len() {
                self.items.remove(victim);
                first_drop = self.dropped == 0;
                self.dropped = self.dropped.saturating_add(1);
            }
        }
        self.items.push_back(p);
        first_drop
    }

    /// The request to send now, if one is due; it is then out until [`Self::finished`].
    pub fn due(&mut self, now: Instant) -> Option<&Pending> {
        if self.sending || self.retry_at.is_some_and(|at| at > now) {
            return None;
        }
        let head = self.items.front()?;
        self.sending = true;
        Some(head)
    }

    /// The head's attempt ended (`ok`: the receiver took it). `unit` in [0, 1) is the jitter.
    pub fn finished(&mut self, ok: bool, now: Instant, unit: f64) -> Outcome {
        self.sending = false;
        if ok {
            self.items.pop_front();
            self.failures = 0;
            self.retry_at = None;
            return Outcome::Delivered {
                dropped: std::mem::take(&mut self.dropped),
            };
        }
        self.failures = self.failures.saturating_add(1);
        let at = crate::clock::later(now, RETRY.delay(self.failures, unit));
        let before = self.items.len();
        self.items
            .retain(|p| now.saturating_duration_since(p.since) < GIVE_UP);
        let count = before - self.items.len();
        self.retry_at = (!self.items.is_empty()).then_some(at);
        if self.items.is_empty() {
            self.failures = 0;
        }
        if count > 0 {
            return Outcome::GaveUp {
                count,
                next: self.retry_at,
            };
        }
        Outcome::Retry {
            at,
            attempt: self.failures,
        }
    }

    /// When this queue next needs the task: None while a request is out or nothing waits.
    pub fn wake(&self) -> Option<Instant> {
        if self.sending || self.items.is_empty() {
            return None;
        }
        // No back-off: due since it was queued, that is now.
        self.retry_at.or(Some(self.items[0].since))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn sending(&self) -> bool {
        self.sending
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Family;

    fn pending(host: &str, event: EventKind, since: Instant) -> Pending {
        Pending {
            record: RecordKey::new(host, Family::V4),
            event,
            request: Request {
                method: "POST",
                url: "http://127.0.0.1/".parse().unwrap(),
                headers: Vec::new(),
                body: host.as_bytes().to_vec(),
            },
            since,
        }
    }

    #[test]
    fn one_request_at_a_time_in_order_and_the_head_is_kept_until_delivered() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.push(pending("a", EventKind::Updated, t0));
        q.push(pending("b", EventKind::Stopped, t0));
        assert_eq!(q.due(t0).unwrap().record.hostname, "a");
        assert!(q.due(t0).is_none(), "one out at a time");
        assert_eq!(q.wake(), None, "nothing to wake for while one is out");
        let out = q.finished(false, t0, 0.5);
        let Outcome::Retry { at, attempt: 1 } = out else {
            panic!("{out:?}")
        };
        assert_eq!(at, t0 + Duration::from_secs(2));
        assert!(q.due(t0 + Duration::from_secs(1)).is_none(), "backing off");
        assert_eq!(q.wake(), Some(at));
        // A second failure waits longer (jittered, ±20 %).
        assert_eq!(q.due(at).unwrap().record.hostname, "a");
        let Outcome::Retry {
            at: at2,
            attempt: 2,
        } = q.finished(false, at, 0.0)
        else {
            panic!()
        };
        assert_eq!(at2 - at, Duration::from_secs(4).mul_f64(0.8));
        assert_eq!(q.due(at2).unwrap().record.hostname, "a");
        assert_eq!(
            q.finished(true, at2, 0.0),
            Outcome::Delivered { dropped: 0 }
        );
        assert_eq!(
            q.due(at2).unwrap().record.hostname,
            "b",
            "then the next, at once"
        );
        assert_eq!(
            q.finished(true, at2, 0.0),
            Outcome::Delivered { dropped: 0 }
        );
        assert!(q.is_empty() && q.wake().is_none() && q.failures() == 0);
    }

    #[test]
    fn a_receiver_down_for_an_hour_makes_the_queue_give_up_once_for_all_that_waited() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.push(pending("a", EventKind::Updated, t0));
        q.push(pending(
            "b",
            EventKind::Stopped,
            t0 + Duration::from_secs(600),
        ));
        let mut now = t0;
        let mut gave_up = Vec::new();
        while !q.is_empty() && now < t0 + Duration::from_secs(3 * 3600) {
            if q.due(now).is_some() {
                match q.finished(false, now, 0.99) {
                    Outcome::GaveUp { count, .. } => gave_up.push((count, now - t0)),
                    Outcome::Retry { at, .. } => assert!(at - now <= RETRY.max.mul_f64(1.2)),
                    Outcome::Delivered { .. } => unreachable!(),
                }
            }
            now = q.wake().unwrap_or(now);
        }
        assert!(q.is_empty());
        assert_eq!(gave_up.len(), 2, "{gave_up:?}");
        assert!(gave_up.iter().all(|(n, _)| *n == 1));
        // Never before its hour, and not much after (one back-off at most).
        assert!(gave_up[0].1 >= GIVE_UP && gave_up[0].1 <= GIVE_UP + RETRY.max.mul_f64(1.2));
        assert!(gave_up[1].1 >= GIVE_UP + Duration::from_secs(600));
    }

    #[test]
    fn a_full_queue_drops_an_older_message_of_the_same_record_else_the_oldest() {
        let t0 = Instant::now();
        let mut q = Queue::default();
        q.push(pending("head", EventKind::Updated, t0));
        assert!(q.due(t0).is_some(), "the head is out");
        for i in 1..MAX_PENDING {
            q.push(pending(&format!("h{i}"), EventKind::Error, t0));
        }
        assert_eq!(q.len(), MAX_PENDING);
        // h50 has an older message: that one makes room, and it is the first drop.
        assert!(q.push(pending("h50", EventKind::Recovered, t0)));
        assert_eq!(q.len(), MAX_PENDING);
        assert_eq!(
            q.items
                .iter()
                .filter(|p| p.record.hostname == "h50")
                .count(),
            1
        );
        assert_eq!(q.items.back().unwrap().event, EventKind::Recovered);
        // A record with nothing queued: the oldest waiting one goes, never the one out.
        assert!(
            !q.push(pending("new", EventKind::Updated, t0)),
            "logged once"
        );
        assert_eq!(q.items[0].record.hostname, "head");
        assert_eq!(q.items[1].record.hostname, "h2");
        assert_eq!(q.finished(true, t0, 0.0), Outcome::Delivered { dropped: 2 });
    }
}
