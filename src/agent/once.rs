//! The one-shot commands built on the agent's parts: `dynhostd update` (one pass: decide,
//! send, wait for the replies, save), `dynhostd detect` and `status --verify`'s look at the
//! name servers.

use super::*;

/// What one `dynhostd update` pass achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateReport {
    /// Every enabled record holds the WAN's current address (updated now or already).
    pub all_current: bool,
}

/// One pass: take the WAN's addresses (or the caller's), send what differs from the state file
/// (everything with `force`), wait for the replies, save. Back-off from earlier failures is
/// skipped: the user (or pppd) asked now. Stopped hosts stay stopped.
pub async fn update_once(
    config: &Config,
    opts: &UpdateOptions,
) -> Result<UpdateReport, AgentError> {
    let state_path = config.state_file();
    let mut decider = new_decider(config);
    let mut pusher = Pusher::new(config, opts.dry_run, Prepared::build(config, None)?);
    let dc = decider_config(config);
    let covered = |f| opts.ips.iter().any(|ip| crate::record::Family::of(ip) == f);
    let needs_kernel = dc.records.iter().any(|r| !covered(r.key.family));
    let view = if needs_kernel {
        NetView::from_snapshot(netlink::snapshot(follows_neighbours(config)).await?)
    } else {
        NetView::default()
    };
    let now = Now::system();
    decider.set_view(view);
    for ip in &opts.ips {
        decider.set_override(*ip);
    }
    // Every action the decider asks for is carried out; the pass ends when nothing is out (a
    // failure backs off, and nothing here waits for a back-off to end).
    let mut actions = decider.decide_now(now, opts.force);
    loop {
        // One pass: the state is saved once, at the end.
        perform(actions, &mut pusher);
        let Some(done) = pusher.next().await else {
            break;
        };
        let events = pusher.batch(done);
        actions = decider.on_events(events, Now::system());
    }
    save_state(&decider, opts.dry_run, &state_path);
    pusher.wait_hooks().await;

    let mut all_current = true;
    for spec in &dc.records {
        let rec = decider.record(&spec.key).unwrap_or_default();
        match decider.current_choice(&spec.key) {
            WanChoice::Public(ip) if rec.published == Some(ip) && rec.stopped.is_none() => {}
            WanChoice::Public(ip) => {
                all_current = false;
                if let Some(stop) = &rec.stopped {
                    error!(record = %spec.key, "not updated: stopped after \"{}\": {}", stop.reason, stop.fix);
                } else {
                    error!(record = %spec.key, "not updated to {ip}: {}", rec.last_reply.as_deref().unwrap_or("no reply"));
                }
            }
            WanChoice::BehindNat | WanChoice::Nothing
                if spec.source != crate::wan::policy::AddressSource::Wan =>
            {
                all_current = false;
                error!(record = %spec.key, "{} gives no usable {} address: nothing to publish (`dynhostd detect` says why)", spec.source, spec.key.family);
            }
            WanChoice::BehindNat => {
                all_current = false;
                error!(record = %spec.key, "the WAN address is private or CGNAT and no public address was found over HTTP: nothing to publish");
            }
            WanChoice::Nothing => {
                all_current = false;
                error!(record = %spec.key, "no routable {} address on the WAN: nothing to publish", spec.key.family);
            }
        }
    }
    Ok(UpdateReport { all_current })
}

/// `dynhostd detect`: one netlink dump, the policy's verdict on every WAN address, and — for
/// each family that needs it (or all, with `ask_http`) — what every what's-my-IP source says.
/// With a `[wan]` failover list (`uplinks`), the WAN is its first usable interface, else
/// `interface` (then the list's first).
pub async fn detect(
    interface: Option<&str>,
    uplinks: Option<&crate::wan::policy::Uplinks>,
    policy: &crate::wan::policy::AddressPolicy,
    detect: &crate::config::DetectConfig,
    ask_http: bool,
    records: &[(RecordKey, crate::wan::policy::AddressSource)],
) -> Result<crate::report::Detection, AgentError> {
    use crate::record::Family;
    let neighbours = records.iter().any(|(_, source)| source.uses_neighbours());
    let view = NetView::from_snapshot(netlink::snapshot(neighbours).await?);
    // A `[wan]` failover list: the interface a freshly started agent would follow (IPv4's,
    // else IPv6's; else `interface`, the list's first, so `detect` shows why).
    let first = |f| uplinks?.first_usable(&view, f, policy, true);
    let interface = first(Family::V4)
        .or_else(|| first(Family::V6))
        .or(interface);
    let mut d = crate::report::detect(&view, interface, policy);
    if let Some(u) = uplinks {
        d.wan_from = "the first usable of the failover list";
        d.failover = Some(crate::report::failover_text(&view, u, policy, true));
    }
    d.http_mode = detect.mode.name();
    let detector = PublicIpDetector::new(detect, policy.clone());
    for (family, choice) in [(Family::V4, d.ipv4), (Family::V6, d.ipv6)] {
        let needed = detect.mode.asks_http(choice);
        if (needed || ask_http) && !detect.sources(family).is_empty() {
            let bind = d
                .candidates
                .iter()
                .find(|c| {
                    crate::record::Family::of(&c.address) == family
                        && c.scope == crate::wan::Scope::Universe
                })
                .map(|c| c.address);
            let found = detector.detect(family, bind, true).await;
            if needed && let Some(ip) = found.address {
                match family {
                    Family::V4 => d.ipv4 = WanChoice::Public(ip),
                    Family::V6 => d.ipv6 = WanChoice::Public(ip),
                }
            }
            d.http.push(found);
        }
    }
    d.hosts = crate::report::host_sources(&view, interface, policy, records, &d);
    Ok(d)
}

/// `dynhostd status --verify`: what each enabled record holds at its authoritative name
/// servers, asked concurrently.
pub async fn verify_all(config: &Config) -> Vec<(RecordKey, Result<Vec<IpAddr>, String>)> {
    let verifier = verifier(config);
    let mut tasks = JoinSet::new();
    for key in config.enabled_hosts().flat_map(|h| h.records()) {
        let verifier = verifier.clone();
        tasks.spawn(async move {
            let shows = verifier
                .published(&key.hostname, key.family)
                .await
                .map_err(|e| e.to_string());
            (key, shows)
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(v) = done {
            out.push(v);
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
