//! Several processes write one metadata store at once, as the recording, detection and default
//! workers do, far harder than a 1 s recording interval ever would: each writes recordings and
//! model outputs with detections in a tight loop and reads them back, and none may meet a
//! locked database or lose a row.
//!
//! The writers are real processes: this test binary runs itself again with
//! `ACOUPI_TEST_WRITER` set, and the `writer` function below does the writing in the child.

use std::process::Command;
use std::time::{Duration, Instant};

use acoupi::spec::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi::store::{Filter, Store};
use camino::Utf8PathBuf;
use uuid::Uuid;

const WRITERS: u32 = 3;

/// How long each writer writes: 4 s, or `ACOUPI_TEST_WRITER_SECONDS` for a longer soak.
fn seconds() -> u64 {
    std::env::var("ACOUPI_TEST_WRITER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

fn deployment() -> Deployment {
    Deployment {
        id: Uuid::from_u128(1),
        name: "writers".into(),
        latitude: None,
        longitude: None,
        started_on: "2026-06-01T20:00:00Z".parse().expect("timestamp"),
        ended_on: None,
    }
}

/// The `i`th recording of writer `w`: its own second, so acoupi's unique `datetime` holds.
fn recording(w: u32, i: u64) -> Recording {
    let base: jiff::Timestamp = "2026-06-01T20:00:00Z".parse().expect("timestamp");
    let at = base + jiff::SignedDuration::from_secs((i * u64::from(WRITERS) + u64::from(w)) as i64);
    Recording {
        created_on: at,
        duration: 3.0,
        samplerate: 256_000,
        deployment: deployment(),
        path: Some(format!("/run/shm/acoupi/w{w}-{i}.wav").into()),
        audio_channels: 1,
        time_expansion: 1.0,
        id: Uuid::new_v4(),
    }
}

fn output(recording: &Recording, n: usize) -> ModelOutput {
    let detections = (0..n)
        .map(|k| Detection {
            id: Uuid::new_v4(),
            prediction_type: PredictionType::Event,
            location: Some(BoundingBox::new(
                0.1 * k as f64,
                20_000.0,
                0.1 * k as f64 + 0.05,
                60_000.0,
            )),
            detection_score: 0.5 + 0.04 * k as f64,
            tags: vec![PredictedTag {
                tag: Tag {
                    key: "species".into(),
                    value: "Pipistrellus pipistrellus".into(),
                },
                confidence_score: 0.7,
            }],
        })
        .collect();
    ModelOutput {
        id: Uuid::new_v4(),
        name_model: "bats".into(),
        recording: recording.clone(),
        detections,
        created_on: recording.created_on,
    }
}

/// In a child process: writes for [`seconds`], then prints `written <recordings> <outputs>`;
/// exits non-zero on the first error. In the test run itself it does nothing.
#[test]
fn writer() {
    let (Ok(path), Ok(w)) = (
        std::env::var("ACOUPI_TEST_WRITER"),
        std::env::var("ACOUPI_TEST_WRITER_INDEX"),
    ) else {
        return;
    };
    let w: u32 = w.parse().expect("writer index");
    let path = Utf8PathBuf::from(path);
    let mut store = Store::open(&path).unwrap_or_else(|e| panic!("writer {w}: {e}"));
    let until = Instant::now() + Duration::from_secs(seconds());
    let (mut recordings, mut outputs) = (0u64, 0u64);
    while Instant::now() < until {
        let r = recording(w, recordings);
        let task = format!("w{w}-t{recordings}");
        store
            .insert_recording(&r, Some(&task))
            .unwrap_or_else(|e| panic!("writer {w}, recording {recordings}: {e}"));
        recordings += 1;
        store
            .insert_model_output(&output(&r, 10))
            .unwrap_or_else(|e| panic!("writer {w}, output {outputs}: {e}"));
        outputs += 1;
        // A reader's view (what `acoupi db` does) between writes.
        store
            .recording_for_task(&task)
            .unwrap_or_else(|e| panic!("writer {w}, read: {e}"))
            .expect("the recording just written");
    }
    println!("written {recordings} {outputs}");
}

#[test]
fn several_processes_write_one_store_without_locking_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = Utf8PathBuf::try_from(dir.path().join("metadata.db")).expect("utf-8");
    // Create the file first, as the first worker to start would.
    Store::open(&path).expect("create the store");
    let exe = std::env::current_exe().expect("this test binary");
    let children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new(&exe)
                .args(["--exact", "writer", "--nocapture", "--test-threads=1"])
                .env("ACOUPI_TEST_WRITER", path.as_str())
                .env("ACOUPI_TEST_WRITER_INDEX", w.to_string())
                .output_async()
        })
        .collect();
    let (mut recordings, mut outputs) = (0u64, 0u64);
    for (w, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("writer runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "writer {w} failed:\n{stdout}\n{stderr}"
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("written ").map(|(_, counts)| counts))
            .unwrap_or_else(|| panic!("writer {w} said nothing:\n{stdout}\n{stderr}"));
        let mut counts = line
            .split_whitespace()
            .map(|n| n.parse::<u64>().expect("a count"));
        let (r, o) = (
            counts.next().expect("recordings"),
            counts.next().expect("outputs"),
        );
        assert!(r > 0 && o > 0, "writer {w} wrote nothing");
        recordings += r;
        outputs += o;
    }
    let store = Store::open_read_only(&path).expect("read back");
    let info = store.info().expect("info");
    assert!(info.is_ok(), "integrity: {info:?}");
    assert_eq!(info.count("recording"), Some(recordings));
    assert_eq!(info.count("model_output"), Some(outputs));
    assert_eq!(info.count("detection"), Some(outputs * 10));
    assert_eq!(info.count("predicted_tag"), Some(outputs * 10));
    let all = store
        .recordings(&Filter::default())
        .expect("every recording reads back");
    assert_eq!(all.len() as u64, recordings);
    println!(
        "{WRITERS} processes for {} s: {recordings} recordings, {outputs} model outputs",
        seconds()
    );
}

/// Spawning a child with its output captured, without waiting for it yet.
trait OutputAsync {
    fn output_async(&mut self) -> std::process::Child;
}

impl OutputAsync for Command {
    fn output_async(&mut self) -> std::process::Child {
        self.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the writer process starts")
    }
}
