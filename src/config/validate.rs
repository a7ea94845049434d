//! The validation layer: a [`RawConfig`] into a [`Config`] whose types cannot hold a bad value.
//! Every error names the key and the line.

use super::fields::{validate_ca_file, validate_hostname, validate_server};
use super::raw::{
    Interfaces, RawConfig, RawDetect, RawHost, RawHttp, RawUpdate, RawVerify, RawWan,
};
use super::secrets::{missing_secret, secret_source};
use super::*;
use crate::wan::policy::Uplinks;

pub(super) fn validate(raw: RawConfig, ctx: &Ctx<'_>, base: &Path) -> Result<Config, ConfigError> {
    let wan = validate_wan(raw.wan, ctx)?;
    let state_dir = match raw.state.dir {
        Some(d) if d.get_ref().trim().is_empty() => {
            return Err(ctx.err(&d, "state.dir", "must not be empty"));
        }
        Some(d) => PathBuf::from(d.into_inner()),
        None => PathBuf::from(DEFAULT_STATE_DIR),
    };
    let control_socket = match raw.state.control {
        Some(c) if !Path::new(c.get_ref()).is_absolute() => {
            return Err(ctx.err(&c, "state.control", "must be an absolute path"));
        }
        Some(c) => Some(PathBuf::from(c.into_inner())),
        None => None,
    };
    let http = validate_http(raw.http, ctx)?;
    let detect = validate_detect(raw.detect, ctx)?;
    let update = validate_update(raw.update, ctx)?;
    let verify = validate_verify(raw.verify, ctx)?;
    let global_exec = match &raw.hook.exec {
        Some(e) => Some(validate_exec(e, "hook.exec", ctx, base)?),
        None => None,
    };
    let hook_timeout = match &raw.hook.timeout {
        Some(t) => {
            let d = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "hook.timeout", m))?;
            if d.is_zero() {
                return Err(ctx.err(t, "hook.timeout", "must be more than 0"));
            }
            at_most(d, MAX_HOOK_TIMEOUT, t, "hook.timeout", ctx)?
        }
        None => Duration::from_secs(30),
    };
    // A notification or health URL written out here is a secret too (it holds the token).
    let inline_urls = raw.notify.iter().any(|n| n.url.is_some())
        || raw.health.as_ref().is_some_and(|h| h.url.is_some());
    let notify = super::notify::validate_notify(raw.notify, ctx, base)?;
    let health = super::notify::validate_health(raw.health, ctx, base)?;
    let ovh_api = match raw.ovh_api {
        Some(o) => Some(ovh_api::validate(o, ctx, base)?),
        None => None,
    };
    // With [ovh_api] and no host yet, the file is the first step on a new router (the `ovh`
    // commands add the hosts); `run` and `update` ask for a host themselves (`require_host`).
    if raw.hosts.is_empty() && ovh_api.is_none() {
        return Err(ctx.err_at(
            None,
            "host",
            "no [[host]] entry: add at least one (hostname, login, password)",
        ));
    }
    let mut hosts = Vec::new();
    let mut seen = BTreeSet::new();
    let inline_passwords = inline_urls || raw.hosts.iter().any(|h| h.get_ref().inline_password());
    // Each host's line is counted on from the previous host's, not from the top: from the
    // top it is quadratic, and with 1000 hosts that was most of the start-up time (BENCHMARKS.md).
    let (mut counted_to, mut line_there) = (0, 1);
    for (i, h) in raw.hosts.into_iter().enumerate() {
        let start = h.span().start;
        let line = if start >= counted_to {
            line_there += ctx.text.as_bytes()[counted_to..start.min(ctx.text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            counted_to = start.min(ctx.text.len());
            line_there
        } else {
            ctx.line_of(start)
        };
        let mut host = validate_host(h.into_inner(), i, line, start, ctx, base, &wan)?;
        if host.exec.is_none() {
            host.exec = global_exec.clone();
        }
        for key in host.records() {
            if !seen.insert(key.clone()) {
                return Err(ctx.err_at(
                    Some(start),
                    &format!("host[{i}].hostname"),
                    format!("the {key} record is already kept by an earlier [[host]]"),
                ));
            }
        }
        hosts.push(host);
    }
    Ok(Config {
        wan,
        state_dir,
        control_socket,
        http,
        detect,
        update,
        verify,
        hook_timeout,
        hosts,
        inline_passwords,
        ovh_api,
        notify,
        health,
    })
}

fn validate_wan(raw: RawWan, ctx: &Ctx<'_>) -> Result<WanConfig, ConfigError> {
    let failback = match &raw.failback {
        Some(f) => validate_failback(f, "wan.failback", ctx)?,
        None => DEFAULT_FAILBACK,
    };
    let requires_route = raw.failover_requires_route.is_none_or(Spanned::into_inner);
    let names = raw.interface.as_ref();
    let names = names.map(|i| interface_names(i, "wan.interface", ctx));
    let (interface, uplinks) = match names.transpose()? {
        None => (None, None),
        Some(mut one) if one.len() == 1 => (one.pop(), None),
        Some(names) => (
            None,
            Some(Uplinks {
                names,
                failback,
                requires_route,
            }),
        ),
    };
    let debounce = match raw.debounce {
        Some(d) => {
            let v = parse_duration(d.get_ref()).map_err(|m| ctx.err(&d, "wan.debounce", m))?;
            if v > Duration::from_secs(600) {
                return Err(ctx.err(&d, "wan.debounce", "at most 10m"));
            }
            v
        }
        None => DEFAULT_DEBOUNCE,
    };
    let prefixes = |list: Option<Vec<Spanned<String>>>, key: &str| {
        list.unwrap_or_default()
            .into_iter()
            .map(|p| {
                p.get_ref()
                    .parse::<Prefix>()
                    .map_err(|m| ctx.err(&p, key, m))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let netlink_buffer = match raw.netlink_buffer {
        None => None,
        Some(b) => {
            let v = *b.get_ref();
            if !(4096..=64 * 1024 * 1024).contains(&v) {
                return Err(ctx.err(&b, "wan.netlink_buffer", "bytes, between 4096 and 67108864"));
            }
            Some(v as usize)
        }
    };
    Ok(WanConfig {
        interface,
        uplinks,
        failback,
        failover_requires_route: requires_route,
        debounce,
        netlink_buffer,
        policy: AddressPolicy {
            accept: prefixes(raw.accept, "wan.accept")?,
            ignore: prefixes(raw.ignore, "wan.ignore")?,
        },
    })
}

/// An `interface` value: each name a Linux interface name; a list of distinct names.
fn interface_names(
    v: &Spanned<Interfaces>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<String>, ConfigError> {
    let names = &v.get_ref().0;
    if names.is_empty() {
        return Err(ctx.err(v, key, "an empty list: give at least one interface"));
    }
    for (i, name) in names.iter().enumerate() {
        // IFNAMSIZ is 16 including the NUL.
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(ctx.err(
                v,
                key,
                format!(
                    "{name:?} is not a Linux interface name (1 to 15 characters, no '/' or spaces)"
                ),
            ));
        }
        if names[..i].contains(name) {
            return Err(ctx.err(v, key, format!("{name:?} is listed twice")));
        }
    }
    Ok(names.clone())
}

/// `failback`: how long a higher-priority uplink must stay usable before it is followed again.
fn validate_failback(
    v: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Duration, ConfigError> {
    let d = parse_duration(v.get_ref()).map_err(|m| ctx.err(v, key, m))?;
    at_most(d, Duration::from_secs(86_400), v, key, ctx)
}

fn validate_http(raw: RawHttp, ctx: &Ctx<'_>) -> Result<HttpConfig, ConfigError> {
    let mut http = HttpConfig::default();
    let positive = |v: &Spanned<String>, key: &str| -> Result<Duration, ConfigError> {
        let d = parse_duration(v.get_ref()).map_err(|m| ctx.err(v, key, m))?;
        if d.is_zero() {
            return Err(ctx.err(v, key, "must be more than 0"));
        }
        Ok(d)
    };
    if let Some(t) = &raw.timeout {
        http.timeout = at_most(
            positive(t, "http.timeout")?,
            MAX_HTTP_TIMEOUT,
            t,
            "http.timeout",
            ctx,
        )?;
    }
    if let Some(t) = &raw.connect_timeout {
        http.connect_timeout = at_most(
            positive(t, "http.connect_timeout")?,
            MAX_HTTP_TIMEOUT,
            t,
            "http.connect_timeout",
            ctx,
        )?;
    }
    if let Some(n) = raw.max_concurrent {
        let v = *n.get_ref();
        if !(1..=1024).contains(&v) {
            return Err(ctx.err(&n, "http.max_concurrent", "must be between 1 and 1024"));
        }
        http.max_concurrent = v as usize;
    }
    Ok(http)
}

/// `d`, or an error at `v` when it is longer than `max`.
fn at_most(
    d: Duration,
    max: Duration,
    v: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
) -> Result<Duration, ConfigError> {
    if d > max {
        return Err(ctx.err(
            v,
            key,
            format!(
                "{:?} is too long: at most {:?}",
                v.get_ref(),
                format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// A hook program: an absolute path, or one relative to the config file's directory, to an
/// executable file this machine can run. Resolved here, once, to an absolute path: that exact
/// file is what runs (a relative name would be looked up in `$PATH` by exec, finding another
/// file than the one checked). It is run directly, never through a shell.
fn validate_exec(
    v: &Spanned<String>,
    key: &str,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<PathBuf, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let joined = base.join(v.get_ref());
    let path = std::path::absolute(&joined)
        .map_err(|e| ctx.err(v, key, format!("{}: {e}", joined.display())))?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| ctx.err(v, key, format!("{}: {e}", path.display())))?;
    let mode = meta.permissions().mode();
    if !meta.is_file() || mode & 0o111 == 0 {
        return Err(ctx.err(
            v,
            key,
            format!("{} is not an executable file", path.display()),
        ));
    }
    crate::hook::check_program(&path).map_err(|m| ctx.err(v, key, m))?;
    if mode & 0o022 != 0 {
        // Not refused (it runs as the agent's user either way), but whoever can write it can
        // run anything as that user, root on most routers.
        tracing::warn!(
            "{}",
            ctx.err(
                v,
                key,
                format!(
                    "{} is writable by group or others (mode {:o}): anyone who can write it runs commands as this agent; chmod go-w it",
                    path.display(),
                    mode & 0o7777
                ),
            )
        );
    }
    Ok(path)
}

fn validate_verify(raw: RawVerify, ctx: &Ctx<'_>) -> Result<VerifyConfig, ConfigError> {
    let mut v = VerifyConfig::default();
    if let Some(i) = &raw.interval {
        v.interval = parse_duration(i.get_ref()).map_err(|m| ctx.err(i, "verify.interval", m))?;
        if !v.interval.is_zero() && v.interval < Duration::from_secs(60) {
            return Err(ctx.err(
                i,
                "verify.interval",
                "at least 1m (or \"0\" to turn verification off)",
            ));
        }
    }
    let server = |s: &Spanned<String>, key: &str| {
        crate::dns::parse_server(s.get_ref()).ok_or_else(|| {
            ctx.err(
                s,
                key,
                format!("{:?}: an IP address, optionally with :port", s.get_ref()),
            )
        })
    };
    for s in raw.nameservers.unwrap_or_default() {
        v.nameservers.push(server(&s, "verify.nameservers")?);
    }
    if let Some(r) = &raw.resolver {
        v.resolver = Some(server(r, "verify.resolver")?);
    }
    if let Some(t) = &raw.timeout {
        v.timeout = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "verify.timeout", m))?;
        if v.timeout.is_zero() {
            return Err(ctx.err(t, "verify.timeout", "must be more than 0"));
        }
        at_most(v.timeout, MAX_DNS_TIMEOUT, t, "verify.timeout", ctx)?;
    }
    Ok(v)
}

fn validate_update(raw: RawUpdate, ctx: &Ctx<'_>) -> Result<UpdateConfig, ConfigError> {
    let mut u = UpdateConfig::default();
    let dur = |v: &Spanned<String>, key: &str| {
        parse_duration(v.get_ref()).map_err(|m| ctx.err(v, key, m))
    };
    if let Some(v) = &raw.min_interval {
        u.min_interval = dur(v, "update.min_interval")?;
    }
    if let Some(v) = &raw.refresh {
        u.refresh = dur(v, "update.refresh")?;
        if !u.refresh.is_zero() && u.refresh < Duration::from_secs(3600) {
            return Err(ctx.err(v, "update.refresh", "at least 1h (or \"0\" to turn it off): refreshing more often is what gets clients blocked"));
        }
    }
    if let Some(v) = &raw.retry_initial {
        u.retry_initial = dur(v, "update.retry_initial")?;
        if u.retry_initial < Duration::from_secs(1) {
            return Err(ctx.err(v, "update.retry_initial", "at least 1s"));
        }
    }
    if let Some(v) = &raw.retry_max {
        u.retry_max = dur(v, "update.retry_max")?;
    }
    // Checked once both are known: a retry_initial above the default retry_max is as wrong as
    // a retry_max below the default retry_initial.
    if u.retry_max < u.retry_initial {
        let (at, key) = match (&raw.retry_max, &raw.retry_initial) {
            (Some(v), _) => (v, "update.retry_max"),
            (None, Some(v)) => (v, "update.retry_initial"),
            (None, None) => unreachable!("the defaults are in order"),
        };
        return Err(ctx.err(
            at,
            key,
            format!(
                "retry_initial ({}) is more than retry_max ({}{}): the back-off starts at the first and stops growing at the second",
                format_duration(u.retry_initial),
                format_duration(u.retry_max),
                if raw.retry_max.is_none() { ", the default" } else { "" },
            ),
        ));
    }
    Ok(u)
}

fn validate_detect(raw: RawDetect, ctx: &Ctx<'_>) -> Result<DetectConfig, ConfigError> {
    let mut d = DetectConfig::default();
    if let Some(m) = &raw.mode {
        d.mode = match m.get_ref().as_str() {
            "auto" => DetectMode::Auto,
            "always" => DetectMode::Always,
            "never" => DetectMode::Never,
            other => {
                return Err(ctx.err(
                    m,
                    "detect.mode",
                    format!("{other:?}: use \"auto\", \"always\" or \"never\""),
                ));
            }
        };
    }
    let sources = |list: Vec<Spanned<String>>, key: &str, family: Family| {
        list.into_iter()
            .map(|u| {
                let url = Url::parse(u.get_ref()).map_err(|e| {
                    ctx.err(&u, key, format!("{:?} is not a URL: {e}", u.get_ref()))
                })?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || url.port() == Some(0)
                {
                    return Err(ctx.err(
                        &u,
                        key,
                        format!("{:?}: an http(s) URL is needed", u.get_ref()),
                    ));
                }
                // A literal address of the other family could only answer the other question.
                let literal = url.host_str().and_then(|h| {
                    h.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<IpAddr>()
                        .ok()
                });
                if let Some(ip) = literal
                    && Family::of(&ip) != family
                {
                    return Err(ctx.err(&u, key, format!("{ip} cannot answer over {family}")));
                }
                Ok(url)
            })
            .collect::<Result<Vec<_>, _>>()
    };
    if let Some(v) = raw.ipv4 {
        d.ipv4 = sources(v, "detect.ipv4", Family::V4)?;
    }
    if let Some(v) = raw.ipv6 {
        d.ipv6 = sources(v, "detect.ipv6", Family::V6)?;
    }
    if let Some(i) = &raw.interval {
        let v = parse_duration(i.get_ref()).map_err(|m| ctx.err(i, "detect.interval", m))?;
        // Dyn's rule: not more often than every few minutes; tests and labs may go lower, but
        // never below a second.
        if v < Duration::from_secs(1) {
            return Err(ctx.err(
                i,
                "detect.interval",
                "at least 1s (a few minutes is polite)",
            ));
        }
        d.interval = v;
    }
    if let Some(t) = &raw.timeout {
        let v = parse_duration(t.get_ref()).map_err(|m| ctx.err(t, "detect.timeout", m))?;
        if v.is_zero() {
            return Err(ctx.err(t, "detect.timeout", "must be more than 0"));
        }
        d.timeout = at_most(v, MAX_HTTP_TIMEOUT, t, "detect.timeout", ctx)?;
    }
    Ok(d)
}

fn validate_host(
    raw: RawHost,
    i: usize,
    line: usize,
    start: usize,
    ctx: &Ctx<'_>,
    base: &Path,
    wan: &WanConfig,
) -> Result<HostConfig, ConfigError> {
    let key = |k: &str| format!("host[{i}].{k}");
    let missing =
        |k: &str, what: &str| ctx.err_at(Some(start), &key(k), format!("missing: {what}"));

    let hostname_raw = raw.hostname.clone().ok_or_else(|| {
        missing(
            "hostname",
            "the DynHost name to keep current, e.g. \"home.example.com\"",
        )
    })?;
    let hostname = validate_hostname(hostname_raw.get_ref())
        .map_err(|m| ctx.err(&hostname_raw, &key("hostname"), m))?;

    let login_raw = raw
        .login
        .clone()
        .ok_or_else(|| missing("login", "the DynHost login, e.g. \"example.com-home\""))?;
    let login = login_raw.get_ref().clone();
    if login.is_empty() || login.contains(':') || login.chars().any(char::is_control) {
        return Err(ctx.err(
            &login_raw,
            &key("login"),
            "must be non-empty, without ':' or control characters (HTTP Basic auth)",
        ));
    }

    let password = resolve_password(&raw, &key, start, ctx, base)?;

    let family = match &raw.family {
        None => FamilySet::V4,
        Some(f) => match f.get_ref().as_str() {
            "ipv4" => FamilySet::V4,
            "ipv6" => FamilySet::V6,
            "both" => FamilySet::Both,
            other => {
                return Err(ctx.err(
                    f,
                    &key("family"),
                    format!("{other:?}: use \"ipv4\", \"ipv6\" or \"both\""),
                ));
            }
        },
    };

    let provider = match &raw.provider {
        None => Provider::Ovh,
        Some(p) => match p.get_ref().as_str() {
            "ovh" => Provider::Ovh,
            "dyndns2" => Provider::Dyndns2,
            other => {
                return Err(ctx.err(
                    p,
                    &key("provider"),
                    format!("{other:?}: use \"ovh\" or \"dyndns2\""),
                ));
            }
        },
    };

    let server = match (&raw.server, provider.default_server()) {
        (Some(s), _) => validate_server(s.get_ref()).map_err(|m| ctx.err(s, &key("server"), m))?,
        (None, Some(default)) => Url::parse(default).expect("built-in URL"),
        (None, None) => {
            return Err(missing(
                "server",
                "a dyndns2 provider needs its update URL, e.g. \"https://dyndns.example.net/nic/update\"",
            ));
        }
    };

    let ca_file = match &raw.ca_file {
        None => None,
        Some(c) => Some(validate_ca_file(c, &key("ca_file"), ctx, base)?),
    };

    let exec = match &raw.exec {
        Some(e) => Some(validate_exec(e, &key("exec"), ctx, base)?),
        None => None,
    };

    let (source_v4, source_v6) = validate_sources(&raw, family, &key, ctx, wan)?;

    Ok(HostConfig {
        hostname,
        login,
        password,
        family,
        provider,
        server,
        ca_file,
        exec,
        enabled: raw.enabled.map(Spanned::into_inner).unwrap_or(true),
        line,
        source_v4,
        source_v6,
    })
}

/// `interface`, `interface6`, `ipv6_prefix_from` and one host part: where each record's address
/// comes from. Nothing set: both follow `[wan]`, as before these keys existed.
fn validate_sources(
    raw: &RawHost,
    family: FamilySet,
    key: &dyn Fn(&str) -> String,
    ctx: &Ctx<'_>,
    wan: &WanConfig,
) -> Result<(AddressSource, AddressSource), ConfigError> {
    let failback = match &raw.failback {
        Some(f) => validate_failback(f, &key("failback"), ctx)?,
        None => wan.failback,
    };
    // One name is a plain interface; a list is followed with failover.
    let source = |names: Option<Vec<String>>| {
        names.map(|mut names| match names.len() {
            1 => AddressSource::Interface(names.remove(0)),
            _ => AddressSource::Uplinks(Uplinks {
                names,
                failback,
                requires_route: wan.failover_requires_route,
            }),
        })
    };
    let list = |v: &Option<Spanned<Interfaces>>, k: &str| -> Result<_, ConfigError> {
        let names = v.as_ref().map(|v| interface_names(v, &key(k), ctx));
        Ok(source(names.transpose()?))
    };
    let interface = list(&raw.interface, "interface")?;
    let interface6 = list(&raw.interface6, "interface6")?;
    let is_list = |s: &Option<AddressSource>| matches!(s, Some(AddressSource::Uplinks(_)));
    if let Some(f) = &raw.failback
        && !is_list(&interface)
        && !is_list(&interface6)
    {
        return Err(ctx.err(
            f,
            &key("failback"),
            "applies to a failover list only (interface = [\"primary\", \"backup\"])",
        ));
    }
    let ifname = |v: &Option<Spanned<String>>, k: &str| -> Result<Option<String>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let name = v.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(ctx.err(
                v,
                &key(k),
                format!(
                    "{name:?} is not a Linux interface name (1 to 15 characters, no '/' or spaces)"
                ),
            ));
        }
        Ok(Some(name.clone()))
    };
    let has_v6 = family != FamilySet::V4;
    let v6_only = |at: Option<usize>, k: &str| match at {
        Some(at) if !has_v6 => Err(ctx.err_at(
            Some(at),
            &key(k),
            "applies to the AAAA record only: set family = \"ipv6\" or \"both\"",
        )),
        _ => Ok(()),
    };
    let prefix_from = ifname(&raw.ipv6_prefix_from, "ipv6_prefix_from")?;
    let at = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span().start);
    for (v, k) in [
        (
            raw.interface6.as_ref().map(|v| v.span().start),
            "interface6",
        ),
        (at(&raw.ipv6_prefix_from), "ipv6_prefix_from"),
        (at(&raw.ipv6_suffix), "ipv6_suffix"),
        (at(&raw.ipv6_eui64), "ipv6_eui64"),
        (at(&raw.ipv6_neighbour), "ipv6_neighbour"),
    ] {
        v6_only(v, k)?;
    }
    if let (Some(_), Some(p)) = (&raw.interface6, &raw.ipv6_prefix_from) {
        return Err(ctx.err(
            p,
            &key("ipv6_prefix_from"),
            "conflicts with interface6: the AAAA record takes its address from one of them",
        ));
    }
    let mut host_parts = Vec::new();
    if let Some(v) = &raw.ipv6_suffix {
        let suffix: Ipv6Addr = v.get_ref().parse().map_err(|_| {
            ctx.err(
                v,
                &key("ipv6_suffix"),
                format!(
                    "{:?} is not an IPv6 interface identifier (like \"::1:2:3:4\")",
                    v.get_ref()
                ),
            )
        })?;
        if u128::from(suffix) >> 64 != 0 || suffix.is_unspecified() {
            return Err(ctx.err(
                v,
                &key("ipv6_suffix"),
                format!("{suffix} must be a non-zero identifier within the low 64 bits (a prefix longer than /64 cannot take a suffix)"),
            ));
        }
        host_parts.push((v, "ipv6_suffix", HostPart::Suffix(suffix)));
    }
    if let Some(v) = &raw.ipv6_eui64 {
        let mac: Mac = v
            .get_ref()
            .parse()
            .map_err(|m| ctx.err(v, &key("ipv6_eui64"), m))?;
        host_parts.push((v, "ipv6_eui64", HostPart::Eui64(mac)));
    }
    if let Some(v) = &raw.ipv6_neighbour {
        let mac: Mac = v
            .get_ref()
            .parse()
            .map_err(|m| ctx.err(v, &key("ipv6_neighbour"), m))?;
        host_parts.push((v, "ipv6_neighbour", HostPart::Neighbour(mac)));
    }
    let v6 = match (prefix_from, host_parts.as_slice()) {
        (Some(interface), [(_, _, host)]) => AddressSource::Prefix {
            interface,
            host: host.clone(),
        },
        (Some(_), []) => {
            return Err(ctx.err_at(
                raw.ipv6_prefix_from.as_ref().map(|p| p.span().start),
                &key("ipv6_prefix_from"),
                "needs a host part: ipv6_suffix, ipv6_eui64 or ipv6_neighbour",
            ));
        }
        (None, [(v, k, _), ..]) => {
            return Err(ctx.err(
                v,
                &key(k),
                "needs ipv6_prefix_from: the interface whose prefix it completes",
            ));
        }
        (Some(_), [(_, first, _), (v, k, _), ..]) => {
            return Err(ctx.err(
                v,
                &key(k),
                format!("conflicts with {first}: give one host part"),
            ));
        }
        (None, []) => interface6.or_else(|| interface.clone()).unwrap_or_default(),
    };
    let v4 = interface.unwrap_or_default();
    Ok((v4, v6))
}

/// Exactly one of `password`, `password_file`, `password_env`, `password_credential`.
fn resolve_password(
    raw: &RawHost,
    key: &dyn Fn(&str) -> String,
    start: usize,
    ctx: &Ctx<'_>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    let forms = [
        &raw.password,
        &raw.password_file,
        &raw.password_env,
        &raw.password_credential,
    ];
    secret_source("password", forms, key, ctx, base)?
        .ok_or_else(|| ctx.err_at(Some(start), &key("password"), missing_secret("password")))?
        .read()
}
