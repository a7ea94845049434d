//! The netlink watcher: the only place in the crate that sees `rtnetlink` and
//! `netlink-packet-route` types. It dumps links, addresses and default routes, listens to the
//! kernel's multicast notifications, and converts every message into a [`NetEvent`] at the
//! border, so everything downstream works on our own types.
//!
//! The shape follows rtnetlink's `examples/ip_monitor.rs`: a multicast socket for the
//! notifications. Subscribing before dumping means nothing that happens during the dump is lost;
//! it may be seen twice, which is harmless because `NetView::apply` is idempotent.
//!
//! Dumps go through a separate, short-lived socket, never the multicast one: that socket is the
//! one that overflows, and a dump request sent to a congested socket fails with ENOBUFS (or its
//! reply is dropped and the dump never ends), exactly when a re-dump is needed most.
//!
//! Beyond socket overruns, the kernel changes default routes without telling us in two cases,
//! so the watcher re-dumps (and sends a fresh [`NetEvent::Snapshot`]) after them:
//! - `ip route replace` of an IPv4/IPv6 route sends one RTM_NEWROUTE with NLM_F_REPLACE and no
//!   RTM_DELROUTE for the route it replaced;
//! - IPv4 routes are flushed silently when their link goes down or loses the address they
//!   depend on (`fib_sync_down_dev`/`fib_sync_down_addr` send no notification).

use super::{
    AddrFlags, DefaultRoute, Lifetime, Link, Mac, Neighbour, NeighbourState, NetEvent, NetSnapshot,
    Scope, WanAddress,
};
use crate::record::Family;
use futures::StreamExt;
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkMessage},
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState as NudState,
    },
    route::{RouteAttribute, RouteHeader, RouteMessage, RouteType},
};
use netlink_sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};
use std::net::IpAddr;
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

/// Why the watcher or a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening, binding or configuring the netlink socket failed.
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    /// The kernel refused a dump request, or the request could not be queued.
    #[error("netlink request failed: {0}")]
    Request(String),
    /// The socket stopped delivering messages (read error other than ENOBUFS).
    #[error("netlink connection closed unexpectedly")]
    Closed,
}

/// Tuning for [`watch`].
#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// SO_RCVBUF for the multicast socket; None = kernel default. Tests shrink it to provoke ENOBUFS.
    pub recv_buffer: Option<usize>,
    /// Also follow the neighbour table (RTM_NEWNEIGH/DELNEIGH): only when a record is built
    /// from a neighbour, since a busy LAN changes neighbour states all the time.
    pub neighbours: bool,
}

/// The notifications we need: links (renames, up/down, ppp0 coming and going), addresses of
/// both families, and routes of both families (to find the default route's interface).
const GROUPS: [MulticastGroup; 5] = [
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv6Ifaddr,
    MulticastGroup::Ipv4Route,
    MulticastGroup::Ipv6Route,
];

/// RT_TABLE_MAIN: the table `ip route` shows and default routes live in.
const RT_TABLE_MAIN: u32 = RouteHeader::RT_TABLE_MAIN as u32;

/// One full dump of links, addresses and default routes (for `dynhostd detect` and `dynhostd update`).
pub async fn snapshot(neighbours: bool) -> Result<NetSnapshot, NetlinkError> {
    let (conn, mut handle, _unsolicited) = rtnetlink::new_connection()?;
    // The connection is a future that drives the socket; poll it alongside the dump instead of
    // spawning it, so it ends with this call (and works on any runtime flavour).
    tokio::select! {
        snap = dump_snapshot(&mut handle, neighbours) => snap,
        () = conn => Err(NetlinkError::Closed),
    }
}

/// Subscribe (Link, Ipv4Ifaddr, Ipv6Ifaddr, Ipv4Route, Ipv6Route) FIRST, then dump and send
/// NetEvent::Snapshot, then forward every multicast message as NetEvent(s). On an overrun
/// (NetlinkPayload::Overrun / ENOBUFS) re-dump and send a fresh Snapshot. Returns Ok(()) when
/// `tx` is closed (receiver dropped); errors if the socket dies.
pub async fn watch(opts: WatchOptions, tx: mpsc::Sender<NetEvent>) -> Result<(), NetlinkError> {
    let mut groups = GROUPS.to_vec();
    if opts.neighbours {
        groups.push(MulticastGroup::Neigh);
    }
    let (mut conn, handle, mut messages) = rtnetlink::new_multicast_connection(&groups)?;
    let socket = conn.socket_mut().socket_mut();
    if let Some(size) = opts.recv_buffer {
        socket.set_rx_buf_sz(size)?;
        debug!(requested = size, effective = ?socket.get_rx_buf_sz().ok(), "netlink receive buffer set");
    }
    // ENOBUFS is how we learn that notifications were lost and a re-dump is needed; make sure
    // nobody (e.g. a future default) turned the reporting off.
    socket.set_no_enobufs(false)?;

    // The handle is not used for requests (see the module doc), but keep it alive so the
    // connection's request side stays open for the watcher's lifetime.
    let _handle = handle;
    tokio::select! {
        res = forward(&mut messages, &tx, opts.neighbours) => res,
        () = conn => Err(NetlinkError::Closed),
    }
}

type Unsolicited = futures::channel::mpsc::UnboundedReceiver<(
    NetlinkMessage<RouteNetlinkMessage>,
    netlink_sys::SocketAddr,
)>;

/// The watcher's loop: snapshot, then events, and a new snapshot whenever we may have missed
/// something. Ok(()) once the receiver is gone.
async fn forward(
    messages: &mut Unsolicited,
    tx: &mpsc::Sender<NetEvent>,
    neighbours: bool,
) -> Result<(), NetlinkError> {
    let mut routes = RouteTracker::default();
    loop {
        let snap = snapshot(neighbours).await?;
        debug!(
            links = snap.links.len(),
            addrs = snap.addrs.len(),
            routes = snap.routes.len(),
            "netlink snapshot"
        );
        routes.reset(&snap);
        if tx.send(NetEvent::Snapshot(snap)).await.is_err() {
            return Ok(());
        }

        // Forward notifications until one of them means our picture may be wrong.
        loop {
            let next = tokio::select! {
                msg = messages.next() => msg,
                () = tx.closed() => return Ok(()),
            };
            let Some((msg, _from)) = next else {
                return Err(NetlinkError::Closed);
            };
            let resync = match msg.payload {
                NetlinkPayload::Overrun(_) => {
                    warn!("netlink socket overrun (ENOBUFS): notifications lost, re-dumping");
                    true
                }
                NetlinkPayload::InnerMessage(inner) => {
                    let replace = msg.header.flags & NLM_F_REPLACE != 0;
                    match event(inner) {
                        Some(ev) => {
                            trace!(?ev, replace, "netlink event");
                            let resync = routes.needs_resync(&ev, replace);
                            if tx.send(ev).await.is_err() {
                                return Ok(());
                            }
                            if resync {
                                debug!(
                                    "kernel may have changed default routes silently, re-dumping"
                                );
                            }
                            resync
                        }
                        None => false,
                    }
                }
                other => {
                    // Its type only: a Debug print of the payload would link the Debug code of
                    // every message netlink-packet-route knows (about 60 KB on aarch64).
                    trace!(
                        message_type = other.message_type(),
                        "ignoring netlink control message"
                    );
                    false
                }
            };
            if resync {
                // Everything already queued was read before the dump we are about to request,
                // so the dump supersedes it; dropping it turns a burst of overrun markers into
                // one re-dump instead of one each.
                let mut dropped = 0usize;
                while messages.try_recv().is_ok() {
                    dropped += 1;
                }
                trace!(
                    dropped,
                    "dropped queued notifications superseded by the re-dump"
                );
                break;
            }
        }
    }
}

/// Mirrors the default routes we reported, to spot the cases where the kernel changes them
/// without a notification (see the module doc).
#[derive(Debug, Default)]
struct RouteTracker {
    routes: Vec<DefaultRoute>,
}

impl RouteTracker {
    fn reset(&mut self, snap: &NetSnapshot) {
        self.routes = snap.routes.clone();
    }

    fn has_v4_route_on(&self, index: u32) -> bool {
        self.routes
            .iter()
            .any(|r| r.index == index && r.family == Family::V4)
    }

    /// Folds `ev` in; true when a re-dump is needed to learn what the kernel did silently.
    fn needs_resync(&mut self, ev: &NetEvent, replace: bool) -> bool {
        match ev {
            NetEvent::NewRoute(r) => {
                if !self.routes.contains(r) {
                    self.routes.push(r.clone());
                }
                // The replaced route (if any) got no RTM_DELROUTE.
                replace
            }
            NetEvent::DelRoute(r) => {
                self.routes.retain(|x| x != r);
                false
            }
            NetEvent::DelLink { index } => {
                self.routes.retain(|r| r.index != *index);
                false
            }
            NetEvent::NewLink(link) => !link.up && self.has_v4_route_on(link.index),
            NetEvent::DelAddr(a) => a.family() == Family::V4 && self.has_v4_route_on(a.index),
            NetEvent::NewAddr(_)
            | NetEvent::Snapshot(_)
            | NetEvent::NewNeighbour(_)
            | NetEvent::DelNeighbour(_) => false,
        }
    }
}

/// Dumps links, then addresses, then IPv4 and IPv6 routes (one dump at a time: the kernel
/// answers EBUSY to a second concurrent dump on the same socket).
/// The neighbour table only when asked (`neighbours`): nothing else needs it, and some netlink
/// layers (qemu's user-mode emulation) cannot dump it.
async fn dump_snapshot(handle: &mut Handle, neighbours: bool) -> Result<NetSnapshot, NetlinkError> {
    let mut snap = NetSnapshot::default();
    for msg in dump(handle, RouteNetlinkMessage::GetLink(LinkMessage::default())).await? {
        if let RouteNetlinkMessage::NewLink(m) = msg {
            snap.links.extend(link(&m));
        }
    }
    for msg in dump(
        handle,
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )
    .await?
    {
        if let RouteNetlinkMessage::NewAddress(m) = msg {
            snap.addrs.extend(address(&m));
        }
    }
    if neighbours {
        let mut req = NeighbourMessage::default();
        req.header.family = AddressFamily::Inet6;
        for msg in dump(handle, RouteNetlinkMessage::GetNeighbour(req)).await? {
            if let RouteNetlinkMessage::NewNeighbour(m) = msg {
                snap.neighbours.extend(neighbour(&m));
            }
        }
    }
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        let mut req = RouteMessage::default();
        req.header.address_family = family;
        for msg in dump(handle, RouteNetlinkMessage::GetRoute(req)).await? {
            if let RouteNetlinkMessage::NewRoute(m) = msg {
                snap.routes.extend(default_route(&m));
            }
        }
    }
    Ok(snap)
}

/// Sends one dump request and collects the replies.
async fn dump(
    handle: &mut Handle,
    request: RouteNetlinkMessage,
) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
    let what = format!("{:?}", request.message_type());
    let mut req = NetlinkMessage::from(request);
    req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut replies = handle
        .request(req)
        // Its only error is RequestFailed (the connection is gone). Not formatted through
        // rtnetlink::Error's Display, whose UnexpectedMessage arm prints a whole message with
        // Debug: that would link the Debug code of every message type netlink-packet-route
        // knows (about 60 KB on aarch64).
        .map_err(|_| {
            NetlinkError::Request(format!("dump {what}: the netlink connection is closed"))
        })?;
    let mut out = Vec::new();
    while let Some(msg) = replies.next().await {
        if msg.header.flags & NLM_F_DUMP_INTR != 0 {
            // The table changed during the dump; the notifications queued meanwhile repair it.
            trace!(what, "dump interrupted by a concurrent change");
        }
        match msg.payload {
            NetlinkPayload::InnerMessage(inner) => out.push(inner),
            NetlinkPayload::Error(e) if e.code.is_some() => {
                return Err(NetlinkError::Request(format!("dump {what}: {e}")));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Converts one notification into our event; None for anything we do not track.
fn event(msg: RouteNetlinkMessage) -> Option<NetEvent> {
    match msg {
        RouteNetlinkMessage::NewLink(m) => link(&m).map(NetEvent::NewLink),
        RouteNetlinkMessage::DelLink(m) if is_link_message(&m) => Some(NetEvent::DelLink {
            index: m.header.index,
        }),
        RouteNetlinkMessage::NewAddress(m) => address(&m).map(NetEvent::NewAddr),
        RouteNetlinkMessage::DelAddress(m) => address(&m).map(NetEvent::DelAddr),
        RouteNetlinkMessage::NewRoute(m) => default_route(&m).map(NetEvent::NewRoute),
        RouteNetlinkMessage::NewNeighbour(m) => neighbour(&m).map(NetEvent::NewNeighbour),
        RouteNetlinkMessage::DelNeighbour(m) => neighbour(&m).map(NetEvent::DelNeighbour),
        RouteNetlinkMessage::DelRoute(m) => default_route(&m).map(NetEvent::DelRoute),
        _ => None,
    }
}

/// True for real link messages. The bridge driver also sends RTM_NEWLINK/RTM_DELLINK with
/// family AF_BRIDGE to the link group about its ports; a port leaving a bridge is not the
/// link disappearing, so those are ignored.
/// An IPv6 neighbour entry; None for other families and entries without a destination.
fn neighbour(m: &NeighbourMessage) -> Option<Neighbour> {
    if m.header.family != AddressFamily::Inet6 {
        return None;
    }
    let mut addr = None;
    let mut mac = None;
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
                addr = Some(IpAddr::V6(*ip));
            }
            NeighbourAttribute::LinkLayerAddress(l) => {
                mac = <[u8; 6]>::try_from(l.as_slice()).ok().map(Mac);
            }
            _ => {}
        }
    }
    let state = match m.header.state {
        NudState::Incomplete => NeighbourState::Incomplete,
        NudState::Reachable => NeighbourState::Reachable,
        NudState::Stale => NeighbourState::Stale,
        NudState::Delay => NeighbourState::Delay,
        NudState::Probe => NeighbourState::Probe,
        NudState::Failed => NeighbourState::Failed,
        NudState::Noarp => NeighbourState::Noarp,
        NudState::Permanent => NeighbourState::Permanent,
        _ => NeighbourState::Other,
    };
    Some(Neighbour {
        index: m.header.ifindex,
        addr: addr?,
        mac,
        state,
    })
}

fn is_link_message(m: &LinkMessage) -> bool {
    m.header.interface_family == AddressFamily::Unspec
}

/// RTM_NEWLINK → [`Link`]; None for bridge-port messages or a message without a name.
fn link(m: &LinkMessage) -> Option<Link> {
    if !is_link_message(m) {
        return None;
    }
    let name = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })?;
    Some(Link {
        index: m.header.index,
        name,
        up: m.header.flags.contains(LinkFlags::Up),
        point_to_point: m.header.flags.contains(LinkFlags::Pointopoint),
    })
}

/// RTM_NEWADDR/RTM_DELADDR → [`WanAddress`]; None for other families or no address.
fn address(m: &AddressMessage) -> Option<WanAddress> {
    let family = match m.header.family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    let mut local = None;
    let mut address = None;
    let mut flags = None;
    let mut lifetimes = (Lifetime::Forever, Lifetime::Forever);
    for attr in &m.attributes {
        match attr {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = Some(*f),
            AddressAttribute::CacheInfo(ci) => {
                lifetimes = (
                    Lifetime::from_kernel(ci.ifa_preferred),
                    Lifetime::from_kernel(ci.ifa_valid),
                );
            }
            _ => {}
        }
    }
    // On point-to-point links IFA_LOCAL is ours and IFA_ADDRESS the far end; IPv6 usually
    // carries IFA_ADDRESS only.
    let addr: IpAddr = local.or(address)?;
    if Family::of(&addr) != family {
        return None;
    }
    let peer = address.filter(|a| *a != addr);
    // IFA_FLAGS (32 bits) is authoritative; the 8-bit header field only carries the low
    // byte. Fall back to it for kernels older than 3.14 that lack the attribute.
    let flags =
        flags.unwrap_or_else(|| AddressFlags::from_bits_retain(u32::from(m.header.flags.bits())));
    Some(WanAddress {
        index: m.header.index,
        addr,
        prefix_len: m.header.prefix_len,
        peer,
        scope: scope(m.header.scope),
        flags: addr_flags(flags, family),
        preferred: lifetimes.0,
        valid: lifetimes.1,
    })
}

fn scope(s: AddressScope) -> Scope {
    match s {
        AddressScope::Universe => Scope::Universe,
        AddressScope::Site => Scope::Site,
        AddressScope::Link => Scope::Link,
        AddressScope::Host => Scope::Host,
        AddressScope::Nowhere => Scope::Nowhere,
        AddressScope::Other(v) => Scope::Other(v),
        // AddressScope is non-exhaustive; anything new is carried by its number.
        other => Scope::Other(u8::from(other)),
    }
}

fn addr_flags(f: AddressFlags, family: Family) -> AddrFlags {
    // IFA_F_SECONDARY and IFA_F_TEMPORARY are the same bit (0x01): secondary on IPv4,
    // an RFC 8981 temporary address on IPv6.
    let low_bit = f.contains(AddressFlags::Secondary);
    AddrFlags {
        secondary: low_bit && family == Family::V4,
        temporary: low_bit && family == Family::V6,
        tentative: f.contains(AddressFlags::Tentative),
        deprecated: f.contains(AddressFlags::Deprecated),
        dadfailed: f.contains(AddressFlags::Dadfailed),
        optimistic: f.contains(AddressFlags::Optimistic),
        permanent: f.contains(AddressFlags::Permanent),
    }
}

/// RTM_NEWROUTE/RTM_DELROUTE → [`DefaultRoute`]: only unicast default routes (prefix length 0)
/// of the main table with an output interface; everything else is None.
fn default_route(m: &RouteMessage) -> Option<DefaultRoute> {
    let family = match m.header.address_family {
        AddressFamily::Inet => Family::V4,
        AddressFamily::Inet6 => Family::V6,
        _ => return None,
    };
    if m.header.destination_prefix_length != 0 || m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(m.header.table);
    let mut oif = None;
    let mut metric = 0;
    for attr in &m.attributes {
        match attr {
            // Tables above 255 only fit in RTA_TABLE (the header then says RT_TABLE_COMPAT).
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => metric = *p,
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    Some(DefaultRoute {
        family,
        index: oif?,
        metric,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::CacheInfo;
    use netlink_packet_route::route::RouteAddress;
    use std::net::Ipv4Addr;

    fn link_msg(index: u32, name: &str, flags: LinkFlags) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = flags;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m
    }

    fn addr_msg(family: AddressFamily, index: u32, prefix_len: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = family;
        m.header.index = index;
        m.header.prefix_len = prefix_len;
        m
    }

    fn cache_info(preferred: u32, valid: u32) -> AddressAttribute {
        let mut ci = CacheInfo::default();
        ci.ifa_preferred = preferred;
        ci.ifa_valid = valid;
        AddressAttribute::CacheInfo(ci)
    }

    fn route_msg(family: AddressFamily, dst_len: u8, attrs: Vec<RouteAttribute>) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = family;
        m.header.destination_prefix_length = dst_len;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.kind = RouteType::Unicast;
        m.attributes = attrs;
        m
    }

    #[test]
    fn link_reads_name_up_and_point_to_point() {
        let l = link(&link_msg(7, "ppp0", LinkFlags::Up | LinkFlags::Pointopoint)).unwrap();
        assert_eq!(
            l,
            Link {
                index: 7,
                name: "ppp0".into(),
                up: true,
                point_to_point: true
            }
        );
        let l = link(&link_msg(2, "eth0", LinkFlags::Broadcast)).unwrap();
        assert!(!l.up && !l.point_to_point);
    }

    #[test]
    fn link_without_name_is_dropped() {
        let mut m = link_msg(7, "x", LinkFlags::Up);
        m.attributes.clear();
        assert_eq!(link(&m), None);
    }

    #[test]
    fn bridge_port_messages_are_not_link_changes() {
        let mut m = link_msg(4, "v0", LinkFlags::Up);
        m.header.interface_family = AddressFamily::Bridge;
        assert_eq!(event(RouteNetlinkMessage::NewLink(m.clone())), None);
        assert_eq!(event(RouteNetlinkMessage::DelLink(m)), None);
        let m = link_msg(4, "v0", LinkFlags::Up);
        assert_eq!(
            event(RouteNetlinkMessage::DelLink(m)),
            Some(NetEvent::DelLink { index: 4 })
        );
    }

    #[test]
    fn ipv4_address_with_equal_local_and_address_has_no_peer() {
        let ip: IpAddr = Ipv4Addr::new(192, 0, 2, 10).into();
        let mut m = addr_msg(AddressFamily::Inet, 3, 24);
        m.attributes = vec![
            AddressAttribute::Address(ip),
            AddressAttribute::Local(ip),
            AddressAttribute::Flags(AddressFlags::Permanent),
        ];
        let a = address(&m).unwrap();
        assert_eq!(a.addr, ip);
        assert_eq!(a.peer, None);
        assert_eq!(a.prefix_len, 24);
        assert_eq!(a.index, 3);
        assert_eq!(a.scope, Scope::Universe);
        assert!(a.flags.permanent);
        // No IFA_CACHEINFO: treat as static.
        assert_eq!(
            (a.preferred, a.valid),
            (Lifetime::Forever, Lifetime::Forever)
        );
    }

    #[test]
    fn point_to_point_address_is_local_and_peer_is_address() {
        let local: IpAddr = Ipv4Addr::new(100, 64, 0, 2).into();
        let peer: IpAddr = Ipv4Addr::new(10, 64, 0, 1).into();
        let mut m = addr_msg(AddressFamily::Inet, 9, 32);
        m.attributes = vec![
            AddressAttribute::Address(peer),
            AddressAttribute::Local(local),
        ];
        let a = address(&m).unwrap();
        assert_eq!(a.addr, local);
        assert_eq!(a.peer, Some(peer));
    }

    #[test]
    fn ipv6_address_only_has_ifa_address() {
        let ip: IpAddr = "2001:db8::5".parse().unwrap();
        let mut m = addr_msg(AddressFamily::Inet6, 2, 64);
        m.attributes = vec![AddressAttribute::Address(ip), cache_info(100, 200)];
        let a = address(&m).unwrap();
        assert_eq!(a.addr, ip);
        assert_eq!(a.peer, None);
        assert_eq!(a.preferred, Lifetime::Secs(100));
        assert_eq!(a.valid, Lifetime::Secs(200));
        let mut m = addr_msg(AddressFamily::Inet6, 2, 64);
        m.attributes = vec![
            AddressAttribute::Address(ip),
            cache_info(u32::MAX, u32::MAX),
        ];
        let a = address(&m).unwrap();
        assert_eq!(
            (a.preferred, a.valid),
            (Lifetime::Forever, Lifetime::Forever)
        );
    }

    #[test]
    fn the_low_flag_bit_is_temporary_on_ipv6_and_secondary_on_ipv4() {
        let mut m = addr_msg(AddressFamily::Inet6, 2, 64);
        m.attributes = vec![
            AddressAttribute::Address("2001:db8::7".parse().unwrap()),
            AddressAttribute::Flags(AddressFlags::Secondary | AddressFlags::Deprecated),
        ];
        let f = address(&m).unwrap().flags;
        assert!(f.temporary && f.deprecated && !f.secondary);

        let mut m = addr_msg(AddressFamily::Inet, 2, 24);
        m.attributes = vec![
            AddressAttribute::Local("192.0.2.7".parse().unwrap()),
            AddressAttribute::Flags(AddressFlags::Secondary),
        ];
        let f = address(&m).unwrap().flags;
        assert!(f.secondary && !f.temporary);
    }

    #[test]
    fn the_32_bit_flags_attribute_wins_over_the_header_byte() {
        let mut m = addr_msg(AddressFamily::Inet6, 2, 64);
        // The header byte claims tentative; IFA_FLAGS says DAD finished.
        m.header.flags = netlink_packet_route::address::AddressHeaderFlags::Tentative;
        m.attributes = vec![
            AddressAttribute::Address("2001:db8::8".parse().unwrap()),
            AddressAttribute::Flags(AddressFlags::Permanent | AddressFlags::StablePrivacy),
        ];
        let f = address(&m).unwrap().flags;
        assert!(!f.tentative && f.permanent);
        // Without the attribute (pre-3.14 kernels) the header byte is all there is.
        m.attributes.truncate(1);
        assert!(address(&m).unwrap().flags.tentative);
    }

    #[test]
    fn every_flag_maps() {
        let all = AddressFlags::Tentative
            | AddressFlags::Dadfailed
            | AddressFlags::Optimistic
            | AddressFlags::Deprecated
            | AddressFlags::Permanent;
        let f = addr_flags(all, Family::V6);
        assert!(f.tentative && f.dadfailed && f.optimistic && f.deprecated && f.permanent);
        assert!(!f.temporary && !f.secondary);
        assert_eq!(
            addr_flags(AddressFlags::empty(), Family::V4),
            AddrFlags::default()
        );
    }

    #[test]
    fn scope_maps() {
        let mut m = addr_msg(AddressFamily::Inet6, 2, 64);
        m.header.scope = AddressScope::Link;
        m.attributes = vec![AddressAttribute::Address("fe80::1".parse().unwrap())];
        assert_eq!(address(&m).unwrap().scope, Scope::Link);
        m.header.scope = AddressScope::Other(42);
        assert_eq!(address(&m).unwrap().scope, Scope::Other(42));
    }

    #[test]
    fn addresses_of_other_families_or_without_address_are_dropped() {
        let m = addr_msg(AddressFamily::Inet, 2, 24);
        assert_eq!(address(&m), None);
        let mut m = addr_msg(AddressFamily::Packet, 2, 0);
        m.attributes = vec![AddressAttribute::Address(Ipv4Addr::LOCALHOST.into())];
        assert_eq!(address(&m), None);
    }

    #[test]
    fn default_route_with_oif_and_priority() {
        let m = route_msg(
            AddressFamily::Inet,
            0,
            vec![
                RouteAttribute::Table(254),
                RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 1))),
                RouteAttribute::Oif(3),
                RouteAttribute::Priority(100),
            ],
        );
        assert_eq!(
            default_route(&m),
            Some(DefaultRoute {
                family: Family::V4,
                index: 3,
                metric: 100
            })
        );
        let m = route_msg(AddressFamily::Inet6, 0, vec![RouteAttribute::Oif(4)]);
        assert_eq!(
            default_route(&m),
            Some(DefaultRoute {
                family: Family::V6,
                index: 4,
                metric: 0
            })
        );
    }

    #[test]
    fn non_default_routes_are_dropped() {
        // Not a default route.
        let m = route_msg(
            AddressFamily::Inet,
            24,
            vec![
                RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(192, 0, 2, 0))),
                RouteAttribute::Oif(3),
            ],
        );
        assert_eq!(default_route(&m), None);
        // No output interface (multipath).
        let m = route_msg(AddressFamily::Inet, 0, vec![]);
        assert_eq!(default_route(&m), None);
        // Another table, in the header or only in RTA_TABLE.
        let mut m = route_msg(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(3)]);
        m.header.table = 100;
        assert_eq!(default_route(&m), None);
        let mut m = route_msg(
            AddressFamily::Inet,
            0,
            vec![RouteAttribute::Oif(3), RouteAttribute::Table(1000)],
        );
        m.header.table = 252; // RT_TABLE_COMPAT
        assert_eq!(default_route(&m), None);
        // Unreachable / blackhole defaults.
        let mut m = route_msg(AddressFamily::Inet6, 0, vec![RouteAttribute::Oif(1)]);
        m.header.kind = RouteType::Unreachable;
        assert_eq!(default_route(&m), None);
        // Not IP.
        let m = route_msg(AddressFamily::Mpls, 0, vec![RouteAttribute::Oif(1)]);
        assert_eq!(default_route(&m), None);
    }

    #[test]
    fn events_cover_new_and_del() {
        let m = route_msg(AddressFamily::Inet, 0, vec![RouteAttribute::Oif(3)]);
        let r = DefaultRoute {
            family: Family::V4,
            index: 3,
            metric: 0,
        };
        assert_eq!(
            event(RouteNetlinkMessage::NewRoute(m.clone())),
            Some(NetEvent::NewRoute(r.clone()))
        );
        assert_eq!(
            event(RouteNetlinkMessage::DelRoute(m)),
            Some(NetEvent::DelRoute(r))
        );
        let mut a = addr_msg(AddressFamily::Inet6, 2, 64);
        a.attributes = vec![AddressAttribute::Address("2001:db8::1".parse().unwrap())];
        assert!(matches!(
            event(RouteNetlinkMessage::DelAddress(a)),
            Some(NetEvent::DelAddr(_))
        ));
        assert_eq!(
            event(RouteNetlinkMessage::GetLink(LinkMessage::default())),
            None
        );
    }

    #[test]
    fn silent_route_changes_trigger_a_resync() {
        let v4 = DefaultRoute {
            family: Family::V4,
            index: 3,
            metric: 100,
        };
        let mut t = RouteTracker::default();
        t.reset(&NetSnapshot {
            neighbours: Vec::new(),
            routes: vec![v4.clone()],
            ..NetSnapshot::default()
        });
        let down = Link {
            index: 3,
            name: "v0".into(),
            up: false,
            point_to_point: false,
        };
        // IPv4 routes vanish silently when their link goes down...
        assert!(t.needs_resync(&NetEvent::NewLink(down.clone()), false));
        // ...or loses an address.
        let mut a = WanAddress {
            index: 3,
            addr: "192.0.2.2".parse().unwrap(),
            prefix_len: 24,
            peer: None,
            scope: Scope::Universe,
            flags: AddrFlags::default(),
            preferred: Lifetime::Forever,
            valid: Lifetime::Forever,
        };
        assert!(t.needs_resync(&NetEvent::DelAddr(a.clone()), false));
        // Not for other links or IPv6 addresses.
        a.index = 4;
        assert!(!t.needs_resync(&NetEvent::DelAddr(a.clone()), false));
        a.index = 3;
        a.addr = "2001:db8::2".parse().unwrap();
        assert!(!t.needs_resync(&NetEvent::DelAddr(a), false));
        // `ip route replace` drops the old route without a DELROUTE.
        let other = DefaultRoute {
            index: 4,
            ..v4.clone()
        };
        assert!(t.needs_resync(&NetEvent::NewRoute(other.clone()), true));
        assert!(!t.needs_resync(&NetEvent::NewRoute(other), false));
        // Once the route is known gone, a down link is nothing special.
        assert!(!t.needs_resync(&NetEvent::DelRoute(v4), false));
        assert!(!t.needs_resync(&NetEvent::NewLink(down), false));
    }

    #[test]
    fn ipv6_neighbours_with_their_mac_and_state() {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.ifindex = 4;
        m.header.state = NudState::Stale;
        m.attributes = vec![
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(
                "2001:db8::abcd".parse().unwrap(),
            )),
            NeighbourAttribute::LinkLayerAddress(vec![0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde]),
        ];
        let n = Neighbour {
            index: 4,
            addr: "2001:db8::abcd".parse().unwrap(),
            mac: Some(Mac([0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde])),
            state: NeighbourState::Stale,
        };
        assert_eq!(
            event(RouteNetlinkMessage::NewNeighbour(m.clone())),
            Some(NetEvent::NewNeighbour(n.clone()))
        );
        assert_eq!(
            event(RouteNetlinkMessage::DelNeighbour(m.clone())),
            Some(NetEvent::DelNeighbour(n))
        );
        // FAILED entries carry no link-layer address.
        let mut failed = m.clone();
        failed.header.state = NudState::Failed;
        failed.attributes.truncate(1);
        assert!(matches!(
            event(RouteNetlinkMessage::NewNeighbour(failed)),
            Some(NetEvent::NewNeighbour(Neighbour {
                mac: None,
                state: NeighbourState::Failed,
                ..
            }))
        ));
        let mut v4 = m;
        v4.header.family = AddressFamily::Inet;
        assert_eq!(event(RouteNetlinkMessage::NewNeighbour(v4)), None);
    }
}
