//! `acoupi detect` as a user runs it: a built home's detectors over WAV files and folders, as
//! acoupi `ModelOutput` JSON lines and as a table; `--store` writing the metadata store once
//! per file however often it is re-analysed; a serve-mode program started once for many
//! files; unreadable files reported and skipped; bad arguments refused.

mod common;

use camino::{Utf8Path, Utf8PathBuf};
use common::{code, run, stderr, stdout, tempdir, write};
use serde_json::Value as Json;

/// A 192 kHz, 16-bit mono WAV of `seconds` with a 5 ms 80 -> 40 kHz sweep every 100 ms.
fn sweeps(path: &Utf8Path, seconds: f64) {
    let rate = 192_000u32;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let n = (seconds * f64::from(rate)) as usize;
    let period = rate as usize / 10;
    let length = rate as usize / 200;
    let mut phase = 0.0f64;
    for i in 0..n {
        let k = i % period;
        let sample = if k < length {
            let f = 80_000.0 - 40_000.0 * k as f64 / length as f64;
            phase += 2.0 * std::f64::consts::PI * f / f64::from(rate);
            0.5 * phase.sin()
        } else {
            0.0
        };
        w.write_sample((sample * 32_000.0) as i16).expect("sample");
    }
    w.finalize().expect("finalize");
}

/// A home built from `detectors` (manifest text) under `dir`.
fn home(dir: &Utf8Path, detectors: &str) -> Utf8PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    let manifest = write(
        dir,
        "acoupi.kdl",
        format!(
            "program \"p\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"192kHz\" }}\n{detectors}\n"
        ),
    );
    let home = dir.join("home");
    let out = run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    home
}

const BAND: &str =
    "detector \"bats\" kind=\"band-energy\" { band low=\"30kHz\" high=\"90kHz\"; threshold 0.3 }";

/// Two good files (one in a subfolder), a text file that is no WAV but is named like one, and
/// a file of another kind that is not looked at.
fn archive(dir: &Utf8Path) -> Utf8PathBuf {
    let root = dir.join("archive");
    std::fs::create_dir_all(root.join("night2")).expect("mkdir");
    sweeps(&root.join("a.wav"), 0.5);
    sweeps(&root.join("night2/b.WAV"), 0.3);
    write(&root, "broken.wav", "this is not audio");
    write(&root, "notes.txt", "field notes");
    root
}

#[test]
fn json_lines_are_acoupi_model_outputs_and_unreadable_files_are_skipped() {
    let (_d, dir) = tempdir();
    let home = home(&dir, BAND);
    let root = archive(&dir);
    let out = run(&[
        "--home",
        home.as_str(),
        "detect",
        root.as_str(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 1, "a file could not be read: {}", stderr(&out));
    assert!(
        stderr(&out).contains("broken.wav"),
        "the bad file is named: {}",
        stderr(&out)
    );
    let lines: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    // Name order, recursively: a.wav, then night2/b.WAV.
    let path = |o: &Json| o["recording"]["path"].as_str().expect("a path").to_owned();
    assert!(path(&lines[0]).ends_with("archive/a.wav"));
    assert!(path(&lines[1]).ends_with("archive/night2/b.WAV"));
    for (o, calls) in lines.iter().zip([5, 3]) {
        assert_eq!(o["name_model"], "bats");
        for key in ["id", "created_on", "detections", "recording"] {
            assert!(o.get(key).is_some(), "{key} in {o}");
        }
        let r = &o["recording"];
        assert_eq!(r["samplerate"], 192_000);
        assert_eq!(r["audio_channels"], 1);
        assert_eq!(r["time_expansion"], 1.0);
        for key in ["created_on", "duration", "deployment", "id"] {
            assert!(r.get(key).is_some(), "recording.{key} in {r}");
        }
        let detections = o["detections"].as_array().expect("detections");
        assert_eq!(detections.len(), calls, "{o}");
        for d in detections {
            assert_eq!(d["prediction_type"], "event");
            assert_eq!(d["location"]["type"], "BoundingBox");
            let c: Vec<f64> = d["location"]["coordinates"]
                .as_array()
                .expect("coordinates")
                .iter()
                .map(|v| v.as_f64().expect("a number"))
                .collect();
            assert!(c[0] < c[2] && c[1] < c[3], "[start, low, end, high]: {c:?}");
            assert!(c[1] >= 30_000.0 && c[3] <= 90_000.0, "{c:?}");
            assert!(d["detection_score"].as_f64().expect("score") >= 0.3);
            assert!(d["tags"].as_array().expect("tags").is_empty());
        }
    }
    // The sweeps are 100 ms apart: the first starts at 0.
    let first = lines[0]["detections"][0]["location"]["coordinates"][0]
        .as_f64()
        .expect("start");
    assert!(first < 0.011, "first call starts at {first}");
}

#[test]
fn the_table_names_each_file_and_its_detections() {
    let (_d, dir) = tempdir();
    let home = home(&dir, BAND);
    let file = dir.join("one.wav");
    sweeps(&file, 0.25);
    let out = run(&["--home", home.as_str(), "detect", file.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.ends_with("one.wav  bats: 3 detections")),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(" kHz  score ")).count(),
        3,
        "{text}"
    );
}

#[test]
fn store_writes_each_file_once_however_often_it_is_analysed() {
    let (_d, dir) = tempdir();
    let home = home(&dir, BAND);
    let root = archive(&dir);
    std::fs::remove_file(root.join("broken.wav")).expect("rm");
    // Both files start at the same time (their modification time, having no GUANO): acoupi's
    // schema wants distinct recording times, and both are stored all the same.
    let same = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000);
    for f in ["a.wav", "night2/b.WAV"] {
        std::fs::File::options()
            .write(true)
            .open(root.join(f))
            .and_then(|file| file.set_modified(same))
            .expect("set the modification time");
    }
    for _ in 0..2 {
        let out = run(&["--home", home.as_str(), "detect", root.as_str(), "--store"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let recordings = run(&[
        "--home",
        home.as_str(),
        "db",
        "recordings",
        "--format",
        "json",
    ]);
    assert_eq!(code(&recordings), 0, "{}", stderr(&recordings));
    let recordings: Json = serde_json::from_str(&stdout(&recordings)).expect("json");
    assert_eq!(
        recordings.as_array().expect("rows").len(),
        2,
        "one row per file: {recordings}"
    );
    let outputs = run(&["--home", home.as_str(), "db", "outputs", "--format", "json"]);
    let outputs: Json = serde_json::from_str(&stdout(&outputs)).expect("json");
    let outputs = outputs.as_array().expect("rows");
    assert_eq!(outputs.len(), 4, "each analysis is an output of its own");
    let detections: usize = outputs
        .iter()
        .map(|o| o["detections"].as_array().expect("detections").len())
        .sum();
    assert_eq!(detections, 2 * (5 + 3));
}

#[test]
fn a_serve_mode_program_starts_once_for_many_files() {
    let (_d, dir) = tempdir();
    let starts = dir.join("starts");
    // Notes each start, then answers every request with one detection.
    let program = write(
        &dir,
        "counting.py",
        format!(
            r#"import json, os, sys
with open({starts:?}, "a") as f:
    f.write(str(os.getpid()) + "\n")
for line in sys.stdin:
    req = json.loads(line)
    print(json.dumps({{"id": req["id"], "detections": [{{"start_time": 0.0, "end_time": 0.01,
        "low_freq": 1000, "high_freq": 2000, "score": 0.8,
        "tags": [{{"key": "call", "value": "test", "score": 0.7}}]}}]}}), flush=True)
"#
        ),
    );
    let home = home(
        &dir,
        &format!(
            "detector \"counting\" kind=\"command\" {{ command \"/usr/bin/python3\" \"{program}\" }}"
        ),
    );
    let files: Vec<Utf8PathBuf> = (0..5)
        .map(|i| {
            let f = dir.join(format!("f{i}.wav"));
            sweeps(&f, 0.05);
            f
        })
        .collect();
    let mut args = vec!["--home", home.as_str(), "detect", "--format", "json"];
    args.extend(files.iter().map(|f| f.as_str()));
    let out = run(&args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let lines: Vec<Json> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 5);
    for o in &lines {
        let d = &o["detections"][0];
        assert_eq!(d["tags"][0]["tag"]["key"], "call");
        assert_eq!(d["tags"][0]["confidence_score"], 0.7);
    }
    let started = std::fs::read_to_string(&starts).expect("the program ran");
    assert_eq!(started.lines().count(), 1, "started once: {started}");
}

#[test]
fn bad_arguments_are_refused_with_what_to_do() {
    let (_d, dir) = tempdir();
    let home = home(&dir, BAND);
    let out = run(&[
        "--home",
        home.as_str(),
        "detect",
        "--detector",
        "birds",
        dir.as_str(),
    ]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no detector named `birds`") && stderr(&out).contains("bats"));
    let out = run(&[
        "--home",
        home.as_str(),
        "detect",
        dir.join("nowhere.wav").as_str(),
    ]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("nowhere.wav"), "{}", stderr(&out));
    let bare = self::home(&dir.join("bare"), "");
    let out = run(&["--home", bare.as_str(), "detect", dir.as_str()]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("declares no detector"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bench_detect_reports_start_up_memory_and_a_median_per_file() {
    let (_d, dir) = tempdir();
    let home = home(&dir, BAND);
    let root = archive(&dir);
    let a = root.join("a.wav");
    let out = run(&[
        "--home",
        home.as_str(),
        "bench",
        "detect",
        a.as_str(),
        "--runs",
        "3",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let header = text
        .lines()
        .find(|l| l.starts_with("detector `bats`: first request"))
        .unwrap_or_else(|| panic!("no figures for the detector:\n{text}"));
    // Both resident sizes are read from /proc and are more than nothing.
    let sizes = common::mib_figures(header);
    assert_eq!(sizes.len(), 2, "{header}");
    assert!(sizes.iter().all(|s| *s > 0.0), "{header}");
    // The file's line counts what `acoupi detect` finds in it: one event per sweep.
    let line = text
        .lines()
        .find(|l| l.contains("a.wav: median"))
        .unwrap_or_else(|| panic!("no line for the file:\n{text}"));
    let detect = run(&[
        "--home",
        home.as_str(),
        "detect",
        a.as_str(),
        "--format",
        "json",
    ]);
    let events = stdout(&detect)
        .lines()
        .map(|l| {
            serde_json::from_str::<Json>(l).expect("json")["detections"]
                .as_array()
                .map_or(0, Vec::len)
        })
        .sum::<usize>();
    assert!(events > 0);
    assert!(
        line.contains("over 3 run(s)") && line.contains(&format!("; {events} detection(s)")),
        "{line}"
    );
    assert!(text.contains("peak RSS of this process:"), "{text}");

    for (extra, refusal) in [
        (
            ["--detector", "birds"],
            "no detector named `birds`; the program declares bats",
        ),
        (["--runs", "0"], "--runs must be at least 1"),
    ] {
        let mut argv = vec!["--home", home.as_str(), "bench", "detect", a.as_str()];
        argv.extend(extra);
        let out = run(&argv);
        assert_eq!(code(&out), 2, "{argv:?}");
        assert!(stderr(&out).contains(refusal), "{}", stderr(&out));
    }
}
