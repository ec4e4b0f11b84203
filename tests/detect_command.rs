//! Command detectors with real processes: the Python examples, and small Python stand-ins
//! that time out, crash, answer nonsense or refuse, written into a temp dir by each test.
//!
//! In: programs run with `/usr/bin/python3`. Out: assertions on the events, the errors and
//! the processes (pids alive or gone) seen through `acoupi::detect::command`.

use std::time::Duration;

use acoupi::detect::command::{CommandDetector, Config};
use acoupi::detect::{DetectError, Event, Request};
use acoupi::spec::CommandMode;
use camino::{Utf8Path, Utf8PathBuf};

const PYTHON: &str = "/usr/bin/python3";

/// A serve-mode program whose behaviour follows the request's file name: `sleep` sleeps
/// past any timeout, `slow` takes 0.5 s, `crash` exits 3 after a stderr line, `badjson`
/// answers a line that is not JSON, `wrongid` answers another id, `refuse` answers an error.
/// Other files get one detection tagged with the process's pid and the handling times. With
/// `quit` answers, then exits. With
/// `--ready` it announces itself first; with `--stubborn` it ignores the end of stdin.
const TOY: &str = r#"
import json, os, sys, time
if "--ready" in sys.argv:
    print(json.dumps({"ready": True, "name": "toy", "version": "2", "labels": ["x", "y"]}), flush=True)
for line in sys.stdin:
    r = json.loads(line)
    p = r["path"]
    t0 = time.time()
    print(f"toy got {os.path.basename(p)}", file=sys.stderr, flush=True)
    if "sleep" in p:
        time.sleep(60)
    if "slow" in p:
        time.sleep(0.5)
    if "crash" in p:
        print(f"crashing on {os.path.basename(p)}", file=sys.stderr, flush=True)
        sys.exit(3)
    if "badjson" in p:
        print("this is not json", flush=True)
        continue
    if "wrongid" in p:
        r["id"] = "other"
    if "quit" in p:
        print(json.dumps({"id": r["id"], "detections": []}), flush=True)
        print("quitting after a reply", file=sys.stderr, flush=True)
        sys.exit(0)
    if "refuse" in p:
        print(json.dumps({"id": r["id"], "error": "cannot use this file"}), flush=True)
        continue
    tags = [{"key": "pid", "value": str(os.getpid()), "score": 1.0},
            {"key": "t0", "value": repr(t0), "score": 1.0},
            {"key": "t1", "value": repr(time.time()), "score": 1.0}]
    d = {"start_time": 0.1, "end_time": 0.2, "low_freq": 1000, "high_freq": 2000, "score": 0.75, "tags": tags}
    print(json.dumps({"id": r["id"], "detections": [d]}), flush=True)
if "--stubborn" in sys.argv:
    time.sleep(60)
"#;

/// A temp dir holding `toy.py` and empty files for requests.
struct Scene {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::try_from(dir.path().to_path_buf()).unwrap();
        std::fs::write(root.join("toy.py"), TOY).unwrap();
        Scene { _dir: dir, root }
    }

    /// A file named `name` in the scene (created empty if missing).
    fn file(&self, name: &str) -> Utf8PathBuf {
        let path = self.root.join(name);
        if !path.exists() {
            std::fs::write(&path, b"").unwrap();
        }
        path
    }

    /// A file named `name` holding `text`.
    fn text(&self, name: &str, text: &str) -> Utf8PathBuf {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A script named `name` holding `text`.
    fn script(&self, name: &str, text: &str) -> String {
        let path = self.root.join(name);
        std::fs::write(&path, text).unwrap();
        path.into_string()
    }

    fn toy(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![PYTHON.to_owned(), self.root.join("toy.py").into_string()];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }
}

fn config(argv: Vec<String>, mode: CommandMode, slots: usize, timeout_ms: u64) -> Config {
    Config {
        name: "toy".into(),
        argv,
        mode,
        timeout: Duration::from_millis(timeout_ms),
        startup_timeout: Duration::from_secs(10),
        slots,
    }
}

fn request(id: &str, path: &Utf8Path, threshold: f64) -> Request {
    Request {
        id: id.into(),
        path: path.to_owned(),
        samplerate: 8000,
        channels: 1,
        duration_s: 1.0,
        time_expansion: 1.0,
        recorded_at: "2025-06-01T21:00:00Z".parse().unwrap(),
        threshold,
    }
}

/// The repository's file `rel`.
fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// The value of tag `key` of the only event.
fn tag<'a>(events: &'a [Event], key: &str) -> &'a str {
    assert_eq!(events.len(), 1, "{events:?}");
    &events[0]
        .tags
        .iter()
        .find(|t| t.key == key)
        .unwrap_or_else(|| panic!("no tag `{key}` in {events:?}"))
        .value
}

fn pid_of(events: &[Event]) -> u32 {
    tag(events, "pid").parse().unwrap()
}

/// Waits up to 5 s for process `pid` to have exited (a zombie, not yet reaped).
fn wait_exited(pid: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the command name in parentheses.
        let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
        if stat.is_empty() || state == Some('Z') {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} still runs: {stat}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` exists (a zombie counts: it has not been reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A 16-bit mono WAV at 8 kHz, 1 s long: silent but for a loud tone from 0.25 to 0.5 s.
fn loud_wav(path: &Utf8Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..8000 {
        let v = if (2000..4000).contains(&i) {
            (16000.0 * (i as f64 * 0.3).sin()) as i16
        } else {
            0
        };
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
}

fn failed(result: Result<Vec<Event>, DetectError>) -> String {
    match result {
        Err(DetectError::Failed(m)) => m,
        other => panic!("expected a `Failed` error, got {other:?}"),
    }
}

#[tokio::test]
async fn example_py_answers_with_ids_and_events() {
    let scene = Scene::new();
    let wav = scene.root.join("loud.wav");
    loud_wav(&wav);
    let detector = CommandDetector::new(config(
        vec![PYTHON.into(), repo("examples/detectors/example.py")],
        CommandMode::Serve,
        1,
        10_000,
    ));
    for id in ["first", "second"] {
        let events = detector.detect(&request(id, &wav, 0.1)).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!((e.start_s, e.end_s), (0.25, 0.5));
        assert_eq!((e.low_hz, e.high_hz), (0.0, 4000.0));
        assert!(e.score > 0.5 && e.score <= 1.0, "{e:?}");
        assert_eq!(e.tags[0].key, "sound");
        assert_eq!(e.tags[0].value, "loud");
    }
    let ready = detector.ready_info().await.unwrap();
    assert_eq!(ready.name.as_deref(), Some("example-loudness"));
    assert_eq!(ready.labels, ["loud"]);
    // A file it cannot read: an error reply, the program keeps serving.
    let refused = detector
        .detect(&request("bad", &scene.file("empty.wav"), 0.1))
        .await;
    assert!(
        matches!(&refused, Err(DetectError::Refused(m)) if m.contains("request `bad`")),
        "{refused:?}"
    );
    assert_eq!(
        detector
            .detect(&request("again", &wav, 0.1))
            .await
            .unwrap()
            .len(),
        1
    );
    detector.shutdown().await;
}

#[tokio::test]
async fn batdetect2_py_maps_the_standin_exactly_and_drops_under_threshold() {
    let scene = Scene::new();
    let wav = scene.root.join("bats.wav");
    loud_wav(&wav);
    let argv = vec![
        "/usr/bin/env".into(),
        format!("PYTHONPATH={}", repo("tests/detectors/standin")),
        PYTHON.into(),
        repo("examples/detectors/batdetect2.py"),
    ];
    let detector = CommandDetector::new(config(argv, CommandMode::Serve, 1, 10_000));
    let events = detector.detect(&request("r1", &wav, 0.4)).await.unwrap();
    let tag = |species: &str, score: f64| acoupi::detect::EventTag {
        key: "species".into(),
        value: species.into(),
        score,
    };
    assert_eq!(
        events,
        [
            Event {
                start_s: 0.0123,
                end_s: 0.0178,
                low_hz: 41000.0,
                high_hz: 78000.0,
                score: 0.9,
                tags: vec![tag("Pipistrellus pipistrellus", 0.812)],
            },
            Event {
                start_s: 0.2501,
                end_s: 0.2555,
                low_hz: 33000.0,
                high_hz: 95000.0,
                score: 0.5,
                tags: vec![tag("Myotis mystacinus", 0.333)],
            },
        ]
    );
    // The 0.15 detection comes back at a lower threshold.
    let all = detector.detect(&request("r2", &wav, 0.1)).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].tags, [tag("Nyctalus noctula", 0.1)]);
    let ready = detector.ready_info().await.unwrap();
    assert_eq!(ready.name.as_deref(), Some("BatDetect2"));
    assert_eq!(ready.version.as_deref(), Some("0.0.0+standin"));
    assert_eq!(ready.labels.len(), 3);
    let refused = detector
        .detect(&request(
            "r3",
            &scene.text("not-a-wav.wav", "plain text"),
            0.4,
        ))
        .await;
    assert!(
        matches!(&refused, Err(DetectError::Refused(m)) if m.contains("RIFF")),
        "{refused:?}"
    );
    detector.shutdown().await;
}

#[tokio::test]
async fn the_ready_line_is_optional() {
    let scene = Scene::new();
    for (args, announced) in [(&["--ready"][..], true), (&[][..], false)] {
        let detector = CommandDetector::new(config(scene.toy(args), CommandMode::Serve, 1, 10_000));
        let events = detector
            .detect(&request("r1", &scene.file("a.wav"), 0.5))
            .await
            .unwrap();
        assert_eq!(events[0].score, 0.75);
        assert_eq!((events[0].start_s, events[0].high_hz), (0.1, 2000.0));
        let ready = detector.ready_info().await;
        if announced {
            let ready = ready.unwrap();
            assert_eq!(ready.name.as_deref(), Some("toy"));
            assert_eq!(ready.version.as_deref(), Some("2"));
            assert_eq!(ready.labels, ["x", "y"]);
        } else {
            assert_eq!(ready, None);
        }
        // The second request on the same process.
        let again = detector
            .detect(&request("r2", &scene.file("a.wav"), 0.5))
            .await
            .unwrap();
        assert_eq!(pid_of(&again), pid_of(&events));
        detector.shutdown().await;
    }
}

#[tokio::test]
async fn a_request_past_its_timeout_fails_and_the_next_gets_a_new_process() {
    let scene = Scene::new();
    let mut config = config(scene.toy(&["--ready"]), CommandMode::Serve, 1, 1000);
    config.startup_timeout = Duration::from_secs(10);
    let detector = CommandDetector::new(config);
    let first = detector
        .detect(&request("r1", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let message = failed(
        detector
            .detect(&request("r2", &scene.file("sleep.wav"), 0.5))
            .await,
    );
    assert!(started.elapsed() < Duration::from_secs(8), "{message}");
    assert!(message.contains("timed out after 1.0 s"), "{message}");
    assert!(message.contains("request `r2`"), "{message}");
    assert!(message.contains("toy got sleep.wav"), "{message}");
    assert!(!exists(pid_of(&first)), "the timed-out process is gone");
    let next = detector
        .detect(&request("r3", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    assert_ne!(pid_of(&next), pid_of(&first));
    detector.shutdown().await;
}

#[tokio::test]
async fn a_crash_fails_its_request_with_the_stderr_tail_and_a_new_process_serves_the_next() {
    let scene = Scene::new();
    let detector = CommandDetector::new(config(
        scene.toy(&["--ready"]),
        CommandMode::Serve,
        1,
        10_000,
    ));
    let first = detector
        .detect(&request("r1", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    let message = failed(
        detector
            .detect(&request("r2", &scene.file("crash.wav"), 0.5))
            .await,
    );
    assert!(message.contains("closed its stdout"), "{message}");
    assert!(message.contains("exited with status 3"), "{message}");
    assert!(message.contains("crashing on crash.wav"), "{message}");
    assert!(
        message.ends_with("crashing on crash.wav"),
        "the last stderr line ends the message: {message}"
    );
    assert!(!exists(pid_of(&first)));
    let next = detector
        .detect(&request("r3", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    assert_ne!(pid_of(&next), pid_of(&first));
    detector.shutdown().await;
}

#[tokio::test]
async fn a_process_that_exited_while_idle_is_replaced_without_failing_a_request() {
    let scene = Scene::new();
    let detector = CommandDetector::new(config(scene.toy(&[]), CommandMode::Serve, 1, 10_000));
    let first = detector
        .detect(&request("r1", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    let quit = detector
        .detect(&request("r2", &scene.file("quit.wav"), 0.5))
        .await
        .unwrap();
    assert!(quit.is_empty());
    wait_exited(pid_of(&first));
    let next = detector
        .detect(&request("r3", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    assert_ne!(pid_of(&next), pid_of(&first));
    assert!(!exists(pid_of(&first)), "reaped");
    detector.shutdown().await;
}

#[tokio::test]
async fn invalid_json_wrong_id_backoff_and_error_replies() {
    let scene = Scene::new();
    let detector = CommandDetector::new(config(scene.toy(&[]), CommandMode::Serve, 1, 10_000));
    let message = failed(
        detector
            .detect(&request("r1", &scene.file("badjson.wav"), 0.5))
            .await,
    );
    assert!(
        message.contains("sent an invalid reply: not valid protocol JSON"),
        "{message}"
    );
    assert!(message.contains("`this is not json`"), "{message}");
    let message = failed(
        detector
            .detect(&request("r2", &scene.file("wrongid.wav"), 0.5))
            .await,
    );
    assert!(
        message.contains("answered with id `other` instead of `r2`"),
        "{message}"
    );
    // Two failures in a row: the next start waits 1 s, and a request needing it fails fast.
    let started = std::time::Instant::now();
    let message = failed(
        detector
            .detect(&request("r3", &scene.file("a.wav"), 0.5))
            .await,
    );
    assert!(
        message.contains("restarting after 2 failures in a row"),
        "{message}"
    );
    assert!(message.contains("answered with id `other`"), "{message}");
    assert!(started.elapsed() < Duration::from_millis(500));
    // Once the backoff is over, a new process serves.
    let deadline = started + Duration::from_secs(5);
    let a = loop {
        match detector
            .detect(&request("r4", &scene.file("a.wav"), 0.5))
            .await
        {
            Ok(events) => break events,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("restarting"), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("still failing after 5 s: {e}"),
        }
    };
    assert!(started.elapsed() >= Duration::from_millis(900));
    match detector
        .detect(&request("r5", &scene.file("refuse.wav"), 0.5))
        .await
    {
        Err(DetectError::Refused(m)) => {
            assert_eq!(
                m,
                "detector `toy` refused request `r5`: cannot use this file"
            )
        }
        other => panic!("expected `Refused`, got {other:?}"),
    }
    // A refusal is an answer: the same process serves the next request.
    let b = detector
        .detect(&request("r6", &scene.file("a.wav"), 0.5))
        .await
        .unwrap();
    assert_eq!(pid_of(&a), pid_of(&b));
    detector.shutdown().await;
}

/// Runs two `slow` requests at once; returns each one's pid and handling interval.
async fn two_at_once(detector: &CommandDetector, scene: &Scene) -> [(u32, f64, f64); 2] {
    let slow = scene.file("slow.wav");
    let (ra, rb) = (request("a", &slow, 0.5), request("b", &slow, 0.5));
    let (a, b) = tokio::join!(detector.detect(&ra), detector.detect(&rb));
    [a.unwrap(), b.unwrap()].map(|events| {
        (
            pid_of(&events),
            tag(&events, "t0").parse().unwrap(),
            tag(&events, "t1").parse().unwrap(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_slots_run_in_parallel_on_two_processes_and_one_slot_serially() {
    let scene = Scene::new();
    let detector = CommandDetector::new(config(scene.toy(&[]), CommandMode::Serve, 2, 10_000));
    let [(pa, a0, a1), (pb, b0, b1)] = two_at_once(&detector, &scene).await;
    assert_ne!(pa, pb, "two processes");
    assert!(a0 < b1 && b0 < a1, "overlapping: {a0}-{a1} and {b0}-{b1}");
    detector.shutdown().await;
    assert!(!exists(pa) && !exists(pb));

    let detector = CommandDetector::new(config(scene.toy(&[]), CommandMode::Serve, 1, 10_000));
    let [(pa, a0, a1), (pb, b0, b1)] = two_at_once(&detector, &scene).await;
    assert_eq!(pa, pb, "one process");
    assert!(
        a1 <= b0 || b1 <= a0,
        "one after the other: {a0}-{a1} and {b0}-{b1}"
    );
    detector.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_process_and_later_requests_fail() {
    let scene = Scene::new();
    // `--stubborn` ignores the end of stdin: it is stopped by SIGTERM.
    for args in [&[][..], &["--stubborn"][..]] {
        let detector = CommandDetector::new(config(scene.toy(args), CommandMode::Serve, 1, 10_000));
        let pid = pid_of(
            &detector
                .detect(&request("r1", &scene.file("a.wav"), 0.5))
                .await
                .unwrap(),
        );
        assert!(exists(pid));
        detector.shutdown().await;
        assert!(
            !exists(pid),
            "process {pid} ({args:?}) is gone, not a zombie"
        );
        let message = failed(
            detector
                .detect(&request("r2", &scene.file("a.wav"), 0.5))
                .await,
        );
        assert!(message.contains("shut down"), "{message}");
    }
}

#[tokio::test]
async fn per_file_mode_success_and_failures() {
    let scene = Scene::new();
    let wav = scene.root.join("loud.wav");
    loud_wav(&wav);
    // example.py takes the path as its last argument and the request from the environment.
    let detector = CommandDetector::new(config(
        vec![PYTHON.into(), repo("examples/detectors/example.py")],
        CommandMode::PerFile,
        1,
        10_000,
    ));
    let events = detector.detect(&request("r1", &wav, 0.1)).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].start_s, events[0].end_s), (0.25, 0.5));
    let refused = detector
        .detect(&request("r2", &scene.file("empty.wav"), 0.1))
        .await;
    assert!(
        matches!(refused, Err(DetectError::Refused(_))),
        "{refused:?}"
    );

    // A bare array on stdout.
    let array = scene.script(
        "array.py",
        "import json, os, sys\n\
         r = json.loads(os.environ['ACOUPI_REQUEST'])\n\
         assert r['path'] == sys.argv[-1] and r['id'] == 'r3'\n\
         print(json.dumps([{'start_time': 0, 'end_time': 1, 'low_freq': 5, 'high_freq': 6, 'score': 1}]))\n",
    );
    let detector = CommandDetector::new(config(
        vec![PYTHON.into(), array],
        CommandMode::PerFile,
        1,
        10_000,
    ));
    let events = detector.detect(&request("r3", &wav, 0.1)).await.unwrap();
    assert_eq!(
        (events[0].end_s, events[0].high_hz, events[0].score),
        (1.0, 6.0, 1.0)
    );

    let cases = [
        (
            "import sys\nprint('no model here', file=sys.stderr)\nsys.exit(2)\n",
            "exited with status 2",
            "no model here",
        ),
        ("print('hello')\n", "wrote invalid output", "`hello`"),
        (
            "import time\nprint('loading', flush=True)\ntime.sleep(60)\n",
            "timed out after 1.0 s",
            "wrote nothing on stderr",
        ),
    ];
    for (i, (text, cause, detail)) in cases.iter().enumerate() {
        let script = scene.script(&format!("bad{i}.py"), text);
        let detector = CommandDetector::new(config(
            vec![PYTHON.into(), script],
            CommandMode::PerFile,
            1,
            1000,
        ));
        let message = failed(detector.detect(&request("r", &wav, 0.1)).await);
        assert!(message.contains(cause), "{message}");
        assert!(message.contains(detail), "{message}");
        assert!(message.contains(wav.as_str()), "{message}");
    }
}

#[tokio::test]
async fn a_missing_program_is_a_clear_failure() {
    let scene = Scene::new();
    for mode in [CommandMode::Serve, CommandMode::PerFile] {
        let detector =
            CommandDetector::new(config(vec!["/nonexistent/detector".into()], mode, 1, 1000));
        for _ in 0..2 {
            let started = std::time::Instant::now();
            let message = failed(
                detector
                    .detect(&request("r1", &scene.file("a.wav"), 0.5))
                    .await,
            );
            assert!(
                message.contains("detector `toy` cannot start `/nonexistent/detector`"),
                "{message}"
            );
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        detector.shutdown().await;
    }
}

#[tokio::test]
async fn a_missing_file_is_unreadable_without_asking_the_program() {
    let scene = Scene::new();
    let detector = CommandDetector::new(config(scene.toy(&[]), CommandMode::Serve, 1, 10_000));
    let result = detector
        .detect(&request("r1", &scene.root.join("gone.wav"), 0.5))
        .await;
    assert!(
        matches!(&result, Err(DetectError::Unreadable(m)) if m.contains("gone.wav")),
        "{result:?}"
    );
    assert_eq!(detector.ready_info().await, None);
    detector.shutdown().await;
}

#[test]
fn install_batdetect2_script_handles_its_arguments() {
    let script = repo("scripts/install-batdetect2");
    let run = |args: &[&str]| {
        std::process::Command::new(&script)
            .args(args)
            .env("HOME", "/nonexistent-home")
            .env_remove("XDG_DATA_HOME")
            .output()
            .unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--dry-run"));

    let dry = run(&["--dry-run", "/opt/bd2"]);
    assert!(dry.status.success(), "{dry:?}");
    let stdout = String::from_utf8_lossy(&dry.stdout);
    assert_eq!(
        stdout,
        "detector \"bats\" kind=\"command\" {\n    command \"/opt/bd2/bin/python\" \
         \"/opt/bd2/batdetect2.py\"\n    threshold 0.4\n}\n"
    );
    assert!(String::from_utf8_lossy(&dry.stderr).contains("pip install --quiet batdetect2"));

    let default = run(&["--dry-run"]);
    assert!(
        String::from_utf8_lossy(&default.stdout)
            .contains("/nonexistent-home/.local/share/acoupi/batdetect2/bin/python"),
        "{default:?}"
    );
    for (args, message) in [
        (&["--bogus"][..], "unknown option `--bogus`"),
        (&["a", "b"][..], "one DIR only"),
        (&["--python"][..], "`--python` needs an interpreter"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}: {out:?}"
        );
    }
}

#[tokio::test]
async fn warming_starts_one_process_per_slot_and_requests_use_them() {
    let scene = Scene::new();
    let starts = scene.root.join("starts");
    let program = scene.script(
        "counted.py",
        &format!(
            r#"import json, os, sys
with open({starts:?}, "a") as f:
    f.write(str(os.getpid()) + "\n")
for line in sys.stdin:
    r = json.loads(line)
    tags = [{{"key": "pid", "value": str(os.getpid()), "score": 1.0}}]
    print(json.dumps({{"id": r["id"], "detections": [{{"start_time": 0.1, "end_time": 0.2,
        "low_freq": 1000, "high_freq": 2000, "score": 0.75, "tags": tags}}]}}), flush=True)
"#
        ),
    );
    let detector = CommandDetector::new(config(
        vec![PYTHON.to_owned(), program],
        CommandMode::Serve,
        2,
        5000,
    ));
    assert_eq!(detector.warm().expect("starts"), 2);
    assert_eq!(
        detector.warm().expect("nothing more"),
        0,
        "the pool is full"
    );
    let started = || -> Vec<u32> {
        std::fs::read_to_string(&starts)
            .unwrap_or_default()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while started().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", started());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in ["r1", "r2", "r3"] {
        let events = detector
            .detect(&request(id, &scene.file("a.wav"), 0.5))
            .await
            .unwrap();
        assert!(
            started().contains(&pid_of(&events)),
            "a warmed process answered"
        );
    }
    assert_eq!(started().len(), 2, "no process started for the requests");
    detector.shutdown().await;
    for pid in started() {
        wait_exited(pid);
    }
    assert_eq!(detector.warm().expect("a shut-down pool starts nothing"), 0);
}
