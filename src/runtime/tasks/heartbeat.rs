//! `heartbeat`: says the program is alive, with the recording tally (files written, samples
//! lost to overruns, the last file). It logs the heartbeat, keeps the last one in
//! `state/heartbeat.json` for `acoupi status`, and returns it, which the messaging issue turns
//! into a message in the outbox.

use serde_json::{Map, Value as Json, json};

use super::{TaskContext, TaskFuture};

pub(super) fn run(ctx: TaskContext, _args: Vec<Json>, _kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let now = jiff::Timestamp::now();
        // What the recording worker tallied: files, overruns (samples lost), the last file.
        let recording: Json =
            std::fs::read_to_string(ctx.program.paths.state.join(super::record::TALLY))
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or(Json::Null);
        tracing::info!(program = %ctx.program.name, worker = %ctx.worker, %recording, "heartbeat");
        let beat = json!({
            "program": ctx.program.name,
            "timestamp": now.to_string(),
            "worker": ctx.worker,
            "recording": recording,
        });
        // The last heartbeat, for `acoupi status` (written whole, then renamed).
        let state = &ctx.program.paths.state;
        let tmp = state.join(".heartbeat.json.tmp");
        let saved = std::fs::create_dir_all(state)
            .and_then(|()| std::fs::write(&tmp, beat.to_string()))
            .and_then(|()| std::fs::rename(&tmp, state.join("heartbeat.json")));
        if let Err(e) = saved {
            tracing::warn!(error = %e, "could not record the heartbeat for status");
        }
        Ok(beat)
    })
}
