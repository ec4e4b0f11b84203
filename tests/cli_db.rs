//! `acoupi db` as a user runs it: a built home whose metadata store was written through the
//! Rust API, read back as JSON, CSV and tables with filters; `db info`; and bad input.

mod common;

use acoupi::spec::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi::store::Store;
use camino::Utf8PathBuf;
use common::{code, run, stderr, stdout, tempdir, write};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value as Json;
use uuid::Uuid;

const MANIFEST: &str =
    "program \"p\"\nmicrophone \"m\" { synthetic \"sweep\"; samplerate \"192kHz\" }\n";

fn ts(s: &str) -> Timestamp {
    s.parse().expect("a valid timestamp literal")
}

/// A built home and the path of its (not yet written) metadata store.
fn home() -> (tempfile::TempDir, Utf8PathBuf, Utf8PathBuf) {
    let (d, dir) = tempdir();
    let manifest = write(&dir, "acoupi.kdl", MANIFEST);
    let home = dir.join("home");
    let out = run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let program: Json = serde_json::from_slice(
        &std::fs::read(home.join("config/program.json")).expect("program.json"),
    )
    .expect("json");
    let metadata = Utf8PathBuf::from(program["paths"]["metadata"].as_str().expect("a path"));
    (d, home, metadata)
}

/// Three recordings an hour apart, each with one output: detection scores 0.9 (Myotis, boxed)
/// and 0.2 (Nyctalus, no box).
fn fill(path: &Utf8PathBuf) -> Vec<ModelOutput> {
    let mut store = Store::open(path).expect("open");
    let deployment = Deployment {
        id: Uuid::from_u128(1),
        name: "hedge".into(),
        latitude: None,
        longitude: None,
        started_on: ts("2024-05-01T00:00:00Z"),
        ended_on: None,
    };
    let tag = |value: &str| PredictedTag {
        tag: Tag {
            key: "species".into(),
            value: value.into(),
        },
        confidence_score: 0.5,
    };
    (0..3)
        .map(|i| {
            let recording = Recording {
                created_on: ts("2024-05-01T21:00:00.5Z") + SignedDuration::from_hours(i),
                duration: 3.0,
                samplerate: 192_000,
                deployment: deployment.clone(),
                path: Some(format!("/data/{i}.wav").into()),
                audio_channels: 1,
                time_expansion: 1.0,
                id: Uuid::from_u128(100 + i as u128),
            };
            store
                .insert_recording(&recording, Some(&format!("task-{i}")))
                .expect("recording");
            let output = ModelOutput {
                id: Uuid::from_u128(200 + i as u128),
                name_model: "bats".into(),
                created_on: recording.created_on + SignedDuration::from_secs(4),
                recording,
                detections: vec![
                    Detection {
                        id: Uuid::from_u128(300 + 2 * i as u128),
                        prediction_type: PredictionType::Event,
                        location: Some(BoundingBox::new(0.5, 20_000.0, 0.75, 40_000.0)),
                        detection_score: 0.9,
                        tags: vec![tag("Myotis")],
                    },
                    Detection {
                        id: Uuid::from_u128(301 + 2 * i as u128),
                        prediction_type: PredictionType::Presence,
                        location: None,
                        detection_score: 0.2,
                        tags: vec![tag("Nyctalus")],
                    },
                ],
            };
            store.insert_model_output(&output).expect("output");
            output
        })
        .collect()
}

fn db(home: &Utf8PathBuf, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--home", home.as_str(), "db"];
    all.extend_from_slice(args);
    run(&all)
}

fn json(out: &std::process::Output) -> Json {
    assert_eq!(code(out), 0, "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn db_reads_what_the_store_wrote() {
    let (_d, home, metadata) = home();
    let outputs = fill(&metadata);

    let all = json(&db(&home, &["outputs", "--format", "json"]));
    let expected: Vec<Json> = outputs
        .iter()
        .rev()
        .map(|o| serde_json::to_value(o).expect("serialisable"))
        .collect();
    assert_eq!(
        all,
        Json::Array(expected),
        "outputs, newest first, in acoupi's shape"
    );

    let found = json(&db(
        &home,
        &[
            "detections",
            "--since",
            "2024-05-01T22:00:00Z",
            "--min-score",
            "0.5",
            "--tag",
            "species=Myotis",
            "--detector",
            "bats",
            "--format",
            "json",
        ],
    ));
    let ids: Vec<&str> = found
        .as_array()
        .expect("an array")
        .iter()
        .map(|d| d["id"].as_str().expect("an id"))
        .collect();
    assert_eq!(
        ids,
        [Uuid::from_u128(304), Uuid::from_u128(302)].map(|u| u.to_string())
    );
    let first = &found[0];
    assert_eq!(first["location"]["type"], "BoundingBox");
    assert_eq!(first["tags"][0]["tag"]["value"], "Myotis");
    assert_eq!(first["name_model"], "bats");
    assert_eq!(first["created_on"], "2024-05-01T23:00:04.5Z");

    let recs = json(&db(
        &home,
        &[
            "recordings",
            "--until",
            "2024-05-01T22:00:00+00:00",
            "--format",
            "json",
        ],
    ));
    assert_eq!(recs.as_array().map(Vec::len), Some(1));
    assert_eq!(recs[0]["id"], Uuid::from_u128(100).to_string());
    assert_eq!(recs[0]["created_on"], "2024-05-01T21:00:00.5Z");
    assert_eq!(recs[0]["task_id"], "task-0");
    assert_eq!(recs[0]["deployment"]["name"], "hedge");

    let newest = json(&db(
        &home,
        &["recordings", "--limit", "1", "--format", "json"],
    ));
    assert_eq!(newest[0]["id"], Uuid::from_u128(102).to_string());
    let none = json(&db(
        &home,
        &["outputs", "--since", "2024-05-02", "--format", "json"],
    ));
    assert_eq!(none, Json::Array(vec![]));

    let csv = db(
        &home,
        &["detections", "--tag", "species=Nyctalus", "--format", "csv"],
    );
    assert_eq!(code(&csv), 0, "{}", stderr(&csv));
    let text = stdout(&csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("id,created_on,name_model,prediction_type"),
        "{text}"
    );
    assert!(lines[1].contains("species=Nyctalus (0.5)"), "{text}");

    let table = db(&home, &["recordings"]);
    assert_eq!(code(&table), 0, "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("id "), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn db_info_reports_counts_and_integrity() {
    let (_d, home, metadata) = home();
    fill(&metadata);
    let info = json(&db(&home, &["info", "--format", "json"]));
    assert_eq!(info["path"], metadata.as_str());
    assert_eq!(info["user_version"], 1);
    assert_eq!(info["integrity"], serde_json::json!(["ok"]));
    // Written and closed: the log is checkpointed, so the pages are all in the file.
    let size = std::fs::metadata(&metadata).expect("the file").len();
    assert_eq!(info["size_bytes"], size, "{info}");
    let count = |table: &str| {
        info["tables"]
            .as_array()
            .expect("tables")
            .iter()
            .find(|t| t["table"] == table)
            .map(|t| t["rows"].clone())
    };
    assert_eq!(count("recording"), Some(3.into()));
    assert_eq!(count("detection"), Some(6.into()));
    assert_eq!(count("predicted_tag"), Some(6.into()));
    let text = db(&home, &["info"]);
    assert_eq!(code(&text), 0, "{}", stderr(&text));
    assert!(
        stdout(&text).contains("integrity       ok"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn db_info_fails_on_a_damaged_store_and_says_what_is_wrong() {
    let (_d, home, metadata) = home();
    fill(&metadata);
    // A table of some pages beside the store's own, then one of its leaf pages overwritten in
    // place, as a failing card might: the store opens and counts its tables, and only the
    // integrity check reads that page. The store is vacuumed first so that it has no free
    // pages: every page the new table takes is then appended, and the file's last page is one
    // of that table's leaves whatever the store held before.
    let (last, page_size): (i64, i64) = {
        let conn = rusqlite::Connection::open(metadata.as_std_path()).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             VACUUM;
             CREATE TABLE filler (a INTEGER PRIMARY KEY, b TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO filler (b) SELECT printf('%060d', i) FROM n;",
        )
        .expect("filled");
        let pragma = |name: &str| -> i64 {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .expect(name)
        };
        let root: i64 = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = 'filler'",
                [],
                |r| r.get(0),
            )
            .expect("root page");
        assert_eq!(pragma("freelist_count"), 0);
        let last = pragma("page_count");
        assert!(last > root + 10, "the table has leaves after its root");
        (last, pragma("page_size"))
    };
    let mut bytes = std::fs::read(&metadata).expect("read");
    // Pages count from 1. A leaf's header is 8 bytes, then its cell pointers: the first ones
    // (a leaf has at least one cell) made to point past the page.
    let at = usize::try_from((last - 1) * page_size).expect("an offset");
    bytes[at + 8..at + 300].fill(0xff);
    std::fs::write(&metadata, bytes).expect("write");
    let out = db(&home, &["info", "--format", "json"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed its integrity check"),
        "{}",
        stderr(&out)
    );
    let info: Json = serde_json::from_slice(&out.stdout).expect("the report, as JSON");
    let integrity = info["integrity"].as_array().expect("a list");
    // The damaged cells are named, and SQLite's own stop on the damage is kept as a problem
    // instead of ending the report.
    let said = |what: &str| {
        integrity
            .iter()
            .any(|p| p.as_str().is_some_and(|p| p.contains(what)))
    };
    assert!(said("out of range"), "{integrity:?}");
    assert!(said("malformed"), "{integrity:?}");
}

#[test]
fn db_refuses_bad_input_and_a_missing_store_clearly() {
    let (_d, home, metadata) = home();
    let out = db(&home, &["info"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains(metadata.as_str()), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing has been recorded"),
        "{}",
        stderr(&out)
    );
    assert!(!metadata.exists(), "a read created the store");

    fill(&metadata);
    for (args, needle) in [
        (&["detections", "--since", "yesterday"][..], "is not a time"),
        (&["detections", "--min-score", "2"], "is not a score"),
        (&["detections", "--tag", "Myotis"], "is not a tag"),
        (&["detections", "--limit", "ten"], "--limit"),
        (&["detections", "--format", "xml"], "--format"),
    ] {
        let out = db(&home, args);
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }

    std::fs::write(&metadata, "garbage, not a database at all. ".repeat(64)).expect("clobber");
    let out = db(&home, &["recordings"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("file is not a database"),
        "{}",
        stderr(&out)
    );
}
