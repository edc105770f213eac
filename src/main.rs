//! The keyshift binary: parses the command line and runs it.

use clap::Parser;

use keyshift::cli::{self, Cli, Exit};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli::run(cli).await {
        Ok(exit) => exit,
        Err(error) => {
            eprintln!("error: {error:#}");
            Exit::Error
        }
    };
    std::process::exit(code as i32);
}
