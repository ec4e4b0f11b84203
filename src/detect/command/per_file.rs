//! Per-file mode: the program started once per recording, the WAV path as its last argument.
//!
//! In: one [`Request`]. Out: its events, read from the program's stdout (one JSON document:
//! a reply object or just the detections array), or why it failed. The request line of serve
//! mode is also in the environment variable `ACOUPI_REQUEST`. A run past the timeout is
//! killed; a nonzero exit or invalid output fails the request with the program's last stderr
//! lines; an `error` reply refuses it.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Config;
use super::child::{self, Pipes};
use super::protocol::{self, Reply};
use crate::detect::{DetectError, Event, Request};

/// The environment variable holding the request as a JSON object.
pub const REQUEST_ENV: &str = "ACOUPI_REQUEST";

/// How long the stdout of a process that has ended may take to reach its end.
const STDOUT_DRAIN: Duration = Duration::from_secs(2);

/// Runs `config`'s program on `request`'s file.
pub(super) async fn run(config: &Config, request: &Request) -> Result<Vec<Event>, DetectError> {
    let name = &config.name;
    let line = protocol::request_line(request);
    let (mut child, mut stderr) = child::spawn(
        name,
        &config.argv,
        Some(request.path.as_str()),
        &[(REQUEST_ENV, &line)],
        Pipes::StdoutOnly,
    )
    .map_err(DetectError::Failed)?;
    let pid = child.id().unwrap_or(0);
    // Bounded: a program writing without end blocks on the full pipe and meets its timeout.
    let reader = child.stdout.take().map(|stdout| {
        tokio::spawn(async move {
            let mut out = Vec::new();
            stdout
                .take(child::MAX_LINE_BYTES + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        })
    });
    let status = match tokio::time::timeout(config.timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(format!("could not be waited for ({e})")),
        Err(_) => {
            child::kill(&mut child).await;
            Err(format!(
                "timed out after {:.1} s (killed)",
                config.timeout.as_secs_f64()
            ))
        }
    };
    stderr.drain().await;
    let fail = |cause: String| {
        DetectError::Failed(format!(
            "detector `{name}` (process {pid}) {cause} on {}{}",
            request.path,
            stderr.describe()
        ))
    };
    let status = status.map_err(fail)?;
    if !status.success() {
        return Err(fail(child::describe_status(status)));
    }
    let out = match reader {
        Some(task) => match tokio::time::timeout(STDOUT_DRAIN, task).await {
            Ok(Ok(Ok(out))) => out,
            Ok(Ok(Err(e))) => return Err(fail(format!("wrote unreadable output ({e})"))),
            Ok(Err(e)) => return Err(fail(format!("could not be read ({e})"))),
            Err(_) => return Err(fail("left its stdout open after exiting".into())),
        },
        None => Vec::new(),
    };
    if out.len() as u64 > child::MAX_LINE_BYTES {
        return Err(fail(format!(
            "wrote more than {} MiB",
            child::MAX_LINE_BYTES >> 20
        )));
    }
    let text = String::from_utf8(out).map_err(|_| fail("wrote output that is not UTF-8".into()))?;
    match protocol::parse_document(&text) {
        Ok(Reply::Detections(events)) => Ok(events),
        Ok(Reply::Error(message)) => Err(DetectError::Refused(format!(
            "detector `{name}` refused {}: {message}",
            request.path
        ))),
        Err(e) => Err(fail(format!(
            "wrote invalid output: {e}; it was `{}`",
            child::cut(text.trim(), 200)
        ))),
    }
}
