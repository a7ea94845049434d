//! What counts as a change: the [`WanSignature`] of the followed interfaces, lifetimes left
//! out, so that an event which leaves it alone (a lifetime refresh, a re-dump) is no change.

use super::source::{AddressSource, HostPart};
use super::{AddressPolicy, Mac, judge};
use crate::record::Family;
use crate::wan::{Lifetime, Link, NetView};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the followed interfaces look like to the address policy, lifetimes left out: two views
/// with the same signature choose the same addresses, so an event that leaves it alone is no
/// change (a router advertisement refreshing a SLAAC address's lifetimes, a duplicate from a
/// re-dump, a link-local address finishing DAD).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WanSignature {
    /// Per followed interface (None: the `[wan]` one).
    links: BTreeMap<Option<String>, LinkSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct LinkSignature {
    link: Option<(u32, bool)>,
    /// (address, prefix length, counts, valid for ever): the candidates, and the NAT-side
    /// addresses (a new CGNAT address after a redial usually means a new public one).
    addrs: Vec<(IpAddr, u8, bool, bool)>,
    /// (address, MAC, usable) of the neighbours some record is built from: their other state
    /// changes (REACHABLE, STALE, DELAY, PROBE) are no change.
    neighbours: Vec<(IpAddr, Mac, bool)>,
    /// For a member of a failover list: whether it holds an IPv4 and an IPv6 default route
    /// (their coming and going decides which uplink is usable; metrics do not).
    routes: Option<(bool, bool)>,
}

/// The signature of every interface some record follows (`wan`: the configured interface, or
/// None for the default route's; `sources`: the records' sources).
pub fn signature<'a>(
    view: &NetView,
    wan: Option<&str>,
    sources: impl IntoIterator<Item = &'a AddressSource>,
    policy: &AddressPolicy,
) -> WanSignature {
    let mut macs: BTreeMap<Option<&str>, Vec<Mac>> = BTreeMap::new();
    // Members of failover lists: their default routes count too.
    let mut listed: Vec<&str> = Vec::new();
    for source in sources {
        if let AddressSource::Uplinks(u) = source {
            for name in &u.names {
                macs.entry(Some(name)).or_default();
                listed.push(name);
            }
            continue;
        }
        let entry = macs.entry(source.interface()).or_default();
        if let AddressSource::Prefix {
            host: HostPart::Neighbour(mac),
            ..
        } = source
        {
            entry.push(*mac);
        }
    }
    let links = macs
        .into_iter()
        .map(|(name, macs)| {
            let routes = name.is_some_and(|n| listed.contains(&n));
            let link = match name {
                None => view.wan_link(wan),
                Some(n) => view.link_by_name(n),
            };
            (
                name.map(str::to_owned),
                link_signature(view, link, &macs, routes, policy),
            )
        })
        .collect();
    WanSignature { links }
}

fn link_signature(
    view: &NetView,
    link: Option<&Link>,
    macs: &[Mac],
    routes: bool,
    policy: &AddressPolicy,
) -> LinkSignature {
    let Some(link) = link else {
        return LinkSignature::default();
    };
    let mut addrs: Vec<_> = view
        .addrs_on(link.index)
        .filter_map(|a| {
            let counts = match judge(a, policy) {
                Ok(()) => true,
                Err(r) if r.means_nat() => false,
                Err(_) => return None,
            };
            Some((a.addr, a.prefix_len, counts, a.valid == Lifetime::Forever))
        })
        .collect();
    addrs.sort_unstable_by_key(|a| (a.0, a.1));
    let neighbours = view
        .neighbours_on(link.index)
        .filter_map(|n| {
            let mac = n.mac.filter(|m| macs.contains(m))?;
            Some((n.addr, mac, n.state.usable()))
        })
        .collect();
    let routed = |f: Family| {
        let mut all = view.default_routes().iter();
        all.any(|r| r.family == f && r.index == link.index)
    };
    LinkSignature {
        link: Some((link.index, link.up)),
        addrs,
        neighbours,
        routes: routes.then(|| (routed(Family::V4), routed(Family::V6))),
    }
}
