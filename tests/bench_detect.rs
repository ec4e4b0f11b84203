//! Band-energy detector benchmarks; run them with
//! `cargo test --release --test bench_detect -- --ignored --nocapture`.
//!
//! In: nothing (recordings are generated into a temporary directory: 384 kHz mono 16-bit,
//! white noise with a 5 ms 80→30 kHz sweep every 100 ms). Out: figures on stderr — wall time
//! of `BandEnergy::detect` (median of several runs, 20–120 kHz band, 10 ms frames, 50%
//! overlap) and peak memory. Peak memory is the `VmHWM` of a child process (this test binary
//! run again on one benchmark) that does nothing but open the file and detect: its `VmHWM`
//! before detecting is the test harness's baseline, and the growth over it is the detector's.
//! The parent generates the file, which would otherwise count.

use std::io::Write;
use std::time::Instant;

use acoupi::detect::band_energy::{BandEnergy, Settings};
use camino::{Utf8Path, Utf8PathBuf};

const RATE: u32 = 384_000;
/// The environment variable that makes a benchmark the measured child: the file to analyse.
const CHILD_FILE: &str = "ACOUPI_BENCH_DETECT_FILE";

fn settings() -> Settings {
    Settings {
        low_hz: 20_000.0,
        high_hz: 120_000.0,
        frame_s: 0.01,
        overlap: 0.5,
    }
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is mounted");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Writes `seconds` of the benchmark recording to `path`, one second at a time (the test
/// process never holds the whole recording).
fn generate(path: &Utf8Path, seconds: u64) {
    let rate = u64::from(RATE);
    let data_bytes = seconds * rate * 2;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create recording"));
    let mut header = Vec::new();
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&((36 + data_bytes) as u32).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&RATE.to_le_bytes());
    header.extend_from_slice(&(RATE * 2).to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&(data_bytes as u32).to_le_bytes());
    f.write_all(&header).expect("write header");
    let call = (rate * 5 / 1000) as usize;
    let period = (rate / 10) as usize;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut second = Vec::with_capacity(rate as usize * 2);
    for _ in 0..seconds {
        second.clear();
        for i in 0..rate as usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let noise = 0.02 * ((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0);
            let pos = i % period;
            let sweep = if pos < call {
                // Exponential 80 -> 30 kHz sweep, Hann envelope.
                let t = pos as f64 / rate as f64;
                let d = call as f64 / rate as f64;
                let k = (30_000.0f64 / 80_000.0).ln();
                let phase = std::f64::consts::TAU * 80_000.0 * d / k * ((k * t / d).exp() - 1.0);
                let env = 0.5 - 0.5 * (std::f64::consts::TAU * pos as f64 / call as f64).cos();
                0.5 * env * phase.sin()
            } else {
                0.0
            };
            let s = ((noise + sweep) * 32_767.0).round() as i16;
            second.extend_from_slice(&s.to_le_bytes());
        }
        f.write_all(&second).expect("write samples");
    }
    f.flush().expect("flush recording");
}

/// In the child: detects on the file named by [`CHILD_FILE`] and prints the peak RSS before
/// and after. In the parent: runs this benchmark again as the child on `path`; returns
/// (baseline KiB, peak KiB, events).
fn measure_in_child(test: &str, path: &Utf8Path) -> Option<(u64, u64, usize)> {
    if let Ok(file) = std::env::var(CHILD_FILE) {
        let before = peak_rss_kib();
        let events = BandEnergy::new(settings())
            .detect(Utf8Path::new(&file), 1.0)
            .expect("detect");
        let after = peak_rss_kib();
        println!("CHILD {before} {after} {}", events.len());
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_FILE, path)
        .output()
        .expect("run the child benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, figures)| figures))
        .unwrap_or_else(|| panic!("child printed no figures: {stdout}"));
    let v: Vec<u64> = line
        .split(' ')
        .map(|x| x.parse().expect("number"))
        .collect();
    Some((v[0], v[1], v[2] as usize))
}

/// Median wall time of `runs` detections, seconds, and the events of the last one.
fn time(path: &Utf8Path, runs: usize) -> (f64, usize) {
    let detector = BandEnergy::new(settings());
    let mut times = Vec::with_capacity(runs);
    let mut events = 0;
    for _ in 0..runs {
        let t = Instant::now();
        events = detector.detect(path, 1.0).expect("detect").len();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[runs / 2], events)
}

fn temp_wav(dir: &tempfile::TempDir, name: &str) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(dir.path().join(name)).expect("utf-8 temp dir")
}

#[test]
#[ignore = "benchmark"]
fn band_energy_10s_384khz() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = temp_wav(&dir, "10s.wav");
    if std::env::var(CHILD_FILE).is_err() {
        generate(&path, 10);
    }
    let Some((base, peak, events)) = measure_in_child("band_energy_10s_384khz", &path) else {
        return;
    };
    // One warm-up run (page cache, FFT plan), then the median of 11.
    let _ = time(&path, 1);
    let (median, timed_events) = time(&path, 11);
    assert_eq!(events, timed_events);
    eprintln!(
        "band-energy, 10 s at 384 kHz mono 16-bit (20-120 kHz, 10 ms frames, 50% overlap): \
         median {:.1} ms of 11 runs; {events} events; peak RSS {:.1} MiB, {:.1} MiB over the \
         {:.1} MiB baseline of the test process",
        median * 1e3,
        peak as f64 / 1024.0,
        peak.saturating_sub(base) as f64 / 1024.0,
        base as f64 / 1024.0,
    );
}

#[test]
#[ignore = "benchmark"]
fn band_energy_1h_384khz_streams() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = temp_wav(&dir, "1h.wav");
    let short = temp_wav(&dir, "1min.wav");
    if std::env::var(CHILD_FILE).is_err() {
        generate(&short, 60);
        generate(&path, 3600);
    }
    let Some((short_base, short_peak, _)) =
        measure_in_child("band_energy_1h_384khz_streams", &short)
    else {
        return;
    };
    let t = Instant::now();
    let (base, peak, events) =
        measure_in_child("band_energy_1h_384khz_streams", &path).expect("parent");
    let wall = t.elapsed().as_secs_f64();
    eprintln!(
        "band-energy, 1 h at 384 kHz mono 16-bit (2.6 GiB file): {wall:.1} s in the child \
         process ({:.0}x real time); {events} events; peak RSS growth {:.1} MiB (1 min of the \
         same: {:.1} MiB)",
        3600.0 / wall,
        peak.saturating_sub(base) as f64 / 1024.0,
        short_peak.saturating_sub(short_base) as f64 / 1024.0,
    );
}
