//! The saving rules: whether a recording is kept, and the folder it is kept in.
//!
//! In: the program's `saving` rules, what the detectors made of one recording (its best score
//! per detector), when it started and its place in the deployment's sequence. Out: a
//! [`Decision`] naming the rule that decided, and the folder a kept recording goes to (the
//! template rendered in the program's timezone). Pure: the `manage-files` task applies it.

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::runtime::beat::schedule::Clock;
use crate::spec::{Otherwise, SaveRule, Saving};

/// The folder (under `paths.recordings`) of recordings whose detection failed for good: they
/// are never deleted unseen. The saving folder template applies under it.
pub const UNANALYSED_FOLDER: &str = "unanalysed";

/// What one recording's detectors made of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// When the recording started.
    pub start: Timestamp,
    /// Each detector that stored an output, with its best detection score (`None`: no
    /// detection).
    pub best: Vec<(String, Option<f64>)>,
    /// The recording's position in its deployment, counting from 0 (for `keep-if every`).
    pub ordinal: u64,
}

/// What happens to a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Kept; the reason names the rule.
    Keep(String),
    /// Deleted; the reason says why.
    Delete(String),
}

impl Decision {
    /// True when the recording is kept.
    pub fn keeps(&self) -> bool {
        matches!(self, Decision::Keep(_))
    }
}

/// Applies `saving`'s rules, in manifest order, to a recording: any matching `keep-if` keeps
/// it; `otherwise` decides the rest. `clock` resolves time windows (sun-relative ones need the
/// program's location).
pub fn decide(saving: &Saving, clock: &Clock, facts: &Facts) -> Decision {
    for (i, rule) in saving.rules.iter().enumerate() {
        let matched = match rule {
            SaveRule::Detection {
                min_score,
                detector,
            } => facts.best.iter().any(|(name, best)| {
                detector.as_ref().is_none_or(|d| d == name)
                    && best.is_some_and(|score| score >= *min_score)
            }),
            SaveRule::Window { window } => {
                clock.in_windows(std::slice::from_ref(window), facts.start)
            }
            SaveRule::Every { n } => facts.ordinal.is_multiple_of(u64::from((*n).max(1))),
        };
        if matched {
            return Decision::Keep(format!("keep-if rule {} ({})", i + 1, describe(rule)));
        }
    }
    match saving.otherwise {
        Otherwise::Keep => Decision::Keep("otherwise \"keep\"".into()),
        Otherwise::Delete if saving.rules.is_empty() => {
            Decision::Delete("otherwise \"delete\"".into())
        }
        Otherwise::Delete => Decision::Delete("no keep-if rule matched".into()),
    }
}

fn describe(rule: &SaveRule) -> String {
    match rule {
        SaveRule::Detection {
            min_score,
            detector: Some(d),
        } => format!("a `{d}` detection of at least {min_score}"),
        SaveRule::Detection { min_score, .. } => format!("a detection of at least {min_score}"),
        SaveRule::Window { .. } => "inside its time window".into(),
        SaveRule::Every { n } => format!("one recording in {n}"),
    }
}

/// The folder template rendered for a recording that started at `start`: `{date:FORMAT}` in
/// `tz` (zero-padded strftime), `{program}` and `{microphone}`. The compiler checked the
/// template; a placeholder it would refuse is an error here too.
pub fn folder(
    template: &str,
    tz: &TimeZone,
    start: Timestamp,
    program: &str,
    microphone: &str,
) -> Result<Utf8PathBuf, String> {
    let local = start.to_zoned_datetime(tz.clone());
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("folder template `{template}`: unmatched `{{`"))?;
        let inner = &rest[open + 1..open + close];
        match inner.split_once(':') {
            Some(("date", fmt)) => {
                let text = jiff::fmt::strtime::format(fmt, &local)
                    .map_err(|e| format!("folder template `{template}`: {e}"))?;
                out.push_str(&text);
            }
            None if inner == "program" => out.push_str(&safe(program)),
            None if inner == "microphone" => out.push_str(&safe(microphone)),
            _ => {
                return Err(format!(
                    "folder template `{template}`: unknown placeholder `{{{inner}}}`"
                ));
            }
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    let path = Utf8PathBuf::from(out);
    if path.is_absolute() || path.components().any(|c| c.as_str() == "..") {
        return Err(format!(
            "folder template `{template}` leaves the recordings directory as `{path}`"
        ));
    }
    Ok(path)
}

/// A name as one path segment: separators and NULs replaced.
fn safe(name: &str) -> String {
    name.replace(['/', '\0'], "_")
}

/// Whether `path` is inside `dir` (lexically).
pub fn is_under(path: &Utf8Path, dir: &Utf8Path) -> bool {
    path.starts_with(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{TimeOfDay, Window};

    fn clock() -> Clock {
        Clock::new("Europe/London", None).expect("clock")
    }

    fn facts(best: &[(&str, Option<f64>)], start: &str, ordinal: u64) -> Facts {
        Facts {
            start: start.parse().expect("time"),
            best: best.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect(),
            ordinal,
        }
    }

    fn saving(rules: Vec<SaveRule>, otherwise: Otherwise) -> Saving {
        Saving {
            rules,
            folder: "{date:%Y}/{date:%m}/{date:%d}".into(),
            otherwise,
        }
    }

    #[test]
    fn detection_rules_compare_the_best_score_of_the_named_detector() {
        let s = saving(
            vec![SaveRule::Detection {
                min_score: 0.5,
                detector: Some("bats".into()),
            }],
            Otherwise::Delete,
        );
        let at = "2026-06-01T21:00:00Z";
        assert!(decide(&s, &clock(), &facts(&[("bats", Some(0.5))], at, 1)).keeps());
        assert!(!decide(&s, &clock(), &facts(&[("bats", Some(0.49))], at, 1)).keeps());
        assert!(!decide(&s, &clock(), &facts(&[("birds", Some(0.9))], at, 1)).keeps());
        assert!(!decide(&s, &clock(), &facts(&[("bats", None)], at, 1)).keeps());
        let any = saving(
            vec![SaveRule::Detection {
                min_score: 0.5,
                detector: None,
            }],
            Otherwise::Delete,
        );
        assert!(
            decide(
                &any,
                &clock(),
                &facts(&[("bats", None), ("birds", Some(0.7))], at, 1)
            )
            .keeps()
        );
    }

    #[test]
    fn windows_use_the_programs_timezone_and_every_counts_recordings() {
        let window = Window {
            from: TimeOfDay::Clock { seconds: 21 * 3600 },
            to: TimeOfDay::Clock {
                seconds: 21 * 3600 + 1800,
            },
        };
        let s = saving(vec![SaveRule::Window { window }], Otherwise::Delete);
        // 20:10 UTC is 21:10 in London in June (BST).
        assert!(decide(&s, &clock(), &facts(&[], "2026-06-01T20:10:00Z", 0)).keeps());
        assert!(!decide(&s, &clock(), &facts(&[], "2026-06-01T21:10:00Z", 0)).keeps());
        let every = saving(vec![SaveRule::Every { n: 3 }], Otherwise::Delete);
        let kept: Vec<bool> = (0..6)
            .map(|i| decide(&every, &clock(), &facts(&[], "2026-06-01T20:10:00Z", i)).keeps())
            .collect();
        assert_eq!(kept, [true, false, false, true, false, false]);
    }

    #[test]
    fn otherwise_decides_what_no_rule_keeps() {
        let at = "2026-06-01T21:00:00Z";
        assert_eq!(
            decide(
                &saving(vec![], Otherwise::Keep),
                &clock(),
                &facts(&[], at, 0)
            ),
            Decision::Keep("otherwise \"keep\"".into())
        );
        let d = decide(
            &saving(vec![SaveRule::Every { n: 2 }], Otherwise::Delete),
            &clock(),
            &facts(&[], at, 1),
        );
        assert_eq!(d, Decision::Delete("no keep-if rule matched".into()));
    }

    #[test]
    fn folders_render_in_the_programs_timezone_zero_padded() {
        let tz = TimeZone::get("Europe/London").expect("tz");
        // 23:30 UTC on 31 May is 00:30 on 1 June in London.
        let at: Timestamp = "2026-05-31T23:30:00Z".parse().expect("time");
        assert_eq!(
            folder("{date:%Y}/{date:%m}/{date:%d}", &tz, at, "p", "m").expect("renders"),
            "2026/06/01"
        );
        assert_eq!(
            folder(
                "{program}/{microphone}/{date:%Y-%m-%d_%H}",
                &tz,
                at,
                "hedge/north",
                "mic"
            )
            .expect("renders"),
            "hedge_north/mic/2026-06-01_00"
        );
        assert!(folder("{nope}", &tz, at, "p", "m").is_err());
        assert!(folder("../{date:%Y}", &tz, at, "p", "m").is_err());
    }
}
