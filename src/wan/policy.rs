//! Which address counts: pure functions from the interface's addresses (with their flags) to the
//! one address worth publishing, table-tested.
//!
//! By default only globally routable unicast counts (RFC 6890 special-purpose registries); the
//! user's `accept` prefixes replace that rule and `ignore` prefixes always win. IPv6 candidates are
//! ranked as ddclient does: skip tentative/deprecated/temporary/dadfailed, prefer an infinite
//! lifetime, then the longest prefix, then the longest remaining lifetime.

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

    pub fn describe(self) -> &'static str {
        match self {
            Rejection::Private => "private range (RFC 1918)",
            Rejection::SharedCgnat => "carrier-grade NAT range 100.64.0.0/10 (RFC 6598)",
            Rejection::UniqueLocal => "unique local address fc00::/7 (RFC 4193)",
            Rejection::Loopback => "loopback",
            Rejection::LinkLocal => "link-local",
            Rejection::Multicast => "multicast",
            Rejection::Unspecified => "unspecified",
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
            Some(
                r @ (Rejection::Unspecified
                | Rejection::Multicast
                | Rejection::Loopback
                | Rejection::LinkLocal),
            ) => Err(r),
            _ if policy.accept.iter().any(|p| p.contains(&ip)) => Ok(()),
            _ => Err(Rejection::NotAccepted),
        };
    }
    match range_rejection(ip) {
        Some(r) => Err(r),
        None => Ok(()),
    }
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

/// What the WAN looks like to the address policy, lifetimes left out: two views with the same
/// signature choose the same addresses, so an event that leaves it alone is no change (a router
/// advertisement refreshing a SLAAC address's lifetimes, a duplicate from a re-dump, a
/// link-local address finishing DAD).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WanSignature {
    link: Option<(u32, bool)>,
    /// (address, prefix length, counts, valid for ever): the candidates, and the NAT-side
    /// addresses (a new CGNAT address after a redial usually means a new public one).
    addrs: Vec<(IpAddr, u8, bool, bool)>,
}

/// The signature of the WAN (`wan`: the configured interface, or None for the default route's).
pub fn signature(view: &NetView, wan: Option<&str>, policy: &AddressPolicy) -> WanSignature {
    let Some(link) = view.wan_link(wan) else {
        return WanSignature::default();
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
    WanSignature {
        link: Some((link.index, link.up)),
        addrs,
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
            ("255.255.255.255", Err(Reserved)),
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
}
