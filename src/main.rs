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
            eprintln!("error: {error:#}");
            Exit::Error
        }
    }
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
