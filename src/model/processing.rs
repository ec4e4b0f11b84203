//! Validation of what happens to recordings: detectors, saving rules, messaging and
//! summaries.
//!
//! In: the AST's `detector`, `saving`, `messaging` and `summary` nodes, plus the validated
//! microphones and recording. Out: the spec sections with defaults applied, and the
//! intervals the task graph schedules them at.

use std::time::Duration;

use miette::SourceSpan;

use super::audio::{check_length, window};
use super::{absolute, check_names, secret};
use crate::diagnostic::{Diagnostics, Issue, Spanned, did_you_mean};
use crate::manifest::Ast;
use crate::manifest::ast::{DetectorNode, RuleNode};
use crate::spec::{self, DetectorKind, MessageOrder, MessageRule, Otherwise, SaveRule};
use crate::units::format_frequency;

pub(super) fn detectors(
    ast: &Ast,
    microphones: &[spec::Microphone],
    recording: &spec::Recording,
    diags: &mut Diagnostics,
) -> Vec<spec::Detector> {
    check_names(
        "detector",
        ast.detectors.iter().filter_map(|d| d.name.as_ref()),
        diags,
    );
    let mic = microphones.iter().find(|m| m.name == recording.microphone);
    ast.detectors
        .iter()
        .filter_map(|d| detector(d, mic, diags))
        .collect()
}

/// The model files of the manifest's `batdetect2` detectors.
pub(super) fn model_files(ast: &Ast) -> Vec<super::ModelFile> {
    ast.detectors
        .iter()
        .filter(|d| d.kind.as_ref().is_some_and(|k| k.value == "batdetect2"))
        .filter_map(|d| {
            let name = d.name.as_ref()?;
            Some(super::ModelFile {
                detector: name.value.clone(),
                path: d.model.as_ref().map(|m| m.value.clone().into()),
                span: d.model.as_ref().map(|m| m.span).unwrap_or(name.span),
            })
        })
        .collect()
}

fn score(v: Option<&Spanned<f64>>, what: &str, default: f64, diags: &mut Diagnostics) -> f64 {
    match v {
        Some(s) if !(0.0..=1.0).contains(&s.value) => {
            diags.push(Issue::OutOfRange {
                what: what.to_owned(),
                value: s.value.to_string(),
                span: s.span,
                expected: "expected a score from 0 to 1".into(),
                help: None,
            });
            default
        }
        Some(s) => s.value,
        None => default,
    }
}

/// A band-energy frame overlap: 0 to 0.9, 0.5 when not given.
fn overlap(v: Option<&Spanned<f64>>, diags: &mut Diagnostics) -> f64 {
    match v {
        Some(o) if !(0.0..=0.9).contains(&o.value) => {
            diags.push(Issue::OutOfRange {
                what: "the overlap".into(),
                value: o.value.to_string(),
                span: o.span,
                expected: "expected a fraction of a frame from 0 to 0.9".into(),
                help: Some("0.5 (half a frame) suits most recordings".into()),
            });
            0.5
        }
        Some(o) => o.value,
        None => 0.5,
    }
}

fn not_for_kind(d: &DetectorNode, kind: &str, allowed: &[&str], diags: &mut Diagnostics) {
    for (name, span) in &d.given {
        if !allowed.contains(&name.as_str()) {
            diags.push(Issue::UnknownNode {
                name: name.clone(),
                context: format!(" in a `{kind}` detector"),
                span: *span,
                help: Some(format!(
                    "a `{kind}` detector takes {}",
                    allowed
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
    }
}

fn detector(
    d: &DetectorNode,
    mic: Option<&spec::Microphone>,
    diags: &mut Diagnostics,
) -> Option<spec::Detector> {
    let name = d.name.as_ref()?.value.clone();
    let name_span = d.name.as_ref().map(|n| n.span).unwrap_or(d.span);
    let kind = match d.kind.as_ref()?.value {
        "band-energy" => {
            not_for_kind(
                d,
                "band-energy",
                &["band", "threshold", "frame", "overlap"],
                diags,
            );
            let Some(band) = &d.band else {
                diags.push(Issue::MissingSetting {
                    message: format!("detector `{name}` has no band"),
                    span: name_span,
                    label: "which frequencies?".into(),
                    help: Some("add `band low=\"20kHz\" high=\"120kHz\"`".into()),
                });
                return None;
            };
            let (low, high) = (band.low.as_ref()?, band.high.as_ref()?);
            if low.value >= high.value {
                diags.push(Issue::ConflictingSettings {
                    message: format!(
                        "band low edge {} is not below its high edge {}",
                        format_frequency(low.value),
                        format_frequency(high.value)
                    ),
                    span: low.span,
                    label: "low edge".into(),
                    other: high.span,
                    help: Some("swap them".into()),
                });
            }
            if let Some(mic) = mic
                && high.value > mic.samplerate_hz / 2
            {
                diags.push(Issue::BandAboveNyquist {
                    high: format_frequency(high.value),
                    nyquist: format_frequency(mic.samplerate_hz / 2),
                    microphone: mic.name.clone(),
                    span: high.span,
                    help: Some(format!(
                        "lower the high edge to at most {}, or record at a higher `samplerate`",
                        format_frequency(mic.samplerate_hz / 2)
                    )),
                });
            }
            let frame = d.frame.as_ref();
            check_length(
                frame,
                "the analysis frame",
                Duration::from_millis(1),
                Duration::from_secs(1),
                diags,
            );
            DetectorKind::BandEnergy {
                low_hz: low.value,
                high_hz: high.value,
                threshold: score(d.threshold.as_ref(), "the threshold", 0.5, diags),
                frame_ms: frame.map(|f| f.value.as_millis() as u64).unwrap_or(10),
                overlap: overlap(d.overlap.as_ref(), diags),
            }
        }
        "batdetect2" => {
            not_for_kind(d, "batdetect2", &["model", "chunked", "threshold"], diags);
            let model = match &d.model {
                Some(m) => Some(absolute(m, "the model file", diags)?),
                None => None,
            };
            DetectorKind::Batdetect2 {
                model,
                chunked: d.chunked.as_ref().is_some_and(|c| c.value),
                threshold: score(d.threshold.as_ref(), "the threshold", 0.2, diags),
            }
        }
        _ => {
            not_for_kind(
                d,
                "command",
                &["command", "timeout", "threshold", "mode", "startup-timeout"],
                diags,
            );
            let Some(cmd) = &d.command else {
                diags.push(Issue::MissingSetting {
                    message: format!("detector `{name}` has no command"),
                    span: name_span,
                    label: "what to run?".into(),
                    help: Some("add `command \"/usr/local/bin/detect\" \"--flag\"`; acoupi appends the WAV path".into()),
                });
                return None;
            };
            absolute(
                &Spanned::new(cmd.value[0].clone(), cmd.span),
                "the detector program",
                diags,
            )?;
            let timeout = d.timeout.as_ref();
            check_length(
                timeout,
                "the command timeout",
                Duration::from_secs(1),
                Duration::from_secs(3600),
                diags,
            );
            let startup = d.startup_timeout.as_ref();
            check_length(
                startup,
                "the start-up timeout",
                Duration::from_secs(1),
                Duration::from_secs(3600),
                diags,
            );
            DetectorKind::Command {
                argv: cmd.value.clone(),
                timeout_ms: timeout
                    .map(|t| t.value.as_millis() as u64)
                    .unwrap_or(60_000),
                threshold: score(d.threshold.as_ref(), "the threshold", 0.0, diags),
                mode: match d.mode.as_ref().map(|m| m.value) {
                    Some("per-file") => spec::CommandMode::PerFile,
                    _ => spec::CommandMode::Serve,
                },
                startup_timeout_ms: startup
                    .map(|t| t.value.as_millis() as u64)
                    .unwrap_or(spec::DEFAULT_STARTUP_TIMEOUT_MS),
            }
        }
    };
    Some(spec::Detector { name, kind })
}

/// Checks an optional detector reference; with none declared at all, says so.
fn detector_ref(
    r: Option<&Spanned<String>>,
    detectors: &[spec::Detector],
    anchor: SourceSpan,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<String> {
    if detectors.is_empty() {
        diags.push(Issue::MissingSetting {
            message: format!("{what} needs a detector, but none is declared"),
            span: anchor,
            label: "no detector produces detections".into(),
            help: Some("declare one: detector \"bats\" kind=\"band-energy\" { band low=\"20kHz\" high=\"120kHz\" }".into()),
        });
        return None;
    }
    let r = r?;
    let names: Vec<&str> = detectors.iter().map(|d| d.name.as_str()).collect();
    if names.contains(&r.value.as_str()) {
        return Some(r.value.clone());
    }
    diags.push(Issue::UndeclaredReference {
        what: "detector",
        name: r.value.clone(),
        span: r.span,
        help: did_you_mean(&r.value, &names)
            .or_else(|| Some(format!("declared detectors: {}", names.join(", ")))),
    });
    None
}

/// Default folder template: one folder per local day.
pub(crate) const DEFAULT_FOLDER: &str = "{date:%Y}/{date:%m}/{date:%d}";

pub(super) fn saving(
    ast: &Ast,
    detectors: &[spec::Detector],
    has_location: bool,
    diags: &mut Diagnostics,
) -> spec::Saving {
    let Some(node) = &ast.saving else {
        return spec::Saving {
            rules: Vec::new(),
            folder: DEFAULT_FOLDER.into(),
            otherwise: Otherwise::Keep,
        };
    };
    let mut rules = Vec::new();
    for rule in &node.rules {
        match rule {
            RuleNode::Detection {
                span,
                min_score,
                detector,
            } => {
                let min_score = score(min_score.as_ref(), "`min-score`", 0.5, diags);
                let detector = detector_ref(
                    detector.as_ref(),
                    detectors,
                    *span,
                    "`keep-if detection`",
                    diags,
                );
                rules.push(SaveRule::Detection {
                    min_score,
                    detector,
                });
            }
            RuleNode::Window(w) => {
                if let Some(window) = window(w, has_location, "a saving window", diags) {
                    rules.push(SaveRule::Window { window });
                }
            }
            RuleNode::Every { n, .. } => {
                if let Some(n) = n {
                    rules.push(SaveRule::Every { n: n.value as u32 });
                }
            }
        }
    }
    if let Some(folder) = &node.folder {
        check_folder(folder, diags);
    }
    let otherwise = match node.otherwise.as_ref().map(|o| o.value) {
        Some("keep") => Otherwise::Keep,
        Some(_) => Otherwise::Delete,
        None if node.rules.is_empty() => Otherwise::Keep,
        None => Otherwise::Delete,
    };
    spec::Saving {
        rules,
        folder: node
            .folder
            .as_ref()
            .map(|f| f.value.clone())
            .unwrap_or_else(|| DEFAULT_FOLDER.into()),
        otherwise,
    }
}

const PLACEHOLDERS: &[&str] = &["date", "program", "microphone"];

/// Checks a folder template: balanced braces, known placeholders, valid date formats, and a
/// relative path that stays under the recordings directory.
fn check_folder(folder: &Spanned<String>, diags: &mut Diagnostics) {
    let fail = |reason: String, help: &str, diags: &mut Diagnostics| {
        diags.push(Issue::InvalidFolderTemplate {
            template: folder.value.clone(),
            reason,
            span: folder.span,
            help: Some(help.to_owned()),
        });
    };
    let t = &folder.value;
    if t.starts_with('/') || t.split('/').any(|seg| seg == "..") {
        return fail(
            "it leaves the recordings directory".into(),
            "write a relative folder such as \"{date:%Y}/{date:%m}\"; it is placed under `paths.recordings`",
            diags,
        );
    }
    let sample = jiff::civil::date(2026, 1, 2).at(3, 4, 5, 0);
    let mut rest = t.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return fail(
                "unmatched `}`".into(),
                "placeholders are written `{date:%Y}`",
                diags,
            );
        }
        let Some(close) = rest[open..].find('}') else {
            return fail(
                "unmatched `{`".into(),
                "placeholders are written `{date:%Y}`",
                diags,
            );
        };
        let inner = &rest[open + 1..open + close];
        let (key, fmt) = inner.split_once(':').unwrap_or((inner, ""));
        if !PLACEHOLDERS.contains(&key) {
            let help = did_you_mean(key, PLACEHOLDERS).unwrap_or_else(|| {
                "placeholders are `{date:FORMAT}`, `{program}` and `{microphone}`".into()
            });
            return fail(format!("unknown placeholder `{{{inner}}}`"), &help, diags);
        }
        if key == "date" {
            if fmt.is_empty() {
                return fail(
                    "`{date}` needs a format".into(),
                    "write e.g. `{date:%Y-%m-%d}`",
                    diags,
                );
            }
            match jiff::fmt::strtime::format(fmt, sample) {
                Ok(s) if s.contains("..") => {
                    return fail(
                        format!("`{fmt}` can produce `..`"),
                        "use strftime codes like `%Y`, `%m`, `%d`",
                        diags,
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    return fail(
                        format!("`{fmt}` is not a date format ({e})"),
                        "use strftime codes like `%Y`, `%m`, `%d`, `%H`",
                        diags,
                    );
                }
            }
        } else if !fmt.is_empty() {
            return fail(
                format!("`{{{key}}}` takes no format"),
                &format!("write `{{{key}}}`"),
                diags,
            );
        }
        rest = &rest[open + close + 1..];
    }
}

/// Validated messaging and the intervals its tasks run at.
pub(super) struct MessagingOut {
    /// The spec section.
    pub(super) spec: spec::Messaging,
    /// `send every=`.
    pub(super) send_every: Duration,
}

/// Default heartbeat interval, with or without messaging.
pub(crate) const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(3600);

/// The heartbeat interval: the messaging block's, else the default.
pub(super) fn heartbeat_every(ast: &Ast, diags: &mut Diagnostics) -> Duration {
    let hb = ast.messaging.as_ref().and_then(|m| m.heartbeat.as_ref());
    if check_length(
        hb,
        "the heartbeat interval",
        Duration::from_secs(1),
        Duration::from_secs(7 * 86_400),
        diags,
    ) {
        hb.map(|h| h.value).unwrap_or(DEFAULT_HEARTBEAT)
    } else {
        DEFAULT_HEARTBEAT
    }
}

pub(super) fn messaging(
    ast: &Ast,
    program: &str,
    detectors: &[spec::Detector],
    diags: &mut Diagnostics,
) -> Option<MessagingOut> {
    let node = ast.messaging.as_ref()?;
    if node.mqtt.is_none() && node.http.is_none() {
        diags.push(Issue::MissingSetting {
            message: "messaging has no `mqtt` or `http` destination".into(),
            span: node.span,
            label: "messages would go nowhere".into(),
            help: Some(
                "add `mqtt host=\"…\"` or `http url=\"…\"`, or remove the `messaging` block".into(),
            ),
        });
    }
    let slug = slug(program);
    let mqtt = node.mqtt.as_ref().and_then(|m| {
        let topic = m
            .topic
            .as_ref()
            .map(|t| t.value.clone())
            .unwrap_or_else(|| format!("acoupi/{slug}"));
        if let Some(t) = &m.topic
            && (t.value.is_empty() || t.value.contains(['+', '#', '\0']))
        {
            diags.push(Issue::InvalidValue {
                value: t.value.clone(),
                what: "MQTT topic to publish to".into(),
                span: t.span,
                help: Some("a publish topic cannot be empty or contain `+` or `#`".into()),
            });
        }
        let timeout = m.timeout.as_ref();
        check_length(
            timeout,
            "the MQTT timeout",
            Duration::from_secs(1),
            Duration::from_secs(600),
            diags,
        );
        Some(spec::Mqtt {
            host: m.host.as_ref()?.value.clone(),
            port: m.port.as_ref().map(|p| p.value as u16).unwrap_or(
                if m.tls.as_ref().is_some_and(|t| t.value) {
                    8883
                } else {
                    1883
                },
            ),
            topic,
            username: m.username.as_ref().and_then(|u| secret(u, None, diags)),
            password: m
                .password
                .as_ref()
                .and_then(|p| secret(p, Some("the MQTT password"), diags)),
            tls: m.tls.as_ref().is_some_and(|t| t.value),
            client_id: m
                .client_id
                .as_ref()
                .map(|c| c.value.clone())
                .unwrap_or_else(|| format!("acoupi-{slug}")),
            topic_per_type: m.topic_per_type.as_ref().is_some_and(|t| t.value),
            timeout_ms: timeout
                .map(|t| t.value.as_millis() as u64)
                .unwrap_or(spec::DEFAULT_MQTT_TIMEOUT_MS),
        })
    });
    let http = node.http.as_ref().and_then(|h| {
        let url = h.url.as_ref()?;
        match url::Url::parse(&url.value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => diags.push(Issue::InvalidValue {
                value: url.value.clone(),
                what: "HTTP URL".into(),
                span: url.span,
                help: Some("write a full URL such as \"https://example.org/api/messages\"".into()),
            }),
        }
        let timeout = h.timeout.as_ref();
        check_length(
            timeout,
            "the HTTP timeout",
            Duration::from_millis(100),
            Duration::from_secs(600),
            diags,
        );
        let headers = h
            .headers
            .iter()
            .filter_map(|hd| {
                let name = hd.name.as_ref()?.value.clone();
                let lower = name.to_ascii_lowercase();
                let sensitive = ["authorization", "token", "key", "secret", "cookie"]
                    .iter()
                    .any(|s| lower.contains(s))
                    .then(|| format!("the `{name}` header"));
                let value = secret(hd.value.as_ref()?, sensitive.as_deref(), diags)?;
                Some(spec::Header { name, value })
            })
            .collect();
        Some(spec::Http {
            url: url.value.clone(),
            headers,
            timeout_ms: timeout.map(|t| t.value.as_millis() as u64).unwrap_or(5_000),
        })
    });
    let send = node.send.as_ref();
    let send_every_node = send.and_then(|s| s.every.as_ref());
    let send_every = if check_length(
        send_every_node,
        "the send interval",
        Duration::from_secs(1),
        Duration::from_secs(86_400),
        diags,
    ) {
        send_every_node
            .map(|s| s.value)
            .unwrap_or(Duration::from_secs(120))
    } else {
        Duration::from_secs(120)
    };
    let max_age = send.and_then(|s| s.max_age.as_ref());
    check_length(
        max_age,
        "the maximum message age",
        Duration::from_secs(3600),
        Duration::from_secs(365 * 86_400),
        diags,
    );
    let messages = node
        .messages
        .iter()
        .filter_map(|m| match m.kind.as_ref()?.value {
            "detection" => Some(MessageRule::Detection {
                min_score: score(m.min_score.as_ref(), "`min-score`", 0.5, diags),
                detector: detector_ref(
                    m.detector.as_ref(),
                    detectors,
                    m.span,
                    "`message detection`",
                    diags,
                ),
            }),
            _ => Some(MessageRule::Recording),
        })
        .collect();
    Some(MessagingOut {
        spec: spec::Messaging {
            mqtt,
            http,
            batch: send
                .and_then(|s| s.batch.as_ref())
                .map(|b| b.value as u32)
                .unwrap_or(100),
            order: match send.and_then(|s| s.order.as_ref()).map(|o| o.value) {
                Some("newest-first") => MessageOrder::NewestFirst,
                _ => MessageOrder::OldestFirst,
            },
            max_attempts: send
                .and_then(|s| s.max_attempts.as_ref())
                .map(|n| n.value as u32)
                .unwrap_or(spec::DEFAULT_MAX_ATTEMPTS),
            max_age_ms: max_age
                .map(|a| a.value.as_millis() as u64)
                .unwrap_or(spec::DEFAULT_MAX_AGE_MS),
            messages,
        },
        send_every,
    })
}

/// A topic- and id-safe form of the program name.
fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "program".into() } else { s }
}

/// Validated summary and its interval.
pub(super) struct SummaryOut {
    /// The spec section.
    pub(super) spec: spec::Summary,
    /// `every=`.
    pub(super) every: Duration,
}

pub(super) fn summary(
    ast: &Ast,
    detectors: &[spec::Detector],
    diags: &mut Diagnostics,
) -> Option<SummaryOut> {
    let node = ast.summary.as_ref()?;
    detector_ref(None, detectors, node.span, "`summary`", diags);
    if ast.messaging.is_none() {
        diags.push(Issue::MissingSetting {
            message: "summaries are built but there is no `messaging` block to send them".into(),
            span: node.span,
            label: "summary goes nowhere".into(),
            help: Some("add a `messaging` block with `mqtt` or `http`, or remove `summary`".into()),
        });
    }
    let every = node.every.as_ref();
    check_length(
        every,
        "the summary interval",
        Duration::from_secs(60),
        Duration::from_secs(7 * 86_400),
        diags,
    );
    if node.statistics.is_none() && node.thresholds.is_none() {
        diags.push(Issue::MissingSetting {
            message: "the summary computes nothing".into(),
            span: node.span,
            label: "empty summary".into(),
            help: Some("add `statistics` and/or `thresholds low=0.3 mid=0.6 high=0.9`".into()),
        });
    }
    let thresholds = node.thresholds.as_ref().and_then(|(span, [l, m, h])| {
        let low = score(l.as_ref(), "the `low` threshold", 0.3, diags);
        let mid = score(m.as_ref(), "the `mid` threshold", 0.6, diags);
        let high = score(h.as_ref(), "the `high` threshold", 0.9, diags);
        if !(low < mid && mid < high) {
            diags.push(Issue::OutOfRange {
                what: "the summary thresholds".into(),
                value: format!("{low}, {mid}, {high}"),
                span: *span,
                expected: "expected low < mid < high".into(),
                help: None,
            });
            return None;
        }
        Some(spec::Thresholds { low, mid, high })
    });
    Some(SummaryOut {
        spec: spec::Summary {
            statistics: node.statistics.is_some(),
            thresholds,
        },
        every: every.map(|e| e.value).unwrap_or(Duration::from_secs(3600)),
    })
}

#[cfg(test)]
mod tests {
    use crate::model::tests::{MIC, codes};
    use crate::spec;

    #[test]
    fn keep_if_detection_needs_a_detector() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\n{MIC}saving {{ keep-if detection }}\n"
            )),
            ["model::missing_setting"]
        );
    }

    #[test]
    fn undeclared_detector() {
        let src = "program \"p\"\nmicrophone \"m\" { synthetic \"sine\"; samplerate \"250kHz\" }\ndetector \"bats\" kind=\"band-energy\" { band low=\"20kHz\" high=\"100kHz\" }\nsaving { keep-if detection detector=\"bat\" }\n";
        assert_eq!(codes(src), ["model::undeclared_reference"]);
    }

    #[test]
    fn band_above_nyquist() {
        let src = format!(
            "program \"p\"\n{MIC}detector \"bats\" kind=\"band-energy\" {{ band low=\"20kHz\" high=\"120kHz\" }}\n"
        );
        assert_eq!(codes(&src), ["model::band_above_nyquist"]);
    }

    #[test]
    fn folder_template_placeholders() {
        let src = format!("program \"p\"\n{MIC}saving {{ folder \"{{dat:%Y}}\" }}\n");
        assert_eq!(codes(&src), ["model::invalid_folder_template"]);
        let src = format!("program \"p\"\n{MIC}saving {{ folder \"../{{date:%Y}}\" }}\n");
        assert_eq!(codes(&src), ["model::invalid_folder_template"]);
        let src =
            format!("program \"p\"\n{MIC}saving {{ folder \"{{program}}/{{date:%Y-%m}}\" }}\n");
        assert!(codes(&src).is_empty());
    }

    #[test]
    fn mqtt_plaintext_password_warns() {
        let src = format!(
            "program \"p\"\n{MIC}messaging {{ mqtt host=\"h\" {{ password \"hunter2\" }} }}\n"
        );
        assert_eq!(codes(&src), ["model::plaintext_secret"]);
    }

    /// The detectors `src` validates to.
    fn detectors(src: &str) -> Vec<spec::Detector> {
        let mut d = crate::diagnostic::Diagnostics::default();
        let ast = crate::manifest::parse(src, &mut d).expect("parses");
        let model = crate::model::validate(&ast, &mut d).expect("validates");
        assert!(d.into_sorted().is_empty(), "no diagnostics");
        model.detectors
    }

    #[test]
    fn command_detectors_serve_by_default_and_take_a_mode_and_a_startup_timeout() {
        let cmd = |body: &str| {
            format!(
                "program \"p\"\n{MIC}detector \"d\" kind=\"command\" {{ command \"/bin/d\"; {body} }}\n"
            )
        };
        let kind = |body: &str| detectors(&cmd(body)).remove(0).kind;
        assert!(matches!(
            kind(""),
            spec::DetectorKind::Command {
                mode: spec::CommandMode::Serve,
                startup_timeout_ms: spec::DEFAULT_STARTUP_TIMEOUT_MS,
                ..
            }
        ));
        assert!(matches!(
            kind("mode \"per-file\"; startup-timeout \"5m\""),
            spec::DetectorKind::Command {
                mode: spec::CommandMode::PerFile,
                startup_timeout_ms: 300_000,
                ..
            }
        ));
        assert_eq!(codes(&cmd("mode \"daemon\"")), ["manifest::invalid_value"]);
        assert_eq!(
            codes(&cmd("startup-timeout \"2h\"")),
            ["model::out_of_range"]
        );
        assert_eq!(codes(&cmd("overlap 0.5")), ["manifest::unknown_node"]);
    }

    #[test]
    fn band_energy_overlap_defaults_to_half_a_frame_and_stays_below_one() {
        let band = |body: &str| {
            format!(
                "program \"p\"\n{MIC}detector \"b\" kind=\"band-energy\" {{ band low=\"1kHz\" high=\"2kHz\"; {body} }}\n"
            )
        };
        let overlap = |body: &str| match detectors(&band(body)).remove(0).kind {
            spec::DetectorKind::BandEnergy { overlap, .. } => overlap,
            other => panic!("{other:?}"),
        };
        assert_eq!(overlap(""), 0.5);
        assert_eq!(overlap("overlap 0.75"), 0.75);
        assert_eq!(codes(&band("overlap 0.95")), ["model::out_of_range"]);
        assert_eq!(codes(&band("mode \"serve\"")), ["manifest::unknown_node"]);
    }

    #[test]
    fn batdetect2_takes_a_model_chunking_and_a_threshold_of_0_2_by_default() {
        let bd = |body: &str| {
            format!("program \"p\"\n{MIC}detector \"b\" kind=\"batdetect2\" {{ {body} }}\n")
        };
        let kind = |body: &str| detectors(&bd(body)).remove(0).kind;
        assert_eq!(
            kind(""),
            spec::DetectorKind::Batdetect2 {
                model: None,
                chunked: false,
                threshold: 0.2
            }
        );
        assert_eq!(
            kind("model \"/m/x.pth.tar\"; chunked #true; threshold 0.4"),
            spec::DetectorKind::Batdetect2 {
                model: Some("/m/x.pth.tar".into()),
                chunked: true,
                threshold: 0.4
            }
        );
        assert_eq!(codes(&bd("model \"x.pth.tar\"")), ["model::relative_path"]);
        assert_eq!(codes(&bd("chunked \"yes\"")), ["manifest::wrong_type"]);
        assert_eq!(
            codes(&bd("band low=\"1kHz\" high=\"2kHz\"")),
            ["manifest::unknown_node"]
        );
        assert_eq!(codes(&bd("threshold 2")), ["model::out_of_range"]);
    }

    #[test]
    fn batdetect2_detectors_give_tags_to_keep_newest() {
        let src = format!(
            "program \"p\"\n{MIC}detector \"b\" kind=\"batdetect2\"\nretention {{ max-age \"30d\"; keep-newest 5 per=\"species\" }}\n"
        );
        assert!(codes(&src).is_empty(), "{:?}", codes(&src));
    }

    #[test]
    fn band_needs_both_edges() {
        let src = format!(
            "program \"p\"\n{MIC}detector \"b\" kind=\"band-energy\" {{ band low=\"1kHz\" }}\n"
        );
        assert_eq!(codes(&src), ["manifest::missing_property"]);
    }

    #[test]
    fn recording_messages_take_no_score() {
        let src = format!(
            "program \"p\"\n{MIC}messaging {{ mqtt host=\"h\"; message recording min-score=0.5 }}\n"
        );
        assert_eq!(codes(&src), ["manifest::unknown_property"]);
    }

    #[test]
    fn expiry_and_the_mqtt_timeout_have_defaults_and_ranges() {
        let src = |send: &str, mqtt: &str| {
            format!(
                "program \"p\"\n{MIC}messaging {{ mqtt host=\"h\" {{ {mqtt} }}; send {send} }}\n"
            )
        };
        let messaging = |send: &str, mqtt: &str| {
            crate::model::tests::model(&src(send, mqtt))
                .messaging
                .expect("messaging")
        };
        let m = messaging("", "");
        assert_eq!((m.max_attempts, m.max_age_ms), (20, 30 * 86_400_000));
        assert_eq!(m.mqtt.expect("mqtt").timeout_ms, 10_000);
        let m = messaging("max-attempts=1 max-age=\"365d\"", "timeout \"10m\"");
        assert_eq!((m.max_attempts, m.max_age_ms), (1, 365 * 86_400_000));
        assert_eq!(m.mqtt.expect("mqtt").timeout_ms, 600_000);
        let m = messaging("max-attempts=1000 max-age=\"1h\"", "timeout \"1s\"");
        assert_eq!((m.max_attempts, m.max_age_ms), (1000, 3_600_000));
        assert_eq!(m.mqtt.expect("mqtt").timeout_ms, 1_000);
        for (send, mqtt) in [
            ("max-attempts=0", ""),
            ("max-attempts=1001", ""),
            ("max-age=\"59m\"", ""),
            ("max-age=\"366d\"", ""),
            ("", "timeout \"999ms\""),
            ("", "timeout \"11m\""),
        ] {
            assert_eq!(
                codes(&src(send, mqtt)),
                ["model::out_of_range"],
                "{send} {mqtt}"
            );
        }
        assert_eq!(
            codes(&src("max-attempts=\"5\"", "")),
            ["manifest::wrong_type"]
        );
        assert_eq!(
            codes(&src("max-age=\"soon\"", "")),
            ["manifest::invalid_duration"]
        );
        assert_eq!(codes(&src("", "timeout 10")), ["manifest::wrong_type"]);
    }

    #[test]
    fn messaging_needs_a_destination() {
        let src = format!("program \"p\"\n{MIC}messaging {{ send every=\"1m\" }}\n");
        assert_eq!(codes(&src), ["model::missing_setting"]);
    }
}
