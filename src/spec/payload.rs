//! What crosses a queue: the typed arguments and results of the pipeline's tasks.
//!
//! In: a task's JSON arguments (Celery's `args`). Out: the typed value, or an error saying
//! what was wrong with it. `record` returns a [`Recorded`], which is the argument of its
//! follow-up (`detect`, or `manage-files` when the program has no detector); `detect` returns
//! a [`Detected`], the argument of `manage-files`. Scheduled runs of a task get no argument.

use camino::Utf8PathBuf;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::data::{Deployment, Recording};

/// A finished recording: the result of the `record` task, the input of `detect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// A time-ordered UUID (v7), also written to GUANO `acoupi|Id` and the recording's id in the
    /// metadata store.
    pub id: String,
    /// The WAV file, in the staging directory.
    pub path: Utf8PathBuf,
    /// Capture time of the first sample.
    pub start: Timestamp,
    /// Real duration: frames over the capture rate.
    pub duration_s: f64,
    /// The capture rate (the WAV header holds `samplerate / time_expansion`).
    pub samplerate: u32,
    /// Samples per frame.
    pub channels: u16,
    /// Frames in the file.
    pub frames: u64,
    /// Time-expansion factor of the WAV header.
    #[serde(default = "one")]
    pub time_expansion: f64,
    /// Samples the source reported lost (overruns) while this file was written.
    #[serde(default)]
    pub overruns: u64,
}

fn one() -> f64 {
    1.0
}

impl Recorded {
    /// The recording in acoupi's shape, as it is stored and reported, under `deployment`.
    pub fn to_recording(&self, deployment: Deployment) -> Result<Recording, uuid::Error> {
        Ok(Recording {
            created_on: self.start,
            duration: self.duration_s,
            samplerate: self.samplerate,
            deployment,
            path: Some(self.path.clone()),
            audio_channels: u32::from(self.channels),
            time_expansion: self.time_expansion,
            id: self.id.parse()?,
        })
    }

    /// The result a recording stored earlier stands for (a redelivered task returns it): the
    /// frame count is derived from the duration, and overruns are not stored (zero).
    pub fn from_recording(r: &Recording, staged_path: Option<&Utf8PathBuf>) -> Self {
        let samplerate = r.samplerate;
        Recorded {
            id: r.id.to_string(),
            path: staged_path.or(r.path.as_ref()).cloned().unwrap_or_default(),
            start: r.created_on,
            duration_s: r.duration,
            samplerate,
            channels: u16::try_from(r.audio_channels).unwrap_or(u16::MAX),
            frames: (r.duration * f64::from(samplerate)).round() as u64,
            time_expansion: r.time_expansion,
            overruns: 0,
        }
    }
}

/// The result of `detect`: what each detector made of one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detected {
    /// The recording the detectors ran on.
    pub recording: Recorded,
    /// One outcome per detector, in program order.
    pub outputs: Vec<DetectorOutcome>,
}

/// What one detector made of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorOutcome {
    /// The detector's name (the model output's `model_name` in the store).
    pub detector: String,
    /// The stored model output's id.
    pub model_output: String,
    /// How many detections it stored.
    pub detections: u32,
    /// The best detection score, when there was a detection.
    pub max_score: Option<f64>,
}

/// Why a task's argument could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("argument {index} is not {what}: {reason}")]
pub struct ArgError {
    /// Position in `args`.
    pub index: usize,
    /// What was expected, e.g. ``a `Recorded` ``.
    pub what: &'static str,
    /// What serde said.
    pub reason: String,
}

/// The optional argument at `index` of `args` as a `T`: `None` when absent or JSON `null`
/// (a scheduled run), an error when present but not a `T`.
pub fn optional_arg<T: DeserializeOwned>(
    args: &[Json],
    index: usize,
    what: &'static str,
) -> Result<Option<T>, ArgError> {
    match args.get(index) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => T::deserialize(v).map(Some).map_err(|e| ArgError {
            index,
            what,
            reason: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Recorded {
        Recorded {
            id: "6f1c1a52-3f0e-4b8e-9d55-0c2a1f6f2b10".into(),
            path: "/run/shm/acoupi/20260601_210000_000.wav".into(),
            start: "2026-06-01T21:00:00Z".parse().expect("timestamp"),
            duration_s: 3.0,
            samplerate: 48_000,
            channels: 1,
            frames: 144_000,
            time_expansion: 1.0,
            overruns: 0,
        }
    }

    #[test]
    fn a_recorded_round_trips_and_old_results_default_the_new_fields() {
        let r = recorded();
        let json = serde_json::to_value(&r).expect("serialise");
        let back: Option<Recorded> =
            optional_arg(std::slice::from_ref(&json), 0, "a `Recorded`").expect("decode");
        assert_eq!(back, Some(r));
        let mut old = json;
        let obj = old.as_object_mut().expect("object");
        obj.remove("time_expansion");
        obj.remove("overruns");
        let back: Recorded = optional_arg(&[old], 0, "a `Recorded`")
            .expect("decode")
            .expect("present");
        assert_eq!((back.time_expansion, back.overruns), (1.0, 0));
    }

    #[test]
    fn a_recorded_converts_to_acoupis_recording_and_back() {
        let r = recorded();
        let deployment = Deployment {
            id: uuid::Uuid::from_u128(7),
            name: "hedge".into(),
            latitude: Some(51.5),
            longitude: None,
            started_on: "2026-06-01T20:00:00Z".parse().expect("timestamp"),
            ended_on: None,
        };
        let acoupi = r.to_recording(deployment.clone()).expect("a UUID id");
        assert_eq!(acoupi.id.to_string(), r.id);
        assert_eq!(acoupi.created_on, r.start);
        assert_eq!(acoupi.path.as_ref(), Some(&r.path));
        assert_eq!(acoupi.deployment, deployment);
        assert_eq!(Recorded::from_recording(&acoupi, None), r);
        let mut bad = r;
        bad.id = "not-a-uuid".into();
        assert!(bad.to_recording(deployment).is_err());
    }

    #[test]
    fn absent_and_null_arguments_are_none_and_wrong_ones_say_why() {
        assert_eq!(optional_arg::<Recorded>(&[], 0, "a `Recorded`"), Ok(None));
        assert_eq!(
            optional_arg::<Recorded>(&[Json::Null], 0, "a `Recorded`"),
            Ok(None)
        );
        let e = optional_arg::<Recorded>(&[serde_json::json!({"id": 3})], 0, "a `Recorded`")
            .expect_err("not a recording");
        assert_eq!((e.index, e.what), (0, "a `Recorded`"));
        assert!(
            e.to_string()
                .starts_with("argument 0 is not a `Recorded`: "),
            "{e}"
        );
    }
}
