//! Serve mode: a pool of long-lived detector processes, one JSON line per request and reply.
//!
//! In: [`Request`]s, from any number of tasks. Out: each request's events, or why it failed.
//! A request takes an idle process, or starts one if fewer than `slots` run, or waits for
//! one to be free. A process that times out, exits, or answers nonsense fails its request
//! and is killed; the next request starts a new one. Consecutive failures back off: the first
//! restart is immediate, then 1 s, 2 s, 4 s … up to 60 s between starts; while backing off,
//! a request that needs a new process fails at once (its task is retried later), and any
//! success ends the backoff. Shutdown waits for requests in flight, then closes each
//! process's stdin, and signals it if it does not exit.

use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Config;
use super::child::{self, Pipes, StderrTail};
use super::protocol::{self, Line, Ready, Reply};
use crate::detect::{DetectError, Event, Request};

/// The longest wait between two starts of a failing program.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long a process may take to exit once its stdin is closed, and again after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long an exited process's status may take to be known, for the error message.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);

/// The processes of one serve-mode detector.
#[derive(Debug)]
pub(super) struct Pool {
    slots: Semaphore,
    size: u32,
    state: Mutex<State>,
}

/// What the pool's requests share.
#[derive(Debug, Default)]
struct State {
    /// Started processes no request holds.
    idle: Vec<Process>,
    /// Set at shutdown: no request starts, no process goes back to `idle`.
    closed: bool,
    /// Failures since the last success.
    failures: u32,
    /// No process starts before this (the backoff after `failures`).
    not_before: Option<Instant>,
    /// The last failure, repeated while backing off.
    last_failure: String,
    /// The last readiness announcement.
    ready: Option<Ready>,
}

/// One running program.
#[derive(Debug)]
struct Process {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    /// False until it answers its first request: that request's deadline includes the
    /// start-up time.
    answered: bool,
    /// What it announced, if it did.
    ready: Option<Ready>,
}

/// Why an exchange with a process failed (the process is then killed).
#[derive(Debug)]
enum Fault {
    /// Past the deadline.
    TimedOut(Duration),
    /// stdout closed or stdin broken: it exited or is exiting.
    Gone(String),
    /// A line that is not the reply to this request.
    Invalid(String),
}

impl Pool {
    /// An empty pool running up to `slots` processes (at least one).
    pub(super) fn new(slots: usize) -> Pool {
        let size = u32::try_from(slots.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Pool {
            slots: Semaphore::new(size as usize),
            size,
            state: Mutex::new(State::default()),
        }
    }

    /// The last readiness announcement of one of the processes.
    pub(super) fn ready(&self) -> Option<Ready> {
        self.lock().ready.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-updated in a way that
        // matters (each update is one assignment), so a poisoned lock is used as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers `request` with one of the pool's processes.
    pub(super) async fn detect(
        &self,
        config: &Config,
        request: &Request,
    ) -> Result<Vec<Event>, DetectError> {
        let name = &config.name;
        let closed = || DetectError::Failed(format!("detector `{name}` is shut down"));
        let _permit = self.slots.acquire().await.map_err(|_| closed())?;
        let mut process = match self.take_idle().ok_or_else(closed)? {
            Some(mut p) => match p.child.try_wait() {
                // It exited while idle: this request need not fail for it.
                Ok(Some(status)) => {
                    p.stderr.drain().await;
                    let message = format!(
                        "detector `{name}` (process {}) {} while idle{}",
                        p.pid,
                        child::describe_status(status),
                        p.stderr.describe()
                    );
                    tracing::warn!(detector = %name, "{message}");
                    self.record_failure(&message);
                    self.start(config)?
                }
                _ => p,
            },
            None => self.start(config)?,
        };
        let deadline = if process.answered {
            config.timeout
        } else {
            config.startup_timeout + config.timeout
        };
        let result = process
            .exchange(
                name,
                &protocol::request_line(request),
                &request.id,
                deadline,
            )
            .await;
        if let Some(ready) = &process.ready {
            self.lock().ready = Some(ready.clone());
        }
        match result {
            Ok(reply) => {
                process.answered = true;
                self.give_back(process).await;
                match reply {
                    Reply::Detections(events) => Ok(events),
                    Reply::Error(message) => Err(DetectError::Refused(format!(
                        "detector `{name}` refused request `{}`: {message}",
                        request.id
                    ))),
                }
            }
            Err(fault) => {
                let message = process.fail(name, &request.id, fault).await;
                tracing::warn!(detector = %name, "{message}");
                self.record_failure(&message);
                Err(DetectError::Failed(message))
            }
        }
    }

    /// Starts processes until `slots` run (unless the pool is shut down or backing off), so
    /// the first requests do not wait for the program to load its model. A process started so
    /// has not answered yet: its first request's deadline still includes the start-up time.
    pub(super) fn warm(&self, config: &Config) -> Result<usize, DetectError> {
        let mut started = 0;
        loop {
            {
                let state = self.lock();
                let running =
                    self.size as usize - self.slots.available_permits() + state.idle.len();
                if state.closed || running >= self.size as usize {
                    return Ok(started);
                }
            }
            let process = self.start(config)?;
            let mut state = self.lock();
            if state.closed {
                drop(state);
                // Shut down meanwhile: kill_on_drop ends it.
                drop(process);
                return Ok(started);
            }
            state.idle.push(process);
            started += 1;
        }
    }

    /// An idle process, if any; `None` once the pool is shut down.
    fn take_idle(&self) -> Option<Option<Process>> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        Some(state.idle.pop())
    }

    /// Starts a process, unless the pool is backing off after failures.
    fn start(&self, config: &Config) -> Result<Process, DetectError> {
        let name = &config.name;
        {
            let state = self.lock();
            if let Some(not_before) = state.not_before {
                let now = Instant::now();
                if now < not_before {
                    return Err(DetectError::Failed(format!(
                        "detector `{name}` is restarting after {} failures in a row; next start \
                         in {:.1} s; the last failure: {}",
                        state.failures,
                        (not_before - now).as_secs_f64(),
                        state.last_failure
                    )));
                }
            }
        }
        match Process::start(config) {
            Ok(p) => {
                tracing::info!(detector = %name, pid = p.pid, "started {:?}", config.argv);
                Ok(p)
            }
            Err(message) => {
                tracing::warn!(detector = %name, "{message}");
                self.record_failure(&message);
                Err(DetectError::Failed(message))
            }
        }
    }

    /// Counts a failure and sets when the next process may start.
    fn record_failure(&self, message: &str) {
        let mut state = self.lock();
        state.failures = state.failures.saturating_add(1);
        state.not_before = Some(Instant::now() + backoff(state.failures));
        state.last_failure = message.to_owned();
    }

    /// Puts `process` back for the next request after a good exchange (ending any backoff),
    /// or stops it if the pool has shut down meanwhile.
    async fn give_back(&self, process: Process) {
        let process = {
            let mut state = self.lock();
            state.failures = 0;
            state.not_before = None;
            if state.closed {
                Some(process)
            } else {
                state.idle.push(process);
                None
            }
        };
        if let Some(p) = process {
            p.stop().await;
        }
    }

    /// Stops every process: waits for the requests in flight, then stops the idle processes
    /// together. Later requests fail.
    pub(super) async fn shutdown(&self, name: &str) {
        self.lock().closed = true;
        // Requests in flight end by their deadline; their processes are then stopped by
        // `give_back` or killed as failed.
        let all = self.slots.acquire_many(self.size).await;
        self.slots.close();
        drop(all);
        let idle = std::mem::take(&mut self.lock().idle);
        let mut stops = JoinSet::new();
        for p in idle {
            tracing::info!(detector = %name, pid = p.pid, "stopping");
            stops.spawn(p.stop());
        }
        while stops.join_next().await.is_some() {}
    }
}

/// The wait before the next start after `failures` failures in a row: none after the first,
/// then 1 s doubling to [`MAX_BACKOFF`].
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(6)).min(MAX_BACKOFF),
    }
}

impl Process {
    /// Starts `config`'s program with its pipes.
    fn start(config: &Config) -> Result<Process, String> {
        let (mut child, stderr) = child::spawn(&config.name, &config.argv, None, &[], Pipes::Both)?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(format!(
                "detector `{}`: the pipes of process {pid} are missing",
                config.name
            ));
        };
        Ok(Process {
            child,
            pid,
            stdin,
            stdout: BufReader::new(stdout),
            stderr,
            answered: false,
            ready: None,
        })
    }

    /// Sends `line` (request `id`) and reads lines until its reply, within `limit`.
    async fn exchange(
        &mut self,
        name: &str,
        line: &str,
        id: &str,
        limit: Duration,
    ) -> Result<Reply, Fault> {
        match tokio::time::timeout(limit, self.send_and_read(name, line, id)).await {
            Ok(result) => result,
            Err(_) => Err(Fault::TimedOut(limit)),
        }
    }

    async fn send_and_read(&mut self, name: &str, line: &str, id: &str) -> Result<Reply, Fault> {
        let mut framed = String::with_capacity(line.len() + 1);
        framed.push_str(line);
        framed.push('\n');
        if let Err(e) = self.stdin.write_all(framed.as_bytes()).await {
            return Err(Fault::Gone(format!("could not be sent the request ({e})")));
        }
        if let Err(e) = self.stdin.flush().await {
            return Err(Fault::Gone(format!("could not be sent the request ({e})")));
        }
        let mut first = !self.answered;
        loop {
            let text = match child::read_line(&mut self.stdout, child::MAX_LINE_BYTES).await {
                Ok(Some(text)) => text,
                Ok(None) => return Err(Fault::Gone("closed its stdout".into())),
                Err(e) => return Err(Fault::Invalid(e)),
            };
            if text.trim().is_empty() {
                continue;
            }
            let was_first = std::mem::replace(&mut first, false);
            match protocol::parse_line(&text) {
                Ok(Line::Ready(ready)) if was_first => {
                    tracing::info!(
                        detector = %name,
                        pid = self.pid,
                        program = ready.name.as_deref().unwrap_or("?"),
                        version = ready.version.as_deref().unwrap_or("?"),
                        labels = ready.labels.len(),
                        "ready"
                    );
                    self.ready = Some(ready);
                }
                Ok(Line::Ready(_)) => {
                    return Err(Fault::Invalid(
                        "announced readiness after its first line".into(),
                    ));
                }
                Ok(Line::Reply { id: got, reply }) if got == id => return Ok(reply),
                Ok(Line::Reply { id: got, .. }) => {
                    return Err(Fault::Invalid(format!(
                        "answered with id `{}` instead of `{id}`",
                        child::cut(&got, 80)
                    )));
                }
                Err(e) => {
                    return Err(Fault::Invalid(format!(
                        "sent an invalid reply: {e}; the line was `{}`",
                        child::cut(&text, 200)
                    )));
                }
            }
        }
    }

    /// Kills the process after `fault` and says what happened, with its last stderr lines.
    async fn fail(mut self, name: &str, id: &str, fault: Fault) -> String {
        let pid = self.pid;
        let cause = match fault {
            Fault::TimedOut(limit) => {
                child::kill(&mut self.child).await;
                format!("timed out after {:.1} s (killed)", limit.as_secs_f64())
            }
            Fault::Gone(what) => {
                let status = child::exit_status(&mut self.child, EXIT_STATUS_WAIT).await;
                child::kill(&mut self.child).await;
                match status {
                    Some(status) => format!("{what}: it {status}"),
                    None => format!("{what} (killed)"),
                }
            }
            Fault::Invalid(what) => {
                child::kill(&mut self.child).await;
                format!("{what} (killed)")
            }
        };
        self.stderr.drain().await;
        format!(
            "detector `{name}` (process {pid}) {cause} on request `{id}`{}",
            self.stderr.describe()
        )
    }

    /// Closes stdin (the program's cue to exit), then signals it if it does not exit.
    async fn stop(self) {
        let Process {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        child::stop(&mut child, STOP_GRACE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute() {
        let secs: Vec<u64> = (0..12).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
