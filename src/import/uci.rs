//! OpenWrt's ddns-scripts config: UCI (`/etc/config/ddns`, or what `uci export ddns` prints).
//! `config service 'NAME'` sections of `option KEY 'VALUE'` lines; `#` comments. OVH is
//! `service_name 'ovh.com'` or an `update_url` on an OVH host. A service without `enabled '1'`
//! is off in ddns-scripts, so it is imported with `enabled = false`. OpenWrt network names
//! (`ip_network 'wan'`) are turned into their Linux device by the caller's `resolve` (ubus).

use super::{Host, Import, Loc, NoteKind, ParseError, Password};
use crate::config::FamilySet;
use crate::provider::Provider;
use crate::secret::Secret;

struct Opt {
    key: String,
    value: String,
    line: usize,
}

struct Section {
    kind: String,
    name: String,
    line: usize,
    opts: Vec<Opt>,
}

pub fn parse(
    text: &str,
    file: &str,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Import, ParseError> {
    let err = |line: usize, message: String| ParseError {
        at: Loc {
            file: file.to_string(),
            line,
        },
        message,
    };
    let mut sections: Vec<Section> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let words = words(raw.trim_end_matches('\r')).map_err(|m| err(line, m))?;
        let Some(first) = words.first() else { continue };
        match first.to_ascii_lowercase().as_str() {
            "package" => {}
            "config" => {
                let Some(kind) = words.get(1) else {
                    return Err(err(
                        line,
                        "config: a section type was expected (config service 'NAME')".into(),
                    ));
                };
                sections.push(Section {
                    kind: kind.to_ascii_lowercase(),
                    name: words.get(2).cloned().unwrap_or_default(),
                    line,
                    opts: Vec::new(),
                });
            }
            kw @ ("option" | "list") => {
                let (Some(key), Some(value)) = (words.get(1), words.get(2)) else {
                    return Err(err(
                        line,
                        format!("{kw}: a name and a value were expected ({kw} NAME 'VALUE')"),
                    ));
                };
                let Some(s) = sections.last_mut() else {
                    return Err(err(
                        line,
                        format!("{kw} {key}: a config section was expected before it"),
                    ));
                };
                s.opts.push(Opt {
                    key: key.to_ascii_lowercase(),
                    value: value.clone(),
                    line,
                });
            }
            // The word is not quoted back: a value split over lines may be a password.
            _ => {
                return Err(err(
                    line,
                    "config, option, list or package was expected at the start of the line".into(),
                ));
            }
        }
    }
    let mut imp = Import::default();
    for s in sections {
        let at = Loc {
            file: file.to_string(),
            line: s.line,
        };
        match s.kind.as_str() {
            "service" => service(&mut imp, file, s, resolve),
            "ddns" => {
                for o in &s.opts {
                    let at = Loc {
                        file: file.to_string(),
                        line: o.line,
                    };
                    let (kind, why) = common(o).unwrap_or_else(|| {
                        if o.key.starts_with("ddns_") || o.key == "use_curl" {
                            (
                                NoteKind::NotNeeded,
                                format!("{}: ddns-scripts' own files and logs", o.key),
                            )
                        } else {
                            (
                                NoteKind::LeftOut,
                                format!("{}: not a setting dynhostd has an equivalent for", o.key),
                            )
                        }
                    });
                    imp.note(&at, kind, why);
                }
            }
            k => imp.note(
                &at,
                NoteKind::LeftOut,
                format!("config {k} {}: not a ddns-scripts service", s.name),
            ),
        }
    }
    Ok(imp)
}

/// What becomes of an option both a service and the global section may have; None: not one.
fn common(o: &Opt) -> Option<(NoteKind, String)> {
    let on = super::truth(&o.value) == Some(true);
    Some(match o.key.as_str() {
        "upd_privateip" if on => (
            NoteKind::LeftOut,
            "upd_privateip: dynhostd publishes only globally routable addresses unless [wan] accept lists the range".into(),
        ),
        "upd_privateip" => (NoteKind::NotNeeded, "upd_privateip: dynhostd never publishes private addresses by default either".into()),
        "use_syslog" | "use_logfile" => (NoteKind::NotNeeded, format!("{}: dynhostd logs to the journal (or stderr)", o.key)),
        _ => return None,
    })
}

fn service(
    imp: &mut Import,
    file: &str,
    s: Section,
    resolve: &mut dyn FnMut(&str) -> Result<String, String>,
) {
    let at = Loc {
        file: file.to_string(),
        line: s.line,
    };
    let get = |k: &str| s.opts.iter().find(|o| o.key == k).map(|o| o.value.as_str());
    let name = &s.name;
    let was = format!("service '{name}'");
    let left_out =
        |imp: &mut Import, why: String| imp.note(&at, NoteKind::LeftOut, format!("{was}: {why}"));
    let six = get("use_ipv6").and_then(super::truth) == Some(true);
    let mapped = match (get("service_name"), get("update_url")) {
        (Some(n), _) if n.eq_ignore_ascii_case("ovh.com") => Some((Provider::Ovh, None)),
        (Some(n), _) if ["dyndns.org", "dyn.com"].contains(&n.to_ascii_lowercase().as_str()) => {
            Some((
                Provider::Dyndns2,
                Some(super::update_url("members.dyndns.org", "")),
            ))
        }
        (Some(n), _) => {
            left_out(
                imp,
                format!(
                    "service_name '{n}' is another provider's own protocol; dynhostd speaks OVH DynHost and dyndns2 only"
                ),
            );
            None
        }
        (None, Some(u)) if super::is_ovh_server(u) => Some((Provider::Ovh, None)),
        (None, Some(u)) => {
            let after_host = u.split_once("://").map_or(u, |(_, r)| r);
            let path = after_host.find('/').map_or("", |i| &after_host[i..]);
            if path.starts_with("/nic/update") {
                if u.to_ascii_lowercase().starts_with("http://") {
                    imp.note(&at, NoteKind::Warning, format!("{was}: update_url is plain http: dynhostd sends the password over https only"));
                }
                Some((Provider::Dyndns2, Some(super::update_url(u, path))))
            } else {
                left_out(imp, "update_url is not a dyndns2 update (/nic/update?hostname=…); dynhostd speaks OVH DynHost and dyndns2 only".into());
                None
            }
        }
        (None, None) => {
            if get("update_script").is_some() {
                left_out(imp, "update_script: a script of its own; dynhostd speaks OVH DynHost and dyndns2 only".into());
            } else {
                left_out(imp, "no service_name or update_url".into());
            }
            None
        }
    };
    let Some((provider, server)) = mapped else {
        return;
    };
    let source = get("ip_source").unwrap_or("network").to_ascii_lowercase();
    let mut interface = None;
    for o in &s.opts {
        let oat = Loc {
            file: file.to_string(),
            line: o.line,
        };
        let v = o.value.as_str();
        let note: Option<(NoteKind, String)> = match o.key.as_str() {
            "enabled" | "service_name" | "update_url" | "domain" | "username" | "password" | "use_ipv6"
            | "ip_source" | "force_unit" => None,
            "ip_network" if source == "network" => {
                match resolve(v) {
                    Ok(dev) => interface = Some(dev),
                    Err(why) => {
                        interface = Some(v.to_string());
                        imp.note(&oat, NoteKind::Warning, format!("ip_network '{v}' is an OpenWrt network name, kept as it is ({why}): set interface to its Linux device (`ubus call network.interface.{v} status`, l3_device)"));
                    }
                }
                None
            }
            "ip_interface" if source == "interface" => {
                interface = Some(v.to_string());
                None
            }
            "ip_url" if source == "web" => {
                imp.add_detect(six, v.to_string());
                None
            }
            "ip_network" | "ip_interface" | "ip_url" => Some((NoteKind::NotNeeded, format!("{}: not used with ip_source '{source}'", o.key))),
            "ip_script" => Some((NoteKind::LeftOut, "ip_script: a script as the address source; dynhostd follows the interface's address or asks what's-my-IP sources ([detect])".into())),
            "interface" => Some((NoteKind::NotNeeded, "interface: dynhostd acts on address events of the interface it follows (ip_network/ip_interface)".into())),
            "lookup_host" | "dns_server" | "force_dnstcp" | "is_glue" | "use_api_check" => Some((NoteKind::NotNeeded, format!("{}: dynhostd checks the record at its authoritative name servers itself ([verify])", o.key))),
            "check_interval" | "check_unit" | "retry_interval" | "retry_unit" | "retry_count" | "retry_max_count" => Some((NoteKind::NotNeeded, format!("{}: dynhostd does not poll; it acts on the kernel's address events and backs off by itself", o.key))),
            "force_interval" => match force_interval(v, get("force_unit")) {
                Some(d) => {
                    imp.refresh = Some(d);
                    None
                }
                None => Some((NoteKind::LeftOut, format!("force_interval '{v}': not an interval dynhostd can refresh at (a positive number)"))),
            },
            "use_https" if super::truth(v) == Some(false) => Some((NoteKind::Warning, "use_https '0': dynhostd sends the password over https only".into())),
            "use_https" => None,
            "cacert" if v.eq_ignore_ascii_case("ignore") => Some((NoteKind::Warning, "cacert 'IGNORE': dynhostd always checks the server's certificate".into())),
            "cacert" => Some((NoteKind::LeftOut, format!("cacert '{v}': set ca_file in the [[host]] if the server needs this CA"))),
            "proxy" => Some((NoteKind::LeftOut, "proxy: dynhostd connects directly".into())),
            "force_ipversion" => Some((NoteKind::NotNeeded, "force_ipversion: the family decides which address is sent".into())),
            _ => common(o).or_else(|| Some((NoteKind::LeftOut, format!("{}: not a setting dynhostd has an equivalent for", o.key)))),
        };
        if let Some((kind, why)) = note {
            imp.note(&oat, kind, why);
        }
    }
    let Some(domain) = get("domain") else {
        left_out(imp, "no domain".into());
        return;
    };
    let (Some(login), Some(password)) = (get("username"), get("password")) else {
        left_out(imp, "no username or password".into());
        return;
    };
    // ddns-scripts starts only services with enabled '1'.
    let enabled = get("enabled").and_then(super::truth) == Some(true);
    if !enabled {
        imp.note(
            &at,
            NoteKind::Warning,
            format!("{was}: not enabled in ddns-scripts, so imported with enabled = false"),
        );
    }
    imp.hosts.push(Host {
        at: at.clone(),
        hostname: domain.trim_end_matches('.').to_string(),
        login: login.to_string(),
        password: Password::Value(Secret::new(password)),
        family: if six { FamilySet::V6 } else { FamilySet::V4 },
        provider,
        server,
        interface,
        interface6: None,
        enabled,
        was,
    });
}

/// `force_interval` in `force_unit` (ddns-scripts' default: hours) as a duration; None for 0
/// (ddns-scripts: update once and stop) or a value that is not a number.
fn force_interval(v: &str, unit: Option<&str>) -> Option<String> {
    let n: u64 = v.trim().parse().ok().filter(|n| *n > 0)?;
    let u = match unit.unwrap_or("hours").to_ascii_lowercase().as_str() {
        "seconds" => "s",
        "minutes" => "m",
        "hours" => "h",
        "days" => "d",
        _ => return None,
    };
    super::seconds_or_duration(&format!("{n}{u}"))
}

/// A UCI line's words, quotes removed; a `#` outside quotes starts a comment.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '#' if cur.is_none() => break,
            c if c.is_whitespace() => {
                if let Some(w) = cur.take() {
                    out.push(w);
                }
            }
            '\'' | '"' => {
                let w = cur.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        None => return Err(format!("a closing {c} was expected")),
                        Some('\\') if c == '"' => {
                            if let Some(n) = chars.next() {
                                w.push(n);
                            }
                        }
                        Some(q) if q == c => break,
                        Some(o) => w.push(o),
                    }
                }
            }
            c => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if let Some(w) = cur {
        out.push(w);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_wan(name: &str) -> Result<String, String> {
        match name {
            "wan" => Ok("pppoe-wan".into()),
            _ => Err("no ubus on this machine".into()),
        }
    }

    #[test]
    fn services_map_with_their_enabled_state_and_sources() {
        let text = "package ddns\r\n\r\nconfig ddns 'global'\r\n\toption ddns_loglines '250'\r\n\
            config service 'ovh'\n\tOption enabled '1'   # on\n\toption service_name\t\"ovh.com\"\n\
            \toption domain 'home.example.com'\n\toption username 'example.com-home'\n\
            \toption password 'pw with # hash'\n\toption ip_source 'network'\n\toption ip_network 'wan'\n\
            \toption check_interval '10'\n\toption force_interval '30'\n\toption force_unit 'days'\n\
            config service off\n\toption service_name ovh.com\n\toption domain off.example.com\n\
            \toption username u\n\toption password p\n\toption use_ipv6 1\n\toption ip_source web\n\
            \toption ip_url 'https://v6.example.net/'\n\toption enabled '0'\n";
        let imp = parse(text, "ddns", &mut resolve_wan).unwrap();
        let h = &imp.hosts[0];
        assert_eq!(h.hostname, "home.example.com");
        assert_eq!(h.password, Password::Value(Secret::new("pw with # hash")));
        assert!(h.enabled);
        assert_eq!(h.interface.as_deref(), Some("pppoe-wan"));
        assert_eq!(h.at.line, 5);
        let off = &imp.hosts[1];
        assert!(!off.enabled);
        assert_eq!(off.family, FamilySet::V6);
        assert_eq!(imp.detect_v6, ["https://v6.example.net/"]);
        assert_eq!(imp.refresh.as_deref(), Some("30d"));
        assert!(!imp.left_out(), "{:?}", imp.notes);
        let t: Vec<String> = imp.notes.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            t,
            [
                "ddns:4: not needed: ddns_loglines: ddns-scripts' own files and logs",
                "ddns:13: not needed: check_interval: dynhostd does not poll; it acts on the kernel's address events and backs off by itself",
                "ddns:16: warning: service 'off': not enabled in ddns-scripts, so imported with enabled = false",
            ]
        );
    }

    #[test]
    fn openwrts_default_config_imports_off_with_a_warning_for_wan6() {
        let text = include_str!("../../tests/data/import/openwrt/ddns");
        let imp = parse(text, "ddns", &mut resolve_wan).unwrap();
        assert_eq!(imp.hosts.len(), 2);
        assert!(imp.hosts.iter().all(|h| !h.enabled));
        assert_eq!(
            imp.hosts[1].server.as_deref(),
            Some("https://your.provider.net/nic/update")
        );
        assert_eq!(imp.hosts[1].interface.as_deref(), Some("wan6"));
        let t: Vec<String> = imp.notes.iter().map(|n| n.to_string()).collect();
        assert!(t.iter().any(|n| n.starts_with("ddns:32: warning: ip_network 'wan6' is an OpenWrt network name, kept as it is (no ubus on this machine)")), "{t:#?}");
        assert!(
            t.iter().any(|n| n
                .starts_with("ddns:23: warning: service 'myddns_ipv6': update_url is plain http")),
            "{t:#?}"
        );
        assert!(!imp.left_out(), "{t:#?}");
    }

    #[test]
    fn left_out_services_and_options_say_why() {
        let text = "config service cf\n option service_name cloudflare.com-v4\n option domain a.example.com\n\
            config service s\n option update_script /usr/lib/x.sh\n\
            config service o\n option service_name ovh.com\n option domain o.example.com\n option username u\n\
            option password p\n option enabled 1\n option ip_source script\n option ip_script /bin/myip\n option proxy x:1\n\
            config other x\n";
        let imp = parse(text, "f", &mut resolve_wan).unwrap();
        let t: Vec<String> = imp.notes.iter().map(|n| n.to_string()).collect();
        let want = [
            "f:1: left out: service 'cf': service_name 'cloudflare.com-v4' is another provider's",
            "f:4: left out: service 's': update_script",
            "f:13: left out: ip_script: a script as the address source",
            "f:14: left out: proxy: dynhostd connects directly",
            "f:15: left out: config other x: not a ddns-scripts service",
        ];
        for w in want {
            assert!(t.iter().any(|n| n.starts_with(w)), "{w}\n{t:#?}");
        }
        assert_eq!(t.len(), want.len(), "{t:#?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line, what) in [
            ("option a b\n", 1, "a config section was expected"),
            ("config service x\n option a 'b\n", 2, "closing '"),
            (
                "config service x\n opshun a b\n",
                2,
                "config, option, list or package was expected",
            ),
            ("config service x\n option a\n", 2, "a name and a value"),
        ] {
            let e = parse(text, "f", &mut resolve_wan).unwrap_err();
            assert_eq!(e.at.line, line, "{e}");
            assert!(e.message.contains(what), "{e}");
        }
    }
}
