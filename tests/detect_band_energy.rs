//! The band-energy detector on synthetic recordings written as real WAV files: bat-like sweeps
//! in noise are found where they are; steady sounds (noise, hum, tones) are not detections;
//! degenerate files do not panic; time-expanded files give real times and frequencies.

use acoupi::audio::synthetic::{Pacing, Synthetic};
use acoupi::audio::{Format, Source};
use acoupi::detect::band_energy::{BandEnergy, Settings};
use acoupi::detect::{DetectError, Event};
use acoupi::spec::{SampleFormat, Signal};
use camino::{Utf8Path, Utf8PathBuf};

const RATE: u32 = 384_000;
const THRESHOLD: f64 = 0.5;

fn bats(frame_s: f64) -> Settings {
    Settings {
        low_hz: 20_000.0,
        high_hz: 120_000.0,
        frame_s,
        overlap: 0.5,
    }
}

/// Writes `samples` (mono, full scale ±1) as a 16-bit WAV file with header rate `rate`.
fn write(dir: &tempfile::TempDir, name: &str, rate: u32, samples: &[f32]) -> Utf8PathBuf {
    let path = Utf8PathBuf::from_path_buf(dir.path().join(name)).expect("utf-8 temp dir");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create wav");
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32_767.0).round() as i16)
            .expect("write sample");
    }
    w.finalize().expect("finalize wav");
    path
}

/// `len` samples of a synthetic `signal` at `rate`, full scale ±1.
fn generate(signal: &Signal, rate: u32, len: usize) -> Vec<f32> {
    let format = Format {
        samplerate: rate,
        channels: 1,
        sample_format: SampleFormat::F32,
    };
    let mut src = Synthetic::new(signal, format, Pacing::AsFastAsPossible);
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0; 8192];
    while out.len() < len {
        let want = (len - out.len()).min(buf.len());
        let n = src.read(&mut buf[..want]).expect("synthetic read");
        // F32 travels in the 24-bit range.
        out.extend(buf[..n].iter().map(|v| *v as f32 / 8_388_608.0));
    }
    out
}

/// Uniform white noise of peak `amplitude` (xorshift, deterministic per `seed`).
fn white(len: usize, amplitude: f32, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            amplitude * (2.0 * u as f32 - 1.0)
        })
        .collect()
}

/// Pink (1/f) noise: white noise through a sum of first-order low-passes an octave apart.
fn pink(len: usize, amplitude: f32) -> Vec<f32> {
    let w = white(len, 1.0, 99);
    let poles: Vec<f32> = (0..12).map(|k| 1.0 - 0.5f32.powi(k)).collect();
    let mut state = vec![0.0f32; poles.len()];
    let raw: Vec<f32> = w
        .iter()
        .map(|x| {
            let mut sum = 0.0;
            for (s, p) in state.iter_mut().zip(&poles) {
                *s = p * *s + (1.0 - p) * x * (1.0 / (1.0 - p)).sqrt();
                sum += *s;
            }
            sum
        })
        .collect();
    let peak = raw.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    raw.iter().map(|v| v / peak * amplitude).collect()
}

fn add(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn sine(len: usize, rate: u32, hz: f64, amplitude: f32) -> Vec<f32> {
    (0..len)
        .map(|i| amplitude * (std::f64::consts::TAU * hz * i as f64 / f64::from(rate)).sin() as f32)
        .collect()
}

fn detect(path: &Utf8Path, settings: Settings, te: f64) -> Vec<Event> {
    BandEnergy::new(settings)
        .detect(path, te)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn kept(events: &[Event]) -> Vec<&Event> {
    events.iter().filter(|e| e.score >= THRESHOLD).collect()
}

/// One second at 384 kHz: white noise of peak 0.02 and a 5 ms sweep from 80 to 30 kHz
/// (peak 0.5) every 100 ms from 23 ms on. Returns the samples and the calls' (start, end).
fn sweeps_in_noise(rate: u32) -> (Vec<f32>, Vec<(f64, f64)>) {
    let len = rate as usize;
    let offset = rate as usize * 23 / 1000;
    let calls = generate(
        &Signal::Sweep {
            from_hz: 80_000,
            to_hz: 30_000,
            length_ms: 5,
            every_ms: 100,
            amplitude: 0.5,
        },
        rate,
        len - offset,
    );
    let mut samples = white(len, 0.02, 7);
    add(&mut samples[offset..], &calls);
    let truth = (0..10)
        .map(|k| {
            let start = 0.023 + 0.1 * f64::from(k);
            (start, start + 0.005)
        })
        .collect();
    (samples, truth)
}

#[test]
fn sweeps_in_noise_are_found_where_they_are() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, truth) = sweeps_in_noise(RATE);
    let path = write(&dir, "sweeps.wav", RATE, &samples);
    for frame_s in [0.001, 0.002, 0.01] {
        let events = detect(&path, bats(frame_s), 1.0);
        let found = kept(&events);
        assert_eq!(found.len(), truth.len(), "frame {frame_s}: {found:#?}");
        for (e, (start, end)) in found.iter().zip(&truth) {
            assert!(
                e.start_s <= *start + 1e-9 && e.start_s >= start - frame_s,
                "frame {frame_s}: start {} vs {start}",
                e.start_s
            );
            assert!(
                e.end_s >= end - 1e-9 && e.end_s <= end + frame_s,
                "frame {frame_s}: end {} vs {end}",
                e.end_s
            );
            assert!(
                (25_000.0..=40_000.0).contains(&e.low_hz),
                "frame {frame_s}: low {}",
                e.low_hz
            );
            assert!(
                (65_000.0..=90_000.0).contains(&e.high_hz),
                "frame {frame_s}: high {}",
                e.high_hz
            );
            assert!(e.score > 0.9 && e.score <= 1.0, "score {}", e.score);
            assert!(e.tags.is_empty());
        }
    }
}

#[test]
fn steady_sounds_are_not_detections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let len = RATE as usize;
    let noise = white(len, 0.001, 3);
    let with_noise = |mut v: Vec<f32>| {
        add(&mut v, &noise);
        v
    };
    let mut hum = vec![0.0; len];
    for h in 1..=20 {
        add(
            &mut hum,
            &sine(len, RATE, 50.0 * f64::from(h), 0.3 / h as f32),
        );
    }
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("white", white(len, 0.5, 11)),
        ("pink", pink(len, 0.5)),
        ("silence", vec![0.0; len]),
        (
            "tone-below-band",
            with_noise(sine(len, RATE, 10_000.0, 0.9)),
        ),
        ("tone-in-band", with_noise(sine(len, RATE, 41_000.0, 0.5))),
        ("dc-offset", with_noise(vec![0.4; len])),
        ("hum", with_noise(hum)),
    ];
    for (name, samples) in cases {
        let path = write(&dir, &format!("{name}.wav"), RATE, &samples);
        let narrow = |frame_s| Settings {
            low_hz: 40_000.0,
            high_hz: 42_000.0,
            frame_s,
            overlap: 0.9,
        };
        for settings in [bats(0.001), bats(0.01), narrow(0.001), narrow(0.01)] {
            let frame_s = settings.frame_s;
            let events = detect(&path, settings, 1.0);
            let found = kept(&events);
            assert!(found.is_empty(), "{name}, frame {frame_s}: {found:#?}");
            for e in &events {
                assert!(
                    e.score > 0.0 && e.score < THRESHOLD && e.start_s < e.end_s,
                    "{name}: {e:?}"
                );
            }
        }
    }
}

#[test]
fn degenerate_files_do_not_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (sweeps, _) = sweeps_in_noise(RATE);
    let clipped: Vec<f32> = sweeps.iter().map(|s| (s * 8.0).clamp(-1.0, 1.0)).collect();
    let path = write(&dir, "clipped.wav", RATE, &clipped);
    assert!(
        !kept(&detect(&path, bats(0.002), 1.0)).is_empty(),
        "clipped calls are still calls"
    );
    for (name, samples) in [
        ("one-sample", vec![0.5]),
        ("empty", vec![]),
        ("short", white(100, 0.5, 5)),
        ("short-silence", vec![0.0; 3000]),
    ] {
        let path = write(&dir, &format!("{name}.wav"), RATE, &samples);
        assert!(kept(&detect(&path, bats(0.01), 1.0)).is_empty(), "{name}");
        assert!(kept(&detect(&path, bats(0.001), 1.0)).is_empty(), "{name}");
    }
    let garbage = Utf8PathBuf::from_path_buf(dir.path().join("garbage.wav")).expect("utf-8");
    std::fs::write(&garbage, b"not a wav file at all").expect("write");
    match BandEnergy::new(bats(0.01)).detect(&garbage, 1.0) {
        Err(DetectError::Unreadable(m)) => assert!(m.contains("garbage.wav"), "{m}"),
        other => panic!("garbage: {other:?}"),
    }
    let low_rate = write(&dir, "low-rate.wav", 22_050, &white(22_050, 0.1, 1));
    match BandEnergy::new(bats(0.01)).detect(&low_rate, 1.0) {
        Err(DetectError::Refused(m)) => {
            assert!(m.contains("Nyquist") && m.contains("low-rate.wav"), "{m}")
        }
        other => panic!("band above Nyquist: {other:?}"),
    }
    match BandEnergy::new(bats(0.01)).detect(&path, 0.0) {
        Err(DetectError::Refused(m)) => assert!(m.contains("time expansion"), "{m}"),
        other => panic!("time expansion 0: {other:?}"),
    }
}

#[test]
fn time_expanded_files_give_real_times_and_frequencies() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, truth) = sweeps_in_noise(RATE);
    let real = write(&dir, "real.wav", RATE, &samples);
    // The same samples with a header rate ten times lower: a time-expanded recording.
    let expanded = write(&dir, "te10.wav", RATE / 10, &samples);
    let a = detect(&real, bats(0.002), 1.0);
    let b = detect(&expanded, bats(0.002), 10.0);
    assert_eq!(kept(&b).len(), truth.len());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        for (u, v) in [
            (x.start_s, y.start_s),
            (x.end_s, y.end_s),
            (x.low_hz, y.low_hz),
            (x.high_hz, y.high_hz),
            (x.score, y.score),
        ] {
            assert!((u - v).abs() <= 1e-9 * u.abs().max(1.0), "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn calls_in_one_channel_of_a_stereo_file_are_found() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (samples, truth) = sweeps_in_noise(RATE);
    let quiet = white(samples.len(), 0.02, 8);
    let path = Utf8PathBuf::from_path_buf(dir.path().join("stereo.wav")).expect("utf-8");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create");
    for (l, r) in samples.iter().zip(&quiet) {
        w.write_sample(*l).expect("write");
        w.write_sample(*r).expect("write");
    }
    w.finalize().expect("finalize");
    assert_eq!(kept(&detect(&path, bats(0.002), 1.0)).len(), truth.len());
}
