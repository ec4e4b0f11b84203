//! Metadata-store benchmark: insert rate, one-hour select, bytes per detection.
//!
//! In: `ACOUPI_BENCH_DIR` (where the store goes; a temporary directory when unset). Out:
//! figures on stderr:
//! - the time to insert 100,000 detections as a detection task does, one model output per
//!   recording, 10 to 50 detections per output (1 or 2 tags each), one transaction per output;
//! - the time to select the detections (with their tags) of one hour from a store of
//!   1,000,000, whose model outputs are 10 s apart (a 3 s recording every 10 s), so an hour
//!   holds about 10,800 detections, through a new read-only connection as `acoupi db` makes:
//!   first run and the median of 20;
//! - the file size per detection, after the store is closed (WAL checkpointed).
//!
//! Ids are UUIDv7 (`acoupi::spec::data::new_id`), or acoupi's random UUIDv4 with
//! `ACOUPI_BENCH_UUID=v4`. It asserts only what it measures: the counts.

use std::time::{Duration, Instant};

use acoupi::spec::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};
use acoupi::store::{Filter, Store};
use camino::Utf8PathBuf;
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

const FIRST: usize = 100_000;

/// The ids: `acoupi::spec::data::new_id` (UUIDv7, time-ordered), or acoupi's random UUIDv4
/// with `ACOUPI_BENCH_UUID=v4`.
fn id() -> Uuid {
    static V4: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *V4.get_or_init(|| std::env::var("ACOUPI_BENCH_UUID").is_ok_and(|v| v == "v4")) {
        Uuid::new_v4()
    } else {
        acoupi::spec::data::new_id()
    }
}
const TOTAL: usize = 1_000_000;
const SPACING_S: i64 = 10;

/// A small deterministic generator (xorshift), so every run stores the same shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

const SPECIES: [&str; 6] = [
    "Pipistrellus pipistrellus",
    "Pipistrellus pygmaeus",
    "Myotis daubentonii",
    "Nyctalus noctula",
    "Eptesicus serotinus",
    "Plecotus auritus",
];

fn start() -> Timestamp {
    "2024-05-01T18:00:00Z".parse().expect("a valid timestamp")
}

/// Output number `i` and its recording; `i` sets the time.
fn output(i: i64, deployment: &Deployment, rng: &mut Rng) -> ModelOutput {
    let created_on = start()
        + SignedDuration::from_secs(SPACING_S * i)
        + SignedDuration::from_micros(rng.below(1_000_000) as i64);
    let recording = Recording {
        created_on,
        duration: 3.0,
        samplerate: 256_000,
        deployment: deployment.clone(),
        path: Some(format!("/run/shm/acoupi/{i}.wav").into()),
        audio_channels: 1,
        time_expansion: 1.0,
        id: id(),
    };
    let n = 10 + rng.below(41) as usize;
    let detections = (0..n)
        .map(|_| {
            let t = rng.unit() * 2.9;
            let tags = (0..1 + rng.below(2))
                .map(|k| PredictedTag {
                    tag: if k == 0 {
                        Tag {
                            key: "species".into(),
                            value: SPECIES[rng.below(6) as usize].into(),
                        }
                    } else {
                        Tag {
                            key: "call".into(),
                            value: "echolocation".into(),
                        }
                    },
                    confidence_score: rng.unit(),
                })
                .collect();
            Detection {
                id: id(),
                prediction_type: PredictionType::Event,
                location: Some(BoundingBox::new(t, 20_000.0, t + 0.01, 80_000.0)),
                detection_score: rng.unit(),
                tags,
            }
        })
        .collect();
    ModelOutput {
        id: id(),
        name_model: "band-energy".into(),
        created_on: created_on + SignedDuration::from_millis(3_500),
        recording,
        detections,
    }
}

/// The store being filled, and how far.
struct Filler {
    store: Store,
    deployment: Deployment,
    rng: Rng,
    /// The number of the next output.
    next: i64,
    /// Detections stored so far.
    stored: usize,
}

impl Filler {
    /// Inserts outputs until `target` detections are stored in all; returns the time the
    /// inserts took (not the generation).
    fn fill(&mut self, target: usize) -> Duration {
        let mut outputs = Vec::new();
        let mut planned = self.stored;
        while planned < target {
            let o = output(
                self.next + outputs.len() as i64,
                &self.deployment,
                &mut self.rng,
            );
            planned += o.detections.len();
            outputs.push(o);
        }
        let began = Instant::now();
        for o in &outputs {
            self.store
                .insert_recording(&o.recording, Some(&o.recording.id.to_string()))
                .expect("recording");
            self.store.insert_model_output(o).expect("model output");
        }
        let took = began.elapsed();
        self.next += outputs.len() as i64;
        self.stored = planned;
        took
    }
}

#[test]
#[ignore = "benchmark: cargo test --release --test bench_store -- --ignored --nocapture"]
fn store_figures() {
    let _tmp;
    let dir = match std::env::var_os("ACOUPI_BENCH_DIR") {
        Some(d) => Utf8PathBuf::from_path_buf(d.into()).expect("a UTF-8 ACOUPI_BENCH_DIR"),
        None => {
            _tmp = tempfile::tempdir().expect("a temporary directory");
            Utf8PathBuf::from_path_buf(_tmp.path().to_owned()).expect("a UTF-8 temporary path")
        }
    };
    let path = dir.join("bench-metadata.db");
    let _ = std::fs::remove_file(&path);
    let mut store = Store::open(&path).expect("open");
    let deployment = Deployment {
        id: id(),
        name: "bench".into(),
        latitude: Some(51.5),
        longitude: Some(-0.12),
        started_on: start(),
        ended_on: None,
    };
    store.upsert_deployment(&deployment).expect("deployment");
    let mut f = Filler {
        store,
        deployment,
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        next: 0,
        stored: 0,
    };
    let took = f.fill(FIRST);
    eprintln!(
        "insert: {} detections in {} model outputs (each with its recording, one \
         transaction each) in {:.3} s: {:.0} detections/s",
        f.stored,
        f.next,
        took.as_secs_f64(),
        f.stored as f64 / took.as_secs_f64()
    );
    let took = f.fill(TOTAL);
    eprintln!(
        "fill: {} detections in {} model outputs in total ({:.1} s more)",
        f.stored,
        f.next,
        took.as_secs_f64()
    );
    let Filler {
        store,
        stored,
        next,
        ..
    } = f;

    // One hour in the middle of the store.
    let since = start() + SignedDuration::from_secs(SPACING_S * next / 2);
    let hour = Filter {
        since: Some(since),
        until: Some(since + SignedDuration::from_hours(1)),
        ..Filter::default()
    };
    // Select as `acoupi db` does: a fresh read-only connection (closing the writer first
    // checkpoints its WAL into the file).
    let info = store.info().expect("info");
    assert_eq!(info.count("detection"), Some(stored as u64));
    drop(store);
    let store = Store::open_read_only(&path).expect("reopen read-only");
    let timed = || {
        let began = Instant::now();
        let found = store.detections(&hour).expect("select");
        (began.elapsed(), found)
    };
    let (first, found) = timed();
    let mut runs: Vec<Duration> = (0..20)
        .map(|_| {
            let (took, again) = timed();
            assert_eq!(again.len(), found.len());
            took
        })
        .collect();
    runs.sort();
    let tags: usize = found.iter().map(|d| d.detection.tags.len()).sum();
    eprintln!(
        "select one hour: {} detections ({tags} tags) of {stored}: first {:.2} ms, median {:.2} ms, \
         best {:.2} ms",
        found.len(),
        first.as_secs_f64() * 1e3,
        runs[runs.len() / 2].as_secs_f64() * 1e3,
        runs[0].as_secs_f64() * 1e3
    );
    assert!(!found.is_empty());

    drop(store);
    let bytes = std::fs::metadata(&path).expect("stat").len();
    eprintln!(
        "size: {bytes} bytes for {stored} detections: {:.1} bytes per detection (with its \
         share of tags, outputs and recordings)",
        bytes as f64 / stored as f64
    );
}
