//! Messengers: deliver the outbox's messages to the destinations the manifest names.
//!
//! In: a batch of [`Outgoing`] messages (id, acoupi message type, JSON content) and the
//! manifest's `mqtt` / `http` settings. Out: one [`Outcome`] per message, in batch order:
//! delivered (the destination acknowledged it), refused (the destination answered and said no)
//! or unreachable (no answer: connection refused, DNS, TLS, timeout). A messenger never panics
//! and never fails as a whole on a network error: every message gets its own outcome, and the
//! `send-messages` task records each as acoupi's `Response`. What to send, retries and expiry
//! are the outbox's business ([`crate::store::Outbox`]); messengers only deliver.
//!
//! [`Messenger::from_spec`] builds one messenger per configured destination (MQTT first, then
//! HTTP), reading their secrets then; [`Messenger::send`] delivers a batch to one of them.
//! `mqtt.rs` and `http.rs` say how each maps what happened onto outcomes.

pub mod http;
pub mod messages;
pub mod mqtt;
mod tls;

pub use http::HttpMessenger;
pub use mqtt::MqttMessenger;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::spec;

/// One destination of the manifest's `messaging`.
#[derive(Debug, Clone)]
pub enum Messenger {
    /// An MQTT broker.
    Mqtt(MqttMessenger),
    /// An HTTP endpoint.
    Http(HttpMessenger),
}

impl Messenger {
    /// The messengers `messaging` configures: MQTT first, then HTTP. Secrets are read now; a
    /// destination that cannot be set up (an unset variable, an unreadable file, no system
    /// root certificates for TLS) is an error naming it.
    pub fn from_spec(messaging: &spec::Messaging) -> Result<Vec<Messenger>, SetupError> {
        let mut out = Vec::with_capacity(2);
        if let Some(mqtt) = &messaging.mqtt {
            out.push(Messenger::Mqtt(MqttMessenger::new(mqtt)?));
        }
        if let Some(http) = &messaging.http {
            out.push(Messenger::Http(HttpMessenger::new(http)?));
        }
        Ok(out)
    }

    /// A stable name for logs and the store, without credentials: `mqtt://host:port/topic`
    /// (`mqtts://` with TLS), or the HTTP URL without user name and password.
    pub fn name(&self) -> &str {
        match self {
            Messenger::Mqtt(m) => m.name(),
            Messenger::Http(h) => h.name(),
        }
    }

    /// Delivers `batch`: one outcome per message, in batch order. Never fails as a whole.
    pub async fn send(&self, batch: &[Outgoing]) -> Vec<Outcome> {
        match self {
            Messenger::Mqtt(m) => m.send(batch).await,
            Messenger::Http(h) => h.send(batch).await,
        }
    }
}

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

    fn messaging(mqtt: Option<spec::Mqtt>, http: Option<spec::Http>) -> spec::Messaging {
        spec::Messaging {
            mqtt,
            http,
            batch: 100,
            order: spec::MessageOrder::OldestFirst,
            messages: Vec::new(),
            max_attempts: spec::DEFAULT_MAX_ATTEMPTS,
            max_age_ms: spec::DEFAULT_MAX_AGE_MS,
        }
    }

    fn mqtt() -> spec::Mqtt {
        spec::Mqtt {
            host: "127.0.0.1".into(),
            port: 1883,
            topic: "acoupi/t".into(),
            username: Some(spec::Secret::Value("user".into())),
            password: Some(spec::Secret::Value("hunter2".into())),
            tls: false,
            client_id: "acoupi-t".into(),
            topic_per_type: false,
            timeout_ms: spec::DEFAULT_MQTT_TIMEOUT_MS,
        }
    }

    fn http() -> spec::Http {
        spec::Http {
            url: "https://user:hunter2@example.org/api".into(),
            headers: Vec::new(),
            timeout_ms: 1000,
        }
    }

    #[test]
    fn messengers_come_mqtt_first_named_without_credentials() {
        let all = Messenger::from_spec(&messaging(Some(mqtt()), Some(http()))).expect("valid");
        let names: Vec<&str> = all.iter().map(Messenger::name).collect();
        assert_eq!(
            names,
            ["mqtt://127.0.0.1:1883/acoupi/t", "https://example.org/api"]
        );
        for m in &all {
            assert!(!format!("{m:?}").contains("hunter2"));
        }
        let only_http = Messenger::from_spec(&messaging(None, Some(http()))).expect("valid");
        assert!(matches!(only_http.as_slice(), [Messenger::Http(_)]));
        assert!(
            Messenger::from_spec(&messaging(None, None))
                .expect("nothing to set up")
                .is_empty()
        );
    }

    #[test]
    fn an_unset_secret_fails_setup_naming_the_variable() {
        let mut m = mqtt();
        m.username = Some(spec::Secret::Env(
            "ACOUPI_TEST_SURELY_UNSET_MQTT_USER".into(),
        ));
        let e = Messenger::from_spec(&messaging(Some(m), Some(http()))).expect_err("unset");
        assert!(e.0.contains("ACOUPI_TEST_SURELY_UNSET_MQTT_USER"), "{e}");
    }

    #[test]
    fn messengers_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        fn send_future<F: std::future::Future + Send>(_: F) {}
        shareable::<Messenger>();
        let all = Messenger::from_spec(&messaging(Some(mqtt()), None)).expect("valid");
        // Only built, never polled: the future must be `Send` to run inside tokio tasks.
        send_future(all[0].send(&[]));
    }

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
