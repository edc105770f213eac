//! The keyshift binary as an administrator runs it: flags, output, exit
//! codes.

use std::process::Output;

use grafana_sim::{Profile, Role};

use crate::support::{within, EstateBuilder, Fixture};

/// Runs the keyshift binary with `args`, off the test's runtime threads.
async fn keyshift(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyshift"));
    command
        .args(args)
        .env_remove("KEYSHIFT_CONFIG")
        .env_remove("RUST_LOG");
    within("keyshift", command.output())
        .await
        .expect("keyshift runs")
}

fn text(output: &Output) -> String {
    let mut all = String::from_utf8_lossy(&output.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&output.stderr));
    all
}

async fn fixture() -> Fixture {
    let mut estate = EstateBuilder::orgs(2);
    estate.key(1, "ci-a", Role::Editor);
    estate.key(1, "ci-b", Role::Editor);
    estate.key(2, "solo", Role::Viewer);
    Fixture::start(Profile::V10_4, estate.build()).await
}

// plan exits 2 when there is something to do, migrate refuses to act
// without confirmation when not on a terminal, migrate --yes exits 0, a
// second plan exits 0, and report prints the migrate run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_migrate_report_exit_codes() {
    let fixture = fixture().await;
    let config = fixture.config("[[use_case]]\nname = \"ci\"\nmatch = \"^ci-\"\n");
    let path = config.origin.to_str().unwrap();

    let plan = keyshift(&["plan", "--config", path, "--format", "json"]).await;
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan prints JSON");
    assert_eq!(json["report"]["counts"]["planned"], 3);

    let refused = keyshift(&["migrate", "--config", path]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("--yes"), "{}", text(&refused));
    assert_eq!(
        fixture.sim.write_count(),
        0,
        "nothing changed without confirmation"
    );

    let migrated = keyshift(&["migrate", "--config", path, "--yes", "--format", "markdown"]).await;
    assert_eq!(migrated.status.code(), Some(0), "{}", text(&migrated));
    assert!(text(&migrated).contains("report: "));
    let sink_line = "1 new secret went to the directory";
    assert!(text(&migrated).contains(sink_line), "{}", text(&migrated));

    let again = keyshift(&["plan", "--config", path, "--format", "table"]).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));

    let report = keyshift(&["report", "--config", path]).await;
    assert_eq!(report.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&report.stdout).contains("migrate"));
}

// config check reads only, says what it checked, and exits 0; a config
// error names the file and the key and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_check_and_config_errors() {
    let fixture = fixture().await;
    let config = fixture.config("");
    let path = config.origin.to_str().unwrap();
    let check = keyshift(&["config", "check", "--config", path]).await;
    assert_eq!(check.status.code(), Some(0), "{}", text(&check));
    let out = text(&check);
    assert!(
        out.contains("grafana 10.4") && out.contains("org 2 (org-2) reachable"),
        "{out}"
    );
    assert_eq!(fixture.sim.write_count(), 0);

    let bad = fixture.dir.path().join("bad.toml");
    let original = std::fs::read_to_string(&config.origin).unwrap();
    std::fs::write(&bad, original.replace("concurrency = 4", "concurency = 4")).unwrap();
    let failed = keyshift(&["plan", "--config", bad.to_str().unwrap()]).await;
    assert_eq!(failed.status.code(), Some(1));
    let out = text(&failed);
    assert!(
        out.contains("bad.toml") && out.contains("concurency"),
        "{out}"
    );
}

// A wrong password stops the run at once with exit 1, after one request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_not_retried() {
    let fixture = fixture().await;
    let config = fixture.config("");
    std::fs::write(fixture.dir.path().join("admin-password"), "wrong").unwrap();
    let path = config.origin.to_str().unwrap();
    let plan = keyshift(&["plan", "--config", path]).await;
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    let rejected = fixture
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(rejected, 1, "a rejected password is never retried");
    assert!(!text(&plan).contains("wrong"), "the password is not echoed");
}

// Usage errors exit 1 with clap's message (2 means "needs attention");
// --help and --version print to stdout and exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_1_help_exits_0() {
    let usage_errors: [&[&str]; 4] = [
        &["report", "abc"],
        &["plan", "--format", "yaml"],
        &["plan", "--no-such-flag"],
        &[],
    ];
    for args in usage_errors {
        let out = keyshift(args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // No command at all shows the help, on stderr as an error.
        let explained = stderr.starts_with("error: ") || stderr.contains("Usage:");
        assert!(explained, "{args:?}: {stderr}");
    }
    for args in [["--help"], ["--version"]] {
        let out = keyshift(&args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("keyshift"), "{args:?}: {stdout}");
    }
}

/// The report files of `kind` in the fixture's report directory.
fn reports_of(fixture: &Fixture, kind: &str) -> usize {
    let dir = fixture.dir.path().join("reports");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let suffix = format!("-{kind}.json");
    entries
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(&suffix)
        })
        .count()
}

// Every run writes a report and names it on stderr: plan, migrate
// --dry-run, and the plan every migrate previews.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_runs_write_reports() {
    let fixture = fixture().await;
    let config = fixture.config("[[use_case]]\nname = \"ci\"\nmatch = \"^ci-\"\n");
    let path = config.origin.to_str().unwrap();
    let runs: [&[&str]; 2] = [&["plan"], &["migrate", "--dry-run"]];
    for (n, args) in runs.into_iter().enumerate() {
        let out = keyshift(&[args, &["--config", path]].concat()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("report: "), "{args:?}: {stderr}");
        assert_eq!(reports_of(&fixture, "plan"), n + 1, "{args:?}");
    }

    let migrated = keyshift(&["migrate", "--config", path, "--yes"]).await;
    assert_eq!(migrated.status.code(), Some(0), "{}", text(&migrated));
    let noop = keyshift(&["migrate", "--config", path, "--yes"]).await;
    assert_eq!(noop.status.code(), Some(0), "{}", text(&noop));
    assert!(text(&noop).contains("report: "), "{}", text(&noop));
    // Both migrates' previews are plan runs with reports of their own.
    assert_eq!(reports_of(&fixture, "plan"), 4, "every preview plan");
}

// A reader that closes the pipe early (`keyshift plan | head -1`) ends
// the command quietly with exit 0: no panic, no "Broken pipe" message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_pipe_is_a_quiet_success() {
    let fixture = fixture().await;
    let config = fixture.config("[[use_case]]\nname = \"ci\"\nmatch = \"^ci-\"\n");
    let path = config.origin.to_str().unwrap();
    let runs: [&[&str]; 3] = [
        &["plan", "--format", "table"],
        &["plan", "--format", "json"],
        &["report", "--format", "markdown"],
    ];
    for args in runs {
        // The read end is closed before keyshift starts: every write fails.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyshift"));
        command.args(args).args(["--config", path]);
        command.env_remove("KEYSHIFT_CONFIG").env_remove("RUST_LOG");
        command.stdout(writer).stderr(std::process::Stdio::piped());
        // output() would replace stdout with a pipe of its own.
        let child = command.spawn().expect("keyshift starts");
        let out = within("keyshift", child.wait_with_output()).await.unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

// A migrate that keeps every secret delivers none and says nothing
// about the sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sink_message_without_deliveries() {
    let fixture = fixture().await;
    // Without rules every key is its own use case and keeps its secret.
    let config = fixture.config("");
    let path = config.origin.to_str().unwrap();
    let migrated = keyshift(&["migrate", "--config", path, "--yes"]).await;
    assert_eq!(migrated.status.code(), Some(0), "{}", text(&migrated));
    assert!(text(&migrated).contains("report: "), "{}", text(&migrated));
    assert!(
        !text(&migrated).contains("went to the"),
        "{}",
        text(&migrated)
    );
}

// An unusable sink stops migrate with its cause said once, not repeated
// by each error that wraps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_error_is_said_once() {
    use std::os::unix::fs::PermissionsExt;
    let fixture = fixture().await;
    let config = fixture.config("[[use_case]]\nname = \"ci\"\nmatch = \"^ci-\"\n");
    let tokens = fixture.dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = config.origin.to_str().unwrap();
    let out = keyshift(&["migrate", "--config", path, "--yes"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    assert_eq!(error.matches("has mode 755").count(), 1, "{error}");
}
