//! `heartbeat`: says the program is alive, with the recording tally (files written, samples
//! lost to overruns, the last file) and the staging backlog (files and bytes against the
//! budget: recording pauses past it). It logs the heartbeat, keeps the last one in the state
//! directory for `acoupi status`, and returns it, which the messaging issue turns into a
//! message in the outbox.

use serde_json::{Map, Value as Json, json};

use super::{TaskContext, TaskFuture};
use crate::spec::layout::State;

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let now = ctx.services.clock.now();
        let program = ctx.program();
        let state = State(&program.paths.state);
        // What the recording worker tallied: files, overruns (samples lost), the last file.
        let recording: Json = std::fs::read_to_string(state.recording_tally())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(Json::Null);
        // The staging backlog: what waits for detection and file management.
        let staging = match crate::files::space::staging(program) {
            Ok(s) => json!({
                "files": s.files,
                "bytes": s.bytes,
                "budget": s.budget,
                "paused": s.bytes > s.budget,
            }),
            Err(e) => json!({ "error": format!("{}: {e}", program.paths.staging) }),
        };
        tracing::info!(program = %program.name, worker = %ctx.worker, %recording, %staging, "heartbeat");
        let beat = json!({
            "program": program.name,
            "device_id": ctx.services.host.device_id,
            "timestamp": now.to_string(),
            "worker": ctx.worker,
            "recording": recording,
            "staging": staging,
        });
        // The last heartbeat, for `acoupi status`.
        if let Err(e) =
            crate::fsx::write_atomic(&state.heartbeat(), beat.to_string().as_bytes(), None)
        {
            tracing::warn!(error = %e, "could not record the heartbeat for status");
        }
        Ok(beat)
    })
}
