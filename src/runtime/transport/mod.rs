//! The transport the runtime publishes to and consumes from: RabbitMQ (through `amqp`, the
//! only module that names lapin) or in-process queues (`memory`), behind one enum so the
//! consumer, beat and handlers are the same code for both.
//!
//! In: queue names and [`Envelope`]s. Out: confirmed publishes, and deliveries that must be
//! acknowledged (or rejected back to the queue) after the task finished.

pub mod amqp;
pub mod memory;

use std::time::Duration;

use tokio::sync::mpsc;

use self::amqp::{AmqpAcker, AmqpBroker, AmqpDeliveries};
use self::memory::{MemoryAcker, MemoryBroker};
use super::celery::Envelope;

/// A transport failure. Workers treat every one as "reconnect and carry on".
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);

/// Result of a transport operation.
pub type Result<T> = std::result::Result<T, BrokerError>;

/// One message delivered to a consumer, not yet acknowledged.
#[derive(Debug)]
pub struct Delivery {
    /// The queue it came from.
    pub queue: String,
    /// The message.
    pub envelope: Envelope,
    /// Whether the broker delivered it before (to a consumer that did not acknowledge it).
    pub redelivered: bool,
    /// Acknowledges or rejects it.
    pub acker: Acker,
}

/// Acknowledges a delivery on the transport it came from.
#[derive(Debug)]
pub enum Acker {
    /// RabbitMQ.
    Amqp(AmqpAcker),
    /// In-process.
    Memory(MemoryAcker),
}

impl Acker {
    /// The task finished (or was dead-lettered): remove the message from the queue.
    pub async fn ack(self) -> Result<()> {
        match self {
            Acker::Amqp(a) => a.ack().await,
            Acker::Memory(a) => {
                a.ack();
                Ok(())
            }
        }
    }

    /// Give the message back to the queue for redelivery (shutdown before it ran).
    pub async fn requeue(self) -> Result<()> {
        match self {
            Acker::Amqp(a) => a.requeue().await,
            Acker::Memory(a) => {
                a.requeue();
                Ok(())
            }
        }
    }
}

/// The deliveries of a consumer.
#[derive(Debug)]
pub enum Deliveries {
    /// Forwarded onto a channel (in-process queues, several RabbitMQ queues).
    Channel(mpsc::Receiver<Delivery>),
    /// Read straight from one RabbitMQ consumer.
    Amqp(AmqpDeliveries),
}

impl Deliveries {
    /// The next delivery; `None` when the transport failed or consuming was cancelled.
    pub async fn recv(&mut self) -> Option<Delivery> {
        match self {
            Deliveries::Channel(rx) => rx.recv().await,
            Deliveries::Amqp(d) => d.next().await,
        }
    }

    /// Deliveries already received but not handed out (after [`Broker::cancel`]), to give
    /// back to the queue; waits at most `limit`.
    pub async fn leftovers(&mut self, limit: Duration) -> Vec<Delivery> {
        if let Deliveries::Channel(rx) = self {
            rx.close();
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(limit, async {
            while let Some(d) = self.recv().await {
                out.push(d);
            }
        })
        .await;
        out
    }
}

/// A connected transport.
#[derive(Debug, Clone)]
pub enum Broker {
    /// RabbitMQ over AMQP 0-9-1.
    Amqp(std::sync::Arc<AmqpBroker>),
    /// In-process queues.
    Memory(MemoryBroker),
}

/// Name of the dead-letter queue of `queue`.
pub fn dead_letter_queue(queue: &str) -> String {
    format!("{queue}.dead-letter")
}

impl Broker {
    /// Connects to the AMQP URL, retrying with backoff until `give_up` elapses (`None`: forever).
    pub async fn connect_amqp(url: &str, name: &str, give_up: Option<Duration>) -> Result<Broker> {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            match AmqpBroker::connect(url, name).await {
                Ok(b) => return Ok(Broker::Amqp(std::sync::Arc::new(b))),
                Err(e) => {
                    if give_up.is_some_and(|g| started.elapsed() + delay > g) {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, retry_in = ?delay, "broker unreachable");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// Declares `queue` (durable) and its dead-letter queue.
    pub async fn declare(&self, queue: &str) -> Result<()> {
        match self {
            Broker::Amqp(b) => {
                b.declare(queue).await?;
                b.declare(&dead_letter_queue(queue)).await
            }
            Broker::Memory(b) => {
                b.declare(queue);
                b.declare(&dead_letter_queue(queue));
                Ok(())
            }
        }
    }

    /// Publishes persistently to `queue` and waits for the broker's confirmation.
    pub async fn publish(&self, queue: &str, envelope: &Envelope) -> Result<()> {
        match self {
            Broker::Amqp(b) => b.publish(queue, envelope).await,
            Broker::Memory(b) => b.publish(queue, envelope.clone()),
        }
    }

    /// Starts consuming `queues` with at most `prefetch` unacknowledged deliveries per queue;
    /// deliveries arrive on the returned channel, which closes when the transport fails or
    /// [`Broker::cancel`] is called.
    pub async fn consume(&self, queues: &[String], prefetch: u16, tag: &str) -> Result<Deliveries> {
        match self {
            Broker::Amqp(b) => b.consume(queues, prefetch, tag).await,
            Broker::Memory(b) => Ok(Deliveries::Channel(b.consume(queues, prefetch))),
        }
    }

    /// Stops every consumer of this connection; in-flight deliveries can still be acknowledged.
    pub async fn cancel(&self) {
        match self {
            Broker::Amqp(b) => b.cancel().await,
            Broker::Memory(b) => b.cancel(),
        }
    }

    /// Messages ready in `queue` (not counting unacknowledged ones).
    pub async fn depth(&self, queue: &str) -> Result<u32> {
        match self {
            Broker::Amqp(b) => b.depth(queue).await,
            Broker::Memory(b) => Ok(b.depth(queue)),
        }
    }

    /// Consumers attached to `queue`, which must exist (AMQP: a passive declare, which
    /// closes the channel when the queue is absent).
    pub async fn consumers(&self, queue: &str) -> Result<u32> {
        match self {
            Broker::Amqp(b) => b.consumers(queue).await,
            Broker::Memory(_) => Err(BrokerError(
                "the in-process broker does not count consumers".into(),
            )),
        }
    }

    /// Deletes the ready messages of `queue`; returns how many.
    pub async fn purge(&self, queue: &str) -> Result<u32> {
        match self {
            Broker::Amqp(b) => b.purge(queue).await,
            Broker::Memory(b) => Ok(b.purge(queue)),
        }
    }

    /// Deletes `queue` and its dead-letter queue (benchmarks and tests clean up with this).
    pub async fn delete(&self, queue: &str) -> Result<()> {
        match self {
            Broker::Amqp(b) => {
                b.delete(queue).await?;
                b.delete(&dead_letter_queue(queue)).await
            }
            Broker::Memory(b) => {
                b.delete(queue);
                b.delete(&dead_letter_queue(queue));
                Ok(())
            }
        }
    }

    /// Takes one ready message off `queue` and acknowledges it (tests read dead letters with it).
    pub async fn get(&self, queue: &str) -> Result<Option<Envelope>> {
        match self {
            Broker::Amqp(b) => b.get(queue).await,
            Broker::Memory(b) => Ok(b.get(queue)),
        }
    }

    /// Closes the connection.
    pub async fn close(&self) {
        if let Broker::Amqp(b) = self {
            b.close().await;
        }
    }
}
