//! The token sink: where the secrets of newly issued tokens go.
//!
//! Two kinds, chosen by `[sink] kind`:
//! - a directory holding one JSON file per token, and
//! - a command that reads the same JSON document on standard input.
//!
//! The directory must be private: it is created 0700, and an existing one
//! that group or others can access is refused rather than fixed, because
//! secrets already in it may have been exposed and an operator should look.
//! Files are created 0600 (never wider, not even briefly) under a hidden
//! temporary name, synced, then renamed into place, so a reader never sees
//! a partial file under the final name.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use crate::config::SinkConfig;
use crate::secret::Secret;

/// A new token's secret and what it replaces, ready for delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Org of the service account.
    pub org_id: i64,
    /// Org name, for humans reading the document.
    pub org_name: String,
    /// Use case the token belongs to.
    pub use_case: String,
    /// Service account holding the token.
    pub service_account_id: i64,
    /// Its name.
    pub service_account_name: String,
    /// Grafana's id of the new token.
    pub token_id: i64,
    /// Name of the new token, unique in the org.
    pub token_name: String,
    /// The token's secret.
    pub secret: Secret,
    /// When the token expires; `None` for never.
    pub expires: Option<DateTime<Utc>>,
    /// The credential this token replaces.
    pub replaces: Replaced,
}

/// The legacy credential a delivered token replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// The original API key id.
    pub key_id: i64,
    /// The original API key name.
    pub key_name: String,
}

/// The JSON document a sink receives; the only place a secret is serialized.
#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    org_id: i64,
    org_name: &'a str,
    use_case: &'a str,
    service_account_id: i64,
    service_account_name: &'a str,
    token_id: i64,
    token_name: &'a str,
    token: &'a str,
    expires: Option<DateTime<Utc>>,
    replaces: &'a Replaced,
}

impl Delivery {
    /// The document as JSON bytes, newline-terminated.
    fn document(&self) -> Result<Vec<u8>, SinkError> {
        let doc = Document {
            version: 1,
            org_id: self.org_id,
            org_name: &self.org_name,
            use_case: &self.use_case,
            service_account_id: self.service_account_id,
            service_account_name: &self.service_account_name,
            token_id: self.token_id,
            token_name: &self.token_name,
            token: self.secret.expose(),
            expires: self.expires,
            replaces: &self.replaces,
        };
        let mut bytes =
            serde_json::to_vec_pretty(&doc).map_err(|source| SinkError::Encode { source })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// File name in a directory sink: `org<org id>-<token name>.json`.
    ///
    /// Bytes outside `[A-Za-z0-9._-]` are percent-encoded, so a name can
    /// neither leave the directory nor collide with another name.
    pub fn file_name(&self) -> String {
        file_name(self.org_id, &self.token_name)
    }
}

fn file_name(org_id: i64, token_name: &str) -> String {
    let mut name = format!("org{org_id}-");
    for byte in token_name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    name.push_str(".json");
    name
}

/// How a sink command ended without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// It exited with this non-zero code.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Code(code) => write!(f, "exit code {code}"),
            ExitReason::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// A secret that was not delivered. Never contains the secret.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The token directory could not be created or inspected.
    #[error("cannot create token directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The token directory path is not a directory.
    #[error("token directory {} is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Group or others can access the token directory.
    #[error(
        "token directory {} has mode {mode:o}, group and others must have no access \
         (chmod 700)",
        path.display()
    )]
    InsecureDir {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token directory belongs to another user.
    #[error("token directory {} is owned by uid {owner}, not by uid {uid}", path.display())]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The uid keyshift runs as.
        uid: u32,
    },
    /// Writing the token file failed.
    #[error("cannot write token file {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// Removing a dead token's file failed.
    #[error("cannot remove token file {}", path.display())]
    Remove {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The document could not be encoded.
    #[error("cannot encode the token document")]
    Encode {
        /// The encoder's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The sink command could not be started.
    #[error("cannot start sink command {program}")]
    Spawn {
        /// The program.
        program: String,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The sink command exited 0 without reading its document.
    #[error("sink command {program} did not read the token document")]
    Unread {
        /// The program.
        program: String,
        /// The error writing to its stdin.
        #[source]
        source: io::Error,
    },
    /// The sink command failed.
    #[error("sink command {program} failed with {reason}; stderr: {stderr:?}")]
    Failed {
        /// The program.
        program: String,
        /// How it ended.
        reason: ExitReason,
        /// Last lines of its stderr, secret masked.
        stderr: String,
    },
    /// The sink command ran past its timeout and was killed.
    #[error(
        "sink command {program} timed out after {timeout:?} and was killed; stderr: {stderr:?}"
    )]
    TimedOut {
        /// The program.
        program: String,
        /// The configured timeout.
        timeout: Duration,
        /// Last lines of its stderr, secret masked.
        stderr: String,
    },
}

/// Where token secrets are delivered.
#[derive(Debug, Clone)]
pub enum Sink {
    /// One file per token in a private directory.
    Directory(DirectorySink),
    /// A command reading one JSON document on stdin.
    Exec(ExecSink),
}

impl Sink {
    /// Builds the sink the config describes; touches nothing yet.
    pub fn from_config(config: &SinkConfig) -> Sink {
        match config {
            SinkConfig::Directory { path } => Sink::Directory(DirectorySink { dir: path.clone() }),
            SinkConfig::Exec { command, timeout } => Sink::Exec(ExecSink {
                command: command.clone(),
                timeout: *timeout,
                // systemd's notify socket is keyshift's alone, and its
                // credentials directory holds the Grafana secret.
                withheld: vec!["NOTIFY_SOCKET".into(), "CREDENTIALS_DIRECTORY".into()],
            }),
        }
    }

    /// Keeps these environment variables (e.g. the one holding the Grafana
    /// password) from a command sink; a directory sink ignores them.
    pub fn withholding(mut self, vars: impl IntoIterator<Item = String>) -> Sink {
        if let Sink::Exec(exec) = &mut self {
            exec.withheld.extend(vars);
        }
        self
    }

    /// Checks the sink can take deliveries, before any token is made.
    ///
    /// For a directory: creates it 0700 if missing, and refuses one that
    /// is not ours or not private. Commands are only checked on use.
    pub async fn prepare(&self) -> Result<(), SinkError> {
        match self {
            Sink::Directory(sink) => {
                let dir = sink.dir.clone();
                run_blocking(move || ensure_private_dir(&dir)).await
            }
            Sink::Exec(_) => Ok(()),
        }
    }

    /// Delivers one token secret; an error means it was not delivered.
    pub async fn deliver(&self, delivery: &Delivery) -> Result<(), SinkError> {
        let document = delivery.document()?;
        match self {
            Sink::Directory(sink) => sink.deliver(delivery.file_name(), document).await,
            Sink::Exec(sink) => sink.deliver(document, &delivery.secret).await,
        }
    }
}

impl Sink {
    /// Takes back the secret of a token keyshift deleted.
    ///
    /// A directory sink removes `org<id>-<name>.json` if it is there, so
    /// that no dead secret is left for a consumer to pick up. A command
    /// sink does nothing: it is only ever sent deliveries, and whoever
    /// runs the command learns of the deletion from the report.
    pub async fn retract(&self, org_id: i64, token_name: &str) -> Result<(), SinkError> {
        let Sink::Directory(sink) = self else {
            return Ok(());
        };
        let path = sink.dir.join(file_name(org_id, token_name));
        run_blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => {
                debug!(path = %path.display(), "token file removed");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SinkError::Remove { path, source }),
        })
        .await
    }
}

/// A directory holding one 0600 file per token.
#[derive(Debug, Clone)]
pub struct DirectorySink {
    dir: PathBuf,
}

impl DirectorySink {
    async fn deliver(&self, name: String, document: Vec<u8>) -> Result<(), SinkError> {
        let dir = self.dir.clone();
        run_blocking(move || {
            ensure_private_dir(&dir)?;
            let path = dir.join(&name);
            write_atomically(&dir, &name, &document).map_err(|source| SinkError::Write {
                path: path.clone(),
                source,
            })?;
            debug!(path = %path.display(), "token file written");
            Ok(())
        })
        .await
    }
}

/// Runs blocking file work off the async threads.
async fn run_blocking<F>(work: F) -> Result<(), SinkError>
where
    F: FnOnce() -> Result<(), SinkError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// Creates the directory 0700 if missing; refuses a shared one.
fn ensure_private_dir(dir: &Path) -> Result<(), SinkError> {
    let create_err = |source| SinkError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(create_err)?;
    }

    let meta = fs::metadata(dir).map_err(create_err)?;
    if !meta.is_dir() {
        return Err(SinkError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SinkError::InsecureDir {
            path: dir.to_path_buf(),
            mode,
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if meta.uid() != uid {
        let path = dir.to_path_buf();
        return Err(SinkError::ForeignOwner {
            path,
            owner: meta.uid(),
            uid,
        });
    }
    Ok(())
}

/// Writes `dir/name` so that it appears whole or not at all.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let (temp, mut file) = create_temp(dir, name)?;
    let result = fill_and_commit(&mut file, &temp, &dir.join(name), dir, bytes);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn fill_and_commit(
    file: &mut File,
    temp: &Path,
    target: &Path,
    dir: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(temp, target)?;
    // The rename is durable only once the directory entry is synced.
    File::open(dir)?.sync_all()
}

/// Creates a new, hidden, 0600 temporary file next to `name`.
///
/// The leading dot and the `.tmp-` suffix keep it out of `org*.json`
/// globs; `create_new` refuses to reuse anything already there.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp);
        match opened {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// A command that receives each token document on stdin.
#[derive(Debug, Clone)]
pub struct ExecSink {
    command: Vec<String>,
    timeout: Duration,
    /// Environment variables the command must not inherit.
    withheld: Vec<String>,
}

/// Most stderr kept for an error message.
const STDERR_TAIL_BYTES: usize = 2048;
/// Most stderr lines shown in an error message.
const STDERR_TAIL_LINES: usize = 10;
/// How long to wait for stderr to close after the command exited; a
/// background child may hold it open forever.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

impl ExecSink {
    fn program(&self) -> String {
        self.command.first().cloned().unwrap_or_default()
    }

    async fn deliver(&self, document: Vec<u8>, secret: &Secret) -> Result<(), SinkError> {
        let program = self.program();
        let mut child = self.spawn().map_err(|source| SinkError::Spawn {
            program: program.clone(),
            source,
        })?;
        let stderr = Arc::new(Mutex::new(StderrTail::default()));
        let reader = tokio::spawn(collect_tail(child.stderr.take(), Arc::clone(&stderr)));
        let mut stdin = child.stdin.take();

        let talk = async {
            let written = match stdin.as_mut() {
                Some(pipe) => pipe.write_all(&document).await,
                None => Ok(()),
            };
            drop(stdin.take());
            (written, child.wait().await)
        };
        let outcome = tokio::time::timeout(self.timeout, talk).await;

        let timed_out = outcome.is_err();
        if timed_out {
            kill_group(&mut child).await;
        }
        let _ = tokio::time::timeout(STDERR_DRAIN, reader).await;
        let tail = stderr_tail(&stderr, secret);
        debug!(program = %program, timed_out, "sink command finished");

        match outcome {
            Err(_) => Err(SinkError::TimedOut {
                program,
                timeout: self.timeout,
                stderr: tail,
            }),
            Ok((written, status)) => {
                let status = status.map_err(|source| SinkError::Spawn {
                    program: program.clone(),
                    source,
                })?;
                judge(program, written, status, tail)
            }
        }
    }

    fn spawn(&self) -> io::Result<tokio::process::Child> {
        let mut command = tokio::process::Command::new(&self.command[0]);
        command
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills the children too.
            .process_group(0)
            .kill_on_drop(true);
        for var in &self.withheld {
            command.env_remove(var);
        }
        command.spawn()
    }
}

/// Turns a finished command into delivered or not.
fn judge(
    program: String,
    written: io::Result<()>,
    status: ExitStatus,
    stderr: String,
) -> Result<(), SinkError> {
    if !status.success() {
        let reason = match (status.code(), status.signal()) {
            (Some(code), _) => ExitReason::Code(code),
            (None, signal) => ExitReason::Signal(signal.unwrap_or(0)),
        };
        return Err(SinkError::Failed {
            program,
            reason,
            stderr,
        });
    }
    written.map_err(|source| SinkError::Unread { program, source })
}

/// Kills the command's whole process group and reaps it.
async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill has no memory preconditions; the group is the one
        // created for this child by `process_group(0)`.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

/// Stderr collected from a sink command: its last bytes, and whether
/// earlier bytes were dropped.
#[derive(Default)]
struct StderrTail {
    bytes: Vec<u8>,
    truncated: bool,
}

/// Reads a pipe to its end, keeping only the last bytes.
async fn collect_tail(pipe: Option<impl AsyncRead + Unpin>, tail: Arc<Mutex<StderrTail>>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 1024];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.bytes.extend_from_slice(&chunk[..n]);
        let excess = tail.bytes.len().saturating_sub(STDERR_TAIL_BYTES * 2);
        if excess > 0 {
            tail.bytes.drain(..excess);
            tail.truncated = true;
        }
    }
}

/// The last lines of stderr, with the secret masked if it was echoed.
fn stderr_tail(tail: &Mutex<StderrTail>, secret: &Secret) -> String {
    let tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = String::from_utf8_lossy(&tail.bytes).into_owned();
    if !secret.is_empty() {
        text = text.replace(secret.expose(), "***");
    }
    let mut lines: Vec<&str> = text.trim_end().lines().collect();
    // A cut first line may end in the tail of an echoed secret that the
    // mask above could not recognise.
    if tail.truncated && !lines.is_empty() {
        lines.remove(0);
    }
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    let text = lines[start..].join("\n");
    let cut = text.len().saturating_sub(STDERR_TAIL_BYTES);
    let cut = (cut..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "glsa_s3cr3tValue_0123456789";

    fn delivery() -> Delivery {
        Delivery {
            org_id: 3,
            org_name: "Team B".into(),
            use_case: "ci".into(),
            service_account_id: 41,
            service_account_name: "ci".into(),
            token_id: 77,
            token_name: "ks-ci-17".into(),
            secret: Secret::new(SECRET),
            expires: None,
            replaces: Replaced {
                key_id: 17,
                key_name: "ci-deploy".into(),
            },
        }
    }

    fn exec_sink(script: &str, timeout: Duration) -> Sink {
        Sink::from_config(&SinkConfig::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script.into()],
            timeout,
        })
    }

    async fn deliver(sink: &Sink) -> Result<(), SinkError> {
        tokio::time::timeout(Duration::from_secs(20), sink.deliver(&delivery()))
            .await
            .expect("delivery hung: the sink command was not killed or reaped")
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    // The directory is made 0700, the file 0600, and it holds the document.
    #[tokio::test]
    async fn directory_writes_private_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("state/tokens");
        let sink = Sink::from_config(&SinkConfig::Directory { path: dir.clone() });

        deliver(&sink).await.unwrap();

        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("org3-ks-ci-17.json");
        assert_eq!(mode(&file), 0o600);
        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
        assert_eq!(doc["token"], SECRET);
        assert_eq!(doc["replaces"]["key_id"], 17);
        assert_eq!(doc["replaces"]["key_name"], "ci-deploy");
        assert_eq!(doc["org_id"], 3);
        assert!(doc["expires"].is_null());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec!["org3-ks-ci-17.json"],
            "no temporary file is left"
        );
    }

    // Retracting removes the token's file; a missing file is no error.
    #[tokio::test]
    async fn directory_retracts_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tokens");
        let sink = Sink::from_config(&SinkConfig::Directory { path: dir.clone() });
        deliver(&sink).await.unwrap();

        let retract = sink.retract(3, "ks-ci-17");
        let done = tokio::time::timeout(Duration::from_secs(20), retract).await;
        done.unwrap().unwrap();

        assert!(!dir.join("org3-ks-ci-17.json").exists());
        let again = sink.retract(3, "ks-ci-17");
        let done = tokio::time::timeout(Duration::from_secs(20), again).await;
        assert!(done.unwrap().is_ok(), "a missing file must not fail");
    }

    // An existing directory that others can read is refused, not used.
    #[tokio::test]
    async fn directory_refuses_shared_dir() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let sink = Sink::from_config(&SinkConfig::Directory {
            path: root.path().into(),
        });

        let err = deliver(&sink).await.unwrap_err();

        assert!(
            matches!(err, SinkError::InsecureDir { mode: 0o755, .. }),
            "{err:?}"
        );
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    // Until the rename, readers of org*.json see the old file whole.
    #[test]
    fn directory_write_is_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("org1-t.json");
        fs::write(&target, b"old").unwrap();

        let (temp, mut file) = create_temp(dir.path(), "org1-t.json").unwrap();
        file.write_all(b"new, half").unwrap();

        let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
        assert!(temp_name.starts_with(".org1-t.json.tmp-"), "{temp_name}");
        assert!(!temp_name.ends_with(".json"));
        assert_eq!(
            mode(&temp),
            0o600,
            "temporary file is private from creation"
        );
        assert_eq!(fs::read(&target).unwrap(), b"old");

        fill_and_commit(&mut file, &temp, &target, dir.path(), b"").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new, half");
        assert!(!temp.exists());
    }

    // Token names cannot escape the directory or collide once encoded.
    #[test]
    fn file_names_are_encoded() {
        let mut d = delivery();
        d.token_name = "../x y/%".into();
        assert_eq!(d.file_name(), "org3-..%2Fx%20y%2F%25.json");
    }

    // The command gets the document on stdin and exit 0 means delivered.
    #[tokio::test]
    async fn exec_success_receives_document() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("received.json");
        let script = format!("cat > '{}'", out.display());

        deliver(&exec_sink(&script, Duration::from_secs(10)))
            .await
            .unwrap();

        let doc: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
        assert_eq!(doc["token"], SECRET);
        assert_eq!(doc["token_id"], 77);
        assert_eq!(doc["replaces"]["key_id"], 17);
    }

    // A non-zero exit is not delivered; the error has the code and stderr.
    #[tokio::test]
    async fn exec_failure_reports_code_and_stderr() {
        let script = "cat >/dev/null; echo 'vault: permission denied' >&2; exit 3";

        let err = deliver(&exec_sink(script, Duration::from_secs(10)))
            .await
            .unwrap_err();

        match &err {
            SinkError::Failed { reason, stderr, .. } => {
                assert_eq!(*reason, ExitReason::Code(3));
                assert_eq!(stderr, "vault: permission denied");
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert!(err.to_string().contains("exit code 3"), "{err}");
    }

    // A command that echoes its input to stderr does not leak the secret.
    #[tokio::test]
    async fn exec_error_masks_secret() {
        let err = deliver(&exec_sink("cat >&2; exit 1", Duration::from_secs(10)))
            .await
            .unwrap_err();

        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    // A command past its timeout is killed, with its children.
    #[tokio::test]
    async fn exec_timeout_kills_command() {
        let script = "echo started >&2; sleep 60 & sleep 60; wait";
        let started = std::time::Instant::now();

        let err = deliver(&exec_sink(script, Duration::from_millis(300)))
            .await
            .unwrap_err();

        assert!(matches!(err, SinkError::TimedOut { .. }), "{err:?}");
        assert!(err.to_string().contains("started"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    // A withheld variable (the Grafana secret's) does not reach the command.
    #[tokio::test]
    async fn exec_does_not_inherit_withheld_variables() {
        // A name no other test uses: setting it cannot disturb them.
        std::env::set_var("KEYSHIFT_TEST_WITHHELD_SECRET", "hunter2");
        let script = "test -z \"$KEYSHIFT_TEST_WITHHELD_SECRET\" || exit 3; cat >/dev/null";
        let sink = exec_sink(script, Duration::from_secs(10));
        let withheld = sink.withholding(["KEYSHIFT_TEST_WITHHELD_SECRET".to_string()]);
        deliver(&withheld)
            .await
            .expect("the command did not see the variable");
        let plain = exec_sink(script, Duration::from_secs(10));
        assert!(
            deliver(&plain).await.is_err(),
            "without withholding it is inherited"
        );
    }

    // A program that does not exist is a spawn error naming it.
    #[tokio::test]
    async fn exec_missing_program() {
        let sink = Sink::from_config(&SinkConfig::Exec {
            command: vec!["/nonexistent/store-token".into()],
            timeout: Duration::from_secs(5),
        });

        let err = deliver(&sink).await.unwrap_err();

        assert!(matches!(err, SinkError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/store-token"));
    }
}
