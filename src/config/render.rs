//! The effective configuration rendered back as TOML (`dynhostd check --print`), passwords
//! replaced by `<redacted>`; what it prints parses again into the same [`Config`].

use super::{Config, HostConfig, WanConfig};
use crate::duration::format_duration;
use crate::provider::Provider;
use crate::wan::policy::{AddressSource, HostPart, Prefix};
use reqwest::Url;

impl Config {
    /// The effective configuration as TOML, passwords replaced by `<redacted>`.
    pub fn render_redacted(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        let list = |v: &[Prefix]| {
            v.iter()
                .map(|p| q(&p.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = String::new();
        out += "[wan]\n";
        match (&self.wan.interface, &self.wan.uplinks) {
            (Some(i), _) => out += &format!("interface = {}\n", q(i)),
            (None, Some(u)) => out += &format!("interface = {}\n", names(&u.names)),
            (None, None) => out += "# interface: not set, following the default route\n",
        }
        // Written only when set otherwise than the defaults, so older configs print as before.
        if self.wan.failback != super::DEFAULT_FAILBACK {
            out += &format!("failback = {}\n", q(&format_duration(self.wan.failback)));
        }
        if !self.wan.failover_requires_route {
            out += "failover_requires_route = false\n";
        }
        out += &format!("debounce = {}\n", q(&format_duration(self.wan.debounce)));
        out += &format!("accept = [{}]\n", list(&self.wan.policy.accept));
        out += &format!("ignore = [{}]\n", list(&self.wan.policy.ignore));
        if let Some(b) = self.wan.netlink_buffer {
            out += &format!("netlink_buffer = {b}\n");
        }
        out += &format!(
            "\n[state]\ndir = {}\n",
            q(&self.state_dir.display().to_string())
        );
        if let Some(c) = &self.control_socket {
            out += &format!("control = {}\n", q(&c.display().to_string()));
        }
        out += &format!(
            "\n[http]\ntimeout = {}\nconnect_timeout = {}\nmax_concurrent = {}\n",
            q(&format_duration(self.http.timeout)),
            q(&format_duration(self.http.connect_timeout)),
            self.http.max_concurrent
        );
        let urls = |v: &[Url]| {
            v.iter()
                .map(|u| q(u.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "\n[detect]\nmode = {}\nipv4 = [{}]\nipv6 = [{}]\ninterval = {}\ntimeout = {}\n",
            q(self.detect.mode.name()),
            urls(&self.detect.ipv4),
            urls(&self.detect.ipv6),
            q(&format_duration(self.detect.interval)),
            q(&format_duration(self.detect.timeout)),
        );
        out += &format!(
            "\n[update]\nmin_interval = {}\nrefresh = {}\nretry_initial = {}\nretry_max = {}\n",
            q(&format_duration(self.update.min_interval)),
            q(&format_duration(self.update.refresh)),
            q(&format_duration(self.update.retry_initial)),
            q(&format_duration(self.update.retry_max)),
        );
        let servers = |v: &[std::net::SocketAddr]| {
            v.iter()
                .map(|s| q(&s.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out += &format!(
            "\n[verify]\ninterval = {}\nnameservers = [{}]\n{}timeout = {}\n",
            q(&format_duration(self.verify.interval)),
            servers(&self.verify.nameservers),
            self.verify.resolver.map_or(String::new(), |r| format!(
                "resolver = {}\n",
                q(&r.to_string())
            )),
            q(&format_duration(self.verify.timeout)),
        );
        out += &format!(
            "\n[hook]\ntimeout = {}\n",
            q(&format_duration(self.hook_timeout))
        );
        for h in &self.hosts {
            out += &format!(
                "\n[[host]]\nhostname = {}\nlogin = {}\npassword = \"<redacted>\"\nfamily = {}\nprovider = {}\nserver = {}\n",
                q(&h.hostname),
                q(&h.login),
                q(h.family.name()),
                q(match h.provider {
                    Provider::Ovh => "ovh",
                    Provider::Dyndns2 => "dyndns2",
                }),
                q(h.server.as_str()),
            );
            if let Some(ca) = &h.ca_file {
                out += &format!("ca_file = {}\n", q(&ca.display().to_string()));
            }
            if let Some(exec) = &h.exec {
                out += &format!("exec = {}\n", q(&exec.display().to_string()));
            }
            out += &render_sources(h, q, &self.wan);
            out += &format!("enabled = {}\n", h.enabled);
        }
        for n in &self.notify {
            let events: Vec<String> = n.events.kinds().map(|k| q(k.as_str())).collect();
            out += &format!(
                "\n[[notify]]\nurl = {}\nevents = [{}]\n",
                q(&n.target.to_string()),
                events.join(", ")
            );
        }
        if let Some(h) = &self.health {
            out += &format!(
                "\n[health]\nurl = {}\ninterval = {}\nstyle = {}\n",
                q(&h.shown()),
                q(&format_duration(h.interval)),
                q(h.style.name())
            );
        }
        if let Some(api) = &self.ovh_api {
            out += &api.render_redacted();
        }
        out
    }
}

/// The source keys of a host, as `validate_sources` reads them back.
fn render_sources(h: &HostConfig, q: impl Fn(&str) -> String, wan: &WanConfig) -> String {
    let mut out = String::new();
    let mut failback = None;
    let mut value = |s: &AddressSource| match s {
        AddressSource::Interface(i) => Some(q(i)),
        AddressSource::Uplinks(u) => {
            failback = Some(u.failback);
            Some(names(&u.names))
        }
        _ => None,
    };
    if let Some(v) = value(&h.source_v4) {
        out += &format!("interface = {v}\n");
    }
    match &h.source_v6 {
        s if h.source_v4 != h.source_v6
            && let Some(v) = value(s) =>
        {
            out += &format!("interface6 = {v}\n");
        }
        AddressSource::Prefix { interface, host } => {
            out += &format!("ipv6_prefix_from = {}\n", q(interface));
            out += &match host {
                HostPart::Suffix(s) => format!("ipv6_suffix = {}\n", q(&s.to_string())),
                HostPart::Eui64(m) => format!("ipv6_eui64 = {}\n", q(&m.to_string())),
                HostPart::Neighbour(m) => format!("ipv6_neighbour = {}\n", q(&m.to_string())),
            };
        }
        _ => {}
    }
    if let Some(f) = failback.filter(|f| *f != wan.failback) {
        out += &format!("failback = \"{}\"\n", format_duration(f));
    }
    out
}

/// A failover list as TOML.
fn names(v: &[String]) -> String {
    toml::Value::Array(v.iter().cloned().map(toml::Value::String).collect()).to_string()
}
