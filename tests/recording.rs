//! The `record` task and continuous recording through the runtime: a synthetic microphone,
//! real WAV files read back with hound, follow-ups carrying the recording, and no recording
//! stored twice for one task.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acoupi::runtime::celery::TaskMessage;
use acoupi::runtime::tasks::{Registry, Services, TaskContext};
use acoupi::runtime::transport::Broker;
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::worker::Connector;
use acoupi::spec::Program;
use acoupi::{compile, plan};
use camino::Utf8Path;
use serde_json::Map;
use tokio_util::sync::CancellationToken;

fn program(manifest: &str, home: &Utf8Path) -> Program {
    let source = compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.as_bytes().to_vec());
    let checked = compile::check(&source);
    let model = checked
        .model
        .unwrap_or_else(|| panic!("invalid test manifest: {:?}", checked.issues));
    let ctx = plan::BuildContext {
        home: home.to_owned(),
        exe: "/usr/bin/acoupi".into(),
        source_path: "/t.kdl".into(),
    };
    plan::lower(model, &ctx).program
}

fn wav_frames(path: &str) -> (u32, u16, u32) {
    let reader = hound::WavReader::open(path).expect("a readable WAV");
    let spec = reader.spec();
    (spec.sample_rate, spec.channels, reader.duration())
}

/// A foreground run without a deployment file records under the store's deployment while it
/// has not ended, and under a new implicit one once it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_run_records_under_the_stores_open_deployment_never_an_ended_one() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sweep\"; samplerate \"48kHz\" }\nrecording { duration \"200ms\"; interval \"10s\" }\n",
        &dir,
    ));
    let mut season = acoupi::spec::data::Deployment {
        id: acoupi::spec::data::new_id(),
        name: "meadow, spring".into(),
        latitude: Some(51.5),
        longitude: Some(-0.12),
        started_on: "2026-03-01T00:00:00Z".parse().expect("time"),
        ended_on: None,
    };
    let set = |d: &acoupi::spec::data::Deployment| {
        acoupi::store::Store::open(&program.paths.metadata)
            .expect("store")
            .upsert_deployment(d)
            .expect("stored");
    };
    // Each run's deployment, read back from its recording's row.
    let deployment_of_a_run = |task_id: &'static str| {
        let program = Arc::clone(&program);
        async move {
            let ctx = TaskContext {
                services: Services::new(Arc::clone(&program)),
                task_id: task_id.into(),
                retries: 0,
                worker: "test".into(),
            };
            let handler = Registry::builtin().get("record").expect("record handler");
            handler(ctx, vec![], Map::new()).await.expect("recorded");
            acoupi::store::Store::open_read_only(&program.paths.metadata)
                .expect("store")
                .recording_for_task(task_id)
                .expect("query")
                .expect("stored")
                .recording
                .deployment
        }
    };
    set(&season);
    assert_eq!(
        deployment_of_a_run("t1").await,
        season,
        "still open: reused"
    );
    season.ended_on = Some("2026-06-01T00:00:00Z".parse().expect("time"));
    set(&season);
    let next = deployment_of_a_run("t2").await;
    assert_ne!(
        next.id, season.id,
        "an ended deployment is not recorded under"
    );
    assert_eq!(
        (next.name.as_str(), next.ended_on),
        ("p (acoupi run)", None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_task_writes_a_wav_and_is_idempotent() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sweep\"; samplerate \"48kHz\"; channels 2 }\nrecording { duration \"500ms\"; interval \"10s\" }\n",
        &dir,
    ));
    let handler = Registry::builtin().get("record").expect("record handler");
    let ctx = TaskContext {
        services: Services::new(Arc::clone(&program)),
        task_id: "task-1".into(),
        retries: 0,
        worker: "test".into(),
    };
    let first = handler(ctx.clone(), vec![], Map::new())
        .await
        .expect("recorded");
    let path = first["path"].as_str().expect("path").to_owned();
    assert!(path.starts_with(program.paths.staging.as_str()), "{path}");
    assert_eq!(wav_frames(&path), (48_000, 2, 24_000));
    assert_eq!(first["frames"], 24_000);
    // The same task delivered again returns the same recording and stores nothing new.
    let again = handler(ctx, vec![], Map::new()).await.expect("recorded");
    assert_eq!(again, first);
    let wavs = std::fs::read_dir(&program.paths.staging)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "wav")
        })
        .count();
    assert_eq!(wavs, 1);
    // One row in the metadata store, under the home's implicit deployment, found by task id.
    let store = acoupi::store::Store::open_read_only(&program.paths.metadata).expect("a store");
    assert_eq!(store.info().expect("info").count("recording"), Some(1));
    let stored = store
        .recording_for_task("task-1")
        .expect("query")
        .expect("stored under its task id");
    assert_eq!(
        stored.recording.id.to_string(),
        first["id"].as_str().unwrap()
    );
    assert_eq!(
        stored.recording.path.as_ref().map(|p| p.as_str()),
        Some(path.as_str())
    );
    assert_eq!(stored.recording.samplerate, 48_000);
    assert_eq!(stored.recording.audio_channels, 2);
    assert_eq!(stored.recording.deployment.name, "p (acoupi run)");
    // The heartbeat reports the tally (no samples lost) and the staging backlog (the one
    // file); its state file keeps both for `acoupi status`.
    let heartbeat = Registry::builtin()
        .get("heartbeat")
        .expect("heartbeat handler");
    let ctx = TaskContext {
        services: Services::new(Arc::clone(&program)),
        task_id: "hb".into(),
        retries: 0,
        worker: "test".into(),
    };
    let beat = heartbeat(ctx, vec![], Map::new()).await.expect("heartbeat");
    let metric = |name: &str| {
        beat["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {beat}"))["value"]
            .as_f64()
            .expect("a number")
    };
    let size = std::fs::metadata(first["path"].as_str().expect("a path"))
        .expect("the file")
        .len();
    assert_eq!(metric("audio_overruns"), 0.0);
    assert_eq!(metric("recordings"), 1.0);
    assert_eq!(metric("staging_files"), 1.0);
    assert_eq!(metric("staging_bytes"), size as f64);
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(saved["recording"]["files"], 1);
    assert_eq!(saved["recording"]["overruns"], 0);
    assert_eq!(saved["recording"]["last_file"], first["path"]);
    assert_eq!(saved["staging"]["files"], 1, "{saved}");
    assert_eq!(saved["staging"]["bytes"], size, "{saved}");
    assert_eq!(saved["staging"]["paused"], false, "{saved}");
    assert!(saved["staging"]["budget"].as_u64().expect("a budget") > size);
    assert_eq!(saved["timestamp"], beat["sent_on"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_task_refuses_when_the_disk_is_full() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\nrecording { duration \"200ms\"; min-free-disk \"1000000TiB\" }\n",
        &dir,
    ));
    let handler = Registry::builtin().get("record").expect("record handler");
    let ctx = TaskContext {
        services: Services::new(Arc::clone(&program)),
        task_id: "task-2".into(),
        retries: 0,
        worker: "test".into(),
    };
    let err = handler(ctx, vec![], Map::new())
        .await
        .expect_err("no space");
    assert!(err.to_string().contains("not recording"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_recording_hands_each_file_on_without_gaps() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(
        "program \"p\"\nmicrophone \"m\" { synthetic \"counter\"; samplerate \"8kHz\" }\nrecording { mode \"continuous\"; duration \"1s\" }\n",
        &dir,
    ));
    let memory = MemoryBroker::default();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(acoupi::runtime::continuous::run(
        Connector::Memory(memory.clone()),
        Services::new(Arc::clone(&program)),
        shutdown.clone(),
    ));
    // Three files handed on (1 s each), however slowly this machine runs.
    let broker = Broker::Memory(memory);
    let start = std::time::Instant::now();
    while broker.depth("default").await.unwrap() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "fewer than three recordings handed on after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    handle.await.unwrap();
    let mut recs = Vec::new();
    while let Some(env) = broker.get("default").await.unwrap() {
        let msg = TaskMessage::decode(&env).unwrap();
        assert_eq!(msg.task, "manage-files");
        recs.push(msg.args[0].clone());
    }
    assert!(recs.len() >= 3, "{recs:#?}");
    // Every file continues the counter exactly where the previous one stopped.
    let mut next: Option<i32> = None;
    let mut total = 0u64;
    for rec in &recs {
        let path = rec["path"].as_str().unwrap();
        let mut reader = hound::WavReader::open(path).expect("a readable WAV");
        let samples: Vec<i32> = reader
            .samples::<i16>()
            .map(|s| i32::from(s.unwrap()))
            .collect();
        total += samples.len() as u64;
        if let Some(n) = next {
            assert_eq!(samples[0], n, "gap or overlap before {path}");
        }
        for w in samples.windows(2) {
            assert_eq!(
                (w[0] + 1) as i16 as i32,
                w[1],
                "discontinuity inside {path}"
            );
        }
        next = samples.last().map(|l| (l + 1) as i16 as i32);
    }
    assert_eq!(
        total,
        recs.iter()
            .map(|r| r["frames"].as_u64().unwrap())
            .sum::<u64>()
    );
}

#[test]
fn run_with_a_synthetic_microphone_records_on_a_machine_without_the_device() {
    use std::process::Command;
    let (_d, dir) = common::tempdir();
    let manifest = common::write(
        &dir,
        "m.kdl",
        "program \"p\"\nmicrophone \"usb\" { device \"NoSuchMic 9000\"; samplerate \"96kHz\" }\nrecording { duration \"1s\"; interval \"2s\" }\n",
    );
    let home = dir.join("home");
    let (mut child, rx) = common::spawn_logged(&[
        "--home",
        home.as_str(),
        "run",
        manifest.as_str(),
        "--broker",
        "memory",
        "--microphone",
        "synthetic",
    ]);
    let seen = common::wait_for_lines(&rx, "a recording", |l| {
        l.iter().any(|l| l.contains("recorded"))
    });
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0), "{seen:#?}");
    // In staging, or already kept by manage-files (no saving rules: everything is kept).
    let mut todo = vec![home.join("data").into_std_path_buf()];
    let mut found = None;
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir)
            .expect("readable")
            .map(|e| e.unwrap().path())
        {
            if e.is_dir() {
                todo.push(e);
            } else if e.extension().is_some_and(|x| x == "wav") {
                found = Some(e);
            }
        }
    }
    let wav = found.expect("a WAV in staging or recordings");
    assert_eq!(wav_frames(wav.to_str().unwrap()), (96_000, 1, 96_000));
}
