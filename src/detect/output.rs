//! Detector events as acoupi's data: the model output stored, printed and sent.
//!
//! In: a detector's name and threshold, the recording it ran on and its [`Event`]s. Out: an
//! acoupi [`ModelOutput`] holding the events that reach the threshold, each an `event`
//! detection with a bounding box `[start s, low Hz, end s, high Hz]` and its tags.

use jiff::Timestamp;

use super::Event;
use crate::spec::data::{
    BoundingBox, Detection, ModelOutput, PredictedTag, PredictionType, Recording, Tag, new_id,
};

/// The model output of detector `name` on `recording`: the `events` scoring at least
/// `threshold`, in the detector's order, made at `created_on`.
pub fn model_output(
    name: &str,
    recording: Recording,
    events: &[Event],
    threshold: f64,
    created_on: Timestamp,
) -> ModelOutput {
    ModelOutput {
        id: new_id(),
        name_model: name.to_owned(),
        recording,
        detections: events
            .iter()
            .filter(|e| e.score >= threshold)
            .map(detection)
            .collect(),
        created_on,
    }
}

/// One event as an acoupi detection.
pub fn detection(e: &Event) -> Detection {
    Detection {
        id: new_id(),
        prediction_type: PredictionType::Event,
        location: Some(BoundingBox::new(e.start_s, e.low_hz, e.end_s, e.high_hz)),
        detection_score: e.score,
        tags: e
            .tags
            .iter()
            .map(|t| PredictedTag {
                tag: Tag {
                    key: t.key.clone(),
                    value: t.value.clone(),
                },
                confidence_score: t.score,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::EventTag;
    use crate::spec::data::Deployment;

    fn event(score: f64) -> Event {
        Event {
            start_s: 0.25,
            end_s: 0.3,
            low_hz: 30_000.0,
            high_hz: 60_000.0,
            score,
            tags: vec![EventTag {
                key: "species".into(),
                value: "Pipistrellus pipistrellus".into(),
                score: score / 2.0,
            }],
        }
    }

    #[test]
    fn events_under_the_threshold_are_dropped_and_the_rest_become_boxed_events() {
        let recording = Recording {
            created_on: "2026-06-01T21:00:00Z".parse().expect("time"),
            duration: 3.0,
            samplerate: 384_000,
            deployment: Deployment {
                id: uuid::Uuid::from_u128(1),
                name: "hedge".into(),
                latitude: None,
                longitude: None,
                started_on: "2026-06-01T20:00:00Z".parse().expect("time"),
                ended_on: None,
            },
            path: Some("/x.wav".into()),
            audio_channels: 1,
            time_expansion: 1.0,
            id: uuid::Uuid::from_u128(2),
        };
        let at: Timestamp = "2026-06-01T21:00:05Z".parse().expect("time");
        let out = model_output(
            "bats",
            recording,
            &[event(0.39), event(0.4), event(0.9)],
            0.4,
            at,
        );
        assert_eq!(out.name_model, "bats");
        assert_eq!(out.created_on, at);
        let scores: Vec<f64> = out.detections.iter().map(|d| d.detection_score).collect();
        assert_eq!(scores, [0.4, 0.9]);
        let d = &out.detections[0];
        assert_eq!(d.prediction_type, PredictionType::Event);
        assert_eq!(
            d.location.expect("a box").coordinates,
            [0.25, 30_000.0, 0.3, 60_000.0]
        );
        assert_eq!(d.tags[0].tag.value, "Pipistrellus pipistrellus");
        assert_eq!(d.tags[0].confidence_score, 0.2);
        assert_ne!(out.detections[0].id, out.detections[1].id);
    }
}
