//! Which address counts: pure functions from the interface's addresses (with their flags) to the
//! one address worth publishing, table-tested.
//!
//! By default only globally routable unicast counts (RFC 6890 special-purpose registries); the
//! user's `accept` prefixes replace that rule and `ignore` prefixes always win. IPv6 candidates are
//! ranked as ddclient does: skip tentative/deprecated/temporary/dadfailed, prefer an infinite
//! lifetime, then the longest prefix, then the longest remaining lifetime.

pub use super::Mac;
use super::{Lifetime, Link, NetView, Scope, WanAddress};
use crate::record::Family;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An address prefix in CIDR notation, e.g. `203.0.113.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        (len <= max).then_some(Prefix { addr, len })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    /// `a.b.c.d/len`, `x::/len`, or a bare address (a host prefix).
    fn from_str(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address prefix (like \"203.0.113.0/24\")"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(Prefix { addr, len })
    }
}

/// The user's overrides of the global-only rule (`[wan] accept` / `ignore`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    pub accept: Vec<Prefix>,
    pub ignore: Vec<Prefix>,
}

/// Why an address does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rejection {
    /// RFC 1918 (10/8, 172.16/12, 192.168/16).
    Private,
    /// RFC 6598 carrier-grade NAT, 100.64/10.
    SharedCgnat,
    /// RFC 4193 unique local IPv6, fc00::/7.
    UniqueLocal,
    Loopback,
    LinkLocal,
    Multicast,
    Unspecified,
    /// 255.255.255.255, the limited broadcast address (RFC 919).
    Broadcast,
    /// RFC 5737 / RFC 3849 documentation ranges.
    Documentation,
    /// RFC 2544 / RFC 5180 benchmarking ranges.
    Benchmarking,
    /// Any other special-purpose or unallocated range.
    Reserved,
    /// Not RT_SCOPE_UNIVERSE.
    NotGlobalScope,
    /// IPv6 duplicate address detection still running.
    Tentative,
    /// Preferred lifetime over: being renumbered away.
    Deprecated,
    /// RFC 8981 privacy address: changes daily, never published.
    Temporary,
    DadFailed,
    /// Inside a `[wan] ignore` prefix.
    Ignored,
    /// Outside every `[wan] accept` prefix.
    NotAccepted,
}

impl Rejection {
    /// True for reasons that mean "a real address, but not the public one": the machine sits
    /// behind someone's NAT and the public address must be found another way.
    pub fn means_nat(self) -> bool {
        matches!(
            self,
            Rejection::Private
                | Rejection::SharedCgnat
                | Rejection::UniqueLocal
                | Rejection::NotAccepted
        )
    }

    /// Ranges that are never a host's own address, whatever `[wan] accept` says.
    fn never_a_host(self) -> bool {
        matches!(
            self,
            Rejection::Unspecified
                | Rejection::Multicast
                | Rejection::Loopback
                | Rejection::LinkLocal
                | Rejection::Broadcast
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rejection::Private => "private range (RFC 1918)",
            Rejection::SharedCgnat => "carrier-grade NAT range 100.64.0.0/10 (RFC 6598)",
            Rejection::UniqueLocal => "unique local address fc00::/7 (RFC 4193)",
            Rejection::Loopback => "loopback",
            Rejection::LinkLocal => "link-local",
            Rejection::Multicast => "multicast",
            Rejection::Unspecified => "unspecified",
            Rejection::Broadcast => "broadcast",
            Rejection::Documentation => {
                "documentation range (RFC 5737/3849); add it to [wan] accept to use it"
            }
            Rejection::Benchmarking => "benchmarking range",
            Rejection::Reserved => "reserved or special-purpose range",
            Rejection::NotGlobalScope => "scope is not global",
            Rejection::Tentative => "tentative (duplicate address detection running)",
            Rejection::Deprecated => "deprecated (preferred lifetime over)",
            Rejection::Temporary => "temporary privacy address (RFC 8981)",
            Rejection::DadFailed => "duplicate address detection failed",
            Rejection::Ignored => "inside a [wan] ignore prefix",
            Rejection::NotAccepted => "outside every [wan] accept prefix",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// What the WAN interface offers for one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "address")]
pub enum WanChoice {
    /// This address counts and is the one to publish.
    Public(IpAddr),
    /// The interface only has private/CGNAT/ULA (or non-accepted) addresses of this family: the
    /// public address is elsewhere (HTTP detection finds it).
    BehindNat,
    /// No usable address of this family at all.
    Nothing,
}

impl WanChoice {
    /// The address to publish, if any.
    pub fn public(self) -> Option<IpAddr> {
        match self {
            WanChoice::Public(ip) => Some(ip),
            WanChoice::BehindNat | WanChoice::Nothing => None,
        }
    }
}

/// Judges a bare IP by range alone (also used for `--ip` and for what-is-my-IP answers).
pub fn judge_ip(ip: IpAddr, policy: &AddressPolicy) -> Result<(), Rejection> {
    if policy.ignore.iter().any(|p| p.contains(&ip)) {
        return Err(Rejection::Ignored);
    }
    if !policy.accept.is_empty() {
        // The user's list replaces the global-only rule, but never makes these usable.
        return match range_rejection(ip) {
            Some(r) if r.never_a_host() => Err(r),
            _ if policy.accept.iter().any(|p| p.contains(&ip)) => Ok(()),
            _ => Err(Rejection::NotAccepted),
        };
    }
    match range_rejection(ip) {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

/// `update --ip ADDR`: the range that rules out an address a caller hands over (pppd's `$4`),
/// judged before any agent or network is asked, so that a broadcast or CGNAT address is refused
/// as what it is rather than answered "already published". `accept` is the config's `[wan]
/// accept`: as in [`judge_ip`] it can make a private, CGNAT, ULA or reserved address count,
/// never the ranges no host has. Documentation ranges pass: they stand for public addresses in
/// examples and tests, and the policy judges them afterwards as it judges an interface's.
pub fn refuse_given(ip: IpAddr, accept: &[Prefix]) -> Option<Rejection> {
    match range_rejection(ip)? {
        Rejection::Documentation => None,
        r if !r.never_a_host() && accept.iter().any(|p| p.contains(&ip)) => None,
        r => Some(r),
    }
}

/// Whether `accept` could make an address of this range count (the hint `update --ip` gives).
pub fn acceptable(r: Rejection) -> bool {
    !r.never_a_host()
}

/// Judges an interface address: its flags first (they are about the address's state), then
/// its range.
pub fn judge(addr: &WanAddress, policy: &AddressPolicy) -> Result<(), Rejection> {
    let f = &addr.flags;
    if f.dadfailed {
        return Err(Rejection::DadFailed);
    }
    if f.tentative {
        return Err(Rejection::Tentative);
    }
    if addr.addr.is_ipv6() && f.temporary {
        return Err(Rejection::Temporary);
    }
    if f.deprecated || addr.preferred == Lifetime::Secs(0) {
        return Err(Rejection::Deprecated);
    }
    judge_ip(addr.addr, policy)?;
    if !matches!(addr.scope, Scope::Universe) && policy.accept.is_empty() {
        return Err(Rejection::NotGlobalScope);
    }
    Ok(())
}

/// Picks the address of `family` to publish from the WAN interface's addresses. `current` is
/// the address published now: while it stays valid it is kept unless a candidate ranks strictly
/// better, so a new secondary or a second SLAAC address does not move the record.
pub fn choose<'a>(
    addrs: impl IntoIterator<Item = &'a WanAddress>,
    family: Family,
    policy: &AddressPolicy,
    current: Option<IpAddr>,
) -> WanChoice {
    let mut best: Option<&WanAddress> = None;
    let mut nat = false;
    let mut current_valid: Option<&WanAddress> = None;
    for a in addrs.into_iter().filter(|a| a.family() == family) {
        match judge(a, policy) {
            Ok(()) => {
                if Some(a.addr) == current {
                    current_valid = Some(a);
                }
                if best.is_none_or(|b| rank(a) > rank(b)) {
                    best = Some(a);
                }
            }
            Err(r) => nat |= r.means_nat(),
        }
    }
    match (best, current_valid) {
        (Some(b), Some(cur)) if class(b) <= class(cur) => WanChoice::Public(cur.addr),
        (Some(b), _) => WanChoice::Public(b.addr),
        (None, _) if nat => WanChoice::BehindNat,
        (None, _) => WanChoice::Nothing,
    }
}

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
    for source in sources {
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
            let link = match name {
                None => view.wan_link(wan),
                Some(n) => view.link_by_name(n),
            };
            (
                name.map(str::to_owned),
                link_signature(view, link, &macs, policy),
            )
        })
        .collect();
    WanSignature { links }
}

fn link_signature(
    view: &NetView,
    link: Option<&Link>,
    macs: &[Mac],
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
    LinkSignature {
        link: Some((link.index, link.up)),
        addrs,
        neighbours,
    }
}

/// The WAN's own address of `family` to send detection requests from, so the question is asked
/// over the WAN (not over another uplink or the other family).
pub fn bind_address(view: &NetView, wan: Option<&str>, family: Family) -> Option<IpAddr> {
    let link = view.wan_link(wan)?;
    view.addrs_on(link.index)
        .filter(|a| a.family() == family && a.scope == Scope::Universe)
        .filter(|a| !a.flags.tentative && !a.flags.dadfailed)
        .min_by_key(|a| {
            (
                a.flags.deprecated,
                a.flags.secondary && a.addr.is_ipv4(),
                a.addr,
            )
        })
        .map(|a| a.addr)
}

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

    /// The interface it reads, None for the `[wan]` one.
    pub fn interface(&self) -> Option<&str> {
        match self {
            AddressSource::Wan => None,
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
    let link = match source.interface() {
        None => view.wan_link(wan),
        Some(name) => view.link_by_name(name),
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
    let link = match source.interface() {
        None => view.wan_link(wan),
        Some(name) => view.link_by_name(name),
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

/// The stable part of the ranking: what makes one address better in kind, not just fresher.
fn class(a: &WanAddress) -> (bool, bool, u8) {
    (
        !a.flags.secondary || a.addr.is_ipv6(),
        a.valid == Lifetime::Forever,
        a.prefix_len,
    )
}

/// Full ranking: class, then the longest remaining valid lifetime, then the lowest address so
/// the answer never depends on the order addresses arrived in.
fn rank(a: &WanAddress) -> ((bool, bool, u8), Lifetime, std::cmp::Reverse<IpAddr>) {
    (class(a), a.valid, std::cmp::Reverse(a.addr))
}

/// Special-purpose ranges that are never a host's public address (RFC 6890 and successors).
fn range_rejection(ip: IpAddr) -> Option<Rejection> {
    match ip {
        IpAddr::V4(v4) => v4_rejection(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_rejection(v4).or(Some(Rejection::Reserved));
            }
            v6_rejection(v6)
        }
    }
}

fn in4(ip: Ipv4Addr, net: [u8; 4], len: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v4_rejection(ip: Ipv4Addr) -> Option<Rejection> {
    use Rejection::*;
    let table: &[([u8; 4], u32, Rejection)] = &[
        ([0, 0, 0, 0], 8, Unspecified),
        ([10, 0, 0, 0], 8, Private),
        ([100, 64, 0, 0], 10, SharedCgnat),
        ([127, 0, 0, 0], 8, Loopback),
        ([169, 254, 0, 0], 16, LinkLocal),
        ([172, 16, 0, 0], 12, Private),
        ([192, 0, 0, 0], 24, Reserved),
        ([192, 0, 2, 0], 24, Documentation),
        ([192, 88, 99, 0], 24, Reserved),
        ([192, 168, 0, 0], 16, Private),
        ([198, 18, 0, 0], 15, Benchmarking),
        ([198, 51, 100, 0], 24, Documentation),
        ([203, 0, 113, 0], 24, Documentation),
        ([224, 0, 0, 0], 4, Multicast),
        // Before 240/4, which holds it: the first match wins.
        ([255, 255, 255, 255], 32, Broadcast),
        ([240, 0, 0, 0], 4, Reserved),
    ];
    table
        .iter()
        .find(|(net, len, _)| in4(ip, *net, *len))
        .map(|(_, _, r)| *r)
}

fn in6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v6_rejection(ip: Ipv6Addr) -> Option<Rejection> {
    use Rejection::*;
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    let table: &[(&str, u32, Rejection)] = &[
        ("ff00::", 8, Multicast),
        ("fe80::", 10, LinkLocal),
        ("fc00::", 7, UniqueLocal),
        ("2001:db8::", 32, Documentation),
        ("3fff::", 20, Documentation),
        ("2001:2::", 48, Benchmarking),
        ("2001::", 23, Reserved),
        ("2002::", 16, Reserved),
        ("64:ff9b::", 96, Reserved),
        ("100::", 64, Reserved),
    ];
    if let Some((_, _, r)) = table
        .iter()
        .find(|(net, len, _)| in6(ip, net.parse().expect("static prefix"), *len))
    {
        return Some(*r);
    }
    // Only 2000::/3 is allocated as global unicast.
    (!in6(ip, "2000::".parse().expect("static prefix"), 3)).then_some(Reserved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wan::AddrFlags;

    fn policy(accept: &[&str], ignore: &[&str]) -> AddressPolicy {
        AddressPolicy {
            accept: accept.iter().map(|s| s.parse().unwrap()).collect(),
            ignore: ignore.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn addr(a: &str, prefix_len: u8) -> WanAddress {
        WanAddress {
            index: 2,
            addr: a.parse().unwrap(),
            prefix_len,
            peer: None,
            scope: Scope::Universe,
            flags: AddrFlags::default(),
            preferred: Lifetime::Forever,
            valid: Lifetime::Forever,
        }
    }

    #[test]
    fn range_table() {
        use Rejection::*;
        let none = AddressPolicy::default();
        let cases: &[(&str, Result<(), Rejection>)] = &[
            ("8.8.8.8", Ok(())),
            ("81.56.1.2", Ok(())),
            ("10.1.2.3", Err(Private)),
            ("172.16.0.1", Err(Private)),
            ("172.31.255.254", Err(Private)),
            ("172.32.0.1", Ok(())),
            ("192.168.1.1", Err(Private)),
            ("100.64.0.1", Err(SharedCgnat)),
            ("100.127.255.254", Err(SharedCgnat)),
            ("100.128.0.1", Ok(())),
            ("127.0.0.1", Err(Loopback)),
            ("169.254.1.1", Err(LinkLocal)),
            ("224.0.0.1", Err(Multicast)),
            ("0.0.0.0", Err(Unspecified)),
            ("255.255.255.255", Err(Broadcast)),
            ("::ffff:255.255.255.255", Err(Broadcast)),
            ("240.0.0.1", Err(Reserved)),
            ("192.0.2.1", Err(Documentation)),
            ("198.51.100.1", Err(Documentation)),
            ("203.0.113.1", Err(Documentation)),
            ("198.18.0.1", Err(Benchmarking)),
            ("198.19.255.1", Err(Benchmarking)),
            ("2a01:e0a:1:2::1", Ok(())),
            ("2606:4700::1111", Ok(())),
            ("::", Err(Unspecified)),
            ("::1", Err(Loopback)),
            ("fe80::1", Err(LinkLocal)),
            ("fd00::2", Err(UniqueLocal)),
            ("fc12::1", Err(UniqueLocal)),
            ("ff02::1", Err(Multicast)),
            ("2001:db8::1", Err(Documentation)),
            ("2001:2::1", Err(Benchmarking)),
            ("::ffff:10.0.0.1", Err(Private)),
            ("::ffff:8.8.8.8", Err(Reserved)),
            ("2002:c000:0204::1", Err(Reserved)),
            ("4000::1", Err(Reserved)),
        ];
        for (ip, want) in cases {
            assert_eq!(judge_ip(ip.parse().unwrap(), &none), *want, "{ip}");
        }
    }

    #[test]
    fn an_address_given_to_update_is_refused_by_its_real_class() {
        use Rejection::*;
        let accept: Vec<Prefix> = vec![
            "10.0.0.0/8".parse().unwrap(),
            "255.0.0.0/8".parse().unwrap(),
        ];
        let cases: &[(&str, &[Prefix], Option<Rejection>)] = &[
            ("255.255.255.255", &[], Some(Broadcast)),
            ("224.0.0.1", &[], Some(Multicast)),
            ("ff02::1", &[], Some(Multicast)),
            ("127.0.0.1", &[], Some(Loopback)),
            ("::1", &[], Some(Loopback)),
            ("169.254.1.1", &[], Some(LinkLocal)),
            ("fe80::1", &[], Some(LinkLocal)),
            ("0.0.0.0", &[], Some(Unspecified)),
            ("::", &[], Some(Unspecified)),
            ("10.1.2.3", &[], Some(Private)),
            ("100.64.7.7", &[], Some(SharedCgnat)),
            ("fd00::2", &[], Some(UniqueLocal)),
            ("240.0.0.1", &[], Some(Reserved)),
            // Public and documentation addresses pass (the tests' public addresses).
            ("81.56.1.2", &[], None),
            ("2a01:e0a:1:2::1", &[], None),
            ("192.0.2.1", &[], None),
            ("203.0.113.50", &[], None),
            ("2001:db8::5", &[], None),
            // [wan] accept makes a private address count, never a broadcast one.
            ("10.1.2.3", &accept, None),
            ("255.255.255.255", &accept, Some(Broadcast)),
        ];
        for (ip, accept, want) in cases {
            assert_eq!(refuse_given(ip.parse().unwrap(), accept), *want, "{ip}");
        }
    }

    #[test]
    fn accept_replaces_the_global_rule_and_ignore_wins() {
        let p = policy(
            &["203.0.113.0/24", "2001:db8::/32"],
            &["2001:db8:dead::/48"],
        );
        assert_eq!(judge_ip("203.0.113.9".parse().unwrap(), &p), Ok(()));
        assert_eq!(judge_ip("2001:db8:1::9".parse().unwrap(), &p), Ok(()));
        assert_eq!(
            judge_ip("2001:db8:dead::9".parse().unwrap(), &p),
            Err(Rejection::Ignored)
        );
        // Outside the accept list, even a routable address does not count.
        assert_eq!(
            judge_ip("8.8.8.8".parse().unwrap(), &p),
            Err(Rejection::NotAccepted)
        );
        let only_ignore = policy(&[], &["81.56.0.0/16"]);
        assert_eq!(
            judge_ip("81.56.1.2".parse().unwrap(), &only_ignore),
            Err(Rejection::Ignored)
        );
        assert_eq!(judge_ip("81.57.1.2".parse().unwrap(), &only_ignore), Ok(()));
    }

    #[test]
    fn flags_table() {
        let p = policy(&["2001:db8::/32"], &[]);
        let mut tentative = addr("2001:db8::1", 64);
        tentative.flags.tentative = true;
        let mut deprecated = addr("2001:db8::2", 64);
        deprecated.flags.deprecated = true;
        let mut zero_preferred = addr("2001:db8::3", 64);
        zero_preferred.preferred = Lifetime::Secs(0);
        let mut temporary = addr("2001:db8::4", 64);
        temporary.flags.temporary = true;
        let mut dadfailed = addr("2001:db8::5", 64);
        dadfailed.flags.dadfailed = true;
        let ok = addr("2001:db8::6", 64);
        assert_eq!(judge(&tentative, &p), Err(Rejection::Tentative));
        assert_eq!(judge(&deprecated, &p), Err(Rejection::Deprecated));
        assert_eq!(judge(&zero_preferred, &p), Err(Rejection::Deprecated));
        assert_eq!(judge(&temporary, &p), Err(Rejection::Temporary));
        assert_eq!(judge(&dadfailed, &p), Err(Rejection::DadFailed));
        assert_eq!(judge(&ok, &p), Ok(()));
        // The IPv4 secondary flag shares the temporary bit but does not disqualify.
        let mut secondary = addr("203.0.113.5", 24);
        secondary.flags.secondary = true;
        assert_eq!(judge(&secondary, &policy(&["203.0.113.0/24"], &[])), Ok(()));
        let mut link_scope = addr("81.56.1.2", 24);
        link_scope.scope = Scope::Link;
        assert_eq!(
            judge(&link_scope, &AddressPolicy::default()),
            Err(Rejection::NotGlobalScope)
        );
    }

    #[test]
    fn nat_nothing_and_public() {
        let none = AddressPolicy::default();
        let cgnat = [addr("100.64.3.4", 32)];
        assert_eq!(
            choose(&cgnat, Family::V4, &none, None),
            WanChoice::BehindNat
        );
        let link_local_only = [addr("fe80::1", 64)];
        assert_eq!(
            choose(&link_local_only, Family::V6, &none, None),
            WanChoice::Nothing
        );
        assert_eq!(choose(&cgnat, Family::V6, &none, None), WanChoice::Nothing);
        let mixed = [addr("192.168.1.2", 24), addr("81.56.1.2", 24)];
        assert_eq!(
            choose(&mixed, Family::V4, &none, None),
            WanChoice::Public("81.56.1.2".parse().unwrap())
        );
        // Excluded by the accept list: the public address is elsewhere.
        let p = policy(&["203.0.113.0/24"], &[]);
        assert_eq!(
            choose(&[addr("198.51.100.1", 24)], Family::V4, &p, None),
            WanChoice::BehindNat
        );
    }

    #[test]
    fn ipv4_primary_wins_and_a_new_secondary_does_not_move_the_record() {
        let p = policy(&["203.0.113.0/24", "198.51.100.0/24"], &[]);
        let primary = addr("203.0.113.10", 24);
        let mut secondary = addr("203.0.113.2", 24);
        secondary.flags.secondary = true;
        let both = [secondary.clone(), primary.clone()];
        assert_eq!(
            choose(&both, Family::V4, &p, None),
            WanChoice::Public(primary.addr)
        );
        assert_eq!(
            choose(&both, Family::V4, &p, Some(primary.addr)),
            WanChoice::Public(primary.addr)
        );
        // When the primary goes, the secondary is promoted by the kernel; either way we follow.
        assert_eq!(
            choose(&[secondary.clone()], Family::V4, &p, Some(primary.addr)),
            WanChoice::Public(secondary.addr)
        );
        // A second primary in another subnet does not move a published primary.
        let other = addr("198.51.100.1", 24);
        assert_eq!(
            choose(
                &[other, primary.clone()],
                Family::V4,
                &p,
                Some(primary.addr)
            ),
            WanChoice::Public(primary.addr)
        );
    }

    #[test]
    fn ipv6_ranking_infinite_then_longest_prefix_then_longest_lifetime() {
        let p = policy(&["2001:db8::/32"], &[]);
        let mut slaac_long = addr("2001:db8:1::a", 64);
        slaac_long.valid = Lifetime::Secs(86400);
        slaac_long.preferred = Lifetime::Secs(14400);
        let mut slaac_short = addr("2001:db8:2::a", 64);
        slaac_short.valid = Lifetime::Secs(3600);
        slaac_short.preferred = Lifetime::Secs(1800);
        let static_56 = addr("2001:db8:3::a", 56);
        let static_128 = addr("2001:db8:4::a", 128);
        let pick = |v: &[WanAddress]| choose(v, Family::V6, &p, None);
        assert_eq!(
            pick(&[slaac_short.clone(), slaac_long.clone()]),
            WanChoice::Public(slaac_long.addr)
        );
        assert_eq!(
            pick(&[slaac_long.clone(), static_56.clone()]),
            WanChoice::Public(static_56.addr)
        );
        assert_eq!(
            pick(&[static_56.clone(), static_128.clone(), slaac_long.clone()]),
            WanChoice::Public(static_128.addr)
        );
        // Order of arrival does not matter.
        assert_eq!(
            pick(&[static_128.clone(), slaac_long.clone(), static_56.clone()]),
            WanChoice::Public(static_128.addr)
        );
    }

    #[test]
    fn ipv6_renumbering_moves_only_when_the_old_address_is_deprecated() {
        let p = policy(&["2001:db8::/32"], &[]);
        let mut old = addr("2001:db8:1::a", 64);
        old.valid = Lifetime::Secs(7000);
        old.preferred = Lifetime::Secs(3000);
        let mut new = addr("2001:db8:2::a", 64);
        new.valid = Lifetime::Secs(86400);
        new.preferred = Lifetime::Secs(14400);
        let mut temp = addr("2001:db8:2::dead", 64);
        temp.flags.temporary = true;
        // Both valid: the published one stays (no flapping between two SLAAC addresses).
        assert_eq!(
            choose(
                &[old.clone(), new.clone(), temp.clone()],
                Family::V6,
                &p,
                Some(old.addr)
            ),
            WanChoice::Public(old.addr)
        );
        old.preferred = Lifetime::Secs(0);
        assert_eq!(
            choose(
                &[old.clone(), new.clone(), temp],
                Family::V6,
                &p,
                Some(old.addr)
            ),
            WanChoice::Public(new.addr)
        );
    }

    #[test]
    fn prefix_parsing() {
        assert!("203.0.113.0/24".parse::<Prefix>().is_ok());
        assert!("2001:db8::/32".parse::<Prefix>().is_ok());
        assert!(
            "203.0.113.7"
                .parse::<Prefix>()
                .unwrap()
                .contains(&"203.0.113.7".parse().unwrap())
        );
        assert!("203.0.113.0/33".parse::<Prefix>().is_err());
        assert!("banana/8".parse::<Prefix>().is_err());
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&"8.8.8.8".parse().unwrap()));
        assert!(!all.contains(&"::1".parse().unwrap()));
    }

    #[test]
    fn modified_eui64_flips_the_universal_local_bit_and_inserts_fffe() {
        // RFC 4291 appendix A: cccccc0gcccccccc cccccccc mmmm... becomes
        // cccccc1gcccccccc cccccccc11111111 11111110mmmmmmmm mmmmmmmmmmmmmmmm; RFC 2464 section
        // 4 gives the worked case 34-56-78-9A-BC-DE -> 3656:78FF:FE9A:BCDE.
        let mac: Mac = "34:56:78:9a:bc:de".parse().unwrap();
        assert_eq!(mac.eui64(), 0x3656_78ff_fe9a_bcde);
        // A locally administered address gets the bit cleared.
        let local: Mac = "02:00:5e:10:00:01".parse().unwrap();
        assert_eq!(local.eui64(), 0x0000_5eff_fe10_0001);
        assert_eq!(mac.to_string(), "34:56:78:9a:bc:de");
        for bad in [
            "34:56:78:9a:bc",
            "34:56:78:9a:bc:de:f0",
            "3456789abcde",
            "zz:56:78:9a:bc:de",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
    }

    fn view(addrs: &[(u32, &str, u8, Lifetime)]) -> NetView {
        let mut v = NetView::default();
        v.apply(crate::wan::NetEvent::NewLink(crate::wan::Link {
            index: 2,
            name: "wan0".into(),
            up: true,
            point_to_point: false,
        }));
        v.apply(crate::wan::NetEvent::NewLink(crate::wan::Link {
            index: 3,
            name: "lan0".into(),
            up: true,
            point_to_point: false,
        }));
        for (index, a, len, preferred) in addrs {
            let mut w = addr(a, *len);
            w.index = *index;
            w.preferred = *preferred;
            v.apply(crate::wan::NetEvent::NewAddr(w));
        }
        v
    }

    #[test]
    fn each_source_resolves_from_its_own_interface() {
        let p = policy(&["2001:db8::/32", "203.0.113.0/24", "198.51.100.0/24"], &[]);
        let f = Lifetime::Forever;
        let z = Lifetime::Secs(0);
        let suffix = AddressSource::Prefix {
            interface: "lan0".into(),
            host: HostPart::Suffix("::1:2:3:4".parse().unwrap()),
        };
        let eui = AddressSource::Prefix {
            interface: "lan0".into(),
            host: HostPart::Eui64("34:56:78:9a:bc:de".parse().unwrap()),
        };
        let lan = AddressSource::Interface("lan0".into());
        let ip = |s: &str| WanChoice::Public(s.parse().unwrap());
        type Case<'a> = (
            &'a [(u32, &'a str, u8, Lifetime)],
            &'a AddressSource,
            Family,
            Option<&'a str>,
            WanChoice,
        );
        let cases: &[Case] = &[
            // The [wan] and an interface follow their own addresses.
            (
                &[(2, "203.0.113.1", 24, f), (3, "198.51.100.1", 24, f)],
                &AddressSource::Wan,
                Family::V4,
                None,
                ip("203.0.113.1"),
            ),
            (
                &[(2, "203.0.113.1", 24, f), (3, "198.51.100.1", 24, f)],
                &lan,
                Family::V4,
                None,
                ip("198.51.100.1"),
            ),
            // Prefix + suffix, prefix + EUI-64.
            (
                &[(3, "2001:db8:1:2::1", 64, f)],
                &suffix,
                Family::V6,
                None,
                ip("2001:db8:1:2:1:2:3:4"),
            ),
            (
                &[(3, "2001:db8:1:2::1", 64, f)],
                &eui,
                Family::V6,
                None,
                ip("2001:db8:1:2:3656:78ff:fe9a:bcde"),
            ),
            // A /56 on the LAN: the address's own /64 is used.
            (
                &[(3, "2001:db8:1:2::1", 56, f)],
                &suffix,
                Family::V6,
                None,
                ip("2001:db8:1:2:1:2:3:4"),
            ),
            // Longer than /64: no room for an identifier.
            (
                &[(3, "2001:db8:1:2::1", 80, f)],
                &suffix,
                Family::V6,
                None,
                WanChoice::Nothing,
            ),
            // The deprecated prefix is not used while a preferred one exists, even if published.
            (
                &[(3, "2001:db8:1:2::1", 64, z), (3, "2001:db8:9:9::1", 64, f)],
                &suffix,
                Family::V6,
                Some("2001:db8:1:2:1:2:3:4"),
                ip("2001:db8:9:9:1:2:3:4"),
            ),
            // Both preferred: the published prefix stays.
            (
                &[(3, "2001:db8:1:2::1", 64, f), (3, "2001:db8:9:9::1", 64, f)],
                &suffix,
                Family::V6,
                Some("2001:db8:9:9:1:2:3:4"),
                ip("2001:db8:9:9:1:2:3:4"),
            ),
            // PD only: the WAN has link-local only, the LAN has the prefix.
            (
                &[(2, "fe80::1", 64, f), (3, "2001:db8:1:2::1", 64, f)],
                &AddressSource::Wan,
                Family::V6,
                None,
                WanChoice::Nothing,
            ),
            (
                &[(2, "fe80::1", 64, f), (3, "2001:db8:1:2::1", 64, f)],
                &suffix,
                Family::V6,
                None,
                ip("2001:db8:1:2:1:2:3:4"),
            ),
            // Only a ULA on the LAN: nothing from the prefix.
            (
                &[(3, "fd00:1:2:3::1", 64, f)],
                &suffix,
                Family::V6,
                None,
                WanChoice::BehindNat,
            ),
            // A missing interface.
            (&[], &suffix, Family::V6, None, WanChoice::Nothing),
        ];
        for (i, (addrs, source, family, current, want)) in cases.iter().enumerate() {
            let v = view(addrs);
            let current = current.map(|c| c.parse().unwrap());
            assert_eq!(
                resolve(&v, Some("wan0"), source, *family, &p, current),
                *want,
                "case {i}"
            );
        }
        // ignore applies to the built address too.
        let ignoring = policy(&["2001:db8::/32"], &["2001:db8:1:2:1:2:3:4/128"]);
        let v = view(&[(3, "2001:db8:1:2::1", 64, f)]);
        assert_eq!(
            resolve(&v, Some("wan0"), &suffix, Family::V6, &ignoring, None),
            WanChoice::Nothing
        );
    }

    #[test]
    fn the_signature_covers_every_followed_interface_and_only_those() {
        let p = AddressPolicy::default();
        let f = Lifetime::Forever;
        let lan = AddressSource::Interface("lan0".into());
        let before = view(&[(2, "81.56.1.2", 24, f), (3, "81.57.1.2", 24, f)]);
        let after = view(&[(2, "81.56.1.2", 24, f), (3, "81.57.1.3", 24, f)]);
        let wan_only = [AddressSource::Wan];
        let both = [AddressSource::Wan, lan];
        assert_eq!(
            signature(&before, Some("wan0"), &wan_only, &p),
            signature(&after, Some("wan0"), &wan_only, &p)
        );
        assert_ne!(
            signature(&before, Some("wan0"), &both, &p),
            signature(&after, Some("wan0"), &both, &p)
        );
    }

    #[test]
    fn a_neighbour_source_takes_the_address_its_mac_uses_in_the_prefix() {
        use crate::wan::{Neighbour, NeighbourState as S};
        let p = policy(&["2001:db8::/32"], &[]);
        let mac: Mac = "34:56:78:9a:bc:de".parse().unwrap();
        let other: Mac = "02:00:00:00:00:01".parse().unwrap();
        let source = AddressSource::Prefix {
            interface: "lan0".into(),
            host: HostPart::Neighbour(mac),
        };
        let with = |entries: &[(&str, Mac, S)]| {
            let mut v = view(&[(3, "2001:db8:1:2::1", 64, Lifetime::Forever)]);
            for (a, m, state) in entries {
                v.apply(crate::wan::NetEvent::NewNeighbour(Neighbour {
                    index: 3,
                    addr: a.parse().unwrap(),
                    mac: Some(*m),
                    state: *state,
                }));
            }
            v
        };
        let pick = |v: &NetView, current: Option<&str>| {
            resolve(
                v,
                None,
                &source,
                Family::V6,
                &p,
                current.map(|c| c.parse().unwrap()),
            )
        };
        let ip = |s: &str| WanChoice::Public(s.parse().unwrap());
        assert_eq!(pick(&with(&[]), None), WanChoice::Nothing);
        assert_eq!(
            pick(&with(&[("2001:db8:1:2::abcd", mac, S::Failed)]), None),
            WanChoice::Nothing
        );
        assert_eq!(
            pick(&with(&[("2001:db8:1:2::abcd", mac, S::Incomplete)]), None),
            WanChoice::Nothing
        );
        assert_eq!(
            pick(&with(&[("2001:db8:1:2::abcd", other, S::Reachable)]), None),
            WanChoice::Nothing
        );
        // Outside the LAN prefix, or link-local: not that machine's address in the prefix.
        assert_eq!(
            pick(&with(&[("2001:db8:7:7::abcd", mac, S::Reachable)]), None),
            WanChoice::Nothing
        );
        assert_eq!(
            pick(
                &with(&[("fe80::3656:78ff:fe9a:bcde", mac, S::Reachable)]),
                None
            ),
            WanChoice::Nothing
        );
        assert_eq!(
            pick(&with(&[("2001:db8:1:2::abcd", mac, S::Stale)]), None),
            ip("2001:db8:1:2::abcd")
        );
        // Several (privacy addresses): the published one while it stays, else the lowest.
        let two = with(&[
            ("2001:db8:1:2::beef", mac, S::Reachable),
            ("2001:db8:1:2::abcd", mac, S::Stale),
        ]);
        assert_eq!(pick(&two, None), ip("2001:db8:1:2::abcd"));
        assert_eq!(
            pick(&two, Some("2001:db8:1:2::beef")),
            ip("2001:db8:1:2::beef")
        );
        assert!(
            neighbour_entries(&two, &source)
                .unwrap()
                .contains("2001:db8:1:2::abcd (stale)")
        );
        assert_eq!(
            neighbour_entries(&with(&[]), &source).unwrap(),
            "no neighbour entry for 34:56:78:9a:bc:de on lan0"
        );
        // Only the followed MAC's usable/unusable flips are a change, not REACHABLE -> STALE.
        let sig = |v: &NetView| signature(v, None, [&source], &p);
        let reach = with(&[
            ("2001:db8:1:2::abcd", mac, S::Reachable),
            ("2001:db8:1:2::99", other, S::Reachable),
        ]);
        let stale = with(&[
            ("2001:db8:1:2::abcd", mac, S::Stale),
            ("2001:db8:1:2::99", other, S::Failed),
        ]);
        let failed = with(&[("2001:db8:1:2::abcd", mac, S::Failed)]);
        assert_eq!(sig(&reach), sig(&stale));
        assert_ne!(sig(&reach), sig(&failed));
    }
}
