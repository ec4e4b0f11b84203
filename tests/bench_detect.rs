//! Detector benchmarks; run them with
//! `cargo test --release --test bench_detect -- --ignored --nocapture`.
//!
//! Band energy. In: nothing (recordings are generated into a temporary directory: 384 kHz
//! mono 16-bit, white noise with a 5 ms 80→30 kHz sweep every 100 ms). Out: figures on
//! stderr — wall time of `BandEnergy::detect` (median of several runs, 20–120 kHz band, 10 ms
//! frames, 50% overlap) and peak memory. Peak memory is the `VmHWM` of a child process (this
//! test binary run again on one benchmark) that does nothing but open the file and detect:
//! its `VmHWM` before detecting is the test harness's baseline, and the growth over it is the
//! detector's. The parent generates the file, which would otherwise count.
//!
//! BatDetect2 (`batdetect2_3s_256khz`). In: the installed checkpoint (as the equivalence
//! tests find it) and the 3 s, 256 kHz test signal `calls_3s`. Out: for the native detector,
//! in a child process with 1 and with 2 threads: model load time, RSS with the model loaded,
//! the median time per recording and the peak RSS; beside it the Python adapter's figures
//! (import-and-load time, RSS, time per recording through `load_audio`,
//! `generate_spectrogram`, `process_spectrogram`) when a Python with `batdetect2` is given
//! in `ACOUPI_BATDETECT2_PYTHON` or installed by `scripts/install-batdetect2`.

use std::io::Write;
use std::time::Instant;

mod common;

use acoupi::detect::band_energy::{BandEnergy, Settings};
use acoupi::detect::batdetect2::{Batdetect2, Model};
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

/// The environment variable that makes the BatDetect2 benchmark the measured child: the file.
const BD2_CHILD_FILE: &str = "ACOUPI_BENCH_BD2_FILE";
/// Recordings timed per run.
const BD2_RUNS: usize = 5;

/// Current resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is mounted");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The figures of one native run: load seconds, RSS before loading, RSS with the model
/// loaded, median seconds per recording, peak RSS (KiB), detections scoring 0.2 or more.
#[derive(Debug)]
struct Bd2Figures {
    load_s: f64,
    base_kib: u64,
    loaded_kib: u64,
    median_s: f64,
    peak_kib: u64,
    detections: usize,
}

/// In the child: loads the model, times it on the file and prints the figures. In the
/// parent: runs the child with `threads` threads.
fn bd2_in_child(path: &Utf8Path, threads: usize) -> Option<Bd2Figures> {
    if let Ok(file) = std::env::var(BD2_CHILD_FILE) {
        let base = rss_kib();
        let t = Instant::now();
        let model = Model::load(&common::batdetect2::model()).expect("the model loads");
        let load = t.elapsed().as_secs_f64();
        let loaded = rss_kib();
        drop(model);
        // The detector as a worker holds it: loaded once, then one request per recording.
        let detector = Batdetect2::new(acoupi::detect::batdetect2::Settings {
            model: Some(common::batdetect2::model()),
            chunked: false,
        });
        detector.model().expect("the model loads");
        let file = Utf8Path::new(&file);
        let _ = detector.detect(file, 1.0).expect("detects");
        let mut times = Vec::new();
        let mut detections = 0;
        for _ in 0..BD2_RUNS {
            let t = Instant::now();
            let events = detector.detect(file, 1.0).expect("detects");
            times.push(t.elapsed().as_secs_f64());
            detections = events.iter().filter(|e| e.score >= 0.2).count();
        }
        times.sort_by(f64::total_cmp);
        println!(
            "CHILD {load} {base} {loaded} {} {} {detections}",
            times[BD2_RUNS / 2],
            peak_rss_kib()
        );
        return None;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "batdetect2_3s_256khz",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(BD2_CHILD_FILE, path)
        .env("RAYON_NUM_THREADS", threads.to_string())
        .output()
        .expect("run the child benchmark");
    let v = printed_figures(&out, "CHILD ", "the child benchmark");
    Some(Bd2Figures {
        load_s: v[0],
        base_kib: v[1] as u64,
        loaded_kib: v[2] as u64,
        median_s: v[3],
        peak_kib: v[4] as u64,
        detections: v[5] as usize,
    })
}

/// The numbers of the line of `out`'s standard output that starts with `prefix` (after it),
/// which `who` printed; its whole output in the panic when there is none.
fn printed_figures(out: &std::process::Output, prefix: &str, who: &str) -> Vec<f64> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout
        .lines()
        .find_map(|l| l.split_once(prefix).map(|(_, v)| v))
    else {
        panic!(
            "{who} printed no figures: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    line.split(' ')
        .map(|x| x.parse().expect("number"))
        .collect()
}

/// A Python with `batdetect2`: `ACOUPI_BATDETECT2_PYTHON`, else the venv
/// `scripts/install-batdetect2` makes, when there.
fn batdetect2_python() -> Option<Utf8PathBuf> {
    if let Ok(p) = std::env::var("ACOUPI_BATDETECT2_PYTHON") {
        return Some(p.into());
    }
    let data = std::env::var("XDG_DATA_HOME")
        .ok()
        .map(Utf8PathBuf::from)
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| Utf8PathBuf::from(h).join(".local/share"))
        })?;
    let python = data.join("acoupi/batdetect2/bin/python");
    python.is_file().then_some(python)
}

/// The Python adapter's figures, measured by its own interpreter.
const PYTHON_BENCH: &str = r#"
import sys, time, resource
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
base = rss()
t = time.perf_counter()
import batdetect2.api as api
load = time.perf_counter() - t
loaded = rss()
path, runs = sys.argv[1], int(sys.argv[2])
def detect():
    audio = api.load_audio(path)
    spec = api.generate_spectrogram(audio)
    found, _ = api.process_spectrogram(spec)
    return found
detect()
times = []
for _ in range(runs):
    t = time.perf_counter()
    found = detect()
    times.append(time.perf_counter() - t)
times.sort()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PY", load, base, loaded, times[runs // 2], peak, sum(1 for d in found if d["det_prob"] >= 0.2))
"#;

#[test]
#[ignore = "benchmark"]
fn batdetect2_3s_256khz() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dir_path = Utf8Path::from_path(dir.path()).expect("utf-8 temp dir");
    let signal = common::batdetect2::signals()
        .into_iter()
        .find(|s| s.name == "calls_3s")
        .expect("the 3 s test signal");
    let path = dir_path.join("calls_3s.wav");
    if std::env::var(BD2_CHILD_FILE).is_err() {
        common::batdetect2::write_wav(dir_path, &signal);
    }
    let Some(one) = bd2_in_child(&path, 1) else {
        return;
    };
    let two = bd2_in_child(&path, 2).expect("parent");
    for (threads, f) in [(1, &one), (2, &two)] {
        eprintln!(
            "batdetect2 native, 3 s at 256 kHz, {threads} thread(s): model load {:.1} ms; RSS \
             {:.1} MiB with the model loaded ({:.1} MiB over the {:.1} MiB test process); median \
             {:.0} ms per recording of {BD2_RUNS}; peak RSS {:.1} MiB; {} detections >= 0.2",
            f.load_s * 1e3,
            f.loaded_kib as f64 / 1024.0,
            f.loaded_kib.saturating_sub(f.base_kib) as f64 / 1024.0,
            f.base_kib as f64 / 1024.0,
            f.median_s * 1e3,
            f.peak_kib as f64 / 1024.0,
            f.detections,
        );
    }
    let Some(python) = batdetect2_python() else {
        eprintln!(
            "batdetect2 Python adapter: not installed (set ACOUPI_BATDETECT2_PYTHON or run \
             scripts/install-batdetect2 to compare)"
        );
        return;
    };
    let out = std::process::Command::new(&python)
        .args(["-c", PYTHON_BENCH, path.as_str(), &BD2_RUNS.to_string()])
        .output()
        .expect("run the Python benchmark");
    let v = printed_figures(&out, "PY ", "the Python benchmark");
    eprintln!(
        "batdetect2 Python ({python}), same file: import and model load {:.2} s; RSS {:.0} MiB \
         loaded; median {:.0} ms per recording of {BD2_RUNS}; peak RSS {:.0} MiB; {} detections \
         >= 0.2 ({:.1}x the native time with 2 threads)",
        v[0],
        v[2] / 1024.0,
        v[3] * 1e3,
        v[4] / 1024.0,
        v[5],
        v[3] / two.median_s,
    );
}
