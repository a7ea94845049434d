//! ddclient's config (`/etc/ddclient.conf`, v3; `/etc/ddclient/ddclient.conf`, v4): lines of
//! `key=value` pairs separated by commas, a trailing `\` continuing a line, `#` comments. A line
//! without hosts sets defaults for the host lines after it; a host line is `[key=value,…]
//! host[,host…]`, its own keys for its hosts only. OVH is `protocol=ovh`, or `protocol=dyndns2`
//! (ddclient's default) with an OVH `server`.

use super::{Host, Import, Loc, NoteKind, ParseError, Password};
use crate::config::FamilySet;
use crate::provider::Provider;
use crate::secret::Secret;

/// A `key=value` with the line it is on.
#[derive(Clone)]
struct Setting {
    key: String,
    value: String,
    line: usize,
}

pub fn parse(text: &str, file: &str) -> Result<Import, ParseError> {
    let mut imp = Import::default();
    let mut defaults: Vec<Setting> = Vec::new();
    let at = |line| Loc {
        file: file.to_string(),
        line,
    };
    let mut logical = String::new();
    let mut first = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw.trim_end_matches('\r'));
        let line = line.trim_end();
        if logical.is_empty() {
            first = i + 1;
        }
        if let Some(part) = line.strip_suffix('\\') {
            logical.push_str(part);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let (settings, hosts) = tokens(&logical, first, file)?;
        logical.clear();
        if hosts.is_empty() {
            for s in &settings {
                note_key(&mut imp, &at(s.line), s);
            }
            // A later default replaces an earlier one.
            for s in settings {
                defaults.retain(|d| d.key != s.key);
                defaults.push(s);
            }
            continue;
        }
        let mut opts = defaults.clone();
        for s in &settings {
            opts.retain(|d| d.key != s.key);
            opts.push(s.clone());
        }
        let protocol = lookup(&opts, "protocol")
            .unwrap_or("dyndns2")
            .to_ascii_lowercase();
        if protocol != "ovh" && protocol != "dyndns2" {
            for h in &hosts {
                imp.note(
                    &at(first),
                    NoteKind::LeftOut,
                    format!(
                        "{h}: protocol={protocol} is another provider's own protocol; dynhostd speaks OVH DynHost and dyndns2 only"
                    ),
                );
            }
            continue;
        }
        for s in &settings {
            note_key(&mut imp, &at(s.line), s);
        }
        for h in hosts {
            if let Some(host) = host(&mut imp, &at(first), &h, &protocol, &opts) {
                imp.hosts.push(host);
            }
        }
    }
    if !logical.is_empty() {
        return Err(ParseError {
            at: at(first),
            message: "the file ends inside a line continued with `\\`: a host line was expected"
                .into(),
        });
    }
    Ok(imp)
}

/// One host of a host line, from the line's settings over the defaults; None (noted) when it
/// cannot be carried over.
fn host(imp: &mut Import, at: &Loc, name: &str, protocol: &str, opts: &[Setting]) -> Option<Host> {
    let get = |k: &str| lookup(opts, k);
    let mut missing = |what: &str| {
        imp.note(
            at,
            NoteKind::LeftOut,
            format!("{name}: no {what} for this host"),
        );
        None::<Host>
    };
    let Some(login) = get("login") else {
        return missing("login=");
    };
    let password = match (get("password"), get("password_env")) {
        (Some(p), _) => Password::Value(Secret::new(p)),
        (None, Some(v)) => Password::Env(v.to_string()),
        (None, None) => return missing("password= or password_env="),
    };
    let server = get("server");
    let ovh = protocol == "ovh" || server.is_some_and(super::is_ovh_server);
    let plain = get("ssl").and_then(super::truth) == Some(false);
    let url = |s: &str| {
        let s = if plain && !s.contains("://") {
            format!("http://{s}")
        } else {
            s.to_string()
        };
        super::update_url(&s, get("script").unwrap_or("/nic/update"))
    };
    let (provider, server) = match server {
        Some(s) if ovh && super::is_ovh_server(s) => (Provider::Ovh, None),
        Some(s) => (
            if ovh {
                Provider::Ovh
            } else {
                Provider::Dyndns2
            },
            Some(url(s)),
        ),
        // ddclient's dyndns2 default server is Dyn's.
        None if ovh => (Provider::Ovh, None),
        None => (Provider::Dyndns2, Some(url("members.dyndns.org"))),
    };
    if plain && server.as_deref().is_some_and(|s| s.starts_with("https:")) {
        imp.note(
            at,
            NoteKind::Warning,
            format!("{name}: ssl=no: dynhostd sends the password over https only"),
        );
    }
    // v3's `use`, v4's `usev4`/`usev6`; v3's `ipv6=yes` made `use` the AAAA record's source.
    let v6_flag = get("ipv6").and_then(super::truth) == Some(true);
    let mut use4 = get("usev4").or(get("use"));
    let mut use6 = get("usev6");
    if v6_flag && use6.is_none() {
        use6 = use4.take();
    }
    let on = |u: Option<&str>| u.is_some_and(|u| !u.eq_ignore_ascii_case("disabled"));
    let v4 = use4.map_or(use6.is_none(), |u| !u.eq_ignore_ascii_case("disabled"));
    let v6 = on(use6);
    let family = match (v4, v6) {
        (true, false) => FamilySet::V4,
        (false, true) => FamilySet::V6,
        (true, true) => FamilySet::Both,
        (false, false) => {
            imp.note(
                at,
                NoteKind::LeftOut,
                format!("{name}: every address source is disabled"),
            );
            return None;
        }
    };
    let source = |u: Option<&str>, six: bool| {
        let u = u.unwrap_or("").to_ascii_lowercase();
        let (iface, web) = if six {
            ("ifv6", "webv6")
        } else {
            ("ifv4", "webv4")
        };
        let if_value = get(iface).or(get("if"));
        let web_value = get(web).or(get("web"));
        match u.as_str() {
            "if" | "ifv4" | "ifv6" => (if_value.map(str::to_string), None),
            "web" | "webv4" | "webv6" => (None, web_value.map(str::to_string)),
            _ => (None, None),
        }
    };
    let (if4, web4) = if v4 {
        source(use4, false)
    } else {
        (None, None)
    };
    let (if6, web6) = if v6 { source(use6, true) } else { (None, None) };
    for (web, six) in [(web4, false), (web6, true)] {
        let Some(w) = web else { continue };
        if w.contains('.') || w.contains('/') {
            let url = if w.contains("://") {
                w
            } else {
                format!("https://{w}")
            };
            imp.add_detect(six, url);
        } else {
            let text = format!(
                "web={w} is one of ddclient's built-in sources: dynhostd asks its own what's-my-IP sources"
            );
            if !imp.notes.iter().any(|n| n.text == text) {
                imp.note(at, NoteKind::NotNeeded, text);
            }
        }
    }
    let (interface, interface6) = match family {
        FamilySet::V6 => (if6, None),
        _ => {
            let i6 = if6.filter(|i| Some(i) != if4.as_ref());
            (if4, i6)
        }
    };
    Some(Host {
        at: at.clone(),
        hostname: name.trim_end_matches('.').to_string(),
        login: login.to_string(),
        password,
        family,
        provider,
        server,
        interface,
        interface6,
        enabled: true,
        was: format!("protocol={protocol}"),
    })
}

fn lookup<'a>(opts: &'a [Setting], key: &str) -> Option<&'a str> {
    opts.iter().find(|s| s.key == key).map(|s| s.value.as_str())
}

/// What becomes of a key: used for the hosts (nothing to say), carried into a global section,
/// not needed here, or left out with the reason.
fn note_key(imp: &mut Import, at: &Loc, s: &Setting) {
    let v = s.value.to_ascii_lowercase();
    let key = s.key.as_str();
    let (kind, why): (NoteKind, String) = match key {
        "protocol" | "server" | "script" | "ssl" | "login" | "password" | "password_env" | "if"
        | "ifv4" | "ifv6" | "web" | "webv4" | "webv6" | "ipv6" => return,
        "use" | "usev4" | "usev6" => match v.as_str() {
            "if" | "ifv4" | "ifv6" | "web" | "webv4" | "webv6" | "disabled" => return,
            "cmd" | "cmdv4" | "cmdv6" => (
                NoteKind::LeftOut,
                format!(
                    "{key}={v}: a command as the address source; dynhostd follows the interface's address or asks what's-my-IP sources ([detect])"
                ),
            ),
            "ip" | "ipv4" | "ipv6" => (
                NoteKind::LeftOut,
                format!("{key}={v}: a fixed address; give it with `dynhostd update --ip ADDR`"),
            ),
            _ => (
                NoteKind::LeftOut,
                format!(
                    "{key}={v}: reading the address from a router's status page; dynhostd follows the interface's address or asks what's-my-IP sources ([detect])"
                ),
            ),
        },
        "max-interval" => match super::seconds_or_duration(&s.value) {
            Some(d) => {
                imp.refresh = Some(d);
                return;
            }
            None => (
                NoteKind::LeftOut,
                format!("max-interval={}: not a duration", s.value),
            ),
        },
        "min-interval" => match super::seconds_or_duration(&s.value) {
            Some(d) => {
                imp.min_interval = Some(d);
                return;
            }
            None => (
                NoteKind::LeftOut,
                format!("min-interval={}: not a duration", s.value),
            ),
        },
        "daemon" | "jitter" | "timeout" | "retry" | "min-error-interval" | "max-warn" => (
            NoteKind::NotNeeded,
            format!("{key}: dynhostd does not poll; it acts on the kernel's address events"),
        ),
        "syslog" | "facility" | "priority" | "pid" | "cache" | "foreground" | "quiet"
        | "verbose" | "debug" | "exec" | "web-skip" | "if-skip" | "ssl_ca_dir" | "ssl_ca_file"
        | "web-ssl-validate" => (
            NoteKind::NotNeeded,
            format!(
                "{key}: dynhostd logs to the journal (or stderr), keeps its own state and checks TLS itself"
            ),
        ),
        "mail" | "mail-failure" | "mail-from" => (
            NoteKind::LeftOut,
            format!("{key}: dynhostd sends no mail; set [hook] exec to a script that does"),
        ),
        "postscript" => (
            NoteKind::LeftOut,
            format!(
                "postscript={}: becomes [hook] exec, a program run after each update (it gets the address in its environment, not as an argument: see README)",
                s.value
            ),
        ),
        "proxy" => (
            NoteKind::LeftOut,
            "proxy: dynhostd connects directly".to_string(),
        ),
        "wildcard" | "mx" | "backupmx" => (
            NoteKind::LeftOut,
            format!("{key}: dynhostd does not send dyndns2's {key} option"),
        ),
        k if k.starts_with("cmd") || k.starts_with("fw") => (
            NoteKind::LeftOut,
            format!(
                "{key}: a command or router status page as the address source; dynhostd follows the interface or asks what's-my-IP sources"
            ),
        ),
        _ => (
            NoteKind::LeftOut,
            format!("{key}: not a setting dynhostd has an equivalent for"),
        ),
    };
    imp.note(at, kind, why);
}

/// `line` without its `#` comment (a `#` inside quotes is text).
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (_, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// A logical line's `key=value` settings and host names.
fn tokens(s: &str, line: usize, file: &str) -> Result<(Vec<Setting>, Vec<String>), ParseError> {
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut settings = Vec::new();
    let mut hosts = Vec::new();
    let sep = |ch: char| ch == ',' || ch.is_whitespace();
    while i < c.len() {
        if sep(c[i]) {
            i += 1;
            continue;
        }
        let mut j = i;
        if c[i].is_ascii_alphabetic() {
            while j < c.len() && (c[j].is_ascii_alphanumeric() || c[j] == '_' || c[j] == '-') {
                j += 1;
            }
        }
        let mut k = j;
        while k < c.len() && (c[k] == ' ' || c[k] == '\t') {
            k += 1;
        }
        if j > i && k < c.len() && c[k] == '=' {
            let key: String = c[i..j].iter().collect::<String>().to_ascii_lowercase();
            k += 1;
            while k < c.len() && (c[k] == ' ' || c[k] == '\t') {
                k += 1;
            }
            let mut value = String::new();
            if k < c.len() && (c[k] == '\'' || c[k] == '"') {
                let q = c[k];
                k += 1;
                loop {
                    match c.get(k) {
                        None => {
                            return Err(ParseError {
                                at: Loc {
                                    file: file.to_string(),
                                    line,
                                },
                                message: format!("{key}: a closing {q} was expected"),
                            });
                        }
                        Some('\\') if k + 1 < c.len() => {
                            value.push(c[k + 1]);
                            k += 2;
                        }
                        Some(ch) if *ch == q => {
                            k += 1;
                            break;
                        }
                        Some(ch) => {
                            value.push(*ch);
                            k += 1;
                        }
                    }
                }
            } else {
                while k < c.len() && !sep(c[k]) {
                    value.push(c[k]);
                    k += 1;
                }
            }
            settings.push(Setting { key, value, line });
            i = k;
        } else {
            let mut word = String::new();
            while i < c.len() && !sep(c[i]) {
                word.push(c[i]);
                i += 1;
            }
            if word.contains('=') || word.contains(['\'', '"']) {
                return Err(ParseError {
                    at: Loc {
                        file: file.to_string(),
                        line,
                    },
                    // The word is not quoted back: it may be part of a password.
                    message: "a key=value setting or a host name was expected (a quote or = out of place)".into(),
                });
            }
            hosts.push(word);
        }
    }
    Ok((settings, hosts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(imp: &Import) -> Vec<String> {
        imp.notes.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn defaults_continuations_quotes_and_several_hosts_per_line() {
        let text = "# global\r\ndaemon=300\t\t# poll\r\nProtocol=ovh,\r\nLOGIN=example.com-home\r\n\
            password='p#w, x'   # quoted\r\nuse=if, if=ppp0\r\n\
            home.example.com,office.example.com\r\n\
            protocol=dyndns2, \\\r\n  server=members.example.net, \\ # a comment\r\n\
            login=me, password=\"q\\\"q\" \\\r\n  other.example.net\r\n";
        let imp = parse(text, "ddclient.conf").unwrap();
        assert_eq!(imp.hosts.len(), 3, "{:?}", imp.hosts);
        let home = &imp.hosts[0];
        assert_eq!(home.hostname, "home.example.com");
        assert_eq!(home.login, "example.com-home");
        assert_eq!(home.password, Password::Value(Secret::new("p#w, x")));
        assert_eq!(home.provider, Provider::Ovh);
        assert_eq!(home.server, None);
        assert_eq!(home.interface.as_deref(), Some("ppp0"));
        assert_eq!(home.at.line, 7);
        assert_eq!(imp.hosts[1].hostname, "office.example.com");
        let other = &imp.hosts[2];
        assert_eq!(other.at.line, 8);
        assert_eq!(other.provider, Provider::Dyndns2);
        assert_eq!(
            other.server.as_deref(),
            Some("https://members.example.net/nic/update")
        );
        assert_eq!(other.login, "me");
        assert_eq!(other.password, Password::Value(Secret::new("q\"q")));
        // The defaults' use=if still applies to the later line.
        assert_eq!(other.interface.as_deref(), Some("ppp0"));
        assert_eq!(
            texts(&imp),
            [
                "ddclient.conf:2: not needed: daemon: dynhostd does not poll; it acts on the kernel's address events"
            ]
        );
        assert!(!imp.left_out());
    }

    #[test]
    fn dyndns2_with_an_ovh_server_is_ovh_and_v4_v6_sources_map() {
        let text = "protocol=dyndns2\nserver=www.ovh.com\nlogin=example.com-h\npassword_env=OVH_PW\n\
            usev4=ifv4, ifv4=ppp0, usev6=ifv6, ifv6=eth1 h.example.com\n\
            usev4=disabled, usev6=webv6, webv6=v6.ident.me h6.example.com\n\
            use=web, web=checkip.example.net/ w.example.com\n\
            max-interval=25d, min-interval=300\n";
        let imp = parse(text, "f").unwrap();
        let h = &imp.hosts[0];
        assert_eq!((h.provider, h.server.as_deref()), (Provider::Ovh, None));
        assert_eq!(h.password, Password::Env("OVH_PW".into()));
        assert_eq!(h.family, FamilySet::Both);
        assert_eq!(h.interface.as_deref(), Some("ppp0"));
        assert_eq!(h.interface6.as_deref(), Some("eth1"));
        let h6 = &imp.hosts[1];
        assert_eq!(h6.family, FamilySet::V6);
        assert_eq!(imp.detect_v6, ["https://v6.ident.me"]);
        assert_eq!(imp.detect_v4, ["https://checkip.example.net/"]);
        assert_eq!(imp.hosts[2].family, FamilySet::V4);
        assert_eq!(imp.refresh.as_deref(), Some("25d"));
        assert_eq!(imp.min_interval.as_deref(), Some("300s"));
        assert!(!imp.left_out(), "{:?}", texts(&imp));
    }

    #[test]
    fn ipv6_sources_of_ddclient_3_and_4() {
        // v3: ipv6=yes makes use= the AAAA record's source; the nsupdate.info sample's
        // `usev6=if, if=eth0` takes the interface from if=.
        let text = "protocol=ovh, login=l, password=p\n\
            ipv6=yes, use=if, if=ppp0 a.example.com\n\
            usev6=if, if=eth0 b.example.com\n\
            usev4=webv4, webv4=ip4.example.net, usev6=disabled c.example.com\n";
        let imp = parse(text, "f").unwrap();
        let got: Vec<_> = imp
            .hosts
            .iter()
            .map(|h| (h.family, h.interface.as_deref(), h.interface6.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (FamilySet::V6, Some("ppp0"), None),
                (FamilySet::V6, Some("eth0"), None),
                (FamilySet::V4, None, None),
            ]
        );
        assert_eq!(imp.detect_v4, ["https://ip4.example.net"]);
        assert!(imp.notes.is_empty(), "{:?}", imp.notes);
    }

    #[test]
    fn what_is_left_out_says_why_and_where() {
        let text = "mail=root\npostscript=/usr/local/bin/after\n\
            protocol=cloudflare, zone=example.com, password=tok cf.example.com\n\
            protocol=ovh, use=cmd, cmd=/bin/ip-of-wan, login=l, password=p h.example.com\n\
            protocol=ovh, login=l nopw.example.com\nwildcard=yes\n";
        let imp = parse(text, "f").unwrap();
        let t = texts(&imp);
        let want = [
            "f:1: left out: mail: dynhostd sends no mail",
            "f:2: left out: postscript=/usr/local/bin/after: becomes [hook] exec",
            "f:3: left out: cf.example.com: protocol=cloudflare is another provider's own protocol",
            "f:4: left out: use=cmd: a command as the address source",
            "f:4: left out: cmd: a command or router status page",
            "f:5: left out: nopw.example.com: no password= or password_env= for this host",
            "f:6: left out: wildcard: dynhostd does not send",
        ];
        for w in want {
            assert!(t.iter().any(|n| n.starts_with(w)), "{w}\n{t:#?}");
        }
        assert_eq!(t.len(), want.len(), "{t:#?}");
        assert!(imp.left_out());
        // The host with a cmd source is still carried over (it follows the WAN instead).
        assert_eq!(imp.hosts.len(), 1);
    }

    #[test]
    fn an_unclosed_quote_or_continuation_is_a_parse_error_with_its_line() {
        let e = parse("a=b\nlogin='x\n", "f").unwrap_err();
        assert_eq!(
            (e.at.line, e.message.as_str()),
            (2, "login: a closing ' was expected")
        );
        let e = parse("a=b\nlogin=x \\\n", "f").unwrap_err();
        assert_eq!(e.at.line, 2);
        let e = parse("login=x h\"x\n", "f").unwrap_err();
        assert_eq!(e.at.line, 1, "{e}");
    }
}
