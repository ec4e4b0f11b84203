//! The program, microphone, recording, paths and detector parts of an imported manifest.
//!
//! In: the Python home (its `program.json` fields `timezone`, `microphone`, `recording`,
//! `paths`, `messaging.messages_db`, `detections`, and `deployment.json`). Out: the matching
//! nodes, and a [`Context`] the saving and messaging parts need.

use std::time::Duration;

use camino::Utf8PathBuf;

use super::writer::{Writer, kdl_number, kdl_string};
use super::{Error, Options, ProgramKind, PythonHome};
use crate::units::{format_duration, format_frequency};

/// What later parts of the manifest need to know.
#[derive(Debug, Clone)]
pub struct Context {
    /// The deployment's position, when known (sun times need it).
    pub location: Option<(f64, f64)>,
    /// The program's timezone.
    pub timezone: String,
}

/// `"HH:MM"`, or `"HH:MM:SS"` when the seconds are not zero, for seconds since midnight.
pub fn clock(secs: u32) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if s == 0 {
        format!("{h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A duration in seconds as the manifest writes it (`"10s"`, `"2m"`, `"1h"`).
pub fn seconds(s: u64) -> String {
    kdl_string(&format_duration(Duration::from_secs(s)))
}

/// A path from `program.json` as an absolute path: the Python workers ran in the home, so a
/// relative path was relative to it.
fn absolute(w: &mut Writer, home: &PythonHome, field: &str, raw: &str) -> String {
    let trimmed = if raw.len() > 1 {
        raw.trim_end_matches('/')
    } else {
        raw
    };
    if trimmed.starts_with('/') {
        return trimmed.to_owned();
    }
    let resolved = home.dir.join(trimmed);
    w.note(
        1,
        &format!(
            "`{field}` = \"{raw}\" is relative: the Python acoupi's workers ran in its home, so it is `{resolved}` here"
        ),
    );
    resolved.into_string()
}

/// Writes `program`, `microphone`, `recording` and `paths`.
pub fn write(w: &mut Writer, home: &PythonHome) -> Result<Context, Error> {
    let f = &home.config;
    let timezone = f
        .str("timezone")?
        .unwrap_or_else(|| "Europe/London".to_owned());
    let deployment = home.deployment.as_ref();
    let name = deployment.map_or_else(|| home.kind.name().to_owned(), |d| d.name.clone());
    let location = deployment.and_then(|d| d.location);

    w.blank();
    w.line(0, &format!("program {} {{", kdl_string(&name)));
    w.line(
        1,
        &format!(
            "description {}",
            kdl_string(&format!(
                "Imported from the Python acoupi ({})",
                home.module
            ))
        ),
    );
    w.line(1, &format!("timezone {}", kdl_string(&timezone)));
    match (deployment, location) {
        (Some(d), Some((lat, lon))) => {
            w.comment(
                1,
                &format!(
                    "The position of the Python deployment `{}`; `acoupi deploy` names its deployment after this program.",
                    d.name
                ),
            );
            w.line(
                1,
                &format!(
                    "location latitude={} longitude={}",
                    kdl_number(lat),
                    kdl_number(lon)
                ),
            );
        }
        _ => w.comment(
            1,
            "No deployment position in `config/deployment.json`: add `location latitude=… longitude=…` for sun times.",
        ),
    }
    if let Some(d) = deployment
        && !d.ended
    {
        w.comment(
            1,
            &format!(
                "The Python deployment `{}` (started {}) was never ended; stop the Python acoupi before deploying this one (`acoupi deploy --replace-python-acoupi`).",
                d.name, d.started_on
            ),
        );
    }
    w.line(0, "}");

    write_microphone(w, home)?;
    write_recording(w, home)?;
    write_paths(w, home)?;
    Ok(Context { location, timezone })
}

fn write_microphone(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    let f = &home.config;
    let device = f.req_str("microphone.device_name")?;
    let samplerate = f.count("microphone.samplerate")?.unwrap_or(48_000);
    let channels = f.count("microphone.audio_channels")?.unwrap_or(1);
    let expansion = f.num("microphone.time_expansion")?.unwrap_or(1.0);
    w.blank();
    w.line(0, "microphone \"microphone\" {");
    w.comment(
        1,
        "Matches an input device whose name contains this text (`acoupi devices` lists them).",
    );
    w.line(1, &format!("device {}", kdl_string(&device)));
    let rate = u32::try_from(samplerate)
        .map(|hz| kdl_string(&format_frequency(hz)))
        .unwrap_or_else(|_| samplerate.to_string());
    w.line(1, &format!("samplerate {rate}"));
    w.line(1, &format!("channels {channels}"));
    if expansion != 1.0 {
        w.line(1, &format!("time-expansion {}", kdl_number(expansion)));
    }
    w.line(0, "}");
    w.todo(format!(
        "check that `acoupi devices` lists an input device whose name contains `{device}` (the Python acoupi used PortAudio's name for it)"
    ));
    Ok(())
}

fn write_recording(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    let f = &home.config;
    let duration = f.count("recording.duration")?.unwrap_or(3);
    let interval = f.count("recording.interval")?.unwrap_or(10);
    let start = f.time("recording.schedule_start")?;
    let end = f.time("recording.schedule_end")?;
    w.blank();
    w.line(0, "recording {");
    if interval < duration || interval == 0 {
        w.note(
            1,
            &format!(
                "`recording.interval` = {interval} is shorter than `recording.duration` = {duration}: the Python acoupi recorded back to back, which is continuous mode here"
            ),
        );
        w.line(1, "mode \"continuous\"");
        w.line(1, &format!("duration {}", seconds(duration)));
    } else {
        w.line(1, &format!("duration {}", seconds(duration)));
        w.line(1, &format!("interval {}", seconds(interval)));
    }
    match (start, end) {
        (Some(s), Some(e)) if s == e => w.note(
            1,
            &format!(
                "the schedule {} to {} recorded all day in the Python acoupi, so no `window` is written",
                clock(s),
                clock(e)
            ),
        ),
        (Some(s), Some(e)) => {
            if s < e {
                w.note(
                    1,
                    &format!(
                        "the Python acoupi recorded all day with a schedule inside one day ({} to {}; its two-interval condition covers 24 h); this window records from {} to {} only: remove it to record all day",
                        clock(s),
                        clock(e),
                        clock(s),
                        clock(e)
                    ),
                );
            }
            w.line(
                1,
                &format!(
                    "window from={} to={}",
                    kdl_string(&clock(s)),
                    kdl_string(&clock(e))
                ),
            );
        }
        _ => {}
    }
    if let Some(v) = f.get("recording.chunksize") {
        let v = v.clone();
        w.unmapped(
            1,
            "recording.chunksize",
            &v,
            "PyAudio's read size; this recorder needs no such setting",
        );
    }
    w.line(0, "}");
    Ok(())
}

fn write_paths(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    let f = &home.config;
    w.blank();
    w.comment(
        0,
        "The Python acoupi's own files: the stores adopt its databases, and staged recordings are picked up.",
    );
    w.line(0, "paths {");
    for (node, field) in [
        ("staging", "paths.tmp_audio"),
        ("recordings", "paths.recordings"),
        ("metadata", "paths.db_metadata"),
        ("messages", "messaging.messages_db"),
    ] {
        if let Some(raw) = f.str(field)? {
            let path = absolute(w, home, field, &raw);
            w.line(1, &format!("{node} {}", kdl_string(&path)));
        }
    }
    w.line(0, "}");
    Ok(())
}

/// Writes the BatDetect2 `detector` (acoupi-batdetect2's model, run by our adapter).
pub fn write_detector(w: &mut Writer, home: &PythonHome, options: &Options) -> Result<(), Error> {
    debug_assert_eq!(home.kind, ProgramKind::BatDetect2);
    let threshold = home.config.num("detections.threshold")?.unwrap_or(0.2);
    let dir: &Utf8PathBuf = &options.batdetect2_dir;
    w.blank();
    w.comment(
        0,
        "BatDetect2 in one long-lived process, through acoupi's adapter: install both with",
    );
    w.comment(
        0,
        "`scripts/install-batdetect2`, which prints this `command` line for its installation.",
    );
    w.line(0, "detector \"batdetect2\" kind=\"command\" {");
    w.line(
        1,
        &format!(
            "command {} {}",
            kdl_string(dir.join("bin/python").as_str()),
            kdl_string(dir.join("batdetect2.py").as_str())
        ),
    );
    w.comment(
        1,
        "`detections.threshold`: detections scoring less are not stored.",
    );
    w.line(1, &format!("threshold {}", kdl_number(threshold)));
    w.line(1, "timeout \"60s\"");
    w.line(1, "startup-timeout \"5m\"");
    w.line(0, "}");
    w.todo(format!(
        "install BatDetect2 and its adapter into `{dir}` with `scripts/install-batdetect2` (or change the detector's `command` to where they are)"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_and_durations_read_as_people_write_them() {
        assert_eq!(clock(6 * 3600), "06:00");
        assert_eq!(clock(22 * 3600 + 30 * 60 + 5), "22:30:05");
        assert_eq!(seconds(3600), "\"1h\"");
        assert_eq!(seconds(90), "\"1m30s\"");
    }
}
