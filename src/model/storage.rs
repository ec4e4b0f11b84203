//! Validation of storage limits: the `recording` block's `staging-budget` and the
//! `retention` node.
//!
//! In: the AST's `recording` and `retention` nodes, plus the validated recording microphone,
//! recording settings and detectors. Out: the spec's staging budget and retention policy,
//! with impossible settings reported (a percentage outside 1–99 %, a size below one
//! recording, an age under an hour, `keep-newest` with nothing to protect it from or no
//! detector to give tags).

use std::time::Duration;

use super::audio::check_length;
use crate::diagnostic::{Diagnostics, Issue, Spanned};
use crate::manifest::Ast;
use crate::manifest::ast::UsageValue;
use crate::spec::{self, DetectorKind, SampleFormat};
use crate::units::format_size;

/// The shortest `max-age`: anything shorter deletes recordings about as fast as they are made.
const MIN_AGE: Duration = Duration::from_secs(3600);
/// The longest `max-age` that fits the spec's milliseconds with room to spare (about 100 years).
const MAX_AGE: Duration = Duration::from_secs(36_500 * 86_400);
/// The size of a WAV header without extra chunks.
const WAV_HEADER: u64 = 44;

/// The bytes one recording takes on disk: samples for `duration` at the capture rate, all
/// channels, plus the WAV header. `None` when the microphone is unknown (already reported).
fn recording_bytes(mic: Option<&spec::Microphone>, recording: &spec::Recording) -> Option<u64> {
    let mic = mic?;
    let sample = match mic.sample_format {
        SampleFormat::I16 => 2,
        SampleFormat::I24 => 3,
        SampleFormat::I32 | SampleFormat::F32 => 4,
    };
    let per_second = u64::from(mic.samplerate_hz) * u64::from(mic.channels) * sample;
    Some(per_second.saturating_mul(recording.duration_ms) / 1000 + WAV_HEADER)
}

/// A percentage or size limit, checked: 1 to 99 %, or at least one recording's bytes.
fn usage(
    v: &Spanned<UsageValue>,
    what: &str,
    one_recording: Option<u64>,
    diags: &mut Diagnostics,
) -> Option<spec::Usage> {
    match v.value {
        UsageValue::Percent(p) if !(1..=99).contains(&p) => {
            diags.push(Issue::OutOfRange {
                what: what.to_owned(),
                value: format!("{p}%"),
                span: v.span,
                expected: "expected 1% to 99%".into(),
                help: Some(
                    "a share of the file system's size, e.g. `\"85%\"`; or write a size, e.g. `\"200GiB\"`"
                        .into(),
                ),
            });
            None
        }
        // In 1..=99, so it fits.
        UsageValue::Percent(p) => u8::try_from(p).ok().map(spec::Usage::Percent),
        UsageValue::Bytes(b) if b == 0 || one_recording.is_some_and(|r| b < r) => {
            let least = one_recording.unwrap_or(1);
            // A round size with room for about a thousand recordings.
            let roomy = least
                .saturating_mul(1000)
                .checked_next_power_of_two()
                .unwrap_or(u64::MAX);
            diags.push(Issue::OutOfRange {
                what: what.to_owned(),
                value: format_size(b),
                span: v.span,
                expected: format!("expected at least one recording, {least} bytes"),
                help: Some(format!(
                    "one recording is {least} bytes (sample rate × channels × sample size × duration, plus the header); give room for many, e.g. `\"{}\"`",
                    format_size(roomy)
                )),
            });
            None
        }
        UsageValue::Bytes(b) => Some(spec::Usage::Bytes(b)),
    }
}

/// The `recording` block's `staging-budget`, checked; `None` when not given (the default
/// rule applies at run time) or invalid (reported).
pub(super) fn staging_budget(
    ast: &Ast,
    mic: Option<&spec::Microphone>,
    recording: &spec::Recording,
    diags: &mut Diagnostics,
) -> Option<spec::Usage> {
    let v = ast.recording.as_ref()?.staging_budget.as_ref()?;
    usage(
        v,
        "the staging budget",
        recording_bytes(mic, recording),
        diags,
    )
}

/// The `retention` node, checked; `None` when absent (kept recordings are never deleted).
pub(super) fn retention(
    ast: &Ast,
    mic: Option<&spec::Microphone>,
    recording: &spec::Recording,
    detectors: &[spec::Detector],
    diags: &mut Diagnostics,
) -> Option<spec::Retention> {
    let node = ast.retention.as_ref()?;
    let max_age = node.max_age.as_ref();
    let age_ok = check_length(max_age, "the maximum age", MIN_AGE, MAX_AGE, diags);
    let max_age_ms = max_age
        .filter(|_| age_ok)
        .map(|a| u64::try_from(a.value.as_millis()).unwrap_or(u64::MAX));
    let max_usage = node.max_usage.as_ref().and_then(|v| {
        usage(
            v,
            "the maximum usage",
            recording_bytes(mic, recording),
            diags,
        )
    });
    let keep_newest = node.keep_newest.as_ref().and_then(|k| {
        let n = k.n.as_ref()?;
        let per = k.per.as_ref()?;
        if per.value.trim().is_empty() {
            diags.push(Issue::InvalidValue {
                value: per.value.escape_debug().to_string(),
                what: "tag key".into(),
                span: per.span,
                help: Some("name the tag key whose values are counted, e.g. `per=\"species\"`".into()),
            });
            return None;
        }
        let tagging = detectors
            .iter()
            .any(|d| {
                matches!(
                    d.kind,
                    DetectorKind::Command { .. } | DetectorKind::Batdetect2 { .. }
                )
            });
        if !tagging {
            let message = if detectors.is_empty() {
                format!("`keep-newest` counts recordings per `{}` tag, but the program has no detector", per.value)
            } else {
                format!(
                    "`keep-newest` counts recordings per `{}` tag, but no detector of the program gives tags",
                    per.value
                )
            };
            diags.push(Issue::MissingSetting {
                message,
                span: per.span,
                label: "tags from where?".into(),
                help: Some(
                    "band-energy detectors give no tags; add a `kind=\"batdetect2\"` detector, or a `kind=\"command\"` one whose model tags recordings, or remove `keep-newest`"
                        .into(),
                ),
            });
            return None;
        }
        if max_age.is_none() && node.max_usage.is_none() {
            diags.push(Issue::MissingSetting {
                message: "`keep-newest` has nothing to protect recordings from".into(),
                span: k.span,
                label: "no rule deletes anything".into(),
                help: Some("add `max-age \"180d\"` or `max-usage \"85%\"` to the `retention` block".into()),
            });
            return None;
        }
        Some(spec::KeepNewest {
            // The decoder read the count within 1..=u32::MAX.
            n: u32::try_from(n.value).unwrap_or(u32::MAX),
            per_tag_key: per.value.clone(),
        })
    });
    Some(spec::Retention {
        max_age_ms,
        max_usage,
        keep_newest,
    })
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{MIC, codes};

    fn check(body: &str) -> Vec<String> {
        codes(&format!("program \"p\"\n{MIC}{body}"))
    }

    const CMD: &str = "detector \"d\" kind=\"command\" { command \"/bin/true\" }\n";

    #[test]
    fn a_full_retention_block_is_clean() {
        let src = format!(
            "{CMD}retention {{ max-age \"180d\"; max-usage \"85%\"; keep-newest 20 per=\"species\" }}\n"
        );
        assert_eq!(check(&src), Vec::<String>::new());
        assert!(check("retention { max-usage \"200GiB\" }\n").is_empty());
        assert!(check("retention\n").is_empty());
        assert!(check("recording { staging-budget \"25%\" }\n").is_empty());
        assert!(check("recording { staging-budget \"256MiB\" }\n").is_empty());
    }

    #[test]
    fn percentages_outside_1_to_99_are_out_of_range() {
        for p in ["0%", "100%", "150%", "1000%"] {
            assert_eq!(
                check(&format!("retention {{ max-usage \"{p}\" }}\n")),
                ["model::out_of_range"],
                "{p}"
            );
            assert_eq!(
                check(&format!("recording {{ staging-budget \"{p}\" }}\n")),
                ["model::out_of_range"],
                "{p}"
            );
        }
    }

    #[test]
    fn sizes_below_one_recording_are_out_of_range() {
        // 48 kHz, 1 channel, 16 bit, 3 s: 288044 bytes.
        for size in ["0B", "1KiB", "281KiB"] {
            assert_eq!(
                check(&format!("retention {{ max-usage \"{size}\" }}\n")),
                ["model::out_of_range"],
                "{size}"
            );
            assert_eq!(
                check(&format!("recording {{ staging-budget \"{size}\" }}\n")),
                ["model::out_of_range"],
                "{size}"
            );
        }
        assert!(check("retention { max-usage \"282KiB\" }\n").is_empty());
    }

    #[test]
    fn ages_under_an_hour_are_out_of_range() {
        for a in ["0s", "59m"] {
            assert_eq!(
                check(&format!("retention {{ max-age \"{a}\" }}\n")),
                ["model::out_of_range"],
                "{a}"
            );
        }
    }

    #[test]
    fn keep_newest_needs_per_a_count_and_a_tagging_detector() {
        let with = |kn: &str| check(&format!("{CMD}retention {{ max-age \"30d\"; {kn} }}\n"));
        assert_eq!(with("keep-newest 5"), ["manifest::missing_property"]);
        assert_eq!(
            with("keep-newest 0 per=\"species\""),
            ["model::out_of_range"]
        );
        assert_eq!(
            with("keep-newest per=\"species\""),
            ["manifest::missing_argument"]
        );
        assert_eq!(with("keep-newest 5 per=\" \""), ["manifest::invalid_value"]);
        assert_eq!(
            check("retention { max-age \"30d\"; keep-newest 5 per=\"species\" }\n"),
            ["model::missing_setting"]
        );
        let band = "detector \"b\" kind=\"band-energy\" { band low=\"1kHz\" high=\"2kHz\" }\n";
        assert_eq!(
            check(&format!(
                "{band}retention {{ max-age \"30d\"; keep-newest 5 per=\"species\" }}\n"
            )),
            ["model::missing_setting"]
        );
        assert_eq!(
            check(&format!(
                "{CMD}retention {{ keep-newest 5 per=\"species\" }}\n"
            )),
            ["model::missing_setting"]
        );
    }

    #[test]
    fn malformed_values_are_manifest_errors() {
        for (body, code) in [
            ("max-usage \"85\"", "manifest::invalid_size"),
            ("max-usage \"x%\"", "manifest::invalid_size"),
            ("max-usage \"-5%\"", "manifest::invalid_size"),
            ("max-usage \"1e2%\"", "manifest::invalid_size"),
            ("max-usage \"92.5%\"", "manifest::invalid_size"),
            ("max-usage 85", "manifest::wrong_type"),
            ("max-usage 0.85", "manifest::wrong_type"),
            ("max-age 30", "manifest::wrong_type"),
            ("max-age \"30x\"", "manifest::invalid_duration"),
            ("min-age \"30d\"", "manifest::unknown_node"),
        ] {
            assert_eq!(
                check(&format!("retention {{ {body} }}\n")),
                [code],
                "{body}"
            );
        }
        assert_eq!(
            check("retention \"x\"\n"),
            ["manifest::unexpected_argument"]
        );
    }

    #[test]
    fn a_bigger_recording_needs_a_bigger_limit() {
        // 384 kHz, 2 channels, 32 bit, 10 s: 30.72 MB.
        let src = "program \"p\"\nmicrophone \"m\" { synthetic \"sine\"; samplerate \"384kHz\"; channels 2; format \"i32\" }\nrecording { duration \"10s\"; staging-budget \"16MiB\" }\n";
        assert_eq!(codes(src), ["model::out_of_range"]);
    }
}
