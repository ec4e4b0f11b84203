//! One worker, as a process runs it: the consumer of its queues and, when the program records
//! continuously on one of them, the continuous recorder beside it.
//!
//! In: how to reach the broker, the process's shared services, the worker's definition, the
//! handlers and a shutdown token. Out: runs until shutdown and both parts have stopped.
//! `acoupi worker` serves one worker per process; `acoupi run` serves every worker of the
//! program in one process, sharing one set of services.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::tasks::{Registry, Services};
use super::worker::{self, Connector};
use crate::spec;

/// Serves `def` until `shutdown` fires; `ready` is called once, when it first consumes.
pub async fn serve(
    connector: Connector,
    services: Arc<Services>,
    def: spec::Worker,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    ready: impl FnOnce(),
) {
    let recorder = super::continuous::applies(&services.program, &def).then(|| {
        tokio::spawn(super::continuous::run(
            connector.clone(),
            Arc::clone(&services),
            shutdown.clone(),
        ))
    });
    let setup = worker::Setup {
        connector,
        services,
        worker: def,
        registry,
        options: worker::Options::default(),
        stats: Arc::default(),
    };
    worker::run(setup, shutdown, ready).await;
    if let Some(r) = recorder
        && let Err(e) = r.await
    {
        tracing::error!(error = %e, "the continuous recorder failed");
    }
}
