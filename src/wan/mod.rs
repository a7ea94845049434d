//! The WAN side: what the kernel tells us about links, addresses and default routes, in our own
//! types. `netlink` is the only module that sees netlink types; it converts every message into a
//! [`NetEvent`] at the border. [`NetView`] folds those events into the current picture (pure, so
//! duplicated or re-ordered dump/multicast messages are harmless), and `policy` decides which
//! address counts.

pub mod netlink;
pub mod policy;

use crate::record::Family;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// IFF_POINTOPOINT (ppp, tun): the address to publish is IFA_LOCAL, never the peer.
    pub point_to_point: bool,
}

/// A remaining address lifetime (IFA_CACHEINFO), as reported when the message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Lifetime {
    Secs(u32),
    /// 0xFFFFFFFF in IFA_CACHEINFO: static or infinite.
    Forever,
}

impl Lifetime {
    pub const fn from_kernel(v: u32) -> Lifetime {
        if v == u32::MAX {
            Lifetime::Forever
        } else {
            Lifetime::Secs(v)
        }
    }
}

/// The flags that matter for deciding whether an address may be published (IFA_FLAGS, 32-bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AddrFlags {
    /// IPv4 IFA_F_SECONDARY.
    pub secondary: bool,
    /// IPv6 IFA_F_TEMPORARY (RFC 8981 privacy address); the same bit as `secondary` on IPv4.
    pub temporary: bool,
    pub tentative: bool,
    pub deprecated: bool,
    pub dadfailed: bool,
    pub optimistic: bool,
    pub permanent: bool,
}

/// RT_SCOPE_* of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Scope {
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
    Other(u8),
}

/// An address on an interface: the candidate the policy judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WanAddress {
    /// ifindex of the interface holding it.
    pub index: u32,
    /// The address that is ours: IFA_LOCAL when present (point-to-point), else IFA_ADDRESS.
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// The far end on a point-to-point link (IFA_ADDRESS when it differs from IFA_LOCAL).
    pub peer: Option<IpAddr>,
    pub scope: Scope,
    pub flags: AddrFlags,
    pub preferred: Lifetime,
    pub valid: Lifetime,
}

impl WanAddress {
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    fn key(&self) -> (u32, IpAddr, u8) {
        (self.index, self.addr, self.prefix_len)
    }
}

/// A link-layer (MAC) address, written `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Mac(pub [u8; 6]);

/// A neighbour cache entry's state (NUD_*), as far as publishing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeighbourState {
    Incomplete,
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Noarp,
    Permanent,
    Other,
}

impl NeighbourState {
    /// Whether the entry says the machine uses that address: a resolved entry, whether or not
    /// it was confirmed lately (STALE is the normal state of an idle neighbour).
    pub fn usable(self) -> bool {
        !matches!(
            self,
            NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::Other
        )
    }
}

/// An IPv6 neighbour: an address a machine on that link uses, and its MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Neighbour {
    pub index: u32,
    pub addr: IpAddr,
    /// None while unresolved (INCOMPLETE, FAILED).
    pub mac: Option<Mac>,
    pub state: NeighbourState,
}

/// A default route (destination prefix length 0, main table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefaultRoute {
    pub family: Family,
    /// Output interface (RTA_OIF); routes without one (multipath, blackhole) are not reported.
    pub index: u32,
    /// RTA_PRIORITY; lower wins.
    pub metric: u32,
}

/// Everything the watcher learnt from a full dump.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetSnapshot {
    pub links: Vec<Link>,
    pub addrs: Vec<WanAddress>,
    pub routes: Vec<DefaultRoute>,
    /// IPv6 neighbours (dumped always; notified only to a watcher that asked for them).
    pub neighbours: Vec<Neighbour>,
}

/// One thing the kernel told us, in our own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A full dump: replaces everything known (at start, and after a socket overrun).
    Snapshot(NetSnapshot),
    NewLink(Link),
    DelLink {
        index: u32,
    },
    NewAddr(WanAddress),
    DelAddr(WanAddress),
    NewRoute(DefaultRoute),
    DelRoute(DefaultRoute),
    NewNeighbour(Neighbour),
    DelNeighbour(Neighbour),
}

/// The current picture of the machine's links, addresses and default routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetView {
    links: BTreeMap<u32, Link>,
    addrs: BTreeMap<(u32, IpAddr, u8), WanAddress>,
    routes: Vec<DefaultRoute>,
    neighbours: BTreeMap<(u32, IpAddr), Neighbour>,
}

impl NetView {
    pub fn from_snapshot(snap: NetSnapshot) -> NetView {
        let mut view = NetView::default();
        view.apply(NetEvent::Snapshot(snap));
        view
    }

    /// Folds one event in. Idempotent: applying the same event twice leaves the same view.
    pub fn apply(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Snapshot(snap) => {
                self.links = snap.links.into_iter().map(|l| (l.index, l)).collect();
                self.addrs = snap.addrs.into_iter().map(|a| (a.key(), a)).collect();
                self.routes = Vec::new();
                for r in snap.routes {
                    self.add_route(r);
                }
                self.neighbours = snap
                    .neighbours
                    .into_iter()
                    .map(|n| ((n.index, n.addr), n))
                    .collect();
            }
            NetEvent::NewLink(link) => {
                // A name can only be held by one ifindex at a time; a recreated ppp0 gets a new
                // index, so drop any stale holder of the name.
                self.links
                    .retain(|_, l| l.name != link.name || l.index == link.index);
                self.links.insert(link.index, link);
            }
            NetEvent::DelLink { index } => {
                self.links.remove(&index);
                self.addrs.retain(|_, a| a.index != index);
                self.routes.retain(|r| r.index != index);
                self.neighbours.retain(|_, n| n.index != index);
            }
            NetEvent::NewAddr(addr) => {
                self.addrs.insert(addr.key(), addr);
            }
            NetEvent::DelAddr(addr) => {
                self.addrs.remove(&addr.key());
            }
            NetEvent::NewRoute(route) => self.add_route(route),
            NetEvent::DelRoute(route) => self.routes.retain(|r| *r != route),
            NetEvent::NewNeighbour(n) => {
                self.neighbours.insert((n.index, n.addr), n);
            }
            NetEvent::DelNeighbour(n) => {
                self.neighbours.remove(&(n.index, n.addr));
            }
        }
    }

    fn add_route(&mut self, route: DefaultRoute) {
        if !self.routes.contains(&route) {
            self.routes.push(route);
        }
    }

    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }

    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.get(&index)
    }

    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    pub fn addrs(&self) -> impl Iterator<Item = &WanAddress> {
        self.addrs.values()
    }

    pub fn addrs_on(&self, index: u32) -> impl Iterator<Item = &WanAddress> {
        self.addrs.values().filter(move |a| a.index == index)
    }

    pub fn neighbours_on(&self, index: u32) -> impl Iterator<Item = &Neighbour> {
        self.neighbours.values().filter(move |n| n.index == index)
    }

    pub fn default_routes(&self) -> &[DefaultRoute] {
        &self.routes
    }

    /// The interface of the best default route of `family` (lowest metric, then lowest ifindex
    /// so the answer does not depend on event order).
    pub fn default_route_link(&self, family: Family) -> Option<&Link> {
        self.routes
            .iter()
            .filter(|r| r.family == family && self.links.contains_key(&r.index))
            .min_by_key(|r| (r.metric, r.index))
            .and_then(|r| self.links.get(&r.index))
    }

    /// The WAN interface: the configured name, or else the interface of the default route
    /// (IPv4 first, then IPv6), as it is now.
    pub fn wan_link(&self, configured: Option<&str>) -> Option<&Link> {
        match configured {
            Some(name) => self.link_by_name(name),
            None => self
                .default_route_link(Family::V4)
                .or_else(|| self.default_route_link(Family::V6)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            point_to_point: false,
        }
    }

    fn v4(index: u32, a: &str) -> WanAddress {
        WanAddress {
            index,
            addr: a.parse().unwrap(),
            prefix_len: 24,
            peer: None,
            scope: Scope::Universe,
            flags: AddrFlags::default(),
            preferred: Lifetime::Forever,
            valid: Lifetime::Forever,
        }
    }

    #[test]
    fn duplicated_events_leave_the_same_view() {
        let mut once = NetView::default();
        let mut twice = NetView::default();
        let events = [
            NetEvent::NewLink(link(3, "ppp0")),
            NetEvent::NewAddr(v4(3, "198.51.100.7")),
            NetEvent::NewRoute(DefaultRoute {
                family: Family::V4,
                index: 3,
                metric: 0,
            }),
        ];
        for ev in events.iter().cloned() {
            once.apply(ev.clone());
            twice.apply(ev.clone());
            twice.apply(ev);
        }
        assert_eq!(once, twice);
        assert_eq!(once.addrs().count(), 1);
        assert_eq!(once.default_routes().len(), 1);
    }

    #[test]
    fn a_recreated_link_is_found_by_name_under_its_new_index() {
        let mut view = NetView::default();
        view.apply(NetEvent::NewLink(link(3, "ppp0")));
        view.apply(NetEvent::NewAddr(v4(3, "198.51.100.7")));
        view.apply(NetEvent::DelAddr(v4(3, "198.51.100.7")));
        view.apply(NetEvent::DelLink { index: 3 });
        view.apply(NetEvent::NewLink(link(9, "ppp0")));
        view.apply(NetEvent::NewAddr(v4(9, "198.51.100.8")));
        let wan = view.wan_link(Some("ppp0")).unwrap();
        assert_eq!(wan.index, 9);
        let addrs: Vec<_> = view.addrs_on(wan.index).map(|a| a.addr).collect();
        assert_eq!(addrs, vec!["198.51.100.8".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn del_link_drops_its_addresses_and_routes_even_if_deladdr_was_lost() {
        let mut view = NetView::default();
        view.apply(NetEvent::NewLink(link(3, "eth1")));
        view.apply(NetEvent::NewAddr(v4(3, "198.51.100.7")));
        view.apply(NetEvent::NewRoute(DefaultRoute {
            family: Family::V4,
            index: 3,
            metric: 100,
        }));
        view.apply(NetEvent::DelLink { index: 3 });
        assert_eq!(view.addrs().count(), 0);
        assert!(view.wan_link(None).is_none());
    }

    #[test]
    fn the_wan_follows_the_best_default_route() {
        let mut view = NetView::default();
        view.apply(NetEvent::NewLink(link(2, "eth1")));
        view.apply(NetEvent::NewLink(link(5, "wwan0")));
        let eth1 = DefaultRoute {
            family: Family::V4,
            index: 2,
            metric: 100,
        };
        view.apply(NetEvent::NewRoute(eth1.clone()));
        view.apply(NetEvent::NewRoute(DefaultRoute {
            family: Family::V4,
            index: 5,
            metric: 700,
        }));
        assert_eq!(view.wan_link(None).unwrap().name, "eth1");
        view.apply(NetEvent::DelRoute(eth1));
        assert_eq!(view.wan_link(None).unwrap().name, "wwan0");
    }

    #[test]
    fn without_an_ipv4_default_route_the_ipv6_one_names_the_wan() {
        let mut view = NetView::default();
        view.apply(NetEvent::NewLink(link(4, "eth0")));
        view.apply(NetEvent::NewRoute(DefaultRoute {
            family: Family::V6,
            index: 4,
            metric: 1024,
        }));
        assert_eq!(view.wan_link(None).unwrap().name, "eth0");
    }
}
