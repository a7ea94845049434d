//! Telling systemd how the agent is doing (`Type=notify`): the sd_notify protocol in a few lines,
//! without libsystemd. systemd passes a unix datagram socket in `NOTIFY_SOCKET` (a path, or an
//! abstract name when it starts with '@'); each datagram is newline-separated `KEY=VALUE`
//! assignments (sd_notify(3)). The watchdog interval comes from `WATCHDOG_USEC`, and applies to
//! us only when `WATCHDOG_PID` is unset or names our pid (sd_watchdog_enabled(3)).
//!
//! Every failure is logged at debug and otherwise ignored: losing a notification must never stop
//! the agent (at worst systemd times the start out or the watchdog fires, which it reports).

use std::ffi::{OsStr, OsString};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;
use tracing::debug;

/// A handle on systemd's notification socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// The full `WATCHDOG_USEC`, when the watchdog applies to this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier systemd asked for, or None when not started by systemd with `Type=notify`
    /// (no `NOTIFY_SOCKET`) or when the socket is unusable.
    pub fn from_env() -> Option<Notifier> {
        Notifier::from_vars(
            std::env::var_os("NOTIFY_SOCKET"),
            std::env::var_os("WATCHDOG_USEC"),
            std::env::var_os("WATCHDOG_PID"),
            std::process::id(),
        )
    }

    /// `from_env` with the variables passed in, so tests need not mutate the process
    /// environment (which other tests read in parallel).
    pub fn from_vars(
        notify_socket: Option<OsString>,
        watchdog_usec: Option<OsString>,
        watchdog_pid: Option<OsString>,
        our_pid: u32,
    ) -> Option<Notifier> {
        let socket = notify_socket.filter(|s| !s.is_empty())?;
        let watchdog = watchdog_for_us(watchdog_usec.as_deref(), watchdog_pid.as_deref(), our_pid);
        Notifier::new(&socket, watchdog)
    }

    /// A notifier sending to `socket` (`/path` or `@abstract`), with the given full watchdog
    /// timeout (the value of `WATCHDOG_USEC`).
    pub fn new(socket: &OsStr, watchdog: Option<Duration>) -> Option<Notifier> {
        let bytes = socket.as_bytes();
        let addr = match bytes.first() {
            // The kernel's abstract namespace: '@' stands for the leading NUL byte.
            Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..]),
            Some(b'/') => SocketAddr::from_pathname(socket),
            // sd_notify accepts only absolute paths and abstract names (and, lately, vsock
            // addresses, which a gateway daemon has no use for).
            _ => {
                debug!(socket = ?socket, "NOTIFY_SOCKET is neither a path nor an abstract name: not notifying");
                return None;
            }
        };
        let addr = match addr {
            Ok(a) => a,
            Err(e) => {
                debug!(socket = ?socket, "NOTIFY_SOCKET unusable ({e}): not notifying");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                debug!("cannot create the notification socket ({e}): not notifying");
                return None;
            }
        };
        // Never let a full systemd queue stall the event loop (libsystemd sends MSG_DONTWAIT too).
        if let Err(e) = socket.set_nonblocking(true) {
            debug!("cannot make the notification socket non-blocking ({e})");
        }
        Some(Notifier {
            socket,
            addr,
            watchdog,
        })
    }

    /// Start-up is over: the first decision has been made.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// Shutting down (SIGTERM/SIGINT received).
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    /// Reloading the configuration (SIGHUP). Send [`Notifier::ready`] when done. The monotonic
    /// timestamp is what `Type=notify-reload` requires to tell this reload from an older one.
    pub fn reloading(&self) {
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
    }

    /// A one-line status for `systemctl status`.
    pub fn status(&self, text: &str) {
        // A newline would end the assignment and let the text set other keys (READY=1, …).
        let line: String = text
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        self.send(&format!("STATUS={line}"));
    }

    /// Keep-alive for `WatchdogSec=`.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// How often to call [`Notifier::watchdog`]: half the timeout, as sd_watchdog_enabled(3)
    /// advises, or None when no watchdog applies to us.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            debug!(message, "sd_notify failed: {e}");
        }
    }
}

/// The watchdog timeout if it is meant for `our_pid`: `WATCHDOG_PID` unset, or equal to it.
fn watchdog_for_us(usec: Option<&OsStr>, pid: Option<&OsStr>, our_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        let pid: u32 = pid.to_str()?.trim().parse().ok()?;
        if pid != our_pid {
            return None;
        }
    }
    let usec: u64 = usec?.to_str()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into memory we own; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    /// A listening socket in a fresh temp dir and a notifier aimed at it.
    fn listener(watchdog: Option<Duration>) -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(path.as_os_str(), watchdog).expect("notifier");
        (dir, rx, n)
    }

    fn recv(rx: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = rx.recv(&mut buf).expect("a datagram");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_each_state_as_one_datagram() {
        let (_dir, rx, n) = listener(None);
        n.ready();
        assert_eq!(recv(&rx), "READY=1");
        n.status("3 records current");
        assert_eq!(recv(&rx), "STATUS=3 records current");
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1");
        n.stopping();
        assert_eq!(recv(&rx), "STOPPING=1");
    }

    #[test]
    fn reloading_carries_the_monotonic_clock() {
        let (_dir, rx, n) = listener(None);
        let before = monotonic_usec();
        n.reloading();
        let after = monotonic_usec();
        let msg = recv(&rx);
        let (first, second) = msg.split_once('\n').expect("two assignments");
        assert_eq!(first, "RELOADING=1");
        let usec: u64 = second
            .strip_prefix("MONOTONIC_USEC=")
            .expect("MONOTONIC_USEC")
            .parse()
            .unwrap();
        assert!(
            before <= usec && usec <= after,
            "{before} <= {usec} <= {after}"
        );
        assert!(before > 0);
    }

    #[test]
    fn a_status_cannot_smuggle_other_assignments() {
        let (_dir, rx, n) = listener(None);
        n.status("ok\nREADY=1\r\nWATCHDOG=trigger");
        let msg = recv(&rx);
        assert_eq!(msg, "STATUS=ok READY=1  WATCHDOG=trigger");
        assert_eq!(msg.lines().count(), 1);
    }

    #[test]
    fn abstract_socket_names_start_with_at() {
        // Unique per test run: abstract names live in the network namespace, not a directory.
        let name = format!(
            "dynhostd-notify-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::from_vars(os(&format!("@{name}")), None, None, 1).expect("notifier");
        n.ready();
        assert_eq!(recv(&rx), "READY=1");
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn from_vars_reads_socket_and_watchdog() {
        let (dir, rx, _) = listener(None);
        let path = dir.path().join("notify");
        let n = Notifier::from_vars(
            Some(path.clone().into_os_string()),
            os("30000000"),
            None,
            4242,
        )
        .unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
        n.watchdog();
        assert_eq!(recv(&rx), "WATCHDOG=1");

        // The watchdog is ours when WATCHDOG_PID names us…
        let n = Notifier::from_vars(
            Some(path.clone().into_os_string()),
            os("2000000"),
            os("4242"),
            4242,
        )
        .unwrap();
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(1)));
        // …and someone else's (a parent wrapper's) when it names another pid.
        let n = Notifier::from_vars(Some(path.into_os_string()), os("2000000"), os("4243"), 4242)
            .unwrap();
        assert_eq!(n.watchdog_interval(), None);
    }

    #[test]
    fn no_or_bad_socket_means_no_notifier() {
        assert!(Notifier::from_vars(None, os("1000000"), None, 1).is_none());
        assert!(Notifier::from_vars(os(""), None, None, 1).is_none());
        assert!(Notifier::from_vars(os("relative/path"), None, None, 1).is_none());
        assert!(Notifier::from_vars(os("vsock:2:1234"), None, None, 1).is_none());
    }

    #[test]
    fn bad_watchdog_values_mean_no_watchdog() {
        let us = |u: Option<&str>, p: Option<&str>| {
            watchdog_for_us(u.map(OsStr::new), p.map(OsStr::new), 7)
        };
        assert_eq!(us(Some("0"), None), None);
        assert_eq!(us(Some("abc"), None), None);
        assert_eq!(us(Some("-5"), None), None);
        assert_eq!(us(None, Some("7")), None);
        assert_eq!(us(Some("1000"), Some("x")), None);
        assert_eq!(us(Some("1000"), Some("7")), Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_vanished_socket_is_not_an_error() {
        let (dir, rx, n) = listener(None);
        drop(rx);
        std::fs::remove_file(dir.path().join("notify")).unwrap();
        // Must neither panic nor block: the failure is only logged.
        n.ready();
        n.watchdog();
    }
}
