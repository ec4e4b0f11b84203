//! The record task against a metadata store that cannot take its recording: a corrupt or
//! truncated file, a file from a newer acoupi, a read-only directory, and a deployed worker
//! without its deployment file. Each time the task fails with an error naming the file and
//! the cause (permanent when retrying cannot help), the file is left as it was, and the
//! worker keeps serving the tasks after it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use acoupi::runtime::celery::TaskMessage;
use acoupi::runtime::tasks::{Registry, Services, TaskContext, TaskError};
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::transport::{Broker, dead_letter_queue};
use acoupi::runtime::worker::{self, Connector, Stats};
use acoupi::spec::Program;
use acoupi::{compile, plan};
use camino::Utf8Path;
use serde_json::Map;
use tokio_util::sync::CancellationToken;

fn program(home: &Utf8Path) -> Program {
    let manifest = "program \"p\"\nmicrophone \"m\" { synthetic \"sine\"; samplerate \"8kHz\" }\nrecording { duration \"200ms\"; interval \"10s\" }\n";
    let source = compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.as_bytes().to_vec());
    let model = compile::check(&source).model.expect("a valid manifest");
    let ctx = plan::BuildContext {
        home: home.to_owned(),
        exe: "/usr/bin/acoupi".into(),
        source_path: "/t.kdl".into(),
    };
    plan::lower(model, &ctx).program
}

async fn record(services: Arc<Services>, task_id: &str) -> Result<serde_json::Value, TaskError> {
    let handler = Registry::builtin().get("record").expect("record handler");
    let ctx = TaskContext {
        services,
        task_id: task_id.into(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, vec![], Map::new()).await
}

fn wavs(dir: &Utf8Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_fails_the_task_naming_the_file_and_is_left_alone() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(&dir));
    let db = program.paths.metadata.clone();
    std::fs::create_dir_all(db.parent().expect("a directory")).expect("dir");
    let garbage = b"this is not an SQLite database, it was overwritten in the field".repeat(100);
    std::fs::write(&db, &garbage).expect("corrupt file");
    let e = record(Services::new(Arc::clone(&program)), "t1")
        .await
        .expect_err("a corrupt store");
    assert!(matches!(e, TaskError::Permanent(_)), "{e:?}");
    assert!(e.to_string().contains(db.as_str()), "names the file: {e}");
    assert!(
        e.to_string().contains("not a database") || e.to_string().contains("corrupt"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&db).expect("read"),
        garbage,
        "the file was not touched"
    );
    assert_eq!(
        wavs(&program.paths.staging),
        0,
        "nothing recorded without a store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_store_fails_the_task_naming_the_file() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(&dir));
    // A real store, then cut in the middle as a power loss on a bad card might leave it.
    record(Services::new(Arc::clone(&program)), "t1")
        .await
        .expect("the first recording is stored");
    let db = program.paths.metadata.clone();
    let bytes = std::fs::read(&db).expect("read");
    let _ = std::fs::remove_file(format!("{db}-wal"));
    let _ = std::fs::remove_file(format!("{db}-shm"));
    std::fs::write(&db, &bytes[..bytes.len() / 3]).expect("truncate");
    let e = record(Services::new(Arc::clone(&program)), "t2")
        .await
        .expect_err("a truncated store");
    assert!(e.to_string().contains(db.as_str()), "names the file: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_acoupi_is_refused_and_never_modified() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(&dir));
    let db = program.paths.metadata.clone();
    acoupi::store::Store::open(&db).expect("create");
    // A newer acoupi raised our schema version.
    let conn = rusqlite::Connection::open(&db).expect("open with SQLite");
    let changed = conn
        .execute("UPDATE acoupi_rs_schema SET version = version + 100", [])
        .expect("raise the version");
    assert_eq!(changed, 1, "our schema version is one row");
    drop(conn);
    let before = std::fs::read(&db).expect("read");
    let e = record(Services::new(Arc::clone(&program)), "t1")
        .await
        .expect_err("a newer schema");
    assert!(matches!(e, TaskError::Permanent(_)), "{e:?}");
    assert!(
        e.to_string().contains(db.as_str()) && e.to_string().contains("newer"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the file was not modified"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_worker_without_its_deployment_file_records_nothing() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(&dir));
    let e = record(Services::deployed(Arc::clone(&program)), "t1")
        .await
        .expect_err("no deployment file");
    let file = dir.join("config/deployment.json");
    assert!(matches!(e, TaskError::Permanent(_)), "{e:?}");
    assert!(e.to_string().contains(file.as_str()), "names the file: {e}");
    assert_eq!(wavs(&program.paths.staging), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_keeps_serving_after_a_store_failure() {
    let (_d, dir) = common::tempdir();
    let program = Arc::new(program(&dir));
    let db = program.paths.metadata.clone();
    std::fs::create_dir_all(db.parent().expect("a directory")).expect("dir");
    std::fs::write(&db, b"not a database at all, not even close to one").expect("corrupt");
    let memory = MemoryBroker::default();
    let broker = Broker::Memory(memory.clone());
    broker.declare("q").await.expect("declare");
    broker
        .publish(
            "q",
            &TaskMessage::new("record", vec![], Map::new()).encode(),
        )
        .await
        .expect("publish");
    broker
        .publish("q", &TaskMessage::new("noop", vec![], Map::new()).encode())
        .await
        .expect("publish");
    let stats = Arc::new(Stats::default());
    let shutdown = CancellationToken::new();
    let setup = worker::Setup {
        connector: Connector::Memory(memory),
        services: Services::new(Arc::clone(&program)),
        worker: acoupi::spec::Worker {
            name: "w".into(),
            queues: vec!["q".into()],
            concurrency: 1,
            prefetch: 1,
        },
        registry: Arc::new(Registry::builtin()),
        options: worker::Options::default(),
        stats: Arc::clone(&stats),
    };
    let handle = tokio::spawn(worker::run(setup, shutdown.clone(), || {}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stats.succeeded.load(std::sync::atomic::Ordering::Relaxed) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the noop after the failure never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    handle.await.expect("worker");
    let dead = broker
        .get(&dead_letter_queue("q"))
        .await
        .expect("get")
        .expect("the record task was dead-lettered");
    let reason = dead.headers["x-acoupi-reason"].as_str().expect("a reason");
    assert!(reason.contains(db.as_str()), "{reason}");
}
