//! What a DynHost record is, in the user's words: a hostname and an address family
//! (an A record for IPv4, an AAAA record for IPv6). Shared by the decider, the state file and
//! the providers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// An address family, which is also the DNS record type it is published as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[serde(rename = "ipv4")]
    V4,
    #[serde(rename = "ipv6")]
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The DNS record type this family is published as.
    pub fn record_type(self) -> &'static str {
        match self {
            Family::V4 => "A",
            Family::V6 => "AAAA",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One DynHost record: `home.example.com` + `A`. Dual stack means two records (OVH keeps an A
/// and an AAAA DynHost record for the same name, each updated by its own request).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    pub hostname: String,
    pub family: Family,
}

impl RecordKey {
    pub fn new(hostname: impl Into<String>, family: Family) -> Self {
        RecordKey {
            hostname: hostname.into(),
            family,
        }
    }

    /// Parses the `home.example.com/A` form used as the key in the state file.
    pub fn parse(s: &str) -> Option<RecordKey> {
        let (host, rtype) = s.rsplit_once('/')?;
        let family = match rtype {
            "A" => Family::V4,
            "AAAA" => Family::V6,
            _ => return None,
        };
        if host.is_empty() {
            return None;
        }
        Some(RecordKey::new(host, family))
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.hostname, self.family.record_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_key_round_trips_through_its_text_form() {
        for key in [
            RecordKey::new("home.example.com", Family::V4),
            RecordKey::new("example.com", Family::V6),
        ] {
            assert_eq!(RecordKey::parse(&key.to_string()), Some(key));
        }
        assert_eq!(RecordKey::parse("home.example.com/MX"), None);
        assert_eq!(RecordKey::parse("/A"), None);
        assert_eq!(RecordKey::parse("noslash"), None);
    }
}
