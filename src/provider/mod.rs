//! DynHost providers: how a reply is read (`classify`, pure, one per provider) and what each kind
//! of reply leads to (`verdict`, the one policy table). The HTTP side lives in `client`.
//!
//! OVH DynHost and generic dyndns2 servers speak the same protocol; OVH adds a JSON 400 body and
//! answers bad credentials with a bare 401. Wire facts: `shared/docs/ovh-dynhost.md`.

pub mod client;

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// Which kind of server a host talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Ovh,
    Dyndns2,
}

impl Provider {
    /// OVH's current DynHost endpoint (the legacy `https://www.ovh.com/nic/update` still
    /// answers and can be set with `server`).
    pub const OVH_DEFAULT_SERVER: &'static str = "https://dns.eu.ovhapis.com/nic/update";

    pub fn default_server(self) -> Option<&'static str> {
        match self {
            Provider::Ovh => Some(Self::OVH_DEFAULT_SERVER),
            // A generic dyndns2 server has no universal default: the user names it.
            Provider::Dyndns2 => None,
        }
    }
}

/// Why a request never got a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Timeout,
    Connect,
    Tls,
    Other,
}

/// A server's answer (or the lack of one), read but not yet judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `good <ip>`: the record changed.
    Good(Option<IpAddr>),
    /// `nochg <ip>`: the record already held it.
    NoChg(Option<IpAddr>),
    NoHost,
    BadSys,
    BadAuth,
    /// HTTP 401 (OVH's answer to bad credentials).
    Unauthorized,
    /// HTTP 400 with OVH's JSON `Client::BadRequest` (or any 400); holds the server's message.
    BadRequest(String),
    NotFqdn,
    NumHost,
    Abuse,
    BadAgent,
    NotDonator,
    NotYours,
    DnsErr,
    /// `911`: server-side trouble.
    ServerTrouble,
    /// HTTP 429, or 503 with Retry-After: the server asks us to wait.
    RateLimited(Option<Duration>),
    /// Any other 5xx.
    ServerError(u16),
    /// A status or body we don't know; `first_line` is at most 100 printable characters.
    Unknown { status: u16, first_line: String },
    /// No reply at all.
    Transport { kind: TransportKind, message: String },
}

/// What a reply leads to: the policy table's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The record holds the address we sent. `changed` is false for `nochg`.
    Published { changed: bool },
    /// Don't send for this host again until its configuration changes; `fix` tells the user what
    /// to do.
    Stop { fix: String },
    /// Try again later with back-off; `after` is a wait the server asked for.
    Retry { after: Option<Duration> },
}
