//! MQTT delivery benchmark: 10,000 queued messages (about 300 bytes of JSON each) delivered
//! at QoS 1 in one `send` to the shared Mosquitto on 127.0.0.1:1883, with a real subscriber
//! counting them.
//!
//! Run: `cargo test --release --test bench_mqtt -- --ignored --nocapture`. Out: on stderr, the
//! seconds the `send` took (connect to disconnect, every PUBACK in) and messages per second,
//! and how long until the subscriber had them all. Target: under 5 s. It asserts only what
//! it measures: every message acknowledged and received.

mod common;

use std::time::{Duration, Instant};

use acoupi::messaging::{MessageKind, MqttMessenger, Outcome, Outgoing};
use acoupi::spec;
use common::mosquitto::{SHARED_PORT, Subscriber, require_shared, unique_topic};
use uuid::Uuid;

const MESSAGES: usize = 10_000;

/// A detection-like JSON payload of about 300 bytes.
fn payload(i: usize) -> Vec<u8> {
    let body = format!(
        concat!(
            "{{\"id\":\"{}\",\"name_model\":\"band-energy\",\"created_on\":\"2026-11-29T01:02:03.{:06}Z\",",
            "\"recording\":{{\"path\":\"/home/pi/storage/recordings/2026/11/29/rec-{:05}.wav\",",
            "\"duration\":3.0,\"samplerate\":250000}},\"detections\":[{{\"detection_score\":0.{:04},",
            "\"location\":{{\"type\":\"BoundingBox\",\"coordinates\":[0.5,20000.0,0.8,45000.0]}},\"tags\":[]}}]}}"
        ),
        Uuid::new_v4(),
        i % 1_000_000,
        i,
        i % 10_000
    );
    body.into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures; run with cargo test --release --test bench_mqtt -- --ignored --nocapture"]
async fn deliver_ten_thousand_messages_at_qos_1() {
    require_shared();
    let topic = unique_topic("bench");
    let mut sub = Subscriber::start(SHARED_PORT, &topic, None).await;
    let messages: Vec<Outgoing> = (0..MESSAGES)
        .map(|i| Outgoing {
            id: Uuid::new_v4(),
            kind: Some(MessageKind::Detection),
            content: payload(i),
        })
        .collect();
    let mean_bytes = messages.iter().map(|m| m.content.len()).sum::<usize>() / MESSAGES;
    let m = MqttMessenger::new(&spec::Mqtt {
        host: "127.0.0.1".into(),
        port: SHARED_PORT,
        topic: topic.clone(),
        username: None,
        password: None,
        tls: false,
        client_id: unique_topic("bench-client").replace('/', "-"),
        topic_per_type: false,
        timeout_ms: spec::DEFAULT_MQTT_TIMEOUT_MS,
    })
    .expect("valid destination");

    let started = Instant::now();
    let outcomes = m.send(&messages).await;
    let sent = started.elapsed();
    let received = sub.take(MESSAGES, Duration::from_secs(60)).await;
    let all_in = started.elapsed();

    let delivered = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Delivered(_)))
        .count();
    eprintln!(
        "bench_mqtt: {MESSAGES} messages of ~{mean_bytes} bytes at QoS 1: send {:.3} s ({:.0} messages/s), all at the subscriber after {:.3} s; {delivered} acknowledged, {} received",
        sent.as_secs_f64(),
        MESSAGES as f64 / sent.as_secs_f64(),
        all_in.as_secs_f64(),
        received.len()
    );
    assert_eq!(delivered, MESSAGES, "every message acknowledged");
    assert_eq!(received.len(), MESSAGES, "every message received");
    let in_order = received
        .iter()
        .zip(&messages)
        .all(|((_, got), sent)| *got == sent.content);
    assert!(in_order, "received in order, byte for byte");
}
