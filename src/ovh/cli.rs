//! The `dynhostd ovh …` subcommands: their arguments, and what they print. Results go to
//! stdout, errors to stderr as `dynhostd: …`; exit 0 done (or nothing to do), 1 failed, 2 a
//! usage or config problem. No secret is ever printed.

use super::api::OvhClient;
use super::provision::{self, ProvisionError, ProvisionRequest, Session};
use crate::config::{self, Config, FamilySet};
use crate::provider::client::ClientOptions;
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum OvhCommand {
    /// Ask OVH for a consumer key that can only manage the zone's DynHost logins and records
    /// (and refresh the zone); prints the URL to approve it. The key goes to a 0600 file.
    Auth {
        /// The zone (domain) the key may manage. Without it, every zone of the account.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Create (or reuse) the DynHost login and record(s) for HOSTNAME with the address the
    /// agent would publish now, and print (or append) its [[host]] entry.
    Provision {
        /// The DynHost name, e.g. home.example.com.
        hostname: String,
        /// The zone holding HOSTNAME (default: the longest suffix the account holds).
        #[arg(long)]
        zone: Option<String>,
        /// Which records to create: one per family.
        #[arg(long, default_value = "ipv4", value_parser = ["ipv4", "ipv6", "both"])]
        family: String,
        /// The login's suffix: the login is <zone>-<suffix> (default: the subdomain).
        #[arg(long, value_name = "S")]
        login_suffix: Option<String>,
        /// Publish this address instead of the detected one (once per family).
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<IpAddr>,
        /// Put the password in the systemd credential store as NAME (password_credential)
        /// instead of a 0600 file next to the config.
        #[arg(long, value_name = "NAME")]
        credential: Option<String>,
        /// The credential store directory.
        #[arg(long, value_name = "DIR", default_value = provision::CREDSTORE)]
        credstore: PathBuf,
        /// The update URL for the [[host]] entry, when not OVH's default.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// If the login exists and this machine has no password for it, give it a new one.
        #[arg(long)]
        reset_password: bool,
        /// Append the [[host]] entry to the config (validated, atomically, comments kept).
        #[arg(long)]
        write_config: bool,
        /// Show the calls that would change something; change nothing, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The zone's DynHost logins and records, side by side with the config's hosts.
    List {
        /// The zone to list (default: the zones of the config's hosts).
        #[arg(long)]
        zone: Option<String>,
    },
    /// Give HOSTNAME's login a new random password, write it to the host's password_file (or
    /// credential), and tell the running agent to reload.
    Rotate {
        /// A hostname of the config's [[host]] entries.
        hostname: String,
        #[arg(long)]
        zone: Option<String>,
        /// The credential store directory, for a host with password_credential.
        #[arg(long, value_name = "DIR", default_value = provision::CREDSTORE)]
        credstore: PathBuf,
    },
    /// Delete HOSTNAME's DynHost login (and with --record its records).
    Remove {
        /// The DynHost name whose login (and records) to delete.
        hostname: String,
        #[arg(long)]
        zone: Option<String>,
        /// Also delete the DynHost record(s).
        #[arg(long)]
        record: bool,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs one `ovh` subcommand with the config at `config_path`.
pub fn run(config_path: &Path, command: OvhCommand) -> ExitCode {
    let config = match config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dynhostd: {e}");
            return ExitCode::from(2);
        }
    };
    if config.ovh_api.is_none() {
        eprintln!(
            "dynhostd: {}: no [ovh_api] section: add endpoint, application_key and application_secret_file (README, \"Set up the DynHost side without the panel\")",
            config_path.display()
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dynhostd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&config, config_path, command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dynhostd: {e}");
            match e {
                ProvisionError::Config(_)
                | ProvisionError::Write(crate::config::write::WriteError::NotInConfig(_))
                | ProvisionError::BadName { .. } => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn print_steps(steps: &provision::Steps) {
    let mut out = std::io::stdout().lock();
    for line in &steps.lines {
        let _ = writeln!(out, "{line}");
    }
}

async fn dispatch(
    config: &Config,
    config_path: &Path,
    command: OvhCommand,
) -> Result<ExitCode, ProvisionError> {
    let api = config.ovh_api.as_ref().expect("checked by run");
    let opts = ClientOptions {
        connect_timeout: config.http.connect_timeout,
        timeout: config.http.timeout,
    };
    let needs_key = !matches!(command, OvhCommand::Auth { .. });
    let client = OvhClient::new(api, &opts, needs_key)?;
    match command {
        OvhCommand::Auth { zone } => {
            let zone = zone
                .map(|z| provision::check_name(provision::NameKind::Zone, &z))
                .transpose()?;
            let config_dir = config_path.parent().unwrap_or(Path::new("."));
            let key_path = api
                .consumer_key_file
                .clone()
                .unwrap_or_else(|| config_dir.join(provision::CONSUMER_KEY_FILE));
            let (url, rules) = provision::auth(&client, zone.as_deref(), &key_path).await?;
            println!("Consumer key requested. It can only:");
            for r in &rules {
                println!("  {} {}", r.method, r.path);
            }
            if zone.is_none() {
                println!("  (every zone of the account: pass --zone to limit it to one)");
            }
            println!("The key is in {} (mode 0600).", key_path.display());
            if api.consumer_key_file.as_deref() != Some(key_path.as_path()) {
                println!(
                    "Put it in [ovh_api] of {}:\n  consumer_key_file = {:?}",
                    config_path.display(),
                    key_path.display().to_string()
                );
            }
            println!("Approve it once, logged in to your OVH account, at:\n  {url}");
            println!("Then: dynhostd ovh provision HOSTNAME --write-config");
            Ok(ExitCode::SUCCESS)
        }
        OvhCommand::Provision {
            hostname,
            zone,
            family,
            login_suffix,
            ips,
            credential,
            credstore,
            server,
            reset_password,
            write_config,
            dry_run,
        } => {
            let family = match family.as_str() {
                "ipv6" => FamilySet::V6,
                "both" => FamilySet::Both,
                _ => FamilySet::V4,
            };
            // HOSTNAME, --zone and --login-suffix are checked by `provision` itself, before
            // any call or write (provision::check_name).
            if let Some(name) = &credential
                && (name.is_empty() || name.contains('/') || name == "." || name == "..")
            {
                eprintln!("dynhostd: --credential: a credential name, without '/', not . or ..");
                return Ok(ExitCode::from(2));
            }
            let req = ProvisionRequest {
                hostname,
                zone,
                family,
                login_suffix,
                ips,
                server,
                credential,
                credstore,
                reset_password,
                write_config,
            };
            let mut s = Session::new(&client, dry_run);
            let result = provision::provision(&mut s, config, config_path, &req).await;
            print_steps(&s.steps);
            result?;
            if write_config && !dry_run && s.steps.changed {
                println!("next: dynhostd check && dynhostd run");
            }
            Ok(ExitCode::SUCCESS)
        }
        OvhCommand::List { zone } => list(&client, config, zone).await,
        OvhCommand::Rotate {
            hostname,
            zone,
            credstore,
        } => {
            let mut s = Session::new(&client, false);
            let result = provision::rotate(
                &mut s,
                config,
                config_path,
                &hostname,
                zone.as_deref(),
                &credstore,
            )
            .await;
            print_steps(&s.steps);
            result.map(|_| ExitCode::SUCCESS)
        }
        OvhCommand::Remove {
            hostname,
            zone,
            record,
            yes,
        } => {
            if !yes && !confirm(&hostname, record) {
                return Err(ProvisionError::NotConfirmed);
            }
            let mut s = Session::new(&client, false);
            let result =
                provision::remove(&mut s, config, &hostname, zone.as_deref(), record).await;
            print_steps(&s.steps);
            result.map(|()| ExitCode::SUCCESS)
        }
    }
}

/// Asks on the terminal; without one (a script) the answer is no.
fn confirm(hostname: &str, record: bool) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!(
        "Delete the DynHost login of {hostname}{}? [y/N] ",
        if record { " and its record(s)" } else { "" }
    );
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// `ovh list`: per zone, the logins, the records (with whether a login covers each), and the
/// config's hosts in that zone whose record is missing.
async fn list(
    client: &OvhClient,
    config: &Config,
    zone: Option<String>,
) -> Result<ExitCode, ProvisionError> {
    let s = Session::new(client, false);
    let mut zones: Vec<String> = Vec::new();
    match zone {
        Some(z) => zones.push(provision::check_name(provision::NameKind::Zone, &z)?),
        None => {
            for h in &config.hosts {
                let (z, _) = provision::find_zone(&s, &h.hostname, None).await?;
                if !zones.contains(&z) {
                    zones.push(z);
                }
            }
        }
    }
    if zones.is_empty() {
        eprintln!("dynhostd: no [[host]] in the config to find a zone from: pass --zone");
        return Ok(ExitCode::from(2));
    }
    let mut out = String::new();
    for zone in zones {
        let logins = provision::list_logins(&s, &zone).await?;
        let records = provision::list_records(&s, &zone, None).await?;
        let name = |sub: &str| {
            if sub.is_empty() {
                zone.clone()
            } else {
                format!("{sub}.{zone}")
            }
        };
        out += &format!("zone {zone}\n  logins:\n");
        if logins.is_empty() {
            out += "    (none)\n";
        }
        for l in &logins {
            let scope = if l.sub_domain == "*" {
                format!("*.{zone}")
            } else {
                name(&l.sub_domain)
            };
            let in_config = config.hosts.iter().any(|h| h.login == l.login);
            out += &format!(
                "    {:<32} scope {:<32} {}\n",
                l.login,
                scope,
                if in_config { "in config" } else { "-" }
            );
        }
        out += "  records:\n";
        if records.is_empty() {
            out += "    (none)\n";
        }
        for r in &records {
            let covered = logins
                .iter()
                .any(|l| l.sub_domain == r.sub_domain || l.sub_domain == "*");
            out += &format!(
                "    {:<32} {:<40} id {:<10} {}\n",
                name(&r.sub_domain),
                r.ip,
                r.id,
                if covered { "has a login" } else { "NO LOGIN" }
            );
        }
        for h in config.hosts.iter().filter(|h| {
            provision::subdomain_in(&h.hostname, &zone).is_some()
                && h.login.starts_with(&format!("{zone}-"))
        }) {
            let sub = provision::subdomain_in(&h.hostname, &zone).unwrap_or_default();
            for f in h.family.families() {
                let has = records.iter().any(|r| {
                    r.sub_domain == sub
                        && r.ip
                            .parse::<IpAddr>()
                            .is_ok_and(|ip| crate::record::Family::of(&ip) == *f)
                });
                if !has {
                    out += &format!(
                        "  config host {} ({}): NO {} RECORD: `dynhostd ovh provision {}`\n",
                        h.hostname,
                        f,
                        if *f == crate::record::Family::V4 {
                            "A"
                        } else {
                            "AAAA"
                        },
                        h.hostname
                    );
                }
            }
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
