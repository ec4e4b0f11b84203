//! Test fixtures for the store's unit tests: temporary files and sample rows.
//!
//! In: an index, to vary ids and times. Out: a store path in a fresh temporary directory, and a
//! deployment, recordings and model outputs with microsecond times, tags and both kinds of
//! detection location.

use camino::Utf8PathBuf;
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use crate::spec::data::{
    BoundingBox, Deployment, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag,
};

/// A path for a store in a new temporary directory (kept alive by the returned guard).
pub(crate) fn temp_path() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = Utf8PathBuf::from_path_buf(dir.path().join("metadata.db"))
        .expect("temporary directories have UTF-8 paths here");
    (dir, path)
}

/// Start of the sample deployment.
pub(crate) fn t0() -> Timestamp {
    "2024-01-05T03:04:05.123456Z"
        .parse()
        .expect("a valid timestamp literal")
}

pub(crate) fn deployment() -> Deployment {
    Deployment {
        id: Uuid::from_u128(0xd),
        name: "north hedge".into(),
        latitude: Some(51.5074),
        longitude: Some(-0.1278),
        started_on: t0(),
        ended_on: None,
    }
}

/// Recording `i`, 10 s after recording `i - 1`.
pub(crate) fn recording(i: u32) -> Recording {
    let created_on = t0() + SignedDuration::from_millis(10_000 * i64::from(i) + 7);
    Recording {
        created_on,
        duration: 3.0,
        samplerate: 256_000,
        deployment: deployment(),
        path: Some(format!("/run/shm/acoupi/{i}.wav").into()),
        audio_channels: 1,
        time_expansion: 10.0,
        id: Uuid::from_u128(0x1000 + u128::from(i)),
    }
}

fn tag(key: &str, value: &str, score: f64) -> PredictedTag {
    PredictedTag {
        tag: Tag {
            key: key.into(),
            value: value.into(),
        },
        confidence_score: score,
    }
}

/// A model output of `recording` with `n` detections: even ones located and tagged twice,
/// odd ones whole-recording with one tag; scores rise from 0.1.
pub(crate) fn output(recording: &Recording, id: u128, n: usize) -> ModelOutput {
    let detections = (0..n)
        .map(|k| {
            let kf = k as f64;
            Detection {
                id: Uuid::from_u128(id << 32 | k as u128),
                prediction_type: if k % 2 == 0 {
                    PredictionType::Event
                } else {
                    PredictionType::Presence
                },
                location: (k % 2 == 0)
                    .then(|| BoundingBox::new(0.1 * kf, 20_000.0, 0.1 * kf + 0.05, 60_000.0)),
                detection_score: (0.1 + 0.1 * kf).min(1.0),
                tags: if k % 2 == 0 {
                    vec![
                        tag("species", "Pipistrellus pipistrellus", 0.8),
                        tag("call", "echolocation", 0.5),
                    ]
                } else {
                    vec![tag("species", "Myotis", 0.3)]
                },
            }
        })
        .collect();
    ModelOutput {
        id: Uuid::from_u128(id),
        name_model: "band-energy".into(),
        recording: recording.clone(),
        detections,
        created_on: recording.created_on + SignedDuration::from_micros(4_000_123),
    }
}
