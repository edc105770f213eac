//! `keyshift rehearse`: the whole job against a simulated Grafana.
//!
//! Starts grafana-sim in-process with a built-in sample estate, then
//! plans, migrates, plans again and reconciles, writing only under one
//! directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use chrono::{Duration, Utc};
use clap::Args;
use grafana_sim::estate::{EstateKey, EstateOrg, EstateServiceAccount, EstateToken};
use grafana_sim::{Estate, Profile, Role as SimRole, SimConfig};

use crate::cli::{out, outln, print_result, Exit, Format};
use crate::config::Config;
use crate::daemon::StopToken;
use crate::inventory::AUTOGEN_PREFIX;
use crate::reconcile::Reconciler;
use crate::{app, output};

/// `keyshift rehearse`.
#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// Grafana version to simulate: a profile (9.1 ... 12.1) or a version
    #[arg(long, default_value = "11.5")]
    pub profile: String,
    /// Directory for the config, ledger, reports and token files
    /// [default: a new directory under the system's temporary directory]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Output format of the plans
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs the rehearsal.
///
/// # Errors
/// When the simulator or a step of the job fails.
pub async fn run(args: &RehearseArgs) -> Result<Exit> {
    let profile: Profile = args.profile.parse().context("--profile")?;
    let dir = workspace(args.dir.as_deref())?;
    let password = format!(
        "rehearsal-{:x}",
        Utc::now().timestamp_nanos_opt().unwrap_or(0)
    );
    let mut sim_config = SimConfig::new(profile).with_estate(sample_estate());
    sim_config.admin_password = password.clone();
    if args.profile != profile.name() {
        // A version was given rather than a profile: report it as such.
        let full = match args.profile.split('.').count() {
            2 => format!("{}.0", args.profile),
            _ => args.profile.clone(),
        };
        sim_config.version = Some(full);
    }
    // The version /api/health will report, for the headings.
    let version = sim_config
        .version
        .clone()
        .unwrap_or_else(|| profile.default_version().to_string());
    let sim = grafana_sim::start(sim_config)
        .await
        .context("cannot start the simulator")?;
    if profile >= Profile::V11_6 {
        // Grafana 11.6+ converted every key when it started.
        let estate = sim.export_estate();
        let autogen = |a: &&EstateServiceAccount| a.name.starts_with(AUTOGEN_PREFIX);
        let converted = estate.service_accounts.iter().filter(autogen);
        outln!(
            "Grafana {version} converted the estate's keys into {} sa-autogen-* accounts at startup\n",
            converted.count()
        )?;
    }
    let config = write_config(&dir, &sim.url(), &password)?;
    let job = app::job(&config, &[], "rehearse")?;
    outln!("== Plan (Grafana {version} simulated at {})\n", sim.url())?;
    let plan = job.plan().await?;
    app::reports(&config).write(&plan.report)?;
    print_result(&plan, Some(args.format))?;
    outln!("== Migrate\n")?;
    let migrated = job.migrate(None).await?;
    let report = app::reports(&config).write(&migrated.report)?;
    out!("{}", output::summary(&migrated.report))?;
    outln!("\n== Plan again\n")?;
    let after = job.plan().await?;
    app::reports(&config).write(&after.report)?;
    print_result(&after, Some(args.format))?;
    let left = after.plan.has_changes();
    outln!(
        "{}",
        if left {
            "changes remain"
        } else {
            "nothing left to do"
        }
    )?;
    outln!("\n== Reconcile (report only)\n")?;
    let reconciler = Reconciler {
        job: job.clone(),
        settings: app::reconcile_settings(&config),
        repair: false,
        now: Arc::new(Utc::now),
    };
    let reconciled = reconciler.run(&StopToken::never()).await?;
    let reconcile_report = app::reports(&config).write(&reconciled.report)?;
    out!("{}", output::summary(&reconciled.report))?;
    outln!(
        "\nreports: {} and {}\nledger: {}\ntokens: {}\nconfig: {}",
        report.display(),
        reconcile_report.display(),
        config.ledger.path.display(),
        dir.join("tokens").display(),
        config.origin.display()
    )?;
    sim.shutdown().await;
    Ok(if left { Exit::Attention } else { Exit::Done })
}

/// Files a rehearsal writes into its directory.
const REHEARSAL_FILES: [&str; 6] = [
    "config.toml",
    "admin-password",
    "ledger.sqlite",
    "ledger.sqlite-wal",
    "ledger.sqlite-shm",
    "ledger.sqlite.lock",
];

/// Directories a rehearsal writes into its directory.
const REHEARSAL_DIRS: [&str; 2] = ["reports", "tokens"];

/// The first line of the config a rehearsal writes.
const CONFIG_HEADER: &str = "# Written by keyshift rehearse.";

fn workspace(dir: Option<&Path>) -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    match dir {
        Some(dir) => {
            // The ledger of an earlier rehearsal names its simulator's
            // port, so a new rehearsal starts from an empty directory.
            if dir.exists() {
                clear_earlier_rehearsal(dir)?;
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(dir.to_path_buf())
        }
        None => Ok(tempfile::Builder::new()
            .prefix("keyshift-rehearsal-")
            .tempdir()?
            .keep()),
    }
}

/// Removes what an earlier rehearsal wrote into `dir`, and nothing else.
///
/// # Errors
/// When `dir` holds anything a rehearsal does not write, or an entry
/// cannot be removed; nothing is removed then.
fn clear_earlier_rehearsal(dir: &Path) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut ours = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        if !is_rehearsal_entry(&path)? {
            anyhow::bail!(
                "{} holds {}, which no rehearsal wrote; \
                 give --dir an empty or new directory",
                dir.display(),
                path.display()
            );
        }
        ours.push(path);
    }
    // Only a directory an earlier rehearsal wrote, config included, is
    // cleared: a ledger, reports or tokens without it may be a real
    // state directory, whose secrets exist nowhere else.
    let marked = dir.join("config.toml").is_file();
    if !ours.is_empty() && !marked {
        anyhow::bail!(
            "{} holds a ledger, reports or tokens but no rehearsal config: it may be a real \
             state directory; give --dir an empty or new directory",
            dir.display()
        );
    }
    for path in ours {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Whether `path` is a file or directory a rehearsal writes; a symlink
/// never is, and a config must carry the rehearsal's header.
fn is_rehearsal_entry(path: &Path) -> Result<bool> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let kind = std::fs::symlink_metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .file_type();
    if kind.is_dir() {
        return Ok(REHEARSAL_DIRS.contains(&name));
    }
    if !kind.is_file() || !REHEARSAL_FILES.contains(&name) {
        return Ok(false);
    }
    if name != "config.toml" {
        return Ok(true);
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(text.starts_with(CONFIG_HEADER))
}

fn write_config(dir: &Path, url: &str, password: &str) -> Result<Config> {
    write_private(&dir.join("admin-password"), password)?;
    let text = format!(
        r#"{CONFIG_HEADER}
[grafana]
url = "{url}"
concurrency = 4

[grafana.auth]
kind = "basic"
user = "admin"
password_file = "admin-password"

{RULES}
[sink]
kind = "directory"
path = "tokens"

[ledger]
path = "ledger.sqlite"

[reports]
dir = "reports"
"#
    );
    let path = dir.join("config.toml");
    write_private(&path, &text)?;
    Ok(Config::load(&path)?)
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// The use-case rules of the rehearsal.
const RULES: &str = r#"[[use_case]]
name = "ci-deploy"
match = "^ci-deploy-"

[[use_case]]
name = "prometheus-exporter"
match = "^prometheus-exporter-"

[[use_case]]
name = "terraform"
match = "^terraform-"
role = "Admin"

[[use_case]]
name = "loki-push"
match = "^loki-push-"

[[use_case]]
name = "etl"
match = "^etl-"

[[use_case]]
name = "reporting"
match = "^report-"

[[use_case]]
name = "k8s-sidecar"
match = "^k8s-sidecar-"

[[use_case]]
name = "metrics"
match = "^metrics-"
"#;

/// The built-in sample estate: three orgs, 44 credentials, and the
/// situations a real estate has (see the comments in the body).
pub fn sample_estate() -> Estate {
    let mut keys = Vec::new();
    let mut add = |org, name: &str, role, used_days: Option<i64>, expires_days: Option<i64>| {
        keys.push(key(org, name, role, used_days, expires_days));
    };
    // Org 1: groups that share a use case, singles, a name collision.
    for (i, used) in [
        (1, Some(20)),
        (2, Some(1)),
        (3, None),
        (4, Some(90)),
        (5, Some(3)),
    ] {
        add(1, &format!("ci-deploy-{i}"), SimRole::Editor, used, None);
    }
    for env in ["prod", "staging", "dev"] {
        add(
            1,
            &format!("prometheus-exporter-{env}"),
            SimRole::Viewer,
            Some(0),
            None,
        );
    }
    add(1, "terraform-core", SimRole::Admin, Some(2), None);
    add(1, "terraform-network", SimRole::Editor, Some(9), None);
    add(1, "grafana-backup", SimRole::Admin, Some(1), None);
    add(1, "oncall", SimRole::Admin, Some(4), None); // collides with a foreign account
    add(
        1,
        "old-dashboard-sync",
        SimRole::Viewer,
        Some(400),
        Some(-30),
    ); // expired
    add(1, "nightly-report", SimRole::Viewer, Some(1), Some(3)); // expires soon
    add(1, "status-page", SimRole::Viewer, None, Some(60));
    add(1, "legacy-importer", SimRole::Editor, Some(200), Some(-1)); // expired
                                                                     // Org 2: more groups, one expiring within days.
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        add(
            2,
            &format!("ci-deploy-{name}"),
            SimRole::Editor,
            Some(i as i64 * 5),
            None,
        );
    }
    for i in 1..=3 {
        add(
            2,
            &format!("loki-push-{i}"),
            SimRole::Editor,
            Some(i),
            Some(45),
        );
    }
    add(2, "alert-webhook", SimRole::Viewer, Some(7), None);
    add(2, "k8s-sidecar-east", SimRole::Viewer, Some(0), Some(2));
    add(2, "k8s-sidecar-west", SimRole::Viewer, Some(1), Some(200));
    add(2, "quarterly-audit", SimRole::Viewer, None, Some(60));
    add(2, "expired-exporter", SimRole::Viewer, Some(100), Some(-10));
    // Org 3: a mixed-role group (a conflict until a role is chosen).
    for i in 1..=4 {
        add(3, &format!("etl-job-{i}"), SimRole::Editor, Some(i), None);
    }
    for name in ["daily", "weekly", "monthly"] {
        add(3, &format!("report-{name}"), SimRole::Viewer, Some(2), None);
    }
    add(3, "metrics-reader", SimRole::Viewer, Some(1), None);
    add(3, "metrics-writer", SimRole::Editor, Some(1), None);
    add(3, "adhoc-notebook", SimRole::Viewer, None, None);
    add(3, "data-export", SimRole::Editor, Some(30), Some(10));
    add(3, "ml-pipeline", SimRole::Editor, Some(5), None);
    Estate {
        orgs: vec![org(1, "Main Org."), org(2, "platform"), org(3, "analytics")],
        users: Vec::new(),
        api_keys: keys,
        service_accounts: vec![
            // Made by hand, not keyshift's: its name blocks use case "oncall".
            account(1, "oncall", false, "oncall-manual"),
            // Foreign and unrelated: left alone.
            account(1, "human-made-bot", false, "bot-token"),
            // Managed by a plugin: never touched, token name reserved.
            account(
                1,
                "extsvc-grafana-oncall-app",
                true,
                "extsvc-token-grafana-oncall-app",
            ),
        ],
    }
}

fn org(id: i64, name: &str) -> EstateOrg {
    EstateOrg {
        id,
        name: name.into(),
    }
}

fn key(
    org: i64,
    name: &str,
    role: SimRole,
    used_days: Option<i64>,
    expires_days: Option<i64>,
) -> EstateKey {
    let now = Utc::now();
    EstateKey {
        id: None,
        org,
        name: name.into(),
        role,
        created: Some(now - Duration::days(500)),
        expires: expires_days.map(|d| now + Duration::days(d)),
        last_used: used_days.map(|d| now - Duration::days(d)),
        secret: None,
        secret_hash: None,
    }
}

fn account(org: i64, name: &str, external: bool, token: &str) -> EstateServiceAccount {
    EstateServiceAccount {
        id: None,
        uid: None,
        org,
        name: name.into(),
        login: None,
        role: SimRole::Editor,
        disabled: false,
        external,
        permissions: Vec::new(),
        created: None,
        tokens: vec![EstateToken {
            id: None,
            name: token.into(),
            secret: None,
            secret_hash: None,
            created: None,
            expires: None,
            last_used: None,
            revoked: false,
        }],
    }
}
