//! The `dynhostd` command: parse the CLI, load the config, call into the library, map errors
//! to exit codes (0 fine, 1 failed, 2 usage or config error). Nothing else lives here.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dynhostd::agent::{self, RunOptions, UpdateOptions};
use dynhostd::config::{self, Config, DetectConfig};
use dynhostd::control;
use dynhostd::report;
use dynhostd::wan::policy::AddressPolicy;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// musl builds: dlmalloc, as its crate publishes it (Cargo.toml says why).
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

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
    /// With an agent running, hands the addresses to it instead and reports its answer.
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
    /// Lift the stop of these hosts (all without names) after fixing its cause at the provider,
    /// e.g. creating the DynHost login or resetting its password. With an agent running it sends
    /// now (min_interval permitting); without, the next `run` or `update` sends.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// Hostnames as in the [[host]] entries; none: every host.
        #[arg(value_name = "HOSTNAME")]
        hosts: Vec<String>,
    },
    /// Ask the running agent to check everything now, as SIGUSR1 does: the WAN, the
    /// what's-my-IP sources when behind NAT, the records at their name servers.
    CheckNow {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the configuration and print it as dynhostd understands it (secrets redacted).
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show, per host and record, what is published, when, the last reply and whether the host
    /// is stopped. Asks the running agent (live: requests in flight, the next wake-up and why)
    /// when there is one, else reads the state file; the output says which.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Also ask each record's authoritative name servers what it really holds.
        #[arg(long)]
        verify: bool,
        /// Show every event kept of HOST's records (updates, failures, stops, recoveries:
        /// the last 20 of each), newest first.
        #[arg(long, value_name = "HOST", conflicts_with = "verify")]
        history: Option<String>,
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
    #[cfg(feature = "import")]
    /// Print the dynhostd config equivalent to ddclient's, inadyn's or OpenWrt ddns-scripts'
    /// (exit 0: every entry carried over; 1: something left out, listed with its file:line;
    /// 2: the file cannot be read or parsed). No password is printed.
    Import {
        #[command(flatten)]
        config: ConfigArg,
        /// The other client's config (`-`: standard input, e.g. `uci export ddns | dynhostd import -`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Its format; without it, recognised from the content.
        #[arg(long, value_parser = ["ddclient", "inadyn", "ddns-scripts"])]
        from: Option<String>,
        /// Append the [[host]] entries (and imported [wan]/[detect]/[update] sections) to the
        /// config, creating it if missing (validated, atomically, comments kept); each password
        /// goes to a 0600 file beside it.
        #[arg(long)]
        write_config: bool,
        /// Put each password in the systemd credential store, named after its host
        /// (password_credential), instead of a file beside the config.
        #[arg(long)]
        credential: bool,
        /// The credential store directory.
        #[arg(long, value_name = "DIR", default_value = config::write::CREDSTORE)]
        credstore: PathBuf,
        /// Show what would be written; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Not in this build (a static router build): `import`. Run it on a workstation with a
    /// full build and copy the result here.
    #[cfg(not(feature = "import"))]
    #[command(hide = true)]
    Import {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Set up the DynHost side over the OVH API: a consumer key, logins, records, passwords.
    #[cfg(feature = "ovh-api")]
    Ovh {
        /// Configuration file (also after the subcommand: `ovh provision H --config F`).
        #[arg(long, short = 'c', env = "DYNHOSTD_CONFIG", default_value = config::DEFAULT_PATH, global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: dynhostd::ovh::cli::OvhCommand,
    },
    /// Not in this build (a static router build): the OVH API set-up commands. Run them on a
    /// workstation with a full build; the router needs only the `[[host]]` entry they write.
    #[cfg(not(feature = "ovh-api"))]
    #[command(hide = true)]
    Ovh {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<std::ffi::OsString>,
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
    // Rendered in memory and printed once, so a closed stdout ends the command the way it ends
    // every other one (see `end_quietly_when_output_closes`); clap_complete would panic on it.
    let mut out = Vec::new();
    match what {
        Generate::Man { dir: None } => clap_mangen::Man::new(cmd).render(&mut out)?,
        Generate::Man { dir: Some(dir) } => clap_mangen::generate_to(cmd, &dir)
            .with_context(|| format!("cannot write man pages to {}", dir.display()))?,
        Generate::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "dynhostd", &mut out)
        }
    }
    print!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread runs everything. File writes and client builds go to a blocking thread
    // (agent.rs), kept parked (no syscall, no wake-up) for an hour after its last job: a thread
    // made for each state save and gone a second later put about 20 ms on 2 % of the updates
    // (bench/run phase D: p99 18 ms above the debounce against 4.3 ms).
    tokio::runtime::Builder::new_current_thread()
        .thread_keep_alive(std::time::Duration::from_secs(3600))
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

/// `run` and `update` need a host; a config with only `[ovh_api]` is for the `ovh` commands.
fn require_host(config: Config) -> Result<Config, ExitCode> {
    config.require_host().map_err(|e| {
        eprintln!("dynhostd: {e}");
        ExitCode::from(2)
    })?;
    Ok(config)
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

/// A closed stdout (`dynhostd status | head -1`) ends a command the way it ends `cat`: killed
/// by SIGPIPE, with no message. Rust ignores SIGPIPE, so a print to a closed pipe panics
/// ("failed printing to stdout"), and the release builds (panic = abort) then abort with exit
/// 134 and a panic message.
///
/// SIGPIPE is not simply reset to its default: the commands also write to the agent's control
/// socket, and a peer that hung up there must give an error that says so, not a silent death;
/// and an `update` pass must not die between a provider's reply and the state save because
/// whoever read its log went away (tracing drops a log line it cannot write). Only the
/// standard streams' print path is ended here, at the one place every print to a closed one
/// lands (std's own "failed printing" panic, matched to the letter, EPIPE included); any
/// other panic goes to the default hook. The agent (`run`) prints nothing on stdout.
fn end_quietly_when_output_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied());
        let epipe = std::io::Error::from_raw_os_error(libc::EPIPE).to_string();
        let closed = text.is_some_and(|t| {
            ["stdout", "stderr"]
                .iter()
                .any(|s| t == format!("failed printing to {s}: {epipe}"))
        });
        if closed {
            // SAFETY: signal(2) and raise(3) with a valid signal number and the default
            // disposition; nothing runs after the signal ends the process.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
            // Only if the signal is blocked: the status a shell shows for SIGPIPE.
            std::process::exit(128 + libc::SIGPIPE);
        }
        default(info);
    }));
}

/// An error and its causes, each once: `a: b: c`. Many error types already end their message
/// with their cause's text (`cannot lock X: {source}` with `#[source]`), which anyhow's `{:#}`
/// would print a second time (`…: Permission denied (os error 13): Permission denied (os
/// error 13)`); a cause whose text is already there is left out.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || text.contains(&s) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s);
    }
    text
}

fn main() -> ExitCode {
    end_quietly_when_output_closes();
    let cli = Cli::parse();
    // A DYNHOSTD_LOG that doesn't parse is a usage error, not a silent fallback.
    if let Err(e) = dynhostd::logging::init(cli.verbose, cli.quiet) {
        eprintln!("dynhostd: {e}");
        return ExitCode::from(2);
    }
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dynhostd: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// Prints the agent's answer; exit 0 when it says every record is current or on its way.
fn print_reply(from: &str, reply: &control::Response) -> ExitCode {
    println!("{from}:");
    for l in &reply.lines {
        // From the socket: cleaned of escape sequences and bidi controls before the terminal.
        println!("  {}", control::shown(l));
    }
    if reply.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Where the agent would be, from the config file without its secrets.
fn locations(config: &Path) -> Option<control::Locations> {
    control::Locations::read(config)
}

/// The running agent, or the state dir's lock. Err(exit code) for a config that can't even say
/// where its state dir is (the full load names the key and line), or a state dir another user
/// could write (refused like a config error).
fn route(config: &Path) -> anyhow::Result<Result<(control::Route, control::Locations), ExitCode>> {
    let at = match locations(config) {
        Some(at) => at,
        None => match load_config(config) {
            Ok(c) => control::Locations::of(&c),
            Err(code) => return Ok(Err(code)),
        },
    };
    match control::route(&at) {
        Ok(r) => Ok(Ok((r, at))),
        Err(e @ control::ControlError::Lock(dynhostd::lock::LockError::Untrusted(_))) => {
            eprintln!("dynhostd: {e}");
            Ok(Err(ExitCode::from(2)))
        }
        Err(e) => Err(e.into()),
    }
}

fn agent_name(pid: u32) -> String {
    format!("the running agent (pid {pid})")
}

/// `update` while an agent runs: the addresses go to it; it sends, or says why not.
fn hand_update(
    at: &control::Locations,
    conn: control::AgentConn,
    ips: Vec<IpAddr>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let who = agent_name(conn.pid);
    if force {
        eprintln!(
            "dynhostd: --force is not handed to {who}: it sends only what changed; stop it first to force a re-send"
        );
        return Ok(ExitCode::from(2));
    }
    let reply = control::ask(conn, control::Request::Update { ips }, at)?;
    Ok(print_reply(&who, &reply))
}

/// `dynhostd retry`: through the agent, or (none running) in the state file under the lock.
fn retry(path: &Path, hosts: Vec<String>) -> anyhow::Result<ExitCode> {
    match route(path)? {
        Err(code) => Ok(code),
        Ok((control::Route::Agent(conn), at)) => {
            let who = agent_name(conn.pid);
            let reply = control::ask(conn, control::Request::Retry { hosts }, &at)?;
            Ok(print_reply(&who, &reply))
        }
        Ok((control::Route::Alone(lock), _)) => {
            let config = match load_config(path) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            match control::retry_offline(&config, &hosts, &lock)? {
                Ok(lines) => {
                    println!(
                        "no agent running: changed the state file {}",
                        config.state_file().display()
                    );
                    for l in lines {
                        println!("  {l}");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(unknown) => {
                    eprintln!(
                        "dynhostd: no enabled [[host]] has the hostname {}",
                        unknown.join(", ")
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

/// `dynhostd check-now`: SIGUSR1 over the socket.
fn check_now(path: &Path) -> anyhow::Result<ExitCode> {
    let Some(at) = locations(path) else {
        return Ok(load_config(path).err().unwrap_or(ExitCode::from(2)));
    };
    match control::connect_for_status(&at)? {
        Some(conn) => {
            let who = agent_name(conn.pid);
            let reply = control::ask(conn, control::Request::CheckNow {}, &at)?;
            Ok(print_reply(&who, &reply))
        }
        None => {
            eprintln!(
                "dynhostd: no agent is running on {} (nobody holds its lock): nothing to check",
                at.state_dir.display()
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// `status --history HOST`: HOST's events as text or JSON; exit 2 when HOST is not configured.
fn print_history(
    path: &Path,
    host: &str,
    rows: &[serde_json::Value],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Some(text) = report::history_text(host, rows) else {
        eprintln!(
            "dynhostd: {} is not a [[host]] of {}",
            control::shown(host),
            path.display()
        );
        return Ok(ExitCode::from(2));
    };
    if json {
        let mine = report::history_json(host, rows);
        println!("{}", serde_json::to_string_pretty(&mine)?);
    } else {
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `dynhostd status` from the running agent; None when there is none (or it does not answer,
/// or is busy: then said on stderr), and the state file is shown instead. Needs only where the
/// agent is, not the secrets (see `control::Locations`). An agent that must not be trusted (see
/// `control::ControlError::Impostor`, `OtherAgent`) or a lock file this user can't read is an
/// error.
fn status_from_agent(
    path: &Path,
    json: bool,
    history: Option<&str>,
) -> anyhow::Result<Option<ExitCode>> {
    use control::ControlError as E;
    let Some(at) = locations(path) else {
        return Ok(None);
    };
    let fallback = |e: &dyn std::fmt::Display| {
        eprintln!("dynhostd: {e}: showing the state file instead");
        Ok(None)
    };
    let conn = match control::connect_for_status(&at) {
        Ok(Some(conn)) => conn,
        Ok(None) => return Ok(None),
        Err(e @ (E::NoAnswer { .. } | E::Io { .. })) => return fallback(&e),
        Err(e) => return Err(e.into()),
    };
    let pid = conn.pid;
    let reply = match control::ask(conn, control::Request::Status {}, &at) {
        Ok(r) if r.refused => {
            let why = control::shown(&r.lines.join("; "));
            return fallback(&format!(
                "the running agent (pid {pid}) did not answer: {why}"
            ));
        }
        Ok(r) => r,
        Err(e @ (E::BadReply { .. } | E::Io { .. })) => return fallback(&e),
        Err(e) => return Err(e.into()),
    };
    let live = reply
        .status
        .context("the agent's status reply holds no status")?;
    if let Some(host) = history {
        return print_history(path, host, &live.rows, json).map(Some);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&control::live_json(&live))?
        );
    } else {
        print!("{}", control::live_table(&live));
    }
    Ok(Some(ExitCode::SUCCESS))
}

fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        #[cfg(feature = "generate")]
        Command::Generate { what } => generate(what),
        #[cfg(feature = "ovh-api")]
        Command::Ovh { config, command } => Ok(dynhostd::ovh::cli::run(&config, command)),
        #[cfg(not(feature = "ovh-api"))]
        Command::Ovh { .. } => {
            eprintln!(
                "dynhostd: this build leaves out the `ovh` commands (a static router build, \
                 without the ovh-api feature): run `dynhostd ovh …` on a machine with a full \
                 build, then copy the [[host]] entry and its password file here"
            );
            Ok(ExitCode::from(2))
        }
        Command::Run { config, dry_run } => {
            let config_path = config.config;
            let config = match load_config(&config_path).and_then(require_host) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let opts = RunOptions {
                dry_run,
                config_path: Some(config_path),
            };
            match runtime()?.block_on(agent::run(config, opts, shutdown_signal())) {
                // A state dir or socket directory another user could write, or a socket another
                // agent answers on: the setup is wrong, like a config error.
                Err(
                    e @ (agent::AgentError::Lock(dynhostd::lock::LockError::Untrusted(_))
                    | agent::AgentError::Control(_)),
                ) => {
                    eprintln!("dynhostd: {e}");
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
                Ok(()) => Ok(ExitCode::SUCCESS),
            }
        }
        Command::Update {
            config: path,
            ips,
            force,
            dry_run,
        } => {
            let mut families = std::collections::BTreeSet::new();
            for ip in &ips {
                if !families.insert(ip.is_ipv4()) {
                    eprintln!("dynhostd: --ip: give at most one address per family");
                    return Ok(ExitCode::from(2));
                }
            }
            // An address no record can take is refused as what it is, before an agent (which
            // would answer "already published") or the WAN (blamed otherwise) is involved.
            if !ips.is_empty() {
                let accept = config::read_wan_accept(&path.config);
                for ip in &ips {
                    if let Some(class) = dynhostd::wan::policy::refuse_given(*ip, &accept) {
                        let hint = if dynhostd::wan::policy::acceptable(class) {
                            " (add its prefix to [wan] accept to publish it anyway)"
                        } else {
                            ""
                        };
                        eprintln!("dynhostd: --ip {ip} is not a public address: {class}{hint}");
                        return Ok(ExitCode::from(2));
                    }
                }
            }
            // One writer: hand the work to the running agent, or hold the lock while doing it.
            // A dry run writes nothing and needs neither.
            let lock = if dry_run {
                None
            } else {
                match route(&path.config)? {
                    Ok((control::Route::Alone(lock), _)) => Some(lock),
                    Ok((control::Route::Agent(conn), at)) => {
                        return hand_update(&at, conn, ips, force);
                    }
                    Err(code) => return Ok(code),
                }
            };
            let config = match load_config(&path.config).and_then(require_host) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            let opts = UpdateOptions {
                ips,
                force,
                dry_run,
            };
            let report = runtime()?.block_on(agent::update_once(&config, &opts))?;
            drop(lock);
            Ok(if report.all_current {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Retry { config, hosts } => retry(&config.config, hosts),
        Command::CheckNow { config } => check_now(&config.config),
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
            config: path,
            json,
            verify,
            history,
        } => {
            if !verify
                && let Some(code) = status_from_agent(&path.config, json, history.as_deref())?
            {
                return Ok(code);
            }
            let config = match load_config(&path.config) {
                Ok(c) => c,
                Err(code) => return Ok(code),
            };
            // A state dir this user can't read would show every record as unknown: say what
            // is unreadable instead. Opened without blocking (a FIFO in its place).
            {
                use std::os::unix::fs::OpenOptionsExt;
                let opened = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(config.state_file());
                if let Err(e) = opened
                    && e.kind() == std::io::ErrorKind::PermissionDenied
                {
                    eprintln!(
                        "dynhostd: cannot read the state file {}: {e}; run this as root or as the user the agent runs as",
                        config.state_file().display()
                    );
                    return Ok(ExitCode::from(1));
                }
            }
            let source = format!(
                "source: the state file {} (no agent answered)",
                config.state_file().display()
            );
            // With --json, each row says it ("source": "state-file").
            if !json {
                println!("{source}");
            }
            let state = agent::load_state(&config.state_file());
            let mut rows = report::status(&config, &state);
            if let Some(host) = history {
                return print_history(&path.config, &host, &report::rows_json(&rows), json);
            }
            if verify {
                let found = runtime()?.block_on(agent::verify_all(&config));
                report::add_dns(&mut rows, &found);
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&control::state_rows_json(&rows))?
                );
            } else {
                print!("{}", report::status_table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "import"))]
        Command::Import { .. } => {
            eprintln!(
                "dynhostd: this build leaves out `import` (a static router build, without the \
                 import feature): run it on a machine with a full build, e.g. `ssh root@router \
                 uci export ddns | dynhostd import --write-config -c router.toml -`, then copy \
                 the config and its password files here"
            );
            Ok(ExitCode::from(2))
        }
        #[cfg(feature = "import")]
        Command::Import {
            config,
            file,
            from,
            write_config,
            credential,
            credstore,
            dry_run,
        } => Ok(dynhostd::import::cli::run(
            dynhostd::import::cli::ImportArgs {
                file,
                from: from
                    .as_deref()
                    .and_then(dynhostd::import::Format::from_name),
                config: config.config,
                write_config,
                credential,
                credstore,
                dry_run,
            },
        )),
        Command::Detect { config, json, http } => {
            // Works with no config at all: then the WAN is the default route's interface, only
            // globally routable addresses count, and the built-in what's-my-IP sources are used.
            let (interface, uplinks, policy, detect, records) = if config.config.exists() {
                match load_config(&config.config) {
                    Ok(c) => {
                        let records: Vec<_> = c
                            .enabled_hosts()
                            .flat_map(|h| {
                                h.records().map(|k| (k.clone(), h.source(k.family).clone()))
                            })
                            .collect();
                        // A failover list's first interface stands for it where one is named.
                        let first = c.wan.uplinks.as_ref().map(|u| u.names[0].clone());
                        (
                            c.wan.interface.or(first),
                            c.wan.uplinks,
                            c.wan.policy,
                            c.detect,
                            records,
                        )
                    }
                    Err(code) => return Ok(code),
                }
            } else {
                eprintln!(
                    "dynhostd: no config at {}: following the default route, global addresses only",
                    config.config.display()
                );
                (
                    None,
                    None,
                    AddressPolicy::default(),
                    DetectConfig::default(),
                    Vec::new(),
                )
            };
            let d = runtime()?.block_on(agent::detect(
                interface.as_deref(),
                uplinks.as_ref(),
                &policy,
                &detect,
                http,
                &records,
            ))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{}", report::detection_text(&d, interface.as_deref()));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot lock /x/lock: {source}")]
    struct Lock {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let denied = || std::io::Error::from_raw_os_error(libc::EACCES);
        // The cause already in the message: not repeated.
        let e = anyhow::Error::new(Lock { source: denied() });
        let text = error_text(&e);
        assert_eq!(text, format!("cannot lock /x/lock: {}", denied()));
        // With context on top, and a cause that is not in any message: each once, in order.
        let e = anyhow::Error::new(Lock { source: denied() }).context("status");
        assert_eq!(
            error_text(&e),
            format!("status: cannot lock /x/lock: {}", denied())
        );
        let e = anyhow::Error::new(denied()).context("cannot open /y");
        assert_eq!(error_text(&e), format!("cannot open /y: {}", denied()));
    }
}
