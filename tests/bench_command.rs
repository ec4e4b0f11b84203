//! Benchmarks of command detectors; they print figures and assert only that requests work.
//!
//! In: `/usr/bin/python3` running a detector that answers at once, and the BatDetect2
//! stand-in with a 3 s import. Out: the protocol's round trip per request (mean, median,
//! p99 over 2,000 requests) and the time for 10 files with one load (serve mode) against one
//! load per file (per-file mode). Run with
//! `cargo test --release --test bench_command -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use acoupi::detect::Request;
use acoupi::detect::command::{CommandDetector, Config};
use acoupi::spec::CommandMode;
use camino::{Utf8Path, Utf8PathBuf};

const PYTHON: &str = "/usr/bin/python3";

/// Answers every request at once with one detection.
const ECHO: &str = r#"
import json, sys
d = [{"start_time": 0.1, "end_time": 0.2, "low_freq": 1000, "high_freq": 2000, "score": 0.5, "tags": []}]
for line in sys.stdin:
    r = json.loads(line)
    sys.stdout.write(json.dumps({"id": r["id"], "detections": d}) + "\n")
    sys.stdout.flush()
"#;

fn config(argv: Vec<String>, mode: CommandMode) -> Config {
    Config {
        name: "bench".into(),
        argv,
        mode,
        timeout: Duration::from_secs(30),
        startup_timeout: Duration::from_secs(30),
        slots: 1,
    }
}

fn request(id: usize, path: &Utf8Path) -> Request {
    Request {
        id: format!("request-{id}"),
        path: path.to_owned(),
        samplerate: 256_000,
        channels: 1,
        duration_s: 0.5,
        time_expansion: 1.0,
        recorded_at: "2025-06-01T21:00:00Z".parse().unwrap(),
        threshold: 0.1,
    }
}

fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::try_from(dir.path().to_path_buf()).unwrap();
    (dir, root)
}

/// A short silent WAV at `path`.
fn wav(path: &Utf8Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 256_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for _ in 0..128_000 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release --test bench_command -- --ignored --nocapture"]
async fn serve_mode_round_trip() {
    let (_dir, root) = temp();
    std::fs::write(root.join("echo.py"), ECHO).unwrap();
    let file = root.join("a.wav");
    wav(&file);
    let detector = CommandDetector::new(config(
        vec![PYTHON.into(), root.join("echo.py").into_string()],
        CommandMode::Serve,
    ));
    let started = Instant::now();
    detector.detect(&request(0, &file)).await.unwrap();
    let first = started.elapsed();
    let n = 2000;
    let mut times = Vec::with_capacity(n);
    for i in 1..=n {
        let t = Instant::now();
        let events = detector.detect(&request(i, &file)).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(events.len(), 1);
    }
    detector.shutdown().await;
    times.sort();
    let mean = times.iter().sum::<Duration>() / n as u32;
    println!(
        "serve-mode round trip over {n} requests: mean {:.3} ms, median {:.3} ms, p99 {:.3} ms, \
         max {:.3} ms (first request with the process start: {:.1} ms)",
        ms(mean),
        ms(times[n / 2]),
        ms(times[n * 99 / 100]),
        ms(times[n - 1]),
        ms(first)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release --test bench_command -- --ignored --nocapture"]
async fn one_load_for_ten_files() {
    let (_dir, root) = temp();
    let files: Vec<Utf8PathBuf> = (0..10)
        .map(|i| {
            let path = root.join(format!("f{i}.wav"));
            wav(&path);
            path
        })
        .collect();
    let argv = vec![
        "/usr/bin/env".into(),
        format!(
            "PYTHONPATH={}/tests/detectors/standin",
            env!("CARGO_MANIFEST_DIR")
        ),
        "BATDETECT2_STANDIN_LOAD_SECONDS=3".into(),
        PYTHON.into(),
        format!(
            "{}/examples/detectors/batdetect2.py",
            env!("CARGO_MANIFEST_DIR")
        ),
    ];
    for mode in [CommandMode::Serve, CommandMode::PerFile] {
        let detector = CommandDetector::new(config(argv.clone(), mode));
        let started = Instant::now();
        for (i, file) in files.iter().enumerate() {
            let events = detector.detect(&request(i, file)).await.unwrap();
            assert_eq!(events.len(), 3);
        }
        let took = started.elapsed();
        detector.shutdown().await;
        println!(
            "BatDetect2 stand-in (3 s load), 10 files, {mode:?}: {:.2} s ({:.2} s per file)",
            took.as_secs_f64(),
            took.as_secs_f64() / 10.0
        );
    }
}
