//! The `saving` part of an imported manifest: the original's saving filters as `keep-if`
//! rules, and its file manager's folder.
//!
//! In: `recording_saving` (`default`, `connected`) or `saving_filters`, `saving_managers` and
//! `model.detection_threshold` (acoupi-batdetect2). Out: a `saving` node, with a note where a
//! rule keeps a different set of recordings than the original's filter did.

use super::program::{Context, clock};
use super::writer::{Writer, kdl_number, kdl_string};
use super::{Error, ProgramKind, PythonHome};

/// The time-based filters both program families share.
#[derive(Debug, Default)]
struct TimeFilters {
    window: Option<(u32, u32)>,
    frequency: Option<(u64, u64)>,
    before_dawndusk: u64,
    after_dawndusk: u64,
}

impl TimeFilters {
    fn read(home: &PythonHome, section: &str) -> Result<TimeFilters, Error> {
        let f = &home.config;
        let at = |k: &str| format!("{section}.{k}");
        let window = f.time(&at("starttime"))?.zip(f.time(&at("endtime"))?);
        let duration = f.count(&at("frequency_duration"))?.unwrap_or(0);
        let interval = f.count(&at("frequency_interval"))?.unwrap_or(0);
        Ok(TimeFilters {
            window,
            frequency: (duration != 0 && interval != 0).then_some((duration, interval)),
            before_dawndusk: f.count(&at("before_dawndusk_duration"))?.unwrap_or(0),
            after_dawndusk: f.count(&at("after_dawndusk_duration"))?.unwrap_or(0),
        })
    }

    fn any(&self) -> bool {
        self.window.is_some()
            || self.frequency.is_some()
            || self.before_dawndusk != 0
            || self.after_dawndusk != 0
    }

    /// Writes the rules; `section` names the config section in notes.
    fn write(&self, w: &mut Writer, section: &str, ctx: &Context) {
        if let Some((start, end)) = self.window {
            if start == end {
                w.note(
                    1,
                    &format!(
                        "`{section}.starttime` equals `endtime` ({}): a window of no length keeps nothing, so it is left out",
                        clock(start)
                    ),
                );
            } else {
                if !matches!(ctx.timezone.as_str(), "UTC" | "Etc/UTC" | "GMT" | "Etc/GMT") {
                    w.note(
                        1,
                        &format!(
                            "the Python acoupi compared this window with UTC times, ignoring the timezone `{}`; here it is read in `{}`",
                            ctx.timezone, ctx.timezone
                        ),
                    );
                }
                w.line(
                    1,
                    &format!(
                        "keep-if window from={} to={}",
                        kdl_string(&clock(start)),
                        kdl_string(&clock(end))
                    ),
                );
            }
        }
        if let Some((duration, interval)) = self.frequency {
            let n = ((interval as f64 / duration as f64).round() as u64).max(1);
            w.note(
                1,
                &format!(
                    "the Python acoupi kept the recordings of the first {duration} min of every {interval} min (UTC clock); `every n={n}` keeps the same share, one recording in {n}"
                ),
            );
            w.line(1, &format!("keep-if every n={n}"));
        }
        if self.before_dawndusk == 0 && self.after_dawndusk == 0 {
            return;
        }
        let offset = |sign: char, minutes: u64| {
            if minutes == 0 {
                String::new()
            } else {
                format!("{sign}{minutes}m")
            }
        };
        let prefix = if ctx.location.is_some() {
            w.comment(
                1,
                "Sun times at the deployment's position (the Python acoupi used Greenwich's).",
            );
            ""
        } else {
            w.note(
                1,
                "the dawn and dusk rules need the sensor's position, which `config/deployment.json` does not give (the Python acoupi used Greenwich's): add `location` to `program` and remove the `/-` before them",
            );
            "/-"
        };
        for event in ["dawn", "dusk"] {
            w.line(
                1,
                &format!(
                    "{prefix}keep-if window from=\"{event}{}\" to=\"{event}{}\"",
                    offset('-', self.before_dawndusk),
                    offset('+', self.after_dawndusk)
                ),
            );
        }
    }
}

/// Writes the `saving` node.
pub fn write(w: &mut Writer, home: &PythonHome, ctx: &Context) -> Result<(), Error> {
    match home.kind {
        ProgramKind::Default | ProgramKind::Connected => write_basic(w, home, ctx),
        ProgramKind::BatDetect2 => write_batdetect2(w, home, ctx),
    }
}

fn write_basic(w: &mut Writer, home: &PythonHome, ctx: &Context) -> Result<(), Error> {
    w.blank();
    w.comment(
        0,
        "The Python acoupi filed kept recordings in `YYYY/M/D` folders by UTC date; new ones go to",
    );
    w.comment(
        0,
        "zero-padded `YYYY/MM/DD` folders by the program's timezone. Kept files stay where they are.",
    );
    if !home.config.has("recording_saving") {
        // Read, so a `null` is not reported as unknown.
        home.config.get("recording_saving");
        w.comment(
            0,
            "No `recording_saving` filters: every recording is kept, as the Python acoupi did.",
        );
        return Ok(());
    }
    let filters = TimeFilters::read(home, "recording_saving")?;
    w.line(0, "saving {");
    filters.write(w, "recording_saving", ctx);
    if !filters.any() {
        w.comment(
            1,
            "Every filter of `recording_saving` is off: the Python acoupi kept every recording.",
        );
        w.line(1, "otherwise \"keep\"");
    } else {
        w.line(1, "otherwise \"delete\"");
    }
    w.line(0, "}");
    Ok(())
}

fn write_batdetect2(w: &mut Writer, home: &PythonHome, ctx: &Context) -> Result<(), Error> {
    let f = &home.config;
    let detection = f.num("model.detection_threshold")?.unwrap_or(0.4);
    let bat = f.num("saving_managers.bat_threshold")?.unwrap_or(0.5);
    let true_dir = f
        .str("saving_managers.true_dir")?
        .unwrap_or_else(|| "bats".to_owned());
    let false_dir = f
        .str("saving_managers.false_dir")?
        .unwrap_or_else(|| "no_bats".to_owned());
    let threshold = f
        .num("saving_filters.saving_threshold")?
        .filter(|t| *t != 0.0);
    let filters = TimeFilters::read(home, "saving_filters")?;
    // The file manager keeps a recording only when its best detection reaches one of its two
    // thresholds, whatever the filters said.
    let manager_min = detection.min(bat);

    w.blank();
    w.line(0, "saving {");
    filters.write(w, "saving_filters", ctx);
    if filters.any() {
        w.note(
            1,
            &format!(
                "acoupi-batdetect2's file manager deleted recordings whose best detection scored under {} even when a time rule kept them; here the time rules keep every recording in them",
                kdl_number(manager_min)
            ),
        );
    }
    if threshold.is_some() || !filters.any() {
        let min = threshold.unwrap_or(0.0).max(manager_min);
        w.line(
            1,
            &format!(
                "keep-if detection min-score={} detector=\"batdetect2\"",
                kdl_number(min)
            ),
        );
    }
    let folder = if true_dir.starts_with('/') || true_dir.contains("..") {
        w.note(
            1,
            &format!(
                "`saving_managers.true_dir` = \"{true_dir}\" is not a folder below the recordings: kept recordings go to `bats/` there"
            ),
        );
        "bats".to_owned()
    } else {
        true_dir.trim_end_matches('/').to_owned()
    };
    w.comment(
        1,
        &format!(
            "acoupi-batdetect2 filed kept recordings flat in `{folder}/`; here they go to date folders below it."
        ),
    );
    w.line(
        1,
        &format!(
            "folder {}",
            kdl_string(&format!("{folder}/{{date:%Y}}/{{date:%m}}/{{date:%d}}"))
        ),
    );
    w.line(1, "otherwise \"delete\"");
    if bat < detection {
        w.note(
            1,
            &format!(
                "recordings whose best detection scored from {} up to {} went to `{false_dir}/`; here they go to `{folder}/` with the others",
                kdl_number(bat),
                kdl_number(detection)
            ),
        );
    } else {
        w.unmapped(
            1,
            "saving_managers.false_dir",
            &false_dir.into(),
            "never used with these thresholds (`bat_threshold` is not below `model.detection_threshold`)",
        );
    }
    if let Some(v) = f.get("saving_managers.timeformat") {
        let v = v.clone();
        w.unmapped(
            1,
            "saving_managers.timeformat",
            &v,
            "file names here are the recording's start time and id",
        );
    }
    w.line(0, "}");
    Ok(())
}
