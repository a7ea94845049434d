//! The pppd hooks in contrib/ppp, run the way pppd runs them: the six arguments (interface, tty,
//! speed, local address, remote address, ipparam), an environment holding only pppd's own
//! variables plus the PPP_* ones Debian's /etc/ppp/ip-up exports, and (where available)
//! through Debian's `run-parts --arg=…`. A fake `dynhostd`, `logger` and `systemctl` on PATH
//! record what the hooks asked for (systemctl: that the hook no longer asks it). The real
//! binary behind the hook, with and without a running agent: tests/control.rs.

#[path = "support/netns.rs"]
mod netns;

use std::cell::RefCell;
use std::fs;
use std::io::{PipeReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const LOCAL: &str = "203.0.113.5";
const REMOTE: &str = "198.51.100.1";

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/ppp")
        .join(rel)
}

fn write_exe(path: &Path, body: &str) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A scratch world: fake tools in `bin` (the hook's whole PATH), their records beside.
struct World {
    dir: tempfile::TempDir,
    /// The read end of a pipe whose write end the last hook run inherited (see [`World::run`]).
    jobs: RefCell<Option<PipeReader>>,
}

impl World {
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            jobs: RefCell::new(None),
        };
        let d = w.dir.path().display().to_string();
        fs::create_dir(w.bin()).unwrap();
        // argv one per line, written atomically so a poller never sees half of it.
        write_exe(
            &w.bin().join("dynhostd"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/argv.tmp'\n/bin/mv '{d}/argv.tmp' '{d}/argv'\n\
                 echo 'fake dynhostd: done'\nexit \"$(/bin/cat '{d}/exit' 2>/dev/null || echo 0)\"\n"
            ),
        );
        write_exe(
            &w.bin().join("logger"),
            &format!("#!/bin/sh\n{{ printf '[%s] ' \"$*\"; /bin/cat; }} >> '{d}/log'\n"),
        );
        write_exe(
            &w.bin().join("systemctl"),
            &format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{d}/systemctl'\n[ -e '{d}/active' ]\n"),
        );
        fs::write(w.defaults(), "").unwrap();
        w
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn bin(&self) -> PathBuf {
        self.path("bin")
    }

    fn defaults(&self) -> PathBuf {
        self.path("defaults")
    }

    /// pppd's environment for a PPPoE link (its own variables, Debian's PPP_* ones) and
    /// nothing else: pppd clears the environment for its scripts.
    fn command(&self, script: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(script);
        c.env_clear()
            .env("PATH", self.bin())
            .env("DYNHOSTD_DEFAULTS", self.defaults())
            .args(args);
        if let [iface, tty, speed, local, remote, ipparam] = args {
            c.env("IFNAME", iface)
                .env("DEVICE", tty)
                .env("SPEED", speed)
                .env("IPLOCAL", local)
                .env("IPREMOTE", remote)
                .env("LINKNAME", "wan")
                .env("ORIG_UID", "0")
                .env("PPPLOGNAME", "root")
                .env("PPP_IFACE", iface)
                .env("PPP_TTY", tty)
                .env("PPP_SPEED", speed)
                .env("PPP_LOCAL", local)
                .env("PPP_REMOTE", remote)
                .env("PPP_IPPARAM", ipparam)
                .env("PPP_TTYNAME", tty);
        }
        c
    }

    /// Runs the hook to its end. It also gets the write end of a pipe as fd 3, which a job it
    /// starts in the background inherits (the hooks redirect only 0-2): the read end sees EOF
    /// once the hook and everything it started have ended, see [`World::assert_not_run`].
    fn run(&self, script: &Path, args: &[&str]) -> Output {
        let (reader, writer) = std::io::pipe().unwrap();
        let fd = writer.as_raw_fd();
        let mut c = self.command(script, args);
        // SAFETY: only dup2/fcntl between fork and exec, which are async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                // dup2 leaves the new fd open across exec; if it is 3 already, clear the flag.
                let r = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, 3)
                };
                if r == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = c.output().unwrap();
        drop(writer);
        *self.jobs.borrow_mut() = Some(reader);
        assert!(
            out.status.success(),
            "{} exited {:?}: {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn up(&self, args: &[&str]) -> Output {
        self.run(&contrib("ip-up.d/dynhostd"), args)
    }

    fn down(&self, args: &[&str]) -> Output {
        self.run(&contrib("ip-down.d/dynhostd"), args)
    }

    /// The fake dynhostd's argv, once it ran (the hook starts it in the background).
    fn wait_argv(&self) -> Vec<String> {
        let f = self.path("argv");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f.exists() {
            assert!(
                Instant::now() < deadline,
                "dynhostd was never run; log: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        fs::read_to_string(f)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Waits until the log holds `needle` (the background job logs when dynhostd ends).
    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "log never said {needle:?}: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts dynhostd was not run by the last hook run: once the hook and any job it left in
    /// the background have ended (EOF on the pipe they inherited), there is no argv.
    fn assert_not_run(&self) {
        let mut reader = self
            .jobs
            .borrow_mut()
            .take()
            .expect("assert_not_run after running a hook");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = reader.read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the hook's background jobs never ended; log: {}",
            self.log()
        );
        assert!(
            !self.path("argv").exists(),
            "dynhostd ran: {:?}; log: {}",
            fs::read_to_string(self.path("argv")),
            self.log()
        );
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("log")).unwrap_or_default()
    }
}

/// pppd's ip-up arguments for a PPPoE link on eth1 (the "tty" of a PPPoE session is the
/// Ethernet device; its speed is 0).
fn pppoe(iface: &str) -> [&str; 6] {
    [iface, "eth1", "0", LOCAL, REMOTE, "wan"]
}

#[test]
fn ip_up_runs_update_with_the_local_address() {
    let w = World::new();
    w.up(&pppoe("ppp0"));
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);
    let log = w.wait_log("current (dynhostd update exited 0)");
    assert!(log.contains("fake dynhostd: done"), "{log}");
    assert!(
        log.contains("[-t dynhostd"),
        "logs under the dynhostd tag: {log}"
    );
    // `update` itself finds a running agent (its lock and socket): systemd is not asked.
    assert!(!w.path("systemctl").exists(), "systemctl was run");
}

#[test]
fn the_configured_config_file_is_passed_as_one_argument() {
    let w = World::new();
    fs::write(
        w.defaults(),
        "# dynhostd hook settings\nDYNHOSTD_CONFIG=\"/etc/dynhostd/with space.toml\"\nUNRELATED=1\n",
    )
    .unwrap();
    w.up(&pppoe("ppp0"));
    assert_eq!(
        w.wait_argv(),
        [
            "update",
            "--ip",
            LOCAL,
            "--config",
            "/etc/dynhostd/with space.toml"
        ]
    );
}

#[test]
fn the_environment_overrides_the_settings_file() {
    let w = World::new();
    fs::write(w.defaults(), "DYNHOSTD_CONFIG='/etc/a.toml'\n").unwrap();
    let out = w
        .command(&contrib("ip-up.d/dynhostd"), &pppoe("ppp0"))
        .env("DYNHOSTD_CONFIG", "/etc/b.toml")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        w.wait_argv(),
        ["update", "--ip", LOCAL, "--config", "/etc/b.toml"]
    );
}

#[test]
fn a_failed_update_is_logged_with_its_exit_code() {
    let w = World::new();
    fs::write(w.path("exit"), "1").unwrap();
    let out = w.up(&pppoe("ppp0"));
    // pppd and run-parts see success: the failure is the daemon's business, reported in the log.
    assert!(out.status.success());
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);
    w.wait_log("dynhostd update failed (exit 1)");
}

/// The hook no longer decides whether a daemon runs (`dynhostd update` hands the address to a
/// running agent itself): systemd saying "active" and a leftover DYNHOSTD_PIDFILE setting from
/// an older settings file change nothing.
#[test]
fn a_running_daemon_is_update_s_business_not_the_hook_s() {
    let w = World::new();
    fs::write(w.path("active"), "").unwrap();
    let pidfile = w.path("dynhostd.pid");
    fs::write(
        w.defaults(),
        format!("DYNHOSTD_PIDFILE={}\n", pidfile.display()),
    )
    .unwrap();
    // This test process stands in for a live daemon.
    fs::write(&pidfile, format!("{}\n", std::process::id())).unwrap();
    w.up(&pppoe("ppp0"));
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);
    w.wait_log("exited 0");
    assert!(!w.path("systemctl").exists(), "systemctl was run");
}

#[test]
fn only_the_configured_interfaces_count() {
    // Default: every ppp interface, nothing else.
    let w = World::new();
    w.up(&pppoe("wwan0"));
    w.assert_not_run();
    w.up(&pppoe("ppp1"));
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);

    // A configured pattern.
    let w = World::new();
    fs::write(w.defaults(), "DYNHOSTD_INTERFACE=ppp1\n").unwrap();
    w.up(&pppoe("ppp0"));
    w.assert_not_run();
    w.up(&pppoe("ppp1"));
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);
}

#[test]
fn hostile_values_are_passed_verbatim_and_run_nothing() {
    let w = World::new();
    let marker = w.path("pwned");
    let hostile = format!("$(touch {m}) `touch {m}`; touch {m}", m = marker.display());
    w.up(&[
        "ppp0",
        "eth1",
        "0",
        &hostile,
        REMOTE,
        "$(touch /nonexistent)",
    ]);
    assert_eq!(w.wait_argv(), ["update", "--ip", hostile.as_str()]);
    w.wait_log("exited 0");
    assert!(!marker.exists(), "a value was executed");

    // Same for a hostile interface pattern in the settings: a glob, never a command.
    let w = World::new();
    fs::write(
        w.defaults(),
        format!("DYNHOSTD_INTERFACE=$(touch {})\n", marker.display()),
    )
    .unwrap();
    w.up(&pppoe("ppp0"));
    w.assert_not_run();
    assert!(!marker.exists(), "the pattern was executed");
}

#[test]
fn without_arguments_the_ppp_variables_are_used() {
    // Some wrappers call ip-up.d scripts with the environment only.
    let w = World::new();
    let out = Command::new(contrib("ip-up.d/dynhostd"))
        .env_clear()
        .env("PATH", w.bin())
        .env("DYNHOSTD_DEFAULTS", w.defaults())
        .env("PPP_IFACE", "ppp0")
        .env("PPP_LOCAL", "192.0.2.77")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(w.wait_argv(), ["update", "--ip", "192.0.2.77"]);
}

#[test]
fn a_missing_dynhostd_is_logged_not_fatal() {
    let w = World::new();
    fs::remove_file(w.bin().join("dynhostd")).unwrap();
    w.up(&pppoe("ppp0"));
    assert!(w.log().contains("not installed"), "{}", w.log());
}

#[test]
fn ip_down_publishes_nothing() {
    let w = World::new();
    w.down(&pppoe("ppp0"));
    w.assert_not_run();
    assert!(
        w.log().contains(&format!("ppp0 down (was {LOCAL})")),
        "{}",
        w.log()
    );
    // Other interfaces: not even a log line.
    let w = World::new();
    w.down(&pppoe("eth0"));
    assert_eq!(w.log(), "");
}

/// Debian's /etc/ppp/ip-up hands the six arguments to `run-parts --arg=…`, which also requires
/// the hook to be executable and its name to have no dot. Runs the real run-parts on a copy of
/// the ip-up.d directory.
#[test]
fn debian_run_parts_runs_the_hook() {
    let found = ["/usr/bin/run-parts", "/bin/run-parts"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists());
    if !netns::prerequisite(
        "debian_run_parts_runs_the_hook",
        found.is_some(),
        "run-parts is not installed (Debian package debianutils)",
    ) {
        return;
    }
    let run_parts = found.unwrap();
    let w = World::new();
    let d = w.path("ip-up.d");
    fs::create_dir(&d).unwrap();
    fs::copy(contrib("ip-up.d/dynhostd"), d.join("dynhostd")).unwrap();
    let args = pppoe("ppp0");
    let mut c = w.command(run_parts, &[]);
    for a in args {
        c.arg(format!("--arg={a}"));
    }
    // The PPP_* variables Debian's ip-up exports for run-parts' children.
    c.env("PPP_IFACE", args[0])
        .env("PPP_TTY", args[1])
        .env("PPP_SPEED", args[2])
        .env("PPP_LOCAL", args[3])
        .env("PPP_REMOTE", args[4])
        .env("PPP_IPPARAM", args[5])
        .arg(&d);
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.wait_argv(), ["update", "--ip", LOCAL]);
}
