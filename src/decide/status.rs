//! What `dynhostd status` shows of the running agent: each record's phase, the request in
//! flight, its next wake-up and why. The decider fills these in ([`super::control`]); the control
//! socket carries them as JSON and renders them (`crate::control`), so they live here, in the
//! core, and the socket imports them.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Where a record is in its life, as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Published and current, or nothing to publish.
    Idle,
    /// A change waits for `min_interval` to pass since the last success.
    Held,
    /// Being checked at its authoritative name servers (or waiting for that first check).
    Verifying,
    /// A request is out.
    Pushing,
    /// Waiting after server trouble.
    BackingOff,
    /// Stopped after a reply only a person can fix; `dynhostd retry` lifts it.
    Stopped,
}

/// Why the agent will next wake up for a record (or at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeReason {
    /// The WAN changed; the quiet period before deciding.
    Debounce,
    /// A change held back by `min_interval`.
    MinInterval,
    /// The back-off after server trouble.
    Backoff,
    /// The wait the server asked for (`Retry-After`).
    RetryAfter,
    /// The next check at the authoritative name servers.
    Verify,
    /// The re-send of an unchanged address (`refresh`).
    Refresh,
    /// The next ask of the what's-my-IP sources (behind NAT).
    Detect,
    /// A higher-priority uplink of a failover list will have been usable for `failback`.
    Failback,
}

/// A wake-up: why, and in how long from the snapshot's moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub reason: WakeReason,
    pub in_ms: u64,
}

/// Why a record is stopped and what the person must fix first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopInfo {
    pub reason: String,
    pub fix: String,
}

/// One record as the running agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub hostname: String,
    /// `A` or `AAAA`.
    pub record: String,
    pub phase: Phase,
    /// What the provider last confirmed.
    pub published: Option<IpAddr>,
    /// What the WAN offers for this family now (None: nothing that counts).
    pub wan: Option<IpAddr>,
    /// The address of the request out now.
    pub in_flight: Option<IpAddr>,
    pub failures: u32,
    pub last_reply: Option<String>,
    /// When this record is next looked at, and why: its own deadlines, the debounce (every
    /// record) and the what's-my-IP re-check (its family, behind NAT). None while a request is
    /// out or it is stopped.
    pub next: Option<Wake>,
    pub stopped: Option<StopInfo>,
    /// For a record that follows a failover list: its interfaces, the one it follows now
    /// (None: none is usable), and how long ago that one took over (or the last was lost).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_since_ms_ago: Option<u64>,
}

/// Everything `status` shows of the running agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStatus {
    pub records: Vec<LiveRecord>,
    /// The agent's next wake-up of all, with its reason; None: it sleeps until an event.
    pub next_wake: Option<Wake>,
}
