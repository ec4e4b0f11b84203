//! `acoupi bench detect [--detector NAME] [--runs N] PATH...`: what a detection worker pays for
//! the home's detectors, measured in this process as the worker would run them: each
//! detector's start-up (the first request, which loads its model, against the median of the
//! rest; for BatDetect2 also the model's own load time), this process's resident memory before
//! the first request and with the detector loaded, and per file the median and best time of
//! `--runs` analyses, then the peak resident memory. BatDetect2 uses as many threads as
//! `RAYON_NUM_THREADS` says, else one per core.
//!
//! A `command` detector runs in processes of its own, whose memory is not this process's:
//! its figures here are the round trips only.

use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

use super::detect::{collect, facts, select};
use crate::ExitStatus;
use crate::cli::BenchDetectArgs;
use crate::detect::{self, Engine, Request};
use crate::spec::Detector;

/// Runs `acoupi bench detect`.
pub fn run(args: &BenchDetectArgs, home_flag: Option<&camino::Utf8Path>) -> ExitStatus {
    // The detection worker's allocator settings, so that its memory is what is measured.
    crate::host::memory::one_arena();
    let (_home, program) = match super::load(home_flag) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let selected = match select(&program, args.detector.as_deref()) {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    if args.runs == 0 {
        return super::fail("--runs must be at least 1");
    }
    let mut files = Vec::new();
    for path in &args.paths {
        if let Err(e) = collect(path, &mut files) {
            return super::fail(e);
        }
    }
    if files.is_empty() {
        return super::fail("no WAV file to analyse in the paths given");
    }
    let requests: Vec<Request> = match files.iter().map(|f| request(f.clone())).collect() {
        Ok(r) => r,
        Err(e) => return super::fail(e),
    };
    let rt = match super::runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    let threads = candle_core::utils::get_num_threads();
    println!("threads for BatDetect2: {threads} (RAYON_NUM_THREADS, else one per core)");
    let ok = rt.block_on(async {
        let mut ok = true;
        for detector in selected {
            if let Err(e) = bench(detector, &requests, args.runs).await {
                eprintln!("error: detector `{}`: {e}", detector.name);
                ok = false;
            }
        }
        ok
    });
    println!("peak RSS of this process: {}", mib(status_kib("VmHWM")));
    if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// The request for `file`, as `acoupi detect` makes it (the threshold is the detector's, set
/// when it runs).
fn request(file: Utf8PathBuf) -> Result<Request, String> {
    let info = crate::audio::wav_reader::probe(&file).map_err(|e| e.to_string())?;
    let facts = facts(&file);
    let samplerate = (f64::from(info.samplerate) * facts.time_expansion).round() as u32;
    let duration_s = if info.samplerate == 0 {
        0.0
    } else {
        info.frames as f64 / f64::from(info.samplerate) / facts.time_expansion
    };
    Ok(Request {
        id: crate::spec::data::new_id().to_string(),
        path: file,
        samplerate,
        channels: info.channels,
        duration_s,
        time_expansion: facts.time_expansion,
        recorded_at: facts.recorded_at,
        threshold: 0.0,
    })
}

/// Runs `detector` `runs` times on every request and prints its figures.
async fn bench(detector: &Detector, requests: &[Request], runs: usize) -> Result<(), String> {
    let engine = Engine::new(detector, 1);
    let before = status_kib("VmRSS");
    // BatDetect2's model is loaded on its own first, as a worker warms its detectors, so that
    // the memory with the model loaded is not mixed with a request's.
    let model = match &engine {
        Engine::Batdetect2(b) => Some(b.model().map(|m| m.load_time)),
        _ => None,
    };
    let mut loaded = status_kib("VmRSS");
    let started = Instant::now();
    let first = match &model {
        Some(Err(e)) => Err(e.clone()),
        _ => engine.detect(&requests[0]).await.map_err(|e| e.to_string()),
    };
    let first_time = started.elapsed();
    if model.is_none() {
        loaded = status_kib("VmRSS");
    }
    let measured = async {
        first?;
        let (mut lines, mut steady) = (Vec::new(), Vec::new());
        let threshold = detect::threshold(detector);
        for request in requests {
            let request = &Request {
                threshold,
                ..request.clone()
            };
            let mut times = Vec::with_capacity(runs);
            let mut found = 0;
            for _ in 0..runs {
                let started = Instant::now();
                let events = engine.detect(request).await.map_err(|e| e.to_string())?;
                times.push(started.elapsed());
                // The worker keeps the events at or above the threshold.
                found = events.iter().filter(|e| e.score >= threshold).count();
            }
            times.sort();
            let median = times[times.len() / 2];
            steady.push(median);
            lines.push(format!(
                "  {}: median {} over {runs} run(s), best {}; {found} detection(s) at threshold {}",
                request.path,
                ms(median),
                ms(times[0]),
                threshold
            ));
        }
        Ok::<_, String>((lines, steady))
    }
    .await;
    // A serve-mode program's processes are stopped whatever happened.
    engine.shutdown().await;
    let (lines, steady) = measured?;
    let median = steady.first().copied().unwrap_or_default();
    let start_up = match model {
        Some(ref load) => format!("model loaded in {}", ms(load.clone().unwrap_or_default())),
        None => format!(
            "first request {} against a median of {} (the difference is its start-up)",
            ms(first_time),
            ms(median)
        ),
    };
    println!(
        "detector `{}`: {start_up}; RSS {} before it, {} with it loaded{}",
        detector.name,
        mib(before),
        mib(loaded),
        if model.is_some() {
            String::new()
        } else {
            " (after its first request)".to_owned()
        },
    );
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// A field of `/proc/self/status` in KiB (0 where there is none).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
