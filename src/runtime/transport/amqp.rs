//! RabbitMQ through lapin: the only module that names lapin types.
//!
//! In: an AMQP URL, queue names, envelopes. Out: durable queues, persistent confirmed
//! mandatory publishes (a message no queue takes is an error, not a silent drop), and
//! consumer deliveries forwarded onto a channel. Connection recovery is the caller's loop
//! (reconnect, redeclare, consume again): a failed connection closes the delivery channel,
//! and unacknowledged deliveries go back to the broker by itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions,
    QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::{Acker, BrokerError, Deliveries, Delivery, Result};
use crate::runtime::celery::Envelope;

fn err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("{what}: {e}"))
}

/// A RabbitMQ connection with one channel for publishing (confirm mode) and one for
/// consuming.
pub struct AmqpBroker {
    conn: Connection,
    publisher: Channel,
    consumer: Channel,
    tags: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker").finish_non_exhaustive()
    }
}

/// The deliveries of one RabbitMQ consumer, read directly from lapin.
pub struct AmqpDeliveries {
    consumer: lapin::Consumer,
    queue: String,
}

impl std::fmt::Debug for AmqpDeliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpDeliveries")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl AmqpDeliveries {
    /// The next delivery; `None` once the consumer is cancelled or the channel failed.
    pub(super) async fn next(&mut self) -> Option<Delivery> {
        let d = self.consumer.next().await?.ok()?;
        Some(Delivery {
            queue: self.queue.clone(),
            envelope: envelope_of(&d.properties, d.data),
            redelivered: d.redelivered,
            acker: Acker::Amqp(AmqpAcker(d.acker)),
        })
    }
}

/// Acknowledges one RabbitMQ delivery.
pub struct AmqpAcker(lapin::Acker);

impl std::fmt::Debug for AmqpAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AmqpAcker")
    }
}

impl AmqpAcker {
    pub(super) async fn ack(self) -> Result<()> {
        self.0
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| err("ack", e))
    }

    pub(super) async fn requeue(self) -> Result<()> {
        self.0
            .reject(BasicRejectOptions { requeue: true })
            .await
            .map(|_| ())
            .map_err(|e| err("reject", e))
    }
}

impl AmqpBroker {
    pub(super) async fn connect(url: &str, name: &str) -> Result<Self> {
        let props = ConnectionProperties::default().with_connection_name(name.into());
        let url = with_small_frames(url);
        let conn = Connection::connect(&url, props)
            .await
            .map_err(|e| err("connect", e))?;
        let publisher = conn
            .create_channel()
            .await
            .map_err(|e| err("open channel", e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| err("confirm mode", e))?;
        let consumer = conn
            .create_channel()
            .await
            .map_err(|e| err("open channel", e))?;
        Ok(Self {
            conn,
            publisher,
            consumer,
            tags: Arc::default(),
        })
    }

    pub(super) async fn declare(&self, queue: &str) -> Result<()> {
        self.publisher
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .map(|_| ())
            .map_err(|e| err(&format!("declare queue `{queue}`"), e))
    }

    pub(super) async fn publish(&self, queue: &str, env: &Envelope) -> Result<()> {
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(env.content_type.as_str().into())
            .with_content_encoding(env.content_encoding.as_str().into())
            .with_correlation_id(env.correlation_id.as_str().into())
            .with_priority(env.priority)
            .with_headers(to_table(&env.headers));
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                queue.into(),
                // Mandatory: a message no queue takes comes back instead of being dropped.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &env.body,
                props,
            )
            .await
            .map_err(|e| err(&format!("publish to `{queue}`"), e))?
            .await
            .map_err(|e| err(&format!("confirm publish to `{queue}`"), e))?;
        if confirm.is_nack() {
            return Err(BrokerError(format!(
                "the broker refused a message for `{queue}`"
            )));
        }
        if confirm.take_message().is_some() {
            return Err(BrokerError(format!(
                "no queue `{queue}` to take the message (it was returned, not stored)"
            )));
        }
        Ok(())
    }

    pub(super) async fn consume(
        &self,
        queues: &[String],
        prefetch: u16,
        tag: &str,
    ) -> Result<Deliveries> {
        self.consumer
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(|e| err("set prefetch", e))?;
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)) * queues.len().max(1));
        for queue in queues {
            let consumer_tag = format!("{tag}.{queue}");
            let consumer = self
                .consumer
                .basic_consume(
                    queue.as_str().into(),
                    consumer_tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| err(&format!("consume `{queue}`"), e))?;
            self.tags
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(consumer_tag);
            if queues.len() == 1 {
                // One queue: the worker reads the consumer itself, with no forwarding task
                // (one task wake-up less per delivery).
                return Ok(Deliveries::Amqp(AmqpDeliveries {
                    consumer,
                    queue: queue.clone(),
                }));
            }
            let tx = tx.clone();
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut direct = AmqpDeliveries { consumer, queue };
                while let Some(delivery) = direct.next().await {
                    if tx.send(delivery).await.is_err() {
                        return;
                    }
                }
                // The channel or connection failed: dropping `tx` tells the worker.
            });
        }
        Ok(Deliveries::Channel(rx))
    }

    pub(super) async fn cancel(&self) {
        let tags: Vec<String> =
            std::mem::take(&mut *self.tags.lock().unwrap_or_else(|e| e.into_inner()));
        for tag in tags {
            let _ = self
                .consumer
                .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
                .await;
        }
    }

    /// A passive declare: the queue's counts (closes the channel when the queue is absent).
    async fn inspect(&self, queue: &str) -> Result<lapin::Queue> {
        self.publisher
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable().passive(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| err(&format!("inspect queue `{queue}`"), e))
    }

    pub(super) async fn depth(&self, queue: &str) -> Result<u32> {
        Ok(self.inspect(queue).await?.message_count())
    }

    pub(super) async fn consumers(&self, queue: &str) -> Result<u32> {
        Ok(self.inspect(queue).await?.consumer_count())
    }

    pub(super) async fn purge(&self, queue: &str) -> Result<u32> {
        self.publisher
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .map_err(|e| err(&format!("purge `{queue}`"), e))
    }

    pub(super) async fn delete(&self, queue: &str) -> Result<()> {
        self.publisher
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| err(&format!("delete `{queue}`"), e))
    }

    pub(super) async fn get(&self, queue: &str) -> Result<Option<Envelope>> {
        let msg = self
            .publisher
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .map_err(|e| err(&format!("get from `{queue}`"), e))?;
        Ok(msg.map(|m| envelope_of(&m.delivery.properties, m.delivery.data)))
    }

    pub(super) async fn close(&self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

/// Frame size asked of the broker unless the URL says otherwise. lapin keeps 32 frames of
/// buffer each way; at RabbitMQ's default of 128 KiB that is 8 MiB per connection, while task
/// messages are a few KiB. Larger messages are simply split into more frames.
const FRAME_MAX: u32 = 16 * 1024;

/// `url` with `frame_max` set, when it is not set already.
fn with_small_frames(url: &str) -> String {
    if url.contains("frame_max=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}frame_max={FRAME_MAX}")
}

fn envelope_of(props: &BasicProperties, body: Vec<u8>) -> Envelope {
    let text = |s: &Option<ShortString>| {
        s.as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
    };
    Envelope {
        headers: props.headers().as_ref().map(from_table).unwrap_or_default(),
        body,
        content_type: text(props.content_type()),
        content_encoding: text(props.content_encoding()),
        correlation_id: text(props.correlation_id()),
        priority: props.priority().unwrap_or(0),
    }
}

fn to_value(v: &Json) -> AMQPValue {
    match v {
        Json::Null => AMQPValue::Void,
        Json::Bool(b) => AMQPValue::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => AMQPValue::LongString(s.as_str().into()),
        Json::Array(a) => {
            AMQPValue::FieldArray(FieldArray::from(a.iter().map(to_value).collect::<Vec<_>>()))
        }
        Json::Object(o) => AMQPValue::FieldTable(to_table(
            &o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
    }
}

fn to_table(map: &BTreeMap<String, Json>) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in map {
        t.insert(k.as_str().into(), to_value(v));
    }
    t
}

fn from_value(v: &AMQPValue) -> Json {
    match v {
        AMQPValue::Void => Json::Null,
        AMQPValue::Boolean(b) => Json::Bool(*b),
        AMQPValue::ShortShortInt(i) => (*i).into(),
        AMQPValue::ShortShortUInt(i) => (*i).into(),
        AMQPValue::ShortInt(i) => (*i).into(),
        AMQPValue::ShortUInt(i) => (*i).into(),
        AMQPValue::LongInt(i) => (*i).into(),
        AMQPValue::LongUInt(i) => (*i).into(),
        AMQPValue::LongLongInt(i) => (*i).into(),
        AMQPValue::Timestamp(t) => (*t).into(),
        AMQPValue::Float(f) => serde_json::Number::from_f64(f64::from(*f))
            .map(Json::Number)
            .unwrap_or(Json::Null),
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        AMQPValue::DecimalValue(d) => {
            let scaled = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            serde_json::Number::from_f64(scaled)
                .map(Json::Number)
                .unwrap_or(Json::Null)
        }
        AMQPValue::ShortString(s) => s.as_str().into(),
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned().into(),
        AMQPValue::ByteArray(b) => String::from_utf8_lossy(b.as_slice()).into_owned().into(),
        AMQPValue::FieldArray(a) => Json::Array(a.as_slice().iter().map(from_value).collect()),
        AMQPValue::FieldTable(t) => Json::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), from_value(v)))
                .collect(),
        ),
    }
}

fn from_table(t: &FieldTable) -> BTreeMap<String, Json> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), from_value(v)))
        .collect()
}

/// The physical limit the benchmark compares the worker with: a bare consume-and-ack loop at
/// the same prefetch, with no decoding and no task. Returns the time from the first delivery
/// to the last acknowledgement of `n` messages.
pub async fn bare_drain(
    url: &str,
    queue: &str,
    n: u64,
    prefetch: u16,
) -> Result<std::time::Duration> {
    let conn = Connection::connect(
        &with_small_frames(url),
        ConnectionProperties::default().with_connection_name("acoupi bench bare".into()),
    )
    .await
    .map_err(|e| err("connect", e))?;
    let ch = conn
        .create_channel()
        .await
        .map_err(|e| err("open channel", e))?;
    ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await
        .map_err(|e| err("set prefetch", e))?;
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "acoupi-bench-bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| err("consume", e))?;
    let mut started = None;
    let mut done = 0u64;
    while done < n {
        let Some(item) = consumer.next().await else {
            break;
        };
        let d = item.map_err(|e| err("delivery", e))?;
        started.get_or_insert_with(std::time::Instant::now);
        d.acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| err("ack", e))?;
        done += 1;
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    let _ = ch
        .basic_cancel("acoupi-bench-bare".into(), BasicCancelOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    if done < n {
        return Err(BrokerError(format!(
            "the bare consumer stopped after {done} of {n} messages"
        )));
    }
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::DecimalValue;
    use serde_json::json;

    /// Headers go out as the AMQP values Celery reads and come back as the same JSON; values
    /// only another producer sends read as what they mean (a decimal is its digits over ten
    /// to its scale).
    #[test]
    fn headers_convert_to_amqp_values_and_back() {
        let headers: BTreeMap<String, Json> = [
            ("id", json!("abc")),
            ("retries", json!(2)),
            ("timelimit", json!([30.5, null])),
            ("ignore_result", json!(false)),
            ("nested", json!({"k": [1, "two"]})),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(from_table(&to_table(&headers)), headers);
        let mut foreign = FieldTable::default();
        foreign.insert(
            "price".into(),
            AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 12_345,
            }),
        );
        foreign.insert("small".into(), AMQPValue::ShortShortInt(-3));
        assert_eq!(
            from_table(&foreign),
            BTreeMap::from([
                ("price".to_owned(), json!(123.45)),
                ("small".to_owned(), json!(-3)),
            ])
        );
    }
}
