//! The MQTT messenger against real brokers: the shared Mosquitto on 127.0.0.1:1883 and private
//! ones started by the tests (an outage, a password file), read back by a real subscriber.

mod common;

use std::time::{Duration, Instant};

use acoupi::messaging::mqtt::MAX_PACKET_BYTES;
use acoupi::messaging::{MessageKind, Messenger, MqttMessenger, Outcome, Outgoing, ResponseStatus};
use acoupi::spec;
use common::mosquitto::{
    PrivateMosquitto, SHARED_PORT, Subscriber, free_port, require_shared, unique_topic,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// Messages a subscriber has seen before a test cuts the broker off mid-batch.
const FLOWING: usize = 1000;

fn mqtt(port: u16, topic: &str) -> spec::Mqtt {
    spec::Mqtt {
        host: "127.0.0.1".into(),
        port,
        topic: topic.into(),
        username: None,
        password: None,
        tls: false,
        client_id: unique_topic("client").replace('/', "-"),
        topic_per_type: false,
        timeout_ms: spec::DEFAULT_MQTT_TIMEOUT_MS,
    }
}

fn messenger(spec: &spec::Mqtt) -> MqttMessenger {
    MqttMessenger::new(spec).expect("a valid MQTT destination")
}

/// `n` messages with distinct payloads (JSON, and one that is not UTF-8), kinds cycling
/// through every kind and none.
fn batch(n: usize) -> Vec<Outgoing> {
    (0..n)
        .map(|i| {
            let kind = match i % 6 {
                5 => None,
                k => Some(MessageKind::ALL[k]),
            };
            let content = if i == 3 {
                vec![0xff, 0x00, 0xfe, b'{', 0x80]
            } else {
                format!("{{\"n\":{i},\"text\":\"message {i} é\"}}").into_bytes()
            };
            Outgoing {
                id: Uuid::new_v4(),
                kind,
                content,
            }
        })
        .collect()
}

fn assert_all_delivered(outcomes: &[Outcome], n: usize) {
    assert_eq!(outcomes.len(), n);
    for (i, o) in outcomes.iter().enumerate() {
        assert!(matches!(o, Outcome::Delivered(_)), "message {i}: {o:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_arrives_in_order_byte_for_byte_on_the_topic() {
    require_shared();
    let topic = unique_topic("order");
    let mut sub = Subscriber::start(SHARED_PORT, &format!("{topic}/#"), None).await;
    let messages = batch(60);
    let m = messenger(&mqtt(SHARED_PORT, &topic));
    assert_eq!(m.name(), format!("mqtt://127.0.0.1:1883/{topic}"));
    let outcomes = m.send(&messages).await;
    assert_all_delivered(&outcomes, messages.len());
    let got = sub
        .take(messages.len() + 1, Duration::from_millis(500))
        .await;
    let expected: Vec<(String, Vec<u8>)> = messages
        .iter()
        .map(|m| (topic.clone(), m.content.clone()))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_per_type_publishes_to_the_topic_of_each_kind() {
    require_shared();
    let topic = unique_topic("per-type");
    let mut sub = Subscriber::start(SHARED_PORT, &format!("{topic}/#"), None).await;
    let messages = batch(12);
    let spec = spec::Mqtt {
        topic_per_type: true,
        ..mqtt(SHARED_PORT, &topic)
    };
    // Through the enum the runtime uses.
    let all = Messenger::from_spec(&spec::Messaging {
        mqtt: Some(spec),
        http: None,
        batch: 100,
        order: spec::MessageOrder::OldestFirst,
        messages: Vec::new(),
        max_attempts: spec::DEFAULT_MAX_ATTEMPTS,
        max_age_ms: spec::DEFAULT_MAX_AGE_MS,
    })
    .expect("valid");
    let outcomes = all[0].send(&messages).await;
    assert_all_delivered(&outcomes, messages.len());
    let got = sub.take(messages.len(), WAIT).await;
    let expected: Vec<(String, Vec<u8>)> = messages
        .iter()
        .map(|m| {
            let t = match m.kind {
                Some(kind) => format!("{topic}/{}", kind.as_str()),
                None => topic.clone(),
            };
            (t, m.content.clone())
        })
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_unreachable_at_once_and_a_broker_there_later_gets_the_batch() {
    let port = free_port();
    let topic = unique_topic("outage");
    let m = messenger(&mqtt(port, &topic));
    let messages = batch(20);

    let started = Instant::now();
    let outcomes = m.send(&messages).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(outcomes.len(), messages.len());
    for o in &outcomes {
        let Outcome::Unreachable { status, detail } = o else {
            panic!("expected unreachable: {o:?}");
        };
        assert_eq!(*status, ResponseStatus::Failed);
        assert!(
            detail.contains(&format!("mqtt://127.0.0.1:{port}/{topic}"))
                && detail.contains("refused"),
            "{detail}"
        );
    }

    let broker = PrivateMosquitto::start(Some(port), None);
    let mut sub = Subscriber::start(broker.port(), &topic, None).await;
    let outcomes = m.send(&messages).await;
    assert_all_delivered(&outcomes, messages.len());
    let got = sub.take(messages.len(), WAIT).await;
    let payloads: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    let expected: Vec<Vec<u8>> = messages.iter().map(|m| m.content.clone()).collect();
    assert_eq!(payloads, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_with_passwords_takes_the_right_ones_and_refuses_the_wrong() {
    let broker = PrivateMosquitto::start(None, Some(("sensor", "right horse")));
    let topic = unique_topic("auth");
    let mut sub = Subscriber::start(broker.port(), &topic, Some(("sensor", "right horse"))).await;
    let messages = batch(5);

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mqtt-password");
    std::fs::write(&file, "right horse\n").expect("password file");
    let right = spec::Mqtt {
        username: Some(spec::Secret::Value("sensor".into())),
        password: Some(spec::Secret::File(
            camino::Utf8PathBuf::from_path_buf(file).expect("utf-8 path"),
        )),
        ..mqtt(broker.port(), &topic)
    };
    let outcomes = messenger(&right).send(&messages).await;
    assert_all_delivered(&outcomes, messages.len());
    assert_eq!(sub.take(messages.len(), WAIT).await.len(), messages.len());

    let wrong = spec::Mqtt {
        password: Some(spec::Secret::Value("wrong horse".into())),
        ..right.clone()
    };
    let started = Instant::now();
    let outcomes = messenger(&wrong).send(&messages).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    for o in &outcomes {
        let Outcome::Unreachable { status, detail } = o else {
            panic!("expected unreachable: {o:?}");
        };
        assert_eq!(*status, ResponseStatus::Failed);
        assert!(
            detail.contains("refused the connection") && detail.contains("not authorised"),
            "{detail}"
        );
        assert!(!detail.contains("horse"), "{detail}");
    }
    assert!(sub.take(1, Duration::from_millis(300)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_is_refused_and_its_neighbours_are_delivered() {
    require_shared();
    let topic = unique_topic("oversize");
    let mut sub = Subscriber::start(SHARED_PORT, &topic, None).await;
    let mut messages = batch(3);
    messages[1].content = vec![b'x'; MAX_PACKET_BYTES];
    let outcomes = messenger(&mqtt(SHARED_PORT, &topic)).send(&messages).await;
    assert!(
        matches!(outcomes[0], Outcome::Delivered(_)),
        "{:?}",
        outcomes[0]
    );
    assert!(
        matches!(outcomes[2], Outcome::Delivered(_)),
        "{:?}",
        outcomes[2]
    );
    let Outcome::Refused { status, detail } = &outcomes[1] else {
        panic!("expected refused: {:?}", outcomes[1]);
    };
    assert_eq!(*status, ResponseStatus::Error);
    assert!(detail.contains("maximum"), "{detail}");
    let got = sub.take(3, Duration::from_secs(2)).await;
    let payloads: Vec<&[u8]> = got.iter().map(|(_, p)| p.as_slice()).collect();
    assert_eq!(
        payloads,
        [
            messages[0].content.as_slice(),
            messages[2].content.as_slice()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_connect_times_out() {
    // A listener that accepts TCP connections (the kernel does) but never speaks MQTT.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = silent.local_addr().expect("address").port();
    let m = messenger(&mqtt(port, "acoupi-test/silent")).with_timeout(Duration::from_millis(400));
    let started = Instant::now();
    let outcomes = m.send(&batch(3)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(2),
        "took {took:?}"
    );
    for o in &outcomes {
        let Outcome::Unreachable { status, detail } = o else {
            panic!("expected unreachable: {o:?}");
        };
        assert_eq!(*status, ResponseStatus::Timeout);
        assert!(detail.contains("no CONNACK within 400 ms"), "{detail}");
        assert!(detail.contains(&format!("127.0.0.1:{port}")), "{detail}");
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_lost_mid_batch_leaves_the_acknowledged_delivered_and_the_rest_unreachable() {
    let mut broker = PrivateMosquitto::start(None, None);
    let topic = unique_topic("lost");
    let mut sub = Subscriber::start(broker.port(), &topic, None).await;
    let messages = batch(50_000);
    let m = messenger(&mqtt(broker.port(), &topic));
    let sending = {
        let (m, messages) = (m.clone(), messages.clone());
        tokio::spawn(async move { m.send(&messages).await })
    };
    // Kill the broker once messages flow, well past the first acknowledgements (the broker
    // answers the publisher and the subscriber in its own order).
    assert_eq!(
        sub.take(FLOWING, WAIT).await.len(),
        FLOWING,
        "messages did not reach the subscriber"
    );
    broker.stop();
    let outcomes = tokio::time::timeout(WAIT, sending)
        .await
        .expect("send ends soon after the broker is gone")
        .expect("send does not panic");
    assert_eq!(outcomes.len(), messages.len());
    let delivered = outcomes
        .iter()
        .take_while(|o| matches!(o, Outcome::Delivered(_)))
        .count();
    assert!(
        delivered >= 1 && delivered < messages.len(),
        "delivered {delivered}"
    );
    for o in &outcomes[delivered..] {
        let Outcome::Unreachable { status, detail } = o else {
            panic!("after the first unacknowledged message, all are unreachable: {o:?}");
        };
        assert_eq!(*status, ResponseStatus::Failed);
        assert!(detail.contains("connection lost"), "{detail}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_stops_acknowledging_times_out_the_unacknowledged() {
    let broker = PrivateMosquitto::start(None, None);
    let topic = unique_topic("frozen");
    let mut sub = Subscriber::start(broker.port(), &topic, None).await;
    let messages = batch(50_000);
    let m = messenger(&mqtt(broker.port(), &topic)).with_timeout(Duration::from_millis(500));
    let sending = {
        let (m, messages) = (m.clone(), messages.clone());
        tokio::spawn(async move { m.send(&messages).await })
    };
    assert_eq!(
        sub.take(FLOWING, WAIT).await.len(),
        FLOWING,
        "messages did not reach the subscriber"
    );
    // The connection stays open, but no PUBACK comes any more.
    broker.freeze();
    let frozen = Instant::now();
    let outcomes = tokio::time::timeout(WAIT, sending)
        .await
        .expect("send gives up once acknowledgements stop")
        .expect("send does not panic");
    let took = frozen.elapsed();
    broker.thaw();
    assert!(
        took < Duration::from_secs(3),
        "took {took:?} after the freeze"
    );
    let delivered = outcomes
        .iter()
        .take_while(|o| matches!(o, Outcome::Delivered(_)))
        .count();
    assert!(
        delivered >= 1 && delivered < messages.len(),
        "delivered {delivered}"
    );
    let expected = Outcome::Unreachable {
        status: ResponseStatus::Timeout,
        detail: format!(
            "mqtt://127.0.0.1:{}/{topic}: no acknowledgement from the broker for 500 ms",
            broker.port()
        ),
    };
    assert!(
        outcomes[delivered..].iter().all(|o| *o == expected),
        "{:?}",
        outcomes[delivered]
    );
}
