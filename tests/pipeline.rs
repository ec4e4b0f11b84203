//! The compiled task graph run by the real processes a deployment runs: `acoupi beat` and one
//! `acoupi worker` per worker (recording, detection, default) on the real RabbitMQ, writing
//! one metadata store. Every recording made is stored exactly once, under the deployment of
//! the home's deployment file, and no process ever meets a locked database.
//!
//! The detection worker analyses the recordings: each model output belongs to a stored
//! recording, no recording is analysed twice, and the synthetic sweeps are found.
//!
//! The default worker manages the files: every recording is kept (no saving rules) in a date
//! folder, and the store points at it.
//!
//! No task is ever dead-lettered. (The whole pipeline with messaging, as a user runs it, is
//! `tests/pipeline_messaging.rs`.)

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use acoupi::runtime::transport::{Broker, dead_letter_queue};
use acoupi::store::Store;
use camino::Utf8Path;

const AMQP: &str = "amqp://127.0.0.1:5672/%2f";

/// The test's queues, deleted (with their dead-letter queues) when the test ends, failed or not.
struct Queues {
    names: Vec<String>,
}

impl Drop for Queues {
    fn drop(&mut self) {
        let names = self.names.clone();
        let cleanup = async move {
            let Ok(broker) = Broker::connect_amqp(AMQP, "acoupi test cleanup", None).await else {
                return;
            };
            for q in &names {
                let _ = broker.delete(q).await;
                let _ = broker.delete(&dead_letter_queue(q)).await;
            }
            broker.close().await;
        };
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(cleanup);
        }
    }
}

/// Child processes, stopped with SIGTERM (and reaped) when the test ends, failed or not.
struct Processes(Vec<(String, Child)>);

impl Processes {
    /// Sends SIGTERM to each process and waits for it; returns each one's exit code.
    fn stop(&mut self) -> Vec<(String, Option<i32>)> {
        for (_, child) in &self.0 {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(child),
                rustix::process::Signal::TERM,
            );
        }
        self.0
            .drain(..)
            .map(|(name, mut child)| (name, child.wait().ok().and_then(|s| s.code())))
            .collect()
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The WAV files under `dirs` (recursively; hidden partial files skipped), sorted.
fn wavs(dirs: &[&Utf8Path]) -> Vec<camino::Utf8PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<camino::Utf8PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    while let Some(dir) = todo.pop() {
        let Ok(entries) = dir.read_dir_utf8() else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.into_path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension() == Some("wav")
                && !path.file_name().is_some_and(|n| n.starts_with('.'))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn deployed_processes_store_and_analyse_every_recording_once() {
    let (_d, dir) = common::tempdir();
    let p = format!(
        "pipe{}{}",
        std::process::id(),
        jiff::Timestamp::now().as_millisecond() % 1_000_000
    );
    let queues = Queues {
        names: vec![format!("{p}-rec"), format!("{p}-det"), format!("{p}-def")],
    };
    let manifest = format!(
        r#"acoupi version=1
program "pipeline" {{
    timezone "UTC"
    location latitude=51.5 longitude=-0.12
}}
microphone "m" {{
    synthetic "sweep"
    samplerate "48kHz"
}}
recording {{
    duration "300ms"
    interval "1s"
}}
detector "bats" kind="band-energy" {{
    band low="5kHz" high="20kHz"
}}
workers {{
    worker "recording" queues="{p}-rec"
    worker "detection" queues="{p}-det"
    worker "default" queues="{p}-def"
    task "record" queue="{p}-rec"
    task "detect" queue="{p}-det"
    task "manage-files" queue="{p}-def"
    task "heartbeat" queue="{p}-def"
}}
"#
    );
    let path = common::write(&dir, "pipeline.kdl", manifest);
    let home = dir.join("home");
    let out = common::run(&["build", path.as_str(), "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    // What `acoupi deploy` writes before it starts the units (in the Python acoupi's layout).
    let deployment_id = "0b5c3f3e-6a55-4f0e-8a3e-2f1d7f0d9a11";
    common::write(
        &home,
        "config/deployment.json",
        format!(
            r#"{{"id": "{deployment_id}", "name": "north hedge", "latitude": 51.5, "longitude": -0.12, "started_on": "2026-06-01T20:00:00Z"}}"#
        ),
    );
    let program: acoupi::spec::Program = serde_json::from_str(
        &std::fs::read_to_string(home.join("config/program.json")).expect("program.json"),
    )
    .expect("program.json parses");
    let staging = program.paths.staging.clone();
    let recordings = program.paths.recordings.clone();
    let all = || wavs(&[&staging, &recordings]);

    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let spawn = |name: &str, args: &[&str]| {
        let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
        let child = common::acoupi()
            .args(["--home", home.as_str()])
            .args(args)
            .env("ACOUPI_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("acoupi starts");
        (name.to_owned(), child)
    };
    let mut processes = Processes(vec![
        spawn("recording", &["worker", "recording"]),
        spawn("detection", &["worker", "detection"]),
        spawn("default", &["worker", "default"]),
        spawn("beat", &["beat"]),
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let analysed = || {
        Store::open_read_only(&program.paths.metadata)
            .and_then(|s| s.model_outputs(&acoupi::store::Filter::default()))
            .map(|o| o.len())
            .unwrap_or(0)
    };
    while all().len() < 6 || analysed() < 2 || wavs(&[&recordings]).is_empty() {
        assert!(
            Instant::now() < deadline,
            "six recordings, two of them analysed, one kept, did not appear in a minute: {:?}, {} analysed",
            all(),
            analysed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let codes = processes.stop();
    let log =
        |name: &str| std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
    for (name, code) in &codes {
        assert_eq!(
            *code,
            Some(0),
            "`{name}` did not stop cleanly:\n{}",
            log(name)
        );
        assert!(
            !log(name).contains("locked"),
            "`{name}` met a locked database:\n{}",
            log(name)
        );
    }

    // Every WAV, staged or kept, is stored exactly once, under the deployment file's
    // deployment, with the path where it is now.
    let files = all();
    let store = Store::open_read_only(&program.paths.metadata).expect("the store exists");
    let info = store.info().expect("info");
    assert!(info.is_ok(), "integrity: {info:?}");
    let rows = store
        .recordings(&acoupi::store::Filter::default())
        .expect("recordings");
    assert_eq!(
        rows.len(),
        files.len(),
        "rows {:#?}\nfiles {files:#?}",
        rows.iter().map(|r| &r.recording.path).collect::<Vec<_>>()
    );
    let mut stored: Vec<camino::Utf8PathBuf> = rows
        .iter()
        .map(|r| {
            let path = r.recording.path.as_ref().expect("a path");
            assert!(path.exists(), "stored path {path} exists");
            assert_eq!(r.recording.deployment.id.to_string(), deployment_id);
            assert_eq!(r.recording.deployment.name, "north hedge");
            assert!(r.task_id.is_some(), "each row names the task that made it");
            if path.starts_with(&recordings) {
                // Kept by manage-files (no saving rules: everything is kept) in a date folder.
                let day = r.recording.created_on.strftime("%Y/%m/%d").to_string();
                assert_eq!(path.parent(), Some(recordings.join(day).as_path()));
            }
            path.clone()
        })
        .collect();
    stored.sort();
    assert_eq!(stored, files);

    // Detection: each output is of a stored recording, none analysed twice, sweeps found.
    let outputs = store
        .model_outputs(&acoupi::store::Filter::default())
        .expect("outputs");
    assert!(outputs.len() >= 2, "{} outputs", outputs.len());
    let mut analysed_ids: Vec<_> = outputs.iter().map(|o| o.recording.id).collect();
    analysed_ids.sort();
    analysed_ids.dedup();
    assert_eq!(
        analysed_ids.len(),
        outputs.len(),
        "a recording analysed twice"
    );
    for o in &outputs {
        assert_eq!(o.name_model, "bats");
        assert!(
            rows.iter().any(|r| r.recording.id == o.recording.id),
            "output of an unknown recording"
        );
        assert!(
            !o.detections.is_empty(),
            "the synthetic sweeps of {:?} were not detected",
            o.recording.path
        );
    }

    // Nothing is dead-lettered: no task ever failed for good.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let broker = Broker::connect_amqp(AMQP, "acoupi test pipeline", None)
            .await
            .expect("RabbitMQ is reachable at 127.0.0.1:5672 (scripts/test starts it)");
        for q in &queues.names {
            let dead = dead_letter_queue(q);
            if let Some(env) = broker.get(&dead).await.expect("get") {
                let task = env
                    .headers
                    .get("task")
                    .and_then(|t| t.as_str())
                    .unwrap_or("?")
                    .to_owned();
                let reason = env
                    .headers
                    .get("x-acoupi-reason")
                    .and_then(|t| t.as_str())
                    .unwrap_or("?")
                    .to_owned();
                panic!("`{task}` was dead-lettered on `{q}`: {reason}");
            }
        }
        broker.close().await;
    });
}
