//! The task registry: named handlers, plain async functions that know nothing of the broker.
//!
//! In: the task name, its arguments and a [`TaskContext`]. Out: a JSON result (passed to
//! follow-up tasks) or a [`TaskError`] saying whether a retry may help. New handlers (record,
//! detect, manage-files, send-messages, summary) plug in here without touching the consumer.

mod heartbeat;
mod noop;
pub(crate) mod record;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::spec::Program;

/// What a handler may know about the run it is part of.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The compiled program.
    pub program: Arc<Program>,
    /// The task id (a redelivered task keeps its id: handlers use it to stay idempotent).
    pub task_id: String,
    /// How many times this task was retried before this run.
    pub retries: u32,
    /// The worker running it.
    pub worker: String,
}

/// Why a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A failure that may pass (device busy, network down): retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// A failure that will not pass on its own (bad arguments): dead-lettered at once.
    #[error("{0}")]
    Permanent(String),
}

/// A task's outcome.
pub type TaskResult = Result<Json, TaskError>;

/// A boxed handler future.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// A task handler.
pub type Handler = fn(TaskContext, Vec<Json>, Map<String, Json>) -> TaskFuture;

/// Named handlers.
#[derive(Debug, Clone)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Handler>,
}

impl Registry {
    /// The handlers built into acoupi.
    pub fn builtin() -> Self {
        let mut handlers: BTreeMap<&'static str, Handler> = BTreeMap::new();
        handlers.insert("noop", noop::run);
        handlers.insert("heartbeat", heartbeat::run);
        handlers.insert("record", record::run);
        Registry { handlers }
    }

    /// The handler named `name`.
    pub fn get(&self, name: &str) -> Option<Handler> {
        self.handlers.get(name).copied()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    /// Adds or replaces a handler (tests register their own).
    pub fn insert(&mut self, name: &'static str, handler: Handler) {
        self.handlers.insert(name, handler);
    }
}
