//! `noop`: does nothing and returns its first argument; benchmarks and tests drive the worker
//! with it. Keyword arguments make it misbehave on purpose: `sleep_ms` (wait that long),
//! `fail` (`"transient"` or `"permanent"`), `fail_until_retry` (fail transiently until the
//! task has been retried that many times).

use serde_json::{Map, Value as Json};

use super::{TaskContext, TaskError, TaskFuture};

pub(super) fn run(ctx: TaskContext, args: Vec<Json>, kwargs: Map<String, Json>) -> TaskFuture {
    Box::pin(async move {
        let mark = kwargs.get("mark").and_then(Json::as_str).map(str::to_owned);
        if let Some(path) = &mark {
            append(path, &format!("start {}\n", ctx.task_id)).await?;
        }
        if let Some(ms) = kwargs.get("sleep_ms").and_then(Json::as_u64) {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        if let Some(n) = kwargs.get("fail_until_retry").and_then(Json::as_u64)
            && u64::from(ctx.retries) < n
        {
            return Err(TaskError::Transient(format!(
                "failing until retry {n} (this is retry {})",
                ctx.retries
            )));
        }
        match kwargs.get("fail").and_then(Json::as_str) {
            Some("transient") => Err(TaskError::Transient("asked to fail (transient)".into())),
            Some("permanent") => Err(TaskError::Permanent("asked to fail (permanent)".into())),
            _ => {
                if let Some(path) = &mark {
                    append(path, &format!("done {}\n", ctx.task_id)).await?;
                }
                Ok(args.into_iter().next().unwrap_or(Json::Null))
            }
        }
    })
}

async fn append(path: &str, line: &str) -> Result<(), TaskError> {
    use tokio::io::AsyncWriteExt;
    let mut f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .map_err(|e| TaskError::Permanent(format!("cannot open `{path}`: {e}")))?;
    // tokio's `File` writes in the background: without the flush a later line (or another
    // process reading the file) can overtake this one.
    f.write_all(line.as_bytes())
        .await
        .map_err(|e| TaskError::Transient(format!("cannot write `{path}`: {e}")))?;
    f.flush()
        .await
        .map_err(|e| TaskError::Transient(format!("cannot write `{path}`: {e}")))
}
