//! Cross-checks the metadata store (`acoupi::store`) against acoupi 0.8.0's own Python
//! `SqliteStore`, run by `tests/acoupi/store.py`.
//!
//! In: a store written through our Rust API (a deployment, recordings with microsecond times,
//! model outputs with located and whole-recording detections and tags); a store written by
//! acoupi's Python; an empty store made by each. Out: acoupi reads every field we wrote (time
//! expansion aside, which its schema cannot hold); we read every field acoupi wrote; each
//! acoupi table has, in our file, exactly the columns, types, constraints, indexes and foreign
//! keys acoupi declares; and our store still opens after acoupi has opened (and rewritten) it.
//!
//! Needs a Python with `acoupi==0.8.0` and pydantic: `ACOUPI_PYTHON_ACOUPI`, else
//! `target/acoupi-venv/bin/python` (which `scripts/test` creates).

mod common;

use acoupi::spec::data::{Deployment, ModelOutput, Recording};
use acoupi::store::{Filter, Store};
use camino::{Utf8Path, Utf8PathBuf};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value as Json;
use uuid::Uuid;

/// Runs `store.py` with `args` and parses the JSON it prints.
fn acoupi(args: &[&str]) -> Json {
    common::acoupi_script("store.py", args)
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("a UTF-8 path");
    (dir, path)
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a valid timestamp literal")
}

fn parse<T: serde::de::DeserializeOwned>(v: &Json, what: &str) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}\n{v:#}"))
}

/// What we write: two recordings (one on a whole second, one with microseconds, one without a
/// path), each with a model output; detections of every type, with and without a box, with
/// zero to two tags.
fn ours() -> (Deployment, Vec<ModelOutput>) {
    let deployment = Deployment {
        id: Uuid::new_v4(),
        name: "written by acoupi-rs".into(),
        latitude: Some(51.5074),
        longitude: Some(-0.1278),
        started_on: ts("2024-01-05T03:04:05.123456Z"),
        ended_on: Some(ts("2024-02-01T00:00:00Z")),
    };
    let recording = |i: i64, path: Option<&str>| Recording {
        created_on: ts("2024-01-05T21:00:00Z") + SignedDuration::from_micros(10_000_001 * i),
        duration: 3.0,
        samplerate: 256_000,
        deployment: deployment.clone(),
        path: path.map(Utf8PathBuf::from),
        audio_channels: 2,
        time_expansion: 1.0,
        id: Uuid::new_v4(),
    };
    let tag = |key: &str, value: &str, score: f64| acoupi::spec::data::PredictedTag {
        tag: acoupi::spec::data::Tag {
            key: key.into(),
            value: value.into(),
        },
        confidence_score: score,
    };
    use acoupi::spec::data::{BoundingBox, Detection, PredictionType};
    let outputs = [
        recording(0, Some("/run/shm/acoupi/a.wav")),
        recording(1, None),
    ]
    .into_iter()
    .map(|r| ModelOutput {
        id: Uuid::new_v4(),
        name_model: "band-energy".into(),
        created_on: r.created_on + SignedDuration::from_micros(3_500_250),
        recording: r,
        detections: vec![
            Detection {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Event,
                location: Some(BoundingBox::new(0.125, 20_000.0, 0.25, 61_000.5)),
                detection_score: 0.875,
                tags: vec![
                    tag("species", "Pipistrellus pipistrellus", 0.75),
                    tag("call", "feeding buzz", 0.5),
                ],
            },
            Detection {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Presence,
                location: None,
                detection_score: 0.25,
                tags: vec![tag("species", "Myotis", 0.125)],
            },
            Detection {
                id: Uuid::new_v4(),
                prediction_type: PredictionType::Sequence,
                location: Some(BoundingBox::new(1.0, 1_000.0, 2.5, 2_000.0)),
                detection_score: 1.0,
                tags: vec![],
            },
        ],
    })
    .collect();
    (deployment, outputs)
}

fn write_ours(path: &Utf8Path) -> (Deployment, Vec<ModelOutput>) {
    let (deployment, outputs) = ours();
    let mut store = Store::open(path).expect("open our store");
    store.upsert_deployment(&deployment).expect("deployment");
    for (i, o) in outputs.iter().enumerate() {
        store
            .insert_recording(&o.recording, Some(&format!("task-{i}")))
            .expect("recording");
        store.insert_model_output(o).expect("model output");
    }
    (deployment, outputs)
}

/// Sorted by id, so lists compare regardless of query order.
fn by_id(mut v: Vec<ModelOutput>) -> Vec<ModelOutput> {
    v.sort_by_key(|o| o.id);
    v
}

#[test]
fn acoupi_reads_what_we_write() {
    let (_d, dir) = tempdir();
    let path = dir.join("metadata.db");
    let (deployment, outputs) = write_ours(&path);
    let ids: Vec<String> = outputs.iter().map(|o| o.recording.id.to_string()).collect();
    let mut args = vec!["read", path.as_str()];
    args.extend(ids.iter().map(String::as_str));
    let read = acoupi(&args);
    assert_eq!(read["acoupi"], "0.8.0", "the helper must run acoupi 0.8.0");

    let current: Deployment = parse(&read["current_deployment"], "current deployment");
    assert_eq!(current, deployment);

    let got: Vec<ModelOutput> = parse(&read["model_outputs"], "model outputs");
    assert_eq!(by_id(got), by_id(outputs.clone()));

    let recordings = read["recordings"].as_array().expect("a list");
    assert_eq!(recordings.len(), outputs.len());
    for entry in recordings {
        let r: Recording = parse(&entry["recording"], "recording");
        let o = outputs
            .iter()
            .find(|o| o.recording.id == r.id)
            .expect("a recording we wrote");
        assert_eq!(r, o.recording);
        let with: Vec<ModelOutput> = parse(&entry["model_outputs"], "recording's outputs");
        assert_eq!(with, vec![o.clone()]);
    }

    let mut detections: Vec<acoupi::spec::data::Detection> =
        parse(&read["detections"], "detections");
    let mut expected: Vec<_> = outputs.iter().flat_map(|o| o.detections.clone()).collect();
    detections.sort_by_key(|d| d.id);
    expected.sort_by_key(|d| d.id);
    assert_eq!(detections, expected);
    assert_eq!(read["predicted_tags"].as_array().map(Vec::len), Some(6));

    // acoupi rewrote user_version and re-ran its DDL on open; our store still opens, as is.
    let store = Store::open(&path).expect("reopen after acoupi");
    assert_eq!(
        by_id(store.model_outputs(&Filter::default()).expect("query")),
        by_id(outputs)
    );
    let recording = store
        .recording(Uuid::parse_str(&ids[0]).expect("uuid"))
        .expect("query")
        .expect("stored");
    assert_eq!(recording.task_id.as_deref(), Some("task-0"));
}

#[test]
fn we_read_what_acoupi_writes() {
    let (_d, dir) = tempdir();
    let path = dir.join("metadata.db");
    let written = acoupi(&["write", path.as_str()]);
    let deployment: Deployment = parse(&written["deployment"], "deployment");
    let outputs: Vec<ModelOutput> = parse(&written["model_outputs"], "model outputs");

    // Read-only first: a file only acoupi has written, never migrated.
    let bytes = std::fs::read(&path).expect("read the file");
    let store = Store::open_read_only(&path).expect("open read-only");
    assert_eq!(
        store.current_deployment().expect("query"),
        Some(deployment.clone())
    );
    assert_eq!(
        by_id(store.model_outputs(&Filter::default()).expect("query")),
        by_id(outputs.clone())
    );
    drop(store);
    assert_eq!(
        std::fs::read(&path).expect("read"),
        bytes,
        "read-only open wrote"
    );

    // Then adopted for writing: migrated, and everything still there.
    let mut store = Store::open(&path).expect("adopt");
    assert_eq!(
        by_id(store.model_outputs(&Filter::default()).expect("query")),
        by_id(outputs.clone())
    );
    for o in &outputs {
        let r = store
            .recording(o.recording.id)
            .expect("query")
            .expect("stored");
        assert_eq!(r.recording, o.recording);
        assert_eq!(r.task_id, None);
    }
    let found = store.detections(&Filter::default()).expect("query");
    assert_eq!(
        found.len(),
        outputs.iter().map(|o| o.detections.len()).sum::<usize>()
    );
    // And acoupi's recordings stay idempotent under our insert.
    let again = store
        .insert_recording(&outputs[0].recording, Some("late-task"))
        .expect("insert");
    assert!(!again.created);
}

#[test]
fn our_tables_are_acoupis_column_for_column() {
    let (_d, dir) = tempdir();
    let theirs = dir.join("acoupi.db");
    let ours = dir.join("ours.db");
    // An empty store made by acoupi's SqliteStore (its constructor runs its DDL).
    acoupi(&["read", theirs.as_str()]);
    drop(Store::open(&ours).expect("create ours"));
    let a = acoupi(&["describe", theirs.as_str()]);
    let b = acoupi(&["describe", ours.as_str()]);
    for table in [
        "deployment",
        "recording",
        "model_output",
        "detection",
        "predicted_tag",
    ] {
        assert_eq!(
            b["tables"][table], a["tables"][table],
            "table `{table}` differs from acoupi's"
        );
    }
    assert_eq!(b["sqlite_master"], a["sqlite_master"], "DDL text differs");
    assert_eq!(b["user_version"], 1);
}
