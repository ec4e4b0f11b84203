//! Decoders for the sensor side of the manifest: `program`, `microphone`, `recording`,
//! `paths`, `detector` and `saving`.
//!
//! In: one `KdlNode`. Out: its raw AST node; problems go to the collector.

use kdl::KdlNode;

use super::ast::*;
use super::reader::{self, Shape, arg, args, check_shape, children, name, prop, value_arg};
use crate::diagnostic::{Diagnostics, Spanned};

const NO_PROPS: &[&str] = &[];

fn block(
    args: &'static str,
    max_args: usize,
    props: &'static [&'static str],
    ex: &'static str,
) -> Shape {
    Shape {
        min_args: max_args.min(1),
        max_args,
        args,
        props,
        children: true,
        example: ex,
    }
}

/// A name argument (`program "x"`, `microphone "m"`).
fn name_arg(node: &KdlNode, what: &str, diags: &mut Diagnostics) -> Option<Spanned<String>> {
    arg(node, 0).and_then(|e| reader::string(e, what, diags))
}

/// `program NAME { description; timezone; location; device-id }`.
pub(super) fn program(node: &KdlNode, diags: &mut Diagnostics) -> ProgramNode {
    check_shape(
        node,
        &block(
            "a name",
            1,
            NO_PROPS,
            "program \"bat-monitor\" { timezone \"Europe/London\" }",
        ),
        diags,
    );
    let mut out = ProgramNode {
        span: node.span(),
        name: name_arg(node, "the program name", diags),
        description: None,
        timezone: None,
        location: None,
        device_id: None,
    };
    let allowed = ["description", "timezone", "location", "device-id"];
    for child in children(node, &allowed, &[], diags) {
        match name(child) {
            "description" => {
                out.description = value_arg(child, "a text", "description \"north hedge\"", diags)
                    .and_then(|e| reader::string(e, "the description", diags));
            }
            "timezone" => {
                out.timezone = value_arg(
                    child,
                    "an IANA timezone",
                    "timezone \"Europe/London\"",
                    diags,
                )
                .and_then(|e| reader::string(e, "the timezone", diags));
            }
            "device-id" => {
                // The characters allowed are checked in `model`, with the other values.
                out.device_id = value_arg(child, "an id", "device-id \"site-7-pi\"", diags)
                    .and_then(|e| reader::string(e, "the device id", diags));
            }
            _ => out.location = Some(location(child, diags)),
        }
    }
    out
}

fn location(node: &KdlNode, diags: &mut Diagnostics) -> LocationNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &["latitude", "longitude", "elevation"],
            children: false,
            example: "location latitude=51.5074 longitude=-0.1278",
        },
        diags,
    );
    // Ranges are checked in `model` so the message can name the coordinate; here only types.
    let num = |key: &str, what: &str, diags: &mut Diagnostics| {
        prop(node, key).and_then(|e| reader::number(e, what, f64::MIN, f64::MAX, diags))
    };
    LocationNode {
        span: node.span(),
        latitude: num("latitude", "the latitude", diags),
        longitude: num("longitude", "the longitude", diags),
        elevation: num("elevation", "the elevation", diags),
    }
}

/// `microphone NAME { device|synthetic|file; samplerate; channels; time-expansion; format }`.
pub(super) fn microphone(node: &KdlNode, diags: &mut Diagnostics) -> MicrophoneNode {
    check_shape(
        node,
        &block(
            "a name",
            1,
            NO_PROPS,
            "microphone \"ultramic\" { device \"UltraMic\" }",
        ),
        diags,
    );
    let mut out = MicrophoneNode {
        span: node.span(),
        name: name_arg(node, "the microphone name", diags),
        source: None,
        samplerate: None,
        channels: None,
        time_expansion: None,
        format: None,
    };
    const SOURCES: [&str; 3] = ["device", "synthetic", "file"];
    let allowed = [
        "device",
        "synthetic",
        "file",
        "samplerate",
        "channels",
        "time-expansion",
        "format",
    ];
    for child in children(node, &allowed, &[], diags) {
        let n = name(child);
        if SOURCES.contains(&n) {
            if let Some(first) = &out.source {
                diags.push(crate::diagnostic::Issue::ConflictingSettings {
                    message: format!("microphone has more than one source: `{n}`"),
                    span: child.name().span(),
                    label: "second source".into(),
                    other: first.span,
                    help: Some(
                        "a microphone reads from one `device`, `synthetic` or `file` source".into(),
                    ),
                });
                continue;
            }
            let source = match n {
                "device" => value_arg(child, "a device name", "device \"UltraMic 250K\"", diags)
                    .and_then(|e| reader::string(e, "the device name", diags))
                    .map(SourceNode::Device),
                "synthetic" => Some(SourceNode::Synthetic(synthetic(child, diags))),
                _ => Some(file_source(child, diags)),
            };
            out.source = source.map(|s| Spanned::new(s, child.span()));
            continue;
        }
        match n {
            "samplerate" => {
                out.samplerate = value_arg(child, "a sample rate", "samplerate \"250kHz\"", diags)
                    .and_then(|e| reader::frequency(e, "the sample rate", diags));
            }
            "channels" => {
                out.channels =
                    value_arg(child, "a channel count", "channels 1", diags).and_then(|e| {
                        reader::integer(e, "the channel count", i128::MIN, i128::MAX, diags)
                    });
            }
            "time-expansion" => {
                out.time_expansion = value_arg(child, "a factor", "time-expansion 10", diags)
                    .and_then(|e| {
                        reader::number(e, "the time expansion", f64::MIN, f64::MAX, diags)
                    });
            }
            _ => {
                out.format =
                    value_arg(child, "a sample format", "format \"i16\"", diags).and_then(|e| {
                        reader::choice(e, "sample format", &["i16", "i24", "i32", "f32"], diags)
                    });
            }
        }
    }
    out
}

fn synthetic(node: &KdlNode, diags: &mut Diagnostics) -> SyntheticNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a signal",
            props: &["frequency", "from", "to", "length", "every", "amplitude"],
            children: false,
            example: "synthetic \"sweep\" from=\"80kHz\" to=\"40kHz\" length=\"5ms\" every=\"100ms\"",
        },
        diags,
    );
    let freq = |k: &str, what: &str, diags: &mut Diagnostics| {
        prop(node, k).and_then(|e| reader::frequency(e, what, diags))
    };
    let dur = |k: &str, what: &str, diags: &mut Diagnostics| {
        prop(node, k).and_then(|e| reader::duration(e, what, diags))
    };
    SyntheticNode {
        signal: arg(node, 0).and_then(|e| {
            reader::choice(
                e,
                "synthetic signal",
                &["sine", "noise", "bursts", "sweep", "counter"],
                diags,
            )
        }),
        frequency: freq("frequency", "the tone frequency", diags),
        from: freq("from", "the sweep start frequency", diags),
        to: freq("to", "the sweep end frequency", diags),
        length: dur("length", "the call length", diags),
        every: dur("every", "the call interval", diags),
        amplitude: prop(node, "amplitude")
            .and_then(|e| reader::number(e, "the amplitude", f64::MIN, f64::MAX, diags)),
    }
}

fn file_source(node: &KdlNode, diags: &mut Diagnostics) -> SourceNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a WAV file path",
            props: &["loop"],
            children: false,
            example: "file \"/srv/audio/night.wav\" loop=#true",
        },
        diags,
    );
    SourceNode::File {
        path: arg(node, 0).and_then(|e| reader::string(e, "the file path", diags)),
        looped: prop(node, "loop").and_then(|e| reader::boolean(e, "`loop`", diags)),
    }
}

/// `window from=… to=…` (also used by `keep-if window`).
pub(super) fn window(
    node: &KdlNode,
    example: &'static str,
    max_args: usize,
    diags: &mut Diagnostics,
) -> WindowNode {
    check_shape(
        node,
        &Shape {
            min_args: max_args,
            max_args,
            args: "the rule kind",
            props: &["from", "to"],
            children: false,
            example,
        },
        diags,
    );
    let time = |k: &str, diags: &mut Diagnostics| {
        reader::required(node, k, example, diags)
            .and_then(|e| reader::time_of_day(e, &format!("the window `{k}` time"), diags))
    };
    WindowNode {
        span: node.span(),
        from: time("from", diags),
        to: time("to", diags),
    }
}

/// `recording { microphone; mode; duration; interval; window…; min-free-disk }`.
pub(super) fn recording(node: &KdlNode, diags: &mut Diagnostics) -> RecordingNode {
    check_shape(
        node,
        &block(
            "",
            0,
            NO_PROPS,
            "recording { duration \"3s\"; interval \"10s\" }",
        ),
        diags,
    );
    let mut out = RecordingNode {
        span: node.span(),
        microphone: None,
        mode: None,
        duration: None,
        interval: None,
        windows: Vec::new(),
        min_free_disk: None,
        staging_budget: None,
    };
    let allowed = [
        "microphone",
        "mode",
        "duration",
        "interval",
        "window",
        "min-free-disk",
        "staging-budget",
    ];
    for child in children(node, &allowed, &["window"], diags) {
        match name(child) {
            "microphone" => {
                out.microphone =
                    value_arg(child, "a microphone name", "microphone \"ultramic\"", diags)
                        .and_then(|e| reader::string(e, "the microphone name", diags));
            }
            "mode" => {
                out.mode = value_arg(child, "a mode", "mode \"continuous\"", diags).and_then(|e| {
                    reader::choice(e, "recording mode", &["duty-cycle", "continuous"], diags)
                });
            }
            "duration" => {
                out.duration = value_arg(child, "a duration", "duration \"3s\"", diags)
                    .and_then(|e| reader::duration(e, "the recording duration", diags));
            }
            "interval" => {
                out.interval = value_arg(child, "a duration", "interval \"10s\"", diags)
                    .and_then(|e| reader::duration(e, "the recording interval", diags));
            }
            "window" => out.windows.push(window(
                child,
                "window from=\"sunset-30m\" to=\"sunrise+30m\"",
                0,
                diags,
            )),
            "staging-budget" => {
                out.staging_budget = value_arg(
                    child,
                    "a percentage or a size",
                    "staging-budget \"256MiB\"",
                    diags,
                )
                .and_then(|e| reader::usage(e, "the staging budget", diags));
            }
            _ => {
                out.min_free_disk = value_arg(child, "a size", "min-free-disk \"2GiB\"", diags)
                    .and_then(|e| reader::size(e, "the minimum free disk space", diags));
            }
        }
    }
    out
}

/// `paths { staging; recordings; metadata; messages }`.
pub(super) fn paths(node: &KdlNode, diags: &mut Diagnostics) -> PathsNode {
    check_shape(
        node,
        &block(
            "",
            0,
            NO_PROPS,
            "paths { recordings \"/srv/acoupi/recordings\" }",
        ),
        diags,
    );
    let mut out = PathsNode::default();
    let allowed = ["staging", "recordings", "metadata", "messages"];
    for child in children(node, &allowed, &[], diags) {
        let value = value_arg(
            child,
            "an absolute path",
            "recordings \"/srv/acoupi/recordings\"",
            diags,
        )
        .and_then(|e| reader::string(e, "a path", diags));
        match name(child) {
            "staging" => out.staging = value,
            "recordings" => out.recordings = value,
            "metadata" => out.metadata = value,
            _ => out.messages = value,
        }
    }
    out
}

/// `detector NAME kind=… { band; threshold; frame; overlap; command; timeout; mode;
/// startup-timeout; model; chunked }`.
pub(super) fn detector(node: &KdlNode, diags: &mut Diagnostics) -> DetectorNode {
    check_shape(
        node,
        &block(
            "a name",
            1,
            &["kind"],
            "detector \"bats\" kind=\"band-energy\" { band low=\"20kHz\" high=\"120kHz\" }",
        ),
        diags,
    );
    let kind = match prop(node, "kind") {
        Some(e) => reader::choice(
            e,
            "detector kind",
            &["band-energy", "command", "batdetect2"],
            diags,
        ),
        None => {
            diags.push(crate::diagnostic::Issue::MissingProperty {
                node: "detector".into(),
                name: "kind".into(),
                span: reader::after_name(node),
                help: Some(
                    "write `kind=\"band-energy\"`, `kind=\"command\"` or `kind=\"batdetect2\"`"
                        .into(),
                ),
            });
            None
        }
    };
    let mut out = DetectorNode {
        span: node.span(),
        name: name_arg(node, "the detector name", diags),
        kind,
        band: None,
        threshold: None,
        frame: None,
        overlap: None,
        command: None,
        timeout: None,
        mode: None,
        startup_timeout: None,
        model: None,
        chunked: None,
        given: Vec::new(),
    };
    let allowed = [
        "band",
        "threshold",
        "frame",
        "overlap",
        "command",
        "timeout",
        "mode",
        "startup-timeout",
        "model",
        "chunked",
    ];
    for child in children(node, &allowed, &[], diags) {
        out.given
            .push((name(child).to_owned(), child.name().span()));
        match name(child) {
            "band" => {
                check_shape(
                    child,
                    &Shape {
                        min_args: 0,
                        max_args: 0,
                        args: "",
                        props: &["low", "high"],
                        children: false,
                        example: "band low=\"20kHz\" high=\"120kHz\"",
                    },
                    diags,
                );
                let edge = |key: &str, what: &str, diags: &mut Diagnostics| {
                    reader::required(child, key, "band low=\"20kHz\" high=\"120kHz\"", diags)
                        .and_then(|e| reader::frequency(e, what, diags))
                };
                out.band = Some(BandNode {
                    span: child.span(),
                    low: edge("low", "the band's low edge", diags),
                    high: edge("high", "the band's high edge", diags),
                });
            }
            "threshold" => {
                out.threshold = value_arg(child, "a score", "threshold 0.5", diags)
                    .and_then(|e| reader::number(e, "the threshold", f64::MIN, f64::MAX, diags));
            }
            "frame" => {
                out.frame = value_arg(child, "a duration", "frame \"10ms\"", diags)
                    .and_then(|e| reader::duration(e, "the analysis frame", diags));
            }
            "command" => {
                check_shape(
                    child,
                    &Shape {
                        min_args: 1,
                        max_args: usize::MAX,
                        args: "a program and its arguments",
                        props: &[],
                        children: false,
                        example: "command \"/usr/local/bin/detect\" \"--min-score\" \"0.3\"",
                    },
                    diags,
                );
                let argv: Vec<_> = args(child)
                    .filter_map(|e| reader::string(e, "a command argument", diags).map(|s| s.value))
                    .collect();
                if !argv.is_empty() {
                    out.command = Some(Spanned::new(argv, child.span()));
                }
            }
            "overlap" => {
                out.overlap = value_arg(child, "a fraction", "overlap 0.5", diags)
                    .and_then(|e| reader::number(e, "the overlap", f64::MIN, f64::MAX, diags));
            }
            "mode" => {
                out.mode = value_arg(child, "a mode", "mode \"serve\"", diags)
                    .and_then(|e| reader::choice(e, "command mode", &["serve", "per-file"], diags));
            }
            "model" => {
                out.model = value_arg(
                    child,
                    "a path",
                    "model \"/home/pi/.local/share/acoupi/models/batdetect2/Net2DFast_UK_same.pth.tar\"",
                    diags,
                )
                .and_then(|e| reader::string(e, "the model file", diags));
            }
            "chunked" => {
                out.chunked = value_arg(child, "`#true` or `#false`", "chunked #true", diags)
                    .and_then(|e| reader::boolean(e, "`chunked`", diags));
            }
            "startup-timeout" => {
                out.startup_timeout =
                    value_arg(child, "a duration", "startup-timeout \"2m\"", diags)
                        .and_then(|e| reader::duration(e, "the start-up timeout", diags));
            }
            _ => {
                out.timeout = value_arg(child, "a duration", "timeout \"30s\"", diags)
                    .and_then(|e| reader::duration(e, "the command timeout", diags));
            }
        }
    }
    out
}

/// `saving { keep-if …; folder; otherwise }`.
pub(super) fn saving(node: &KdlNode, diags: &mut Diagnostics) -> SavingNode {
    check_shape(
        node,
        &block(
            "",
            0,
            NO_PROPS,
            "saving { keep-if detection min-score=0.5 }",
        ),
        diags,
    );
    let mut out = SavingNode {
        span: node.span(),
        rules: Vec::new(),
        folder: None,
        otherwise: None,
    };
    for child in children(
        node,
        &["keep-if", "folder", "otherwise"],
        &["keep-if"],
        diags,
    ) {
        match name(child) {
            "keep-if" => {
                if let Some(rule) = keep_if(child, diags) {
                    out.rules.push(rule);
                }
            }
            "folder" => {
                out.folder = value_arg(
                    child,
                    "a folder template",
                    "folder \"{date:%Y}/{date:%m}/{date:%d}\"",
                    diags,
                )
                .and_then(|e| reader::string(e, "the folder template", diags));
            }
            _ => {
                out.otherwise =
                    value_arg(child, "`delete` or `keep`", "otherwise \"delete\"", diags).and_then(
                        |e| reader::choice(e, "`otherwise` action", &["delete", "keep"], diags),
                    );
            }
        }
    }
    out
}

fn keep_if(node: &KdlNode, diags: &mut Diagnostics) -> Option<RuleNode> {
    let Some(kind_entry) = arg(node, 0) else {
        check_shape(
            node,
            &Shape::value("a rule kind", "keep-if detection min-score=0.5"),
            diags,
        );
        return None;
    };
    let kind = reader::choice(
        kind_entry,
        "rule kind",
        &["detection", "window", "every"],
        diags,
    )?;
    let shape = |props: &'static [&'static str], example: &'static str| Shape {
        min_args: 1,
        max_args: 1,
        args: "the rule kind",
        props,
        children: false,
        example,
    };
    match kind.value {
        "detection" => {
            check_shape(
                node,
                &shape(
                    &["min-score", "detector"],
                    "keep-if detection min-score=0.5",
                ),
                diags,
            );
            Some(RuleNode::Detection {
                span: node.span(),
                min_score: prop(node, "min-score")
                    .and_then(|e| reader::number(e, "`min-score`", f64::MIN, f64::MAX, diags)),
                detector: prop(node, "detector")
                    .and_then(|e| reader::string(e, "the detector name", diags)),
            })
        }
        "window" => Some(RuleNode::Window(window(
            node,
            "keep-if window from=\"21:00\" to=\"21:30\"",
            1,
            diags,
        ))),
        _ => {
            check_shape(node, &shape(&["n"], "keep-if every n=10"), diags);
            let n = match prop(node, "n") {
                Some(e) => reader::integer(e, "`n`", 1, i128::from(u32::MAX), diags),
                None => {
                    diags.push(crate::diagnostic::Issue::MissingProperty {
                        node: "keep-if every".into(),
                        name: "n".into(),
                        span: kind.span,
                        help: Some(
                            "write `keep-if every n=10` to keep one recording in ten".into(),
                        ),
                    });
                    None
                }
            };
            Some(RuleNode::Every {
                span: node.span(),
                n,
            })
        }
    }
}
