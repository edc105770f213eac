//! The keyshift binary: parses the command line and runs it.

use clap::Parser;

use keyshift::cli::{self, Cli, Exit};

#[tokio::main]
async fn main() {
    let code = match Cli::try_parse() {
        Ok(cli) => run(cli).await,
        Err(error) => usage(&error),
    };
    std::process::exit(code as i32);
}

async fn run(cli: Cli) -> Exit {
    match cli::run(cli).await {
        Ok(exit) => exit,
        // The reader has what it wanted (`keyshift plan | head -1`).
        Err(error) if is_broken_pipe(&error) => Exit::Done,
        Err(error) => {
            eprintln!("error: {}", describe(&error));
            Exit::Error
        }
    }
}

/// The error and its causes on one line, each said once.
///
/// Some errors put their source's text in their own message as well as
/// returning it as their source; anyhow's `{:#}` then says it twice.
fn describe(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if previous.is_empty() || !previous.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        previous = text;
    }
    line
}

/// Whether writing to a closed pipe caused `error`.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints what clap has to say; help and version are a success, a
/// usage error is an error (clap's own 2 means "needs attention" here).
fn usage(error: &clap::Error) -> Exit {
    // Nothing useful is left to do when the terminal is gone.
    let _ = error.print();
    if error.use_stderr() {
        Exit::Error
    } else {
        Exit::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that repeats its source's text in its own message.
    #[derive(Debug, thiserror::Error)]
    #[error("the sink is not usable: {0}")]
    struct Repeats(#[source] std::io::Error);

    // A cause already in the message above it is not said again; other
    // causes are kept in order.
    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::other("mode 755");
        let error = anyhow::Error::new(Repeats(io)).context("migrate failed");
        assert_eq!(
            describe(&error),
            "migrate failed: the sink is not usable: mode 755"
        );

        let io = std::io::Error::other("denied");
        let error = anyhow::Error::new(io).context("cannot write");
        assert_eq!(describe(&error), "cannot write: denied");
    }
}
