//! In-process queues with the same semantics the consumer relies on from RabbitMQ: per-queue
//! prefetch, acknowledgement after the task, redelivery of what was not acknowledged. Used by
//! `acoupi run --broker memory` (the quick start on a machine without RabbitMQ) and tests.
//!
//! In: envelopes published to named queues. Out: deliveries on a channel per consumer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Acker, Delivery};
use crate::runtime::celery::Envelope;

#[derive(Debug, Default)]
struct Queue {
    ready: VecDeque<(Envelope, bool)>,
    unacked: usize,
}

#[derive(Debug, Default)]
struct Inner {
    queues: HashMap<String, Queue>,
}

/// A set of in-process queues; clones share them.
#[derive(Debug, Clone, Default)]
pub struct MemoryBroker {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    cancel: Arc<Mutex<CancellationToken>>,
}

/// Acknowledges one in-process delivery; dropping it unacknowledged requeues the message.
#[derive(Debug)]
pub struct MemoryAcker {
    broker: MemoryBroker,
    queue: String,
    envelope: Option<Envelope>,
}

impl MemoryAcker {
    pub(super) fn ack(mut self) {
        self.envelope = None;
        self.broker.settle(&self.queue, None);
    }

    pub(super) fn requeue(mut self) {
        let env = self.envelope.take();
        self.broker.settle(&self.queue, env);
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some(env) = self.envelope.take() {
            self.broker.settle(&self.queue, Some(env));
        }
    }
}

impl MemoryBroker {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queues inconsistent: every
        // critical section is a few VecDeque operations, so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn settle(&self, queue: &str, requeue: Option<Envelope>) {
        let mut inner = self.lock();
        let q = inner.queues.entry(queue.to_owned()).or_default();
        q.unacked = q.unacked.saturating_sub(1);
        if let Some(env) = requeue {
            q.ready.push_front((env, true));
        }
        drop(inner);
        self.notify.notify_waiters();
    }

    pub(super) fn declare(&self, queue: &str) {
        self.lock().queues.entry(queue.to_owned()).or_default();
    }

    pub(super) fn publish(&self, queue: &str, envelope: Envelope) -> super::Result<()> {
        self.lock()
            .queues
            .entry(queue.to_owned())
            .or_default()
            .ready
            .push_back((envelope, false));
        self.notify.notify_waiters();
        Ok(())
    }

    pub(super) fn depth(&self, queue: &str) -> u32 {
        self.lock()
            .queues
            .get(queue)
            .map(|q| q.ready.len() as u32)
            .unwrap_or(0)
    }

    pub(super) fn purge(&self, queue: &str) -> u32 {
        let mut inner = self.lock();
        let Some(q) = inner.queues.get_mut(queue) else {
            return 0;
        };
        let n = q.ready.len() as u32;
        q.ready.clear();
        n
    }

    pub(super) fn delete(&self, queue: &str) {
        self.lock().queues.remove(queue);
    }

    pub(super) fn get(&self, queue: &str) -> Option<Envelope> {
        self.lock()
            .queues
            .get_mut(queue)?
            .ready
            .pop_front()
            .map(|(e, _)| e)
    }

    pub(super) fn cancel(&self) {
        self.cancel
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cancel();
        self.notify.notify_waiters();
    }

    /// Takes the next ready message of any of `queues` whose unacknowledged count is below
    /// `prefetch`.
    fn take(&self, queues: &[String], prefetch: usize) -> Option<(String, Envelope, bool)> {
        let mut inner = self.lock();
        for name in queues {
            let q = inner.queues.entry(name.clone()).or_default();
            if q.unacked < prefetch
                && let Some((env, redelivered)) = q.ready.pop_front()
            {
                q.unacked += 1;
                return Some((name.clone(), env, redelivered));
            }
        }
        None
    }

    pub(super) fn consume(&self, queues: &[String], prefetch: u16) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)) * queues.len().max(1));
        let broker = self.clone();
        let queues = queues.to_vec();
        let cancel = {
            let mut c = self.cancel.lock().unwrap_or_else(|e| e.into_inner());
            if c.is_cancelled() {
                *c = CancellationToken::new();
            }
            c.clone()
        };
        let prefetch = usize::from(prefetch.max(1));
        tokio::spawn(async move {
            loop {
                let notified = broker.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if cancel.is_cancelled() {
                    return;
                }
                while let Some((queue, envelope, redelivered)) = broker.take(&queues, prefetch) {
                    let acker = MemoryAcker {
                        broker: broker.clone(),
                        queue: queue.clone(),
                        envelope: Some(envelope.clone()),
                    };
                    let delivery = Delivery {
                        queue,
                        envelope,
                        redelivered,
                        acker: Acker::Memory(acker),
                    };
                    if tx.send(delivery).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = &mut notified => {}
                    _ = cancel.cancelled() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(id: &str) -> Envelope {
        Envelope {
            headers: std::collections::BTreeMap::new(),
            body: b"[[], {}, {}]".to_vec(),
            content_type: "application/json".into(),
            content_encoding: "utf-8".into(),
            correlation_id: id.into(),
            priority: 0,
        }
    }

    /// The next delivery, or a failure naming `what` when none comes within a second.
    async fn receive(deliveries: &mut mpsc::Receiver<Delivery>, what: &str) -> Delivery {
        tokio::time::timeout(std::time::Duration::from_secs(1), deliveries.recv())
            .await
            .unwrap_or_else(|_| panic!("no delivery: {what}"))
            .unwrap_or_else(|| panic!("the consumer stopped: {what}"))
    }

    /// A delivery dropped without an answer (its task's future dropped) is given back like
    /// RabbitMQ gives back one of a closed channel: first in line, marked redelivered, its
    /// prefetch slot freed; an acknowledged one is gone.
    #[tokio::test]
    async fn a_delivery_dropped_unanswered_comes_back_first_and_marked_redelivered() {
        let broker = MemoryBroker::default();
        broker.publish("q", envelope("a")).expect("published");
        broker.publish("q", envelope("b")).expect("published");
        let mut deliveries = broker.consume(&["q".to_owned()], 1);
        let first = receive(&mut deliveries, "the first").await;
        assert_eq!(
            (first.envelope.correlation_id.as_str(), first.redelivered),
            ("a", false)
        );
        assert_eq!(broker.depth("q"), 1, "prefetch 1: `b` waits");
        drop(first);
        let again = receive(&mut deliveries, "`a` given back").await;
        assert_eq!(
            (again.envelope.correlation_id.as_str(), again.redelivered),
            ("a", true)
        );
        again.acker.ack().await.expect("acknowledged");
        let next = receive(&mut deliveries, "`b`").await;
        assert_eq!(next.envelope.correlation_id, "b");
        next.acker.requeue().await.expect("requeued");
        let back = receive(&mut deliveries, "`b` requeued").await;
        assert_eq!(
            (back.envelope.correlation_id.as_str(), back.redelivered),
            ("b", true)
        );
        back.acker.ack().await.expect("acknowledged");
        assert_eq!(broker.depth("q"), 0);
        broker.cancel();
    }

    #[tokio::test]
    async fn purge_delete_and_cancel_do_what_they_say() {
        let broker = MemoryBroker::default();
        broker.declare("empty");
        assert!(broker.lock().queues.contains_key("empty"), "declared");
        for id in ["a", "b", "c"] {
            broker.publish("q", envelope(id)).expect("published");
        }
        assert_eq!(broker.purge("q"), 3);
        assert_eq!(broker.depth("q"), 0);
        assert_eq!(broker.purge("missing"), 0);
        broker.delete("q");
        assert!(!broker.lock().queues.contains_key("q"), "deleted");
        // Cancelled, a consumer stops: its channel closes.
        let mut deliveries = broker.consume(&["q".to_owned()], 1);
        broker.cancel();
        let end = tokio::time::timeout(std::time::Duration::from_secs(1), deliveries.recv()).await;
        assert!(matches!(end, Ok(None)), "the consumer stopped");
    }
}
