//! The command line: flags, commands and exit codes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, Config, Environment};
use crate::job::JobResult;
use crate::ledger::RunOutcome;
use crate::report::{render_markdown, MemberStatus, RunReport};
use crate::telemetry::{self, LogFormat};
use crate::{app, output, rehearse};

/// `println!` that returns the write's error instead of panicking, so
/// that a reader closing the pipe ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use outln;

/// `print!` that returns the write's error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(crate) use out;

/// Moves Grafana API keys to service accounts and keeps them true.
#[derive(Debug, Parser)]
#[command(name = "keyshift", version, about, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $KEYSHIFT_CONFIG, else /etc/keyshift/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// More log detail: -v debug, -vv trace
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format [default: the config's log.format, else text]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// keyshift's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what migrate would do; writes nothing to Grafana
    Plan(PlanArgs),
    /// Migrate the estate's API keys to service accounts
    Migrate(MigrateArgs),
    /// Compare the ledger with Grafana; repair drift with --repair
    Reconcile(ReconcileArgs),
    /// Undo what keyshift did for a use case or a credential
    Revert(crate::revert::RevertArgs),
    /// Reconcile on the config's schedule until stopped (the service)
    ///
    /// Makes the repairs `[reconcile.repair]` allows without --repair:
    /// the config is the daemon's only switch. Leave every repair at
    /// "report" for a daemon that only reports.
    Run,
    /// Print the report of a past run (default: the latest)
    Report(ReportArgs),
    /// Check the config
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run plan, migrate and reconcile against a built-in simulated Grafana
    Rehearse(rehearse::RehearseArgs),
}

/// Flags shared by plan and migrate.
#[derive(Debug, Args)]
pub struct Selection {
    /// Only this org (id or name); repeat for more. Overrides [orgs]
    #[arg(long = "org", value_name = "ORG")]
    pub orgs: Vec<String>,
    /// Output format [default: table on a terminal, else markdown]
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

/// `keyshift plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    selection: Selection,
}

/// `keyshift migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    selection: Selection,
    /// Plan only, as `keyshift plan`
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    yes: bool,
}

/// `keyshift reconcile`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    selection: Selection,
    /// Make the repairs that [reconcile.repair] allows
    #[arg(long)]
    repair: bool,
}

/// `keyshift report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run id [default: the latest]
    run: Option<i64>,
    /// Output format
    #[arg(long, value_enum, default_value = "markdown")]
    format: Format,
}

/// `keyshift config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse the config, then check Grafana: reachable, version, credentials, org access
    Check,
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns
    Table,
    /// JSON
    Json,
    /// Markdown
    Markdown,
}

/// What the process exits with (PRODUCT.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done with nothing outstanding.
    Done = 0,
    /// An error stopped the command.
    Error = 1,
    /// Done, but something needs attention.
    Attention = 2,
}

impl From<RunOutcome> for Exit {
    fn from(outcome: RunOutcome) -> Self {
        match outcome {
            RunOutcome::Done => Exit::Done,
            RunOutcome::Attention => Exit::Attention,
            RunOutcome::Failed | RunOutcome::Interrupted => Exit::Error,
        }
    }
}

/// Runs the command line.
///
/// # Errors
/// Any error that stops the command; the binary prints it and exits 1.
pub async fn run(cli: Cli) -> Result<Exit> {
    match &cli.command {
        Command::Rehearse(args) => {
            init_logging(&cli, None)?;
            rehearse::run(args).await
        }
        Command::Plan(args) => plan(&cli, &args.selection).await,
        Command::Migrate(args) if args.dry_run => plan(&cli, &args.selection).await,
        Command::Migrate(args) => migrate(&cli, args).await,
        Command::Reconcile(args) => reconcile(&cli, args).await,
        Command::Revert(args) => {
            let config = load(&cli)?;
            crate::revert::run_cli(&config, args).await
        }
        Command::Run => {
            let config = load(&cli)?;
            crate::service::run(config).await
        }
        Command::Report(args) => report(&cli, args),
        Command::Config(ConfigCommand::Check) => check(&cli).await,
    }
}

fn load(cli: &Cli) -> Result<Config> {
    let env = Environment::from_process();
    let path = config::config_path(cli.config.as_deref(), &env);
    let config = Config::load_with(&path, &env)?;
    init_logging(cli, Some(&config))?;
    Ok(config)
}

fn init_logging(cli: &Cli, config: Option<&Config>) -> Result<()> {
    let format = cli
        .log_format
        .or(config.map(|c| c.log.format))
        .unwrap_or(LogFormat::Text);
    let level = config.map_or(tracing::level_filters::LevelFilter::INFO, |c| {
        c.log.level.to_level_filter()
    });
    telemetry::init_with_level(format, level, cli.verbose)?;
    Ok(())
}

async fn plan(cli: &Cli, selection: &Selection) -> Result<Exit> {
    let config = load(cli)?;
    let job = app::job(&config, &selection.orgs, "cli")?;
    let result = job.plan().await?;
    let path = app::reports(&config).write(&result.report)?;
    print_result(&result, selection.format)?;
    eprintln!("report: {}", path.display());
    Ok(Exit::from(result.report.outcome))
}

async fn migrate(cli: &Cli, args: &MigrateArgs) -> Result<Exit> {
    let config = load(cli)?;
    let job = app::job(&config, &args.selection.orgs, "cli")?;
    let preview = job.plan().await?;
    // The preview is a plan run of its own: it gets its report too.
    let preview_path = app::reports(&config).write(&preview.report)?;
    if !preview.plan.has_changes() {
        let path = preview_path;
        print_result(&preview, args.selection.format)?;
        eprintln!("report: {}", path.display());
        eprintln!("nothing to migrate");
        return Ok(Exit::from(preview.report.outcome));
    }
    if !args.yes {
        confirm(&config, &preview)?;
    }
    let bar = progress_bar(
        preview
            .plan
            .use_cases()
            .filter(|u| !u.steps.is_empty())
            .count(),
    );
    let tick = bar
        .clone()
        .map(|b| Arc::new(move || b.inc(1)) as Arc<dyn Fn() + Send + Sync>);
    let result = job.migrate(tick).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let path = app::reports(&config).write(&result.report)?;
    print_result(&result, args.selection.format)?;
    eprintln!("report: {}", path.display());
    let delivered = delivered(&result.report);
    if delivered > 0 {
        let secrets = if delivered == 1 { "secret" } else { "secrets" };
        let sink = app::sink_description(&config);
        eprintln!("{delivered} new {secrets} went to the {sink}");
    }
    Ok(Exit::from(result.report.outcome))
}

/// The start of a member's detail when its token was reissued and
/// delivered in this run (written by the job's report).
const REISSUED: &str = "token reissued";

/// How many secrets the run handed to the sink: one per member whose
/// token was reissued in this run.
///
/// The report's member action shows the final plan ("none" once done),
/// so the detail written for a delivered reissue is what tells.
fn delivered(report: &RunReport) -> usize {
    let members = report
        .orgs
        .iter()
        .flat_map(|o| &o.use_cases)
        .flat_map(|u| &u.members);
    members
        .filter(|m| m.status == MemberStatus::Done && m.detail.starts_with(REISSUED))
        .count()
}

async fn reconcile(cli: &Cli, args: &ReconcileArgs) -> Result<Exit> {
    let config = load(cli)?;
    let reconciler = app::reconciler(&config, &args.selection.orgs, "cli", args.repair)?;
    let result = reconciler.run(&crate::daemon::StopToken::never()).await?;
    for nested in &result.nested {
        app::reports(&config).write(nested)?;
    }
    let path = app::reports(&config).write(&result.report)?;
    print_report(&result.report, args.selection.format)?;
    eprintln!("report: {}", path.display());
    Ok(Exit::from(result.report.outcome))
}

/// Prints a run report (no plan) in the chosen format.
///
/// # Errors
/// When stdout cannot be written.
pub fn print_report(report: &RunReport, format: Option<Format>) -> Result<()> {
    let text = match format.unwrap_or_else(default_format) {
        Format::Table => output::table(report),
        Format::Markdown => render_markdown(report),
        Format::Json => report.to_json(),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")?;
    Ok(())
}

fn confirm(config: &Config, preview: &JobResult) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        bail!("migrate changes Grafana; pass --yes to confirm when not on a terminal");
    }
    eprintln!("{}", output::table(&preview.report));
    eprint!("Apply these changes to {}? [y/N] ", config.grafana.url);
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

fn progress_bar(len: usize) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || len == 0 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} use cases {msg}")
        .expect("the template is valid");
    bar.set_style(style);
    Some(bar)
}

/// Prints a plan or migrate result in the chosen format; JSON also
/// carries the plan's steps.
///
/// # Errors
/// When stdout cannot be written.
pub fn print_result(result: &JobResult, format: Option<Format>) -> Result<()> {
    if format.unwrap_or_else(default_format) != Format::Json {
        return print_report(&result.report, format);
    }
    let both = serde_json::json!({"report": result.report, "plan": result.plan});
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&both)?
    )?;
    Ok(())
}

/// A table on a terminal, Markdown otherwise.
fn default_format() -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        Format::Markdown
    }
}

fn report(cli: &Cli, args: &ReportArgs) -> Result<Exit> {
    let config = load(cli)?;
    let report: RunReport = app::reports(&config).load(args.run)?;
    let text = match args.format {
        Format::Json => report.to_json(),
        Format::Markdown => render_markdown(&report),
        Format::Table => output::table(&report),
    };
    outln!("{text}")?;
    Ok(Exit::Done)
}

async fn check(cli: &Cli) -> Result<Exit> {
    let config = load(cli)?;
    outln!("ok    config {} parsed", config.origin.display())?;
    for warning in config.warnings() {
        outln!("warn  {warning}")?;
    }
    let client = app::client(&config)?;
    let health = client.health().await.context("grafana is not reachable")?;
    outln!(
        "ok    grafana at {} answers (database {})",
        config.grafana.url,
        health.database
    )?;
    let filter = app::org_filter(&config, &[]);
    let inventory_orgs = crate::inventory::reachable_orgs(&client)
        .await
        .context("the credentials were refused or lack access")?;
    let caps = client
        .capabilities(inventory_orgs.0.first().map_or(0, |o| o.id))
        .await?;
    match caps.version {
        Some(v) => outln!("ok    grafana {v}")?,
        None => outln!(
            "ok    grafana version hidden; probed: key API present = {}",
            caps.has_keys_api
        )?,
    }
    let selected: Vec<_> = inventory_orgs
        .0
        .iter()
        .filter(|o| filter.selects(o))
        .collect();
    if inventory_orgs.1 == crate::inventory::OrgScope::TokenOrg {
        outln!("warn  authenticated with a token: only its own org is reachable")?;
    }
    let mut failed = false;
    for org in selected {
        match client.current_org(org.id).await {
            Ok(current) if current.id == org.id => {
                let name = output::escape(&org.name);
                outln!("ok    org {} ({name}) reachable", org.id)?;
            }
            Ok(current) => {
                failed = true;
                outln!(
                    "FAIL  org {}: grafana acts in org {} instead; add the user to it",
                    org.id,
                    current.id
                )?;
            }
            Err(e) => {
                failed = true;
                let error = output::escape(&e.to_string()).into_owned();
                outln!("FAIL  org {}: {error}", org.id)?;
            }
        }
    }
    Ok(if failed { Exit::Attention } else { Exit::Done })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::sample;

    // Only members reissued in this run count as delivered secrets; a
    // kept secret, a skip and a planned reissue do not.
    #[test]
    fn delivered_counts_reissued_members() {
        let mut report = sample(1);
        assert_eq!(delivered(&report), 0, "the sample delivers nothing");

        let members = &mut report.orgs[0].use_cases[0].members;
        members[1].detail = "token reissued and delivered".into();
        assert_eq!(delivered(&report), 1, "member 43 was reissued");

        let members = &mut report.orgs[0].use_cases[0].members;
        members[1].status = MemberStatus::Failed;
        assert_eq!(delivered(&report), 0, "a failed reissue delivers nothing");
    }
}
