//! The whole monitoring pipeline, end to end, as a user runs it: `acoupi run` of a manifest
//! with a synthetic microphone (a bat-like sweep every second, cut into half-second files, so
//! every other file holds a call), the band-energy detector, keep-if-detection saving and MQTT.
//!
//! Online, against the shared Mosquitto: the sensor records, detects, stores, keeps the files
//! with calls in date folders and deletes the others, and a real subscriber receives acoupi's
//! JSON: detections as `ModelOutput`s, kept recordings as `Recording`s, heartbeats as
//! `Heartbeat`s, each on `<topic>/<type>`.
//!
//! Offline: the broker's port is closed while the sensor runs, so every message waits in the
//! outbox; the sensor is stopped, a private Mosquitto is started on that port, the sensor is
//! started again, and every message made offline arrives, in the order it was made.

mod common;

use std::time::Duration;

use acoupi::spec::data::{ModelOutput, Recording};
use acoupi::store::{Filter, Outbox, Store};
use camino::Utf8Path;
use common::mosquitto::{PrivateMosquitto, Subscriber, free_port, require_shared, unique_topic};
use common::sensor::Sensor;
use serde_json::Value as Json;

fn manifest(port: u16, topic: &str) -> String {
    format!(
        r#"acoupi version=1
program "field-test" {{
    timezone "UTC"
    location latitude=51.5 longitude=-0.12
    device-id "test-pi-7"
}}
microphone "m" {{
    synthetic "sweep" from="18kHz" to="8kHz" length="5ms" every="1s"
    samplerate "48kHz"
}}
recording {{
    mode "continuous"
    duration "500ms"
}}
detector "bats" kind="band-energy" {{
    band low="5kHz" high="20kHz"
}}
saving {{
    keep-if detection min-score=0.5
}}
messaging {{
    mqtt host="127.0.0.1" port={port} topic="{topic}" {{
        topic-per-type #true
        timeout "2s"
    }}
    send every="1s"
    heartbeat every="1s"
    message detection min-score=0.5
    message recording
}}
"#
    )
}

fn program(home: &Utf8Path) -> acoupi::spec::Program {
    serde_json::from_str(
        &std::fs::read_to_string(home.join("config/program.json")).expect("program.json"),
    )
    .expect("program.json parses")
}

/// Every message in the outbox: (type, content), in the order they were made.
fn outbox_messages(path: &Utf8Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        path.as_std_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the outbox exists");
    let mut stmt = conn
        .prepare(
            "SELECT m.message_type, CAST(m.content AS TEXT) FROM message m
             JOIN acoupi_rs_message a ON a.message_id = m.id
             ORDER BY a.created_us, m.id",
        )
        .expect("query");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// A real subscriber (QoS 1) on its own runtime, read from synchronous test code.
struct Received {
    rt: tokio::runtime::Runtime,
    sub: Subscriber,
    got: Vec<(String, String)>,
}

impl Received {
    /// Subscribes to `filter` on 127.0.0.1:`port`; returns once the broker acknowledged it.
    fn start(port: u16, filter: &str) -> Received {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let sub = rt.block_on(Subscriber::start(port, filter, None));
        Received {
            rt,
            sub,
            got: Vec::new(),
        }
    }

    /// Collects messages until `done` holds for all received so far; panics after `within`.
    fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        done: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let deadline = std::time::Instant::now() + within;
        while !done(&self.got) {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; received {:#?}",
                self.got.iter().map(|(t, _)| t).collect::<Vec<_>>()
            );
            let more = self
                .rt
                .block_on(self.sub.take(1, Duration::from_millis(200)));
            self.got.extend(
                more.into_iter()
                    .map(|(t, p)| (t, String::from_utf8(p).expect("UTF-8 JSON"))),
            );
        }
        self.got.clone()
    }
}

fn count(received: &[(String, String)], topic: &str) -> usize {
    received.iter().filter(|(t, _)| t == topic).count()
}

#[test]
fn the_pipeline_records_detects_keeps_and_reports_over_mqtt() {
    let (_d, dir) = common::tempdir();
    require_shared();
    let topic = unique_topic("online");
    let path = common::write(&dir, "field.kdl", manifest(1883, &topic));
    let home = dir.join("home");
    let mut subscriber = Received::start(1883, &format!("{topic}/#"));
    let mut sensor = Sensor::start(&home, &path, dir.join("run.log"));
    let detection = format!("{topic}/detection");
    let heartbeat = format!("{topic}/heartbeat");
    let recording = format!("{topic}/recording");
    let received = subscriber.wait_for(
        "detections, kept recordings and heartbeats",
        Duration::from_secs(60),
        |r| count(r, &detection) >= 3 && count(r, &recording) >= 3 && count(r, &heartbeat) >= 2,
    );
    // Files without a call are deleted by file management, which no message reports: the
    // store is read until two are gone.
    let program = program(&home);
    sensor.wait_until(
        "two recordings without a call deleted",
        Duration::from_secs(60),
        || {
            Store::open_read_only(&program.paths.metadata)
                .is_ok_and(|s| tally(&program, &s).deleted >= 2)
        },
    );
    sensor.stop();

    // Detections arrive as acoupi ModelOutputs holding what scored at least 0.5.
    let mut reported_outputs = Vec::new();
    for (t, payload) in &received {
        if *t == detection {
            let o: ModelOutput = serde_json::from_str(payload).expect("a ModelOutput");
            assert_eq!(o.name_model, "bats");
            assert!(!o.detections.is_empty());
            assert!(
                o.detections.iter().all(|d| d.detection_score >= 0.5),
                "{payload}"
            );
            reported_outputs.push(o.id);
        } else if *t == heartbeat {
            let h: Json = serde_json::from_str(payload).expect("JSON");
            assert_eq!(h["device_id"], "test-pi-7", "{payload}");
            assert_eq!(h["status"], "OK", "{payload}");
            assert!(
                h["sent_on"].as_str().is_some_and(|s| s.ends_with('Z')),
                "{payload}"
            );
        } else if *t == recording {
            let r: Recording = serde_json::from_str(payload).expect("a Recording");
            let p = r.path.expect("a kept path");
            assert!(p.exists(), "the reported recording {p} exists");
        } else {
            panic!("unexpected topic {t}: {payload}");
        }
    }

    // The store: files with calls kept in date folders, the others deleted (rows kept).
    let store = Store::open_read_only(&program.paths.metadata).expect("store");
    let outputs = store.model_outputs(&Filter::default()).expect("outputs");
    for id in &reported_outputs {
        assert!(
            outputs.iter().any(|o| o.id == *id),
            "reported output {id} is stored"
        );
    }
    let Tally {
        kept,
        deleted,
        wrong,
    } = tally(&program, &store);
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(kept >= 2 && deleted >= 2, "kept {kept}, deleted {deleted}");
}

/// The recordings the store holds as analysed: kept (with a call, in its date folder),
/// deleted (without a call), and what breaks the policy (a kept file without a call or
/// outside its date folder, a call deleted). Read while the sensor runs, a file being moved
/// can look wrong: only a stopped sensor's `wrong` is checked.
struct Tally {
    kept: usize,
    deleted: usize,
    wrong: Vec<String>,
}

fn tally(program: &acoupi::spec::Program, store: &Store) -> Tally {
    let outputs = store.model_outputs(&Filter::default()).expect("outputs");
    let rows = store.recordings(&Filter::default()).expect("recordings");
    let mut tally = Tally {
        kept: 0,
        deleted: 0,
        wrong: Vec::new(),
    };
    for row in &rows {
        let r = &row.recording;
        let Some(out) = outputs.iter().find(|o| o.recording.id == r.id) else {
            continue; // not analysed yet
        };
        let called = out.detections.iter().any(|d| d.detection_score >= 0.5);
        let path = r.path.as_ref().expect("a path");
        if path.starts_with(&program.paths.recordings) && path.exists() {
            let day = program
                .paths
                .recordings
                .join(r.created_on.strftime("%Y/%m/%d").to_string());
            if !called {
                tally.wrong.push(format!("{path} was kept without a call"));
            } else if path.parent() != Some(day.as_path()) {
                tally.wrong.push(format!("{path} was kept outside {day}"));
            }
            tally.kept += 1;
        } else if !path.exists() {
            if called {
                tally.wrong.push(format!("{path}, with a call, is gone"));
            }
            tally.deleted += 1;
        }
    }
    tally
}

#[test]
fn every_message_made_offline_arrives_in_order_once_the_broker_is_back() {
    let (_d, dir) = common::tempdir();
    let topic = unique_topic("outage");
    let port = free_port();
    let path = common::write(&dir, "field.kdl", manifest(port, &topic));
    let home = dir.join("home");

    // Offline: nothing listens on the port.
    let mut sensor = Sensor::start(&home, &path, dir.join("offline.log"));
    sensor.wait_until("a home", Duration::from_secs(30), || {
        home.join("config/program.json").exists()
    });
    let outbox_path = program(&home).paths.messages;
    let kinds = |kind: &str| {
        Outbox::open_read_only(&outbox_path)
            .ok()
            .map(|_| outbox_messages(&outbox_path))
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| k == kind)
            .count()
    };
    sensor.wait_until(
        "messages queued offline and a failed send",
        Duration::from_secs(60),
        || {
            kinds("detection") >= 3
                && kinds("heartbeat") >= 3
                && sensor.log().contains("destination unreachable")
        },
    );
    sensor.stop();
    let offline = outbox_messages(&outbox_path);
    let backlog = Outbox::open_read_only(&outbox_path)
        .and_then(|o| o.backlog())
        .expect("backlog");
    assert_eq!(
        backlog.unsent as usize,
        offline.len(),
        "nothing was sent while offline"
    );
    assert_eq!(backlog.expired, 0);
    // `acoupi status` tells the user what waits.
    let out = common::run(&["--home", home.as_str(), "status", "--format", "json"]);
    let status: serde_json::Value =
        serde_json::from_str(&common::stdout(&out)).expect("status JSON");
    assert_eq!(
        status["messages"]["unsent"].as_u64(),
        Some(offline.len() as u64),
        "{status}"
    );
    assert_eq!(status["messages"]["expired"], 0, "{status}");

    // The broker comes back; the sensor restarts and sends what waited, oldest first.
    let broker = PrivateMosquitto::start(Some(port), None);
    let mut subscriber = Received::start(broker.port(), &format!("{topic}/#"));
    let mut sensor = Sensor::start(&home, &path, dir.join("online.log"));
    let received =
        subscriber.wait_for("every message made offline", Duration::from_secs(60), |r| {
            offline
                .iter()
                .all(|(_, content)| r.iter().any(|(_, p)| p == content))
        });
    sensor.stop();
    let positions: Vec<usize> = offline
        .iter()
        .map(|(kind, content)| {
            let (i, (t, _)) = received
                .iter()
                .enumerate()
                .find(|(_, (_, p))| p == content)
                .expect("received");
            assert_eq!(*t, format!("{topic}/{kind}"));
            i
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "offline messages arrived out of order: {positions:?}"
    );
    let backlog = Outbox::open_read_only(&outbox_path)
        .and_then(|o| o.backlog())
        .expect("backlog");
    assert_eq!(backlog.expired, 0);
    drop(broker);
}
