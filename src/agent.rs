//! The async shell around the [`Decider`]: it feeds the decider kernel events, finished
//! requests and timer expiries, and performs what the decider asks (send a request, save the
//! state). All waiting is here; all deciding is there.
//!
//! `run` is the long-lived agent; `update_once` is one pass for `dynhostd update` (the pppd
//! ip-up hook).

use crate::config::{Config, HostConfig};
use crate::decide::{Action, Decider, DeciderConfig, DetectPolicy, Event, Now, Push, RecordSpec};
use crate::provider::Reply;
use crate::provider::client::{ClientError, ClientOptions, Clients, DynHostClient, UpdateRequest};
use crate::public_ip::{PublicAddress, PublicIpDetector};
use crate::record::RecordKey;
use crate::state::{self, Loaded, State};
use crate::wan::netlink::{self, NetlinkError, WatchOptions};
use crate::wan::policy::WanChoice;
use crate::wan::{NetEvent, NetView};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// How long shutdown waits for requests already sent (SIGTERM/SIGINT).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the netlink watcher stopped")]
    WatcherGone,
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// The control socket can't be trusted or is another agent's: clients would reach the
    /// wrong process, so the agent does not start.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
}

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Log what would be sent; send nothing, write nothing.
    pub dry_run: bool,
    /// Where the configuration came from, for SIGHUP to read it again.
    pub config_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// Addresses from the caller (pppd's `$4`); they replace the interface's for their family.
    pub ips: Vec<IpAddr>,
    pub force: bool,
    pub dry_run: bool,
}

/// The decider's view of the configuration: the enabled records only.
pub fn decider_config(config: &Config) -> DeciderConfig {
    DeciderConfig {
        wan_interface: config.wan.interface.clone(),
        wan_uplinks: config.wan.uplinks.clone(),
        debounce: config.wan.debounce,
        policy: config.wan.policy.clone(),
        records: config
            .enabled_hosts()
            .flat_map(|h| {
                let fingerprint = h.fingerprint();
                h.records().map(move |key| RecordSpec {
                    source: h.source(key.family).clone(),
                    key,
                    fingerprint: fingerprint.clone(),
                })
            })
            .collect(),
        backoff: config.update.backoff(),
        min_interval: config.update.min_interval,
        refresh: config.update.refresh,
        verify: (!config.verify.interval.is_zero()).then_some(config.verify.interval),
        detect: DetectPolicy {
            mode: config.detect.mode,
            interval: config.detect.interval,
            families: crate::record::Family::ALL
                .into_iter()
                .filter(|f| !config.detect.sources(*f).is_empty())
                .collect(),
        },
    }
}

/// The DNS side of `[verify]`.
pub fn verifier(config: &Config) -> crate::dns::Verifier {
    crate::dns::Verifier::new(
        config.verify.nameservers.clone(),
        config.verify.resolver,
        config.verify.timeout,
    )
}

/// Reads the state file, logging what happened to it.
pub fn load_state(path: &Path) -> State {
    let (state, how) = state::load(path);
    match how {
        Loaded::Read => {
            debug!(path = %path.display(), records = state.records.len(), "state loaded")
        }
        Loaded::Missing => {
            info!(path = %path.display(), "no state file yet: every record counts as unknown")
        }
        Loaded::Corrupt(why) => warn!(
            path = %path.display(),
            "state file unreadable ({why}): treating every record as unknown (at most one update each)"
        ),
    }
    state
}

fn seed() -> u64 {
    let nanos = crate::clock::wall_nanos() as u64;
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn new_decider(config: &Config) -> Decider {
    state::remove_stale_temps(&config.state_file());
    let state = load_state(&config.state_file());
    Decider::new(decider_config(config), state, Now::system(), seed())
}

/// What a background task finished.
enum Done {
    Push(RecordKey, IpAddr, Reply),
    /// A detection round, by its number, and what it found.
    Detect(u64, PublicAddress),
    Verified(RecordKey, Result<Vec<IpAddr>, String>),
}

impl Done {
    fn into_event(self) -> Event {
        match self {
            Done::Push(key, ip, reply) => Event::Outcome { key, ip, reply },
            Done::Detect(round, found) => Event::Public {
                family: found.family,
                ip: found.address,
                round,
            },
            Done::Verified(key, shows) => Event::Verified { key, shows },
        }
    }
}

/// What a (re)configuration needs built before the agent can use it: the HTTP clients (the
/// TLS roots read, if any URL is https) and each record's entry. Built off the event loop on a
/// reload ([`begin_reload`]).
struct Prepared {
    hosts: HashMap<RecordKey, (Arc<HostConfig>, DynHostClient)>,
    clients: Clients,
    /// The `[[notify]]` and `[health]` targets and their one client.
    notify: crate::notify::Setup,
}

impl Prepared {
    /// After a reload, `old`'s clients are reused where nothing they were built from changed.
    fn build(config: &Config, old: Option<&Clients>) -> Result<Prepared, ClientError> {
        let opts = ClientOptions {
            connect_timeout: config.http.connect_timeout,
            timeout: config.http.timeout,
        };
        let mut clients = match old {
            Some(old) => Clients::after(opts, old),
            None => Clients::new(opts),
        };
        let mut hosts = HashMap::new();
        for h in config.enabled_hosts() {
            let client = clients.get(h.server.scheme() == "https", h.ca_file.as_deref())?;
            let h = Arc::new(h.clone());
            for key in h.records() {
                hosts.insert(key, (h.clone(), client.clone()));
            }
        }
        let notify = crate::notify::Setup::build(
            &config.notify,
            config.health.as_ref(),
            &mut clients,
            config.http.timeout,
        )?;
        clients.drop_unused();
        Ok(Prepared {
            hosts,
            clients,
            notify,
        })
    }
}

/// Performs the decider's pushes (at most `http.max_concurrent` at a time) and HTTP detections.
struct Pusher {
    hosts: HashMap<RecordKey, (Arc<HostConfig>, DynHostClient)>,
    /// The clients behind `hosts`, kept for the next reload to reuse.
    clients: Clients,
    /// One semaphore for the agent's life: a reload resizes it, so requests queued before and
    /// after never exceed `max_concurrent` together.
    limit: Arc<Semaphore>,
    max_concurrent: usize,
    tasks: JoinSet<Done>,
    /// Pushes still waiting for a permit (nothing sent yet): a reload cancels them, since they
    /// hold the entry as it was.
    queued: HashMap<RecordKey, (tokio::task::AbortHandle, Arc<AtomicBool>)>,
    detector: PublicIpDetector,
    verifier: crate::dns::Verifier,
    /// Hook programs by record, and the ones running (never awaited by the event loop; at most
    /// a few at once, killed with their process groups when the agent stops).
    hooks: HashMap<RecordKey, PathBuf>,
    hook_timeout: Duration,
    running_hooks: crate::hook::HookQueue,
    /// `[[notify]]` and `[health]`: handed events, never awaited.
    notifier: crate::notify::Notifier,
    dry_run: bool,
}

impl Pusher {
    /// The pusher of `config`, with its clients already built ([`Prepared`]: at start, so a bad
    /// CA file fails then, not at the first change).
    fn new(config: &Config, dry_run: bool, prepared: Prepared) -> Pusher {
        let Prepared {
            hosts,
            clients,
            notify,
        } = prepared;
        Pusher {
            hosts,
            clients,
            limit: Arc::new(Semaphore::new(config.http.max_concurrent)),
            max_concurrent: config.http.max_concurrent,
            tasks: JoinSet::new(),
            queued: HashMap::new(),
            detector: PublicIpDetector::new(&config.detect, config.wan.policy.clone()),
            verifier: verifier(config),
            hooks: config
                .enabled_hosts()
                .filter_map(|h| h.exec.clone().map(|e| (h, e)))
                .flat_map(|(h, e)| h.records().map(move |k| (k, e.clone())))
                .collect(),
            hook_timeout: config.hook_timeout,
            running_hooks: crate::hook::HookQueue::new(),
            notifier: crate::notify::Notifier::start(notify, dry_run),
            dry_run,
        }
    }

    /// A reloaded configuration: new hosts, clients and sources. Requests already sent carry
    /// on; queued ones are cancelled and returned, for the decider to send again with the new
    /// entry. The what's-my-IP sources keep their back-off.
    fn reconfigure(&mut self, config: &Config, mut prepared: Prepared) -> Vec<RecordKey> {
        self.notifier
            .reconfigure(std::mem::take(&mut prepared.notify));
        let fresh = Pusher::new(config, self.dry_run, prepared);
        self.hosts = fresh.hosts;
        self.clients = fresh.clients;
        let (old, new) = (self.max_concurrent, fresh.max_concurrent);
        if new > old {
            self.limit.add_permits(new - old);
        } else if new < old {
            // Taken back as requests finish, never by interrupting one.
            let limit = self.limit.clone();
            let fewer = u32::try_from(old - new).unwrap_or(u32::MAX);
            tokio::spawn(async move {
                if let Ok(p) = limit.acquire_many_owned(fewer).await {
                    p.forget();
                }
            });
        }
        self.max_concurrent = new;
        self.detector = fresh.detector.with_health_of(&self.detector);
        self.verifier = fresh.verifier;
        self.hooks = fresh.hooks;
        self.hook_timeout = fresh.hook_timeout;
        let mut cancelled = Vec::new();
        for (key, (task, started)) in self.queued.drain() {
            if !started.load(Ordering::Relaxed) && !task.is_finished() {
                task.abort();
                cancelled.push(key);
            }
        }
        cancelled
    }

    fn start(&mut self, push: Push) {
        let Some((host, client)) = self.hosts.get(&push.key).cloned() else {
            // Answered like a request that got no reply, so the record leaves "sending", says
            // why in its last reply and backs off, instead of waiting for an outcome forever.
            let why =
                "not sent: no [[host]] entry for this record in the running configuration (a bug)";
            error!(record = %push.key, "cannot send {}: {why}", push.ip);
            let reply = Reply::Transport {
                kind: crate::provider::TransportKind::Other,
                message: why.to_string(),
            };
            self.tasks
                .spawn(async move { Done::Push(push.key, push.ip, reply) });
            return;
        };
        let previous = push
            .previous
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        if self.dry_run {
            info!(record = %push.key, "dry run: would send {} → {} to {}", previous, push.ip, host.server);
            self.notifier.would_push(&push.key, push.ip, push.previous);
            self.tasks
                .spawn(async move { Done::Push(push.key, push.ip, Reply::DryRun) });
            return;
        }
        debug!(record = %push.key, server = %host.server, "sending {} → {}", previous, push.ip);
        let limit = self.limit.clone();
        let started = Arc::new(AtomicBool::new(false));
        let flag = started.clone();
        let key = push.key.clone();
        let task = self.tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            flag.store(true, Ordering::Relaxed);
            let req = UpdateRequest {
                provider: host.provider,
                server: &host.server,
                hostname: &host.hostname,
                login: &host.login,
                password: &host.password,
                ip: push.ip,
            };
            let reply = client.update(&req).await;
            Done::Push(push.key, push.ip, reply)
        });
        // Taken out when the reply comes (see `finished`): sweeping the map here would visit
        // every queued push for each new one.
        self.queued.insert(key, (task, started));
    }

    /// Runs the record's hook, if it has one, in the background.
    fn hook(&mut self, ev: crate::hook::HookEvent) {
        self.notifier.event(&ev);
        let key = RecordKey::new(ev.host.clone(), ev.family);
        let Some(path) = self.hooks.get(&key).cloned() else {
            return;
        };
        self.running_hooks.submit(crate::hook::HookJob {
            path,
            event: ev,
            timeout: self.hook_timeout,
        });
    }

    /// Waits for the hooks queued and running (each is bounded by its timeout).
    async fn wait_hooks(&mut self) {
        self.running_hooks.finish().await;
        self.notifier.finish(SHUTDOWN_GRACE).await;
    }

    /// Asks the record's authoritative name servers what it holds.
    fn verify(&mut self, key: RecordKey) {
        let verifier = self.verifier.clone();
        debug!(record = %key, "checking at the authoritative name servers");
        self.tasks.spawn(async move {
            // Capped as a whole, so a zone with many silent servers cannot hold the first
            // update back for long.
            let cap = verifier.timeout.saturating_mul(2);
            let shows = match tokio::time::timeout(
                cap,
                verifier.published(&key.hostname, key.family),
            )
            .await
            {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {}s", cap.as_secs())),
            };
            Done::Verified(key, shows)
        });
    }

    /// Asks the what's-my-IP sources (also in a dry run: it sends no update); the answer
    /// carries `round` back to the decider.
    fn detect(&mut self, family: crate::record::Family, bind: Option<IpAddr>, round: u64) {
        let detector = self.detector.clone();
        debug!(%family, bind = ?bind, round, "asking what's-my-IP sources");
        self.tasks
            .spawn(async move { Done::Detect(round, detector.detect(family, bind, false).await) });
    }

    /// The next finished task; None when none is out.
    async fn next(&mut self) -> Option<Done> {
        loop {
            let joined = self.tasks.join_next().await?;
            if let Some(done) = self.finished(joined) {
                return Some(done);
            }
        }
    }

    /// The next finished task if there is one already, without waiting.
    fn try_next(&mut self) -> Option<Done> {
        loop {
            let joined = self.tasks.try_join_next()?;
            if let Some(done) = self.finished(joined) {
                return Some(done);
            }
        }
    }

    /// Every task finished by now: the first `first`, then the rest without waiting, so the
    /// decider takes them in one batch (see [`Decider::on_events`]).
    fn batch(&mut self, first: Done) -> Vec<Event> {
        let mut events = vec![first.into_event()];
        while let Some(done) = self.try_next() {
            events.push(done.into_event());
        }
        events
    }

    fn finished(&mut self, joined: Result<Done, tokio::task::JoinError>) -> Option<Done> {
        match joined {
            Ok(done) => {
                if let Done::Push(key, ..) = &done {
                    self.queued.remove(key);
                }
                Some(done)
            }
            // Cancelled by a reload: the decider already knows.
            Err(e) if e.is_cancelled() => None,
            Err(e) => {
                error!("an update task failed: {e}");
                None
            }
        }
    }

    fn in_flight(&self) -> usize {
        self.tasks.len()
    }
}

/// Carries out the decider's actions.
/// Carries out the decider's actions; returns whether the state is to be saved (the caller
/// decides when: see [`SAVE_DELAY`]).
fn perform(actions: Vec<Action>, pusher: &mut Pusher) -> bool {
    let mut save = false;
    for action in actions {
        match action {
            Action::Push(push) => pusher.start(push),
            Action::Save => save = true,
            Action::Detect {
                family,
                bind,
                round,
            } => pusher.detect(family, bind, round),
            Action::Verify { key } => pusher.verify(key),
            Action::Hook(ev) => pusher.hook(ev),
        }
    }
    save
}

/// Saves requested within this time are written once: 1000 hosts answered within a second
/// cost a handful of writes, not 1000 fsyncs of a growing file. A crash inside the window costs
/// at most one repeated request per record, as any crash does.
pub const SAVE_DELAY: Duration = Duration::from_millis(100);

fn save_state(decider: &Decider, dry_run: bool, path: &Path) {
    if !dry_run {
        write_state(path, &decider.state(Now::system()));
    }
}

/// [`save_state`] on a blocking thread, so a slow flash write or fsync never holds up netlink
/// events, replies or the control socket. The state is taken now; one save at a time (the loop
/// starts the next once this one is done, with the state as it is then).
fn start_save(decider: &Decider, dry_run: bool, path: &Path) -> Option<JoinHandle<()>> {
    if dry_run {
        return None;
    }
    let state = decider.state(Now::system());
    let path = path.to_path_buf();
    Some(tokio::task::spawn_blocking(move || {
        write_state(&path, &state)
    }))
}

fn write_state(path: &Path, state: &State) {
    // Timed: bench/run's many-hosts figure includes it (BENCH_DYNHOSTD_LOG=debug shows it).
    let started = Instant::now();
    match state::save(path, state) {
        Ok(()) => debug!(
            records = state.records.len(),
            took_us = started.elapsed().as_micros() as u64,
            "state saved"
        ),
        Err(e) => error!(path = %path.display(), "cannot write the state file: {e}"),
    }
}

/// Waits for a background task, or forever when there is none.
async fn join<T>(task: &mut Option<JoinHandle<T>>) -> Result<T, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

/// The agent: follows the WAN until `shutdown` resolves (or the netlink watcher fails), then
/// finishes or abandons the requests in flight within [`SHUTDOWN_GRACE`], saves the state and
/// returns. Every way out of the loop takes that one path; a watcher failure is then returned
/// as an error, so the service manager restarts the agent.
pub async fn run(
    mut config: Config,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    // One writer per state dir, and the socket that lets other commands reach it. A dry run
    // writes nothing, so it takes neither and can run beside the real agent.
    let at = crate::control::Locations::of(&config);
    let _lock = if opts.dry_run {
        None
    } else {
        Some(crate::control::lock_for_agent(&at).await?)
    };
    let mut control = if opts.dry_run {
        None
    } else {
        Some(crate::control::Control::start(&at.socket, &at.state_dir)?)
    };
    let mut state_path = config.state_file();
    let mut decider = new_decider(&config);
    let mut pusher = Pusher::new(&config, opts.dry_run, Prepared::build(&config, None)?);
    debug!("state loaded and HTTP clients built");
    if opts.dry_run {
        info!("dry run: nothing will be sent and the state file will not be written");
    }
    let (tx, mut rx) = mpsc::channel::<NetEvent>(256);
    let watch = WatchOptions {
        recv_buffer: config.wan.netlink_buffer,
        neighbours: follows_neighbours(&config),
    };
    let mut watcher = tokio::spawn(netlink::watch(watch, tx));
    tokio::pin!(shutdown);
    info!(
        records = decider_config(&config).records.len(),
        wan = match (&config.wan.interface, &config.wan.uplinks) {
            (Some(i), _) => i.clone(),
            (None, Some(u)) => u.to_string(),
            (None, None) => "(default route)".into(),
        },
        "dynhostd {} started",
        env!("CARGO_PKG_VERSION")
    );

    // systemd (Type=notify): READY once the first decision is made, the watchdog when asked.
    let notifier = crate::systemd::Notifier::from_env();
    let mut ready = notifier.is_none();
    let mut watchdog = notifier
        .as_ref()
        .and_then(|n| n.watchdog_interval())
        .map(|every| {
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
    let mut hup = Signal::new(tokio::signal::unix::SignalKind::hangup());
    let mut usr1 = Signal::new(tokio::signal::unix::SignalKind::user_defined1());

    let mut save_at: Option<Instant> = None;
    let mut saving: Option<JoinHandle<()>> = None;
    let mut reloads = Reloads::default();
    // `[health]`: the one timer it adds, and only when configured.
    let mut health_at = crate::notify::health::next_ping(config.health.as_ref(), None);
    let ended: Result<(), AgentError> = loop {
        let wake = decider.next_wake();
        let actions = tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = sleep_until(save_at), if save_at.is_some() && saving.is_none() => {
                save_at = None;
                saving = start_save(&decider, opts.dry_run, &state_path);
                Vec::new()
            }
            _ = join(&mut saving), if saving.is_some() => {
                saving = None;
                Vec::new()
            }
            done = join(&mut reloads.running), if reloads.running.is_some() => {
                reloads.running = None;
                let outcome = finish_reload(done, &mut pusher, notifier.as_ref());
                let actions = match outcome {
                    Ok(new) => {
                        let records = decider_config(&new.0).records.len();
                        let actions = adopt(new, &mut config, &mut state_path, &mut decider);
                        health_at = crate::notify::health::next_ping(config.health.as_ref(), health_at);
                        reloads.answer(Ok(format!("configuration reloaded ({records} records)")));
                        actions
                    }
                    Err(why) => {
                        reloads.answer(Err(why));
                        Vec::new()
                    }
                };
                // Asked again meanwhile: read the file once more, as it is now.
                if reloads.again {
                    reloads.begin(opts.config_path.as_deref(), &pusher.clients, notifier.as_ref());
                }
                actions
            }
            () = watchdog_tick(&mut watchdog) => {
                if let Some(n) = &notifier {
                    n.watchdog();
                }
                Vec::new()
            }
            () = hup.recv() => {
                reloads.begin(opts.config_path.as_deref(), &pusher.clients, notifier.as_ref());
                Vec::new()
            }
            () = usr1.recv() => {
                info!("SIGUSR1: checking everything now");
                decider.on_event(Event::CheckNow, Now::system())
            }
            ev = rx.recv() => match ev {
                Some(ev) => {
                    let snapshot = matches!(ev, NetEvent::Snapshot(_));
                    let actions = decider.on_event(Event::Net(ev), Now::system());
                    // The first dump is decided at once: start-up is over.
                    if snapshot && !ready {
                        if let Some(n) = &notifier {
                            n.ready();
                        }
                        ready = true;
                    }
                    actions
                }
                None => {
                    let err = match (&mut watcher).await {
                        Ok(Err(e)) => AgentError::Netlink(e),
                        _ => AgentError::WatcherGone,
                    };
                    error!("{err}: shutting down");
                    break Err(err);
                }
            },
            Some(done) = pusher.next() => {
                // Let the other tasks run first: whatever finishes meanwhile joins the batch.
                tokio::task::yield_now().await;
                let events = pusher.batch(done);
                decider.on_events(events, Now::system())
            }
            req = control_recv(&mut control) => match crate::control::answer(&mut decider, req, &config, Now::system()) {
                crate::control::Answer::Done(actions) => actions,
                // SIGHUP's twin (`ovh rotate`): the same reload, and the client hears how it went.
                crate::control::Answer::Reload(pending) => {
                    reloads.waiting.push(pending);
                    reloads.begin(opts.config_path.as_deref(), &pusher.clients, notifier.as_ref());
                    Vec::new()
                }
            },
            () = sleep_until(wake), if wake.is_some() => decider.on_event(Event::Timer, Now::system()),
            () = sleep_until(health_at), if health_at.is_some() => {
                let verdict = crate::notify::health::verdict(&decider.live_status(Now::system()));
                pusher.notifier.health(verdict);
                health_at = crate::notify::health::next_ping(config.health.as_ref(), None);
                Vec::new()
            }
        };
        if perform(actions, &mut pusher) && save_at.is_none() {
            save_at = Some(Instant::now() + SAVE_DELAY);
        }
    };

    if let Some(n) = &notifier {
        n.stopping();
    }
    info!(in_flight = pusher.in_flight(), "shutting down");
    watcher.abort();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
    while pusher.in_flight() > 0 {
        match tokio::time::timeout_at(deadline, pusher.next()).await {
            Ok(Some(done)) => {
                // Record the outcome; anything it would start now is left for the next run.
                let _ = decider.on_event(done.into_event(), Now::system());
            }
            Ok(None) => break,
            Err(_) => {
                warn!(
                    abandoned = pusher.in_flight(),
                    "requests still out after {}s: abandoned",
                    SHUTDOWN_GRACE.as_secs()
                );
                pusher.tasks.abort_all();
                break;
            }
        }
    }
    // A save still being written finishes first: two writers of one file would race.
    if let Some(task) = saving.take() {
        let _ = task.await;
    }
    save_state(&decider, opts.dry_run, &state_path);
    // Then notifications still waiting are tried once more, for at most another
    // SHUTDOWN_GRACE: the state is on disk whatever becomes of them.
    pusher.notifier.finish(SHUTDOWN_GRACE).await;
    ended
}

/// A Unix signal stream that, if it cannot be installed, just never fires (with an error logged).
struct Signal(Option<tokio::signal::unix::Signal>);

impl Signal {
    fn new(kind: tokio::signal::unix::SignalKind) -> Signal {
        match tokio::signal::unix::signal(kind) {
            Ok(s) => Signal(Some(s)),
            Err(e) => {
                error!("cannot listen for signal {}: {e}", kind.as_raw_value());
                Signal(None)
            }
        }
    }

    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// Whether some enabled record is built from a neighbour entry.
fn follows_neighbours(config: &Config) -> bool {
    config
        .enabled_hosts()
        .any(|h| h.source(crate::record::Family::V6).uses_neighbours())
}

/// Puts a reloaded configuration in place (SIGHUP, or `reload` on the control socket).
fn adopt(
    (new, cancelled): (Config, Vec<RecordKey>),
    config: &mut Config,
    state_path: &mut PathBuf,
    decider: &mut Decider,
) -> Vec<Action> {
    let actions = decider.reconfigure(decider_config(&new), &cancelled, Now::system());
    if new.wan.netlink_buffer != config.wan.netlink_buffer {
        warn!("wan.netlink_buffer changes take effect at the next start");
    }
    if follows_neighbours(&new) && !follows_neighbours(config) {
        warn!(
            "ipv6_neighbour takes effect at the next start (the neighbour table is followed only when a host needs it)"
        );
    }
    // The lock and the socket belong to the state dir the agent started with:
    // writing elsewhere would make a second, unlocked writer.
    if new.state_dir != config.state_dir || new.control_socket != config.control_socket {
        warn!(
            "[state] changes take effect at the next start; the state stays in {}",
            config.state_dir.display()
        );
    } else {
        *state_path = new.state_file();
    }
    *config = new;
    actions
}

/// SIGHUP and the control socket's `reload`: the configuration file read and checked, and its
/// clients built, on a blocking thread ([`Prepared`]); the loop adopts the result when it is
/// ready. One reload at a time: asked again meanwhile, it runs once more afterwards, and every
/// client that asked hears the outcome of a reload that began after it asked.
#[derive(Default)]
struct Reloads {
    running: Option<JoinHandle<Result<(Config, Prepared), String>>>,
    /// Answered when the running reload ends.
    answering: Vec<crate::control::PendingReload>,
    /// Asked while one was running: answered by the next one.
    waiting: Vec<crate::control::PendingReload>,
    again: bool,
}

impl Reloads {
    fn begin(
        &mut self,
        path: Option<&Path>,
        clients: &Clients,
        notifier: Option<&crate::systemd::Notifier>,
    ) {
        if self.running.is_some() {
            self.again = true;
            return;
        }
        self.again = false;
        self.answering = std::mem::take(&mut self.waiting);
        let Some(path) = path else {
            warn!("SIGHUP: no configuration file to reload");
            self.answer(Err("no configuration file to reload".into()));
            return;
        };
        if let Some(n) = notifier {
            n.reloading();
        }
        info!(path = %path.display(), "SIGHUP: reloading the configuration");
        let (path, old) = (path.to_path_buf(), clients.clone());
        self.running = Some(tokio::task::spawn_blocking(move || {
            // A config with [ovh_api] and no host is valid for the `ovh` commands, not for the
            // agent.
            let new = crate::config::load(&path)
                .and_then(|c| c.require_host().map(|()| c))
                .map_err(|e| e.to_string())?;
            let prepared = Prepared::build(&new, Some(&old)).map_err(|e| e.to_string())?;
            Ok((new, prepared))
        }));
    }

    fn answer(&mut self, outcome: Result<String, String>) {
        for pending in self.answering.drain(..) {
            pending.done(outcome.clone());
        }
    }
}

/// A finished reload put into use, or Err (logged, and said in words) when it can't be used;
/// the running configuration then stays.
fn finish_reload(
    done: Result<Result<(Config, Prepared), String>, tokio::task::JoinError>,
    pusher: &mut Pusher,
    notifier: Option<&crate::systemd::Notifier>,
) -> Result<(Config, Vec<RecordKey>), String> {
    if let Some(n) = notifier {
        n.ready();
    }
    let (new, prepared) = match done {
        Ok(Ok(ready)) => ready,
        Ok(Err(why)) => {
            error!("reload failed, keeping the running configuration: {why}");
            return Err(why);
        }
        Err(e) => {
            error!("reload failed, keeping the running configuration: {e}");
            return Err(e.to_string());
        }
    };
    let cancelled = pusher.reconfigure(&new, prepared);
    info!(
        records = decider_config(&new).records.len(),
        "configuration reloaded"
    );
    Ok((new, cancelled))
}

async fn watchdog_tick(w: &mut Option<tokio::time::Interval>) {
    match w {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn control_recv(control: &mut Option<crate::control::Control>) -> crate::control::Incoming {
    match control {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(wake: Option<Instant>) {
    if let Some(at) = wake {
        tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
    }
}

mod once;
pub use once::{UpdateReport, detect, update_once, verify_all};

#[cfg(test)]
mod tests;
