//! Helpers shared by the integration tests: running the real binary, temporary homes.

#![allow(dead_code)] // each test crate uses a different subset

pub(crate) mod batdetect2;
pub(crate) mod http_server;
pub(crate) mod mosquitto;
pub(crate) mod private_rabbit;
pub(crate) mod runtime;
pub(crate) mod sensor;

use std::path::Path;
use std::process::{Command, Output};

use camino::{Utf8Path, Utf8PathBuf};

/// The `acoupi` binary under test.
pub(crate) fn acoupi() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_acoupi"));
    cmd.env_remove("ACOUPI_HOME").env("NO_COLOR", "1");
    cmd
}

/// Runs `acoupi ARGS…` and returns its output.
pub(crate) fn run(args: &[&str]) -> Output {
    acoupi()
        .args(args)
        .output()
        .expect("the acoupi binary runs")
}

/// Exit code of an output (panics on death by signal, which is itself a failure).
pub(crate) fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {out:?}"))
}

/// Stderr as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Stdout as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory as a UTF-8 path.
pub(crate) fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf-8 temp dir");
    (dir, path)
}

/// Every file under `dir`, recursively, sorted (none when `dir` is missing).
pub(crate) fn files_under(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = d.read_dir_utf8() else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.into_path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Writes `text` to `dir/name` and returns the path.
pub(crate) fn write(dir: &Utf8Path, name: &str, text: impl AsRef<[u8]>) -> Utf8PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write test file");
    p
}

/// Every file under `root` as the user sees it (links followed, hidden entries skipped),
/// relative path to bytes and mode.
pub(crate) fn snapshot_dir(root: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue; // build directories; the entries resolve through them
            }
            let meta = std::fs::metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(
                    rel,
                    (
                        std::fs::read(&path).expect("read"),
                        meta.permissions().mode() & 0o7777,
                    ),
                );
            }
        }
    }
    out
}

/// Starts `acoupi ARGS…` logging at info, with stderr piped; returns the child and its stderr
/// lines as they come.
pub(crate) fn spawn_logged(
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let mut child = acoupi()
        .args(args)
        .env("ACOUPI_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("acoupi starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Collects lines from `rx` until `done` holds for them; panics with the lines after 30 s.
pub(crate) fn wait_for_lines(
    rx: &std::sync::mpsc::Receiver<String>,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while !done(&seen) {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("timed out waiting for {what}: {seen:#?}"),
        }
    }
    seen
}

/// Runs `tests/acoupi/SCRIPT` (acoupi 0.8.0's own code, in the acoupi venv) with `args` and
/// parses the JSON it prints; fails the test with its stderr when it fails.
pub(crate) fn acoupi_script(script: &str, args: &[&str]) -> serde_json::Value {
    acoupi_script_env(script, args, &[])
}

/// [`acoupi_script`] with extra environment variables (`HOME` for a script that writes a
/// Python acoupi home).
pub(crate) fn acoupi_script_env(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/acoupi")
        .join(script);
    let out = Command::new(venv_python(
        "ACOUPI_PYTHON_ACOUPI",
        "acoupi-venv",
        "python3 -m venv target/acoupi-venv && target/acoupi-venv/bin/python -m pip install --no-deps acoupi==0.8.0 && target/acoupi-venv/bin/python -m pip install pydantic (and, for the import tests, the packages `scripts/test` lists)",
    ))
    .arg(&path)
    .args(args)
    .envs(env.iter().copied())
    .output()
    .expect("run the acoupi helper script");
    assert!(
        out.status.success(),
        "{script} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The Python of the venv `target/<venv>` (made by `scripts/test`), or the one the environment
/// variable `var` names; fails the test with how to make it, never skips.
pub(crate) fn venv_python(var: &str, venv: &str, install: &str) -> std::path::PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return std::path::PathBuf::from(p);
    }
    let python = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(venv)
        .join("bin/python");
    assert!(
        python.exists(),
        "no Python at {}: run `scripts/test`, or in the crate root `{install}`, or set {var}",
        python.display()
    );
    python
}

/// The Python with Celery 5.7.0 for the wire-compatibility tests.
pub(crate) fn celery_python() -> std::path::PathBuf {
    venv_python(
        "ACOUPI_CELERY_PYTHON",
        "celery-venv",
        "python3 -m venv target/celery-venv && target/celery-venv/bin/pip install celery==5.7.0",
    )
}

/// Writes `files` (path, bytes) to staging and stores a recording for each, as `record` leaves
/// them for `manage-files`: made 10 s apart from 21:00 on 1 June 2026 (UTC) under one
/// deployment, 1 s at 192 kHz, and pending.
pub(crate) fn stage_recordings(
    metadata: &Utf8Path,
    files: impl IntoIterator<Item = (Utf8PathBuf, Vec<u8>)>,
) {
    use acoupi::spec::data::{Deployment, Recording, new_id};
    let deployment = Deployment {
        id: new_id(),
        name: "staged".into(),
        latitude: None,
        longitude: None,
        started_on: "2026-06-01T00:00:00Z".parse().expect("time"),
        ended_on: None,
    };
    let mut store = acoupi::store::Store::open(metadata).expect("store");
    let t0: jiff::Timestamp = "2026-06-01T21:00:00Z".parse().expect("time");
    for (i, (path, bytes)) in files.into_iter().enumerate() {
        std::fs::write(&path, &bytes).expect("staged");
        let r = Recording {
            created_on: t0 + jiff::SignedDuration::from_secs(10 * i as i64),
            duration: 1.0,
            samplerate: 192_000,
            deployment: deployment.clone(),
            path: Some(path),
            audio_channels: 1,
            time_expansion: 1.0,
            id: new_id(),
        };
        store.insert_recording(&r, None).expect("insert");
        store.mark_pending(r.id).expect("pending");
    }
}

/// The figures given in MiB on a line of `acoupi bench detect` (the number before each
/// ` MiB`), in order.
pub(crate) fn mib_figures(line: &str) -> Vec<f64> {
    line.split(" MiB")
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect()
}
