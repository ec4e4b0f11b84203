//! Each example's compiled task graph, run by the built-in handlers: every task beat would
//! publish is published once, the workers of the program serve their queues (in-process
//! queues, the microphone replaced by a synthetic one, a command detector by the BatDetect2
//! adapter on a stand-in model, a `batdetect2` detector given the installed checkpoint,
//! storage in a temporary directory), and
//! every task must succeed. A task without a handler, a handler that fails, or a task of the
//! graph that is dead-lettered fails the test.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acoupi::plan::BuildContext;
use acoupi::runtime::beat::message_for;
use acoupi::runtime::serve::serve;
use acoupi::runtime::tasks::{Registry, Services, TaskContext, TaskFuture};
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::transport::{Broker, dead_letter_queue};
use acoupi::runtime::worker::Connector;
use acoupi::spec::{Program, Schedule};
use acoupi::store::Store;
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

/// Outcomes of handler runs: task name -> (successes, failures with their errors).
type Outcomes = Arc<Mutex<BTreeMap<String, (u32, Vec<String>)>>>;

/// The example compiled into a home under `dir`, its storage moved there too and its
/// microphones replaced by a synthetic sweep (as `acoupi run --microphone synthetic` does).
fn compiled(example: &str, dir: &Utf8Path) -> Program {
    let path = Utf8PathBuf::from(format!("examples/{example}"));
    let source = acoupi::compile::read_source(&path).expect("readable example");
    let ctx = BuildContext {
        home: dir.join("home"),
        exe: "/usr/bin/acoupi".into(),
        source_path: path.clone(),
    };
    let built = acoupi::compile::build(&source, &ctx).expect("the example compiles");
    let mut program = built
        .program()
        .expect("program.json parses")
        .with_synthetic_microphones();
    let data = dir.join("data");
    program.paths.staging = data.join("staging");
    program.paths.recordings = data.join("recordings");
    program.paths.metadata = data.join("metadata.db");
    program.paths.messages = data.join("messages.db");
    program.paths.state = dir.join("home/state");
    // A command detector runs the BatDetect2 adapter on the stand-in model (no torch here).
    let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
    for d in &mut program.detectors {
        if let acoupi::spec::DetectorKind::Command { argv, .. } = &mut d.kind {
            *argv = vec![
                "/usr/bin/env".into(),
                format!("PYTHONPATH={}", root.join("tests/detectors/standin")),
                "/usr/bin/python3".into(),
                root.join("examples/detectors/batdetect2.py").into_string(),
            ];
        }
        // The native BatDetect2 detector loads the real model, as the tests install it.
        if let acoupi::spec::DetectorKind::Batdetect2 { model, .. } = &mut d.kind {
            *model = Some(common::batdetect2::model());
        }
    }
    // Messages go to the local Mosquitto (a topic of the test's own) and to an HTTP port that
    // nothing listens on (unreachable: a destination's outage must not fail the task); the
    // examples' secrets live on a field device, not here.
    if let Some(m) = &mut program.messaging {
        if let Some(mqtt) = &mut m.mqtt {
            mqtt.host = "127.0.0.1".into();
            mqtt.port = 1883;
            mqtt.tls = false;
            mqtt.username = None;
            mqtt.password = None;
            mqtt.topic = format!("acoupi-test/graph-{}-{example}", std::process::id());
        }
        if let Some(http) = &mut m.http {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            http.url = format!("http://127.0.0.1:{port}/messages");
            http.headers.clear();
        }
    }
    program
}

/// The built-in registry, each handler wrapped to report how its runs ended.
fn observed(outcomes: &Outcomes) -> Registry {
    let builtin = Registry::builtin();
    let mut registry = Registry::builtin();
    for name in builtin.names().collect::<Vec<_>>() {
        let handler = builtin.get(name).expect("a listed handler");
        let outcomes = Arc::clone(outcomes);
        registry.insert(name, move |ctx: TaskContext, args, kwargs| {
            let (handler, outcomes) = (Arc::clone(&handler), Arc::clone(&outcomes));
            Box::pin(async move {
                let result = handler(ctx, args, kwargs).await;
                let mut o = outcomes.lock().expect("outcomes");
                let entry = o.entry(name.to_owned()).or_default();
                match &result {
                    Ok(_) => entry.0 += 1,
                    Err(e) => entry.1.push(e.to_string()),
                }
                result
            }) as TaskFuture
        });
    }
    registry
}

/// What the run must come to: handled tasks that succeed, stages to come that are
/// dead-lettered. Starting from the scheduled tasks, follows each handled task's follow-ups.
fn expected(
    program: &Program,
    registry: &Registry,
) -> (BTreeMap<String, u32>, BTreeMap<String, u32>) {
    let (mut handled, mut pending) = (BTreeMap::new(), BTreeMap::new());
    let mut todo: Vec<String> = program
        .tasks
        .iter()
        .filter(|t| matches!(t.schedule, Schedule::Interval { .. }))
        .map(|t| t.name.clone())
        .collect();
    while let Some(name) = todo.pop() {
        if registry.get(&name).is_some() {
            *handled.entry(name.clone()).or_insert(0) += 1;
            if let Some(t) = program.task(&name) {
                todo.extend(t.follow_ups.iter().cloned());
            }
        } else {
            *pending.entry(name).or_insert(0) += 1;
        }
    }
    (handled, pending)
}

async fn run_example(example: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = Utf8PathBuf::try_from(dir.path().to_path_buf()).expect("utf-8");
    let program = Arc::new(compiled(example, &dir));
    let outcomes: Outcomes = Arc::default();
    let registry = Arc::new(observed(&outcomes));
    let (want_ok, want_dead) = expected(&program, &registry);
    assert!(
        want_dead.is_empty(),
        "{example}: tasks without a handler: {want_dead:?}"
    );
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    for q in &program.queues {
        broker.declare(&q.name).await.expect("declare");
    }
    let shutdown = CancellationToken::new();
    let services = Services::new(Arc::clone(&program));
    let mut workers = tokio::task::JoinSet::new();
    for def in program.workers.clone() {
        let (c, v, r, s) = (
            Connector::Memory(memory.clone()),
            Arc::clone(&services),
            Arc::clone(&registry),
            shutdown.clone(),
        );
        workers.spawn(async move { serve(c, v, def, r, s, || {}).await });
    }
    // What beat publishes at a slot, once per scheduled task.
    let now = jiff::Timestamp::now();
    for task in &program.tasks {
        if matches!(task.schedule, Schedule::Interval { .. }) {
            let msg = message_for(&program, task, now, None);
            broker
                .publish(&task.queue, &msg.encode())
                .await
                .expect("publish");
        }
    }
    let mut dead: BTreeMap<String, u32> = BTreeMap::new();
    let mut reasons = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for q in &program.queues {
            while let Some(env) = broker.get(&dead_letter_queue(&q.name)).await.expect("get") {
                let task = env
                    .headers
                    .get("task")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_owned();
                let reason = env
                    .headers
                    .get("x-acoupi-reason")
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_owned();
                *dead.entry(task.clone()).or_insert(0) += 1;
                reasons.push(format!("{task}: {reason}"));
            }
        }
        let ok: BTreeMap<String, u32> = outcomes
            .lock()
            .expect("outcomes")
            .iter()
            .map(|(k, (n, _))| (k.clone(), *n))
            .filter(|(_, n)| *n > 0)
            .collect();
        let failures: Vec<String> = outcomes
            .lock()
            .expect("outcomes")
            .iter()
            .flat_map(|(k, (_, e))| e.iter().map(move |e| format!("{k}: {e}")))
            .collect();
        assert!(
            failures.is_empty(),
            "{example}: handlers failed: {failures:#?}"
        );
        if ok == want_ok && dead == want_dead {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{example}: after a minute, succeeded {ok:?} (want {want_ok:?}), dead-lettered {reasons:#?} (want {want_dead:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in &reasons {
        assert!(
            r.contains(": unknown task"),
            "{example}: dead-lettered for another reason: {r}"
        );
    }
    shutdown.cancel();
    while let Some(done) = workers.join_next().await {
        done.expect("a worker ran to its end");
    }
    // Every recording the graph made is in the metadata store.
    if want_ok.contains_key("record") {
        let store = Store::open_read_only(&program.paths.metadata).expect("the store");
        assert_eq!(
            store.info().expect("info").count("recording"),
            Some(u64::from(want_ok["record"])),
            "{example}"
        );
    }
    // Nothing is left queued: every task reached its end.
    for q in &program.queues {
        assert_eq!(
            broker.depth(&q.name).await.expect("depth"),
            0,
            "{example}: `{}`",
            q.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_examples_task_graph_runs_with_the_built_in_handlers() {
    let mut names: Vec<String> = std::fs::read_dir("examples")
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".kdl"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    let runs: Vec<_> = names
        .iter()
        .map(|n| {
            let n = n.clone();
            tokio::spawn(async move { run_example(&n).await })
        })
        .collect();
    for (name, run) in names.iter().zip(runs) {
        if let Err(e) = run.await {
            panic!("{name}: {e}");
        }
    }
}
