//! BatDetect2 test material: the installed checkpoint and the synthetic test signals of
//! `tests/detectors/batdetect2/signals.json`, made sample for sample as `make_fixtures.py`
//! makes them.

use camino::{Utf8Path, Utf8PathBuf};

/// BatDetect2 1.3.1's checkpoint, where `scripts/test` installs it (or where
/// `ACOUPI_BATDETECT2_MODEL` says); fails the test with the command that installs it.
pub(crate) fn model() -> Utf8PathBuf {
    if let Ok(p) = std::env::var("ACOUPI_BATDETECT2_MODEL") {
        return p.into();
    }
    let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/models/batdetect2/Net2DFast_UK_same.pth.tar");
    assert!(
        path.is_file(),
        "no BatDetect2 model at {path}: run `scripts/test`, or in the crate root \
         `XDG_DATA_HOME=$PWD/target/xdg cargo run -- models install batdetect2 --dir target/models/batdetect2`, \
         or set ACOUPI_BATDETECT2_MODEL"
    );
    path
}

/// The folder of the fixtures.
pub(crate) fn fixtures() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/detectors/batdetect2")
}

/// One test signal's description.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Signal {
    pub(crate) name: String,
    pub(crate) rate: u32,
    pub(crate) duration_s: f64,
    pub(crate) noise: f64,
    pub(crate) seed: u64,
    pub(crate) calls: Vec<Call>,
    pub(crate) crop_x: usize,
    pub(crate) crop_width: usize,
}

/// A linear FM sweep under a Hann envelope.
#[derive(Debug, Clone, serde::Deserialize)]
pub(crate) struct Call {
    pub(crate) t0: f64,
    pub(crate) dur: f64,
    pub(crate) f0: f64,
    pub(crate) f1: f64,
    pub(crate) amp: f64,
}

/// The signals of `signals.json`.
pub(crate) fn signals() -> Vec<Signal> {
    #[derive(serde::Deserialize)]
    struct File {
        signals: Vec<Signal>,
    }
    let text = std::fs::read_to_string(fixtures().join("signals.json")).expect("signals.json");
    serde_json::from_str::<File>(&text)
        .expect("signals.json parses")
        .signals
}

/// The signal's 16-bit samples: uniform noise from a 32-bit LCG plus the sweeps, in `f64`,
/// quantised with `floor(x × 32767 + 0.5)`.
pub(crate) fn synthesise(s: &Signal) -> Vec<i16> {
    let n = (s.duration_s * f64::from(s.rate)).round() as usize;
    let mut state = (s.seed & 0xFFFF_FFFF) as u32;
    let mut x: Vec<f64> = (0..n)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (2.0 * (f64::from(state) / 4_294_967_296.0) - 1.0) * s.noise
        })
        .collect();
    let rate = f64::from(s.rate);
    for c in &s.calls {
        let start = (c.t0 * rate).round() as usize;
        let length = (c.dur * rate).round() as usize;
        for i in 0..length {
            if start + i >= n {
                break;
            }
            let t = i as f64 / rate;
            let phase =
                2.0 * std::f64::consts::PI * (c.f0 * t + (c.f1 - c.f0) * t * t / (2.0 * c.dur));
            let env = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / length as f64).cos();
            x[start + i] += c.amp * env * phase.sin();
        }
    }
    x.iter()
        .map(|v| {
            (v.clamp(-1.0, 1.0) * 32767.0 + 0.5)
                .floor()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// The samples as BatDetect2 reads a 16-bit file: each divided by 32768.
pub(crate) fn as_float(samples: &[i16]) -> Vec<f32> {
    samples.iter().map(|s| f32::from(*s) / 32768.0).collect()
}

/// Writes the signal as a 16-bit mono WAV file in `dir`.
pub(crate) fn write_wav(dir: &Utf8Path, s: &Signal) -> Utf8PathBuf {
    let path = dir.join(format!("{}.wav", s.name));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: s.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("create the WAV file");
    for v in synthesise(s) {
        w.write_sample(v).expect("write a sample");
    }
    w.finalize().expect("finish the WAV file");
    path
}
