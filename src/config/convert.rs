//! Conversion of the raw file into typed, validated sections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use reqwest::Url;

use super::credential::{self, SecretKeys};
use super::defaults as def;
use super::error::{ConfigError, Problem};
use super::raw::*;
use super::sections::*;
use super::value::{parse_duration, Choice};
use super::{Config, Environment};
use crate::role::Role;
use crate::schedule::Schedule;
use crate::telemetry::LogFormat;

/// What conversion needs besides the raw values.
pub struct Ctx<'a> {
    /// The config file, named in every error.
    pub path: &'a Path,
    /// Directory that relative paths resolve against.
    pub base: &'a Path,
    /// Environment for `*_env`, credentials and state directories.
    pub env: &'a Environment,
}

impl Ctx<'_> {
    /// An error about `key` in this file.
    pub fn err(&self, key: impl Into<String>, problem: Problem) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            key: key.into(),
            problem,
        }
    }

    /// Resolves a path written in the config against its directory.
    pub fn resolve_path(&self, value: &str) -> PathBuf {
        self.base.join(value)
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| self.err(key, Problem::Missing))
    }

    fn duration(
        &self,
        key: &str,
        value: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(text) = value else {
            return Ok(default);
        };
        parse_duration(&text).map_err(|reason| {
            self.err(
                key,
                Problem::Duration {
                    value: text,
                    reason,
                },
            )
        })
    }

    fn positive_duration(
        &self,
        key: &str,
        value: Option<String>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let duration = self.duration(key, value.clone(), default)?;
        if duration.is_zero() {
            let value = value.unwrap_or_default();
            return Err(self.err(
                key,
                Problem::Rule {
                    value,
                    rule: "must be longer than zero",
                },
            ));
        }
        Ok(duration)
    }

    fn choice<T: Choice>(
        &self,
        key: &str,
        value: Option<String>,
        default: T,
    ) -> Result<T, ConfigError> {
        let Some(word) = value else {
            return Ok(default);
        };
        T::from_word(&word).ok_or_else(|| {
            let expected = T::expected();
            self.err(
                key,
                Problem::UnknownValue {
                    value: word,
                    expected,
                },
            )
        })
    }

    fn int(
        &self,
        key: &str,
        value: Option<i64>,
        default: i64,
        range: (i64, i64),
    ) -> Result<i64, ConfigError> {
        let value = value.unwrap_or(default);
        let (min, max) = range;
        if value < min || value > max {
            return Err(self.err(key, Problem::OutOfRange { value, min, max }));
        }
        Ok(value)
    }

    /// A path key, or the default file under the state directory.
    fn state_path(&self, value: Option<String>, default_name: &str) -> PathBuf {
        match value {
            Some(path) => self.resolve_path(&path),
            None => def::state_dir(self.env).join(default_name),
        }
    }
}

/// Converts the whole raw file.
pub fn config(ctx: &Ctx<'_>, raw: RawConfig) -> Result<Config, ConfigError> {
    Ok(Config {
        origin: ctx.path.to_path_buf(),
        grafana: grafana(ctx, raw.grafana)?,
        orgs: orgs(ctx, raw.orgs)?,
        use_cases: use_cases(ctx, raw.use_cases)?,
        migration: migration(ctx, raw.migration)?,
        sink: sink(ctx, raw.sink)?,
        ledger: LedgerConfig {
            path: ctx.state_path(raw.ledger.path, def::LEDGER_FILE_NAME),
        },
        reports: reports(ctx, raw.reports)?,
        cutover: cutover(ctx, raw.cutover)?,
        reconcile: reconcile(ctx, raw.reconcile)?,
        daemon: daemon(ctx, raw.daemon)?,
        log: log(ctx, raw.log)?,
    })
}

fn grafana(ctx: &Ctx<'_>, raw: RawGrafana) -> Result<GrafanaConfig, ConfigError> {
    let url = ctx.required("grafana.url", raw.url)?;
    let rps = ctx.int(
        "grafana.requests_per_second",
        raw.requests_per_second,
        def::REQUESTS_PER_SECOND,
        (0, 10_000),
    )?;
    let auth = ctx.required("grafana.auth", raw.auth)?;
    Ok(GrafanaConfig {
        url: grafana_url(ctx, url)?,
        ca_file: raw.ca_file.map(|p| ctx.resolve_path(&p)),
        timeout: ctx.positive_duration("grafana.timeout", raw.timeout, def::TIMEOUT)?,
        connect_timeout: ctx.positive_duration(
            "grafana.connect_timeout",
            raw.connect_timeout,
            def::CONNECT_TIMEOUT,
        )?,
        concurrency: ctx.int(
            "grafana.concurrency",
            raw.concurrency,
            def::CONCURRENCY,
            (1, 64),
        )? as usize,
        requests_per_second: (rps > 0).then_some(rps as u32),
        retry_budget: ctx.duration("grafana.retry_budget", raw.retry_budget, def::RETRY_BUDGET)?,
        max_retries: ctx.int(
            "grafana.max_retries",
            raw.max_retries,
            def::MAX_RETRIES,
            (0, 100),
        )? as u32,
        auth: grafana_auth(ctx, auth)?,
    })
}

fn grafana_url(ctx: &Ctx<'_>, text: String) -> Result<Url, ConfigError> {
    let key = "grafana.url";
    let mut url = Url::parse(&text).map_err(|source| {
        ctx.err(
            key,
            Problem::Url {
                value: text.clone(),
                error: source,
            },
        )
    })?;
    let refuse = |reason| ctx.err(key, Problem::UnusableUrl { reason });
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("the scheme must be http or https"));
    }
    if url.host().is_none() {
        return Err(refuse("it has no host"));
    }
    // Credentials in the URL would show up wherever the URL is logged.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse(
            "credentials belong in [grafana.auth], not in the url",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(refuse("it must not have a query or fragment"));
    }
    // Grafana served under a sub-path (root_url) needs the trailing slash
    // for `Url::join` to keep that path.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

fn grafana_auth(ctx: &Ctx<'_>, raw: RawAuth) -> Result<GrafanaAuth, ConfigError> {
    let kind = ctx.required("grafana.auth.kind", raw.kind.clone())?;
    match kind.as_str() {
        "basic" => basic_auth(ctx, raw),
        "token" => token_auth(ctx, raw),
        _ => Err(ctx.err(
            "grafana.auth.kind",
            Problem::UnknownValue {
                value: kind,
                expected: "basic, token".into(),
            },
        )),
    }
}

fn basic_auth(ctx: &Ctx<'_>, raw: RawAuth) -> Result<GrafanaAuth, ConfigError> {
    let token_keys = [
        ("token", &raw.token),
        ("token_env", &raw.token_env),
        ("token_file", &raw.token_file),
        ("token_credential", &raw.token_credential),
    ];
    reject_other_kind(ctx, &token_keys, "token")?;
    let user = ctx.required("grafana.auth.user", raw.user)?;
    let password = credential::resolve(
        ctx,
        &SecretKeys {
            name: "password",
            inline: raw.password.as_deref(),
            env: raw.password_env.as_deref(),
            file: raw.password_file.as_deref(),
            credential: raw.password_credential.as_deref(),
        },
    )?;
    Ok(GrafanaAuth::Basic { user, password })
}

fn token_auth(ctx: &Ctx<'_>, raw: RawAuth) -> Result<GrafanaAuth, ConfigError> {
    let basic_keys = [
        ("user", &raw.user),
        ("password", &raw.password),
        ("password_env", &raw.password_env),
        ("password_file", &raw.password_file),
        ("password_credential", &raw.password_credential),
    ];
    reject_other_kind(ctx, &basic_keys, "basic")?;
    let token = credential::resolve(
        ctx,
        &SecretKeys {
            name: "token",
            inline: raw.token.as_deref(),
            env: raw.token_env.as_deref(),
            file: raw.token_file.as_deref(),
            credential: raw.token_credential.as_deref(),
        },
    )?;
    Ok(GrafanaAuth::Token { token })
}

/// Refuses keys that belong to the other kind of auth.
fn reject_other_kind(
    ctx: &Ctx<'_>,
    keys: &[(&str, &Option<String>)],
    kind: &'static str,
) -> Result<(), ConfigError> {
    match keys.iter().find(|(_, value)| value.is_some()) {
        Some((name, _)) => {
            Err(ctx.err(format!("grafana.auth.{name}"), Problem::WrongKind { kind }))
        }
        None => Ok(()),
    }
}

fn orgs(ctx: &Ctx<'_>, raw: RawOrgs) -> Result<OrgSelection, ConfigError> {
    let include = match raw.include {
        None => OrgFilter::All,
        Some(refs) => org_filter(ctx, "orgs.include", refs)?,
    };
    let exclude = match org_filter(ctx, "orgs.exclude", raw.exclude.unwrap_or_default())? {
        OrgFilter::All => {
            let rule = "would exclude every org; use include instead";
            return Err(ctx.err(
                "orgs.exclude",
                Problem::Rule {
                    value: "*".into(),
                    rule,
                },
            ));
        }
        OrgFilter::Only(refs) => refs,
    };
    Ok(OrgSelection { include, exclude })
}

/// Converts a list of org refs; `"*"` anywhere means all orgs.
fn org_filter(ctx: &Ctx<'_>, key: &str, refs: Vec<RawOrgRef>) -> Result<OrgFilter, ConfigError> {
    if refs.iter().any(|r| *r == RawOrgRef::Name("*".into())) {
        return Ok(OrgFilter::All);
    }
    let mut out = Vec::with_capacity(refs.len());
    for (i, r) in refs.into_iter().enumerate() {
        out.push(match r {
            RawOrgRef::Id(id) if id < 1 => {
                let problem = Problem::OutOfRange {
                    value: id,
                    min: 1,
                    max: i64::MAX,
                };
                return Err(ctx.err(format!("{key}[{i}]"), problem));
            }
            RawOrgRef::Id(id) => OrgRef::Id(id),
            RawOrgRef::Name(name) => OrgRef::Name(name),
        });
    }
    Ok(OrgFilter::Only(out))
}

fn use_cases(ctx: &Ctx<'_>, raw: Vec<RawUseCase>) -> Result<Vec<UseCaseRule>, ConfigError> {
    let mut rules: Vec<UseCaseRule> = Vec::with_capacity(raw.len());
    for (i, raw_rule) in raw.into_iter().enumerate() {
        let key = format!("use_case[{i}]");
        let rule = use_case(ctx, &key, raw_rule)?;
        let clash = rules
            .iter()
            .position(|other| other.name == rule.name && filters_overlap(&other.orgs, &rule.orgs));
        if let Some(j) = clash {
            let problem = Problem::Duplicate {
                name: rule.name,
                other: format!("use_case[{j}]"),
            };
            return Err(ctx.err(format!("{key}.name"), problem));
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// True when two org filters may select the same org.
///
/// An id and a name cannot be compared before discovery, so only equal
/// references count as overlapping here.
fn filters_overlap(a: &OrgFilter, b: &OrgFilter) -> bool {
    match (a, b) {
        (OrgFilter::Only(a), OrgFilter::Only(b)) => a.iter().any(|r| b.contains(r)),
        _ => true,
    }
}

fn use_case(ctx: &Ctx<'_>, key: &str, raw: RawUseCase) -> Result<UseCaseRule, ConfigError> {
    let name_key = format!("{key}.name");
    let name = ctx.required(&name_key, raw.name)?;
    check_use_case_name(ctx, &name_key, &name)?;

    let match_key = format!("{key}.match");
    let pattern_text = ctx.required(&match_key, raw.pattern)?;
    let pattern = Regex::new(&pattern_text).map_err(|source| {
        ctx.err(
            &match_key,
            Problem::Regex {
                error: Box::new(source),
            },
        )
    })?;

    let orgs = match raw.orgs {
        None => OrgFilter::All,
        Some(refs) => org_filter(ctx, &format!("{key}.orgs"), refs)?,
    };
    let role = raw
        .role
        .map(|text| parse_role(ctx, &format!("{key}.role"), text))
        .transpose()?;
    Ok(UseCaseRule {
        name,
        pattern,
        orgs,
        role,
    })
}

fn check_use_case_name(ctx: &Ctx<'_>, key: &str, name: &str) -> Result<(), ConfigError> {
    let rule = if name.trim().is_empty() {
        Some("must not be empty")
    } else if name.trim() != name {
        Some("must not start or end with whitespace")
    } else if name.starts_with("extsvc-") {
        // Grafana and plugins manage extsvc-* accounts.
        Some("must not start with extsvc-, Grafana manages those accounts")
    } else if name.starts_with("sa-autogen-") {
        // Discovery treats sa-autogen-* accounts as source credentials.
        Some("must not start with sa-autogen-, keyshift migrates those accounts")
    } else {
        None
    };
    match rule {
        Some(rule) => Err(ctx.err(
            key,
            Problem::Rule {
                value: name.to_string(),
                rule,
            },
        )),
        None => Ok(()),
    }
}

fn parse_role(ctx: &Ctx<'_>, key: &str, text: String) -> Result<Role, ConfigError> {
    text.parse().map_err(|_| {
        let expected = "None, Viewer, Editor, Admin".to_string();
        ctx.err(
            key,
            Problem::UnknownValue {
                value: text,
                expected,
            },
        )
    })
}

fn migration(ctx: &Ctx<'_>, raw: RawMigration) -> Result<MigrationConfig, ConfigError> {
    let prefix = raw
        .token_name_prefix
        .unwrap_or_else(|| def::TOKEN_NAME_PREFIX.into());
    let valid = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        let rule = "must be 1 to 32 letters, digits, '-' or '_'";
        let problem = Problem::Rule {
            value: prefix,
            rule,
        };
        return Err(ctx.err("migration.token_name_prefix", problem));
    }
    Ok(MigrationConfig {
        keep_secrets: raw.keep_secrets.unwrap_or(def::KEEP_SECRETS),
        expired: ctx.choice("migration.expired", raw.expired, def::EXPIRED)?,
        lifetime_limit: ctx.choice(
            "migration.lifetime_limit",
            raw.lifetime_limit,
            def::LIFETIME_LIMIT,
        )?,
        token_name_prefix: prefix,
        new_credentials: raw.new_credentials.unwrap_or(def::MIGRATE_NEW_CREDENTIALS),
        max_token_lifetime: match raw.max_token_lifetime {
            None => None,
            Some(text) => Some(ctx.positive_duration(
                "migration.max_token_lifetime",
                Some(text),
                Duration::ZERO,
            )?),
        },
    })
}

fn sink(ctx: &Ctx<'_>, raw: RawSink) -> Result<SinkConfig, ConfigError> {
    let kind = raw.kind.clone().unwrap_or_else(|| def::SINK_KIND.into());
    match kind.as_str() {
        "directory" => directory_sink(ctx, raw),
        "exec" => exec_sink(ctx, raw),
        _ => Err(ctx.err(
            "sink.kind",
            Problem::UnknownValue {
                value: kind,
                expected: "directory, exec".into(),
            },
        )),
    }
}

fn directory_sink(ctx: &Ctx<'_>, raw: RawSink) -> Result<SinkConfig, ConfigError> {
    if raw.command.is_some() {
        return Err(ctx.err("sink.command", Problem::WrongKind { kind: "exec" }));
    }
    if raw.timeout.is_some() {
        return Err(ctx.err("sink.timeout", Problem::WrongKind { kind: "exec" }));
    }
    let path = ctx.state_path(raw.path, def::SINK_DIR_NAME);
    Ok(SinkConfig::Directory { path })
}

fn exec_sink(ctx: &Ctx<'_>, raw: RawSink) -> Result<SinkConfig, ConfigError> {
    if raw.path.is_some() {
        return Err(ctx.err("sink.path", Problem::WrongKind { kind: "directory" }));
    }
    let mut command = ctx.required("sink.command", raw.command)?;
    let Some(program) = command.first_mut().filter(|p| !p.is_empty()) else {
        let rule = "must start with the program to run";
        return Err(ctx.err(
            "sink.command",
            Problem::Rule {
                value: String::new(),
                rule,
            },
        ));
    };
    // A bare name is looked up in PATH; a relative path is the config's.
    if program.contains('/') {
        *program = ctx.resolve_path(program).to_string_lossy().into_owned();
    }
    let timeout = ctx.positive_duration("sink.timeout", raw.timeout, def::EXEC_TIMEOUT)?;
    Ok(SinkConfig::Exec { command, timeout })
}

fn reports(ctx: &Ctx<'_>, raw: RawReports) -> Result<ReportsConfig, ConfigError> {
    Ok(ReportsConfig {
        dir: ctx.state_path(raw.dir, def::REPORTS_DIR_NAME),
        keep: ctx.int("reports.keep", raw.keep, def::REPORTS_KEEP, (1, 1_000_000))? as u32,
        max_age: ctx.positive_duration("reports.max_age", raw.max_age, def::REPORTS_MAX_AGE)?,
    })
}

fn cutover(ctx: &Ctx<'_>, raw: RawCutover) -> Result<CutoverConfig, ConfigError> {
    let default_versions = || def::DISTRUST_LAST_USED.map(String::from).to_vec();
    let versions = raw.distrust_last_used.unwrap_or_else(default_versions);
    let version_re = Regex::new(r"^\d+(\.\d+){0,2}$").expect("static regex");
    if let Some(i) = versions.iter().position(|v| !version_re.is_match(v)) {
        let rule = "is not a version such as \"10.1\" or \"10.2.3\"";
        let problem = Problem::Rule {
            value: versions[i].clone(),
            rule,
        };
        return Err(ctx.err(format!("cutover.distrust_last_used[{i}]"), problem));
    }
    Ok(CutoverConfig {
        policy: ctx.choice("cutover.policy", raw.policy, def::CUTOVER_POLICY)?,
        unused_for: ctx.positive_duration("cutover.unused_for", raw.unused_for, def::UNUSED_FOR)?,
        grace: ctx.duration("cutover.grace", raw.grace, def::GRACE)?,
        distrust_last_used: versions,
    })
}

fn reconcile(ctx: &Ctx<'_>, raw: RawReconcile) -> Result<ReconcileConfig, ConfigError> {
    let text = raw.schedule.unwrap_or_else(|| def::SCHEDULE.into());
    let schedule = Schedule::parse(&text).map_err(|source| {
        ctx.err(
            "reconcile.schedule",
            Problem::Cron {
                value: text.clone(),
                error: Box::new(source),
            },
        )
    })?;
    Ok(ReconcileConfig {
        schedule,
        expiring_within: ctx.duration(
            "reconcile.expiring_within",
            raw.expiring_within,
            def::EXPIRING_WITHIN,
        )?,
        reenable_disabled: raw.reenable_disabled.unwrap_or(def::REENABLE_DISABLED),
        token_limit: raw
            .token_limit
            .map(|n| ctx.int("reconcile.token_limit", Some(n), n, (1, 1_000_000)))
            .transpose()?
            .map(|n| n as usize),
        repair: repair(ctx, raw.repair)?,
    })
}

fn repair(ctx: &Ctx<'_>, raw: RawRepair) -> Result<RepairPolicy, ConfigError> {
    let key = |name: &str| format!("reconcile.repair.{name}");
    Ok(RepairPolicy {
        role_changed: ctx.choice(
            &key("role_changed"),
            raw.role_changed,
            def::REPAIR_ROLE_CHANGED,
        )?,
        name_changed: ctx.choice(
            &key("name_changed"),
            raw.name_changed,
            def::REPAIR_NAME_CHANGED,
        )?,
        token_missing: ctx.choice(
            &key("token_missing"),
            raw.token_missing,
            def::REPAIR_TOKEN_MISSING,
        )?,
        token_expiring: ctx.choice(
            &key("token_expiring"),
            raw.token_expiring,
            def::REPAIR_TOKEN_EXPIRING,
        )?,
        new_credentials: ctx.choice(
            &key("new_credentials"),
            raw.new_credentials,
            def::REPAIR_NEW_CREDENTIALS,
        )?,
        sa_deleted: ctx.choice(&key("sa_deleted"), raw.sa_deleted, def::REPAIR_SA_DELETED)?,
    })
}

fn daemon(ctx: &Ctx<'_>, raw: RawDaemon) -> Result<DaemonConfig, ConfigError> {
    let metrics_listen = raw
        .metrics_listen
        .map(|text| {
            text.parse::<SocketAddr>().map_err(|_| {
                ctx.err(
                    "daemon.metrics_listen",
                    Problem::SocketAddr {
                        value: text.clone(),
                    },
                )
            })
        })
        .transpose()?;
    Ok(DaemonConfig {
        metrics_listen,
        catch_up: raw.catch_up.unwrap_or(def::CATCH_UP),
        watchdog: raw.watchdog.unwrap_or(def::WATCHDOG),
    })
}

fn log(ctx: &Ctx<'_>, raw: RawLog) -> Result<LogConfig, ConfigError> {
    Ok(LogConfig {
        format: ctx.choice::<LogFormat>("log.format", raw.format, def::LOG_FORMAT)?,
        level: ctx.choice("log.level", raw.level, def::LOG_LEVEL)?,
    })
}
