//! inadyn's config (`/etc/inadyn.conf`, also what UniFi OS generates), libConfuse syntax per
//! `inadyn.conf(5)`: `key = value` settings, `provider NAME[:N] { … }` and `custom NAME[:N] { … }`
//! sections, `{ "a", "b" }` lists, `include("file")`, and `#`, `//` and `/* */` comments.
//! OVH is `default@ovh.com` (A) or `ipv6@ovh.com` (AAAA), or a `custom` section whose
//! `ddns-server` is OVH's.

use super::{Host, Import, Loc, NoteKind, ParseError, Password};
use crate::config::FamilySet;
use crate::provider::Provider;
use crate::secret::Secret;
use std::path::{Path, PathBuf};

/// Deepest `include()` nesting followed: libConfuse has no limit, a loop would never end.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read through `include()` in all: without it, a file that includes another ten
/// times, which includes another ten times, … would be read 10^8 times without ever looping.
const MAX_INCLUDES: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

struct Setting {
    key: String,
    values: Vec<String>,
    at: Loc,
}

struct Section {
    custom: bool,
    name: String,
    at: Loc,
    settings: Vec<Setting>,
}

#[derive(Default)]
struct Parsed {
    globals: Vec<Setting>,
    sections: Vec<Section>,
    /// Files read through `include()` so far.
    included: usize,
}

pub fn parse(
    text: &str,
    file: &str,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
) -> Result<Import, ParseError> {
    let mut parsed = Parsed::default();
    let mut stack = vec![std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file))];
    parse_file(text, file, &mut stack, read, &mut parsed)?;
    Ok(build(parsed))
}

fn err(file: &str, line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        at: Loc {
            file: file.to_string(),
            line,
        },
        message: message.into(),
    }
}

fn tokenize(text: &str, file: &str) -> Result<Vec<(Tok, usize)>, ParseError> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '#' || (ch == '/' && c.get(i + 1) == Some(&'/')) {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && c.get(i + 1) == Some(&'*') {
            let start = line;
            i += 2;
            loop {
                match c.get(i) {
                    None => {
                        return Err(err(
                            file,
                            start,
                            "a comment opened with /* is never closed with */",
                        ));
                    }
                    Some('*') if c.get(i + 1) == Some(&'/') => {
                        i += 2;
                        break;
                    }
                    Some('\n') => line += 1,
                    _ => {}
                }
                i += 1;
            }
        } else if ch == '"' || ch == '\'' {
            let start = line;
            let mut s = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => {
                        return Err(err(file, start, format!("a closing {ch} was expected")));
                    }
                    Some('\\') if ch == '"' && i + 1 < c.len() => {
                        s.push(match c[i + 1] {
                            'n' => '\n',
                            't' => '\t',
                            o => o,
                        });
                        i += 2;
                        continue;
                    }
                    Some(q) if *q == ch => {
                        i += 1;
                        break;
                    }
                    Some(o) => {
                        if *o == '\n' {
                            line += 1;
                        }
                        s.push(*o);
                    }
                }
                i += 1;
            }
            out.push((Tok::Str(s), start));
        } else if "{}=,()".contains(ch) {
            out.push((Tok::Punct(ch), line));
            i += 1;
        } else {
            let mut s = String::new();
            while i < c.len() && !c[i].is_whitespace() && !"{}=,()\"'#".contains(c[i]) {
                s.push(c[i]);
                i += 1;
            }
            out.push((Tok::Word(s), line));
        }
    }
    Ok(out)
}

fn parse_file(
    text: &str,
    file: &str,
    stack: &mut Vec<PathBuf>,
    read: &mut dyn FnMut(&Path) -> Result<String, String>,
    out: &mut Parsed,
) -> Result<(), ParseError> {
    super::check_text(text, file)?;
    let toks = tokenize(text, file)?;
    let last = toks.last().map_or(1, |t| t.1);
    let mut it = toks.into_iter().peekable();
    let at = |line| Loc {
        file: file.to_string(),
        line,
    };
    while let Some((tok, line)) = it.next() {
        let word = match tok {
            Tok::Word(w) => w,
            other => {
                return Err(err(
                    file,
                    line,
                    format!(
                        "{}: a setting (key = value), a provider or custom section, or include(\"file\") was expected",
                        shown(&other)
                    ),
                ));
            }
        };
        let lw = word.to_ascii_lowercase();
        if lw == "include" {
            let path = match (it.next(), it.next(), it.next()) {
                (
                    Some((Tok::Punct('('), _)),
                    Some((Tok::Str(p), _)),
                    Some((Tok::Punct(')'), _)),
                ) => p,
                _ => return Err(err(file, line, "include: include(\"FILE\") was expected")),
            };
            let base = Path::new(file).parent().unwrap_or(Path::new("."));
            let path = base.join(path);
            let shown_path = path.display().to_string();
            let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if stack.contains(&canon) {
                return Err(err(
                    file,
                    line,
                    format!(
                        "include(\"{shown_path}\"): this file includes itself (an include loop)"
                    ),
                ));
            }
            if stack.len() > MAX_INCLUDE_DEPTH {
                return Err(err(
                    file,
                    line,
                    format!(
                        "include(\"{shown_path}\"): includes nested more than {MAX_INCLUDE_DEPTH} deep"
                    ),
                ));
            }
            out.included += 1;
            if out.included > MAX_INCLUDES {
                return Err(err(
                    file,
                    line,
                    format!(
                        "include(\"{shown_path}\"): more than {MAX_INCLUDES} files included in all"
                    ),
                ));
            }
            let text = read(&path).map_err(|e| err(file, line, format!("include: {e}")))?;
            stack.push(canon);
            parse_file(&text, &shown_path, stack, read, out)?;
            stack.pop();
        } else if lw == "provider" || lw == "custom" {
            let name = match it.next() {
                Some((Tok::Word(n) | Tok::Str(n), _)) => n,
                _ => {
                    return Err(err(
                        file,
                        line,
                        format!("{lw}: a name was expected (e.g. {lw} default@ovh.com {{ … }})"),
                    ));
                }
            };
            if !matches!(it.next(), Some((Tok::Punct('{'), _))) {
                return Err(err(file, line, format!("{lw} {name}: {{ was expected")));
            }
            let mut settings = Vec::new();
            loop {
                match it.next() {
                    Some((Tok::Punct('}'), _)) => break,
                    Some((Tok::Word(k), l)) => settings.push(setting(k, l, &mut it, file)?),
                    Some((t, l)) => {
                        return Err(err(
                            file,
                            l,
                            format!("{}: a setting (key = value) or }} was expected", shown(&t)),
                        ));
                    }
                    None => {
                        return Err(err(
                            file,
                            last,
                            format!("{lw} {name} (line {line}) is never closed with }}"),
                        ));
                    }
                }
            }
            out.sections.push(Section {
                custom: lw == "custom",
                name,
                at: at(line),
                settings,
            });
        } else {
            out.globals.push(setting(word, line, &mut it, file)?);
        }
    }
    Ok(())
}

/// A token for an error message. Words are named only when they are setting names inadyn
/// has: anything else may be part of a password (an unquoted one with a space in it).
fn shown(t: &Tok) -> String {
    match t {
        Tok::Word(w) => known(w),
        Tok::Str(_) => "a quoted string".into(),
        Tok::Punct(p) => format!("{p:?}"),
    }
}

fn known(w: &str) -> String {
    const KEYS: &[&str] = &[
        "period",
        "forced-update",
        "iface",
        "allow-ipv6",
        "user-agent",
        "verify-address",
        "secure-ssl",
        "ca-trust-file",
        "startup-delay",
        "cache-dir",
        "broken-rtc",
        "pidfile",
        "username",
        "password",
        "hostname",
        "ssl",
        "checkip-server",
        "checkip-path",
        "checkip-ssl",
        "checkip-command",
        "ddns-server",
        "ddns-path",
        "wildcard",
        "ttl",
        "proxied",
        "include",
        "provider",
        "custom",
    ];
    if KEYS.contains(&w.to_ascii_lowercase().as_str()) {
        w.to_string()
    } else {
        "a word".into()
    }
}

/// `key = value` or `key = { v, … }`, after its key.
fn setting(
    key: String,
    line: usize,
    it: &mut std::iter::Peekable<std::vec::IntoIter<(Tok, usize)>>,
    file: &str,
) -> Result<Setting, ParseError> {
    let expected = |what: &str| err(file, line, format!("{}: {what} was expected", known(&key)));
    if !matches!(it.next(), Some((Tok::Punct('='), _))) {
        return Err(expected("= and a value"));
    }
    let mut values = Vec::new();
    match it.next() {
        Some((Tok::Word(v) | Tok::Str(v), _)) => values.push(v),
        Some((Tok::Punct('{'), _)) => loop {
            match it.next() {
                Some((Tok::Word(v) | Tok::Str(v), _)) => values.push(v),
                Some((Tok::Punct(','), _)) => {}
                Some((Tok::Punct('}'), _)) => break,
                _ => return Err(expected("a list { \"a\", \"b\" } closed with }")),
            }
        },
        _ => return Err(expected("a value")),
    }
    Ok(Setting {
        key: key.to_ascii_lowercase(),
        values,
        at: Loc {
            file: file.to_string(),
            line,
        },
    })
}

fn build(p: Parsed) -> Import {
    let mut imp = Import::default();
    let mut iface = None;
    for s in &p.globals {
        let v = s.values.join(", ");
        let (kind, why) = match s.key.as_str() {
            "iface" => {
                iface = Some(v);
                continue;
            }
            "forced-update" => match super::seconds_or_duration(&v) {
                Some(d) => {
                    imp.refresh = Some(d);
                    continue;
                }
                None => (
                    NoteKind::LeftOut,
                    format!("forced-update = {v}: not a number of seconds"),
                ),
            },
            "period" | "startup-delay" | "cache-dir" | "broken-rtc" => (
                NoteKind::NotNeeded,
                format!(
                    "{}: dynhostd does not poll; it acts on the kernel's address events",
                    s.key
                ),
            ),
            "allow-ipv6" => (
                NoteKind::NotNeeded,
                "allow-ipv6: the ipv6@ providers become AAAA records (family)".to_string(),
            ),
            "user-agent" | "verify-address" | "secure-ssl" | "ca-trust-file" | "pidfile" => (
                NoteKind::NotNeeded,
                format!("{}: dynhostd checks addresses and TLS itself", s.key),
            ),
            _ => (
                NoteKind::LeftOut,
                format!("{}: not a setting dynhostd has an equivalent for", s.key),
            ),
        };
        imp.note(&s.at, kind, why);
    }
    for sec in p.sections {
        section(&mut imp, sec);
    }
    if let Some(i) = iface {
        for h in &mut imp.hosts {
            if h.interface.is_none() {
                h.interface = Some(i.clone());
            }
        }
    }
    imp
}

fn section(imp: &mut Import, sec: Section) {
    let get = |k: &str| {
        sec.settings
            .iter()
            .find(|s| s.key == k)
            .and_then(|s| s.values.first())
            .map(String::as_str)
    };
    let name = sec.name.to_ascii_lowercase();
    let base = name.split(':').next().unwrap_or("");
    let was = format!(
        "{} {}",
        if sec.custom { "custom" } else { "provider" },
        sec.name
    );
    let left_out = |imp: &mut Import, why: String| {
        imp.note(&sec.at, NoteKind::LeftOut, format!("{was}: {why}"))
    };
    let mapped = if sec.custom {
        match get("ddns-server") {
            None => {
                left_out(imp, "no ddns-server".into());
                return;
            }
            Some(s) if super::is_ovh_server(s) => Some((Provider::Ovh, None, FamilySet::V4)),
            Some(s) => {
                let path = get("ddns-path").unwrap_or("/nic/update");
                if !path.starts_with("/nic/update") {
                    left_out(
                        imp,
                        format!(
                            "ddns-path {path:?} is not a dyndns2 update (/nic/update?hostname=…); dynhostd speaks OVH DynHost and dyndns2 only"
                        ),
                    );
                    return;
                }
                let plain = get("ssl").and_then(super::truth) == Some(false) && !s.contains("://");
                let server = if plain {
                    format!("http://{s}")
                } else {
                    s.to_string()
                };
                Some((
                    Provider::Dyndns2,
                    Some(super::update_url(&server, path)),
                    FamilySet::V4,
                ))
            }
        }
    } else {
        match base {
            "default@ovh.com" => Some((Provider::Ovh, None, FamilySet::V4)),
            "ipv6@ovh.com" => Some((Provider::Ovh, None, FamilySet::V6)),
            "default@dyndns.org" => Some((
                Provider::Dyndns2,
                Some(super::update_url("members.dyndns.org", "")),
                FamilySet::V4,
            )),
            "ipv6@dyndns.org" => Some((
                Provider::Dyndns2,
                Some(super::update_url("members.dyndns.org", "")),
                FamilySet::V6,
            )),
            _ => None,
        }
    };
    let Some((provider, server, family)) = mapped else {
        left_out(
            imp,
            "another provider's own protocol; dynhostd speaks OVH DynHost and dyndns2 only".into(),
        );
        return;
    };
    let six = family == FamilySet::V6;
    let mut iface = None;
    for s in &sec.settings {
        let v = s.values.join(", ");
        let note = match s.key.as_str() {
            "username" | "password" | "hostname" | "ssl" | "ddns-server" | "ddns-path" | "checkip-path"
            | "checkip-ssl" => None,
            "iface" => {
                iface = Some(v);
                None
            }
            "checkip-server" => {
                let plain = get("checkip-ssl").and_then(super::truth) == Some(false);
                let url = if v.contains("://") {
                    v.clone()
                } else {
                    format!("{}://{v}{}", if plain { "http" } else { "https" }, get("checkip-path").unwrap_or("/"))
                };
                imp.add_detect(six, url);
                None
            }
            "checkip-command" => Some((
                NoteKind::LeftOut,
                "checkip-command: a command as the address source; dynhostd follows the interface's address or asks what's-my-IP sources ([detect])".to_string(),
            )),
            "user-agent" => Some((NoteKind::NotNeeded, "user-agent: dynhostd sends its own".to_string())),
            "wildcard" => Some((NoteKind::LeftOut, "wildcard: dynhostd does not send dyndns2's wildcard option".to_string())),
            k => Some((NoteKind::LeftOut, format!("{k}: not a setting dynhostd has an equivalent for"))),
        };
        if let Some((kind, why)) = note {
            imp.note(&s.at, kind, why);
        }
    }
    let (Some(login), Some(password)) = (get("username"), get("password")) else {
        left_out(imp, "no username or password".into());
        return;
    };
    let names: Vec<&String> = sec
        .settings
        .iter()
        .filter(|s| s.key == "hostname")
        .flat_map(|s| &s.values)
        .collect();
    if names.is_empty() {
        left_out(imp, "no hostname".into());
    }
    for n in names {
        imp.hosts.push(Host {
            at: sec.at.clone(),
            hostname: n.trim_end_matches('.').to_string(),
            login: login.to_string(),
            password: Password::Value(Secret::new(password)),
            family,
            provider,
            server: server.clone(),
            interface: iface.clone(),
            interface6: None,
            enabled: true,
            was: was.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_read(_: &Path) -> Result<String, String> {
        Err("no files in this test".into())
    }

    #[test]
    fn providers_lists_comments_and_globals() {
        let text = "/* UniFi\r\n * generated */\r\nPeriod = 300 // poll\r\nforced-update = 2160000\r\niface = ppp0\r\n\
            provider default@ovh.com:1 {\r\n\tusername = example.com-home # the login\r\n\
            \tpassword = \"pw # not a comment\"\r\n\thostname = { \"home.example.com\", 'www.example.com' }\r\n}\r\n\
            provider ipv6@ovh.com {\n username = example.com-home\n password = \"pw # not a comment\"\n hostname = home.example.com\n}\n\
            custom unifi {\n username = example.com-o\n password = x\n ddns-server = www.ovh.com\n\
            ddns-path = \"/nic/update?system=dyndns&hostname=%h&myip=%i\"\n hostname = o.example.com\n}\n\
            provider default@dyndns.org { username = u password = p hostname = d.example.net\n\
            checkip-server = checkip.example.net checkip-path = /ip }\n";
        let mut imp = parse(text, "inadyn.conf", &mut no_read).unwrap();
        imp.merge_hosts();
        let t: Vec<String> = imp.notes.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            t,
            [
                "inadyn.conf:3: not needed: period: dynhostd does not poll; it acts on the kernel's address events"
            ]
        );
        assert_eq!(imp.refresh.as_deref(), Some("2160000s"));
        let names: Vec<_> = imp
            .hosts
            .iter()
            .map(|h| (h.hostname.as_str(), h.family))
            .collect();
        assert_eq!(
            names,
            [
                ("home.example.com", FamilySet::Both),
                ("www.example.com", FamilySet::V4),
                ("o.example.com", FamilySet::V4),
                ("d.example.net", FamilySet::V4)
            ]
        );
        let home = &imp.hosts[0];
        assert_eq!(home.at.line, 6);
        assert_eq!(
            home.password,
            Password::Value(Secret::new("pw # not a comment"))
        );
        assert_eq!(home.interface.as_deref(), Some("ppp0"));
        assert_eq!(
            (imp.hosts[2].provider, imp.hosts[2].server.as_deref()),
            (Provider::Ovh, None)
        );
        assert_eq!(
            (imp.hosts[3].provider, imp.hosts[3].server.as_deref()),
            (
                Provider::Dyndns2,
                Some("https://members.dyndns.org/nic/update")
            )
        );
        assert_eq!(imp.detect_v4, ["https://checkip.example.net/ip"]);
    }

    #[test]
    fn other_providers_and_unknown_keys_are_left_out_with_their_line() {
        let text = "provider cloudflare.com:1 {\n username = z\n password = t\n hostname = h.example.com\n ttl = 1\n}\n\
            custom namecheap {\n username = a\n password = b\n ddns-server = dynamicdns.park-your-domain.com\n\
            ddns-path = \"/update?domain=%u&password=%p&host=%h\"\n hostname = { \"@\", \"www\" }\n}\n\
            provider default@ovh.com {\n username = u\n password = p\n hostname = h.example.com\n\
            checkip-command = \"/sbin/ip-of-wan\"\n}\nfoo = bar\n";
        let imp = parse(text, "f", &mut no_read).unwrap();
        let t: Vec<String> = imp.notes.iter().map(|n| n.to_string()).collect();
        let want = [
            "f:1: left out: provider cloudflare.com:1: another provider's own protocol",
            "f:7: left out: custom namecheap: ddns-path \"/update?domain=%u&password=%p&host=%h\" is not a dyndns2 update",
            "f:18: left out: checkip-command: a command as the address source",
            "f:20: left out: foo: not a setting",
        ];
        for w in want {
            assert!(t.iter().any(|n| n.starts_with(w)), "{w}\n{t:#?}");
        }
        assert_eq!(t.len(), want.len(), "{t:#?}");
        assert_eq!(imp.hosts.len(), 1);
    }

    #[test]
    fn includes_are_followed_and_loops_stopped() {
        let mut read = |p: &Path| -> Result<String, String> {
            match p.file_name().and_then(|n| n.to_str()) {
                Some("ovh.conf") => Ok("provider default@ovh.com {\n username = u\n password = p\n hostname = i.example.com\n}\n".into()),
                Some("loop.conf") => Ok("include(\"loop.conf\")\n".into()),
                _ => Err("not found".into()),
            }
        };
        let imp = parse(
            "period = 60\ninclude(\"ovh.conf\")\n",
            "/etc/inadyn.conf",
            &mut read,
        )
        .unwrap();
        assert_eq!(imp.hosts[0].hostname, "i.example.com");
        assert_eq!(imp.hosts[0].at.to_string(), "/etc/ovh.conf:1");
        let e = parse("include(\"loop.conf\")\n", "/etc/loop.conf", &mut read).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        let e = parse(
            "\n include ( \"missing.conf\" )\n",
            "/etc/a.conf",
            &mut read,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "/etc/a.conf:2: include: not found");
        // No loop, but ten includes of ten includes of …: stopped long before 10^8 reads.
        let mut reads = 0;
        let mut fan = |p: &Path| -> Result<String, String> {
            reads += 1;
            Ok(match p.file_name().and_then(|n| n.to_str()) {
                Some("x.conf") => "include(\"y.conf\")\n".repeat(10),
                Some("y.conf") => "include(\"z.conf\")\n".repeat(10),
                _ => String::new(),
            })
        };
        let e = parse("include(\"x.conf\")\n", "/etc/a.conf", &mut fan).unwrap_err();
        assert!(
            e.message.contains("more than 64 files included in all"),
            "{e}"
        );
        assert_eq!(reads, 64);
    }

    #[test]
    fn syntax_errors_name_the_line_and_what_was_expected() {
        for (text, line, what) in [
            (
                "provider default@ovh.com {\n username = u\n",
                2,
                "never closed",
            ),
            ("period 300\n", 1, "= and a value"),
            ("a = \"open\n\n", 1, "closing \""),
            ("/* open\n", 1, "never closed"),
            ("\n}\n", 2, "was expected"),
            ("h = { \"a\", \n", 1, "closed with }"),
        ] {
            let e = parse(text, "f", &mut no_read).unwrap_err();
            assert_eq!(e.at.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }
}
