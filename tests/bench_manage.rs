//! Benchmark (not part of the test run): `manage-files` over 10,000 staged recordings with
//! their detections, staging on `/dev/shm`, storage on disk.
//!
//! `cargo test --release --test bench_manage -- --ignored --nocapture` deletes them all;
//! with `ACOUPI_BENCH_KEEP_SCORE=0.9` one in ten is kept (a crash-safe cross-file-system move
//! each).

mod common;

use std::sync::Arc;
use std::time::Instant;

use acoupi::runtime::tasks::{Registry, Services, TaskContext};
use acoupi::spec::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictionType, Recording, new_id,
};
use acoupi::store::Store;
use camino::Utf8PathBuf;

const N: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures; run with --ignored --nocapture"]
async fn manage_files_over_ten_thousand_staged_recordings() {
    let (_d, dir) = common::tempdir();
    let staging = Utf8PathBuf::from(format!(
        "/dev/shm/acoupi-bench-{}",
        common::runtime::unique("bm")
    ));
    std::fs::create_dir_all(&staging).expect("staging on /dev/shm");
    // Scores run 0.00 to 0.99: a minimum of 1.0 keeps nothing, 0.9 keeps one in ten.
    let min_score = std::env::var("ACOUPI_BENCH_KEEP_SCORE").unwrap_or_else(|_| "1.0".into());
    let manifest = format!(
        "program \"bench\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"192kHz\" }}\n\
         detector \"bats\" kind=\"band-energy\" {{ band low=\"30kHz\" high=\"90kHz\"; }}\n\
         saving {{ keep-if detection min-score={min_score}; otherwise \"delete\"; }}\n"
    );
    let mut program = common::runtime::program(&manifest);
    program.home = dir.join("home");
    program.paths.staging = staging.clone();
    program.paths.recordings = dir.join("recordings");
    program.paths.metadata = dir.join("metadata.db");
    program.paths.state = dir.join("home/state");
    let program = Arc::new(program);

    let deployment = Deployment {
        id: new_id(),
        name: "bench".into(),
        latitude: None,
        longitude: None,
        started_on: "2026-06-01T00:00:00Z".parse().expect("time"),
        ended_on: None,
    };
    let wav = {
        let p = dir.join("template.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 192_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).expect("wav");
        for i in 0..19_200 {
            w.write_sample(((i % 97) * 300) as i16).expect("sample");
        }
        w.finalize().expect("finalize");
        std::fs::read(&p).expect("read")
    };
    let started = Instant::now();
    {
        let mut store = Store::open(&program.paths.metadata).expect("store");
        let t0: jiff::Timestamp = "2026-06-01T21:00:00Z".parse().expect("time");
        for i in 0..N {
            let path = staging.join(format!("r{i:05}.wav"));
            std::fs::write(&path, &wav).expect("staged file");
            let recording = Recording {
                created_on: t0 + jiff::SignedDuration::from_secs(10 * i as i64),
                duration: 0.1,
                samplerate: 192_000,
                deployment: deployment.clone(),
                path: Some(path),
                audio_channels: 1,
                time_expansion: 1.0,
                id: new_id(),
            };
            store.insert_recording(&recording, None).expect("insert");
            store.mark_pending(recording.id).expect("pending");
            let score = (i % 100) as f64 / 100.0;
            let output = ModelOutput {
                id: new_id(),
                name_model: "bats".into(),
                recording,
                detections: vec![Detection {
                    id: new_id(),
                    prediction_type: PredictionType::Event,
                    location: Some(BoundingBox::new(0.01, 40_000.0, 0.02, 80_000.0)),
                    detection_score: score,
                    tags: Vec::new(),
                }],
                created_on: t0,
            };
            store.insert_model_output(&output).expect("output");
        }
    }
    println!(
        "set-up: {N} staged recordings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let services = Services::new(program);
    let handler = Registry::builtin().get("manage-files").expect("handler");
    let ctx = TaskContext {
        services: Arc::clone(&services),
        task_id: "bench".into(),
        retries: 0,
        worker: "bench".into(),
    };
    let started = Instant::now();
    let report = handler(ctx, Vec::new(), serde_json::Map::new())
        .await
        .expect("manage-files");
    let took = started.elapsed();
    println!(
        "manage-files: {} kept, {} deleted in {:.3} s ({:.1} us per recording)",
        report["kept"],
        report["deleted"],
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / N as f64
    );
    assert_eq!(
        report["kept"].as_u64().expect("n") + report["deleted"].as_u64().expect("n"),
        N as u64
    );
    let _ = std::fs::remove_dir_all(&staging);
}
