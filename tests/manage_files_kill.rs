//! `manage-files` SIGKILLed: the real binary is killed at random moments while it keeps and
//! deletes 160 staged recordings (staging on `/dev/shm`, storage on disk), run either as
//! `acoupi task run manage-files` or as a deployed `acoupi worker` consuming the task from
//! RabbitMQ (which redelivers the unacknowledged task to the next worker started). After every
//! kill the store points at files that exist; after a run that completes, every recording is
//! kept once or deleted, staging is empty and nothing is left twice.

mod common;

use std::time::Duration;

use acoupi::runtime::beat::message_for;
use acoupi::runtime::transport::{Broker, dead_letter_queue};

use acoupi::store::{Filter, Store};
use camino::Utf8PathBuf;

const N: usize = 160;

/// How the killed process runs the task.
enum Runner {
    /// `acoupi task run manage-files`, started again after each kill.
    TaskRun,
    /// `acoupi worker default` consuming `queue` on RabbitMQ, where one `manage-files` task
    /// waits; a killed worker's task is redelivered to the next one.
    Worker { queue: String },
}

#[test]
fn a_killed_run_loses_nothing_and_the_next_finishes() {
    killed_and_restarted(Runner::TaskRun);
}

#[test]
fn a_killed_worker_loses_nothing_and_its_redelivered_task_finishes() {
    killed_and_restarted(Runner::Worker {
        queue: common::runtime::unique("mfk"),
    });
}

fn killed_and_restarted(runner: Runner) {
    let (_d, dir) = common::tempdir();
    let staging = Utf8PathBuf::from(format!(
        "/dev/shm/acoupi-kill-{}",
        common::runtime::unique("k")
    ));
    std::fs::create_dir_all(&staging).expect("staging on /dev/shm");
    struct Cleanup(Utf8PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(staging.clone());
    let recordings = dir.join("recordings");
    let metadata = dir.join("metadata.db");
    let workers = match &runner {
        Runner::TaskRun => String::new(),
        Runner::Worker { queue } => format!(
            "broker \"{}\"\nworkers {{\n    worker \"default\" queues=\"{queue}\"\n    \
             task \"manage-files\" queue=\"{queue}\"\n    task \"record\" queue=\"{queue}\"\n    \
             task \"heartbeat\" queue=\"{queue}\"\n}}\n",
            common::runtime::AMQP
        ),
    };
    let manifest = common::write(
        &dir,
        "acoupi.kdl",
        format!(
            "program \"kill\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"192kHz\" }}\n\
             paths {{\n    staging \"{staging}\"\n    recordings \"{recordings}\"\n    metadata \"{metadata}\"\n}}\n\
             saving {{\n    keep-if every n=2\n    otherwise \"delete\"\n}}\n{workers}"
        ),
    );
    let home = dir.join("home");
    let out = common::run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let queue = match &runner {
        Runner::TaskRun => None,
        Runner::Worker { queue } => {
            // What `acoupi deploy` writes before it starts the units.
            common::write(
                &home,
                "config/deployment.json",
                r#"{"id": "0b5c3f3e-6a55-4f0e-8a3e-2f1d7f0d9a12", "name": "kill", "started_on": "2026-06-01T00:00:00Z"}"#,
            );
            Some(TaskQueue::publish(&home, queue))
        }
    };

    // 160 staged recordings of 1.5 MB, each with distinct bytes, waiting for file management.
    common::stage_recordings(
        &metadata,
        (0..N).map(|i| {
            let mut bytes = vec![0u8; 1_500_000];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (staging.join(format!("r{i:04}.wav")), bytes)
        }),
    );

    let check_store_points_at_files = |when: &str| {
        let store = Store::open_read_only(&metadata).expect("store");
        for r in store.recordings(&Filter::default()).expect("rows") {
            if r.deleted_on.is_none() {
                let path = r.recording.path.expect("a path");
                assert!(
                    path.exists(),
                    "{when}: the store points at {path}, which is missing"
                );
            }
        }
    };
    let mut kills = 0;
    let mut partway = Vec::new();
    let mut seed = std::process::id() as u64;
    loop {
        let args: &[&str] = match &runner {
            Runner::TaskRun => &["task", "run", "manage-files"],
            Runner::Worker { .. } => &["worker", "default"],
        };
        let log = dir.join(format!("run-{kills}.log"));
        let mut child = common::acoupi()
            .args(["--home", home.as_str()])
            .args(args)
            .env("ACOUPI_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("acoupi starts");
        if kills < 8 {
            // A pseudo-random moment into the run (this is the fault, not a synchronisation).
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // A worker first connects to RabbitMQ and takes the task: later, on average.
            let start = match &runner {
                Runner::TaskRun => 10,
                Runner::Worker { .. } => 150,
            };
            std::thread::sleep(Duration::from_millis(start + (seed >> 33) % 250));
            let _ = child.kill();
            let status = child.wait().expect("reaped");
            kills += 1;
            check_store_points_at_files(&format!("after kill {kills} ({status})"));
            // What the kill interrupted: copies placed but not yet in the store, or partial.
            let store = Store::open_read_only(&metadata).expect("store");
            let pointed = store
                .recordings(&Filter::default())
                .expect("rows")
                .into_iter()
                .filter(|r| {
                    r.recording
                        .path
                        .as_ref()
                        .is_some_and(|p| p.starts_with(&recordings))
                })
                .count();
            partway.push((
                store.pending_count().expect("count"),
                common::files_under(&recordings).len() - pointed,
            ));
            continue;
        }
        match &queue {
            None => {
                let status = child.wait().expect("reaped");
                assert!(status.success(), "the last run completes: {status}");
            }
            Some(q) => {
                // The worker consuming, the redelivered task done: then it is stopped.
                q.wait_until_done(&metadata, &log);
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_child(&child),
                    rustix::process::Signal::TERM,
                );
                let status = child.wait().expect("reaped");
                assert!(status.success(), "the worker stops cleanly: {status}");
            }
        }
        break;
    }
    check_store_points_at_files("at the end");
    eprintln!(
        "after each kill, (pending, files in storage the store does not point at): {partway:?}"
    );
    let store = Store::open_read_only(&metadata).expect("store");
    let rows = store.recordings(&Filter::default()).expect("rows");
    let kept: Vec<Utf8PathBuf> = rows
        .iter()
        .filter(|r| r.deleted_on.is_none())
        .map(|r| r.recording.path.clone().expect("path"))
        .collect();
    assert_eq!(kept.len(), N / 2, "every other recording is kept");
    assert_eq!(
        rows.len() - kept.len(),
        N / 2,
        "the rest are deleted, rows kept"
    );
    let mut kept_sorted = kept.clone();
    kept_sorted.sort();
    assert_eq!(
        common::files_under(&recordings),
        kept_sorted,
        "each kept file once, nothing else"
    );
    assert!(common::files_under(&staging).is_empty(), "staging is empty");
    for path in &kept {
        let bytes = std::fs::read(path).expect("kept file");
        assert_eq!(bytes.len(), 1_500_000, "{path} is whole");
        let i = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        assert!(
            path.as_str().ends_with(&format!("r{i:04}.wav")),
            "{path} holds its own bytes"
        );
    }
    assert_eq!(store.pending_count().expect("count"), 0);
}

/// The test's RabbitMQ queue holding one `manage-files` task; deleted when dropped.
struct TaskQueue {
    rt: tokio::runtime::Runtime,
    broker: Broker,
    name: String,
}

impl TaskQueue {
    /// Declares `name` and publishes the home's `manage-files` task to it.
    fn publish(home: &camino::Utf8Path, name: &str) -> TaskQueue {
        let program: acoupi::spec::Program = serde_json::from_str(
            &std::fs::read_to_string(home.join("config/program.json")).expect("program.json"),
        )
        .expect("program.json parses");
        let task = program
            .task("manage-files")
            .expect("a manage-files task")
            .clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let broker = rt.block_on(async {
            let broker = Broker::connect_amqp(common::runtime::AMQP, "acoupi test kill", None)
                .await
                .expect("RabbitMQ is reachable at 127.0.0.1:5672 (scripts/test starts it)");
            broker.declare(name).await.expect("declare");
            let msg = message_for(&program, &task, jiff::Timestamp::now(), None);
            broker.publish(name, &msg.encode()).await.expect("publish");
            broker
        });
        TaskQueue {
            rt,
            broker,
            name: name.to_owned(),
        }
    }

    /// Waits (a minute at most) until the worker logging to `log` consumes, no recording is
    /// pending and the queue is empty (the task was taken and has run).
    fn wait_until_done(&self, metadata: &camino::Utf8Path, log: &camino::Utf8Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let consuming = std::fs::read_to_string(log).is_ok_and(|l| l.contains("consuming"));
            let pending = Store::open_read_only(metadata)
                .and_then(|s| s.pending_count())
                .expect("store");
            let queued = self
                .rt
                .block_on(self.broker.depth(&self.name))
                .expect("queue depth");
            if consuming && pending == 0 && queued == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after a minute, {pending} recordings pending and {queued} tasks queued; worker log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TaskQueue {
    fn drop(&mut self) {
        self.rt.block_on(async {
            let _ = self.broker.delete(&self.name).await;
            let _ = self.broker.delete(&dead_letter_queue(&self.name)).await;
        });
    }
}
