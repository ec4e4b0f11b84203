//! `acoupi bench queue`: publishes no-op tasks to a scratch queue on the broker and drains
//! them through the real worker code path (decode, registry, acks late, prefetch as given),
//! next to a bare lapin consume-and-ack loop at the same prefetch measured in the same run.
//! Prints publish rate, drain rates, publish-to-start latency percentiles and peak RSS.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camino::Utf8Path;
use serde_json::{Map, Value as Json};
use tokio_util::sync::CancellationToken;

use super::{fail, runtime};
use crate::ExitStatus;
use crate::cli::{BenchCommand, BenchQueueArgs};
use crate::runtime::celery::TaskMessage;
use crate::runtime::tasks::{Registry, TaskContext, TaskFuture};
use crate::runtime::transport::Broker;
use crate::runtime::transport::amqp;
use crate::runtime::{self as rt, config, worker};
use crate::spec;

fn now_ns() -> u64 {
    jiff::Timestamp::now().as_nanosecond().max(0) as u64
}

/// A handler recording each task's publish-to-start latency (nanoseconds) into `latencies`.
fn latency_handler(
    latencies: Arc<Mutex<Vec<u64>>>,
) -> impl Fn(TaskContext, Vec<Json>, Map<String, Json>) -> TaskFuture + Send + Sync + 'static {
    move |_ctx, _args, kwargs| {
        let started = now_ns();
        let latencies = Arc::clone(&latencies);
        Box::pin(async move {
            if let Some(sent) = kwargs.get("sent_ns").and_then(Json::as_u64) {
                latencies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(started.saturating_sub(sent));
            }
            Ok(Json::Null)
        })
    }
}

/// Runs a `bench` subcommand.
pub fn run(cmd: &BenchCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let args = match cmd {
        BenchCommand::Queue(args) => args,
        BenchCommand::Detect(args) => return super::bench_detect::run(args, home_flag),
        BenchCommand::Beat { slots, every_ms } => {
            let rt = match runtime() {
                Ok(r) => r,
                Err(s) => return s,
            };
            return match rt.block_on(bench_beat(*slots, *every_ms)) {
                Ok(()) => ExitStatus::Success,
                Err(e) => fail(e),
            };
        }
    };
    let url = match &args.broker {
        Some(u) => u.clone(),
        None => {
            let program = crate::home::resolve(home_flag)
                .ok()
                .and_then(|h| config::load_program(&h).ok());
            match program.map(|p| config::broker_url(&p.broker)) {
                Some(Ok(Some(u))) => u,
                Some(Err(e)) => return fail(e),
                _ => crate::model::DEFAULT_BROKER_URL.to_owned(),
            }
        }
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    match rt.block_on(bench_queue(args, &url)) {
        Ok(()) => ExitStatus::Success,
        Err(e) => fail(e),
    }
}

fn bench_program(
    queue: &str,
    concurrency: u32,
    prefetch: u32,
) -> (Arc<spec::Program>, spec::Worker) {
    let worker = spec::Worker {
        name: "bench".into(),
        queues: vec![queue.to_owned()],
        concurrency,
        prefetch,
    };
    let program = spec::Program {
        schema_version: spec::SCHEMA_VERSION,
        acoupi_version: env!("CARGO_PKG_VERSION").into(),
        name: "bench".into(),
        description: String::new(),
        timezone: "UTC".into(),
        location: None,
        device_id: None,
        home: "/".into(),
        broker: spec::Broker::Memory,
        paths: spec::Paths {
            staging: "/".into(),
            recordings: "/".into(),
            metadata: "/".into(),
            messages: "/".into(),
            log: "/".into(),
            run: "/".into(),
            state: "/".into(),
        },
        microphones: Vec::new(),
        recording: spec::Recording {
            microphone: String::new(),
            mode: spec::RecordingMode::DutyCycle,
            duration_ms: 0,
            interval_ms: 0,
            min_free_disk_bytes: 0,
            staging_budget: None,
        },
        detectors: Vec::new(),
        saving: spec::Saving {
            rules: Vec::new(),
            folder: String::new(),
            otherwise: spec::Otherwise::Keep,
        },
        messaging: None,
        summary: None,
        retention: None,
        tasks: Vec::new(),
        queues: Vec::new(),
        workers: vec![worker.clone()],
    };
    (Arc::new(program), worker)
}

async fn publish_n(broker: &Broker, queue: &str, n: u32, task: &str) -> Result<Duration, String> {
    let start = Instant::now();
    for i in 0..n {
        let mut kwargs = Map::new();
        kwargs.insert("sent_ns".into(), Json::from(now_ns()));
        let msg = TaskMessage::new(task, vec![Json::from(i)], kwargs);
        broker
            .publish(queue, &msg.encode())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(start.elapsed())
}

/// Runs the worker on `queue` until `n` tasks succeeded; returns the time from the worker
/// consuming to the last success.
async fn drain_with_worker(
    url: &str,
    queue: &str,
    n: u64,
    args: &BenchQueueArgs,
    registry: Arc<Registry>,
    during: impl std::future::Future<Output = Result<(), String>>,
) -> Result<Duration, String> {
    let prefetch = u32::from(
        args.prefetch
            .unwrap_or(u16::try_from(args.concurrency).unwrap_or(u16::MAX)),
    );
    let (program, def) = bench_program(queue, args.concurrency, prefetch);
    let stats = Arc::new(worker::Stats::default());
    let shutdown = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let connector = worker::Connector::Amqp {
        url: url.to_owned(),
        name: "acoupi bench worker".into(),
    };
    let setup = worker::Setup {
        connector,
        services: crate::runtime::tasks::Services::new(program),
        worker: def,
        registry,
        options: worker::Options::default(),
        stats: Arc::clone(&stats),
    };
    let handle = tokio::spawn(worker::run(setup, shutdown.clone(), move || {
        let _ = ready_tx.send(Instant::now());
    }));
    let started = ready_rx
        .await
        .map_err(|_| "the worker stopped before consuming".to_owned())?;
    during.await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while stats.succeeded.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            shutdown.cancel();
            return Err(format!(
                "only {} of {n} tasks finished in 10 minutes",
                stats.succeeded.load(Ordering::Relaxed)
            ));
        }
        // Polled rarely, so the bench does not steal the worker's thread; the end time is the
        // worker's own timestamp of its last success.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = worker::Stats::since()
        + Duration::from_micros(stats.last_success_us.load(Ordering::Relaxed));
    let elapsed = last.saturating_duration_since(started);
    shutdown.cancel();
    let _ = handle.await;
    Ok(elapsed)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

async fn bench_queue(args: &BenchQueueArgs, url: &str) -> Result<(), String> {
    let n = args.tasks.max(1);
    let prefetch = args
        .prefetch
        .unwrap_or(u16::try_from(args.concurrency).unwrap_or(u16::MAX))
        .max(1);
    let broker = Broker::connect_amqp(url, "acoupi bench", Some(Duration::from_secs(10)))
        .await
        .map_err(|e| format!("cannot reach the broker: {e}"))?;
    let queue = format!(
        "acoupi.bench.{}.{}",
        std::process::id(),
        now_ns() % 1_000_000
    );
    broker.declare(&queue).await.map_err(|e| e.to_string())?;
    let result = async {
        eprintln!("publishing {n} tasks to `{queue}` (persistent, confirmed) …");
        let bare_publish = publish_n(&broker, &queue, n, "noop").await?;
        eprintln!("draining them with a bare consume-and-ack loop (prefetch {prefetch}) …");
        let bare = amqp::bare_drain(url, &queue, u64::from(n), prefetch)
            .await
            .map_err(|e| e.to_string())?;
        let publish = publish_n(&broker, &queue, n, "noop").await?;
        eprintln!(
            "draining them with the acoupi worker (concurrency {}, prefetch {prefetch}) …",
            args.concurrency
        );
        let drained = drain_with_worker(
            url,
            &queue,
            u64::from(n),
            args,
            Arc::new(Registry::builtin()),
            async { Ok(()) },
        )
        .await?;
        eprintln!(
            "measuring publish-to-start latency over {} tasks …",
            args.latency_tasks
        );
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let mut registry = Registry::builtin();
        registry.insert("bench-latency", latency_handler(Arc::clone(&latencies)));
        let l = args.latency_tasks.max(1);
        drain_with_worker(url, &queue, u64::from(l), args, Arc::new(registry), async {
            publish_n(&broker, &queue, l, "bench-latency")
                .await
                .map(|_| ())
        })
        .await?;
        let mut lat = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
        lat.sort_unstable();
        let rate = |d: Duration| f64::from(n) / d.as_secs_f64().max(1e-9);
        println!(
            "acoupi bench queue: {n} no-op tasks, concurrency {}, prefetch {prefetch}, broker {}",
            args.concurrency,
            redact(url)
        );
        println!(
            "  publish (confirmed, one at a time)  {:>10.0} tasks/s",
            rate(publish).max(rate(bare_publish))
        );
        println!(
            "  drain, bare lapin consume+ack loop  {:>10.0} tasks/s",
            rate(bare)
        );
        println!(
            "  drain, acoupi worker                {:>10.0} tasks/s",
            rate(drained)
        );
        println!(
            "  worker / bare                       {:>10.1} %",
            100.0 * rate(drained) / rate(bare)
        );
        println!(
            "  publish-to-start latency            p50 {:.3} ms   p99 {:.3} ms   ({} tasks)",
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            lat.len()
        );
        match rt::peak_rss_kib() {
            Some(kib) => println!(
                "  peak RSS (whole bench process)      {:>10.1} MiB",
                kib as f64 / 1024.0
            ),
            None => println!("  peak RSS                            unavailable"),
        }
        Ok(())
    }
    .await;
    let _ = broker.delete(&queue).await;
    broker.close().await;
    result
}

/// Runs beat with the system clock on one task every `every_ms` and prints how late the
/// publishes were relative to their wall-clock slots.
async fn bench_beat(slots: u32, every_ms: u64) -> Result<(), String> {
    let (mut program, _) = bench_program("bench-beat", 1, 1);
    let every_ms = every_ms.max(1);
    {
        let p = Arc::get_mut(&mut program).ok_or("program is shared")?;
        p.tasks.push(spec::Task {
            name: "noop".into(),
            queue: "bench-beat".into(),
            schedule: spec::Schedule::Interval {
                every_ms,
                offset_ms: 0,
                windows: Vec::new(),
            },
            follow_ups: Vec::new(),
            retries: 0,
            soft_time_limit_ms: 1_000,
            time_limit_ms: 2_000,
        });
    }
    let dir = tempfile_dir()?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let options = crate::runtime::beat::Options {
        state: dir.join("beat.json"),
        time: crate::runtime::beat::TimeSource::System,
        fired: Some(tx),
    };
    let shutdown = CancellationToken::new();
    let memory = crate::runtime::transport::memory::MemoryBroker::default();
    let handle = tokio::spawn(crate::runtime::beat::run(
        worker::Connector::Memory(memory),
        program,
        options,
        shutdown.clone(),
        || {},
    ));
    eprintln!("running beat on the system clock: {slots} slots of {every_ms} ms …");
    let mut late_us = Vec::with_capacity(slots as usize);
    while late_us.len() < slots as usize {
        let Some(f) = rx.recv().await else { break };
        if f.published {
            late_us.push(f.at.duration_since(f.slot).as_micros().max(0) as u64);
        }
    }
    shutdown.cancel();
    let _ = handle.await;
    let _ = std::fs::remove_dir_all(&dir);
    late_us.sort_unstable();
    let pick = |p: f64| {
        late_us
            .get(((late_us.len().saturating_sub(1)) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "acoupi bench beat: {} slots of {every_ms} ms, system clock, in-process queues",
        late_us.len()
    );
    println!(
        "  lateness after the slot   p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms",
        pick(0.5) as f64 / 1000.0,
        pick(0.99) as f64 / 1000.0,
        late_us.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    Ok(())
}

fn tempfile_dir() -> Result<camino::Utf8PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("acoupi-bench-beat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    camino::Utf8PathBuf::from_path_buf(dir).map_err(|p| format!("`{}` is not UTF-8", p.display()))
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}
