//! The systemd notification protocol (`sd_notify`).
//!
//! systemd passes a datagram socket in `NOTIFY_SOCKET` to services with
//! `Type=notify`; each message is newline-separated `KEY=VALUE` lines. A
//! name starting with `@` is a Linux abstract socket. When the variable is
//! unset (not under systemd) every call is a no-op.
//!
//! The variables are not removed from the environment (that is unsound in
//! a threaded process), so children inherit them; the unit's
//! `NotifyAccess=main` makes systemd ignore anything they send.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// A notification that could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The socket address in `NOTIFY_SOCKET` is unusable.
    #[error("invalid NOTIFY_SOCKET address {address:?}")]
    Address {
        /// The address as found in the environment.
        address: String,
        /// Why it was refused.
        #[source]
        source: io::Error,
    },
    /// Sending the datagram failed.
    #[error("failed to send {message:?} to the notify socket")]
    Send {
        /// The first line of the message.
        message: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

/// Sends state changes to systemd, or nothing when not under it.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
}

impl Notifier {
    /// Builds a notifier from `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`_PID`.
    ///
    /// # Errors
    ///
    /// Fails when `NOTIFY_SOCKET` is set but is not a usable address.
    pub fn from_env() -> Result<Self, NotifyError> {
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match std::env::var("NOTIFY_SOCKET") {
            Ok(address) if !address.is_empty() => Ok(Notifier {
                target: Some(Target::connect(&address)?),
                watchdog,
            }),
            _ => Ok(Notifier::disabled()),
        }
    }

    /// Builds a notifier that sends nothing.
    pub fn disabled() -> Self {
        Notifier {
            target: None,
            watchdog: None,
        }
    }

    /// Builds a notifier for a socket path and watchdog interval.
    ///
    /// # Errors
    ///
    /// Fails when a local socket cannot be created.
    pub fn for_address(address: &str, watchdog: Option<Duration>) -> Result<Self, NotifyError> {
        Ok(Notifier {
            target: Some(Target::connect(address)?),
            watchdog,
        })
    }

    /// Returns true when messages go to a socket.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Returns how often systemd expects a watchdog ping, if at all.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Tells systemd that start-up (or a reload) is complete.
    pub fn ready(&self) -> Result<(), NotifyError> {
        self.send("READY=1")
    }

    /// Sets the one-line status `systemctl status` shows.
    pub fn status(&self, text: &str) -> Result<(), NotifyError> {
        // A newline would start a new KEY=VALUE assignment.
        let line = text.replace('\n', " ");
        self.send(&format!("STATUS={line}"))
    }

    /// Pings the watchdog.
    pub fn watchdog(&self) -> Result<(), NotifyError> {
        self.send("WATCHDOG=1")
    }

    /// Tells systemd that the service is shutting down.
    pub fn stopping(&self) -> Result<(), NotifyError> {
        self.send("STOPPING=1")
    }

    /// Tells systemd that a reload started; end it with [`Self::ready`].
    ///
    /// systemd 253+ wants `MONOTONIC_USEC` with it to match the reload
    /// to the `ExecReload=` that caused it.
    pub fn reloading(&self) -> Result<(), NotifyError> {
        let usec = monotonic_usec();
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"))
    }

    /// Sends one raw message.
    fn send(&self, message: &str) -> Result<(), NotifyError> {
        let Some(target) = &self.target else {
            return Ok(());
        };
        let result = target
            .socket
            .send_to_addr(message.as_bytes(), &target.address);
        result.map(drop).map_err(|source| NotifyError::Send {
            message: message.lines().next().unwrap_or_default().to_owned(),
            source,
        })
    }
}

impl Target {
    /// Opens an unbound datagram socket aimed at `address`.
    fn connect(address: &str) -> Result<Self, NotifyError> {
        let error = |source| NotifyError::Address {
            address: address.to_owned(),
            source,
        };
        let parsed = match address.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(Path::new(address)),
        }
        .map_err(error)?;

        let socket = UnixDatagram::unbound().map_err(error)?;
        // A full receive queue must not stall the daemon's event loop; the
        // send fails with EAGAIN instead and the daemon logs it.
        socket.set_nonblocking(true).map_err(error)?;
        Ok(Target {
            socket,
            address: parsed,
        })
    }
}

/// Reads the watchdog interval systemd asked for, if it is for us.
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        // WATCHDOG_PID names the process meant to ping; a child that
        // inherited the variables must not.
        if pid.trim().parse::<u32>().ok()? != own_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// Reads CLOCK_MONOTONIC in microseconds, as systemd measures it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound_socket() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (dir, socket, path.to_str().unwrap().to_owned())
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("no notify message arrived");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    // Each call sends the documented message to a path socket.
    #[test]
    fn messages_reach_a_path_socket() {
        let (_dir, socket, path) = bound_socket();
        let notifier = Notifier::for_address(&path, None).unwrap();

        notifier.ready().unwrap();
        notifier.status("next run\n12:00").unwrap();
        notifier.watchdog().unwrap();
        notifier.stopping().unwrap();

        assert_eq!(receive(&socket), "READY=1");
        assert_eq!(receive(&socket), "STATUS=next run 12:00");
        assert_eq!(receive(&socket), "WATCHDOG=1");
        assert_eq!(receive(&socket), "STOPPING=1");
    }

    // RELOADING=1 carries a monotonic timestamp close to now.
    #[test]
    fn reloading_carries_monotonic_usec() {
        let (_dir, socket, path) = bound_socket();
        let before = monotonic_usec();
        Notifier::for_address(&path, None)
            .unwrap()
            .reloading()
            .unwrap();

        let message = receive(&socket);
        let (first, second) = message.split_once('\n').unwrap();
        assert_eq!(first, "RELOADING=1");
        let usec: u64 = second
            .strip_prefix("MONOTONIC_USEC=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            usec >= before && usec - before < 5_000_000,
            "{usec} vs {before}"
        );
    }

    // A name starting with @ is an abstract socket.
    #[test]
    fn abstract_socket_names_work() {
        let name = format!("keyshift-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();

        Notifier::for_address(&format!("@{name}"), None)
            .unwrap()
            .ready()
            .unwrap();
        assert_eq!(receive(&socket), "READY=1");
    }

    // Without a socket every call succeeds and sends nothing.
    #[test]
    fn disabled_notifier_is_a_no_op() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        assert!(notifier.ready().is_ok() && notifier.watchdog().is_ok());
        assert_eq!(notifier.watchdog_interval(), None);
    }

    // A socket nobody listens on gives a Send error, not a panic.
    #[test]
    fn send_to_missing_socket_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.sock");
        let notifier = Notifier::for_address(path.to_str().unwrap(), None).unwrap();
        let err = notifier.ready().unwrap_err();
        assert!(matches!(err, NotifyError::Send { .. }), "{err}");
    }

    // WATCHDOG_USEC counts only for the process WATCHDOG_PID names.
    #[test]
    fn watchdog_interval_respects_pid() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(watchdog_from(Some("1000000"), None, 7), second);
        assert_eq!(watchdog_from(Some("1000000"), Some("7"), 7), second);
        assert_eq!(watchdog_from(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }
}
