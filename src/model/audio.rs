//! Validation of the audio side: microphones, the recording schedule and daily windows.
//!
//! In: the AST's `microphone`, `recording` and `window` nodes. Out: spec microphones, the
//! spec recording settings and the recording windows, with defaults applied.

use std::time::Duration;

use miette::SourceSpan;

use super::{absolute, check_names};
use crate::diagnostic::{Diagnostics, Issue, Spanned, did_you_mean};
use crate::manifest::Ast;
use crate::manifest::ast::{MicrophoneNode, SourceNode, SyntheticNode, WindowNode};
use crate::spec::{self, RecordingMode, SampleFormat, Signal, Source};
use crate::units::{TimeOfDay, format_duration, format_frequency};

/// Default sample rate when a microphone gives none.
pub(crate) const DEFAULT_SAMPLERATE: u32 = 48_000;

pub(super) fn microphones(ast: &Ast, diags: &mut Diagnostics) -> Vec<spec::Microphone> {
    check_names(
        "microphone",
        ast.microphones.iter().filter_map(|m| m.name.as_ref()),
        diags,
    );
    if ast.microphones.is_empty() {
        diags.push(Issue::MissingNode {
            name: "microphone",
            span: ast.program.as_ref().map(|p| p.span).unwrap_or(ast.start),
            help: Some(
                "declare one, e.g. `microphone \"usb\" { device \"UltraMic\" }`, or `microphone \"demo\" { synthetic \"sweep\" }` to try acoupi without hardware"
                    .into(),
            ),
        });
    }
    ast.microphones
        .iter()
        .filter_map(|m| microphone(m, diags))
        .collect()
}

fn microphone(m: &MicrophoneNode, diags: &mut Diagnostics) -> Option<spec::Microphone> {
    let samplerate = match &m.samplerate {
        Some(sr) if !(1_000..=768_000).contains(&sr.value) => {
            diags.push(Issue::OutOfRange {
                what: "the sample rate".into(),
                value: format_frequency(sr.value),
                span: sr.span,
                expected: "expected 1kHz to 768kHz".into(),
                help: (sr.value > 0 && sr.value <= 768)
                    .then(|| format!("did you mean \"{}kHz\"?", sr.value)),
            });
            DEFAULT_SAMPLERATE
        }
        Some(sr) => sr.value,
        None => DEFAULT_SAMPLERATE,
    };
    let channels = match &m.channels {
        Some(c) if !(1..=32).contains(&c.value) => {
            diags.push(Issue::OutOfRange {
                what: "the channel count".into(),
                value: c.value.to_string(),
                span: c.span,
                expected: "expected 1 to 32".into(),
                help: None,
            });
            1
        }
        Some(c) => c.value as u16,
        None => 1,
    };
    let time_expansion = match &m.time_expansion {
        Some(t) if !(t.value > 0.0 && t.value <= 100.0) => {
            diags.push(Issue::OutOfRange {
                what: "the time expansion".into(),
                value: t.value.to_string(),
                span: t.span,
                expected: "expected more than 0 and at most 100".into(),
                help: Some("1 means real time; 10 is a common bat-detector factor".into()),
            });
            1.0
        }
        Some(t) => t.value,
        None => 1.0,
    };
    let sample_format = match m.format.as_ref().map(|f| f.value) {
        Some("i24") => SampleFormat::I24,
        Some("i32") => SampleFormat::I32,
        Some("f32") => SampleFormat::F32,
        _ => SampleFormat::I16,
    };
    let name = m.name.as_ref()?.value.clone();
    let source = match &m.source {
        None => {
            diags.push(Issue::MissingSetting {
                message: format!("microphone `{name}` has no source"),
                span: m.name.as_ref().map(|n| n.span).unwrap_or(m.span),
                label: "no `device`, `synthetic` or `file`".into(),
                help: Some("add `device \"UltraMic\"` (a substring of the input device's name, or `default`), `synthetic \"sweep\"` or `file \"/path/to.wav\"`".into()),
            });
            return None;
        }
        Some(s) => match &s.value {
            SourceNode::Device(d) => {
                if let Some(Err(why)) = crate::audio::usb::UsbId::parse(&d.value) {
                    diags.push(Issue::InvalidValue {
                        value: d.value.escape_debug().to_string(),
                        what: "USB device identity".into(),
                        span: d.span,
                        help: Some(format!(
                            "{why}; write `usb:VENDOR:PRODUCT` or `usb:VENDOR:PRODUCT:SERIAL` as `acoupi devices` shows it"
                        )),
                    });
                    return None;
                }
                Source::Device {
                    device: d.value.clone(),
                }
            }
            SourceNode::Synthetic(syn) => Source::Synthetic {
                signal: signal(syn, samplerate, s.span, diags)?,
            },
            SourceNode::File { path, looped } => Source::File {
                path: absolute(path.as_ref()?, "the audio file", diags)?,
                looped: looped.as_ref().is_some_and(|l| l.value),
            },
        },
    };
    Some(spec::Microphone {
        name,
        source,
        samplerate_hz: samplerate,
        channels,
        time_expansion,
        sample_format,
    })
}

fn signal(
    s: &SyntheticNode,
    samplerate: u32,
    span: SourceSpan,
    diags: &mut Diagnostics,
) -> Option<Signal> {
    let nyquist = samplerate / 2;
    let freq = |v: &Option<Spanned<u32>>, default: u32, diags: &mut Diagnostics| match v {
        Some(f) if f.value == 0 || f.value >= nyquist => {
            diags.push(Issue::OutOfRange {
                what: "the signal frequency".into(),
                value: format_frequency(f.value),
                span: f.span,
                expected: format!("expected above 0 and below {}", format_frequency(nyquist)),
                help: Some(format!(
                    "a {} sample rate can only carry frequencies below half of it; raise `samplerate`",
                    format_frequency(samplerate)
                )),
            });
            None
        }
        Some(f) => Some(f.value),
        None => Some(default.max(1)),
    };
    let amplitude = match &s.amplitude {
        Some(a) if !(0.0..=1.0).contains(&a.value) => {
            diags.push(Issue::OutOfRange {
                what: "the amplitude".into(),
                value: a.value.to_string(),
                span: a.span,
                expected: "expected 0 to 1".into(),
                help: None,
            });
            0.5
        }
        Some(a) => a.value,
        None => 0.5,
    };
    let ms = |v: &Option<Spanned<Duration>>, default: u64| {
        v.as_ref()
            .map(|d| d.value.as_millis() as u64)
            .unwrap_or(default)
            .max(1)
    };
    let (length_ms, every_ms) = (ms(&s.length, 5), ms(&s.every, 100));
    let shape = s.signal.as_ref().map(|s| s.value).unwrap_or("sine");
    if matches!(shape, "bursts" | "sweep") && length_ms > every_ms {
        diags.push(Issue::ConflictingSettings {
            message: "a call is longer than the time between calls".into(),
            span: s.length.as_ref().map(|l| l.span).unwrap_or(span),
            label: "call length".into(),
            other: s.every.as_ref().map(|e| e.span).unwrap_or(span),
            help: Some("make `length` at most `every`".into()),
        });
    }
    Some(match shape {
        "noise" => Signal::Noise { amplitude },
        "counter" => Signal::Counter,
        "bursts" => Signal::Bursts {
            frequency_hz: freq(&s.frequency, 40_000.min(nyquist / 2), diags)?,
            length_ms,
            every_ms,
            amplitude,
        },
        "sweep" => Signal::Sweep {
            from_hz: freq(&s.from, 80_000.min(nyquist * 4 / 5), diags)?,
            to_hz: freq(&s.to, 40_000.min(nyquist * 2 / 5), diags)?,
            length_ms,
            every_ms,
            amplitude,
        },
        _ => Signal::Sine {
            frequency_hz: freq(&s.frequency, 1_000.min(nyquist / 2), diags)?,
            amplitude,
        },
    })
}

/// Default recording duration and interval (the original's defaults).
const DEFAULT_DURATION: Duration = Duration::from_secs(3);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default minimum free disk space.
pub(crate) const DEFAULT_MIN_FREE_DISK: u64 = 512 * 1024 * 1024;

pub(super) fn recording(
    ast: &Ast,
    has_location: bool,
    diags: &mut Diagnostics,
) -> (spec::Recording, Vec<spec::Window>) {
    let node = ast.recording.as_ref();
    let anchor = node
        .map(|r| r.span)
        .or(ast.program.as_ref().map(|p| p.span))
        .unwrap_or(ast.start);
    let declared: Vec<&str> = ast
        .microphones
        .iter()
        .filter_map(|m| m.name.as_ref().map(|n| n.value.as_str()))
        .collect();
    let microphone = match node.and_then(|r| r.microphone.as_ref()) {
        Some(m) if declared.contains(&m.value.as_str()) => m.value.clone(),
        Some(m) => {
            diags.push(Issue::UndeclaredReference {
                what: "microphone",
                name: m.value.clone(),
                span: m.span,
                help: did_you_mean(&m.value, &declared).or_else(|| {
                    Some(format!(
                        "declare it: microphone \"{}\" {{ device \"…\" }}",
                        m.value
                    ))
                }),
            });
            String::new()
        }
        None if declared.len() > 1 => {
            diags.push(Issue::MissingSetting {
                message: format!(
                    "{} microphones are declared but the recording names none",
                    declared.len()
                ),
                span: anchor,
                label: "which microphone?".into(),
                help: Some(format!(
                    "add `microphone \"{}\"` to the `recording` block",
                    declared[0]
                )),
            });
            String::new()
        }
        None => declared
            .first()
            .map(|s| (*s).to_owned())
            .unwrap_or_default(),
    };
    let continuous = node
        .and_then(|r| r.mode.as_ref())
        .is_some_and(|m| m.value == "continuous");
    let duration = node.and_then(|r| r.duration.as_ref());
    let interval = node.and_then(|r| r.interval.as_ref());
    let d = duration.map(|d| d.value).unwrap_or(DEFAULT_DURATION);
    let mut i = interval.map(|i| i.value).unwrap_or(DEFAULT_INTERVAL);
    check_length(
        duration,
        "the recording duration",
        Duration::from_millis(100),
        Duration::from_secs(3600),
        diags,
    );
    check_length(
        interval,
        "the recording interval",
        Duration::from_millis(100),
        Duration::from_secs(86_400),
        diags,
    );
    if continuous {
        if let (Some(iv), Some(mode)) = (interval, node.and_then(|r| r.mode.as_ref()))
            && iv.value != d
        {
            diags.push(Issue::ConflictingSettings {
                message: "continuous recording has no interval".into(),
                span: iv.span,
                label: "interval".into(),
                other: mode.span,
                help: Some("remove `interval`; files follow each other every `duration`".into()),
            });
        }
        i = d;
    } else if d > i {
        diags.push(Issue::DurationExceedsInterval {
            duration: format_duration(d),
            interval: format_duration(i),
            span: duration.map(|x| x.span).unwrap_or(anchor),
            interval_span: interval.map(|x| x.span).unwrap_or(anchor),
            help: Some(format!(
                "make the interval at least {}, or write `mode \"continuous\"` to record without gaps",
                format_duration(d)
            )),
        });
    }
    let windows = node
        .map(|r| {
            r.windows
                .iter()
                .filter_map(|w| window(w, has_location, "a recording window", diags))
                .collect()
        })
        .unwrap_or_default();
    let mode = if continuous {
        RecordingMode::Continuous
    } else {
        RecordingMode::DutyCycle
    };
    (
        spec::Recording {
            microphone,
            mode,
            duration_ms: d.as_millis() as u64,
            interval_ms: i.as_millis() as u64,
            min_free_disk_bytes: node
                .and_then(|r| r.min_free_disk.as_ref())
                .map(|s| s.value)
                .unwrap_or(DEFAULT_MIN_FREE_DISK),
            // Checked with the microphone known, in `storage`.
            staging_budget: None,
        },
        windows,
    )
}

/// Reports a duration outside `min..=max`.
pub(super) fn check_length(
    d: Option<&Spanned<Duration>>,
    what: &str,
    min: Duration,
    max: Duration,
    diags: &mut Diagnostics,
) -> bool {
    match d {
        Some(d) if d.value < min || d.value > max => {
            diags.push(Issue::OutOfRange {
                what: what.to_owned(),
                value: format_duration(d.value),
                span: d.span,
                expected: format!(
                    "expected {} to {}",
                    format_duration(min),
                    format_duration(max)
                ),
                help: None,
            });
            false
        }
        _ => true,
    }
}

/// Validates one window: both ends present, not empty, sun times only with a location.
pub(super) fn window(
    w: &WindowNode,
    has_location: bool,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<spec::Window> {
    let (from, to) = (w.from.as_ref()?, w.to.as_ref()?);
    let mut ok = true;
    for end in [from, to] {
        if matches!(end.value, TimeOfDay::Sun { .. }) && !has_location {
            diags.push(Issue::LocationRequired {
                what: format!("{what} relative to {}", end.value),
                span: end.span,
                help: Some(
                    "add `location latitude=… longitude=…` to the `program` block, or use clock times like \"21:00\"".into(),
                ),
            });
            ok = false;
            break;
        }
    }
    if from.value == to.value {
        diags.push(Issue::EmptyWindow {
            from: from.value.to_string(),
            to: to.value.to_string(),
            span: w.span,
            help: Some(
                "a window ending where it starts is empty; for all day, leave the window out"
                    .into(),
            ),
        });
        ok = false;
    }
    ok.then_some(spec::Window {
        from: from.value,
        to: to.value,
    })
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{MIC, codes};

    #[test]
    fn usb_identities_are_checked() {
        let mic = |d: &str| {
            codes(&format!(
                "program \"p\"\nmicrophone \"m\" {{ device \"{d}\" }}\n"
            ))
        };
        assert!(mic("usb:0869:0389").is_empty());
        assert!(mic("usb:0869:0389:A1B2").is_empty());
        assert!(mic("USB mic").is_empty(), "a name, not an identity");
        assert_eq!(mic("usb:869:0389"), ["manifest::invalid_value"]);
        assert_eq!(mic("usb:0869:03g9"), ["manifest::invalid_value"]);
    }

    #[test]
    fn duration_longer_than_interval() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\n{MIC}recording {{ duration \"20s\"; interval \"10s\" }}\n"
            )),
            ["model::duration_exceeds_interval"]
        );
    }

    #[test]
    fn empty_window() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\n{MIC}recording {{ window from=\"21:00\" to=\"21:00\" }}\n"
            )),
            ["model::empty_window"]
        );
    }

    #[test]
    fn sun_window_needs_location() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\n{MIC}recording {{ window from=\"sunset\" to=\"sunrise\" }}\n"
            )),
            ["model::location_required"]
        );
    }

    #[test]
    fn samplerate_out_of_range() {
        assert_eq!(
            codes("program \"p\"\nmicrophone \"m\" { device \"x\"; samplerate 250 }\n"),
            ["model::out_of_range"]
        );
    }

    #[test]
    fn undeclared_microphone() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\n{MIC}recording {{ microphone \"n\" }}\n"
            )),
            ["model::undeclared_reference"]
        );
    }

    #[test]
    fn crossing_midnight_window_is_fine() {
        assert!(
            codes(&format!(
                "program \"p\"\n{MIC}recording {{ window from=\"21:00\" to=\"06:00\" }}\n"
            ))
            .is_empty()
        );
    }
}
