//! dynhostd keeps OVH DynHost (and dyndns2) records pointing at a Linux gateway's public address,
//! driven by kernel address events rather than polling.
//!
//! # Layout
//! The modules follow the data path:
//! - [`wan`]: the kernel side. [`wan::netlink`] is the only module that sees netlink types and
//!   turns messages into [`wan::NetEvent`]s; [`wan::NetView`] folds them into the current picture;
//!   [`wan::policy`] decides which address counts.
//! - [`public_ip`]: HTTP detection of the public address when the WAN sits behind NAT.
//! - [`dns`]: asks a record's authoritative name servers what is really published.
//! - [`decide`]: the pure decision core (debounce, "update only when changed", back-off, stops).
//!   Time is passed in; it returns actions.
//! - [`provider`]: the DynHost/dyndns2 reply classifier, the one policy table, and the HTTPS
//!   client.
//! - [`http`]: the one HTTP client builder, and the TLS roots read once, only for `https`.
//! - [`agent`]: the async shell that feeds the decider and performs its actions.
//! - [`clock`]: time as an input ([`clock::Now`]: both clocks at once) and saved times trusted
//!   only within their rules.
//! - [`config`] (raw, then validated), [`duration`] (its durations, also for the core's logs),
//!   [`state`] (written atomically), [`record`], [`secret`].
//! - [`lock`] (one writer per state dir) and [`control`] (the agent's socket: `status`,
//!   `retry`, `update` from other processes, and their client side).
//! - [`import`]: `dynhostd import`, another DDNS client's config read into dynhostd's.
//! - [`ovh`]: `dynhostd ovh`, the DynHost panel steps over the OVH API (not used by `run`).
//! - [`notify`]: `[[notify]]` targets told of updates, failures, stops and recoveries, and
//!   `[health]` pings; a task of its own that the update path never waits for.
//! - [`report`]: what `status` and `detect` print; [`systemd`] (sd_notify), [`hook`] (`exec`
//!   scripts) and [`logging`] (journald-friendly output) at the edges.

pub mod agent;
pub mod clock;
pub mod config;
pub mod control;
pub mod decide;
pub mod dns;
pub mod duration;
pub mod fsread;
pub mod hook;
pub mod http;
#[cfg(feature = "import")]
pub mod import;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod ovh;
pub mod provider;
pub mod public_ip;
pub mod record;
pub mod report;
pub mod secret;
pub mod state;
pub mod systemd;
pub mod wan;
