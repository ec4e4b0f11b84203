//! Outbox figures: selecting the next batch from 100,000 unsent messages (the issue's bound:
//! under 10 ms), recording a batch's outcomes, and the bytes the file spends per message.
//!
//! `cargo test --release --test bench_outbox -- --ignored --nocapture`

use std::time::Instant;

use acoupi::messaging::{MessageKind, Outcome};
use acoupi::spec::MessageOrder;
use acoupi::store::{NewMessage, Outbox};
use camino::Utf8PathBuf;
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

/// A detection message of a typical size: one model output with three detections.
fn payload(i: u64) -> String {
    let detection = |j: u64| {
        format!(
            r#"{{"id":"{}","prediction_type":"event","location":{{"type":"BoundingBox","coordinates":[0.{j},30000.0,0.{j}5,80000.0]}},"detection_score":0.8{j},"tags":[{{"tag":{{"key":"species","value":"Pipistrellus pipistrellus"}},"confidence_score":0.7{j}}}]}}"#,
            Uuid::now_v7()
        )
    };
    format!(
        r#"{{"id":"{}","name_model":"batdetect2","recording":{{"created_on":"2026-06-01T22:00:00Z","duration":10.0,"samplerate":384000,"deployment":{{"id":"{}","name":"north hedge","latitude":51.5,"longitude":-0.12,"started_on":"2026-05-01T00:00:00Z","ended_on":null}},"path":"/srv/acoupi/recordings/2026/06/01/20260601_220000_{i}.wav","audio_channels":1,"time_expansion":1.0,"id":"{}"}},"detections":[{},{},{}],"created_on":"2026-06-01T22:00:11Z"}}"#,
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        detection(1),
        detection(2),
        detection(3)
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore = "benchmark: prints figures; run with cargo test --release --test bench_outbox -- --ignored --nocapture"]
fn outbox_figures() {
    let n: u64 = std::env::var("ACOUPI_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("messages.db")).expect("utf-8");
    let mut outbox = Outbox::open(&path).expect("open");
    let start: Timestamp = "2026-06-01T00:00:00Z".parse().expect("time");
    let mut payload_bytes = 0u64;
    let fill = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let messages: Vec<NewMessage> = chunk
            .iter()
            .map(|&i| {
                let content = payload(i);
                payload_bytes += content.len() as u64;
                NewMessage {
                    id: Uuid::now_v7(),
                    kind: MessageKind::Detection,
                    content,
                    created_on: start + SignedDuration::from_secs(i as i64),
                    recording: Some(Uuid::now_v7()),
                }
            })
            .collect();
        outbox.push(&messages).expect("push");
    }
    let fill = fill.elapsed();
    drop(outbox);
    let file = std::fs::metadata(&path).expect("stat").len()
        + std::fs::metadata(format!("{path}-wal")).map_or(0, |m| m.len());
    println!(
        "filled {n} messages in {:.2} s; file {:.1} MiB: {:.0} bytes per message ({:.0} of them payload)",
        fill.as_secs_f64(),
        file as f64 / 1048576.0,
        file as f64 / n as f64,
        payload_bytes as f64 / n as f64
    );

    let mut outbox = Outbox::open(&path).expect("reopen");
    let now = start + SignedDuration::from_hours(24 * 30);
    for (order, name) in [
        (MessageOrder::OldestFirst, "oldest-first"),
        (MessageOrder::NewestFirst, "newest-first"),
    ] {
        let mut times = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let batch = outbox.due(now, 100, order).expect("due");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(batch.len(), 100);
        }
        println!(
            "select 100 of {n} unsent ({name}): median {:.2} ms, max {:.2} ms",
            median(times.clone()),
            times.iter().copied().fold(0.0, f64::max)
        );
    }
    let backlog = Instant::now();
    let b = outbox.backlog().expect("backlog");
    println!(
        "backlog ({} unsent): {:.2} ms",
        b.unsent,
        backlog.elapsed().as_secs_f64() * 1000.0
    );
    // Delivering batches: each run selects 100 and records them delivered.
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let batch = outbox
            .due(now, 100, MessageOrder::OldestFirst)
            .expect("due");
        let outcomes: Vec<(Uuid, Outcome)> = batch
            .iter()
            .map(|q| (q.id, Outcome::Delivered("ok".into())))
            .collect();
        let tally = outbox
            .record("mqtt://x", &outcomes, &["mqtt://x"], now, 20)
            .expect("record");
        assert_eq!(tally.sent, 100);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "select and record 100 delivered: median {:.2} ms",
        median(times)
    );
    let t = Instant::now();
    let unsent = outbox.recordings_with_unsent().expect("unsent");
    println!(
        "recordings with unsent messages ({}): {:.1} ms",
        unsent.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
}
