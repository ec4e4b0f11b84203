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

use super::detect::{FileAudio, collect, select};
use crate::ExitStatus;
use crate::cli::BenchDetectArgs;
use crate::detect::{self, Engine};
use crate::runtime::{peak_rss_kib, rss_kib};
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
    let mut audio = Vec::with_capacity(files.len());
    for file in files {
        match FileAudio::read(&file) {
            Ok(a) => audio.push((file, a)),
            Err(e) => return super::fail(e.to_string()),
        }
    }
    let rt = match super::runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    let threads = candle_core::utils::get_num_threads();
    println!("threads for BatDetect2: {threads} (RAYON_NUM_THREADS, else one per core)");
    let ok = rt.block_on(async {
        let mut ok = true;
        for detector in selected {
            if let Err(e) = bench(detector, &audio, args.runs).await {
                eprintln!("error: detector `{}`: {e}", detector.name);
                ok = false;
            }
        }
        ok
    });
    println!("peak RSS of this process: {}", mib(peak_rss_kib()));
    if ok {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// Runs `detector` `runs` times on every file and prints its figures.
async fn bench(
    detector: &Detector,
    files: &[(Utf8PathBuf, FileAudio)],
    runs: usize,
) -> Result<(), String> {
    let threshold = detect::threshold(detector);
    let requests: Vec<_> = files
        .iter()
        .map(|(path, audio)| {
            audio.request(path, crate::spec::data::new_id().to_string(), threshold)
        })
        .collect();
    let engine = Engine::new(detector, 1);
    let before = rss_kib();
    // BatDetect2's model is loaded on its own first, as a worker warms its detectors, so that
    // the memory with the model loaded is not mixed with a request's (its engine has nothing
    // to shut down).
    let load_time = match &engine {
        Engine::Batdetect2(b) => Some(b.model()?.load_time),
        _ => None,
    };
    let mut loaded = rss_kib();
    let started = Instant::now();
    let first = engine.detect(&requests[0]).await;
    let first_time = started.elapsed();
    if load_time.is_none() {
        loaded = rss_kib();
    }
    let measured = async {
        first.map_err(|e| e.to_string())?;
        let (mut lines, mut steady) = (Vec::new(), Vec::new());
        for request in &requests {
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
    let (start_up, when) = match load_time {
        Some(load) => (format!("model loaded in {}", ms(load)), ""),
        None => (
            format!(
                "first request {} against a median of {} (the difference is its start-up)",
                ms(first_time),
                ms(median)
            ),
            " (after its first request)",
        ),
    };
    println!(
        "detector `{}`: {start_up}; RSS {} before it, {} with it loaded{when}",
        detector.name,
        mib(before),
        mib(loaded),
    );
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("unknown".into(), |k| {
        format!("{:.1} MiB", k as f64 / 1024.0)
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
