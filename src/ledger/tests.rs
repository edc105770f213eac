//! Tests of the ledger as a file: lock, reopen, crash recovery, secrets.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde_json::json;

use super::test_support::{credential, service_account, token};
use super::*;
use crate::secret::Secret;

const CHILD_ENV: &str = "KEYSHIFT_LEDGER_LOCK_CHILD";

fn temp_ledger() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    (dir, path)
}

// The ledger can be shared across threads as Arc<Ledger>.
#[test]
fn ledger_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Ledger>();

    let ledger = Arc::new(Ledger::open_in_memory().unwrap());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            std::thread::spawn(move || ledger.start_run(RunKind::Plan, &format!("t{i}")))
        })
        .collect();
    for handle in handles {
        handle.join().unwrap().unwrap();
    }
    assert_eq!(ledger.runs(10).unwrap().len(), 4);
}

// A second open in the same process fails at once naming the holder.
#[test]
fn second_open_is_refused() {
    let (_dir, path) = temp_ledger();
    let first = Ledger::open(&path).unwrap();

    let err = Ledger::open(&path).unwrap_err();
    let text = err.to_string();
    let expected = format!(
        "ledger {} is in use by pid {}",
        path.display(),
        std::process::id()
    );
    assert!(text.starts_with(&expected), "{text}");

    drop(first);
    assert!(Ledger::open(&path).is_ok());
}

// A ledger held by another process is refused with that process's pid.
#[test]
fn open_held_by_child_process_is_refused() {
    let (_dir, path) = temp_ledger();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "ledger::tests::hold_lock_in_child", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    wait_for_line(child.stdout.take().unwrap(), "holding");
    let err = Ledger::open(&path).unwrap_err();
    let holder = format!("pid {}", child.id());
    assert!(err.to_string().contains(&holder), "{err}");

    // Closing its stdin lets the child exit; the lock goes with it.
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    assert!(Ledger::open(&path).is_ok());
}

/// Reads the child's stdout until `marker`, failing after a timeout.
fn wait_for_line(stdout: std::process::ChildStdout, marker: &'static str) {
    let (tx, rx) = mpsc::channel();
    // Keeps draining after the marker: a closed pipe would fail the child.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if line.unwrap_or_default().contains(marker) {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("child test process never took the ledger lock");
}

// Not a test on its own: the child side of the test above.
#[test]
#[ignore = "run by open_held_by_child_process_is_refused"]
fn hold_lock_in_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let _ledger = Ledger::open(Path::new(&path)).unwrap();
    println!("holding");
    std::io::stdout().flush().unwrap();
    // Parent closes our stdin when it is done.
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
}

// A run left open by a killed process is closed as interrupted on open.
#[test]
fn open_run_is_closed_as_interrupted() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path).unwrap();
    let run = ledger.start_run(RunKind::Migrate, "cli").unwrap();
    drop(ledger);

    let ledger = Ledger::open(&path).unwrap();
    let record = ledger.run(run).unwrap().unwrap();
    assert_eq!(record.outcome, Some(RunOutcome::Interrupted));
    assert!(record.finished_at.is_some());
    assert_eq!(ledger.interrupted_runs(), &[run]);
}

// Intents recorded before a crash are still pending after reopening.
#[test]
fn intents_survive_reopen() {
    let (_dir, path) = temp_ledger();
    let ledger = Ledger::open(&path).unwrap();
    let run = ledger.start_run(RunKind::Migrate, "cli").unwrap();
    let subject = json!({"name": "etl", "role": "Editor"});
    let op = ledger
        .begin_operation(run, 1, OperationKind::CreateServiceAccount, &subject)
        .unwrap();
    drop(ledger);

    let ledger = Ledger::open(&path).unwrap();
    let pending = ledger.pending_operations().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].id, &pending[0].subject), (op, &subject));
    assert_eq!(pending[0].run_id, run);
}

// A file from a newer keyshift is refused, and left untouched.
#[test]
fn newer_file_is_refused() {
    let (_dir, path) = temp_ledger();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 42").unwrap();
    drop(conn);

    let err = Ledger::open(&path).unwrap_err();
    assert!(
        matches!(err, LedgerError::SchemaTooNew { found: 42, .. }),
        "{err:?}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema::user_version(&conn).unwrap(), 42);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a refused file must not be switched to WAL");
}

// After a checkpoint the write-ahead log is empty.
#[test]
fn checkpoint_truncates_wal() {
    let (dir, path) = temp_ledger();
    let ledger = Ledger::open(&path).unwrap();
    ledger.start_run(RunKind::Plan, "cli").unwrap();
    let wal = dir.path().join("ledger.sqlite-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);

    ledger.checkpoint().unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
}

// A full delivery through every API leaves no trace of the secret.
#[test]
fn no_secret_reaches_the_files() {
    let (dir, path) = temp_ledger();
    let secret = Secret::new("glsa_FAKEs3cretDoNotStore_0123456789abcdef");
    let ledger = Ledger::open(&path).unwrap();
    deliver_everything(&ledger, &secret);

    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        let bytes = std::fs::read(&file).unwrap();
        let needle = secret.expose().as_bytes();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            found.push(file);
        }
    }
    assert!(found.is_empty(), "secret found in {found:?}");
    assert!(dir.path().join("ledger.sqlite-wal").exists());
}

/// Walks a token through every recording API, as the applier would.
fn deliver_everything(ledger: &Ledger, secret: &Secret) {
    ledger
        .bind_server("http://127.0.0.1:3000", "11.5.0")
        .unwrap();
    let run = ledger.start_run(RunKind::Migrate, "cli").unwrap();
    ledger.upsert_credential(&credential(1, 42)).unwrap();
    ledger
        .record_service_account(&service_account(1, 12, "etl"))
        .unwrap();

    let subject = json!({"sa_id": 12, "name": "etl-42"});
    let op = ledger
        .begin_operation(run, 1, OperationKind::CreateToken, &subject)
        .unwrap();
    // Grafana's answer holds the key; only its id may be recorded.
    assert!(!secret.is_empty());
    let recorded = json!({"token_id": 7001});
    ledger
        .finish_operation(op, OperationResult::Succeeded(recorded))
        .unwrap();
    ledger.record_token(&token(1, 12, 7001, 42)).unwrap();
    ledger.mark_token_delivered(1, 7001).unwrap();

    let links = CredentialLinks {
        target_sa_id: Some(12),
        replacement_token_id: Some(7001),
        ..CredentialLinks::default()
    };
    ledger.link_credential(1, 42, &links).unwrap();
    ledger
        .transition(1, 42, CredentialState::Reissued, None)
        .unwrap();
    let finding = Finding {
        kind: "token-expiring".into(),
        severity: Severity::Warning,
        org_id: 1,
        subject: "token 7001".into(),
        detail: format!("{secret:?} expires soon"),
    };
    ledger.record_finding(run, &finding).unwrap();
    ledger
        .finish_run(run, RunOutcome::Done, &json!({"reissued": 1}))
        .unwrap();
}

// A new ledger and its WAL are readable by their owner only.
#[test]
fn new_ledger_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = Ledger::open(&path).unwrap();
    ledger.start_run(RunKind::Plan, "test").unwrap();
    for file in [path.clone(), dir.path().join("ledger.sqlite-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}
