//! The messages the manifest's `message` rules build, as the outbox stores them.
//!
//! In: the program's `messaging` rules and a stored model output, or a kept recording. Out:
//! [`NewMessage`]s whose payloads are acoupi's own JSON (a `ModelOutput`, a `Recording`), so
//! acoupi's servers parse them unchanged. Ids are derived from what a message is about (the
//! model output and rule, the recording), so a task run twice stores each message once.
//!
//! `message detection min-score=S [detector=D]`: per model output (of detector `D`, or any),
//! one message holding the output with only its detections scoring at least `S`; none when
//! no detection reaches `S`. Unlike acoupi's message builder, the output keeps its id and
//! time, and detections without tags are kept (a band-energy detector's events have none).
//! `message recording`: one message per kept recording, with its final path.

use jiff::Timestamp;
use uuid::Uuid;

use super::MessageKind;
use crate::spec::data::{ModelOutput, Recording};
use crate::spec::{MessageRule, Messaging};
use crate::store::NewMessage;

/// The namespace of message ids (a fixed, random UUID: ids are `v5(namespace, subject)`).
const NAMESPACE: Uuid = Uuid::from_u128(0x6d1c_5c86_8a53_4f0e_9b1e_53d0_22c4_a7e1);

/// A message id derived from `subject`: the same subject always gives the same id.
pub fn message_id(subject: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, subject.as_bytes())
}

/// The detection messages the rules build from `output`.
pub fn detection_messages(
    messaging: &Messaging,
    output: &ModelOutput,
    now: Timestamp,
) -> Result<Vec<NewMessage>, serde_json::Error> {
    let mut out = Vec::new();
    for (i, rule) in messaging.messages.iter().enumerate() {
        let MessageRule::Detection {
            min_score,
            detector,
        } = rule
        else {
            continue;
        };
        if detector.as_ref().is_some_and(|d| *d != output.name_model) {
            continue;
        }
        let detections: Vec<_> = output
            .detections
            .iter()
            .filter(|d| d.detection_score >= *min_score)
            .cloned()
            .collect();
        if detections.is_empty() {
            continue;
        }
        let payload = ModelOutput {
            detections,
            ..output.clone()
        };
        out.push(NewMessage {
            id: message_id(&format!("detection/{}/{i}", output.id)),
            kind: MessageKind::Detection,
            content: serde_json::to_string(&payload)?,
            created_on: now,
            recording: Some(output.recording.id),
        });
    }
    Ok(out)
}

/// The message about kept `recording` (its path the kept file's), when a rule asks for one.
pub fn recording_message(
    messaging: &Messaging,
    recording: &Recording,
    now: Timestamp,
) -> Result<Option<NewMessage>, serde_json::Error> {
    if !messaging
        .messages
        .iter()
        .any(|r| matches!(r, MessageRule::Recording))
    {
        return Ok(None);
    }
    Ok(Some(NewMessage {
        id: message_id(&format!("recording/{}", recording.id)),
        kind: MessageKind::Recording,
        content: serde_json::to_string(recording)?,
        created_on: now,
        recording: Some(recording.id),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::data::{BoundingBox, Deployment, Detection, PredictionType};
    use crate::spec::{MessageOrder, Messaging};

    fn messaging(messages: Vec<MessageRule>) -> Messaging {
        Messaging {
            mqtt: None,
            http: None,
            batch: 100,
            order: MessageOrder::OldestFirst,
            max_attempts: crate::spec::DEFAULT_MAX_ATTEMPTS,
            max_age_ms: crate::spec::DEFAULT_MAX_AGE_MS,
            messages,
        }
    }

    fn output(scores: &[f64]) -> ModelOutput {
        let t: Timestamp = "2026-06-01T22:00:00Z".parse().expect("time");
        ModelOutput {
            id: Uuid::from_u128(7),
            name_model: "bats".into(),
            recording: Recording {
                created_on: t,
                duration: 3.0,
                samplerate: 384_000,
                deployment: Deployment {
                    id: Uuid::from_u128(1),
                    name: "hedge".into(),
                    latitude: None,
                    longitude: None,
                    started_on: t,
                    ended_on: None,
                },
                path: Some("/srv/recordings/a.wav".into()),
                audio_channels: 1,
                time_expansion: 1.0,
                id: Uuid::from_u128(2),
            },
            detections: scores
                .iter()
                .enumerate()
                .map(|(i, s)| Detection {
                    id: Uuid::from_u128(100 + i as u128),
                    prediction_type: PredictionType::Event,
                    location: Some(BoundingBox::new(0.1, 30_000.0, 0.2, 80_000.0)),
                    detection_score: *s,
                    tags: vec![],
                })
                .collect(),
            created_on: t,
        }
    }

    #[test]
    fn detection_messages_keep_what_scores_enough_as_acoupi_model_outputs() {
        let now: Timestamp = "2026-06-01T22:00:05Z".parse().expect("time");
        let rules = messaging(vec![
            MessageRule::Detection {
                min_score: 0.5,
                detector: None,
            },
            MessageRule::Detection {
                min_score: 0.5,
                detector: Some("birds".into()),
            },
            MessageRule::Recording,
        ]);
        let o = output(&[0.2, 0.5, 0.9]);
        let msgs = detection_messages(&rules, &o, now).expect("built");
        assert_eq!(
            msgs.len(),
            1,
            "the `birds` rule does not match detector `bats`"
        );
        let m = &msgs[0];
        assert_eq!(m.kind, MessageKind::Detection);
        assert_eq!(m.recording, Some(o.recording.id));
        let back: ModelOutput = serde_json::from_str(&m.content).expect("a ModelOutput");
        assert_eq!(back.id, o.id, "the output keeps its id");
        let scores: Vec<f64> = back.detections.iter().map(|d| d.detection_score).collect();
        assert_eq!(scores, [0.5, 0.9]);
        assert_eq!(
            detection_messages(&rules, &o, now).expect("again")[0].id,
            m.id,
            "the same output gives the same id"
        );
        assert!(
            detection_messages(&rules, &output(&[0.1, 0.49]), now)
                .expect("built")
                .is_empty(),
            "nothing scores enough: no message"
        );
    }

    #[test]
    fn a_recording_message_only_when_a_rule_asks() {
        let now: Timestamp = "2026-06-01T22:00:05Z".parse().expect("time");
        let r = output(&[]).recording;
        assert!(
            recording_message(&messaging(vec![]), &r, now)
                .expect("built")
                .is_none()
        );
        let m = recording_message(&messaging(vec![MessageRule::Recording]), &r, now)
            .expect("built")
            .expect("asked for");
        assert_eq!(m.kind, MessageKind::Recording);
        let back: Recording = serde_json::from_str(&m.content).expect("a Recording");
        assert_eq!(back, r);
        assert_ne!(m.id, message_id(&format!("detection/{}/0", r.id)));
    }
}
