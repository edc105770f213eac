//! Process signals as a channel, so tests can send them in-process.

use std::io;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

/// A request from outside the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the config.
    Reload,
    /// SIGTERM: stop after the call in flight.
    Terminate,
    /// SIGINT: like SIGTERM, from a terminal.
    Interrupt,
}

impl Signal {
    /// Returns the exit code for dying of this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Signal::Reload => libc::SIGHUP,
            Signal::Terminate => libc::SIGTERM,
            Signal::Interrupt => libc::SIGINT,
        }
    }

    /// Returns the conventional signal name.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Reload => "SIGHUP",
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }
}

/// Listens for SIGHUP, SIGTERM and SIGINT and forwards them.
///
/// Call it early: once it returns, the default actions (which would kill
/// the process) are replaced. Must be called inside a tokio runtime.
///
/// # Errors
///
/// Fails when a signal handler cannot be installed.
pub fn os_signals() -> io::Result<mpsc::Receiver<Signal>> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let (tx, rx) = mpsc::channel(8);

    tokio::spawn(async move {
        loop {
            let received = tokio::select! {
                Some(()) = hangup.recv() => Signal::Reload,
                Some(()) = terminate.recv() => Signal::Terminate,
                Some(()) = interrupt.recv() => Signal::Interrupt,
                else => break,
            };
            if tx.send(received).await.is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Exit codes follow the shell's 128 + signal number convention.
    #[test]
    fn exit_codes_are_128_plus_signal() {
        assert_eq!(Signal::Interrupt.exit_code(), 130);
        assert_eq!(Signal::Terminate.exit_code(), 143);
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
    }
}
