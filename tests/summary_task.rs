//! The `summary` task through the built-in registry, on real SQLite files: over the window
//! (now − interval, now] it queues one acoupi summary message per enabled summariser
//! (statistics per tag value; counts and means per threshold band, each threshold a band's
//! lower bound), stores a redelivered task's messages once, still reports an empty window, and
//! does nothing for a program without `summary`.

mod common;

use std::sync::Arc;

use acoupi::messaging::messages::message_id;
use acoupi::runtime::tasks::{Clock, Registry, Services, TaskContext};
use acoupi::spec::Program;
use acoupi::spec::data::{
    Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi::store::Store;
use camino::Utf8Path;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value as Json, json};
use uuid::Uuid;

const MESSAGING: &str = r#"messaging {
    mqtt host="127.0.0.1" port=1883 topic="acoupi/summary-test"
}"#;

/// The program of `extra` (manifest text), its home and storage under `dir`.
fn program(dir: &Utf8Path, extra: &str) -> Arc<Program> {
    let manifest = format!(
        "program \"sum\"\nmicrophone \"m\" {{ synthetic \"sine\" }}\n\
         detector \"bats\" kind=\"band-energy\" {{ band low=\"2kHz\" high=\"8kHz\" }}\n{extra}\n"
    );
    Arc::new(common::runtime::program_in(dir, &manifest))
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("a valid time")
}

async fn summary(program: &Arc<Program>, now: Timestamp, task_id: &str) -> Json {
    let handler = Registry::builtin()
        .get("summary")
        .expect("a summary handler");
    let ctx = TaskContext {
        services: Services::with_clock(Arc::clone(program), Clock::Fixed(now)),
        task_id: task_id.into(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, Vec::new(), serde_json::Map::new())
        .await
        .expect("the summary succeeds")
}

/// The outbox's messages: (id, type, content), oldest first.
fn outbox(path: &Utf8Path) -> Vec<(Uuid, String, Json)> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the outbox exists");
    let mut stmt = conn
        .prepare("SELECT id, message_type, content FROM message ORDER BY created_on, rowid")
        .expect("acoupi's message table");
    stmt.query_map([], |r| {
        let content: Vec<u8> = r.get(2)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            serde_json::from_slice(&content).expect("JSON content"),
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Stores a recording with one model output made at `made`, one detection per `(value,
/// score)` tag.
fn store_output(program: &Program, i: u128, made: Timestamp, tags: &[(&str, f64)]) {
    let mut store = Store::open(&program.paths.metadata).expect("the store");
    let recording = Recording {
        created_on: made - SignedDuration::from_secs(5),
        duration: 3.0,
        samplerate: 192_000,
        deployment: Deployment {
            id: Uuid::from_u128(1),
            name: "hedge".into(),
            latitude: None,
            longitude: None,
            started_on: at("2026-06-01T18:00:00Z"),
            ended_on: None,
        },
        path: Some(program.paths.staging.join(format!("{i}.wav"))),
        audio_channels: 1,
        time_expansion: 1.0,
        id: Uuid::from_u128(100 + i),
    };
    store.insert_recording(&recording, None).expect("recording");
    let output = ModelOutput {
        id: Uuid::from_u128(200 + i),
        name_model: "bats".into(),
        recording,
        detections: tags
            .iter()
            .enumerate()
            .map(|(k, (value, score))| Detection {
                id: Uuid::from_u128(1000 * (i + 1) + k as u128),
                prediction_type: PredictionType::Event,
                location: None,
                detection_score: *score,
                tags: vec![PredictedTag {
                    tag: Tag {
                        key: "species".into(),
                        value: (*value).into(),
                    },
                    confidence_score: *score,
                }],
            })
            .collect(),
        created_on: made,
    };
    store.insert_model_output(&output).expect("output");
}

const BOTH: &str = r#"summary every="1h" {
    statistics
    thresholds low=0.3 mid=0.6 high=0.9
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_of_the_last_interval_are_queued_as_acoupis() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, &format!("{MESSAGING}\n{BOTH}"));
    let now = at("2026-06-01T22:00:00Z");
    let hour = SignedDuration::from_secs(3600);
    let micro = SignedDuration::from_micros(1);
    // Outside the window: at its start (left out) and after its end.
    store_output(&program, 0, now - hour, &[("Myotis", 0.99)]);
    store_output(&program, 1, now + micro, &[("Myotis", 0.99)]);
    // Inside: just after the start, in the middle, at the end (taken in).
    store_output(
        &program,
        2,
        now - hour + micro,
        &[("Myotis", 0.3), ("Pipistrellus", 0.95)],
    );
    store_output(
        &program,
        3,
        now - hour / 2,
        &[("Myotis", 0.6), ("Myotis", 0.52), ("Nyctalus", 0.1)],
    );
    store_output(&program, 4, now, &[("Myotis", 0.9)]);

    let got = summary(&program, now, "sum-1").await;
    let interval = json!({
        "starttime": "2026-06-01T21:00:00+00:00",
        "endtime": "2026-06-01T22:00:00+00:00"
    });
    let statistics = json!({
        "Myotis": {"mean": 0.58, "min": 0.3, "max": 0.9, "count": 4},
        "Nyctalus": {"mean": 0.1, "min": 0.1, "max": 0.1, "count": 1},
        "Pipistrellus": {"mean": 0.95, "min": 0.95, "max": 0.95, "count": 1},
        "timeinterval": interval,
    });
    // Bands [0.3, 0.6), [0.6, 0.9), [0.9, 1]; 0.1 is below them all.
    let thresholds = json!({
        "Myotis": {
            "count_low_threshold": 2, "count_mid_threshold": 1, "count_high_threshold": 1,
            "mean_low_threshold": 0.41, "mean_mid_threshold": 0.6, "mean_high_threshold": 0.9
        },
        "Nyctalus": {
            "count_low_threshold": 0, "count_mid_threshold": 0, "count_high_threshold": 0,
            "mean_low_threshold": null, "mean_mid_threshold": null, "mean_high_threshold": null
        },
        "Pipistrellus": {
            "count_low_threshold": 0, "count_mid_threshold": 0, "count_high_threshold": 1,
            "mean_low_threshold": null, "mean_mid_threshold": null, "mean_high_threshold": 0.95
        },
        "timeinterval": interval,
    });
    assert_eq!(
        got,
        json!({"statistics": statistics, "thresholds": thresholds})
    );

    let queued = outbox(&program.paths.messages);
    assert_eq!(queued.len(), 2, "one message per summariser");
    let find = |name: &str| {
        let id = message_id(&format!("summary/{name}/sum-1"));
        queued
            .iter()
            .find(|q| q.0 == id)
            .unwrap_or_else(|| panic!("no `{name}` message in {queued:?}"))
    };
    for (name, payload) in [("statistics", &statistics), ("thresholds", &thresholds)] {
        let (_, kind, content) = find(name);
        assert_eq!(kind, "summary");
        assert_eq!(content, payload, "{name}");
    }

    // Delivered again (a little later): stored once, as first built.
    summary(&program, now + SignedDuration::from_secs(20), "sum-1").await;
    let again = outbox(&program.paths.messages);
    assert_eq!(again, queued);

    // An empty window still reports, with only its interval.
    let later = now + hour * 10;
    let empty = summary(&program, later, "sum-2").await;
    let interval = json!({
        "starttime": "2026-06-02T07:00:00+00:00",
        "endtime": "2026-06-02T08:00:00+00:00"
    });
    assert_eq!(
        empty,
        json!({
            "statistics": {"timeinterval": interval},
            "thresholds": {"timeinterval": interval},
        })
    );
    assert_eq!(outbox(&program.paths.messages).len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_enabled_summarisers_run_over_the_tasks_own_interval() {
    let (_d, dir) = common::tempdir();
    let program = program(
        &dir,
        &format!("{MESSAGING}\nsummary every=\"10m\" {{\n    statistics\n}}"),
    );
    let now = at("2026-06-01T22:00:00Z");
    store_output(
        &program,
        0,
        now - SignedDuration::from_secs(11 * 60),
        &[("Myotis", 0.5)],
    );
    store_output(
        &program,
        1,
        now - SignedDuration::from_secs(9 * 60),
        &[("Myotis", 0.7)],
    );
    let got = summary(&program, now, "sum-1").await;
    assert_eq!(
        got,
        json!({"statistics": {
            "Myotis": {"mean": 0.7, "min": 0.7, "max": 0.7, "count": 1},
            "timeinterval": {
                "starttime": "2026-06-01T21:50:00+00:00",
                "endtime": "2026-06-01T22:00:00+00:00"
            }
        }})
    );
    let queued = outbox(&program.paths.messages);
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].0, message_id("summary/statistics/sum-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_without_summary_has_nothing_to_summarise() {
    let (_d, dir) = common::tempdir();
    let program = program(&dir, MESSAGING);
    assert!(program.summary.is_none());
    let got = summary(&program, at("2026-06-01T22:00:00Z"), "sum-1").await;
    assert_eq!(got, Json::Null);
    assert!(!program.paths.messages.exists(), "nothing opened or queued");
}
