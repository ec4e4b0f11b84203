//! acoupi's data model (the Python original's `acoupi/data.py`) as plain serde types.
//!
//! In: nothing. Out: the deployments, recordings, detections and model outputs that the
//! metadata store keeps, tasks pass to each other and messengers send, and the heartbeats
//! (with their metrics) the device reports. The JSON field names are acoupi's, so a
//! `ModelOutput` serialises exactly as acoupi's message factories send it and a `Heartbeat` as
//! acoupi's heartbeat task sends it: ids are hyphenated UUID strings, times RFC 3339 in UTC with a `Z` (microseconds when there
//! are any), a detection's `location` is `{"type":"BoundingBox","coordinates":[...]}` or `null`.
//!
//! The types check nothing themselves: acoupi's ranges (latitude in [-90, 90], scores in
//! [0, 1], `end > start` in a box) are the producer's duty.

use camino::Utf8PathBuf;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A new id for a deployment, recording, detection or model output: a UUIDv7, which starts
/// with the time it was made.
///
/// acoupi mints random UUIDv4s, and any UUID is valid in its schema; but the store keys every
/// table and index on these ids, and random ones put each row of a model output on a different
/// page of each index, so every commit rewrites dozens of scattered pages. Time-ordered ids
/// append to the end of each index instead.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// A deployment: one stretch of time a device records at one place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Unique id.
    pub id: Uuid,
    /// The user's name for it.
    pub name: String,
    /// Latitude of the site, in degrees, when known.
    pub latitude: Option<f64>,
    /// Longitude of the site, in degrees, when known.
    pub longitude: Option<f64>,
    /// When the deployment started; the current deployment is the one that started last.
    pub started_on: Timestamp,
    /// When it ended, if it has.
    pub ended_on: Option<Timestamp>,
}

/// One audio file recorded from the microphone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    /// When the recording started.
    pub created_on: Timestamp,
    /// Its duration in seconds.
    pub duration: f64,
    /// Its sample rate in hertz.
    pub samplerate: u32,
    /// The deployment it belongs to.
    pub deployment: Deployment,
    /// Where the audio file is, if it still exists.
    pub path: Option<Utf8PathBuf>,
    /// Number of channels.
    pub audio_channels: u32,
    /// Factor by which the recording's time scale is multiplied (1 for real time).
    pub time_expansion: f64,
    /// Unique id.
    pub id: Uuid,
}

/// A label: a key and a value, e.g. `species` = `Myotis`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// The key, e.g. `species`.
    pub key: String,
    /// The value, e.g. `Myotis`.
    pub value: String,
}

/// A tag predicted by a model, with the model's confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictedTag {
    /// The tag.
    pub tag: Tag,
    /// Confidence in [0, 1].
    pub confidence_score: f64,
}

/// Where a sound is in a recording: `{"type": "BoundingBox", "coordinates": [...]}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub struct BoundingBox {
    /// `[start_time_s, low_freq_hz, end_time_s, high_freq_hz]`, acoupi's order.
    pub coordinates: [f64; 4],
}

impl BoundingBox {
    /// A box from its start and end times (seconds) and low and high frequencies (hertz).
    pub fn new(start_time_s: f64, low_freq_hz: f64, end_time_s: f64, high_freq_hz: f64) -> Self {
        BoundingBox {
            coordinates: [start_time_s, low_freq_hz, end_time_s, high_freq_hz],
        }
    }
}

/// What kind of sound pattern a detection refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionType {
    /// One or more target sounds are present in the region.
    Presence,
    /// Exactly one sequence of related sounds is in the region.
    Sequence,
    /// Exactly one sound event is in the region.
    Event,
}

impl PredictionType {
    /// The name acoupi stores and sends: `presence`, `sequence` or `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            PredictionType::Presence => "presence",
            PredictionType::Sequence => "sequence",
            PredictionType::Event => "event",
        }
    }

    /// The type named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "presence" => Some(PredictionType::Presence),
            "sequence" => Some(PredictionType::Sequence),
            "event" => Some(PredictionType::Event),
            _ => None,
        }
    }
}

/// One prediction of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Unique id.
    pub id: Uuid,
    /// What kind of pattern it refers to.
    pub prediction_type: PredictionType,
    /// Where in the recording, or `None` for the whole recording.
    pub location: Option<BoundingBox>,
    /// Score in [0, 1].
    pub detection_score: f64,
    /// The tags predicted for it, in the model's order.
    pub tags: Vec<PredictedTag>,
}

/// What one model made of one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOutput {
    /// Unique id.
    pub id: Uuid,
    /// The model's name.
    pub name_model: String,
    /// The recording it ran on.
    pub recording: Recording,
    /// What it found.
    pub detections: Vec<Detection>,
    /// When the model finished.
    pub created_on: Timestamp,
}

/// One measurement of the device's state, as acoupi's `Metric`: `{"name", "value", "captured_on",
/// "unit"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// What was measured, in snake case (`free_memory`, `cpu_usage`).
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// When it was measured.
    pub captured_on: Timestamp,
    /// The unit of `value` (`bytes`, `percent`, `celsius`, `seconds`, `count`).
    pub unit: String,
}

/// A sign of life, as acoupi's `Heartbeat`: `{"sent_on", "device_id", "status", "metrics"}`,
/// the metrics left out when there are none (as acoupi leaves them out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// When it was made.
    pub sent_on: Timestamp,
    /// The device it comes from.
    pub device_id: String,
    /// `OK` while the program runs.
    pub status: String,
    /// What the device measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_heartbeat_serialises_as_acoupis_and_leaves_out_no_metrics() {
        let at = ts("2024-01-01T00:00:00Z");
        let beat = Heartbeat {
            sent_on: at,
            device_id: "10000000abcdef12".into(),
            status: "OK".into(),
            metrics: vec![Metric {
                name: "free_memory".into(),
                value: 2.4e10,
                captured_on: ts("2024-01-01T00:00:00.250Z"),
                unit: "bytes".into(),
            }],
        };
        let value = serde_json::to_value(&beat).expect("serialisable");
        assert_eq!(
            value,
            json!({
                "sent_on": "2024-01-01T00:00:00Z",
                "device_id": "10000000abcdef12",
                "status": "OK",
                "metrics": [{
                    "name": "free_memory",
                    "value": 2.4e10,
                    "captured_on": "2024-01-01T00:00:00.25Z",
                    "unit": "bytes"
                }]
            })
        );
        let back: Heartbeat = serde_json::from_value(value).expect("round trip");
        assert_eq!(back, beat);
        let bare = Heartbeat {
            metrics: vec![],
            ..beat
        };
        let text = serde_json::to_string(&bare).expect("serialisable");
        assert_eq!(
            text,
            r#"{"sent_on":"2024-01-01T00:00:00Z","device_id":"10000000abcdef12","status":"OK"}"#
        );
        let back: Heartbeat = serde_json::from_str(&text).expect("acoupi's shape without metrics");
        assert_eq!(back, bare);
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a valid timestamp literal")
    }

    #[test]
    fn model_output_serialises_with_acoupis_field_names() {
        let deployment = Deployment {
            id: Uuid::from_u128(1),
            name: "hedge".into(),
            latitude: Some(1.0),
            longitude: Some(2.0),
            started_on: ts("2024-01-01T00:00:00Z"),
            ended_on: None,
        };
        let output = ModelOutput {
            id: Uuid::from_u128(3),
            name_model: "m".into(),
            recording: Recording {
                created_on: ts("2024-01-05T03:04:05Z"),
                duration: 3.0,
                samplerate: 48_000,
                deployment,
                path: Some("/run/shm/a.wav".into()),
                audio_channels: 1,
                time_expansion: 1.0,
                id: Uuid::from_u128(2),
            },
            detections: vec![Detection {
                id: Uuid::from_u128(4),
                prediction_type: PredictionType::Presence,
                location: Some(BoundingBox::new(0.1, 1000.0, 0.2, 2000.0)),
                detection_score: 0.9,
                tags: vec![PredictedTag {
                    tag: Tag {
                        key: "species".into(),
                        value: "Myotis".into(),
                    },
                    confidence_score: 0.8,
                }],
            }],
            created_on: ts("2024-01-05T03:04:06.123456Z"),
        };
        let value = serde_json::to_value(&output).expect("serialisable");
        let expected = json!({
            "id": "00000000-0000-0000-0000-000000000003",
            "name_model": "m",
            "recording": {
                "created_on": "2024-01-05T03:04:05Z",
                "duration": 3.0,
                "samplerate": 48000,
                "deployment": {
                    "id": "00000000-0000-0000-0000-000000000001",
                    "name": "hedge",
                    "latitude": 1.0,
                    "longitude": 2.0,
                    "started_on": "2024-01-01T00:00:00Z",
                    "ended_on": null
                },
                "path": "/run/shm/a.wav",
                "audio_channels": 1,
                "time_expansion": 1.0,
                "id": "00000000-0000-0000-0000-000000000002"
            },
            "detections": [{
                "id": "00000000-0000-0000-0000-000000000004",
                "prediction_type": "presence",
                "location": {"type": "BoundingBox", "coordinates": [0.1, 1000.0, 0.2, 2000.0]},
                "detection_score": 0.9,
                "tags": [{"tag": {"key": "species", "value": "Myotis"}, "confidence_score": 0.8}]
            }],
            "created_on": "2024-01-05T03:04:06.123456Z"
        });
        assert_eq!(value, expected);
        let back: ModelOutput = serde_json::from_value(value).expect("round trip");
        assert_eq!(back, output);
    }

    #[test]
    fn a_detection_without_location_has_null() {
        let d = Detection {
            id: Uuid::nil(),
            prediction_type: PredictionType::Event,
            location: None,
            detection_score: 1.0,
            tags: vec![],
        };
        let v = serde_json::to_value(&d).expect("serialisable");
        assert_eq!(v["location"], serde_json::Value::Null);
        assert_eq!(v["prediction_type"], "event");
    }
}
