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
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::Error
        }
    }
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
