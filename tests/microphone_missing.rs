//! A microphone that comes and goes, with a WAV file as the microphone: the `record` task
//! through the registry skips its slots while the file is missing (`null`, no failure), the
//! state file records the first time once with one warning, the heartbeat reports how long it
//! has been missing, and recording resumes (one info line, the state cleared) when the file is
//! back. Continuous recording waits for it the same way, polling with its backoff.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use acoupi::runtime::tasks::{Clock, Registry, Services, TaskContext};
use acoupi::runtime::transport::Broker;
use acoupi::runtime::transport::memory::MemoryBroker;
use acoupi::runtime::worker::Connector;
use acoupi::spec::Program;
use acoupi::{compile, plan};
use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use serde_json::{Map, Value as Json};
use tokio_util::sync::CancellationToken;

/// The log lines every test of this binary produces.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Log;

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Log)
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
}

/// The captured log lines containing `needle`.
fn lines(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOG.lock().expect("log"))
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn program(manifest: &str, home: &Utf8Path) -> Program {
    let source = compile::from_bytes("t.kdl", "/t.kdl".into(), manifest.as_bytes().to_vec());
    let checked = compile::check(&source);
    let model = checked
        .model
        .unwrap_or_else(|| panic!("invalid test manifest: {:?}", checked.issues));
    let ctx = plan::BuildContext {
        home: home.to_owned(),
        exe: "/usr/bin/acoupi".into(),
        source_path: "/t.kdl".into(),
    };
    plan::lower(model, &ctx).program
}

/// One second of 8 kHz mono 16-bit audio at `path`.
fn write_wav(path: &Utf8Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create the microphone's WAV");
    for i in 0..8_000i32 {
        w.write_sample((i % 1000) as i16).expect("a sample");
    }
    w.finalize().expect("finalize");
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("a valid time")
}

async fn run(program: &Arc<Program>, task: &str, id: &str, now: Timestamp) -> Json {
    let handler = Registry::builtin().get(task).expect("a handler");
    let ctx = TaskContext {
        services: Services::with_clock(Arc::clone(program), Clock::Fixed(now)),
        task_id: id.into(),
        retries: 0,
        worker: "test".into(),
    };
    handler(ctx, vec![], Map::new())
        .await
        .unwrap_or_else(|e| panic!("task `{task}` ({id}) failed: {e}"))
}

fn state_file(program: &Program) -> Utf8PathBuf {
    program.paths.state.join("microphone.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_file_microphone_skips_slots_warns_once_and_resumes() {
    capture_logs();
    let (_d, dir) = common::tempdir();
    let wav = dir.join("mic/x.wav");
    std::fs::create_dir_all(dir.join("mic")).expect("mic dir");
    write_wav(&wav);
    let program = Arc::new(program(
        &format!(
            "program \"p\"\nmicrophone \"comes-and-goes\" {{ file \"{wav}\"; samplerate \"8kHz\" }}\n\
             recording {{ duration \"200ms\"; interval \"10s\" }}\n"
        ),
        &dir,
    ));
    let first = run(&program, "record", "t1", at("2026-06-01T20:00:00Z")).await;
    assert!(first["path"].is_string(), "{first}");
    assert!(!state_file(&program).exists());

    // Gone: three slots are skipped, not failed; the state keeps the first time.
    std::fs::remove_file(&wav).expect("remove the microphone's file");
    let gone = at("2026-06-01T20:00:10Z");
    for (i, t) in ["20:00:10", "20:00:20", "20:00:30"].iter().enumerate() {
        let now = at(&format!("2026-06-01T{t}Z"));
        let result = run(&program, "record", &format!("missing-{i}"), now).await;
        assert_eq!(result, Json::Null, "slot {i} while missing");
        let state: Json =
            serde_json::from_str(&std::fs::read_to_string(state_file(&program)).expect("state"))
                .expect("JSON state");
        assert_eq!(state["microphone"], "comes-and-goes", "{state}");
        assert_eq!(state["missing_since"], "2026-06-01T20:00:10Z", "{state}");
        assert!(
            state["error"]
                .as_str()
                .is_some_and(|e| e.contains(wav.as_str())),
            "{state}"
        );
    }
    let warnings = lines("microphone `comes-and-goes` is missing");
    assert_eq!(warnings.len(), 1, "one warning: {warnings:#?}");
    assert!(warnings[0].contains("WARN"), "{warnings:#?}");
    assert!(warnings[0].contains(wav.as_str()), "{warnings:#?}");

    // The heartbeat says for how long it has been missing; its state file names it.
    let beat = run(&program, "heartbeat", "hb-1", at("2026-06-01T20:01:10Z")).await;
    assert_eq!(beat["status"], "OK");
    let missing = beat["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["name"] == "microphone_missing_s")
        .unwrap_or_else(|| panic!("no microphone_missing_s in {beat}"))
        .clone();
    assert_eq!(missing["value"], 60.0);
    assert_eq!(missing["unit"], "seconds");
    let saved: Json = serde_json::from_str(
        &std::fs::read_to_string(program.paths.state.join("heartbeat.json")).expect("saved"),
    )
    .expect("JSON");
    assert_eq!(
        saved["microphone"]["missing_since"],
        gone.to_string(),
        "{saved}"
    );

    // Back: the next slot records, the state is cleared, one info line says so.
    write_wav(&wav);
    let back = run(&program, "record", "t2", at("2026-06-01T20:01:20Z")).await;
    let path = back["path"].as_str().expect("a recording after the return");
    let reader = hound::WavReader::open(path).expect("a readable WAV");
    assert_eq!(reader.duration(), 1_600);
    assert!(!state_file(&program).exists());
    let resumed = lines("microphone `comes-and-goes` is back");
    assert_eq!(resumed.len(), 1, "{resumed:#?}");
    assert!(
        resumed[0].contains("INFO") && resumed[0].contains("missing since 2026-06-01T20:00:10Z"),
        "{resumed:#?}"
    );
    let beat = run(&program, "heartbeat", "hb-2", at("2026-06-01T20:01:30Z")).await;
    assert!(
        !beat.to_string().contains("microphone_missing_s"),
        "no metric once it is back: {beat}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_format_is_still_a_failure_not_a_missing_microphone() {
    capture_logs();
    let (_d, dir) = common::tempdir();
    let wav = dir.join("x.wav");
    write_wav(&wav);
    let program = Arc::new(program(
        &format!(
            "program \"p\"\nmicrophone \"wrong-rate\" {{ file \"{wav}\"; samplerate \"48kHz\" }}\n\
             recording {{ duration \"200ms\"; interval \"10s\" }}\n"
        ),
        &dir,
    ));
    let handler = Registry::builtin().get("record").expect("a handler");
    let ctx = TaskContext {
        services: Services::new(Arc::clone(&program)),
        task_id: "bad".into(),
        retries: 0,
        worker: "test".into(),
    };
    let err = handler(ctx, vec![], Map::new())
        .await
        .expect_err("a format mismatch fails the task");
    assert!(err.to_string().contains("delivers 8000 Hz"), "{err}");
    assert!(!state_file(&program).exists());
}

/// Polls `done` every 20 ms until it holds, failing after `secs` seconds with `what`.
async fn wait_for(what: &str, secs: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_recording_waits_for_a_missing_microphone_and_resumes() {
    capture_logs();
    let (_d, dir) = common::tempdir();
    let wav = dir.join("later.wav");
    let program = Arc::new(program(
        &format!(
            "program \"p\"\nmicrophone \"continuous-mic\" {{ file \"{wav}\" loop=#true; samplerate \"8kHz\" }}\n\
             recording {{ mode \"continuous\"; duration \"200ms\" }}\n"
        ),
        &dir,
    ));
    let memory = MemoryBroker::default();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(acoupi::runtime::continuous::run(
        Connector::Memory(memory.clone()),
        Services::new(Arc::clone(&program)),
        shutdown.clone(),
    ));
    let mine = |needle: &str| -> Vec<String> {
        lines(needle)
            .into_iter()
            .filter(|l| l.contains("continuous-mic"))
            .collect()
    };
    // Missing from the start: recorded once, then polled again without a second warning.
    wait_for("the microphone state", 30, async || {
        state_file(&program).exists()
    })
    .await;
    wait_for("a second attempt", 30, async || {
        !mine("microphone still missing").is_empty()
    })
    .await;
    assert_eq!(mine("is missing, recording is paused").len(), 1);
    assert!(
        mine("continuous recording failed").is_empty(),
        "no error while missing"
    );
    // Back: files are handed on again and the state is cleared.
    write_wav(&wav);
    let broker = Broker::Memory(memory);
    wait_for("a recording after the return", 90, async || {
        broker.depth("default").await.unwrap_or(0) > 0
    })
    .await;
    assert!(!state_file(&program).exists());
    assert_eq!(mine("recording resumes").len(), 1, "{:#?}", mine(""));
    shutdown.cancel();
    handle.await.expect("the recorder ends");
}
