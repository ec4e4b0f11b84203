//! The `heartbeat` task through the built-in registry, on real SQLite files: it returns and
//! queues acoupi's `Heartbeat` JSON with this machine's metrics, counts what the store gained
//! since the previous heartbeat, stores a redelivered heartbeat once, queues nothing without
//! `messaging`, keeps the state `acoupi status` reads, and leaves out what it cannot read
//! (a staging path that is no directory, a store that is no database) without failing.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use acoupi::messaging::messages::message_id;
use acoupi::runtime::tasks::{Clock, Registry, Services, TaskContext, TaskError};
use acoupi::spec::Program;
use acoupi::spec::data::{
    Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi::store::Store;
use camino::Utf8Path;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value as Json;
use uuid::Uuid;

const MESSAGING: &str = r#"messaging {
    mqtt host="127.0.0.1" port=1883 topic="acoupi/heartbeat-test"
    heartbeat every="1h"
}"#;

/// The program of `extra` (manifest text), its home and storage under `dir`.
fn program(dir: &Utf8Path, extra: &str) -> Arc<Program> {
    let manifest = format!(
        "program \"hb\"\nmicrophone \"m\" {{ synthetic \"sine\" }}\n\
         detector \"bats\" kind=\"band-energy\" {{ band low=\"2kHz\" high=\"8kHz\" }}\n{extra}\n"
    );
    Arc::new(common::runtime::program_in(dir, &manifest))
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("a valid time")
}

async fn heartbeat(
    program: &Arc<Program>,
    now: Timestamp,
    task_id: &str,
) -> Result<Json, TaskError> {
    let handler = Registry::builtin()
        .get("heartbeat")
        .expect("a heartbeat handler");
    let ctx = TaskContext {
        services: Services::with_clock(Arc::clone(program), Clock::Fixed(now)),
        task_id: task_id.into(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, Vec::new(), serde_json::Map::new()).await
}

/// The metrics of a heartbeat by name: (value, unit); each captured at `sent_on`.
fn metrics(beat: &Json) -> BTreeMap<String, (f64, String)> {
    let list = beat["metrics"].as_array().expect("a metrics list");
    list.iter()
        .map(|m| {
            assert_eq!(m["captured_on"], beat["sent_on"], "{m}");
            assert_eq!(
                m.as_object().expect("an object").len(),
                4,
                "name, value, captured_on, unit: {m}"
            );
            (
                m["name"].as_str().expect("a name").to_owned(),
                (
                    m["value"].as_f64().expect("a number"),
                    m["unit"].as_str().expect("a unit").to_owned(),
                ),
            )
        })
        .collect()
}

/// The outbox's messages: (id, type, content, created_on), oldest first.
fn outbox(path: &Utf8Path) -> Vec<(Uuid, String, Json, String)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the outbox exists");
    let mut stmt = conn
        .prepare(
            "SELECT id, message_type, content, created_on FROM message ORDER BY created_on, rowid",
        )
        .expect("acoupi's message table");
    stmt.query_map([], |r| {
        let content: Vec<u8> = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            serde_json::from_slice(&content).expect("JSON content"),
            r.get(3)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

fn deployment() -> Deployment {
    Deployment {
        id: Uuid::from_u128(1),
        name: "hedge".into(),
        latitude: None,
        longitude: None,
        started_on: at("2026-06-01T18:00:00Z"),
        ended_on: None,
    }
}

/// Stores recording `i` (staged) with an output of `detections` tagged detections; when
/// `kept`, moves it under the recordings folder.
fn store_recording(program: &Program, i: u128, detections: usize, kept: bool) {
    let mut store = Store::open(&program.paths.metadata).expect("the store");
    let start = at("2026-06-01T20:00:00Z") + SignedDuration::from_secs(10 * i as i64);
    let recording = Recording {
        created_on: start,
        duration: 3.0,
        samplerate: 192_000,
        deployment: deployment(),
        path: Some(program.paths.staging.join(format!("{i}.wav"))),
        audio_channels: 1,
        time_expansion: 1.0,
        id: Uuid::from_u128(100 + i),
    };
    store.insert_recording(&recording, None).expect("recording");
    let output = ModelOutput {
        id: Uuid::from_u128(200 + i),
        name_model: "bats".into(),
        recording: recording.clone(),
        detections: (0..detections)
            .map(|k| Detection {
                id: Uuid::from_u128(1000 * (i + 1) + k as u128),
                prediction_type: PredictionType::Event,
                location: None,
                detection_score: 0.8,
                tags: vec![PredictedTag {
                    tag: Tag {
                        key: "species".into(),
                        value: "Myotis".into(),
                    },
                    confidence_score: 0.7,
                }],
            })
            .collect(),
        created_on: start + SignedDuration::from_secs(4),
    };
    store.insert_model_output(&output).expect("output");
    if kept {
        let to = program.paths.recordings.join(format!("2026/06/01/{i}.wav"));
        store.set_recording_path(recording.id, &to).expect("kept");
    }
}

fn tally(program: &Program, overruns: u64) {
    std::fs::create_dir_all(&program.paths.state).expect("state dir");
    std::fs::write(
        program.paths.state.join("recording.json"),
        format!(r#"{{"files": 3, "overruns": {overruns}, "last_file": "/x.wav"}}"#),
    )
    .expect("tally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_queued_in_acoupis_shape_with_counts_since_the_last() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, MESSAGING);
    std::fs::create_dir_all(&program.paths.staging).expect("staging");
    std::fs::write(program.paths.staging.join("a.wav"), [0u8; 1000]).expect("wav");
    std::fs::write(program.paths.staging.join("b.wav"), [0u8; 500]).expect("wav");
    store_recording(&program, 0, 3, true);
    store_recording(&program, 1, 2, false);
    store_recording(&program, 2, 0, true);
    tally(&program, 5);

    let t1 = at("2026-06-01T21:00:00.000250Z");
    let first = heartbeat(&program, t1, "hb-1").await.expect("a heartbeat");
    assert_eq!(first["sent_on"], "2026-06-01T21:00:00.00025Z");
    assert_eq!(first["status"], "OK");
    let device = acoupi::host::Host::detect().device_id;
    assert_eq!(first["device_id"], device.as_str());
    let m = metrics(&first);
    let count = |m: &BTreeMap<String, (f64, String)>, name: &str| -> f64 {
        let (value, unit) = m
            .get(name)
            .unwrap_or_else(|| panic!("no `{name}` in {m:?}"));
        assert_eq!(unit, "count", "{name}");
        *value
    };
    assert_eq!(count(&m, "recordings"), 3.0);
    assert_eq!(count(&m, "detections"), 5.0);
    assert_eq!(count(&m, "kept_recordings"), 2.0);
    assert_eq!(count(&m, "staging_files"), 2.0);
    assert_eq!(count(&m, "outbox_unsent"), 0.0, "counted before it joins");
    assert_eq!(count(&m, "outbox_expired"), 0.0);
    assert_eq!(m["staging_bytes"], (1500.0, "bytes".to_owned()));
    assert_eq!(m["audio_overruns"], (5.0, "samples".to_owned()));
    for (name, unit) in [
        ("free_memory", "bytes"),
        ("staging_free", "bytes"),
        ("storage_free", "bytes"),
    ] {
        let (value, u) = &m[name];
        assert!(*value > 0.0 && u == unit, "{name}: {value} {u}");
    }
    let (cpu, unit) = &m["cpu_usage"];
    assert!(
        (0.0..=100.0).contains(cpu) && unit == "percent",
        "{cpu} {unit}"
    );
    assert_eq!(m["uptime"].1, "seconds");
    assert!(m["uptime"].0 > 0.0);
    // Temperature only where the machine has a sensor (none in most containers).
    let has_sensor = acoupi::host::metrics::temperature().is_some();
    assert_eq!(m.contains_key("temperature"), has_sensor, "{m:?}");
    if let Some((_, unit)) = m.get("temperature") {
        assert_eq!(unit, "celsius");
    }

    // In the outbox as acoupi stores a heartbeat message.
    let queued = outbox(&program.paths.messages);
    assert_eq!(queued.len(), 1);
    let (id, kind, content, created_on) = &queued[0];
    assert_eq!(*id, message_id("heartbeat/hb-1"));
    assert_eq!(kind, "heartbeat");
    assert_eq!(
        content, &first,
        "the queued payload is the returned heartbeat"
    );
    assert_eq!(created_on, "2026-06-01 21:00:00.000250+00:00");

    // The state `acoupi status` reads: the time, the tally and the staging backlog kept.
    let saved: Json = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).expect("state"),
    )
    .expect("JSON");
    assert_eq!(saved["timestamp"], "2026-06-01T21:00:00.00025Z");
    assert_eq!(saved["recording"]["overruns"], 5);
    assert_eq!(saved["staging"]["files"], 2);
    assert_eq!(saved["metrics"], first["metrics"]);

    // An hour on: one recording kept with four detections, one earlier recording kept, seven
    // more samples lost.
    store_recording(&program, 3, 4, true);
    Store::open(&program.paths.metadata)
        .expect("the store")
        .set_recording_path(
            Uuid::from_u128(101),
            &program.paths.recordings.join("2026/06/01/1.wav"),
        )
        .expect("kept");
    tally(&program, 12);
    let t2 = at("2026-06-01T22:00:00Z");
    let second = heartbeat(&program, t2, "hb-2").await.expect("a heartbeat");
    let m = metrics(&second);
    assert_eq!(count(&m, "recordings"), 1.0);
    assert_eq!(count(&m, "detections"), 4.0);
    assert_eq!(count(&m, "kept_recordings"), 2.0);
    assert_eq!(m["audio_overruns"].0, 7.0);
    assert_eq!(count(&m, "outbox_unsent"), 1.0, "the first heartbeat waits");

    // The same task delivered again: its message is stored once, as first built.
    let again = heartbeat(&program, t2 + SignedDuration::from_secs(30), "hb-2")
        .await
        .expect("a redelivery succeeds");
    assert_eq!(again["status"], "OK");
    let queued = outbox(&program.paths.messages);
    let ids: Vec<Uuid> = queued.iter().map(|q| q.0).collect();
    assert_eq!(
        ids,
        [message_id("heartbeat/hb-1"), message_id("heartbeat/hb-2")]
    );
    assert_eq!(queued[1].2, second);

    // Nothing new since: zero counts, the backlog grown by the two queued heartbeats.
    let third = heartbeat(&program, t2 + SignedDuration::from_secs(3600), "hb-3")
        .await
        .expect("a heartbeat");
    let m = metrics(&third);
    for name in ["recordings", "detections", "kept_recordings"] {
        assert_eq!(count(&m, name), 0.0, "{name}");
    }
    assert_eq!(m["audio_overruns"].0, 0.0);
    assert_eq!(count(&m, "outbox_unsent"), 2.0);
    assert_eq!(outbox(&program.paths.messages).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_messaging_a_heartbeat_is_only_logged_and_saved() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, "");
    assert!(program.messaging.is_none());
    let beat = heartbeat(&program, at("2026-06-01T21:00:00Z"), "hb-1")
        .await
        .expect("a heartbeat");
    let m = metrics(&beat);
    assert!(!m.contains_key("outbox_unsent") && !m.contains_key("outbox_expired"));
    assert_eq!(m["recordings"].0, 0.0);
    assert_eq!(
        m["staging_files"].0, 0.0,
        "a missing staging folder holds nothing"
    );
    assert!(!m.contains_key("audio_overruns"), "no tally yet");
    assert!(
        !program.paths.messages.exists(),
        "no outbox is made without a destination"
    );
    let saved: Json = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).expect("state"),
    )
    .expect("JSON");
    assert_eq!(saved["timestamp"], "2026-06-01T21:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_read_is_left_out_and_the_heartbeat_still_goes() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, MESSAGING);
    // The staging path is a file, so it cannot be listed; the store is no database.
    std::fs::write(&program.paths.staging, "not a folder").expect("file");
    std::fs::write(
        &program.paths.metadata,
        "not sqlite at all, just text. ".repeat(100),
    )
    .expect("file");
    let beat = heartbeat(&program, at("2026-06-01T21:00:00Z"), "hb-1")
        .await
        .expect("the heartbeat succeeds");
    let m = metrics(&beat);
    for absent in [
        "staging_files",
        "staging_bytes",
        "recordings",
        "detections",
        "kept_recordings",
    ] {
        assert!(!m.contains_key(absent), "`{absent}` in {m:?}");
    }
    for present in ["free_memory", "uptime", "storage_free", "outbox_unsent"] {
        assert!(m.contains_key(present), "no `{present}` in {m:?}");
    }
    assert_eq!(
        outbox(&program.paths.messages).len(),
        1,
        "queued all the same"
    );
    let saved: Json = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).expect("state"),
    )
    .expect("JSON");
    let error = saved["staging"]["error"]
        .as_str()
        .expect("the staging error");
    assert!(error.contains(program.paths.staging.as_str()), "{error}");

    // Once the store is readable again, the next heartbeat counts from its start.
    std::fs::remove_file(&program.paths.metadata).expect("rm");
    std::fs::remove_file(&program.paths.staging).expect("rm");
    store_recording(&program, 0, 2, false);
    let next = heartbeat(&program, at("2026-06-01T22:00:00Z"), "hb-2")
        .await
        .expect("a heartbeat");
    let m = metrics(&next);
    assert_eq!((m["recordings"].0, m["detections"].0), (1.0, 2.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_the_outbox_refuses_fails_and_its_span_is_counted_again() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, MESSAGING);
    // A folder where the outbox file should be: it cannot be opened.
    std::fs::create_dir_all(&program.paths.messages).expect("mkdir");
    store_recording(&program, 0, 2, true);
    let err = heartbeat(&program, at("2026-06-01T21:00:00Z"), "hb-1")
        .await
        .expect_err("no outbox to queue in");
    assert!(matches!(err, TaskError::Transient(_)), "{err:?}");
    assert!(
        err.to_string().contains(program.paths.messages.as_str()),
        "{err}"
    );
    // `acoupi status` still sees the heartbeat.
    let saved: Json = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).expect("state"),
    )
    .expect("JSON");
    assert_eq!(saved["timestamp"], "2026-06-01T21:00:00Z");

    // Once the outbox can be written, the next heartbeat counts what the failed one saw.
    std::fs::remove_dir(&program.paths.messages).expect("rmdir");
    let next = heartbeat(&program, at("2026-06-01T22:00:00Z"), "hb-2")
        .await
        .expect("a heartbeat");
    let m = metrics(&next);
    assert_eq!(
        (m["recordings"].0, m["detections"].0, m["kept_recordings"].0),
        (1.0, 2.0, 1.0)
    );
    let queued = outbox(&program.paths.messages);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0, message_id("heartbeat/hb-2"));
}
