//! No secret reaches logs, reports or the ledger; sink files are private.
//!
//! A binary of its own: tracing caches per-callsite interest process-wide,
//! so capturing trace output is only reliable without other tests running
//! beside it.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use grafana_sim::{Profile, Role};

use support::{EstateBuilder, Fixture, ADMIN_PASSWORD};

/// A log writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

// With trace logging on (keyshift's and the simulator's), a migration and
// a plan write no secret to the log, the reports, the ledger or its WAL,
// and sink files are 0600 in a 0700 directory.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_reports_or_ledger() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut estate = EstateBuilder::orgs(2);
    let mut secrets = vec![ADMIN_PASSWORD.to_string()];
    for (org, name) in [(1, "ci-a"), (1, "ci-b"), (2, "ci-c"), (2, "solo")] {
        secrets.push(estate.key_with(org, name, Role::Editor, None, Some(1)));
    }
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let rules = "[[use_case]]\nname = \"ci\"\nmatch = \"^ci-\"\n";
    let result = fixture.migrate(rules).await;
    keyshift::app::reports(&fixture.config(rules))
        .write(&result.report)
        .unwrap();
    fixture.plan(rules).await;
    let delivered = fixture.delivered();
    assert_eq!(delivered.len(), 1);
    secrets.extend(
        delivered
            .iter()
            .map(|d| d["token"].as_str().unwrap().to_string()),
    );

    let logs = logs.0.lock().unwrap().clone();
    assert!(
        contains(&logs, "grafana request"),
        "trace logging was captured: {}",
        String::from_utf8_lossy(&logs[..logs.len().min(600)])
    );
    let mut files = vec![
        fixture.ledger_path(),
        fixture.dir.path().join("ledger.sqlite-wal"),
    ];
    let reports = std::fs::read_dir(fixture.dir.path().join("reports")).unwrap();
    files.extend(reports.map(|e| e.unwrap().path()));
    for secret in &secrets {
        assert!(!contains(&logs, secret), "a secret is in the log");
        for file in &files {
            let bytes = std::fs::read(file).unwrap_or_default();
            assert!(
                !contains(&bytes, secret),
                "a secret is in {}",
                file.display()
            );
        }
    }
    let dir_mode = std::fs::metadata(fixture.tokens_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    for entry in std::fs::read_dir(fixture.tokens_dir()).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

// Debug output of the config and of a job shows no password.
#[tokio::test]
async fn debug_output_hides_secrets() {
    let fixture = Fixture::start(Profile::V10_4, EstateBuilder::orgs(1).build()).await;
    let config = fixture.config("");
    let shown = format!("{config:?} {:?}", keyshift::app::credentials(&config));
    assert!(!shown.contains(ADMIN_PASSWORD), "{shown}");
}
