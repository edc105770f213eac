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
