//! Logs without a journal, through the real binary: a worker started without one writes
//! `log/UNIT.log` (and logs to stderr when `JOURNAL_STREAM` names its stderr), and
//! `acoupi logs` reads the rotated files (`-n` across rotations, unit names, unknown units,
//! `-f` following appends and rotations) or runs `journalctl` when the journal has entries.
//!
//! The journal is replaced by `ACOUPI_JOURNALCTL`: a path that does not exist (no journal) or
//! a stub. The broker is an address nothing listens on: the worker logs its reconnection
//! attempts, which is all these tests need of it.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use common::{acoupi, code, stderr, stdout, tempdir, write};

const MANIFEST: &str = r#"acoupi version=1
program "logs" {
    timezone "UTC"
}
broker "amqp://127.0.0.1:9/%2f"
microphone "m" {
    synthetic "sweep"
    samplerate "192kHz"
}
workers {
    worker "rec" queues="logs-rec"
    worker "rest" queues="logs-def"
    task "record" queue="logs-rec"
    task "manage-files" queue="logs-def"
    task "heartbeat" queue="logs-def"
}
"#;

struct Home {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    home: Utf8PathBuf,
}

impl Home {
    fn new() -> Home {
        let (dir, root) = tempdir();
        let manifest = write(&root, "acoupi.kdl", MANIFEST);
        let home = root.join("home");
        let out = acoupi()
            .args(["build", manifest.as_str(), "--home", home.as_str()])
            .output()
            .expect("build runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        Home {
            _dir: dir,
            root,
            home,
        }
    }

    /// `acoupi ARGS --home HOME` as systemd runs a unit (it sets `INVOCATION_ID`), without a
    /// journal.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = acoupi();
        c.args(args)
            .args(["--home", self.home.as_str()])
            .env("ACOUPI_JOURNALCTL", self.root.join("no-journalctl"))
            .env("INVOCATION_ID", "5b1d8a0c4e2f4d6a9c3b7e1f0a2d4c6e")
            .env_remove("JOURNAL_STREAM");
        c
    }

    fn log(&self, stem: &str) -> Utf8PathBuf {
        self.home.join("log").join(format!("{stem}.log"))
    }

    /// Writes the live file and its rotations: `.N` gets `lines[N]`.
    fn write_rotated(&self, stem: &str, files: &[&[&str]]) {
        std::fs::create_dir_all(self.home.join("log")).expect("log dir");
        for (n, lines) in files.iter().enumerate() {
            let path = match n {
                0 => self.log(stem),
                n => Utf8PathBuf::from(format!("{}.{n}", self.log(stem))),
            };
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            std::fs::write(path, text).expect("log file");
        }
    }
}

/// Polls `f` until it returns `Some`, for at most `secs` seconds.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read(path: &Utf8Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_worker_without_a_journal_logs_to_its_file() {
    let h = Home::new();
    for journal_stream in [None, Some("1:1")] {
        let _ = std::fs::remove_dir_all(h.home.join("log"));
        let mut c = h.cmd(&["worker", "rec"]);
        if let Some(v) = journal_stream {
            // Another stream than our stderr: not the journal.
            c.env("JOURNAL_STREAM", v);
        }
        let mut child = c
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker starts");
        let log = h.log("acoupi-worker-rec");
        let text = wait_for(20, "the worker's log file", || {
            let t = read(&log);
            t.contains("broker unreachable").then_some(t)
        });
        child.kill().expect("kill");
        let out = child.wait_with_output().expect("wait");
        assert!(text.contains(" WARN "), "{text}");
        assert!(!text.contains('\x1b'), "no colour in files: {text}");
        assert!(
            !stderr(&out).contains("broker unreachable"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn a_worker_run_by_hand_logs_to_stderr() {
    let h = Home::new();
    let err_path = h.root.join("stderr.txt");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = h
        .cmd(&["worker", "rec"])
        .env_remove("INVOCATION_ID")
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("worker starts");
    wait_for(20, "the worker's stderr", || {
        read(&err_path).contains("broker unreachable").then_some(())
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(!h.log("acoupi-worker-rec").exists());
}

#[test]
fn a_worker_whose_stderr_is_the_journal_stream_logs_there() {
    let h = Home::new();
    let err_path = h.root.join("stderr.txt");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let meta = err.metadata().expect("meta");
    let mut child = h
        .cmd(&["worker", "rec"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("worker starts");
    wait_for(20, "the worker's stderr", || {
        read(&err_path).contains("broker unreachable").then_some(())
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(!h.log("acoupi-worker-rec").exists());
}

#[test]
fn an_error_before_the_worker_runs_is_in_its_log_file_too() {
    let h = Home::new();
    let out = h.cmd(&["worker", "nope"]).output().expect("runs");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no worker named `nope`"),
        "{}",
        stderr(&out)
    );
    let text = read(&h.log("acoupi-worker-nope"));
    assert!(text.contains("ERROR no worker named `nope`"), "{text}");
}

#[test]
fn logs_prints_the_last_lines_across_rotations() {
    let h = Home::new();
    h.write_rotated(
        "acoupi-worker-rec",
        &[&["r5", "r6"], &["r3", "r4"], &["r1", "r2"], &["r0"]],
    );
    h.write_rotated("acoupi-beat", &[&["b0", "b1"]]);
    let lines = |args: &[&str]| {
        let out = h.cmd(args).output().expect("runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(lines(&["logs", "rec", "-n", "3"]), "r4\nr5\nr6\n");
    assert_eq!(lines(&["logs", "rec", "-n", "5"]), "r2\nr3\nr4\nr5\nr6\n");
    assert_eq!(
        lines(&["logs", "acoupi-worker-rec.service"]),
        "r0\nr1\nr2\nr3\nr4\nr5\nr6\n"
    );
    assert_eq!(lines(&["logs", "acoupi-worker-rec", "-n", "1"]), "r6\n");
    assert_eq!(lines(&["logs", "beat", "-n", "1"]), "b1\n");
    // Every unit: each file under its header; `rest` has none.
    let all = lines(&["logs", "-n", "2"]);
    assert_eq!(
        all,
        format!(
            "==> {} <==\nr5\nr6\n\n==> {} <==\nb0\nb1\n",
            h.log("acoupi-worker-rec"),
            h.log("acoupi-beat")
        )
    );
}

#[test]
fn unknown_units_and_missing_logs_are_clear_errors() {
    let h = Home::new();
    let out = h.cmd(&["logs", "nope"]).output().expect("runs");
    assert_eq!(code(&out), 2);
    assert_eq!(
        stderr(&out),
        "error: no unit `nope` in program `logs`; it has: `rec` (acoupi-worker-rec.service), `rest` (acoupi-worker-rest.service), `beat` (acoupi-beat.service)\n"
    );
    let out = h.cmd(&["logs", "rest"]).output().expect("runs");
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("no logs of `acoupi-worker-rest.service`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn logs_runs_journalctl_when_the_journal_has_entries() {
    let h = Home::new();
    let stub = h.root.join("journalctl");
    let calls = h.root.join("journalctl.log");
    std::fs::write(
        &stub,
        format!("#!/bin/sh\necho \"$*\" >> '{calls}'\necho 'a journal line'\n"),
    )
    .expect("stub");
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    h.write_rotated("acoupi-beat", &[&["from the file"]]);
    let out = h
        .cmd(&["logs", "beat", "-n", "7"])
        .env("ACOUPI_JOURNALCTL", &stub)
        .output()
        .expect("runs");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "a journal line\n");
    let calls = read(&calls);
    assert_eq!(
        calls.lines().last(),
        Some("--user --no-pager -u acoupi-beat.service -n 7"),
        "{calls}"
    );
}

#[test]
fn follow_prints_appended_lines_across_a_rotation() {
    let h = Home::new();
    h.write_rotated("acoupi-beat", &[&["before"]]);
    let mut child = h
        .cmd(&["logs", "beat", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("logs -f starts");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a line within 10 s")
    };
    assert_eq!(next(), "before");
    let live = h.log("acoupi-beat");
    let append = |text: &str| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&live)
            .expect("open");
        f.write_all(text.as_bytes()).expect("append");
    };
    append("first\n");
    assert_eq!(next(), "first");
    append("second\n");
    std::fs::rename(&live, format!("{live}.1")).expect("rotate");
    append("third\n");
    assert_eq!(next(), "second");
    assert_eq!(next(), "third");
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn a_log_file_that_cannot_be_opened_leaves_logging_on_stderr_with_one_warning() {
    let h = Home::new();
    std::fs::remove_dir_all(h.home.join("log")).expect("remove log/");
    std::fs::write(h.home.join("log"), "not a directory").expect("block log/");
    let err_path = h.root.join("stderr.txt");
    let err = std::fs::File::create(&err_path).expect("stderr file");
    let mut child = h
        .cmd(&["worker", "rec"])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("worker starts");
    let text = wait_for(20, "the worker's stderr", || {
        let t = read(&err_path);
        t.contains("broker unreachable").then_some(t)
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert_eq!(
        text.matches("no log file, logging to stderr").count(),
        1,
        "{text}"
    );
    assert!(text.contains("log/acoupi-worker-rec.log"), "{text}");
}
