//! The `grafana-sim` binary: serve a simulator or generate an estate.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::{Parser, Subcommand};
use grafana_sim::generate::{generate, GenerateConfig};
use grafana_sim::{Estate, Options, Profile, SimConfig};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// A stateful simulator of Grafana's HTTP API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the simulator.
    Serve(ServeArgs),
    /// Print a generated estate as JSON.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Profile (9.1, 9.5, 10.0, 10.4, 11.3, 11.6, 12.1) or a full version.
    #[arg(long, default_value = "10.4")]
    profile: String,
    /// Estate document to load.
    #[arg(long)]
    estate: Option<PathBuf>,
    /// Address to listen on; never a wildcard unless given.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// Server admin as LOGIN:PASSWORD.
    #[arg(long, default_value = "admin:admin")]
    admin: String,
    /// Server setting KEY=VALUE (repeatable).
    #[arg(long = "setting")]
    settings: Vec<String>,
    /// [U] option KEY=VALUE (repeatable).
    #[arg(long = "option")]
    options: Vec<String>,
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// Number of orgs (org 1 included).
    #[arg(long, default_value_t = 1)]
    orgs: usize,
    /// Keys per org.
    #[arg(long, default_value_t = 20)]
    keys_per_org: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Profile the estate is meant for (accepted for symmetry; keys are
    /// emitted plain and 11.6+ converts them at start).
    #[arg(long)]
    profile: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Generate(args) => print_estate(args),
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = sim_config(&args)?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    grafana_sim::serve(config, listener).await?;
    Ok(())
}

fn sim_config(args: &ServeArgs) -> Result<SimConfig> {
    let mut config = SimConfig::for_version(&args.profile)?;
    let profile = config.profile;
    let Some((login, password)) = args.admin.split_once(':') else {
        bail!("--admin must be LOGIN:PASSWORD");
    };
    config.admin_login = login.to_string();
    config.admin_password = password.to_string();
    config.options = Options::for_profile(profile);
    for pair in &args.options {
        let (key, value) = split_pair(pair)?;
        config.options.set(key, value)?;
    }
    for pair in &args.settings {
        let (key, value) = split_pair(pair)?;
        config.settings.set(key, value)?;
    }
    if let Some(path) = &args.estate {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read estate {}", path.display()))?;
        let estate: Estate = serde_json::from_str(&text)
            .with_context(|| format!("failed to parse estate {}", path.display()))?;
        config.estate = Some(estate);
    }
    Ok(config)
}

fn split_pair(pair: &str) -> Result<(&str, &str)> {
    pair.split_once('=')
        .with_context(|| format!("expected KEY=VALUE, got {pair:?}"))
}

fn print_estate(args: GenerateArgs) -> Result<()> {
    if let Some(profile) = &args.profile {
        profile.parse::<Profile>()?;
    }
    let config = GenerateConfig {
        orgs: args.orgs,
        keys_per_org: args.keys_per_org,
        seed: args.seed,
        now: Utc::now(),
    };
    let estate = generate(&config);
    println!("{}", serde_json::to_string_pretty(&estate)?);
    Ok(())
}
