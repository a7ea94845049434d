//! Multi-WAN failover (`interface = ["pppoe-wan", "wwan0"]`): which interfaces of an ordered
//! list are usable now, judged from the netlink view alone. Which one a record follows over
//! time (failing over at once, failing back only after `failback`) is the decider's job
//! (`decide/failover.rs`); this file only says what "usable" means.

use super::{AddressPolicy, WanChoice, choose};
use crate::record::Family;
use crate::wan::NetView;
use std::fmt;
use std::time::Duration;

/// An ordered list of uplinks: the record follows the first one usable now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uplinks {
    /// Interface names, highest priority first (at least two; one name is a plain interface).
    pub names: Vec<String>,
    /// How long a higher-priority interface must have been usable, without a break, before the
    /// record comes back to it (`failback`).
    pub failback: Duration,
    /// `[wan] failover_requires_route`: an interface without a default route of the family is
    /// not usable (mwan3 and similar tools take a dead uplink's default route away).
    pub requires_route: bool,
}

impl Uplinks {
    /// Whether `name` is usable for `family` now: present, up, holding an address of the family
    /// that counts (or, with `nat_ok`, only a NAT-side one: HTTP detection then runs over it),
    /// and with `requires_route` a default route of the family through it.
    pub fn usable(
        &self,
        view: &NetView,
        name: &str,
        family: Family,
        policy: &AddressPolicy,
        nat_ok: bool,
    ) -> bool {
        let Some(link) = view.link_by_name(name).filter(|l| l.up) else {
            return false;
        };
        let routed = !self.requires_route
            || view
                .default_routes()
                .iter()
                .any(|r| r.family == family && r.index == link.index);
        routed
            && match choose(view.addrs_on(link.index), family, policy, None) {
                WanChoice::Public(_) => true,
                WanChoice::BehindNat => nat_ok,
                WanChoice::Nothing => false,
            }
    }

    /// The first interface usable now, with no history (`dynhostd detect`, `update`): what a
    /// freshly started agent would follow.
    pub fn first_usable(
        &self,
        view: &NetView,
        family: Family,
        policy: &AddressPolicy,
        nat_ok: bool,
    ) -> Option<&str> {
        let usable = |n: &&String| self.usable(view, n, family, policy, nat_ok);
        self.names.iter().find(usable).map(String::as_str)
    }
}

impl fmt::Display for Uplinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the first usable of {}", self.names.join(", "))
    }
}
