//! The shipped systemd units: they load, they are hardened, and the
//! daemon's code lives with their system-call filter.
//!
//! Tests that need a systemd tool skip with a message when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const UNITS: [&str; 2] = ["keyshift.service", "keyshift@.service"];

/// The exposure `systemd-analyze security` may give the units at most.
/// A network client cannot use PrivateNetwork= (0.5) nor, with the
/// Grafana address unknown, IPAddressDeny= (0.2); about 1.0 is the floor.
const MAX_EXPOSURE: f64 = 1.2;

/// Unit properties that restrict what the process may do, as opposed to
/// where it runs; the sandbox test applies these to a transient unit.
const FILTER_KEYS: [&str; 8] = [
    "SystemCallFilter",
    "SystemCallArchitectures",
    "SystemCallErrorNumber",
    "MemoryDenyWriteExecute",
    "RestrictAddressFamilies",
    "RestrictNamespaces",
    "RestrictRealtime",
    "LockPersonality",
];

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Finds a systemd tool, or prints why the test is skipped.
fn tool(name: &str, test: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        eprintln!("skipping {test}: {name} is not installed");
    }
    found
}

/// Copies a unit into a temp dir with ExecStart= aimed at the built
/// binary, since `verify` insists the command exists.
fn staged(unit: &str) -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(repo_file(&format!("systemd/{unit}"))).unwrap();
    let text = text.replace("/usr/bin/keyshift", env!("CARGO_BIN_EXE_keyshift"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(unit);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Runs a command with a deadline, so a wedged tool fails the test.
fn run(command: &mut Command) -> Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("failed to spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    rx.recv_timeout(Duration::from_secs(60))
        .expect("command did not finish within 60 s")
        .expect("failed to wait for command")
}

// `systemd-analyze verify` loads both units without errors or warnings.
#[test]
fn units_pass_verify() {
    let Some(analyze) = tool("systemd-analyze", "units_pass_verify") else {
        return;
    };
    for unit in UNITS {
        let (_dir, path) = staged(unit);
        let output = run(Command::new(&analyze).arg("verify").arg(&path));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{unit} failed verify:\n{stderr}");
        // Unknown keys are only warnings, yet they are silent mistakes.
        assert!(stderr.trim().is_empty(), "{unit} has warnings:\n{stderr}");
    }
}

/// Reads "Overall exposure level for x.service: 1.1 OK" from the report.
fn exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let after = line.rsplit_once(": ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

// `systemd-analyze security --offline` rates both units at 1.2 or less.
#[test]
fn units_expose_at_most_1_2() {
    let Some(analyze) = tool("systemd-analyze", "units_expose_at_most_1_2") else {
        return;
    };
    for unit in UNITS {
        let (_dir, path) = staged(unit);
        let output = run(Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path));
        let report = String::from_utf8_lossy(&output.stdout);
        let level = exposure(&report).unwrap_or_else(|| panic!("no exposure in:\n{report}"));
        assert!(level <= MAX_EXPOSURE, "{unit} exposure {level}:\n{report}");
    }
}

// The exposure parser reads the summary line systemd 252 prints.
#[test]
fn exposure_line_parses() {
    let line = "→ Overall exposure level for keyshift@i.service: 1.1 OK 🙂";
    assert_eq!(exposure(line), Some(1.1));
    assert_eq!(exposure("nothing here"), None);
}

/// Collects `-p Key=Value` arguments for the unit's filter properties.
fn filter_properties() -> Vec<String> {
    let unit = std::fs::read_to_string(repo_file("systemd/keyshift.service")).unwrap();
    unit.lines()
        .filter(|line| {
            let key = line.split('=').next().unwrap_or_default();
            FILTER_KEYS.contains(&key)
        })
        .flat_map(|line| ["-p".to_owned(), line.to_owned()])
        .collect()
}

// The unit carries every filter property the sandbox test applies.
#[test]
fn unit_sets_the_filter_properties() {
    let properties = filter_properties();
    for key in FILTER_KEYS {
        let set = properties.iter().any(|p| p.starts_with(&format!("{key}=")));
        assert!(set, "keyshift.service does not set {key}=");
    }
}

/// Why this machine cannot run a transient unit, for the skip message.
fn no_manager_reason(stderr: &str) -> String {
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    format!(
        "systemd-run could not start a transient unit ({}); PID 1 is {:?}, not \
         systemd, so no system or user manager exists here to install the \
         unit's SystemCallFilter=; the filter is checked statically by \
         units_pass_verify and units_expose_at_most_1_2 only",
        stderr.trim().replace('\n', "; "),
        init.trim()
    )
}

// The daemon's code (runtime, sockets, metrics server) runs under the
// unit's system-call filter, in a transient unit made by systemd-run.
#[test]
fn workload_runs_under_the_unit_filter() {
    let test = "workload_runs_under_the_unit_filter";
    let Some(systemd_run) = tool("systemd-run", test) else {
        return;
    };
    let probe = run(Command::new(&systemd_run).args(["--user", "--wait", "--quiet", "/bin/true"]));
    if !probe.status.success() {
        let reason = no_manager_reason(&String::from_utf8_lossy(&probe.stderr));
        eprintln!("skipping {test}: {reason}");
        return;
    }

    let me = std::env::current_exe().unwrap();
    let output = run(Command::new(&systemd_run)
        .args(["--user", "--wait", "--pipe", "--quiet", "--collect"])
        .args(filter_properties())
        .arg(me)
        .args(["--exact", "systemd::sandboxed_workload", "--ignored"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "workload failed under the filter:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "workload did not run:\n{stdout}"
    );
}

// Not run directly: workload_runs_under_the_unit_filter runs it inside the
// sandbox. It exercises what the daemon does at run time: a threaded
// runtime, the notify socket, and the metrics server over 127.0.0.1.
#[test]
#[ignore = "run by workload_runs_under_the_unit_filter inside the sandbox"]
fn sandboxed_workload() {
    use keyshift::metrics::{serve, Health, Metrics};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let socket_path = dir.path().join("notify.sock");
        let listener = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
        let notifier =
            keyshift::notify::Notifier::for_address(socket_path.to_str().unwrap(), None).unwrap();
        notifier.ready().unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        let metrics = Metrics::new();
        metrics.set_health(Health::Ready);
        let server = serve(([127, 0, 0, 1], 0).into(), metrics).await.unwrap();
        let scrape = async {
            let mut stream = tokio::net::TcpStream::connect(server.local_addr()).await?;
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await?;
            let mut response = String::new();
            stream.read_to_string(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        let response = tokio::time::timeout(Duration::from_secs(10), scrape)
            .await
            .expect("healthz scrape hung")
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    });
}

/// Expands a `systemd-analyze syscall-filter` group into system calls.
fn syscall_group(analyze: &Path, group: &str, seen: &mut Vec<String>) -> Vec<String> {
    if seen.iter().any(|g| g == group) {
        return Vec::new();
    }
    seen.push(group.to_owned());
    let output = run(Command::new(analyze).args(["syscall-filter", group]));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut calls = Vec::new();
    for line in text.lines().skip(1).map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_prefix('@') {
            Some(_) => calls.extend(syscall_group(analyze, line, seen)),
            None => calls.push(line.to_owned()),
        }
    }
    calls
}

/// The calls `SystemCallFilter=@system-service` then
/// `SystemCallFilter=~@privileged @resources` leave allowed.
fn unit_allowed_calls(analyze: &Path) -> std::collections::BTreeSet<String> {
    let allowed = syscall_group(analyze, "@system-service", &mut Vec::new());
    let mut denied = syscall_group(analyze, "@privileged", &mut Vec::new());
    denied.extend(syscall_group(analyze, "@resources", &mut Vec::new()));
    allowed
        .into_iter()
        .filter(|c| !denied.contains(c))
        .collect()
}

/// System calls and socket families in an `strace -f` log.
fn traced(
    log: &str,
) -> (
    std::collections::BTreeSet<String>,
    std::collections::BTreeSet<String>,
) {
    let mut calls = std::collections::BTreeSet::new();
    let mut families = std::collections::BTreeSet::new();
    for line in log.lines() {
        let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !rest[name.len()..].starts_with('(') {
            continue;
        }
        if name == "socket" {
            let family = rest["socket(".len()..]
                .split(',')
                .next()
                .unwrap_or_default();
            families.insert(family.to_owned());
        }
        calls.insert(name);
    }
    (calls, families)
}

// The daemon itself, `keyshift run` against a simulated Grafana for one
// catch-up reconcile and a SIGTERM, uses only system calls the unit's
// SystemCallFilter= allows and only the socket families of
// RestrictAddressFamilies=. Traced with strace, because no service manager
// runs here to apply the filter itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_uses_only_what_the_unit_allows() {
    let test = "daemon_uses_only_what_the_unit_allows";
    let (Some(strace), Some(analyze)) = (tool("strace", test), tool("systemd-analyze", test))
    else {
        return;
    };
    let allowed = unit_allowed_calls(&analyze);
    assert!(
        allowed.contains("read") && !allowed.contains("reboot"),
        "{allowed:?}"
    );

    let mut estate = crate::support::EstateBuilder::orgs(1);
    estate.key(1, "ci-a", grafana_sim::Role::Editor);
    let mut fixture =
        crate::support::Fixture::start(grafana_sim::Profile::V11_3, estate.build()).await;
    fixture.migrate("").await;
    fixture.extra = "[reconcile]\nschedule = \"0 0 * * * *\"\n[daemon]\ncatch_up = true\n".into();
    let config = fixture.config("");

    let socket_path = fixture.dir.path().join("notify.sock");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let log = fixture.dir.path().join("strace.log");
    let mut child = tokio::process::Command::new(strace)
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_keyshift"))
        .args(["run", "--config"])
        .arg(&config.origin)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace starts");

    // The catch-up run is done when a status line names its outcome.
    let finished = async {
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await.unwrap();
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.contains("last run") {
                return message;
            }
        }
    };
    let status = tokio::time::timeout(Duration::from_secs(60), finished)
        .await
        .expect("the daemon never finished its catch-up run");
    assert!(status.contains("last run done"), "{status}");
    // The daemon is strace's child; the signal goes to it, as systemd's would.
    let tracer = child.id().expect("running");
    let children = format!("/proc/{tracer}/task/{tracer}/children");
    let daemon: i32 = std::fs::read_to_string(children)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the daemon did not stop on SIGTERM")
        .unwrap();
    assert!(exit.success(), "keyshift run exited with {exit:?}");

    let (calls, families) = traced(&std::fs::read_to_string(&log).unwrap());
    // Run as root (as here), SQLite gives a new journal the database's
    // owner with fchown and ignores the result; under the unit's
    // DynamicUser= it is not root and makes no such call.
    let as_root_only = ["fchown"];
    let root = unsafe { libc::geteuid() } == 0;
    let outside: Vec<&String> = calls
        .iter()
        .filter(|c| !allowed.contains(*c))
        .filter(|c| !(root && as_root_only.contains(&c.as_str())))
        .collect();
    assert!(calls.contains("connect"), "the trace is empty: {calls:?}");
    assert!(
        outside.is_empty(),
        "calls the unit's filter denies: {outside:?}"
    );
    let allowed_families = ["AF_UNIX", "AF_INET", "AF_INET6"];
    let bad: Vec<&String> = families
        .iter()
        .filter(|f| !allowed_families.contains(&f.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "socket families the unit does not allow: {bad:?}"
    );
}
