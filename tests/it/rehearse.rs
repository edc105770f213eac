//! `keyshift rehearse` on the built-in estate.

use keyshift::cli::{Exit, Format};
use keyshift::rehearse::{run, RehearseArgs};

use crate::support::within;

// The rehearsal runs plan, migrate and plan again on 11.5 and 12.1, ends
// with nothing left to do, and writes only under its directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearse_runs_on_the_builtin_estate() {
    for profile in ["11.5", "12.1"] {
        let dir = tempfile::tempdir().unwrap();
        let args = RehearseArgs {
            profile: profile.into(),
            dir: Some(dir.path().join("work")),
            format: Format::Markdown,
        };
        let exit = within("rehearsal", run(&args))
            .await
            .expect("rehearsal runs");
        assert_eq!(exit, Exit::Done, "{profile}");
        let work = dir.path().join("work");
        assert!(work.join("ledger.sqlite").exists());
        let reports: Vec<_> = std::fs::read_dir(work.join("reports")).unwrap().collect();
        let count = reports.len();
        assert_eq!(
            count, 8,
            "{profile}: two plans, migrate and reconcile, markdown and json"
        );
        let tokens = std::fs::read_dir(work.join("tokens")).unwrap().count();
        assert!(tokens >= 10, "{profile}: {tokens} tokens delivered");
        let top: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(top.len(), 1, "nothing written beside the work directory");
    }
}

fn args(profile: &str, dir: &std::path::Path) -> RehearseArgs {
    RehearseArgs {
        profile: profile.into(),
        dir: Some(dir.to_path_buf()),
        format: Format::Markdown,
    }
}

// A second rehearsal in the same directory starts afresh: it succeeds
// and leaves only its own reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearse_twice_in_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    for round in ["first", "second"] {
        let exit = within(round, run(&args("11.5", dir.path())))
            .await
            .unwrap_or_else(|e| panic!("{round} rehearsal: {e:#}"));
        assert_eq!(exit, Exit::Done, "{round}");
    }
    let reports = std::fs::read_dir(dir.path().join("reports")).unwrap();
    assert_eq!(reports.count(), 8, "only the second rehearsal's reports");
}

// A directory holding anything a rehearsal did not write is refused,
// and nothing in it is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearse_refuses_a_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.path().join("admin-password"), "kept").unwrap();
    let err = within("rehearsal", run(&args("11.5", dir.path())))
        .await
        .expect_err("a foreign directory is refused");
    assert!(format!("{err:#}").contains("notes.txt"), "{err:#}");
    let kept = std::fs::read_to_string(dir.path().join("admin-password"));
    assert_eq!(kept.unwrap(), "kept", "nothing removed");

    // A config.toml that a rehearsal did not write is refused too.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("config.toml"), "[grafana]\n").unwrap();
    let refused = within("rehearsal", run(&args("11.5", other.path()))).await;
    assert!(refused.is_err(), "a config of one's own is never removed");
    assert!(other.path().join("config.toml").exists());

    // A real state directory (a ledger, reports, tokens, no config) is
    // refused: its token files exist nowhere else.
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("ledger.sqlite"), "real").unwrap();
    std::fs::create_dir(state.path().join("tokens")).unwrap();
    std::fs::write(
        state.path().join("tokens").join("org1-ks-ci-1.json"),
        "secret",
    )
    .unwrap();
    let refused = within("rehearsal", run(&args("11.5", state.path()))).await;
    let err = refused.expect_err("a state directory is refused");
    assert!(format!("{err:#}").contains("state directory"), "{err:#}");
    assert!(state
        .path()
        .join("tokens")
        .join("org1-ks-ci-1.json")
        .exists());
    assert_eq!(
        std::fs::read_to_string(state.path().join("ledger.sqlite")).unwrap(),
        "real"
    );
}

// The rehearsal's heading names the version the simulator reports, not
// the profile that serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rehearse_names_the_simulated_version() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, version) in [("11.5", "11.5.0"), ("11.3", "11.3.1")] {
        let work = dir.path().join(profile);
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyshift"));
        command.args(["rehearse", "--profile", profile, "--dir"]);
        command.arg(&work).env_remove("KEYSHIFT_CONFIG");
        let out = within("keyshift rehearse", command.output())
            .await
            .expect("keyshift runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let heading = format!("== Plan (Grafana {version} simulated at http://127.0.0.1:");
        assert!(stdout.contains(&heading), "{profile}: {stdout}");
    }
}

// The built-in estate has what the rehearsal promises to show.
#[test]
fn builtin_estate_is_rich_enough() {
    let estate = keyshift::rehearse::sample_estate();
    assert!(estate.orgs.len() >= 3);
    let credentials = estate.api_keys.len()
        + estate
            .service_accounts
            .iter()
            .map(|a| a.tokens.len())
            .sum::<usize>();
    assert!(credentials >= 40, "{credentials}");
    let now = chrono::Utc::now();
    assert!(
        estate
            .api_keys
            .iter()
            .any(|k| k.expires.is_some_and(|e| e < now)),
        "expired"
    );
    let soon = now + chrono::Duration::days(7);
    assert!(estate
        .api_keys
        .iter()
        .any(|k| k.expires.is_some_and(|e| e > now && e < soon)));
    assert!(
        estate.service_accounts.iter().any(|a| a.external),
        "a managed account"
    );
    let names: Vec<&str> = estate
        .service_accounts
        .iter()
        .map(|a| a.name.as_str())
        .collect();
    assert!(
        estate
            .api_keys
            .iter()
            .any(|k| names.contains(&k.name.as_str())),
        "a collision"
    );
}
