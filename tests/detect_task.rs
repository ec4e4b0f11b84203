//! The `detect` task through the built-in registry: a recording made by `record` is analysed by
//! the program's detectors, each detector's output is stored once (a redelivered task reuses
//! it), a detector that fails leaves the outputs before it stored so a retry runs only what
//! is missing, and bad input fails permanently with the cause (a skipped recording, `null`,
//! is nothing to do). A failure is recorded as final (so file management stops waiting for
//! the recording) only when no retry will follow.

mod common;

use std::sync::Arc;

use acoupi::runtime::tasks::{Registry, Services, TaskContext, TaskError};
use acoupi::spec::Program;
use acoupi::spec::payload::{Detected, Recorded};
use acoupi::store::{Filter, Store};
use camino::Utf8Path;
use serde_json::Value as Json;

/// The program of `detectors` (manifest text), recording synthetic bat-like sweeps, with its
/// home and storage under `dir`.
fn program(dir: &Utf8Path, detectors: &str) -> Arc<Program> {
    let manifest = format!(
        r#"program "detect-task"
microphone "m" {{
    synthetic "sweep" from="80kHz" to="40kHz" length="5ms" every="100ms" amplitude=0.5
    samplerate "192kHz"
}}
recording {{
    duration "600ms"
    interval "2s"
}}
{detectors}
"#
    );
    let mut program = common::runtime::program(&manifest);
    program.home = dir.join("home");
    program.paths.staging = dir.join("staging");
    program.paths.recordings = dir.join("recordings");
    program.paths.metadata = dir.join("metadata.db");
    program.paths.messages = dir.join("messages.db");
    program.paths.state = dir.join("home/state");
    Arc::new(program)
}

const BAND: &str = r#"detector "bats" kind="band-energy" {
    band low="30kHz" high="90kHz"
    threshold 0.3
}"#;

fn ctx(services: &Arc<Services>, task_id: &str) -> TaskContext {
    TaskContext {
        services: Arc::clone(services),
        task_id: task_id.into(),
        retries: 0,
        worker: "test".into(),
    }
}

async fn run(
    services: &Arc<Services>,
    task: &str,
    task_id: &str,
    args: Vec<Json>,
) -> Result<Json, TaskError> {
    let handler = Registry::builtin().get(task).expect("a built-in handler");
    handler(ctx(services, task_id), args, serde_json::Map::new()).await
}

async fn record(services: &Arc<Services>) -> Json {
    run(services, "record", "rec-1", Vec::new())
        .await
        .expect("record succeeds")
}

/// Runs `detect` on `recorded`, which must succeed (`what` says why it should).
async fn detected(services: &Arc<Services>, task_id: &str, recorded: Json, what: &str) -> Detected {
    let result = run(services, "detect", task_id, vec![recorded])
        .await
        .expect(what);
    serde_json::from_value(result).expect("a Detected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detections_are_stored_once_and_a_redelivery_reuses_them() {
    let (_d, dir) = common::tempdir();
    let services = Services::new(program(&dir, BAND));
    let recorded = record(&services).await;
    let first = detected(&services, "det-1", recorded.clone(), "detect succeeds").await;
    assert_eq!(first.outputs.len(), 1);
    let outcome = &first.outputs[0];
    assert_eq!(outcome.detector, "bats");
    // 600 ms of a sweep every 100 ms: six calls (the last may be cut by the file's end).
    assert!(
        (5..=7).contains(&outcome.detections),
        "detections: {}",
        outcome.detections
    );
    assert!(outcome.max_score.expect("a best score") >= 0.3);

    let again = detected(&services, "det-1", recorded, "a redelivery succeeds").await;
    assert_eq!(again, first, "a redelivery reports the stored output");

    let store = Store::open_read_only(&services.program.paths.metadata).expect("store");
    let outputs = store.model_outputs(&Filter::default()).expect("outputs");
    assert_eq!(outputs.len(), 1, "one output, not two");
    let output = &outputs[0];
    assert_eq!(output.id.to_string(), outcome.model_output);
    assert_eq!(output.name_model, "bats");
    assert_eq!(output.detections.len() as u32, outcome.detections);
    assert_eq!(output.recording.id.to_string(), first.recording.id);
    for d in &output.detections {
        assert!(d.detection_score >= 0.3, "under the threshold: {d:?}");
        let [start, low, end, high] = d.location.expect("a box").coordinates;
        assert!(start < end && end <= 0.6 + 1e-9, "{start}..{end}");
        assert!(
            low >= 30_000.0 && high <= 90_000.0 && low < high,
            "{low}..{high}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_detector_keeps_the_outputs_before_it_and_a_retry_runs_only_the_rest() {
    let (_d, dir) = common::tempdir();
    // Fails its first run (leaving a mark), answers no detections after that.
    let script = common::write(
        &dir,
        "flaky.sh",
        format!(
            "#!/bin/sh\nif [ ! -e {mark} ]; then touch {mark}; echo 'model not warm' >&2; exit 3; fi\necho '{{\"detections\": []}}'\n",
            mark = dir.join("ran-once")
        ),
    );
    let detectors = format!(
        "{BAND}\ndetector \"flaky\" kind=\"command\" {{\n    command \"/bin/sh\" \"{script}\"\n    mode \"per-file\"\n    timeout \"10s\"\n}}\n"
    );
    let services = Services::new(program(&dir, &detectors));
    let recorded = record(&services).await;
    let e = run(&services, "detect", "det-1", vec![recorded.clone()])
        .await
        .expect_err("the flaky detector fails first");
    match &e {
        TaskError::Transient(m) => assert!(m.contains("flaky"), "{m}"),
        other => panic!("a failed program may work on a retry: {other:?}"),
    }
    let store = Store::open_read_only(&services.program.paths.metadata).expect("store");
    let before = store.model_outputs(&Filter::default()).expect("outputs");
    assert_eq!(
        before
            .iter()
            .map(|o| o.name_model.as_str())
            .collect::<Vec<_>>(),
        ["bats"]
    );
    let done = detected(&services, "det-1", recorded, "the retry succeeds").await;
    assert_eq!(done.outputs[0].model_output, before[0].id.to_string());
    assert_eq!(done.outputs[1].detector, "flaky");
    assert_eq!(done.outputs[1].detections, 0);
    let after = store.model_outputs(&Filter::default()).expect("outputs");
    assert_eq!(after.len(), 2, "bats once, flaky once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_permanently_with_the_cause() {
    let (_d, dir) = common::tempdir();
    let services = Services::new(program(&dir, BAND));
    // No recording (a skipped slot hands on `null`): nothing to analyse, nothing stored.
    assert_eq!(
        run(&services, "detect", "d0", vec![Json::Null])
            .await
            .expect("nothing to do"),
        Json::Null
    );
    // A recording the store does not know.
    let recorded = record(&services).await;
    let mut unknown: Recorded = serde_json::from_value(recorded.clone()).expect("a Recorded");
    unknown.id = uuid::Uuid::new_v4().to_string();
    match run(
        &services,
        "detect",
        "d1",
        vec![serde_json::to_value(&unknown).expect("json")],
    )
    .await
    {
        Err(TaskError::Permanent(m)) => assert!(m.contains("not in the metadata store"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A stored recording whose file is not audio: the file is at fault, no retry.
    let stored: Recorded = serde_json::from_value(recorded.clone()).expect("a Recorded");
    std::fs::write(&stored.path, b"not a wav file").expect("overwrite");
    match run(&services, "detect", "d2", vec![recorded]).await {
        Err(TaskError::Permanent(m)) => {
            assert!(m.starts_with("detector `bats`"), "{m}");
            assert_eq!(m.matches("bats").count(), 1, "the detector named once: {m}");
            assert_eq!(
                m.matches(stored.path.as_str()).count(),
                1,
                "the file named once: {m}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// What the store holds as failed for good on recording `recorded`: `(detector, error)`.
fn failures(services: &Services, recorded: &Json) -> Vec<(String, String)> {
    let recorded: Recorded = serde_json::from_value(recorded.clone()).expect("a Recorded");
    let id: uuid::Uuid = recorded.id.parse().expect("a UUID");
    let store = Store::open_read_only(&services.program.paths.metadata).expect("store");
    store
        .pending_detection_states()
        .expect("states")
        .remove(&id)
        .map(|s| s.failures)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detection_is_recorded_as_failed_only_once_it_will_not_be_retried() {
    let (_d, dir) = common::tempdir();
    // A program that crashes every time: a transient failure, retried up to `retries` times.
    let script = common::write(
        &dir,
        "broken.sh",
        "#!/bin/sh\necho 'model file is corrupt' >&2\nexit 3\n",
    );
    let detectors = format!(
        "{BAND}\ndetector \"broken\" kind=\"command\" {{\n    command \"/bin/sh\" \"{script}\"\n    mode \"per-file\"\n    timeout \"10s\"\n}}\nworkers {{\n    task \"detect\" retries=4\n}}\n"
    );
    let services = Services::new(program(&dir, &detectors));
    let handler = Registry::builtin().get("detect").expect("detect");
    let attempt = |retries: u32, recorded: Json| {
        let mut ctx = ctx(&services, "det-1");
        ctx.retries = retries;
        handler(ctx, vec![recorded], serde_json::Map::new())
    };
    let recorded = record(&services).await;
    for retries in [0, 3] {
        match attempt(retries, recorded.clone()).await {
            Err(TaskError::Transient(m)) => {
                assert!(m.starts_with("detector `broken`"), "{m}");
                assert_eq!(m.matches("detector `broken`").count(), 1, "{m}");
            }
            other => panic!("a crashed program may work on a retry: {other:?}"),
        }
        assert_eq!(
            failures(&services, &recorded),
            [],
            "retry {retries} of 4: another comes, nothing is final"
        );
    }
    // The last retry: file management must not wait for this recording any longer.
    assert!(attempt(4, recorded.clone()).await.is_err());
    let failed = failures(&services, &recorded);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "broken");
    assert!(failed[0].1.contains("model file is corrupt"), "{failed:?}");

    // A permanent failure is final at once, on its first delivery.
    let other = run(&services, "record", "rec-2", Vec::new())
        .await
        .expect("record succeeds");
    let path: Recorded = serde_json::from_value(other.clone()).expect("a Recorded");
    std::fs::write(&path.path, b"not a wav file").expect("overwrite");
    match attempt(0, other.clone()).await {
        Err(TaskError::Permanent(_)) => {}
        other => panic!("an unreadable file is not retried: {other:?}"),
    }
    let failed = failures(&services, &other);
    assert_eq!(
        failed.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["bats"],
        "{failed:?}"
    );
}

/// The model output ids of the detection messages in the outbox at `path` (none when no
/// message was ever stored there).
fn detection_messages(path: &Utf8Path) -> Vec<String> {
    if !path.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open_with_flags(
        path.as_std_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the outbox exists");
    let mut stmt = conn
        .prepare("SELECT CAST(content AS TEXT) FROM message WHERE message_type = 'detection'")
        .expect("query");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|content| {
            let output: Json = serde_json::from_str(&content.expect("row")).expect("JSON");
            output["id"].as_str().expect("an output id").to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detection_messages_are_stored_with_the_output_and_by_a_redelivery_that_reuses_it() {
    let (_d, dir) = common::tempdir();
    // Without messaging: an output stored and no message, as if the worker had stopped
    // between storing the output and its messages.
    let quiet = Services::new(program(&dir, BAND));
    let first = record(&quiet).await;
    let stored = detected(&quiet, "det-1", first.clone(), "detect succeeds").await;
    // The same store with a detection message rule.
    let messaging = "messaging {\n    mqtt host=\"127.0.0.1\" port=1 topic=\"t\"\n    message detection min-score=0.3\n}";
    let services = Services::new(program(&dir, &format!("{BAND}\n{messaging}")));
    let redelivered = detected(&services, "det-1", first, "the redelivery succeeds").await;
    assert_eq!(redelivered, stored, "the stored output is reused");
    let outbox = &services.program.paths.messages;
    assert_eq!(
        detection_messages(outbox),
        [stored.outputs[0].model_output.clone()],
        "the redelivery stores the messages the first delivery did not"
    );
    // A new recording: its output and its message are stored by the one delivery.
    let second = run(&services, "record", "rec-2", Vec::new())
        .await
        .expect("record succeeds");
    let fresh = detected(&services, "det-2", second, "detect succeeds").await;
    let mut want = vec![
        stored.outputs[0].model_output.clone(),
        fresh.outputs[0].model_output.clone(),
    ];
    let mut got = detection_messages(outbox);
    want.sort();
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detection_worker_starts_one_serving_process_per_task_it_can_run_at_once() {
    let (_d, dir) = common::tempdir();
    let started = dir.join("started");
    // Notes its start, then serves until its stdin closes.
    let script = common::write(
        &dir,
        "serve.sh",
        format!("#!/bin/sh\necho $$ >> {started}\nexec cat > /dev/null\n"),
    );
    let detectors = format!(
        "detector \"served\" kind=\"command\" {{\n    command \"/bin/sh\" \"{script}\"\n    mode \"serve\"\n}}\nworkers {{\n    worker \"recording\" queues=\"recording\" concurrency=1\n    worker \"detection\" queues=\"detection\" concurrency=3\n    worker \"default\" queues=\"default\" concurrency=1\n}}\n"
    );
    let program = program(&dir, &detectors);
    let starts = || {
        std::fs::read_to_string(&started)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    // A worker of the other queues starts none (a started process has noted its start by the
    // time shutdown has seen it exit).
    let other = Services::new(Arc::clone(&program));
    other.warm_detectors_for(&["recording".to_owned(), "default".to_owned()]);
    other.shutdown().await;
    assert_eq!(
        starts(),
        0,
        "no detector process outside the detection worker"
    );
    let services = Services::new(program);
    // The detection worker: three `detect` tasks at once, three processes, before any task.
    services.warm_detectors_for(&["detection".to_owned()]);
    common::runtime::wait_for(
        std::time::Duration::from_secs(10),
        "three serving processes",
        || starts() >= 3,
    )
    .await;
    services.shutdown().await;
    let pids = std::fs::read_to_string(&started).expect("the starts");
    assert_eq!(pids.lines().count(), 3);
    // Shutdown has stopped and reaped them all.
    for pid in pids.lines() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} outlived the shutdown"
        );
    }
}
