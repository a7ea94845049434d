//! Which address counts: pure functions from the interface's addresses (with their flags) to the
//! one address worth publishing, table-tested.
//!
//! By default only globally routable unicast counts (RFC 6890 special-purpose registries); the
//! user's `accept` prefixes replace that rule and `ignore` prefixes always win. IPv6 candidates are
//! ranked as ddclient does: skip tentative/deprecated/temporary/dadfailed, prefer an infinite
//! lifetime, then the longest prefix, then the longest remaining lifetime.

//!
//! This file judges and ranks addresses; its children hold the other jobs, importing from it and
//! never the other way (signature → source → this file):
//! - [`source`]: each record's address source (the `[wan]` interface, its own, or a prefix plus
//!   a host part), resolved and explained.
//! - [`signature`]: what counts as a change of the followed interfaces.
//! - [`uplinks`]: which interfaces of a failover list are usable now.

mod signature;
mod source;
mod uplinks;

pub use super::Mac;
pub use signature::{WanSignature, signature};
pub use source::{AddressSource, HostPart, explain, neighbour_entries, resolve, with_iid};
pub use uplinks::Uplinks;

use super::{Lifetime, NetView, Scope, WanAddress};
use crate::record::Family;
use serde::Serialize;
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
mod tests;
