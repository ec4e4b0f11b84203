//! `acoupi detect [--detector NAME] PATH... [--format table|json] [--store]`: the home's
//! detectors run on existing WAV files, with no broker: how users re-analyse archives and try
//! a detector before deploying.
//!
//! In: the home's compiled program and WAV files or folders (searched recursively for
//! `*.wav`, in name order). Out: per file and detector, a table of detections or one line of
//! acoupi `ModelOutput` JSON on stdout; with `--store`, the recordings and outputs written to
//! the metadata store too. A serve-mode program is started once for the whole run. A file that
//! cannot be read or analysed is reported on stderr and skipped; the exit status is then 1.

use std::fmt::Write as _;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;

use crate::ExitStatus;
use crate::audio::wav_reader::{WavError, WavInfo};
use crate::cli::{DetectArgs, DetectFormat};
use crate::detect::{self, Engine, Event, Request};
use crate::runtime::tasks::Services;
use crate::spec::data::{ModelOutput, Recording, new_id};
use crate::spec::{Detector, Program};

/// Runs `acoupi detect`.
pub fn run(args: &DetectArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let (_home, program) = match super::load(home_flag) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let selected = match select(&program, args.detector.as_deref()) {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    let mut files = Vec::new();
    let mut failed = false;
    for path in &args.paths {
        if let Err(e) = collect(path, &mut files) {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    let rt = match super::runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    let services = Services::new(Arc::clone(&program));
    let engines: Vec<(&Detector, Engine)> =
        selected.iter().map(|d| (*d, Engine::new(d, 1))).collect();
    let ok = rt.block_on(async {
        let mut ok = true;
        for file in &files {
            if !analyse(file, &engines, &services, args).await {
                ok = false;
            }
        }
        for (_, engine) in &engines {
            engine.shutdown().await;
        }
        ok
    });
    if ok && !failed {
        ExitStatus::Success
    } else {
        ExitStatus::Failure
    }
}

/// The detector named `name`, or every detector of `program` when no name is given; an error
/// naming the program's detectors when there is none to run.
pub(super) fn select<'a>(
    program: &'a Program,
    name: Option<&str>,
) -> Result<Vec<&'a Detector>, String> {
    let selected: Vec<&Detector> = match name {
        Some(name) => match program.detectors.iter().find(|d| d.name == name) {
            Some(d) => vec![d],
            None => {
                let names: Vec<&str> = program.detectors.iter().map(|d| d.name.as_str()).collect();
                return Err(if names.is_empty() {
                    format!("no detector named `{name}`: the program declares none")
                } else {
                    format!(
                        "no detector named `{name}`; the program declares {}",
                        names.join(", ")
                    )
                });
            }
        },
        None => program.detectors.iter().collect(),
    };
    if selected.is_empty() {
        return Err("the program declares no detector; add one to the manifest".into());
    }
    Ok(selected)
}

/// Adds `path` (a WAV file, or every `*.wav` under a folder, in name order) to `files`.
pub(super) fn collect(path: &Utf8Path, files: &mut Vec<Utf8PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{path}: {e}"))?;
    if !meta.is_dir() {
        files.push(absolute(path)?);
        return Ok(());
    }
    let mut entries: Vec<Utf8PathBuf> = Vec::new();
    for entry in path
        .read_dir_utf8()
        .map_err(|e| format!("cannot list {path}: {e}"))?
    {
        let entry = entry.map_err(|e| format!("cannot list {path}: {e}"))?;
        entries.push(entry.into_path());
    }
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        {
            files.push(absolute(&entry)?);
        }
    }
    Ok(())
}

fn absolute(path: &Utf8Path) -> Result<Utf8PathBuf, String> {
    camino::absolute_utf8(path).map_err(|e| format!("{path}: {e}"))
}

/// What a file's own metadata says about it.
struct FileFacts {
    /// The recording's id (GUANO `acoupi|Id` of our own recordings, else a new one).
    id: uuid::Uuid,
    /// GUANO `TE`, else 1.
    time_expansion: f64,
    /// GUANO `Timestamp`, else the file's modification time.
    recorded_at: Timestamp,
}

fn facts(path: &Utf8Path) -> FileFacts {
    let guano = crate::audio::wav::read_guano(path).ok().flatten();
    let field = |key: &str| {
        guano.as_deref().and_then(|text| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_owned())
            })
        })
    };
    let recorded_at = field("Timestamp")
        .and_then(|t| guano_time(&t))
        .or_else(|| {
            let modified = std::fs::metadata(path).ok()?.modified().ok()?;
            Timestamp::try_from(modified).ok()
        })
        .unwrap_or_else(Timestamp::now);
    FileFacts {
        id: field("acoupi|Id")
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(new_id),
        time_expansion: field("TE")
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(1.0),
        recorded_at,
    }
}

/// A WAV file as a detector request sees it: its header and its own metadata, with its real
/// capture rate and duration (a time-expanded file's header rate and length scaled back).
pub(super) struct FileAudio {
    info: WavInfo,
    facts: FileFacts,
    samplerate: u32,
    duration_s: f64,
}

impl FileAudio {
    /// Reads the header and metadata of `path`.
    pub(super) fn read(path: &Utf8Path) -> Result<FileAudio, WavError> {
        let info = crate::audio::wav_reader::probe(path)?;
        let facts = facts(path);
        let samplerate = (f64::from(info.samplerate) * facts.time_expansion).round() as u32;
        let duration_s = if info.samplerate == 0 {
            0.0
        } else {
            info.frames as f64 / f64::from(info.samplerate) / facts.time_expansion
        };
        Ok(FileAudio {
            info,
            facts,
            samplerate,
            duration_s,
        })
    }

    /// The request to analyse `path` (this file) as recording `id` for a detector of
    /// `threshold`.
    pub(super) fn request(&self, path: &Utf8Path, id: String, threshold: f64) -> Request {
        Request {
            id,
            path: path.to_owned(),
            samplerate: self.samplerate,
            channels: self.info.channels,
            duration_s: self.duration_s,
            time_expansion: self.facts.time_expansion,
            recorded_at: self.facts.recorded_at,
            threshold,
        }
    }
}

/// A GUANO timestamp: ISO 8601 with an offset, or without one (UTC assumed).
fn guano_time(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok().or_else(|| {
        let civil = text.parse::<jiff::civil::DateTime>().ok()?;
        jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
    })
}

/// Runs every engine on `file` and prints (and stores) the outputs; false when the file could
/// not be analysed by one of them.
async fn analyse(
    file: &Utf8Path,
    engines: &[(&Detector, Engine)],
    services: &Arc<Services>,
    args: &DetectArgs,
) -> bool {
    let audio = match FileAudio::read(file) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}; skipped");
            return false;
        }
    };
    let recording = match recording_for(
        services,
        file,
        &audio.facts,
        audio.samplerate,
        audio.info.channels,
        audio.duration_s,
        args.store,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {file}: {e}; skipped");
            return false;
        }
    };
    let mut ok = true;
    for (detector, engine) in engines {
        let threshold = detect::threshold(detector);
        let request = audio.request(file, recording.id.to_string(), threshold);
        let events = match engine.detect(&request).await {
            Ok(events) => events,
            Err(e) => {
                eprintln!("error: {file}: detector `{}`: {e}", detector.name);
                ok = false;
                continue;
            }
        };
        let output = detect::output::model_output(
            &detector.name,
            recording.clone(),
            &events,
            threshold,
            Timestamp::now(),
        );
        print(&output, &events, args.format);
        if args.store {
            let output = output.clone();
            if let Err(e) = services
                .with_store(move |store, _| store.insert_model_output(&output))
                .await
            {
                eprintln!(
                    "error: {file}: detector `{}`: cannot store: {e}",
                    detector.name
                );
                ok = false;
            }
        }
    }
    ok
}

/// The recording `file` stands for: with `--store`, the stored one (by the GUANO id of our own
/// recordings, else by path, so re-analysing an archive does not store its files twice) or a
/// new row under the home's deployment; else one under that deployment, not stored.
#[allow(clippy::too_many_arguments)]
async fn recording_for(
    services: &Arc<Services>,
    file: &Utf8Path,
    facts: &FileFacts,
    samplerate: u32,
    channels: u16,
    duration: f64,
    store: bool,
) -> Result<Recording, String> {
    let id = facts.id;
    if store {
        let path = file.to_owned();
        let stored = services
            .with_store(move |s, _| match s.recording(id)? {
                Some(r) => Ok(Some(r)),
                None => s.recording_at_path(&path),
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(stored) = stored {
            return Ok(stored.recording);
        }
    }
    let deployment = if store {
        crate::runtime::tasks::deployment::current(services)
            .await
            .map_err(|e| e.to_string())?
    } else {
        unstored_deployment(&services.program)
    };
    let recording = Recording {
        created_on: crate::spec::isotime::to_micros(facts.recorded_at),
        duration,
        samplerate,
        deployment,
        path: Some(file.to_owned()),
        audio_channels: u32::from(channels),
        time_expansion: facts.time_expansion,
        id,
    };
    if store {
        let row = recording.clone();
        services
            .with_store(move |s, _| s.insert_recording(&row, None))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(recording)
}

/// The deployment printed with outputs that are not stored: the home's deployment file's when
/// there is one, else a placeholder named after the program.
fn unstored_deployment(program: &Program) -> crate::spec::data::Deployment {
    crate::lifecycle::deployment::read(&program.home)
        .ok()
        .flatten()
        .and_then(|d| d.to_data().ok())
        .unwrap_or_else(|| crate::spec::data::Deployment {
            id: uuid::Uuid::nil(),
            name: format!("{} (acoupi detect)", program.name),
            latitude: program.location.map(|l| l.latitude),
            longitude: program.location.map(|l| l.longitude),
            started_on: Timestamp::UNIX_EPOCH,
            ended_on: None,
        })
}

fn print(output: &ModelOutput, events: &[Event], format: DetectFormat) {
    match format {
        DetectFormat::Json => match serde_json::to_string(output) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot print the output as JSON: {e}"),
        },
        DetectFormat::Table => {
            let path = output
                .recording
                .path
                .as_ref()
                .map(|p| p.as_str())
                .unwrap_or("");
            let mut text = format!(
                "{path}  {}: {} detection{}",
                output.name_model,
                output.detections.len(),
                if output.detections.len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
            let dropped = events.len() - output.detections.len();
            if dropped > 0 {
                let _ = write!(text, " ({dropped} under the threshold)");
            }
            println!("{text}");
            for d in &output.detections {
                let mut line = String::from("  ");
                if let Some(b) = d.location {
                    let [start, low, end, high] = b.coordinates;
                    let _ = write!(
                        line,
                        "{start:>8.4}-{end:<8.4} s  {:>6.1}-{:<6.1} kHz  ",
                        low / 1000.0,
                        high / 1000.0
                    );
                }
                let _ = write!(line, "score {:.3}", d.detection_score);
                for t in &d.tags {
                    let _ = write!(
                        line,
                        "  {}={} ({:.3})",
                        t.tag.key, t.tag.value, t.confidence_score
                    );
                }
                println!("{line}");
            }
        }
    }
}
