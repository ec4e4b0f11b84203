//! `acoupi config get|set|unset` through the real binary: format-preserving edits of every
//! example manifest (snapshotted as the diffs `--dry-run` prints, each also written for real
//! and checked), rejected edits that leave the file byte for byte as it was, and an edit of a
//! home's manifest that rebuilds the home.

mod common;

use camino::Utf8Path;
use common::{acoupi, code, stderr, stdout, tempdir};

/// The edits tried on each example: `set PATH VALUE…` or `unset PATH`.
fn edits(example: &str) -> Vec<Vec<&'static str>> {
    let mut out: Vec<Vec<&'static str>> = vec![
        vec!["set", "program.description", "edited by path"],
        vec!["set", "program.timezone", "Europe/Paris"],
        vec!["set", "recording.duration", "2s"],
        vec!["set", "retention.max-age", "30d"],
    ];
    out.extend(match example {
        "batdetect2" => vec![
            vec!["set", "detector.batdetect2.threshold", "0.3"],
            vec!["set", "saving.keep-if.min-score", "0.5"],
            vec!["set", "messaging.mqtt.host", "mqtt.example.org"],
            vec!["set", "retention.keep-newest", "5"],
            vec!["unset", "retention.max-usage"],
            vec!["set", "detector.batdetect2.chunked", "true"],
        ],
        "connected" => vec![
            vec!["set", "saving.keep-if[1].to", "dusk+20m"],
            vec!["unset", "saving.keep-if[0]"],
            vec!["set", "messaging.mqtt.port", "8883"],
            vec!["set", "messaging.mqtt.topic-per-type", "false"],
            vec!["set", "messaging.http.timeout", "10s"],
            vec!["set", "microphone.usb.channels", "2"],
        ],
        "default" => vec![
            vec!["set", "saving.keep-if[1].n", "3"],
            vec!["unset", "recording.min-free-disk"],
            vec!["set", "recording.window.from", "05:00"],
            vec!["set", "program.device-id", "pi-17"],
        ],
        "detection" => vec![
            vec!["set", "detector.bats.threshold", "0.6"],
            vec!["set", "saving.keep-if[0].min-score", "0.4"],
            vec!["set", "messaging.mqtt.host", "mqtt.example.org"],
            vec!["set", "workers.worker.default.concurrency", "3"],
            vec!["set", "workers.task.detect.time-limit", "3m"],
            vec!["unset", "summary.thresholds"],
            vec!["unset", "saving.keep-if[1]"],
        ],
        "quickstart" => vec![
            vec!["set", "detector.bats.threshold", "0.4"],
            vec!["set", "detector.bats.band.low", "25kHz"],
            vec!["set", "microphone.demo.synthetic.amplitude", "0.25"],
            vec!["unset", "detector.bats.threshold"],
            vec!["set", "saving.otherwise", "delete"],
        ],
        _ => Vec::new(),
    });
    out
}

fn config(dir: &Utf8Path, file: &str, edit: &[&str], extra: &[&str]) -> std::process::Output {
    acoupi()
        .arg("config")
        .args(edit)
        .args(["--manifest", file])
        .args(extra)
        .current_dir(dir)
        .output()
        .expect("acoupi runs")
}

#[test]
fn edits_of_every_example_keep_every_other_byte() {
    let mut seen = 0;
    for entry in std::fs::read_dir("examples").expect("examples dir") {
        let path = camino::Utf8PathBuf::from_path_buf(entry.expect("entry").path()).expect("utf-8");
        if path.extension() != Some("kdl") {
            continue;
        }
        let stem = path.file_stem().expect("stem").to_owned();
        let original = std::fs::read_to_string(&path).expect("example");
        let (_d, dir) = tempdir();
        let file = format!("{stem}.kdl");
        let mut report = String::new();
        for edit in edits(&stem) {
            std::fs::write(dir.join(&file), &original).expect("copy");
            let dry = config(&dir, &file, &edit, &["--dry-run"]);
            assert_eq!(code(&dry), 0, "{edit:?} on {stem}: {}", stderr(&dry));
            let diff = stdout(&dry);
            assert!(!diff.is_empty(), "{edit:?} on {stem} changed nothing");
            assert_eq!(
                std::fs::read_to_string(dir.join(&file)).expect("read"),
                original,
                "--dry-run wrote"
            );
            report.push_str(&format!("$ acoupi config {}\n{diff}\n", edit.join(" ")));
            // For real: the file is the edited text, and it checks.
            let out = config(&dir, &file, &edit, &[]);
            assert_eq!(code(&out), 0, "{edit:?} on {stem}: {}", stderr(&out));
            let edited = std::fs::read_to_string(dir.join(&file)).expect("read");
            assert_ne!(edited, original);
            let again = config(&dir, &file, &edit, &["--dry-run"]);
            if edit[0] == "set" {
                assert!(
                    stderr(&again).contains("already says so") && stdout(&again).is_empty(),
                    "{edit:?} on {stem} is not idempotent: {}{}",
                    stdout(&again),
                    stderr(&again)
                );
            }
            let check = acoupi()
                .args(["check", &file])
                .current_dir(&dir)
                .output()
                .expect("check runs");
            assert_eq!(code(&check), 0, "{edit:?} on {stem}: {}", stderr(&check));
        }
        insta::assert_snapshot!(format!("config_edit_{stem}"), report);
        seen += 1;
    }
    assert!(seen >= 5, "only {seen} examples");
}

#[test]
fn rejected_edits_leave_the_file_byte_identical() {
    let (_d, dir) = tempdir();
    let original = std::fs::read("examples/detection.kdl").expect("example");
    let file = "m.kdl";
    std::fs::write(dir.join(file), &original).expect("copy");
    let cases: &[(&[&str], &str)] = &[
        (
            &["set", "recording.duration", "30s"],
            "model::duration_exceeds_interval",
        ),
        (
            &["set", "recording.duraton", "5s"],
            "did you mean `duration`?",
        ),
        (
            &["set", "detector.bat.threshold", "0.5"],
            "did you mean `bats`?",
        ),
        (&["set", "detector.bats.threshold", "2"], "threshold"),
        (&["set", "program.location.latitude", "north"], "latitude"),
        (
            &["set", "saving.keep-if[5].min-score", "0.1"],
            "no `keep-if[5]`",
        ),
        (
            &["set", "saving.keep-if.min-score", "0.1"],
            "`saving.keep-if[1]`",
        ),
        (&["set", "recording", "x"], "`recording.duration`"),
        (&["set", "a..b", "x"], "is not a path"),
        (&["unset", "program"], "manifest::missing_node"),
        (
            &["unset", "recording.nothing"],
            "no `nothing` in `recording`",
        ),
    ];
    for (edit, expected) in cases {
        let out = config(&dir, file, edit, &[]);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{edit:?}: {err}");
        assert!(
            err.contains(expected),
            "{edit:?}: expected `{expected}` in:\n{err}"
        );
        assert!(stdout(&out).is_empty(), "{edit:?}");
        assert_eq!(
            std::fs::read(dir.join(file)).expect("read"),
            original,
            "{edit:?} changed the file"
        );
    }
    // A manifest with errors already is not edited at all.
    let broken = b"program \"p\" {\n    timezone \"Mars/Olympus\"\n}\n".to_vec();
    std::fs::write(dir.join(file), &broken).expect("write");
    let out = config(&dir, file, &["set", "program.description", "x"], &[]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("has errors already"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(dir.join(file)).expect("read"), broken);
}

#[test]
fn get_prints_values_by_path_with_secrets_masked() {
    let (_d, dir) = tempdir();
    let text = std::fs::read_to_string("examples/quickstart.kdl").expect("example")
        + "messaging {\n    mqtt host=\"h\" topic=\"t\" {\n        password \"hunter2\"\n    }\n}\n";
    std::fs::write(dir.join("m.kdl"), text).expect("write");
    let get = |path: &str| {
        let out = acoupi()
            .args(["config", "get", path, "--manifest", "m.kdl"])
            .current_dir(&dir)
            .output()
            .expect("runs");
        (code(&out), stdout(&out), stderr(&out))
    };
    assert_eq!(
        get("detector.bats.threshold"),
        (0, "0.3\n".into(), String::new())
    );
    assert_eq!(get("recording.duration").1, "5s\n");
    let (c, out, _) = get("messaging.mqtt");
    assert_eq!(c, 0);
    assert_eq!(
        out,
        "messaging.mqtt.host = h\nmessaging.mqtt.topic = t\nmessaging.mqtt.password = ***\n"
    );
    let (c, _, err) = get("detector.bats.treshold");
    assert_eq!(c, 1);
    assert!(err.contains("did you mean `threshold`?"), "{err}");
}

#[test]
fn editing_a_homes_manifest_rebuilds_the_home() {
    let (_d, dir) = tempdir();
    let manifest = common::write(
        &dir,
        "acoupi.kdl",
        std::fs::read("examples/quickstart.kdl").expect("example"),
    );
    let home = dir.join("home");
    let run = |args: &[&str]| {
        acoupi()
            .args(args)
            .args(["--home", home.as_str()])
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .output()
            .expect("runs")
    };
    let out = run(&["build", manifest.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(&["config", "set", "detector.bats.threshold", "0.45"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("rebuilt"), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&manifest)
            .expect("read")
            .contains("threshold 0.45")
    );
    let out = run(&["config", "show", "detectors.0.kind.threshold"]);
    assert_eq!(stdout(&out), "0.45\n", "{}", stderr(&out));
    // The home is up to date with its manifest.
    let out = run(&["build", manifest.as_str(), "--check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // `get` reads the home's manifest too.
    let out = run(&["config", "get", "detector.bats.threshold"]);
    assert_eq!(stdout(&out), "0.45\n");
    // An invalid edit changes neither the manifest nor the home.
    let before = std::fs::read(&manifest).expect("read");
    let out = run(&["config", "set", "detector.bats.threshold", "7"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(std::fs::read(&manifest).expect("read"), before);
    let out = run(&["config", "show", "detectors.0.kind.threshold"]);
    assert_eq!(stdout(&out), "0.45\n");
}

/// The units a rebuild restarts after each edit of `examples/detection.kdl` (workers
/// `recording`, `detection`, `default`, and beat).
#[test]
fn each_edit_restarts_only_the_units_that_read_what_changed() {
    use acoupi::lifecycle::changes::{Files, changes};
    use acoupi::manifest::edit::{Op, edit};

    let build = |text: &str| -> Files {
        let source = acoupi::compile::from_bytes(
            "detection.kdl",
            "/home/pi/detection.kdl".into(),
            text.as_bytes().to_vec(),
        );
        let ctx = acoupi::plan::BuildContext {
            home: "/home/pi/.acoupi".into(),
            exe: "/usr/local/bin/acoupi".into(),
            source_path: "/home/pi/detection.kdl".into(),
        };
        let built = acoupi::compile::build(&source, &ctx).expect("the edit builds");
        built
            .tree
            .iter()
            .map(|(p, f)| (p.to_string(), f.contents.clone()))
            .collect()
    };
    let original = std::fs::read_to_string("examples/detection.kdl").expect("example");
    let old = build(&original);
    let w = |n: &str| format!("acoupi-worker-{n}.service");
    let beat = "acoupi-beat.service".to_owned();
    // `default` runs manage-files (saving, retention, detectors, messaging, recording) and
    // summary; beat publishes every task with its time limits.
    let all = vec![w("recording"), w("detection"), w("default"), beat.clone()];
    let table: Vec<(Op, Vec<String>)> = vec![
        (
            set("detector.bats.threshold", "0.6"),
            vec![w("detection"), w("default")],
        ),
        // The record task's time limit follows the duration.
        (
            set("recording.duration", "2s"),
            vec![w("recording"), w("default"), beat.clone()],
        ),
        (
            set("recording.interval", "20s"),
            vec![w("recording"), w("default"), beat.clone()],
        ),
        (
            set("saving.keep-if[0].min-score", "0.4"),
            vec![w("default")],
        ),
        (
            set("messaging.mqtt.host", "mqtt.example.org"),
            vec![w("detection"), w("default")],
        ),
        (
            set("workers.worker.default.concurrency", "3"),
            vec![w("default")],
        ),
        (
            set("workers.task.detect.time-limit", "3m"),
            vec![w("detection"), w("default"), beat.clone()],
        ),
        (set("program.description", "north hedge"), vec![]),
        (set("program.timezone", "UTC"), all),
    ];
    for (op, expected) in table {
        let text = edit(&original, &op).expect("edit")[0].clone();
        let c = changes(&old, &build(&text));
        let mut got = c.units();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "{op:?}: {c:#?}");
        assert!(c.added.is_empty() && c.removed.is_empty(), "{op:?}");
    }
}

fn set(path: &str, value: &str) -> acoupi::manifest::edit::Op {
    acoupi::manifest::edit::Op::Set {
        path: path.to_owned(),
        values: vec![value.to_owned()],
    }
}
