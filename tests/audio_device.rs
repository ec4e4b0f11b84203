//! Audio input devices through the real ALSA and cpal code paths, with no sound card: a
//! `type file` PCM defined in a temporary `~/.asoundrc` replays a raw file of known samples.
//!
//! ALSA reads `~/.asoundrc` once per process, so every test here runs its ALSA part in a
//! child process whose HOME is a temporary directory: either the `acoupi` binary, or this
//! test binary re-executed (with `ACOUPI_TEST_ALSA_CHILD` set) to run one test body.

mod common;

use std::process::Command;

use std::sync::Arc;

use acoupi::audio::device;
use acoupi::audio::{Format, Source};
use acoupi::runtime::tasks::{Clock, Registry, Services, TaskContext};
use acoupi::spec::{Program, SampleFormat};
use camino::{Utf8Path, Utf8PathBuf};
use common::runtime::program_in;
use common::{acoupi, code, stderr, stdout, tempdir};
use serde_json::{Map, Value as Json};

/// Set in a re-executed child: the test body runs instead of spawning.
const CHILD: &str = "ACOUPI_TEST_ALSA_CHILD";

/// Frames in the fixture file: one second at 48 kHz.
const FRAMES: usize = 48_000;

/// Writes `in.raw` (little-endian i16 stereo frames: left `n`, right `-n`, `n` wrapped) and a
/// `.asoundrc` defining `pcm.fixture` in `home`.
fn fixture(home: &Utf8Path) {
    let mut raw = Vec::with_capacity(FRAMES * 4);
    for n in 0..FRAMES {
        let v = n as i16;
        raw.extend_from_slice(&v.to_le_bytes());
        raw.extend_from_slice(&v.wrapping_neg().to_le_bytes());
    }
    let infile = home.join("in.raw");
    std::fs::write(&infile, raw).expect("write raw fixture");
    let asoundrc = format!(
        r#"pcm.fixture {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{infile}"
    format "raw"
    hint {{ show on description "test fixture" }}
}}
"#
    );
    std::fs::write(home.join(".asoundrc"), asoundrc).expect("write .asoundrc");
}

/// Runs the test `name` of this binary again in a child with HOME set to a fixture home.
fn in_child(name: &str) {
    in_child_output(name);
}

/// [`in_child`], returning what the child printed (stdout, then stderr).
fn in_child_output(name: &str) -> String {
    let (_dir, home) = tempdir();
    fixture(&home);
    let out = Command::new(std::env::current_exe().expect("test binary path"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("HOME", home.as_str())
        .output()
        .expect("re-run the test binary");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child test {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child test {name} did not run:\n{text}"
    );
    text
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn devices_json_lists_the_fixture() {
    let (_dir, home) = tempdir();
    fixture(&home);
    let out = acoupi()
        .args(["devices", "--format", "json"])
        .env("HOME", home.as_str())
        .output()
        .expect("run acoupi devices");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    let devices = json["devices"].as_array().expect("a device array");
    let fixture = devices
        .iter()
        .find(|d| d["id"] == "alsa:fixture")
        .unwrap_or_else(|| panic!("no fixture device in {json:#}"));
    assert_eq!(fixture["name"], "test fixture");
    let rates = fixture["samplerates"].as_array().expect("rates");
    assert!(rates.contains(&serde_json::json!(250_000)), "{fixture:#}");
    assert!(fixture["channels"].as_array().is_some_and(|c| c.len() > 1));
    assert!(devices.iter().any(|d| d["id"] == "alsa:null"));

    let out = acoupi()
        .arg("devices")
        .env("HOME", home.as_str())
        .output()
        .expect("run acoupi devices");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("INDEX"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("test fixture") && l.contains("alsa:fixture")),
        "{text}"
    );
}

#[test]
fn fixture_capture_delivers_the_file_samples() {
    if !is_child() {
        return in_child("fixture_capture_delivers_the_file_samples");
    }
    let format = Format {
        samplerate: 48_000,
        channels: 2,
        sample_format: SampleFormat::I16,
    };
    // A substring of the name, in another case.
    let mut src = device::open("TEST FIX", format).expect("open the fixture device");
    assert_eq!(src.format(), format);
    assert!(src.device().contains("alsa:fixture"), "{}", src.device());
    let mut got = Vec::new();
    let mut buf = vec![0; 1234]; // reads of odd sizes: frames are never split
    let want = (FRAMES - 4_800) * 2; // the plugin repeats stale data past the end
    while got.len() < want {
        let n = src.read(&mut buf).expect("read the fixture device");
        assert!(n > 0 && n.is_multiple_of(2), "{n}");
        got.extend_from_slice(&buf[..n]);
    }
    for (n, frame) in got[..want].chunks_exact(2).enumerate() {
        let v = n as i16;
        assert_eq!(
            frame,
            [i32::from(v), i32::from(v.wrapping_neg())],
            "frame {n}"
        );
    }
}

#[test]
fn fixture_capture_converts_to_wider_formats() {
    if !is_child() {
        return in_child("fixture_capture_converts_to_wider_formats");
    }
    // Asked for i24, the fixture (which offers every format) delivers i24 natively: the raw
    // i16 bytes then read as 24-bit container words, so only check that the stream runs at
    // the requested format and through the requested id.
    let format = Format {
        samplerate: 384_000,
        channels: 1,
        sample_format: SampleFormat::I24,
    };
    let mut src = device::open("alsa:fixture", format).expect("open by id");
    assert_eq!(src.format(), format);
    assert_eq!(src.native_format().to_string(), "i24");
    let mut buf = vec![0; 4096];
    let n = src.read(&mut buf).expect("read");
    assert!(n > 0);
}

#[test]
fn unknown_device_error_lists_the_fixture() {
    if !is_child() {
        return in_child("unknown_device_error_lists_the_fixture");
    }
    let format = Format {
        samplerate: 48_000,
        channels: 1,
        sample_format: SampleFormat::I16,
    };
    let err = device::open("UltraMic", format)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("no audio input device matches `UltraMic`"),
        "{err}"
    );
    assert!(
        err.contains("alsa:fixture `test fixture`: 1-64 channels"),
        "{err}"
    );
}

/// Records one slot through the built-in `record` task.
fn record_slot(rt: &tokio::runtime::Runtime, program: &Arc<Program>, id: &str) -> Json {
    let handler = Registry::builtin().get("record").expect("a record handler");
    let ctx = TaskContext {
        services: Services::with_clock(Arc::clone(program), Clock::System),
        task_id: id.into(),
        retries: 0,
        worker: "test".into(),
    };
    rt.block_on(handler(ctx, vec![], Map::new()))
        .unwrap_or_else(|e| panic!("slot {id} failed: {e}"))
}

#[test]
fn an_alsa_device_that_vanishes_is_waited_for_quietly_and_resumed() {
    if !is_child() {
        let text =
            in_child_output("an_alsa_device_that_vanishes_is_waited_for_quietly_and_resumed");
        // libasound's own error lines went to the debug log, not to stderr.
        assert!(
            !text.contains("ALSA lib"),
            "libasound wrote to stderr:\n{text}"
        );
        return;
    }
    let home = Utf8PathBuf::from(std::env::var("HOME").expect("HOME is the fixture home"));
    let asoundrc = home.join(".asoundrc");
    let present = std::fs::read_to_string(&asoundrc).expect("the fixture's .asoundrc");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let program = Arc::new(program_in(
        &home.join("sensor"),
        "program \"p\"\nmicrophone \"m\" { device \"test fixture\"; samplerate \"48kHz\"; channels 2 }\n\
         recording { duration \"100ms\"; interval \"10s\" }\n",
    ));
    let state = program.paths.state.join("microphone.json");
    let recorded = |result: &Json| {
        let path = result["path"]
            .as_str()
            .unwrap_or_else(|| panic!("no recording: {result}"));
        let wav = hound::WavReader::open(path).expect("a readable WAV");
        assert_eq!(wav.duration(), 4_800, "100 ms at 48 kHz");
        assert_eq!(wav.spec().channels, 2);
    };
    recorded(&record_slot(&rt, &program, "present"));
    assert!(!state.exists());

    // Unplugged: the device is no longer in ALSA's configuration. libasound reads its
    // configuration again when a file of it changes.
    std::fs::write(&asoundrc, "# the fixture is unplugged\n").expect("unplug");
    assert_eq!(record_slot(&rt, &program, "unplugged"), Json::Null);
    let saved: Json =
        serde_json::from_str(&std::fs::read_to_string(&state).expect("state")).expect("JSON state");
    assert_eq!(saved["microphone"], "m", "{saved}");
    assert!(
        saved["error"]
            .as_str()
            .is_some_and(|e| e.contains("test fixture")),
        "{saved}"
    );

    // Named but not there: a hardware device on a card that is not plugged in (what `default`
    // is on a machine without a sound card). libasound complains while it is opened.
    std::fs::write(
        &asoundrc,
        "pcm.fixture {\n    type hw\n    card \"acoupiUnplugged\"\n    hint { show on description \"test fixture\" }\n}\n",
    )
    .expect("write a device with no card behind it");
    assert_eq!(record_slot(&rt, &program, "no-card"), Json::Null);
    assert!(state.exists());

    // Plugged back in: the next slot records and the state is cleared.
    std::fs::write(&asoundrc, present).expect("plug back in");
    recorded(&record_slot(&rt, &program, "back"));
    assert!(!state.exists(), "the state is cleared once it is back");
}
