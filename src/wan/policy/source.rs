//! Each record's address source: the `[wan]` interface, its own interface, or a LAN prefix plus
//! a host part ([`AddressSource`], [`HostPart`], [`Mac`]), resolved from the same netlink view,
//! and explained in a sentence when it offers nothing.

use super::{AddressPolicy, Mac, Uplinks, WanChoice, choose, judge, judge_ip};
use crate::record::Family;
use crate::wan::{NetView, WanAddress};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

impl FromStr for Mac {
    type Err = String;

    fn from_str(s: &str) -> Result<Mac, String> {
        let bad = || format!("{s:?} is not a MAC address (like \"aa:bb:cc:dd:ee:ff\")");
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl Mac {
    /// The modified EUI-64 interface identifier (RFC 4291 appendix A): ff:fe inserted in the
    /// middle and the universal/local bit flipped.
    pub fn eui64(self) -> u64 {
        let [a, b, c, d, e, g] = self.0;
        u64::from_be_bytes([a ^ 0x02, b, c, 0xff, 0xfe, d, e, g])
    }
}

/// The host part of an address built from a prefix (`[[host]] ipv6_suffix`, `ipv6_eui64`,
/// `ipv6_neighbour`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPart {
    /// A fixed interface identifier; config validation keeps it within the low 64 bits.
    Suffix(Ipv6Addr),
    /// The identifier derived from this MAC, the EUI-64 way.
    Eui64(Mac),
    /// Whatever address inside the prefix the machine with this MAC really uses, from the
    /// neighbour table (privacy and stable-privacy addresses).
    Neighbour(Mac),
}

impl HostPart {
    /// The interface identifier (low 64 bits); None when the neighbour table decides.
    fn iid(&self) -> Option<u64> {
        match self {
            // Truncation intended: validation refused anything above the low 64 bits.
            HostPart::Suffix(s) => Some(u128::from(*s) as u64),
            HostPart::Eui64(mac) => Some(mac.eui64()),
            HostPart::Neighbour(_) => None,
        }
    }
}

impl fmt::Display for HostPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPart::Suffix(s) => write!(f, "suffix {s}"),
            HostPart::Eui64(mac) => write!(f, "EUI-64 of {mac}"),
            HostPart::Neighbour(mac) => write!(f, "the address neighbour {mac} uses"),
        }
    }
}

/// Where one record's address comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum AddressSource {
    /// The `[wan]` interface (or the default route's), HTTP detection included: the behaviour
    /// of a host that says nothing else.
    #[default]
    Wan,
    /// That interface's own address (`[[host]] interface` / `interface6`).
    Interface(String),
    /// The global prefix seen on `interface` with `host` as the interface identifier
    /// (`[[host]] ipv6_prefix_from`): a machine behind the router.
    Prefix { interface: String, host: HostPart },
    /// The first usable of an ordered list of interfaces (`interface = ["a", "b"]`); the decider
    /// picks which one with its failover rules, one-shot commands take the first usable now.
    Uplinks(Uplinks),
}

impl AddressSource {
    /// Whether it needs the kernel's neighbour table (followed only then).
    pub fn uses_neighbours(&self) -> bool {
        matches!(
            self,
            AddressSource::Prefix {
                host: HostPart::Neighbour(_),
                ..
            }
        )
    }

    /// The interface it reads, None for the `[wan]` one (and for a list, whose interface
    /// changes).
    pub fn interface(&self) -> Option<&str> {
        match self {
            AddressSource::Wan | AddressSource::Uplinks(_) => None,
            AddressSource::Interface(i) | AddressSource::Prefix { interface: i, .. } => Some(i),
        }
    }
}

impl fmt::Display for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressSource::Wan => f.write_str("the [wan] interface"),
            AddressSource::Interface(i) => write!(f, "interface {i}"),
            AddressSource::Prefix { interface, host } => {
                write!(f, "the prefix on {interface} + {host}")
            }
            AddressSource::Uplinks(u) => u.fmt(f),
        }
    }
}

/// `prefix`'s /64 with `iid` as the interface identifier.
pub fn with_iid(prefix: Ipv6Addr, iid: u64) -> Ipv6Addr {
    let net = u128::from(prefix) & (u128::MAX << 64);
    Ipv6Addr::from(net | u128::from(iid))
}

/// What `source` offers for `family` now, from the interface alone (the decider adds HTTP
/// detection for the `[wan]` source). `current`: the address published now,
/// kept while it stays valid unless something ranks strictly better (as [`choose`] does).
pub fn resolve(
    view: &NetView,
    wan: Option<&str>,
    source: &AddressSource,
    family: Family,
    policy: &AddressPolicy,
    current: Option<IpAddr>,
) -> WanChoice {
    let link = match (source, source.interface()) {
        (AddressSource::Uplinks(u), _) => u
            .first_usable(view, family, policy, false)
            .and_then(|n| view.link_by_name(n)),
        (_, None) => view.wan_link(wan),
        (_, Some(name)) => view.link_by_name(name),
    };
    let Some(link) = link else {
        return WanChoice::Nothing;
    };
    let AddressSource::Prefix { host, .. } = source else {
        return choose(view.addrs_on(link.index), family, policy, current);
    };
    if family != Family::V6 {
        return WanChoice::Nothing;
    }
    // Only prefixes a /64 host part fits in; the interface's own address in the current /64
    // keeps that prefix while it stays preferred.
    let candidates: Vec<&WanAddress> = view
        .addrs_on(link.index)
        .filter(|a| a.prefix_len <= 64)
        .collect();
    let same_net = |a: &&&WanAddress| match (a.addr, current) {
        (IpAddr::V6(a), Some(IpAddr::V6(c))) => with_iid(a, 0) == with_iid(c, 0),
        _ => false,
    };
    let sticky = candidates.iter().find(same_net).map(|a| a.addr);
    match choose(candidates.iter().copied(), family, policy, sticky) {
        WanChoice::Public(IpAddr::V6(lan)) => {
            let ip = match (host.iid(), host) {
                (Some(iid), _) => Some(IpAddr::V6(with_iid(lan, iid))),
                (None, HostPart::Neighbour(mac)) => {
                    neighbour_address(view, link.index, *mac, lan, current, policy)
                }
                (None, _) => None,
            };
            match ip.map(|ip| (ip, judge_ip(ip, policy))) {
                Some((ip, Ok(()))) => WanChoice::Public(ip),
                _ => WanChoice::Nothing,
            }
        }
        other => other,
    }
}

/// The address the machine with `mac` uses inside `lan`'s /64, from a resolved neighbour
/// entry: the published one while it stays, else the lowest (stable across event order).
fn neighbour_address(
    view: &NetView,
    index: u32,
    mac: Mac,
    lan: Ipv6Addr,
    current: Option<IpAddr>,
    policy: &AddressPolicy,
) -> Option<IpAddr> {
    let net = with_iid(lan, 0);
    let usable: Vec<IpAddr> = view
        .neighbours_on(index)
        .filter(|n| n.mac == Some(mac) && n.state.usable())
        .filter(|n| matches!(n.addr, IpAddr::V6(a) if with_iid(a, 0) == net))
        .filter(|n| judge_ip(n.addr, policy).is_ok())
        .map(|n| n.addr)
        .collect();
    match current {
        Some(c) if usable.contains(&c) => Some(c),
        _ => usable.into_iter().min(),
    }
}

/// The neighbour entries of a neighbour source's MAC on its interface, with their states, for
/// `dynhostd detect`; None for other sources.
pub fn neighbour_entries(view: &NetView, source: &AddressSource) -> Option<String> {
    let AddressSource::Prefix {
        interface,
        host: HostPart::Neighbour(mac),
    } = source
    else {
        return None;
    };
    let link = view.link_by_name(interface)?;
    let entries: Vec<String> = view
        .neighbours_on(link.index)
        .filter(|n| n.mac == Some(*mac))
        .map(|n| format!("{} ({:?})", n.addr, n.state).to_lowercase())
        .collect();
    Some(if entries.is_empty() {
        format!("no neighbour entry for {mac} on {interface}")
    } else {
        format!("neighbour {mac} on {interface}: {}", entries.join(", "))
    })
}

/// Why `source` offers nothing for `family` now, in a sentence for `dynhostd detect`.
pub fn explain(
    view: &NetView,
    wan: Option<&str>,
    source: &AddressSource,
    family: Family,
    policy: &AddressPolicy,
) -> String {
    let link = match (source, source.interface()) {
        (AddressSource::Uplinks(u), _) => match u.first_usable(view, family, policy, false) {
            Some(n) => view.link_by_name(n),
            None => return format!("none of {} is usable now", u.names.join(", ")),
        },
        (_, None) => view.wan_link(wan),
        (_, Some(name)) => view.link_by_name(name),
    };
    let Some(link) = link else {
        return match source.interface().or(wan) {
            Some(name) => format!("interface {name} is not present"),
            None => "no default route names a WAN".into(),
        };
    };
    let prefix = matches!(source, AddressSource::Prefix { .. });
    if prefix && family != Family::V6 {
        return "a prefix source only builds IPv6 addresses".into();
    }
    let seen: Vec<String> = view
        .addrs_on(link.index)
        .filter(|a| a.family() == family)
        .map(|a| {
            let why = match judge(a, policy) {
                Err(r) => r.describe(),
                Ok(()) if prefix && a.prefix_len > 64 => "longer than /64: no room for a host part",
                Ok(()) => "counts",
            };
            format!("{}/{} ({why})", a.addr, a.prefix_len)
        })
        .collect();
    let what = if prefix {
        "global prefix"
    } else {
        "routable address"
    };
    if seen.is_empty() {
        format!("no {family} address at all on {}", link.name)
    } else {
        format!(
            "no {what} of {family} on {}: {}",
            link.name,
            seen.join(", ")
        )
    }
}
