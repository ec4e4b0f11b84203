//! The MQTT messenger: publishes a batch at QoS 1 and counts a message as delivered only when
//! the broker acknowledged it.
//!
//! In: the manifest's `mqtt` settings (secrets read in [`MqttMessenger::new`]) and a batch of
//! [`Outgoing`] messages. Out: one [`Outcome`] per message, in batch order.
//!
//! One [`MqttMessenger::send`] is one connection: connect (clean session, the manifest's
//! client id, user name and password when given, TLS with the system's roots when `tls` is
//! set), publish every message in batch order at QoS 1 without retain to the base topic, or
//! to `<topic>/<message type>` with `topic-per-type` when the message has a type, wait for
//! every PUBACK, disconnect cleanly. Up to [`IN_FLIGHT`] publishes await their PUBACK at once,
//! so a batch of 10,000 does not pay a round trip per message. Nothing is left behind: the
//! connection and its event loop end with `send`.
//!
//! Outcomes:
//! - acknowledged (PUBACK) -> [`Outcome::Delivered`];
//! - a packet over [`MAX_PACKET_BYTES`] -> [`Outcome::Refused`] (`Error`), without touching
//!   the connection; the rest of the batch is still sent;
//! - cannot connect (connection refused, DNS, TLS, the broker refusing the CONNECT, such as
//!   bad credentials, no CONNACK within the manifest's `timeout`, 10 s by default) -> every message
//!   [`Outcome::Unreachable`] with the cause, `Failed` (`Timeout` for the deadline). One
//!   connection attempt per send: a dead broker costs at most the timeout, not a reconnect per
//!   message;
//! - connection lost mid-batch -> the acknowledged messages `Delivered`, the rest
//!   `Unreachable` (`Failed`). A message whose PUBACK was lost may reach subscribers twice
//!   when it is sent again: QoS 1 is at-least-once;
//! - no PUBACK at all for the timeout -> the unacknowledged messages `Unreachable`
//!   (`Timeout`). The deadline restarts with every PUBACK, so a big batch on a slow link
//!   succeeds as long as the broker keeps acknowledging.
//!
//! A broker that limits message sizes itself (mosquitto's `message_size_limit`) closes the
//! connection on a bigger message; that shows as a lost connection, the messages after it
//! `Unreachable`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, NetworkOptions,
    Packet, QoS, TlsConfiguration, Transport,
};
use tokio::time::Instant;

use super::{Outcome, Outgoing, ResponseStatus, SetupError};
use crate::runtime::config::resolve_secret;
use crate::spec;

/// The largest MQTT packet (fixed header, topic, packet id and payload) the client sends: a
/// message whose packet would be bigger is refused without being sent.
pub const MAX_PACKET_BYTES: usize = 8 * 1024 * 1024;

/// Publishes awaiting their PUBACK at once.
pub const IN_FLIGHT: u16 = 1000;

/// Requests queued between the publishing side and the event loop.
const REQUEST_CHANNEL: usize = 256;

/// The MQTT keep-alive: pings when the connection is idle for this long.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// How long a clean disconnect may take before the connection is simply dropped.
const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

/// The largest incoming packet: the broker only sends CONNACK, PUBACK and PINGRESP.
const MAX_INCOMING_BYTES: usize = 10 * 1024;

/// An MQTT destination.
#[derive(Clone)]
pub struct MqttMessenger {
    host: String,
    port: u16,
    topic: String,
    topic_per_type: bool,
    client_id: String,
    username: Option<String>,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
    name: String,
}

impl fmt::Debug for MqttMessenger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        f.debug_struct("MqttMessenger")
            .field("name", &self.name)
            .field("client_id", &self.client_id)
            .field("topic_per_type", &self.topic_per_type)
            .finish_non_exhaustive()
    }
}

impl MqttMessenger {
    /// A messenger for `spec`, with its user name and password read now and, with TLS, the
    /// system's root certificates loaded.
    pub fn new(spec: &spec::Mqtt) -> Result<Self, SetupError> {
        let name = name_of(spec);
        if spec.host.is_empty() {
            return Err(SetupError(format!("{name}: the MQTT host is empty")));
        }
        if let Err(why) = check_topic(&spec.topic) {
            return Err(SetupError(format!(
                "{name}: MQTT topic `{}` {why}",
                spec.topic
            )));
        }
        let secret = |s: &Option<spec::Secret>, what: &str| {
            s.as_ref()
                .map(|s| resolve_secret(s, what).map_err(|e| SetupError(e.to_string())))
                .transpose()
        };
        let username = secret(&spec.username, "the MQTT username")?;
        let password = secret(&spec.password, "the MQTT password")?;
        if password.is_some() && username.is_none() {
            return Err(SetupError(format!(
                "{name}: an MQTT password needs a username (MQTT 3.1.1 sends no password alone)"
            )));
        }
        let tls = if spec.tls {
            Some(Arc::new(super::tls::client_config(&name)?))
        } else {
            None
        };
        Ok(MqttMessenger {
            host: spec.host.clone(),
            port: spec.port,
            topic: spec.topic.clone(),
            topic_per_type: spec.topic_per_type,
            client_id: spec.client_id.clone(),
            username,
            password,
            tls,
            timeout: Duration::from_millis(spec.timeout_ms.max(1)),
            name,
        })
    }

    /// The same messenger with another connect and acknowledgement deadline than the
    /// manifest's `timeout` (at least 1 ms).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// `mqtt://host:port/topic` (`mqtts://` with TLS): no credentials.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic a message of `kind` is published to.
    pub fn topic_for(&self, kind: Option<super::MessageKind>) -> String {
        match kind {
            Some(kind) if self.topic_per_type => format!("{}/{}", self.topic, kind.as_str()),
            _ => self.topic.clone(),
        }
    }

    /// Publishes `batch` over one connection; one outcome per message, in batch order.
    pub async fn send(&self, batch: &[Outgoing]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        // Messages to publish, in batch order: (index in the batch, topic).
        let mut queue = Vec::with_capacity(batch.len());
        for (i, message) in batch.iter().enumerate() {
            let topic = self.topic_for(message.kind);
            let size = publish_size(&topic, message.content.len());
            if size > MAX_PACKET_BYTES {
                outcomes[i] = Some(Outcome::Refused {
                    status: ResponseStatus::Error,
                    detail: format!(
                        "{}: a message of {} bytes makes an MQTT packet of {size} bytes, over the client's maximum of {MAX_PACKET_BYTES}",
                        self.name,
                        message.content.len()
                    ),
                });
            } else {
                queue.push((i, topic));
            }
        }
        if !queue.is_empty() {
            let acked = self.publish(batch, &queue).await;
            for (pos, (i, _)) in queue.iter().enumerate() {
                outcomes[*i] = Some(match &acked[pos] {
                    Ok(()) => Outcome::Delivered(format!("PUBACK from {}", self.name)),
                    Err((status, detail)) => Outcome::Unreachable {
                        status: *status,
                        detail: detail.clone(),
                    },
                });
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.expect("every message has an outcome: refused, or queued and settled"))
            .collect()
    }

    /// Connects, publishes `queue` (indices into `batch` with their topics) and waits for the
    /// acknowledgements: per queued message, `Ok` when acknowledged, else the failure.
    async fn publish(
        &self,
        batch: &[Outgoing],
        queue: &[(usize, String)],
    ) -> Vec<Result<(), (ResponseStatus, String)>> {
        let (client, mut eventloop) = AsyncClient::new(self.options(), REQUEST_CHANNEL);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        // rumqttc's own connect deadline (whole seconds) only backs up ours.
        network.set_connection_timeout(self.timeout.as_secs() + 1);
        eventloop.set_network_options(network);

        if let Err(failure) = self.connect(&mut eventloop).await {
            return vec![Err(failure); queue.len()];
        }

        let disconnect = client.clone();
        let publisher = async move {
            for (i, topic) in queue {
                let payload = batch[*i].content.clone();
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    // The event loop is gone: the driver has given up and says why.
                    break;
                }
            }
        };
        let driver = self.drive(eventloop, disconnect, queue.len());
        let ((), settled) = tokio::join!(publisher, driver);
        settled
    }

    /// Waits for the CONNACK; the failure every message gets when there is none.
    async fn connect(&self, eventloop: &mut EventLoop) -> Result<(), (ResponseStatus, String)> {
        match tokio::time::timeout(self.timeout, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => Ok(()),
            Ok(Ok(other)) => Err((
                ResponseStatus::Failed,
                format!(
                    "{}: expected CONNACK from the broker, got {other:?}",
                    self.name
                ),
            )),
            Ok(Err(e)) => Err(connect_failure(&self.name, e)),
            Err(_) => Err((
                ResponseStatus::Timeout,
                format!(
                    "cannot connect to {}: no CONNACK within {} ms",
                    self.name,
                    self.timeout.as_millis()
                ),
            )),
        }
    }

    /// Drives the connected event loop until all `count` publishes are acknowledged, the
    /// connection fails, or no PUBACK comes for the deadline; then disconnects and drops the
    /// connection (which also ends the publisher if it is still waiting).
    async fn drive(
        &self,
        mut eventloop: EventLoop,
        client: AsyncClient,
        count: usize,
    ) -> Vec<Result<(), (ResponseStatus, String)>> {
        let mut settled: Vec<Option<Result<(), (ResponseStatus, String)>>> = vec![None; count];
        // The queue position of the publish holding each packet id (ids are 1..=IN_FLIGHT).
        let mut by_pkid: Vec<Option<usize>> = vec![None; usize::from(IN_FLIGHT) + 1];
        // Publishes leave in queue order: the n-th `Outgoing::Publish` is queue position n.
        let mut next = 0usize;
        let mut acked = 0usize;
        let mut last_ack = Instant::now();
        let failure = loop {
            if acked == count {
                break None;
            }
            let deadline = last_ack + self.timeout;
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid)))) => {
                    if let Some(slot) = by_pkid.get_mut(usize::from(pkid)) {
                        *slot = Some(next);
                    }
                    next += 1;
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    let pos = by_pkid
                        .get_mut(usize::from(ack.pkid))
                        .and_then(Option::take);
                    if let Some(pos) = pos {
                        settled[pos] = Some(Ok(()));
                        acked += 1;
                        last_ack = Instant::now();
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    break Some((
                        ResponseStatus::Failed,
                        format!(
                            "{}: connection lost before the broker acknowledged the message: {}",
                            self.name,
                            describe(&e)
                        ),
                    ));
                }
                Err(_) => {
                    break Some((
                        ResponseStatus::Timeout,
                        format!(
                            "{}: no acknowledgement from the broker for {} ms",
                            self.name,
                            self.timeout.as_millis()
                        ),
                    ));
                }
            }
        };
        if failure.is_none() {
            // Everything is acknowledged and the request channel is empty: say goodbye.
            if client.try_disconnect().is_ok() {
                let until = Instant::now() + DISCONNECT_WAIT.min(self.timeout);
                while let Ok(Ok(event)) = tokio::time::timeout_at(until, eventloop.poll()).await {
                    if event == Event::Outgoing(rumqttc::Outgoing::Disconnect) {
                        break;
                    }
                }
            }
        }
        // Dropping the event loop closes the connection and the request channel.
        drop(eventloop);
        settled
            .into_iter()
            .map(|s| match s {
                Some(ok) => ok,
                None => Err(failure.clone().unwrap_or_else(|| {
                    (
                        ResponseStatus::Failed,
                        format!("{}: not acknowledged", self.name),
                    )
                })),
            })
            .collect()
    }

    /// The client options of one connection.
    fn options(&self) -> MqttOptions {
        let mut options = MqttOptions::new(self.client_id.clone(), self.host.clone(), self.port);
        options
            .set_clean_session(true)
            .set_keep_alive(KEEP_ALIVE)
            .set_inflight(IN_FLIGHT)
            .set_request_channel_capacity(REQUEST_CHANNEL)
            .set_max_packet_size(MAX_INCOMING_BYTES, MAX_PACKET_BYTES);
        if let Some(username) = &self.username {
            options.set_credentials(username.clone(), self.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        options
    }
}

/// The name of the destination `spec` describes.
fn name_of(spec: &spec::Mqtt) -> String {
    let scheme = if spec.tls { "mqtts" } else { "mqtt" };
    let host = if spec.host.contains(':') {
        format!("[{}]", spec.host)
    } else {
        spec.host.clone()
    };
    format!("{scheme}://{host}:{}/{}", spec.port, spec.topic)
}

/// Why `topic` cannot be published to, if it cannot.
fn check_topic(topic: &str) -> Result<(), &'static str> {
    if topic.is_empty() {
        Err("is empty")
    } else if topic.contains(['+', '#']) {
        Err("contains a wildcard (`+` or `#`)")
    } else if topic.contains('\0') {
        Err("contains a NUL character")
    } else if topic.len() > usize::from(u16::MAX) - "/deployment".len() {
        Err("is longer than MQTT allows")
    } else {
        Ok(())
    }
}

/// The size of the QoS 1 PUBLISH packet carrying `payload_len` bytes to `topic`, as the
/// client counts it against its maximum packet size.
fn publish_size(topic: &str, payload_len: usize) -> usize {
    // Topic length prefix, topic, packet id, payload.
    let remaining = 2 + topic.len() + 2 + payload_len;
    let length_bytes = match remaining {
        0..128 => 1,
        128..16_384 => 2,
        16_384..2_097_152 => 3,
        _ => 4,
    };
    1 + length_bytes + remaining
}

/// The cause of a failed connection attempt, naming the destination.
fn connect_failure(name: &str, e: ConnectionError) -> (ResponseStatus, String) {
    let status = match &e {
        ConnectionError::NetworkTimeout => ResponseStatus::Timeout,
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            ResponseStatus::Timeout
        }
        _ => ResponseStatus::Failed,
    };
    let detail = match &e {
        ConnectionError::ConnectionRefused(code) => {
            format!(
                "{name}: the broker refused the connection: {}",
                refusal(*code)
            )
        }
        ConnectionError::Tls(tls) => format!("cannot connect to {name}: TLS failed: {tls}"),
        other => format!("cannot connect to {name}: {}", describe(other)),
    };
    (status, detail)
}

/// A CONNACK refusal in words.
fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "no error",
        ConnectReturnCode::RefusedProtocolVersion => "unacceptable protocol version (MQTT 3.1.1)",
        ConnectReturnCode::BadClientId => "client id rejected",
        ConnectReturnCode::ServiceUnavailable => "server unavailable",
        ConnectReturnCode::BadUserNamePassword => "bad user name or password",
        ConnectReturnCode::NotAuthorized => {
            "not authorised (wrong or missing user name or password)"
        }
    }
}

/// A connection error in words.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => io.to_string(),
        ConnectionError::NetworkTimeout => "the network timed out".into(),
        ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => {
            "the broker closed the connection".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messaging::MessageKind;

    fn spec() -> spec::Mqtt {
        spec::Mqtt {
            host: "broker.example".into(),
            port: 1883,
            topic: "acoupi/site".into(),
            username: Some(spec::Secret::Value("pi".into())),
            password: Some(spec::Secret::Value("hunter2".into())),
            tls: false,
            client_id: "acoupi-site".into(),
            topic_per_type: false,
            timeout_ms: spec::DEFAULT_MQTT_TIMEOUT_MS,
        }
    }

    #[test]
    fn the_name_shows_scheme_host_port_and_topic_but_no_credentials() {
        let m = MqttMessenger::new(&spec()).expect("valid");
        assert_eq!(m.name(), "mqtt://broker.example:1883/acoupi/site");
        let debug = format!("{m:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("\"pi\""),
            "{debug}"
        );
        let v6 = spec::Mqtt {
            host: "::1".into(),
            ..spec()
        };
        assert_eq!(name_of(&v6), "mqtt://[::1]:1883/acoupi/site");
        let tls = spec::Mqtt {
            tls: true,
            port: 8883,
            ..spec()
        };
        assert_eq!(name_of(&tls), "mqtts://broker.example:8883/acoupi/site");
    }

    #[test]
    fn with_tls_the_system_roots_are_loaded() {
        let tls = spec::Mqtt {
            tls: true,
            port: 8883,
            ..spec()
        };
        let m = MqttMessenger::new(&tls).expect("the system has root certificates");
        assert_eq!(m.name(), "mqtts://broker.example:8883/acoupi/site");
        assert!(m.tls.is_some());
    }

    #[test]
    fn topics_get_the_message_type_only_with_topic_per_type() {
        let plain = MqttMessenger::new(&spec()).expect("valid");
        assert_eq!(plain.topic_for(Some(MessageKind::Detection)), "acoupi/site");
        assert_eq!(plain.topic_for(None), "acoupi/site");
        let per_type = MqttMessenger::new(&spec::Mqtt {
            topic_per_type: true,
            ..spec()
        })
        .expect("valid");
        for kind in MessageKind::ALL {
            assert_eq!(
                per_type.topic_for(Some(kind)),
                format!("acoupi/site/{}", kind.as_str())
            );
        }
        assert_eq!(per_type.topic_for(None), "acoupi/site");
    }

    #[test]
    fn setup_errors_name_what_is_wrong() {
        let unset = spec::Mqtt {
            password: Some(spec::Secret::Env("ACOUPI_TEST_SURELY_UNSET_MQTT_PW".into())),
            ..spec()
        };
        let e = MqttMessenger::new(&unset).expect_err("unset variable");
        assert!(
            e.0.contains("ACOUPI_TEST_SURELY_UNSET_MQTT_PW") && e.0.contains("MQTT password"),
            "{e}"
        );
        let alone = spec::Mqtt {
            username: None,
            ..spec()
        };
        let e = MqttMessenger::new(&alone).expect_err("password without username");
        assert!(e.0.contains("needs a username"), "{e}");
        for (topic, why) in [("", "empty"), ("a/+/b", "wildcard"), ("a/#", "wildcard")] {
            let e = MqttMessenger::new(&spec::Mqtt {
                topic: topic.into(),
                ..spec()
            })
            .expect_err("bad topic");
            assert!(e.0.contains(why), "{topic}: {e}");
        }
    }

    #[test]
    fn packet_sizes_match_the_clients_own_count() {
        for topic in ["a", "acoupi/site/detection"] {
            for len in [0, 1, 100, 127, 128, 16_000, 16_384, 2_097_000, 2_097_152] {
                let mut publish = rumqttc::Publish::new(topic, QoS::AtLeastOnce, vec![0u8; len]);
                publish.pkid = 1;
                assert_eq!(publish_size(topic, len), publish.size(), "{topic} {len}");
            }
        }
    }

    #[test]
    fn refusals_are_named() {
        let (status, detail) = connect_failure(
            "mqtt://h:1/t",
            ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword),
        );
        assert_eq!(status, ResponseStatus::Failed);
        assert_eq!(
            detail,
            "mqtt://h:1/t: the broker refused the connection: bad user name or password"
        );
        let (status, _) = connect_failure("mqtt://h:1/t", ConnectionError::NetworkTimeout);
        assert_eq!(status, ResponseStatus::Timeout);
    }
}
