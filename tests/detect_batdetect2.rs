//! The native BatDetect2 detector against BatDetect2 1.3.1 itself, stage by stage.
//!
//! In: the checkpoint (`scripts/test` installs it; a missing one fails with the command) and
//! the reference outputs `tests/detectors/batdetect2/reference.json`, made once with the
//! Python package by `make_fixtures.py` from the signals of `signals.json` (synthesised here
//! sample for sample). Out: each stage compared within these tolerances:
//! - spectrogram (the network's input): same shape; every sampled value within 2·10⁻⁴ + 10⁻⁴
//!   of its magnitude (the fixtures keep 5 significant digits); sum and maximum within 10⁻³
//!   relative;
//! - network: detection map (1 − background) within 10⁻⁴ on the crop, its maximum within
//!   10⁻⁴ and its sum within 10⁻³ relative; the class logits at each detection scoring 0.2
//!   or more within 5·10⁻³;
//! - detections scoring 0.2 or more (whole file and 3 s chunks): the same count, in time
//!   order each with its start and end within 1 ms, det_prob and class_prob within 0.01, the
//!   same species and frequencies within 1 kHz (one row of the resized spectrogram is 859 Hz).

mod common;

use acoupi::detect::batdetect2::params::Params;
use acoupi::detect::batdetect2::{
    Batdetect2, Model, Settings, network, postprocess::Detection, resample,
};
use common::batdetect2::{Signal, as_float, fixtures, model, signals, synthesise, write_wav};
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string(fixtures().join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference.json parses")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn grid(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().expect("rows").iter().map(floats).collect()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

/// The test signal named `name`.
fn signal(name: &str) -> Signal {
    signals()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no test signal `{name}`"))
}

/// BatDetect2's reference detections of signal `name` scoring 0.2 or more.
fn kept<'a>(reference: &'a Value, name: &str) -> Vec<&'a Value> {
    reference["signals"][name]["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .filter(|d| f(&d["det_prob"]) >= 0.2)
        .collect()
}

fn close_rel(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs().max(1e-6),
        "{what}: {got} vs BatDetect2's {want}"
    );
}

/// The signal at the model's rate, as BatDetect2 loads it.
fn audio(model: &Model, s: &Signal) -> Vec<f32> {
    let samples = as_float(&synthesise(s));
    resample::resample(&samples, s.rate, model.params.target_samplerate)
}

/// The largest differences seen, printed at the end (`--nocapture`) for the record.
#[derive(Debug, Default)]
struct Worst {
    spectrogram: f32,
    detection_map: f32,
    logit: f32,
    time: f64,
    det_prob: f64,
    class_prob: f64,
    compared: usize,
}

fn compare_detections(what: &str, got: &[Detection], want: &Value, worst: &mut Worst) {
    let want: Vec<&Value> = want
        .as_array()
        .expect("detections")
        .iter()
        .filter(|d| f(&d["det_prob"]) >= 0.2)
        .collect();
    let got: Vec<&Detection> = got.iter().filter(|d| d.det_prob >= 0.2).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: detections scoring 0.2 or more: {got:#?} vs BatDetect2's {want:#?}"
    );
    for (g, w) in got.iter().zip(&want) {
        let ctx = format!("{what}: {g:?} vs BatDetect2's {w}");
        worst.compared += 1;
        worst.time = worst
            .time
            .max((g.start_time - f(&w["start_time"])).abs())
            .max((g.end_time - f(&w["end_time"])).abs());
        worst.det_prob = worst.det_prob.max((g.det_prob - f(&w["det_prob"])).abs());
        worst.class_prob = worst
            .class_prob
            .max((g.class_prob - f(&w["class_prob"])).abs());
        assert!(
            (g.start_time - f(&w["start_time"])).abs() <= 0.001,
            "start: {ctx}"
        );
        assert!(
            (g.end_time - f(&w["end_time"])).abs() <= 0.001,
            "end: {ctx}"
        );
        assert!(
            (g.det_prob - f(&w["det_prob"])).abs() <= 0.01,
            "det_prob: {ctx}"
        );
        assert!(
            (g.class_prob - f(&w["class_prob"])).abs() <= 0.01,
            "class_prob: {ctx}"
        );
        assert_eq!(g.class, w["class"].as_str().expect("class"), "class: {ctx}");
        assert!(
            (g.low_freq - f(&w["low_freq"])).abs() <= 1000.0,
            "low_freq: {ctx}"
        );
        assert!(
            (g.high_freq - f(&w["high_freq"])).abs() <= 1000.0,
            "high_freq: {ctx}"
        );
    }
}

#[test]
fn every_stage_matches_batdetect2_on_the_test_signals() {
    let model = Model::load(&model()).expect("the model loads");
    // The parameters come from the checkpoint, every one understood.
    let params = network::read_params(&model.path).expect("candle reads the checkpoint's params");
    let (params, unused) = Params::from_pickle(params);
    assert!(unused.is_empty(), "{unused:?}");
    assert_eq!(params, model.params);
    let reference = reference();
    assert_eq!(
        reference["class_names"],
        serde_json::json!(model.params.class_names),
        "the checkpoint's class names"
    );
    let mut worst = Worst::default();
    for s in signals() {
        let want = &reference["signals"][&s.name];
        assert!(want.is_object(), "no reference for `{}`", s.name);
        let audio = audio(&model, &s);

        // Spectrogram.
        let spec = model.spectrogram(&audio);
        let ws = &want["spectrogram"];
        assert_eq!(
            (spec.height as u64, spec.width as u64),
            (
                ws["height"].as_u64().expect("height"),
                ws["width"].as_u64().expect("width")
            ),
            "{}: spectrogram shape",
            s.name
        );
        let sum: f64 = spec.data.iter().map(|v| f64::from(*v)).sum();
        let max = spec.data.iter().copied().fold(0.0f32, f32::max);
        close_rel(
            &format!("{}: spectrogram sum", s.name),
            sum,
            f(&ws["sum"]),
            1e-3,
        );
        close_rel(
            &format!("{}: spectrogram max", s.name),
            f64::from(max),
            f(&ws["max"]),
            1e-3,
        );
        let step = ws["col_step"].as_u64().expect("col_step") as usize;
        let mut check = |what: &str, y: usize, x: usize, want: f32| {
            let got = spec.at(y, x);
            worst.spectrogram = worst.spectrogram.max((got - want).abs());
            assert!(
                (got - want).abs() <= 2e-4 + 1e-4 * want.abs(),
                "{}: spectrogram {what} at row {y}, column {x}: {got} vs BatDetect2's {want}",
                s.name
            );
        };
        for (r, row) in grid(&ws["strided"]).iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                check("sample", r * 8, c * step, *v);
            }
        }
        for (y, row) in grid(&ws["crop"]).iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                check("crop", y, s.crop_x + c, *v);
            }
        }

        // Network.
        let outputs = model.run(&spec).expect("the network runs");
        let det = outputs.detection();
        let wn = &want["network"];
        let det_sum: f64 = det.iter().map(|v| f64::from(*v)).sum();
        let det_max = det.iter().copied().fold(0.0f32, f32::max);
        close_rel(
            &format!("{}: detection map sum", s.name),
            det_sum,
            f(&wn["det_sum"]),
            1e-3,
        );
        assert!(
            (f64::from(det_max) - f(&wn["det_max"])).abs() <= 1e-4,
            "{}: detection map max {det_max} vs BatDetect2's {}",
            s.name,
            wn["det_max"]
        );
        for (y, row) in grid(&wn["det_crop"]).iter().enumerate() {
            for (c, want) in row.iter().enumerate() {
                let got = det[y * outputs.width + s.crop_x + c];
                worst.detection_map = worst.detection_map.max((got - want).abs());
                assert!(
                    (got - want).abs() <= 1e-4,
                    "{}: detection map at row {y}, column {}: {got} vs BatDetect2's {want}",
                    s.name,
                    s.crop_x + c
                );
            }
        }
        let plane = outputs.height * outputs.width;
        for peak in wn["peaks"].as_array().expect("peaks") {
            let (x, y) = (
                peak["x"].as_u64().expect("x") as usize,
                peak["y"].as_u64().expect("y") as usize,
            );
            for (c, want) in floats(&peak["logits"]).iter().enumerate() {
                let got = outputs.class_logits[c * plane + y * outputs.width + x];
                worst.logit = worst.logit.max((got - want).abs());
                assert!(
                    (got - want).abs() <= 5e-3,
                    "{}: logit {c} at row {y}, column {x}: {got} vs BatDetect2's {want}",
                    s.name
                );
            }
        }

        // Detections, whole file.
        let found =
            acoupi::detect::batdetect2::postprocess::detections(&outputs, &model.params, 0.0);
        compare_detections(
            &format!("{} (whole file)", s.name),
            &found,
            &want["detections"],
            &mut worst,
        );
        // Chunked.
        let chunked = model
            .detect_audio(&audio, true, f64::from(s.rate) / 2.0)
            .expect("the chunked path runs");
        compare_detections(
            &format!("{} (3 s chunks)", s.name),
            &chunked,
            &want["chunked"],
            &mut worst,
        );
    }
    eprintln!("largest differences from BatDetect2 1.3.1: {worst:#?}");
}

#[test]
fn the_detector_reads_wav_files_and_maps_detections_to_events() {
    let reference = reference();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = camino::Utf8Path::from_path(dir.path()).expect("utf-8 temp dir");
    let s = signal("calls_384k");
    let wav = write_wav(dir, &s);
    let detector = Batdetect2::new(Settings {
        model: Some(model()),
        chunked: false,
    });
    let events = detector.detect(&wav, 1.0).expect("detects");
    let want: Vec<&Value> = kept(&reference, &s.name);
    let got: Vec<_> = events.iter().filter(|e| e.score >= 0.2).collect();
    assert_eq!(got.len(), want.len(), "{got:#?} vs {want:#?}");
    for (e, w) in got.iter().zip(want) {
        assert!((e.start_s - f(&w["start_time"])).abs() <= 0.001);
        assert!((e.score - f(&w["det_prob"])).abs() <= 0.01);
        assert_eq!(e.tags.len(), 1);
        assert_eq!(e.tags[0].key, "species");
        assert_eq!(e.tags[0].value, w["class"].as_str().expect("class"));
        assert!((e.tags[0].score - f(&w["class_prob"])).abs() <= 0.01);
    }

    // Time expansion scales the real rate: the 3 s signal's samples in a file whose header
    // says 25.6 kHz, with a factor of 10, are real 256 kHz audio again, and give BatDetect2's
    // detections of the signal.
    let s = signal("calls_3s");
    let path = dir.join("expanded.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: s.rate / 10,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create");
    for v in synthesise(&s) {
        w.write_sample(v).expect("write");
    }
    w.finalize().expect("finish");
    let events = detector.detect(&path, 10.0).expect("detects");
    let want = kept(&reference, "calls_3s").len();
    assert_eq!(events.iter().filter(|e| e.score >= 0.2).count(), want);
}

#[test]
fn a_missing_model_fails_every_request_with_the_install_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = camino::Utf8Path::from_path(dir.path()).expect("utf-8 temp dir");
    let s = &signals()[0];
    let wav = write_wav(dir, s);
    let detector = Batdetect2::new(Settings {
        model: Some(dir.join("nowhere.pth.tar")),
        chunked: false,
    });
    for _ in 0..2 {
        let err = detector.detect(&wav, 1.0).expect_err("no model");
        let text = err.to_string();
        assert!(text.contains("acoupi models install batdetect2"), "{text}");
        assert!(text.contains("nowhere.pth.tar"), "{text}");
    }
}

#[test]
fn bench_detect_reports_the_model_load_its_memory_and_the_time_per_file() {
    let reference = reference();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = camino::Utf8Path::from_path(dir.path()).expect("utf-8 temp dir");
    let s = signal("calls_3s");
    let wav = write_wav(dir, &s);
    let manifest = common::write(
        dir,
        "acoupi.kdl",
        format!(
            "program \"p\"\nmicrophone \"m\" {{ synthetic \"sweep\"; samplerate \"256kHz\" }}\n\
             detector \"bats\" kind=\"batdetect2\" {{ model \"{}\"; threshold 0.2 }}\n",
            model()
        ),
    );
    let home = dir.join("home");
    let out = common::run(&["build", manifest.as_str(), "--home", home.as_str()]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let out = common::run(&[
        "--home",
        home.as_str(),
        "bench",
        "detect",
        wav.as_str(),
        "--runs",
        "1",
    ]);
    assert_eq!(common::code(&out), 0, "{}", common::stderr(&out));
    let text = common::stdout(&out);
    let header = text
        .lines()
        .find(|l| l.starts_with("detector `bats`: model loaded in "))
        .unwrap_or_else(|| panic!("no model figures:\n{text}"));
    let sizes = common::mib_figures(header);
    // The network's weights (7.6 MB of checkpoint) are resident once it is loaded.
    assert_eq!(sizes.len(), 2, "{header}");
    assert!(sizes[1] > sizes[0] + 5.0, "{header}");
    let want = kept(&reference, "calls_3s").len();
    assert!(
        text.lines().any(|l| l.contains("median")
            && l.ends_with(&format!("; {want} detection(s) at threshold 0.2"))),
        "{text}"
    );
}
