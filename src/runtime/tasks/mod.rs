//! The task registry: named handlers, plain async functions that know nothing of the broker.
//!
//! In: the task name, its arguments and a [`TaskContext`] holding the worker process's shared
//! [`Services`]. Out: a JSON result (passed to follow-up tasks) or a [`TaskError`] saying
//! whether a retry may help. Each handler is in a file named after its task; the names come
//! from [`crate::spec::tasks`], the same constants the compiler emits.

pub(crate) mod deployment;
pub(crate) mod detect;
mod heartbeat;
pub(crate) mod manage_files;
mod noop;
pub(crate) mod record;
pub(crate) mod send_messages;
mod services;
mod summary;

pub use services::{Clock, DeploymentSource, Services};

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::spec::payload::ArgError;
use crate::spec::{Program, tasks};

/// What a handler may know about the run it is part of.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// What the worker process shares between task runs (the program among them).
    pub services: Arc<Services>,
    /// The task id (a redelivered task keeps its id: handlers use it to stay idempotent).
    pub task_id: String,
    /// How many times this task was retried before this run.
    pub retries: u32,
    /// The worker running it.
    pub worker: String,
}

impl TaskContext {
    /// The compiled program.
    pub fn program(&self) -> &Program {
        &self.services.program
    }
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

impl From<ArgError> for TaskError {
    /// A malformed argument will not become well formed by retrying.
    fn from(e: ArgError) -> Self {
        TaskError::Permanent(e.to_string())
    }
}

/// A task's outcome.
pub type TaskResult = Result<Json, TaskError>;

/// A boxed handler future.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// A task handler: a plain function, or a closure holding what a test or benchmark wants to
/// observe.
pub type Handler =
    Arc<dyn Fn(TaskContext, Vec<Json>, Map<String, Json>) -> TaskFuture + Send + Sync>;

/// Named handlers.
#[derive(Clone)]
pub struct Registry {
    handlers: BTreeMap<&'static str, Handler>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.handlers.keys()).finish()
    }
}

impl Registry {
    /// The handlers built into acoupi.
    pub fn builtin() -> Self {
        let mut registry = Registry {
            handlers: BTreeMap::new(),
        };
        registry.insert(tasks::NOOP, noop::run);
        registry.insert(tasks::HEARTBEAT, heartbeat::run);
        registry.insert(tasks::RECORD, record::run);
        registry.insert(tasks::DETECT, detect::run);
        registry.insert(tasks::MANAGE_FILES, manage_files::run);
        registry.insert(tasks::SEND_MESSAGES, send_messages::run);
        registry.insert(tasks::SUMMARY, summary::run);
        registry
    }

    /// The handler named `name`.
    pub fn get(&self, name: &str) -> Option<Handler> {
        self.handlers.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.handlers.keys().copied()
    }

    /// Adds or replaces a handler (tests register their own).
    pub fn insert(
        &mut self,
        name: &'static str,
        handler: impl Fn(TaskContext, Vec<Json>, Map<String, Json>) -> TaskFuture
        + Send
        + Sync
        + 'static,
    ) {
        self.handlers.insert(name, Arc::new(handler));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_task_has_a_handler() {
        let registry = Registry::builtin();
        for name in tasks::PROGRAM_TASKS {
            assert!(registry.get(name).is_some(), "task `{name}` has no handler");
        }
    }
}
