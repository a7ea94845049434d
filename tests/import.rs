//! `dynhostd import`, black-box (issue 22): the samples of ddclient, inadyn and OpenWrt's
//! ddns-scripts (tests/data/import, unchanged from upstream) and configs written the way users
//! write them (mixed-case keys, tabs, CRLF, comments in odd places) become dynhostd TOML; every
//! entry or key that does not carry over is listed with its file:line and why (exit 1);
//! unreadable or hostile input exits 2 and writes nothing; `--write-config` (with
//! `--credential`, `--dry-run`) writes passwords to 0600 files or credentials, never into the
//! TOML or any message; and the imported OVH hosts are then published, against the local
//! DynHost stand-in, with their imported login and password.

#![cfg(feature = "import")]

#[path = "support/cli.rs"]
mod cli;
#[path = "support/netns.rs"]
mod netns;
#[path = "support/standin.rs"]
mod standin;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SECRET: &str = "Imp0rted-secret-7c1e";

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/import")
        .join(p)
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// `dynhostd import ARGS -c CONFIG`, with `stdin` piped in and `env` added.
fn import(config: &Path, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(cli::BIN);
    c.arg("import")
        .args(args)
        .arg("-c")
        .arg(config)
        .env_remove("DYNHOSTD_CONFIG")
        .env_remove("DYNHOSTD_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().unwrap();
        let bytes = bytes.to_vec();
        // The command may stop reading early (input too large): a closed pipe is its answer.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let out = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    let o = Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stdout.contains(SECRET) && !o.stderr.contains(SECRET),
        "a password was printed:\n{}{}",
        o.stdout,
        o.stderr
    );
    o
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The `[[host]]` tables of a TOML text.
fn hosts(toml_text: &str) -> Vec<toml::Table> {
    let t: toml::Table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("not TOML: {e}\n{toml_text}"));
    t.get("host")
        .and_then(|h| h.as_array())
        .map(|a| a.iter().map(|h| h.as_table().unwrap().clone()).collect())
        .unwrap_or_default()
}

fn get<'a>(h: &'a toml::Table, k: &str) -> Option<&'a str> {
    h.get(k).and_then(|v| v.as_str())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_upstream_samples_import_and_say_what_they_assumed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("etc").join("config.toml");
    // (sample, exit, what stderr must say)
    let cases: &[(&str, i32, &[&str])] = &[
        (
            "inadyn/ovh.conf",
            0,
            &[
                "as inadyn's configuration (recognised from its content",
                "ovh.conf:2: not needed: period: dynhostd does not poll",
            ],
        ),
        (
            "inadyn/dyndns.conf",
            0,
            &["example.dyndns.org: password would be written to"],
        ),
        (
            "inadyn/custom.conf",
            1,
            &["custom.conf:5: left out: custom namecheap: ddns-path"],
        ),
        (
            "inadyn/cloudflare-ipv4-ipv6.conf",
            1,
            &[
                "cloudflare-ipv4-ipv6.conf:4: left out: provider cloudflare.com:1: another provider's own protocol",
                "cloudflare-ipv4-ipv6.conf:15: left out: provider cloudflare.com:2",
            ],
        ),
        (
            "inadyn/inadyn.conf",
            1,
            &["nothing but comments and blank lines"],
        ),
        (
            "ddclient/ddclient.conf.in",
            1,
            &[
                "as ddclient's configuration",
                "ddclient.conf.in:24: not needed: daemon: dynhostd does not poll",
                "ddclient.conf.in:27: left out: mail: dynhostd sends no mail",
                "no OVH or dyndns2 host entry to import",
            ],
        ),
        (
            "openwrt/ddns",
            0,
            &[
                "as ddns-scripts's configuration",
                "ddns:12: warning: service 'myddns_ipv4': not enabled in ddns-scripts, so imported with enabled = false",
                "ddns:20: warning: ip_network 'wan' is an OpenWrt network name, kept as it is (no ubus on this machine)",
            ],
        ),
    ];
    for (file, code, says) in cases {
        // No ubus on this PATH (as on a workstation).
        let o = import(&cfg, &[s(&data(file))], None, &[("PATH", "/nonexistent")]);
        assert_eq!(o.code, Some(*code), "{file}:\n{}{}", o.stdout, o.stderr);
        for w in *says {
            assert!(o.stderr.contains(w), "{file}: no {w:?} in:\n{}", o.stderr);
        }
        if *code == 0 {
            assert!(!hosts(&o.stdout).is_empty(), "{file}: {}", o.stdout);
        }
    }
    // Printing writes nothing: not even the config's directory.
    assert!(!dir.path().join("etc").exists());

    let o = import(
        &cfg,
        &[s(&data("openwrt/ddns"))],
        None,
        &[("PATH", "/nonexistent")],
    );
    let h = hosts(&o.stdout);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].get("enabled").and_then(|v| v.as_bool()), Some(false));
    assert_eq!(
        get(&h[0], "server"),
        Some("https://members.dyndns.org/nic/update")
    );
    assert_eq!(get(&h[1], "family"), Some("ipv6"));
    assert_eq!(
        get(&h[1], "server"),
        Some("https://your.provider.net/nic/update")
    );
}

#[test]
fn ddclient_configs_as_users_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let text = format!(
        "# /etc/ddclient.conf\r\nDaemon=600\t\t\t# check every 10 minutes\r\n\
         ssl=yes\r\nUse=if, IF=ppp0 # the PPPoE link\r\n\
         max-interval=20d\r\n\r\n\
         ## OVH, two records on one line\r\n\
         protocol=ovh,\t\\\r\n  login=example.com-home,  \\   # the DynHost login\r\n\
         \tpassword='{SECRET}'  \\\r\n  home.example.com, www.example.com\r\n\
         # OVH with the old dyndns2 settings, on another interface, IPv6 too\r\n\
         protocol=dyndns2, server=www.ovh.com, login=example.com-v6, password=\"{SECRET}\", usev4=ifv4, ifv4=eth1, usev6=ifv6, ifv6=eth1 v6.example.com\r\n\
         # ddclient 4: the password from the environment, an address from the web\r\n\
         protocol=dyndns2, server=members.example.net, login=me, password_env=DDNS_PW, use=web, web=https://checkip.example.net/ip dyn.example.net\r\n"
    );
    let f = write(dir.path(), "ddclient.conf", &text);
    let o = import(&cfg, &["--from", "ddclient", s(&f)], None, &[]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(
        !o.stderr.contains("recognised"),
        "--from given: {}",
        o.stderr
    );
    assert!(
        o.stderr.contains("ddclient.conf:2: not needed: daemon"),
        "{}",
        o.stderr
    );
    let t: toml::Table = o.stdout.parse().unwrap();
    assert_eq!(t["wan"]["interface"].as_str(), Some("ppp0"));
    assert_eq!(t["update"]["refresh"].as_str(), Some("20d"));
    assert_eq!(
        t["detect"]["ipv4"].as_array().unwrap()[0].as_str(),
        Some("https://checkip.example.net/ip")
    );
    let h = hosts(&o.stdout);
    let names: Vec<_> = h.iter().map(|h| get(h, "hostname").unwrap()).collect();
    assert_eq!(
        names,
        [
            "home.example.com",
            "www.example.com",
            "v6.example.com",
            "dyn.example.net"
        ]
    );
    assert_eq!(get(&h[0], "login"), Some("example.com-home"));
    assert_eq!(
        get(&h[0], "password_file"),
        Some("dynhost-home.example.com.password")
    );
    assert_eq!(get(&h[0], "provider"), None, "OVH is the default");
    assert_eq!(get(&h[0], "server"), None, "OVH's default server");
    assert_eq!(get(&h[0], "interface"), None, "follows [wan]");
    assert_eq!(get(&h[2], "family"), Some("both"));
    assert_eq!(get(&h[2], "interface"), Some("eth1"));
    assert_eq!(get(&h[2], "server"), None, "www.ovh.com is OVH's");
    assert_eq!(get(&h[3], "provider"), Some("dyndns2"));
    assert_eq!(
        get(&h[3], "server"),
        Some("https://members.example.net/nic/update")
    );
    assert_eq!(get(&h[3], "password_env"), Some("DDNS_PW"));
    assert_eq!(get(&h[3], "password_file"), None);
    // The line of each entry is in its comment.
    assert!(
        o.stdout.contains("# From ") && o.stdout.contains("ddclient.conf:8: protocol=ovh."),
        "{}",
        o.stdout
    );
}

#[test]
fn inadyn_configs_with_includes_lists_and_three_comment_styles() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    write(
        dir.path(),
        "ovh6.conf",
        &format!(
            "// the AAAA record\nprovider ipv6@ovh.com {{\n\tUsername = example.com-home\n\tpassword = \"{SECRET}\"\n\thostname = {{ \"home.example.com\", \"nas.example.com\" }}\n}}\n"
        ),
    );
    let main = write(
        dir.path(),
        "inadyn.conf",
        &format!(
            "/* generated\r\n   by hand */\r\nperiod = 600\r\nForced-Update = 864000 # 10 days\r\niface = eth0\r\n\
             provider default@ovh.com:1 {{ # OVH\r\n    username = example.com-home\r\n    password = \"{SECRET}\"\r\n\
             \thostname = {{ \"home.example.com\", \"nas.example.com\" }}\r\n    checkip-server = ip4.example.net\r\n}}\r\n\
             include(\"ovh6.conf\")\r\n\
             custom unifi:2 {{\r\n  username = example.com-gw\r\n  password = {SECRET}\r\n  ddns-server = \"www.ovh.com\"\r\n\
             ddns-path = \"/nic/update?system=dyndns&hostname=%h&myip=%i\"\r\n  hostname = gw.example.com\r\n}}\r\n"
        ),
    );
    let o = import(&cfg, &[s(&main)], None, &[]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("as inadyn's configuration"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("inadyn.conf:3: not needed: period"),
        "{}",
        o.stderr
    );
    let t: toml::Table = o.stdout.parse().unwrap();
    assert_eq!(t["wan"]["interface"].as_str(), Some("eth0"));
    assert_eq!(t["update"]["refresh"].as_str(), Some("864000s"));
    assert_eq!(
        t["detect"]["ipv4"].as_array().unwrap()[0].as_str(),
        Some("https://ip4.example.net/")
    );
    let h = hosts(&o.stdout);
    let got: Vec<_> = h
        .iter()
        .map(|h| (get(h, "hostname").unwrap(), get(h, "family").unwrap()))
        .collect();
    // The default@ and ipv6@ entries of one name become one host with both records.
    assert_eq!(
        got,
        [
            ("home.example.com", "both"),
            ("nas.example.com", "both"),
            ("gw.example.com", "ipv4")
        ]
    );
    assert_eq!(
        get(&h[2], "server"),
        None,
        "UniFi's custom OVH section is OVH"
    );
    assert_eq!(get(&h[2], "login"), Some("example.com-gw"));
}

#[test]
fn ddns_scripts_services_from_uci_export_on_stdin_with_ubus() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    // A fake ubus first on PATH: netifd's answer for `wan` only.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let ubus = write(
        &bin,
        "ubus",
        "#!/bin/sh\nif [ \"$1 $2 $3\" = 'call network.interface.wan status' ]; then\n  echo '{\"up\": true, \"l3_device\": \"pppoe-wan\", \"device\": \"eth0.2\"}'\n  exit 0\nfi\nexit 4\n",
    );
    std::fs::set_permissions(&ubus, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let export = format!(
        "package ddns\n\nconfig ddns 'global'\n\toption ddns_dateformat '%F %R'\n\n\
         config service 'ovh_v4'\n\tOption enabled '1'\n\toption service_name 'ovh.com'\n\
         \toption domain 'home.example.com'\n\toption username 'example.com-home'\n\
         \toption password '{SECRET}'\n\toption ip_source 'network'\n\toption ip_network 'wan'\n\
         \toption check_interval '10'\n\toption check_unit 'minutes'\n\
         \toption force_interval '3'\n\toption force_unit 'days'\n\n\
         config service 'by_url'\n\toption enabled '0'\n\
         \toption update_url 'https://[USERNAME]:[PASSWORD]@dns.eu.ovhapis.com/nic/update?system=dyndns&hostname=[DOMAIN]&myip=[IP]'\n\
         \toption domain 'off.example.com'\n\toption username 'example.com-off'\n\toption password '{SECRET}'\n\
         \toption use_ipv6 '1'\n\toption ip_source 'network'\n\toption ip_network 'lan6'\n"
    );
    let o = import(
        &cfg,
        &["--from", "ddns-scripts", "-"],
        Some(export.as_bytes()),
        &[("PATH", &path)],
    );
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("<stdin>:14: not needed: check_interval"),
        "{}",
        o.stderr
    );
    // ubus answered for wan, failed for lan6: kept, with a warning saying so.
    assert!(
        o.stderr.contains("<stdin>:27: warning: ip_network 'lan6' is an OpenWrt network name, kept as it is (`ubus call network.interface.lan6 status` failed)"),
        "{}",
        o.stderr
    );
    let t: toml::Table = o.stdout.parse().unwrap();
    assert_eq!(t["wan"]["interface"].as_str(), Some("pppoe-wan"));
    assert_eq!(t["update"]["refresh"].as_str(), Some("3d"));
    let h = hosts(&o.stdout);
    assert_eq!(get(&h[0], "hostname"), Some("home.example.com"));
    assert_eq!(h[0].get("enabled"), None, "enabled '1': the default");
    assert_eq!(get(&h[1], "hostname"), Some("off.example.com"));
    assert_eq!(
        get(&h[1], "server"),
        None,
        "an update_url on OVH's host is OVH"
    );
    assert_eq!(get(&h[1], "family"), Some("ipv6"));
    assert_eq!(get(&h[1], "interface"), Some("lan6"));
    assert_eq!(h[1].get("enabled").and_then(|v| v.as_bool()), Some(false));
}

#[test]
fn what_is_left_out_is_listed_with_file_line_and_why_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let ddclient = write(
        dir.path(),
        "ddclient.conf",
        &format!(
            "postscript=/etc/ddclient/after.sh\n\
             protocol=cloudflare, zone=example.com, password={SECRET} cf.example.com\n\
             protocol=ovh, use=cmd, cmd='/usr/bin/wan-ip', login=example.com-h, password={SECRET} h.example.com\n\
             protocol=ovh, login=example.com-n n.example.com\n"
        ),
    );
    let o = import(&cfg, &[s(&ddclient)], None, &[]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    for w in [
        "ddclient.conf:1: left out: postscript=/etc/ddclient/after.sh: becomes [hook] exec",
        "ddclient.conf:2: left out: cf.example.com: protocol=cloudflare is another provider's own protocol",
        "ddclient.conf:3: left out: use=cmd: a command as the address source",
        "ddclient.conf:4: left out: n.example.com: no password= or password_env= for this host",
    ] {
        assert!(o.stderr.contains(w), "no {w:?} in:\n{}", o.stderr);
    }
    // What could be carried over still is.
    assert_eq!(hosts(&o.stdout).len(), 1);
    let uci = write(
        dir.path(),
        "ddns",
        "config service 's'\n\toption enabled '1'\n\toption service_name 'ovh.com'\n\toption domain 'h.example.com'\n\
         \toption username 'u'\n\toption password 'p'\n\toption ip_source 'script'\n\toption ip_script '/usr/bin/myip'\n",
    );
    let o = import(&cfg, &[s(&uci)], None, &[]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains("ddns:8: left out: ip_script: a script as the address source"),
        "{}",
        o.stderr
    );
}

#[test]
fn write_config_creates_appends_keeps_comments_and_writes_no_password_into_the_toml() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    let cfg = etc.join("config.toml");
    let inadyn = write(
        dir.path(),
        "inadyn.conf",
        &format!(
            "iface = ppp0\nprovider default@ovh.com {{\n username = example.com-home\n password = \"{SECRET}\"\n hostname = home.example.com\n}}\n"
        ),
    );
    // --dry-run: says what it would write, writes nothing.
    let o = import(
        &cfg,
        &["--write-config", "--dry-run", s(&inadyn)],
        None,
        &[],
    );
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("# dry run: would append to"),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.contains(&format!(
            "home.example.com: password would be written to {} (mode 0600)",
            etc.join("dynhost-home.example.com.password").display()
        )),
        "{}",
        o.stderr
    );
    assert!(!etc.exists(), "a dry run wrote something");

    // No config yet: created, with the imported [wan].
    let o = import(&cfg, &["--write-config", s(&inadyn)], None, &[]);
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("interface = \"ppp0\""), "{text}");
    let pw = etc.join("dynhost-home.example.com.password");
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), format!("{SECRET}\n"));
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, err) = check(&cfg);
    assert_eq!(code, Some(0), "{err}\n{text}");

    // The same import again: nothing left to import, nothing changed.
    let o = import(&cfg, &["--write-config", s(&inadyn)], None, &[]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains("inadyn.conf:2: left out: home.example.com:")
            && o.stderr.contains("nothing left to import"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), text);

    // Again, plus another host: the first is already there (left out, exit 1); the config's
    // [wan] is kept, so the new host names the interface it follows; comments stay.
    let mut t = text.clone();
    t.insert_str(0, "# my own comment\n");
    std::fs::write(&cfg, &t).unwrap();
    let more = write(
        dir.path(),
        "more.conf",
        &format!(
            "iface = eth9\nprovider default@ovh.com {{\n username = example.com-home\n password = \"{SECRET}\"\n hostname = {{ home.example.com, office.example.com }}\n}}\n"
        ),
    );
    let o = import(&cfg, &["--write-config", s(&more)], None, &[]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr
            .contains("more.conf:2: left out: home.example.com:")
            && o.stderr.contains("already has a [[host]] for this record"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("[wan]"), "{}", o.stderr);
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.starts_with("# my own comment\n"), "{text}");
    let h = hosts(&text);
    assert_eq!(h.len(), 2, "{text}");
    assert_eq!(get(&h[1], "hostname"), Some("office.example.com"));
    // office.example.com follows eth9, which is not the config's [wan].
    assert_eq!(get(&h[1], "interface"), Some("eth9"));
    assert_eq!(check(&cfg).0, Some(0));

    // --credential: the password goes to the credential store, named after the host.
    let store = dir.path().join("credstore");
    let cfg2 = dir.path().join("etc2").join("config.toml");
    let o = import(
        &cfg2,
        &[
            "--write-config",
            "--credential",
            "--credstore",
            s(&store),
            s(&inadyn),
        ],
        None,
        &[],
    );
    assert_eq!(o.code, Some(0), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("LoadCredential=home.example.com:"),
        "{}",
        o.stderr
    );
    let text = std::fs::read_to_string(&cfg2).unwrap();
    assert_eq!(
        get(&hosts(&text)[0], "password_credential"),
        Some("home.example.com")
    );
    let cred = store.join("home.example.com");
    assert_eq!(
        std::fs::read_to_string(&cred).unwrap(),
        format!("{SECRET}\n")
    );
    assert_eq!(
        std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// `dynhostd check -c PATH`: (exit code, stderr).
fn check(cfg: &Path) -> (Option<i32>, String) {
    let out = Command::new(cli::BIN)
        .args(["check", "-c", s(cfg)])
        .env_remove("DYNHOSTD_LOG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hostile_input_is_refused_with_exit_2_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let etc = d.join("etc");
    let cfg = etc.join("config.toml");
    // 100 MB (sparse): refused by size, not read.
    let big = d.join("big.conf");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let fifo = d.join("fifo.conf");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success(),
        "mkfifo"
    );
    let garbage = d.join("garbage.conf");
    let mut bytes: Vec<u8> = b"protocol=ovh\n".to_vec();
    bytes.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 1));
    std::fs::write(&garbage, &bytes).unwrap();
    let nul = write(d, "nul.conf", "protocol=ovh\nlogin=a\0b\n");
    let looped = write(d, "loop.conf", "period = 60\ninclude(\"loop2.conf\")\n");
    write(d, "loop2.conf", "include(\"loop.conf\")\n");
    let zero = write(d, "zero.conf", "include(\"/dev/zero\")\n");
    let ok_text = format!(
        "provider default@ovh.com {{\n username = u\n password = {SECRET}\n hostname = h.example.com\n}}\n"
    );
    // (arguments, standard input, what the error must say)
    type Case<'a> = (Vec<String>, Option<Vec<u8>>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![s(&big).into()],
            None,
            "big.conf: too large (the limit is 1 MiB)",
        ),
        (vec![s(&fifo).into()], None, "a FIFO"),
        (vec![s(&garbage).into()], None, "not UTF-8"),
        (vec![s(&nul).into()], None, "nul.conf:2: binary data"),
        (
            vec![s(&looped).into()],
            None,
            "this file includes itself (an include loop)",
        ),
        (
            vec![s(&zero).into()],
            None,
            "zero.conf:1: include: cannot read /dev/zero",
        ),
        (
            vec!["-".into()],
            Some([ok_text.as_bytes(), &vec![b'#'; 2 << 20]].concat()),
            "standard input: too large (the limit is 1 MiB)",
        ),
        (
            vec!["--from".into(), "inadyn".into(), "-".into()],
            Some(b"provider default@ovh.com {\n username = u\n".to_vec()),
            "<stdin>:2: provider default@ovh.com (line 1) is never closed with }",
        ),
        (
            vec![s(&d.join("missing.conf")).into()],
            None,
            "missing.conf",
        ),
    ];
    for (args, stdin, says) in cases {
        let mut a: Vec<&str> = vec!["--write-config"];
        a.extend(args.iter().map(String::as_str));
        let o = import(&cfg, &a, stdin.as_deref(), &[]);
        assert_eq!(o.code, Some(2), "{args:?}:\n{}{}", o.stdout, o.stderr);
        assert!(
            o.stderr.contains(says),
            "{args:?}: no {says:?} in:\n{}",
            o.stderr
        );
        assert!(o.stdout.is_empty(), "{args:?}: {}", o.stdout);
        assert!(!etc.exists(), "{args:?} wrote something");
    }
    // Only the inputs: no config, no password file, no temporary file anywhere.
    assert_eq!(
        files_in(d),
        [
            "big.conf",
            "fifo.conf",
            "garbage.conf",
            "loop.conf",
            "loop2.conf",
            "nul.conf",
            "zero.conf"
        ]
    );
}

#[test]
fn imported_ovh_hosts_are_published_with_their_login_and_password() {
    netns::in_netns(
        "imported_ovh_hosts_are_published_with_their_login_and_password",
        || {
            let setup = cli::Setup::new();
            let dir = setup.dir.path();
            let cfg = setup.config_path();
            // The OVH samples, as users run them: inadyn's ovh.conf unchanged; ddclient's
            // sample with its OVH example uncommented; UniFi's custom section; an OpenWrt
            // service with OpenWrt's ovh.com.
            let ddclient = std::fs::read_to_string(data("ddclient/ddclient.conf.in"))
                .unwrap()
                .replace(
                    "# protocol=ovh,\n# login=example.com-dynhostuser,\n# password=your_password\n# test.example.com\n",
                    "protocol=ovh,\nlogin=example.com-dynhostuser,\npassword=your_password\ntest.example.com\n",
                );
            assert!(
                ddclient.contains("\ntest.example.com\n"),
                "the sample changed"
            );
            let ddclient = write(dir, "ddclient.conf", &ddclient);
            let unifi = write(
                dir,
                "unifi.conf",
                "custom ovh:1 {\n  hostname = \"gw.example.com\"\n  username = \"example.com-gw\"\n  password = \"gw-pass\"\n  ddns-server = \"www.ovh.com\"\n  ddns-path = \"/nic/update?system=dyndns&hostname=%h&myip=%i\"\n}\n",
            );
            let uci = write(
                dir,
                "ddns",
                "config service 'ovh'\n\toption enabled '1'\n\toption service_name 'ovh.com'\n\toption domain 'rt.example.com'\n\toption username 'example.com-rt'\n\toption password 'rt-pass'\n\toption ip_source 'interface'\n\toption ip_interface 'ppp0'\n\n\
                 config service 'off'\n\toption enabled '0'\n\toption service_name 'ovh.com'\n\toption domain 'off.example.com'\n\toption username 'example.com-off'\n\toption password 'off-pass'\n",
            );
            let imports = [
                (data("inadyn/ovh.conf"), 0),
                (ddclient, 1), // mail= and mail-failure= are left out
                (unifi, 0),
                (uci, 0),
            ];
            for (f, code) in &imports {
                let o = import(&cfg, &["--write-config", s(f)], None, &[]);
                assert_eq!(
                    o.code,
                    Some(*code),
                    "{}:\n{}{}",
                    f.display(),
                    o.stdout,
                    o.stderr
                );
            }
            let (code, err) = check(&cfg);
            assert_eq!(code, Some(0), "{err}");
            let accounts = [
                ("subdomain.domain.tld", "domain.tld-username", "password"),
                (
                    "test.example.com",
                    "example.com-dynhostuser",
                    "your_password",
                ),
                ("gw.example.com", "example.com-gw", "gw-pass"),
                ("rt.example.com", "example.com-rt", "rt-pass"),
            ];
            let mut conf = standin::StandinConfig::https();
            for (host, login, pw) in accounts {
                conf = conf.account(login, pw, host).record(host);
            }
            let st = standin::Standin::start_on_thread(conf).expect("stand-in");
            // Only the server (the stand-in's, with its CA) and where the agent keeps state
            // are the test's; every imported line stays as it was.
            let text = std::fs::read_to_string(&cfg).unwrap();
            let text = text.replace(
                "[[host]]\n",
                &format!(
                    "[[host]]\nserver = \"{}\"\nca_file = \"{}\"\n",
                    st.url(),
                    st.ca_file().unwrap().display()
                ),
            );
            let text = format!(
                "{text}\n[state]\ndir = \"{}\"\ncontrol = \"{}\"\n\n[verify]\ninterval = \"0\"\n",
                setup.state_path().parent().unwrap().display(),
                setup.control_path().display()
            );
            let text = if text.contains("\n[wan]\n") {
                text.replace("\n[wan]\n", "\n[wan]\naccept = [\"203.0.113.0/24\"]\n")
            } else {
                format!("{text}\n[wan]\naccept = [\"203.0.113.0/24\"]\n")
            };
            std::fs::write(&cfg, text).unwrap();
            let (status, out, err) = setup.run(&["update", "--ip", "203.0.113.10"]);
            assert!(status.success(), "{out}{err}");
            let reqs = st.requests();
            // The service ddns-scripts had switched off is imported switched off: not sent.
            assert!(
                reqs.iter()
                    .all(|r| r.param("hostname") != Some("off.example.com")),
                "{reqs:#?}"
            );
            assert!(
                std::fs::read_to_string(&cfg)
                    .unwrap()
                    .contains("hostname = \"off.example.com\"\nlogin = \"example.com-off\""),
                "the disabled service was not imported"
            );
            for (host, login, _) in accounts {
                let r = reqs
                    .iter()
                    .find(|r| r.param("hostname") == Some(host))
                    .unwrap_or_else(|| panic!("{host} never arrived: {reqs:#?}"));
                assert_eq!(r.login.as_deref(), Some(login), "{host}");
                // The stand-in answers good only to the account's own password.
                assert!(
                    r.answer.starts_with("200 good 203.0.113.10"),
                    "{host}: {}",
                    r.answer
                );
            }
        },
    );
}
