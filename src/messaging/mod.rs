//! Messengers: deliver the outbox's messages to the destinations the manifest names.
//!
//! In: a batch of [`Outgoing`] messages (id, acoupi message type, JSON content) and the
//! manifest's `mqtt` / `http` settings. Out: one [`Outcome`] per message, in batch order:
//! delivered (the destination acknowledged it), refused (the destination answered and said no)
//! or unreachable (no answer: connection refused, DNS, TLS, timeout). A messenger never panics
//! and never fails as a whole on a network error: every message gets its own outcome, and the
//! `send-messages` task records each as acoupi's `Response`. What to send, retries and expiry
//! are the outbox's business ([`crate::store::Outbox`]); messengers only deliver.

pub mod messages;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// acoupi's `MessageType` (0.8): what a message carries. MQTT with `topic-per-type` publishes
/// to `<topic>/<type>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A deployment started or ended.
    Deployment,
    /// A heartbeat.
    Heartbeat,
    /// A kept recording.
    Recording,
    /// A detection summary.
    Summary,
    /// A model output with its detections.
    Detection,
}

impl MessageKind {
    /// Every kind.
    pub const ALL: [MessageKind; 5] = [
        MessageKind::Deployment,
        MessageKind::Heartbeat,
        MessageKind::Recording,
        MessageKind::Summary,
        MessageKind::Detection,
    ];

    /// The name acoupi stores in `message.message_type` and appends to MQTT topics.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Deployment => "deployment",
            MessageKind::Heartbeat => "heartbeat",
            MessageKind::Recording => "recording",
            MessageKind::Summary => "summary",
            MessageKind::Detection => "detection",
        }
    }

    /// The kind named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// acoupi's `ResponseStatus`: the value stored in `response.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseStatus {
    /// Delivered (0).
    Success,
    /// Not delivered: the destination could not be reached (1).
    Failed,
    /// Not delivered: the destination answered with an error (2).
    Error,
    /// Not delivered: no answer in time (3).
    Timeout,
}

impl ResponseStatus {
    /// The integer acoupi stores.
    pub fn code(self) -> i64 {
        match self {
            ResponseStatus::Success => 0,
            ResponseStatus::Failed => 1,
            ResponseStatus::Error => 2,
            ResponseStatus::Timeout => 3,
        }
    }

    /// The status stored as `code`, if any.
    pub fn from_code(code: i64) -> Option<Self> {
        [
            ResponseStatus::Success,
            ResponseStatus::Failed,
            ResponseStatus::Error,
            ResponseStatus::Timeout,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// A message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The outbox id.
    pub id: Uuid,
    /// What it carries (`None` for messages acoupi stored without a type: the base topic).
    pub kind: Option<MessageKind>,
    /// The payload, sent as is (UTF-8 JSON for everything acoupi builds).
    pub content: Vec<u8>,
}

/// What became of one message at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination acknowledged it (an MQTT PUBACK, an HTTP 2xx). The text is what it
    /// answered (the HTTP body; for MQTT a short note), stored as the response content.
    Delivered(String),
    /// The destination answered and refused this message (an HTTP status outside 2xx, a
    /// payload the client cannot send). Retried with backoff, counted towards the attempt cap.
    Refused {
        /// Stored in `response.status` (`Error`, or `Timeout` for a 408/504).
        status: ResponseStatus,
        /// The answer or the reason (the HTTP status line and body, truncated).
        detail: String,
    },
    /// The destination could not be reached (connection refused, DNS, TLS, a timeout, the
    /// connection lost before an acknowledgement). Not this message's fault: retried when the
    /// destination answers again.
    Unreachable {
        /// `Failed`, or `Timeout` when a deadline passed.
        status: ResponseStatus,
        /// The cause, naming the destination.
        detail: String,
    },
}

impl Outcome {
    /// The status acoupi's `response` table records for this outcome.
    pub fn status(&self) -> ResponseStatus {
        match self {
            Outcome::Delivered(_) => ResponseStatus::Success,
            Outcome::Refused { status, .. } | Outcome::Unreachable { status, .. } => *status,
        }
    }

    /// The text recorded with it.
    pub fn detail(&self) -> &str {
        match self {
            Outcome::Delivered(d)
            | Outcome::Refused { detail: d, .. }
            | Outcome::Unreachable { detail: d, .. } => d,
        }
    }
}

/// A destination that could not be set up from the program (an unset secret, a bad URL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_round_trip_through_acoupis_names_and_codes() {
        for k in MessageKind::ALL {
            assert_eq!(MessageKind::from_name(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).expect("serialisable"),
                serde_json::Value::String(k.as_str().into())
            );
        }
        assert_eq!(MessageKind::from_name("Detection"), None);
        for (code, s) in [
            (0, ResponseStatus::Success),
            (1, ResponseStatus::Failed),
            (2, ResponseStatus::Error),
            (3, ResponseStatus::Timeout),
        ] {
            assert_eq!(s.code(), code);
            assert_eq!(ResponseStatus::from_code(code), Some(s));
        }
        assert_eq!(ResponseStatus::from_code(4), None);
    }
}
