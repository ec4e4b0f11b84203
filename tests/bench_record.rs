//! Continuous-recording benchmark (run it with `scripts/bench-record`): the rotator consumes
//! a 384 kHz mono 16-bit counter source paced in real time, like a capture device, cutting
//! 10 s files, for `ACOUPI_BENCH_SECONDS` seconds (default 60).
//!
//! In: the environment (`ACOUPI_BENCH_SECONDS`; `ACOUPI_BENCH_DIR`, where the files go, a
//! temporary directory when unset). Out: figures on stderr — CPU time of the recording
//! thread and of the whole process (from `/proc`, in clock ticks of 10 ms), peak RSS
//! (`VmHWM`), files and frames written — and one kept file, named on the last line, for
//! `sox --info`. It asserts that the files are gapless: each continues the counter where
//! the previous one stopped, and together they hold every frame once.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use acoupi::audio::record::{RecordPlan, Recorded, Rotator};
use acoupi::audio::{AudioError, Format, Source};
use acoupi::spec::SampleFormat;
use camino::Utf8PathBuf;

const RATE: u32 = 384_000;
/// Frames per read: 10 ms, a typical capture period.
const PERIOD: usize = 3_840;
/// `/proc` CPU times are in USER_HZ ticks, fixed at 100 per second on Linux.
const TICK_S: f64 = 0.01;

/// Sample `k` is `k` wrapped into the i16 range; each read blocks until its samples "exist"
/// on the wall clock, as a capture device does.
struct PacedCounter {
    next: u64,
    limit: u64,
    opened: Instant,
}

impl Source for PacedCounter {
    fn format(&self) -> Format {
        Format {
            samplerate: RATE,
            channels: 1,
            sample_format: SampleFormat::I16,
        }
    }

    fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
        let n = (self.limit - self.next).min(buf.len().min(PERIOD) as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let due = Duration::from_nanos((self.next + n as u64) * 1_000_000_000 / u64::from(RATE));
        if let Some(wait) = due.checked_sub(self.opened.elapsed()) {
            std::thread::sleep(wait);
        }
        for (i, s) in buf[..n].iter_mut().enumerate() {
            *s = i32::from((self.next + i as u64) as u16 as i16);
        }
        self.next += n as u64;
        Ok(n)
    }
}

/// User plus system CPU seconds from a `/proc/.../stat` file.
fn cpu_seconds(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).expect("procfs is mounted");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let rest = &text[text.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 * TICK_S
}

/// Peak resident set size of the process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is mounted");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Checks one 16-bit mono file continues the counter at `first`; returns the next value.
fn check_file(rec: &Recorded, first: u16) -> u16 {
    let mut reader = hound::WavReader::open(&rec.path).expect("hound reads the file");
    assert_eq!(u64::from(reader.duration()), rec.frames, "{}", rec.path);
    let mut expect = first;
    for s in reader.samples::<i16>() {
        let got = s.expect("sample") as u16;
        assert_eq!(got, expect, "{}", rec.path);
        expect = expect.wrapping_add(1);
    }
    expect
}

#[test]
#[ignore = "benchmark: prints figures; run with scripts/bench-record"]
fn bench_continuous_recording() {
    let seconds: u64 = std::env::var("ACOUPI_BENCH_SECONDS")
        .ok()
        .map(|s| s.parse().expect("ACOUPI_BENCH_SECONDS is a whole number"))
        .unwrap_or(60);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = match std::env::var("ACOUPI_BENCH_DIR") {
        Ok(d) => Utf8PathBuf::from(d),
        Err(_) => Utf8PathBuf::try_from(tmp.path().to_path_buf()).expect("UTF-8 path"),
    };
    let total = u64::from(RATE) * seconds;
    let plan = RecordPlan {
        staging: dir.join("staging"),
        recordings: dir.join("recordings"),
        duration_frames: u64::from(RATE) * 10,
        min_free_bytes: 64 << 20,
        time_expansion: 1.0,
        serial: "bench".into(),
        location: None,
        timezone: "UTC".into(),
        start: None,
    };

    // Files are checked (and all but one removed) on another thread, so that the recording
    // thread's CPU time is the recorder's alone.
    let (tx, rx) = mpsc::channel::<Recorded>();
    let checker = std::thread::spawn(move || {
        let mut next = 0u16;
        let mut frames = 0u64;
        let mut files = 0u64;
        let mut kept = None;
        for rec in rx {
            next = check_file(&rec, next);
            frames += rec.frames;
            files += 1;
            if kept.is_none() && rec.frames == u64::from(RATE) * 10 {
                kept = Some(rec.path.clone());
            } else {
                std::fs::remove_file(&rec.path).expect("remove a checked file");
            }
        }
        (files, frames, next, kept)
    });

    let mut source = PacedCounter {
        next: 0,
        limit: total,
        opened: Instant::now(),
    };
    let mut rotator = Rotator::new(plan);
    let cpu_before = cpu_seconds("/proc/thread-self/stat");
    let started = Instant::now();
    rotator
        .run(
            &mut source,
            || false,
            |rec| {
                tx.send(rec).expect("checker alive");
                std::ops::ControlFlow::Continue(())
            },
        )
        .expect("the rotator runs");
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("/proc/thread-self/stat") - cpu_before;
    drop(tx);
    let (files, frames, next, kept) = checker.join().expect("checker thread");
    let process_cpu = cpu_seconds("/proc/self/stat");

    assert_eq!(frames, total, "every frame written once");
    assert_eq!(next, total as u16, "the counter continues across files");
    assert_eq!(rotator.frames(), total);

    eprintln!("audio:               {seconds} s at {RATE} Hz, mono, 16-bit, 10 s files");
    eprintln!("files:               {files} ({frames} frames, gapless)");
    eprintln!("wall time:           {wall:.2} s");
    eprintln!(
        "recorder CPU:        {cpu:.2} s ({:.2} % of one core)",
        100.0 * cpu / wall
    );
    eprintln!("process CPU (total): {process_cpu:.2} s, checking the files included");
    eprintln!("peak RSS:            {} KiB", peak_rss_kib());
    if let Some(path) = kept
        && std::env::var("ACOUPI_BENCH_DIR").is_ok()
    {
        eprintln!("kept file:           {path}");
    }
}
