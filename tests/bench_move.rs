//! Benchmark of one crash-safe move of a recording from the tmpfs staging directory to disk.
//!
//! In: a 10 s, 384 kHz, 16-bit mono WAV (7.68 MB of samples) staged in `/dev/shm`, and a
//! storage directory on disk (`ACOUPI_BENCH_DIR`, else the system temporary directory). Out:
//! figures on stderr, medians of 20 moves:
//! - `moving::place` + `moving::remove_source`, with every fsync;
//! - the same steps without any fsync (copy to `.part`, keep the mtime, rename, remove),
//!   written here for comparison, after a `sync` so the first series' writeback is done.
//!
//! Run: `cargo test --release --test bench_move -- --ignored --nocapture`. It asserts only
//! that each move left the bytes in storage.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use acoupi::files::moving;
use camino::{Utf8Path, Utf8PathBuf};

const RUNS: usize = 20;
const SAMPLE_RATE: u32 = 384_000;
const SECONDS: u32 = 10;

/// Writes the benchmark recording: pseudo-random 16-bit samples (incompressible, like noise).
fn write_wav(path: &Utf8Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create the WAV");
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..SAMPLE_RATE * SECONDS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.write_sample((x >> 48) as i16).expect("write a sample");
    }
    w.finalize().expect("finish the WAV");
}

/// The crash-safe move's steps without fsyncs: copy to `.part`, keep the mtime, rename,
/// remove the source.
fn move_without_fsync(src: &Utf8Path, dst_dir: &Utf8Path, name: &str) -> Utf8PathBuf {
    std::fs::create_dir_all(dst_dir).expect("create the directory");
    let part = dst_dir.join(format!(".{name}.part"));
    let meta = std::fs::metadata(src).expect("source metadata");
    let mut input = std::fs::File::open(src).expect("open the source");
    let mut out = std::fs::File::create(&part).expect("create the part");
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = input.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).expect("write");
    }
    out.set_modified(meta.modified().expect("mtime"))
        .expect("set the mtime");
    let path = dst_dir.join(name);
    std::fs::rename(&part, &path).expect("rename");
    std::fs::remove_file(src).expect("remove the source");
    path
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[test]
#[ignore = "benchmark: cargo test --release --test bench_move -- --ignored --nocapture"]
fn crash_safe_move_of_a_10_s_384_khz_recording() {
    let staging = tempfile::Builder::new()
        .prefix("acoupi-bench-move-")
        .tempdir_in("/dev/shm")
        .unwrap_or_else(|e| panic!("the benchmark stages on the tmpfs `/dev/shm`: {e}"));
    let stage = Utf8PathBuf::try_from(staging.path().to_path_buf()).expect("utf-8");
    let _guard;
    let storage = match std::env::var("ACOUPI_BENCH_DIR") {
        Ok(dir) => Utf8PathBuf::from(dir).join(format!("bench-move-{}", std::process::id())),
        Err(_) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = Utf8PathBuf::try_from(dir.path().to_path_buf()).expect("utf-8");
            _guard = dir;
            path
        }
    };
    let original = stage.join("original.wav");
    write_wav(&original);
    let size = std::fs::metadata(&original).expect("meta").len();
    let bytes = std::fs::read(&original).expect("read");
    eprintln!("moving {size} bytes from `{stage}` to `{storage}`, {RUNS} runs each");

    let series = |label: &str, crash_safe: bool| {
        let mut times = Vec::with_capacity(RUNS);
        for i in 0..RUNS {
            let src = stage.join("r.wav");
            std::fs::copy(&original, &src).expect("stage the recording");
            let dst_dir = storage.join(format!("{label}/{i:02}"));
            let start = Instant::now();
            let path = if crash_safe {
                let placed = moving::place(&src, &dst_dir, "r.wav").expect("place");
                moving::remove_source(&src).expect("remove the source");
                placed.path
            } else {
                move_without_fsync(&src, &dst_dir, "r.wav")
            };
            times.push(start.elapsed());
            assert_eq!(std::fs::read(&path).expect("read back"), bytes);
            std::fs::remove_file(&path).expect("clean up");
        }
        let (min, max) = (times.iter().min().copied(), times.iter().max().copied());
        let med = median(times);
        eprintln!(
            "{label}: median {} (min {}, max {}), {:.0} MB/s",
            ms(med),
            ms(min.unwrap_or_default()),
            ms(max.unwrap_or_default()),
            size as f64 / med.as_secs_f64() / 1e6
        );
        med
    };
    let safe = series("fsync", true);
    rustix::fs::sync();
    let unsafe_ = series("no-fsync", false);
    eprintln!(
        "the fsyncs cost {} per move ({:.1}x)",
        ms(safe.saturating_sub(unsafe_)),
        safe.as_secs_f64() / unsafe_.as_secs_f64()
    );
    if std::env::var("ACOUPI_BENCH_DIR").is_ok() {
        let _ = std::fs::remove_dir_all(&storage);
    }
}
