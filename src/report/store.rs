//! The report directory: atomic writes, retention, loading.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{debug, info};

use super::{render_markdown, ReportError, RunReport};
use crate::ledger::RunKind;

/// A directory of run reports with retention.
#[derive(Debug, Clone)]
pub struct ReportStore {
    dir: PathBuf,
    keep: usize,
    max_age: Duration,
}

/// One stored report: its run and its two files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// The run's id.
    pub run_id: i64,
    /// The run's kind.
    pub kind: RunKind,
    /// `run-<id>-<kind>.json`.
    pub json: PathBuf,
    /// `run-<id>-<kind>.md`.
    pub markdown: PathBuf,
    /// When the JSON file was last written.
    pub modified: SystemTime,
}

impl ReportStore {
    /// A store in `dir` keeping the newest `keep` runs, none older than
    /// `max_age` (the report just written is always kept).
    pub fn new(dir: impl Into<PathBuf>, keep: usize, max_age: Duration) -> ReportStore {
        ReportStore {
            dir: dir.into(),
            keep,
            max_age,
        }
    }

    /// The report directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes a report as Markdown and JSON, then applies retention.
    ///
    /// Returns the Markdown file's path. Each file is written to a
    /// temporary name and renamed, so a reader never sees half a report.
    pub fn write(&self, report: &RunReport) -> Result<PathBuf, ReportError> {
        self.create_dir()?;
        let stem = format!("run-{}-{}", report.run_id, report.kind);
        let markdown = self.dir.join(format!("{stem}.md"));
        let json = self.dir.join(format!("{stem}.json"));

        write_atomically(&markdown, render_markdown(report).as_bytes())?;
        write_atomically(&json, report.to_json().as_bytes())?;
        sync_dir(&self.dir)?;
        info!(run = report.run_id, path = %markdown.display(), "report written");

        self.prune(report.run_id)?;
        Ok(markdown)
    }

    /// Loads a run's report, or the latest one with `None`.
    pub fn load(&self, run: Option<i64>) -> Result<RunReport, ReportError> {
        let stored = self.list()?;
        let found = match run {
            Some(id) => stored.into_iter().find(|s| s.run_id == id),
            None => stored.into_iter().last(),
        };
        let Some(found) = found else {
            return Err(ReportError::NotFound {
                dir: self.dir.clone(),
                run,
            });
        };
        let text = fs::read_to_string(&found.json).map_err(|source| ReportError::Read {
            path: found.json.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: found.json,
            source,
        })
    }

    /// Every stored report, oldest run first; empty when no directory.
    pub fn list(&self) -> Result<Vec<StoredReport>, ReportError> {
        let dir_err = |source| ReportError::Dir {
            path: self.dir.clone(),
            source,
        };
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(dir_err(err)),
        };

        let mut stored = Vec::new();
        for entry in entries {
            let path = entry.map_err(dir_err)?.path();
            if let Some(report) = stored_report(&path) {
                stored.push(report);
            }
        }
        stored.sort_by_key(|s| s.run_id);
        Ok(stored)
    }

    fn create_dir(&self) -> Result<(), ReportError> {
        // 0700: reports name credentials and accounts, which is no secret
        // but no business of other local users either.
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|source| ReportError::Dir {
                path: self.dir.clone(),
                source,
            })
    }

    /// Removes reports past the count or age limit, except `just_written`.
    fn prune(&self, just_written: i64) -> Result<(), ReportError> {
        let now = SystemTime::now();
        let stored = self.list()?;
        let newest_first = stored.iter().rev();

        for (rank, report) in newest_first.enumerate() {
            if report.run_id == just_written {
                continue;
            }
            let age = now.duration_since(report.modified).unwrap_or_default();
            if rank >= self.keep || age > self.max_age {
                remove_report(report)?;
            }
        }
        Ok(())
    }
}

/// Parses `run-<id>-<kind>.json` into a stored report.
fn stored_report(path: &Path) -> Option<StoredReport> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_prefix("run-")?.strip_suffix(".json")?;
    let (id, kind) = stem.split_once('-')?;
    let modified = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(StoredReport {
        run_id: id.parse().ok()?,
        kind: kind.parse().ok()?,
        json: path.to_path_buf(),
        markdown: path.with_extension("md"),
        modified,
    })
}

fn remove_report(report: &StoredReport) -> Result<(), ReportError> {
    for path in [&report.markdown, &report.json] {
        match fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(ReportError::Write {
                    path: path.clone(),
                    source: err,
                });
            }
            _ => {}
        }
    }
    debug!(run = report.run_id, "old report removed");
    Ok(())
}

/// Writes `bytes` to a hidden temporary file, syncs it, renames it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    let write_err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };

    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(write_err)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(write_err)?;
    fs::rename(&temp, path).map_err(write_err)
}

fn sync_dir(dir: &Path) -> Result<(), ReportError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ReportError::Dir {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::super::test_support::sample;
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn ids(store: &ReportStore) -> Vec<i64> {
        store.list().unwrap().iter().map(|s| s.run_id).collect()
    }

    fn age(store: &ReportStore, run: i64, by: Duration) {
        let stored = store.list().unwrap();
        let report = stored.iter().find(|s| s.run_id == run).unwrap();
        let then = SystemTime::now() - by;
        File::options()
            .write(true)
            .open(&report.json)
            .unwrap()
            .set_modified(then)
            .unwrap();
    }

    // Both files appear, private, in a private directory; no temp is left.
    #[test]
    fn write_creates_both_files() {
        let root = tempfile::tempdir().unwrap();
        let store = ReportStore::new(root.path().join("reports"), 10, DAY);
        let markdown = store.write(&sample(3)).unwrap();

        assert_eq!(markdown, store.dir().join("run-3-migrate.md"));
        assert!(store.dir().join("run-3-migrate.json").exists());
        let dir_mode = fs::metadata(store.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let file_mode = fs::metadata(&markdown).unwrap().permissions().mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(fs::read_dir(store.dir()).unwrap().count(), 2);
    }

    // Load returns the latest report, or one by id; a missing id is named.
    #[test]
    fn load_latest_and_by_id() {
        let root = tempfile::tempdir().unwrap();
        let store = ReportStore::new(root.path(), 10, DAY);
        for id in [2, 10, 9] {
            store.write(&sample(id)).unwrap();
        }

        assert_eq!(store.load(None).unwrap().run_id, 10);
        assert_eq!(store.load(Some(9)).unwrap(), sample(9));
        let err = store.load(Some(4)).unwrap_err();
        assert!(
            err.to_string().starts_with("no report for run 4 in"),
            "{err}"
        );
    }

    // An empty or missing directory has no latest report.
    #[test]
    fn load_from_empty_store() {
        let root = tempfile::tempdir().unwrap();
        let store = ReportStore::new(root.path().join("none"), 10, DAY);
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.load(None),
            Err(ReportError::NotFound { .. })
        ));
    }

    // Only the newest `keep` runs stay, with both their files.
    #[test]
    fn retention_by_count() {
        let root = tempfile::tempdir().unwrap();
        let store = ReportStore::new(root.path(), 3, DAY);
        for id in 1..=5 {
            store.write(&sample(id)).unwrap();
        }

        assert_eq!(ids(&store), vec![3, 4, 5]);
        assert!(!root.path().join("run-2-migrate.md").exists());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 6);
    }

    // Reports older than max_age go, but never the one just written.
    #[test]
    fn retention_by_age() {
        let root = tempfile::tempdir().unwrap();
        let store = ReportStore::new(root.path(), 10, DAY);
        for id in 1..=3 {
            store.write(&sample(id)).unwrap();
        }
        age(&store, 1, 3 * DAY);
        age(&store, 2, DAY / 2);

        let zero = ReportStore::new(root.path(), 0, Duration::ZERO);
        store.write(&sample(4)).unwrap();
        assert_eq!(ids(&store), vec![2, 3, 4]);
        zero.write(&sample(5)).unwrap();
        assert_eq!(ids(&store), vec![5]);
    }

    // Files that are not reports are left alone.
    #[test]
    fn foreign_files_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("notes.txt"), "mine").unwrap();
        fs::write(root.path().join("run-x-migrate.json"), "{}").unwrap();
        let store = ReportStore::new(root.path(), 0, DAY);
        store.write(&sample(1)).unwrap();
        assert!(root.path().join("notes.txt").exists());
        assert!(root.path().join("run-x-migrate.json").exists());
        assert_eq!(ids(&store), vec![1]);
    }
}
