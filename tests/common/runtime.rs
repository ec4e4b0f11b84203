//! Helpers for the runtime tests: test programs, unique queue names, a worker in the
//! background, waiting on conditions with a deadline, queues removed even when a test fails,
//! and tracing output captured for assertions.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acoupi::runtime::beat::{self, Fired, TimeSource};
use acoupi::runtime::tasks::Registry;
use acoupi::runtime::transport::Broker;
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::worker::{self, Connector, Stats};
use acoupi::spec::{self, Program};
use acoupi::{compile, plan};
use tokio_util::sync::CancellationToken;

/// The shared RabbitMQ of the test machine.
pub(crate) const AMQP: &str = "amqp://127.0.0.1:5672/%2f";

/// The smallest valid manifest.
pub(crate) const MINIMAL: &str = "program \"p\"\nmicrophone \"m\" { synthetic \"sine\" }\n";

/// A program compiled from `manifest`, with its home at `/tmp/acoupi-test`.
pub(crate) fn program(manifest: &str) -> Program {
    let source = compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.as_bytes().to_vec());
    let checked = compile::check(&source);
    let model = checked
        .model
        .unwrap_or_else(|| panic!("invalid test manifest: {:?}", checked.issues));
    let ctx = plan::BuildContext {
        home: "/tmp/acoupi-test".into(),
        exe: "/usr/bin/acoupi".into(),
        source_path: "/t.kdl".into(),
    };
    plan::lower(model, &ctx).program
}

/// The program compiled from `manifest`, with its home and all its storage under `dir`
/// (`home/`, `staging/`, `recordings/`, `metadata.db`, `messages.db`, `home/state`).
pub(crate) fn program_in(dir: &camino::Utf8Path, manifest: &str) -> Program {
    let mut program = program(manifest);
    program.home = dir.join("home");
    program.paths.staging = dir.join("staging");
    program.paths.recordings = dir.join("recordings");
    program.paths.metadata = dir.join("metadata.db");
    program.paths.messages = dir.join("messages.db");
    program.paths.state = dir.join("home/state");
    program
}

/// A unique queue-name stem for one test (process id, time and a counter).
pub(crate) fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}{}{}{}",
        tag,
        std::process::id(),
        jiff::Timestamp::now().as_millisecond() % 1_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A worker definition consuming `queue`.
pub(crate) fn worker_def(queue: &str, concurrency: u32, prefetch: u32) -> spec::Worker {
    spec::Worker {
        name: "w".into(),
        queues: vec![queue.to_owned()],
        concurrency,
        prefetch,
    }
}

/// Connects to RabbitMQ at `url`, failing the test with how to start it.
pub(crate) async fn rabbit_at(url: &str, name: &str) -> Broker {
    Broker::connect_amqp(url, name, Some(Duration::from_secs(10))).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is not reachable at {url} ({e}); start it with `rabbitmq-server -detached` (scripts/test does)")
    })
}

/// Connects to the shared RabbitMQ.
pub(crate) async fn rabbit(name: &str) -> Broker {
    rabbit_at(AMQP, name).await
}

/// Waits until `cond` holds, polling, or panics after `limit` with `what`.
pub(crate) async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the ready count of `queue` is `n`, or panics after `limit`.
pub(crate) async fn wait_for_depth(broker: &Broker, queue: &str, n: u32, limit: Duration) {
    let start = Instant::now();
    loop {
        let depth = broker.depth(queue).await.expect("queue depth");
        if depth == n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {n} ready messages in `{queue}` (have {depth})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A worker running in the background; dropping it (a failing test) cancels and aborts it,
/// so it cannot redeclare the queues a [`Queues`] guard is deleting.
pub(crate) struct Running {
    /// Its counters.
    pub(crate) stats: Arc<Stats>,
    /// Cancel to stop it.
    pub(crate) shutdown: CancellationToken,
    /// Ends when it stopped.
    pub(crate) handle: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops the worker and waits for it.
    pub(crate) async fn stop(mut self) {
        self.shutdown.cancel();
        (&mut self.handle).await.expect("the worker does not panic");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.handle.abort();
    }
}

/// A child process killed when dropped (a failing test leaves no worker running).
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs a worker in the background.
pub(crate) fn spawn_worker(
    connector: Connector,
    program: Arc<Program>,
    def: spec::Worker,
    registry: Registry,
    options: worker::Options,
) -> Running {
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let setup = worker::Setup {
        connector,
        services: acoupi::runtime::tasks::Services::new(program),
        worker: def,
        registry: Arc::new(registry),
        options,
        stats: Arc::clone(&stats),
    };
    let handle = tokio::spawn(worker::run(setup, shutdown.clone(), || {}));
    Running {
        stats,
        shutdown,
        handle,
    }
}

/// A connector to RabbitMQ at `url` whose connections carry `name`.
pub(crate) fn amqp(url: &str, name: &str) -> Connector {
    Connector::Amqp {
        url: url.to_owned(),
        name: name.to_owned(),
    }
}

/// Queues a test created on a RabbitMQ; dropping it deletes them and their dead-letter
/// queues, also when the test fails (a fresh connection on a thread of its own, since the
/// test's runtime may be gone or panicking).
pub(crate) struct Queues {
    url: String,
    names: Vec<String>,
}

impl Queues {
    /// Queues on the shared RabbitMQ named after `tag`: the first is `unique(tag)`.
    pub(crate) fn new(tag: &str) -> Self {
        Self::at(AMQP, tag)
    }

    /// Queues on the RabbitMQ at `url`.
    pub(crate) fn at(url: &str, tag: &str) -> Self {
        Queues {
            url: url.to_owned(),
            names: vec![unique(tag)],
        }
    }

    /// Exactly these queues on the RabbitMQ at `url`.
    pub(crate) fn named(url: &str, names: Vec<String>) -> Self {
        Queues {
            url: url.to_owned(),
            names,
        }
    }

    /// The first queue.
    pub(crate) fn name(&self) -> String {
        self.names[0].clone()
    }

    /// Registers one more queue to delete (with its dead-letter queue).
    pub(crate) fn also(&mut self, name: impl Into<String>) -> String {
        let name = name.into();
        self.names.push(name.clone());
        name
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        let url = self.url.clone();
        let names = std::mem::take(&mut self.names);
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let Ok(b) =
                    Broker::connect_amqp(&url, "acoupi test cleanup", Some(Duration::from_secs(3)))
                        .await
                else {
                    return;
                };
                for q in names {
                    // Broker::delete removes the queue, then its dead-letter queue.
                    if let Err(e) = b.delete(&q).await {
                        eprintln!("could not delete test queue `{q}`: {e}");
                    }
                }
                b.close().await;
            });
        });
        let _ = cleanup.join();
    }
}

/// Tracing output captured in memory (install with [`LogCapture::install`] or use as the
/// subscriber of one thread with `tracing::subscriber::with_default`).
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// A subscriber writing every event at `filter` here, without colour.
    pub(crate) fn subscriber(&self, filter: &str) -> impl tracing::Subscriber + Send + Sync {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish()
    }

    /// Everything captured so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs beat on the in-process `broker` from `base` for `run_for` of (paused) tokio time,
/// with its state in `state`; returns what it published.
pub(crate) async fn run_beat(
    program: Arc<Program>,
    broker: MemoryBroker,
    state: &camino::Utf8Path,
    base: jiff::Timestamp,
    run_for: Duration,
) -> Vec<Fired> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let options = beat::Options {
        state: state.to_owned(),
        time: TimeSource::tokio_at(base),
        fired: Some(tx),
    };
    let handle = tokio::spawn(beat::run(
        Connector::Memory(broker),
        program,
        options,
        shutdown.clone(),
        || {},
    ));
    // The clock is paused: this advances beat's time by exactly `run_for`.
    tokio::time::sleep(run_for).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    let mut out = Vec::new();
    while let Ok(f) = rx.try_recv() {
        out.push(f);
    }
    out
}
