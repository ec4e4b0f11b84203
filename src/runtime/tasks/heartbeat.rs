//! `heartbeat`: says the program is alive. For now it logs and returns the heartbeat, which
//! the messaging issue turns into a message in the outbox.

use serde_json::{Map, Value as Json, json};

use super::{TaskContext, TaskFuture};

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let now = jiff::Timestamp::now();
        tracing::info!(program = %ctx.program.name, worker = %ctx.worker, "heartbeat");
        Ok(json!({
            "program": ctx.program.name,
            "timestamp": now.to_string(),
            "worker": ctx.worker,
        }))
    })
}
