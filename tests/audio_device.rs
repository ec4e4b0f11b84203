//! Audio input devices through the real ALSA and cpal code paths, with no sound card: a
//! `type file` PCM defined in a temporary `~/.asoundrc` replays a raw file of known samples.
//!
//! ALSA reads `~/.asoundrc` once per process, so every test here runs its ALSA part in a
//! child process whose HOME is a temporary directory: either the `acoupi` binary, or this
//! test binary re-executed (with `ACOUPI_TEST_ALSA_CHILD` set) to run one test body.

mod common;

use std::process::Command;

use acoupi::audio::device;
use acoupi::audio::{Format, Source};
use acoupi::spec::SampleFormat;
use camino::Utf8Path;
use common::{acoupi, code, stderr, stdout, tempdir};

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
