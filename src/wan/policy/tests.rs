//! The address policy, table-tested.

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
