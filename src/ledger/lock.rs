//! One process per ledger: an `flock` on `<ledger>.lock`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

use super::error::LedgerError;

/// An exclusive lock on a ledger, held until dropped.
///
/// `flock` locks belong to the open file, so the kernel releases them when
/// the process exits, even on `kill -9`; a stale lock file is harmless.
#[derive(Debug)]
pub struct LockFile {
    // Kept open: closing the file releases the lock.
    _file: File,
}

impl LockFile {
    /// Takes the lock for `db_path`, or fails at once naming the holder.
    pub fn acquire(db_path: &Path) -> Result<LockFile, LedgerError> {
        let lock_path = lock_path(db_path);
        let io_err = |source| LedgerError::LockFile {
            path: db_path.to_path_buf(),
            lock_path: lock_path.clone(),
            source,
        };

        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err)?;

        if !try_flock(&file).map_err(io_err)? {
            let holder = read_holder(&mut file);
            return Err(LedgerError::Locked {
                path: db_path.to_path_buf(),
                holder,
            });
        }

        write_holder(&mut file).map_err(io_err)?;
        Ok(LockFile { _file: file })
    }
}

/// The lock file's path: the database path with `.lock` appended.
pub fn lock_path(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Returns false when another open file holds the lock.
fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(err)
}

fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let text = text.trim();
    // The holder may be between taking the lock and writing its line.
    if text.is_empty() {
        "another process".to_string()
    } else {
        text.to_string()
    }
}

fn write_holder(file: &mut File) -> io::Result<()> {
    let line = format!(
        "pid {} ({}) since {}\n",
        std::process::id(),
        command_line(std::env::args()),
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    );
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(line.as_bytes())?;
    file.sync_all()
}

/// The command line for the lock file, with anything secret-like hidden.
///
/// keyshift takes no secrets as arguments, but a lock file is read by
/// others, so a value after a password or token flag, or one shaped like
/// a Grafana credential, is replaced by `***`.
fn command_line(args: impl Iterator<Item = String>) -> String {
    let mut words = Vec::new();
    let mut hide_next = false;
    for (i, arg) in args.enumerate() {
        let word = if i == 0 {
            program_name(&arg)
        } else if hide_next || looks_secret(&arg) {
            "***".to_string()
        } else {
            arg.clone()
        };
        hide_next = arg.starts_with('-') && !arg.contains('=') && names_secret(&arg);
        words.push(word);
    }
    let line = words.join(" ");
    line.chars().take(200).collect()
}

fn program_name(arg0: &str) -> String {
    Path::new(arg0)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg0.to_string())
}

fn names_secret(flag: &str) -> bool {
    let flag = flag.to_ascii_lowercase();
    ["password", "token", "secret", "api-key"]
        .iter()
        .any(|w| flag.contains(w))
}

fn looks_secret(arg: &str) -> bool {
    match arg.split_once('=') {
        Some((flag, _)) if flag.starts_with('-') && names_secret(flag) => true,
        Some((_, value)) => is_credential_shaped(value),
        None => is_credential_shaped(arg),
    }
}

fn is_credential_shaped(value: &str) -> bool {
    value.starts_with("glsa_") || value.starts_with("eyJ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    // Secret-looking arguments never reach the lock file.
    #[test]
    fn command_line_hides_secrets() {
        let line = command_line(args(&[
            "/usr/bin/keyshift",
            "--token",
            "abc",
            "--password=hunter2",
            "glsa_xyz",
            "run",
        ]));
        assert_eq!(line, "keyshift --token *** *** *** run");
    }

    // A second lock on the same ledger fails at once and names the holder.
    #[test]
    fn second_lock_names_holder() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.sqlite");
        let _held = LockFile::acquire(&db).unwrap();

        let err = LockFile::acquire(&db).unwrap_err();
        let text = err.to_string();
        let pid = format!("in use by pid {}", std::process::id());
        assert!(text.contains(&pid), "{text}");
        assert!(text.contains(&db.display().to_string()), "{text}");
        assert!(matches!(err, LedgerError::Locked { .. }));
    }

    // Dropping the lock lets the next opener in.
    #[test]
    fn lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("ledger.sqlite");
        drop(LockFile::acquire(&db).unwrap());
        assert!(LockFile::acquire(&db).is_ok());
    }
}
