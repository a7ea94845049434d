//! The `dynhostd` command: parse the CLI, load the config, call into the library, map errors
//! to exit codes (0 fine, 1 failed, 2 usage or config error). Nothing else lives here.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dynhostd::agent::{self, RunOptions, UpdateOptions};
use dynhostd::config::{self, Config, DetectConfig};
use dynhostd::report;
use dynhostd::wan::policy::AddressPolicy;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Keeps OVH DynHost (and dyndns2) records pointing at this gateway's public address,
/// driven by kernel address events rather than polling.
#[derive(Parser)]
#[command(name = "dynhostd", version, propagate_version = true)]
struct Cli {
    /// More log output (-v debug, -vv trace). Overrides DYNHOSTD_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    verbose: u8,
    /// Less log output (-q warnings, -qq errors only). Overrides DYNHOSTD_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    quiet: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// Configuration file.
    #[arg(long, short = 'c', env = "DYNHOSTD_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent in the foreground, logging to stderr.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Log what would be sent; send nothing and write no state.
        #[arg(long)]
        dry_run: bool,
    },
    /// One pass: publish the current address where it differs from the state file, then exit
    /// (0: every enabled record is current; 1: some update failed; 2: usage or config error).
    Update {
        #[command(flatten)]
        config: ConfigArg,
        /// Use this address instead of the interface's (pppd passes it to ip-up scripts as $4).
        /// Once per family.
        #[arg(long = "ip", value_name = "ADDR")]
        ips: Vec<IpAddr>,
        /// Send even when the state file says the address is already published.
        #[arg(long)]
        force: bool,
        /// Log what would be sent; send nothing and write no state.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the configuration and print it as dynhostd understands it (secrets redacted).
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show, per host and record, what is published, when, the last reply and whether the host
    /// is stopped. Reads the state file only; no network.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also ask each record's authoritative name servers what it really holds.
        #[arg(long)]
        verify: bool,
    },
    /// Show what the agent sees now: the WAN interface, every candidate address with its flags,
    /// which one counts and why the others don't. Works without a config file.
    Detect {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Ask the what's-my-IP sources even when the interface's address counts.
        #[arg(long)]
        http: bool,
    },
    /// Man pages and shell completions from this CLI definition, for packagers
    /// (contrib/build-static). Hidden: not something a user runs. Left out of the size-tuned
    /// router builds (`--no-default-features`), which get their man page from a host build.
    #[cfg(feature = "generate")]
    #[command(hide = true)]
    Generate {
        #[command(subcommand)]
        what: Generate,
    },
}

#[cfg(feature = "generate")]
#[derive(Subcommand)]
enum Generate {
    /// The man page dynhostd.1 on stdout, or with --dir one page per subcommand in DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The completion script for SHELL on stdout.
    Completions { shell: clap_complete::Shell },
}

/// Generated from `Cli` itself, so the man page and completions cannot drift from the parser.
#[cfg(feature = "generate")]
fn generate(what: Generate) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    // clap_complete offers hidden subcommands too, so `generate` is left out of a rebuilt copy.
    let full = Cli::command();
    let mut cmd = clap::Command::new("dynhostd")
        .about(full.get_about().cloned().unwrap_or_default())
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .subcommand_required(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(long) = full.get_long_about() {
        cmd = cmd.long_about(long.clone());
    }
    match what {
        Generate::Man { dir: None } => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Generate::Man { dir: Some(dir) } => clap_mangen::generate_to(cmd, &dir)
            .with_context(|| format!("cannot write man pages to {}", dir.display()))?,
        Generate::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "dynhostd", &mut std::io::stdout())
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: an idle router pays for one thread, and nothing here needs more.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A config error is a usage error: exit 2 with the located message.
fn load_config(path: &Path) -> Result<Config, ExitCode> {
    config::load(path).map_err(|e| {
        eprintln!("dynhostd: {e}");
        ExitCode::from(2)
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A DYNHOSTD_LOG that doesn't parse is a usage error, not a silent fallback.
    if let Err(e) = dynhostd::logging::init(cli.verbose, cli.quiet) {
        eprintln!("dynhostd: {e}");
        return ExitCode::from(2);
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dynhostd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        #[cfg(feature = "generate")]
        Command::Generate { what } => generate(what),
        Command::Run { config, dry_run } => {
            let config_path = config.config;
            let config = match load_config(&config_path) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let opts = RunOptions {
                dry_run,
                config_path: Some(config_path),
            };
            runtime()?.block_on(agent::run(config, opts, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Update {
            config,
            ips,
            force,
            dry_run,
        } => {
            let config = match load_config(&config.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let mut families = std::collections::BTreeSet::new();
            for ip in &ips {
                if !families.insert(ip.is_ipv4()) {
                    eprintln!("dynhostd: --ip: give at most one address per family");
                    return Ok(ExitCode::from(2));
                }
            }
            let opts = UpdateOptions {
                ips,
                force,
                dry_run,
            };
            let report = runtime()?.block_on(agent::update_once(&config, &opts))?;
            Ok(if report.all_current {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Check { config: path } => {
            let config = match load_config(&path.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            print!("{}", config.render_redacted());
            eprintln!("dynhostd: {} is valid", path.config.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            config,
            json,
            verify,
        } => {
            let config = match load_config(&config.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let state = agent::load_state(&config.state_file());
            let mut rows = report::status(&config, &state);
            if verify {
                let found = runtime()?.block_on(agent::verify_all(&config));
                report::add_dns(&mut rows, &found);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", report::status_table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Detect { config, json, http } => {
            // Works with no config at all: then the WAN is the default route's interface, only
            // globally routable addresses count, and the built-in what's-my-IP sources are used.
            let (interface, policy, detect) = if config.config.exists() {
                match load_config(&config.config) {
                    Ok(c) => (c.wan.interface, c.wan.policy, c.detect),
                    Err(code) => return Ok(code),
                }
            } else {
                eprintln!(
                    "dynhostd: no config at {}: following the default route, global addresses only",
                    config.config.display()
                );
                (None, AddressPolicy::default(), DetectConfig::default())
            };
            let d =
                runtime()?.block_on(agent::detect(interface.as_deref(), &policy, &detect, http))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", report::detection_text(&d, interface.as_deref()));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
