//! A detector program's process: started without a shell, its stderr logged, stopped.
//!
//! In: the program's argv (and, per file, the WAV path). Out: a running [`Child`] whose
//! stderr lines go to the log (with the detector's name and the pid) and into a
//! [`StderrTail`] of the last lines, put in the error of a failed request; and the ways to
//! stop it: killed at once after a failure, or asked to stop (stdin closed, SIGTERM, SIGKILL)
//! at shutdown. Every child is spawned with `kill_on_drop`, so a dropped one does not outlive
//! the detector.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};
use tokio::task::JoinHandle;

/// How many stderr lines a failure reports.
pub(super) const TAIL_LINES: usize = 20;

/// Longest stderr line kept in the tail (a line is cut there, on a character boundary).
const TAIL_LINE_CHARS: usize = 400;

/// How long a failed process's stderr may take to reach its end after the process is killed
/// (a grandchild may hold it open).
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// How long a killed process may take to be reaped.
const REAP: Duration = Duration::from_secs(5);

/// The program's stdin and stdout: piped (serve mode) or stdout only (per-file mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pipes {
    /// stdin and stdout piped.
    Both,
    /// stdin from /dev/null, stdout piped.
    StdoutOnly,
}

/// Starts `argv` (plus `extra`, if any) with `env` set, its stderr read line by line.
pub(super) fn spawn(
    name: &str,
    argv: &[String],
    extra: Option<&str>,
    env: &[(&str, &str)],
    pipes: Pipes,
) -> Result<(Child, StderrTail), String> {
    let Some((program, args)) = argv.split_first() else {
        return Err(format!("detector `{name}` has an empty command"));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .args(extra)
        .envs(env.iter().copied())
        .stdin(match pipes {
            Pipes::Both => Stdio::piped(),
            Pipes::StdoutOnly => Stdio::null(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| format!("detector `{name}` cannot start `{program}`: {e}"))?;
    let pid = child.id().unwrap_or(0);
    let tail = StderrTail::watch(name, pid, child.stderr.take());
    Ok((child, tail))
}

/// The last lines a process wrote on its stderr, kept while a task logs them.
#[derive(Debug)]
pub(super) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    task: Option<JoinHandle<()>>,
}

impl StderrTail {
    /// Reads `stderr` to its end on a task: each line logged, the last [`TAIL_LINES`] kept.
    fn watch(name: &str, pid: u32, stderr: Option<ChildStderr>) -> StderrTail {
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let task = stderr.map(|stderr| {
            let lines = Arc::clone(&lines);
            let name = name.to_owned();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    // Bounded: a line longer than this is logged in pieces.
                    let mut bounded = (&mut reader).take(MAX_STDERR_LINE_BYTES);
                    match bounded.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    tracing::info!(detector = %name, pid, "{line}");
                    let mut kept = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if kept.len() == TAIL_LINES {
                        kept.pop_front();
                    }
                    kept.push_back(cut(line, TAIL_LINE_CHARS));
                }
            })
        });
        StderrTail { lines, task }
    }

    /// Waits (briefly) for the stderr of a process that has ended or been killed to reach its
    /// end, so the tail holds its last words.
    pub(super) async fn drain(&mut self) {
        if let Some(task) = self.task.as_mut()
            && tokio::time::timeout(STDERR_DRAIN, task).await.is_ok()
        {
            self.task = None;
        }
    }

    /// The kept lines, for an error message: `; its stderr ended with:` and the lines
    /// indented, or a note that it wrote nothing.
    pub(super) fn describe(&self) -> String {
        let kept = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if kept.is_empty() {
            return "; it wrote nothing on stderr".into();
        }
        let mut out = String::from("; its stderr ended with:");
        for line in kept.iter() {
            out.push_str("\n    ");
            out.push_str(line);
        }
        out
    }
}

impl Drop for StderrTail {
    fn drop(&mut self) {
        // The reader ends by itself at EOF; a grandchild holding stderr open must not keep it.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Kills `child` at once and waits (briefly) until it is reaped.
pub(super) async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(REAP, child.wait()).await;
}

/// Stops a serve-mode process politely: `child`'s stdin is already closed (the program's cue
/// to exit); after `grace` it gets SIGTERM, after as long again SIGKILL.
pub(super) async fn stop(child: &mut Child, grace: Duration) {
    if tokio::time::timeout(grace, child.wait()).await.is_ok() {
        return;
    }
    if let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
    }
    kill(child).await;
}

/// How `child` ended, if it has within `wait`: `exited with status 3`, `was killed by signal
/// 9`; `None` while it still runs.
pub(super) async fn exit_status(child: &mut Child, wait: Duration) -> Option<String> {
    let status = tokio::time::timeout(wait, child.wait()).await.ok()?.ok()?;
    Some(describe_status(status))
}

/// `exited with status 3` or `was killed by signal 9`.
pub(super) fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended ({status})"),
    }
}

/// `s` cut to at most `max` characters, marked with `…` when cut.
pub(super) fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// The longest protocol line acoupi reads from a program's stdout (a reply with tens of
/// thousands of detections fits); a longer one is an invalid reply, not unbounded memory.
pub(super) const MAX_LINE_BYTES: u64 = 16 << 20;

/// The longest stderr line logged as one; longer ones are logged in pieces.
const MAX_STDERR_LINE_BYTES: u64 = 64 << 10;

/// The next line of `reader` without its line ending, `None` at the end, or an error when it
/// is longer than `max` bytes, not UTF-8, or cannot be read.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: u64,
) -> Result<Option<String>, String> {
    let mut buf = Vec::new();
    let n = reader
        .take(max + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| format!("wrote unreadable output ({e})"))?;
    if n == 0 {
        return Ok(None);
    }
    if buf.len() as u64 > max {
        return Err(format!("wrote a line longer than {} MiB", max >> 20));
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| "wrote a line that is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::{cut, read_line};

    #[test]
    fn cut_marks_long_lines() {
        assert_eq!(cut("abc", 3), "abc");
        assert_eq!(cut("abcd", 3), "abc…");
        assert_eq!(cut("ééé", 2), "éé…");
    }

    #[tokio::test]
    async fn lines_are_bounded_and_must_be_utf8() {
        let input: &[u8] = b"{\"id\": 1}\r\nabcdefghij\n\xff\n";
        let mut r = tokio::io::BufReader::new(input);
        assert_eq!(read_line(&mut r, 16).await, Ok(Some("{\"id\": 1}".into())));
        let long = read_line(&mut r, 5).await.expect_err("too long");
        assert!(long.contains("longer than"), "{long}");
        let mut r = tokio::io::BufReader::new(&b"\xff\n"[..]);
        assert!(read_line(&mut r, 10).await.is_err());
        let mut r = tokio::io::BufReader::new(&b"last"[..]);
        assert_eq!(read_line(&mut r, 10).await, Ok(Some("last".into())));
        assert_eq!(read_line(&mut r, 10).await, Ok(None));
    }
}
