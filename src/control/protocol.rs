//! The wire protocol: one JSON [`Envelope`] (a [`Request`] and the client's state dir) on one
//! line, one JSON [`Response`] on one line, saying which agent ([`Served`]) answered.

use crate::decide::status::LiveStatus;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// One request, as sent on the socket: the command, and the state dir of the client's config,
/// so that an agent serving another one refuses it before doing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub state_dir: PathBuf,
    pub request: Request,
}

/// One command. Commands without fields are written `Status {}` so that unknown fields are
/// refused for them too (serde ignores extra fields of a tagged unit variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    Status {},
    /// Lift the stops (and back-off) of these hosts; all with none.
    Retry {
        #[serde(default)]
        hosts: Vec<String>,
    },
    /// SIGUSR1's twin.
    CheckNow {},
    /// Addresses from pppd's ip-up (`update --ip`); none: decide now with what the WAN shows.
    Update {
        #[serde(default)]
        ips: Vec<IpAddr>,
    },
    /// SIGHUP's twin: read the configuration again (`ovh rotate` after a new password).
    Reload {},
}

/// The running agent's live status, as `status` gets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    pub pid: u32,
    pub state_dir: PathBuf,
    /// Unix seconds at the snapshot: a wake-up's end is `now + in_ms`.
    pub now: u64,
    pub live: LiveStatus,
    /// `status --json`'s rows: the same fields as from the state file (from the agent's memory,
    /// every configured host), plus `source`, `pid` and the live ones (`phase`, `wan`,
    /// `in_flight`, `next` with its end `at` in Unix seconds).
    pub rows: Vec<serde_json::Value>,
}

/// Which agent answered: every reply says it, and the client checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Served {
    pub pid: u32,
    pub state_dir: PathBuf,
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    pub agent: Served,
    /// False: the request was refused, or (update, retry) some record is not current nor on
    /// its way.
    pub ok: bool,
    /// What happened, one line per record or fact, for a person.
    #[serde(default)]
    pub lines: Vec<String>,
    /// Set on a refusal: the request was not carried out (the lines say why).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
}

impl Response {
    pub(super) fn refused(agent: &Served, why: impl Into<String>) -> Response {
        Response {
            agent: agent.clone(),
            ok: false,
            lines: vec![why.into()],
            refused: true,
            status: None,
        }
    }

    pub(super) fn done(agent: &Served, ok: bool, lines: Vec<String>) -> Response {
        Response {
            agent: agent.clone(),
            ok,
            lines,
            refused: false,
            status: None,
        }
    }
}
