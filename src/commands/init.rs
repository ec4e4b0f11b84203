//! `acoupi init [PATH] [--template NAME] [--no-prompt]`: write a new manifest.
//!
//! With `--template NAME --no-prompt`, one of the bundled examples (`examples/*.kdl`, embedded
//! in the binary) is written as it is. Without `--no-prompt`, a wizard on stdin/stdout asks for
//! the program kind, its name and timezone, the microphone, the schedule and window, the
//! location, the broker, the storage paths and the messaging, validating every answer as it
//! is given (with the `units` parsers) and every section against the whole manifest (with
//! `compile::check`), then writes a commented manifest that passes `acoupi check`. An
//! existing file is never overwritten (exit 1); input ending early writes nothing (exit 1).

use std::io::{BufRead, Write};

use crate::ExitStatus;
use crate::cli::InitArgs;
use crate::compile;
use crate::lifecycle::refuse;
use crate::units;

/// A bundled example.
struct Template {
    name: &'static str,
    summary: &'static str,
    text: &'static str,
}

/// The bundled examples, in the order the wizard lists them.
const TEMPLATES: &[Template] = &[
    Template {
        name: "default",
        summary: "record on a schedule and keep every recording",
        text: include_str!("../../examples/default.kdl"),
    },
    Template {
        name: "connected",
        summary: "record on a schedule and report over MQTT",
        text: include_str!("../../examples/connected.kdl"),
    },
    Template {
        name: "detection",
        summary: "detect bats, keep recordings with detections, report them over MQTT",
        text: include_str!("../../examples/detection.kdl"),
    },
    Template {
        name: "quickstart",
        summary: "runs anywhere: a synthetic microphone and in-process queues",
        text: include_str!("../../examples/quickstart.kdl"),
    },
];

fn template(name: &str) -> Result<&'static Template, String> {
    TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        format!(
            "no template `{name}`; {}",
            crate::diagnostic::one_of_help(name, &names)
        )
    })
}

/// Writes the manifest.
pub fn run(args: &InitArgs) -> ExitStatus {
    if std::fs::symlink_metadata(&args.path).is_ok() {
        return refuse(format!(
            "`{}` already exists; `acoupi init` never overwrites a file: choose another path",
            args.path
        ));
    }
    let preset = match args.template.as_deref().map(template).transpose() {
        Ok(t) => t,
        Err(e) => return refuse(e),
    };
    let (text, kind) = match (preset, args.no_prompt) {
        (Some(t), true) => (t.text.to_owned(), t.name),
        (_, _) => {
            let stdin = std::io::stdin();
            let mut input = stdin.lock();
            let mut output = std::io::stdout().lock();
            let kind = preset.map(|t| Kind::from_name(t.name));
            match wizard(&mut input, &mut output, kind) {
                Ok((text, kind)) => (text, kind.name()),
                Err(e) => return refuse(e),
            }
        }
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&args.path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        return refuse(format!("cannot write `{}`: {e}", args.path));
    }
    println!(
        "wrote `{}` (the `{kind}` program); next: `acoupi check {p}`, then `acoupi build {p} --home DIR`",
        args.path,
        p = shell(args.path.as_str())
    );
    ExitStatus::Success
}

fn shell(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.to_owned())
}

/// The kind of program the wizard writes, after the bundled examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Record on a schedule.
    Default,
    /// Record and report over MQTT.
    Connected,
    /// Detect bats, keep and report detections.
    Detection,
    /// Synthetic microphone, in-process queues.
    Quickstart,
}

impl Kind {
    fn from_name(name: &str) -> Kind {
        match name {
            "connected" => Kind::Connected,
            "detection" => Kind::Detection,
            "quickstart" => Kind::Quickstart,
            _ => Kind::Default,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Default => "default",
            Kind::Connected => "connected",
            Kind::Detection => "detection",
            Kind::Quickstart => "quickstart",
        }
    }

    fn detects(self) -> bool {
        matches!(self, Kind::Detection | Kind::Quickstart)
    }
}

/// Everything the wizard asked.
#[derive(Debug, Clone)]
struct Answers {
    kind: Kind,
    name: String,
    timezone: String,
    device: String,
    samplerate_hz: u32,
    continuous: bool,
    duration: String,
    interval: String,
    window: Option<(String, String)>,
    location: Option<(f64, f64)>,
    broker: String,
    broker_user: Option<String>,
    broker_password_env: Option<String>,
    staging: Option<String>,
    recordings: Option<String>,
    metadata: Option<String>,
    messages: Option<String>,
    mqtt: Option<Mqtt>,
}

#[derive(Debug, Clone)]
struct Mqtt {
    host: String,
    port: u16,
    topic: String,
    username: Option<String>,
    password_env: Option<String>,
}

impl Answers {
    fn new(kind: Kind) -> Self {
        Answers {
            kind,
            name: match kind {
                Kind::Detection => "bat-monitor".to_owned(),
                other => other.name().to_owned(),
            },
            timezone: "UTC".to_owned(),
            device: "default".to_owned(),
            samplerate_hz: if kind == Kind::Detection {
                250_000
            } else if kind == Kind::Quickstart {
                192_000
            } else {
                48_000
            },
            continuous: false,
            duration: "3s".to_owned(),
            interval: "10s".to_owned(),
            window: None,
            location: None,
            broker: DEFAULT_BROKER.to_owned(),
            broker_user: None,
            broker_password_env: None,
            staging: None,
            recordings: None,
            metadata: None,
            messages: None,
            mqtt: None,
        }
    }
}

const DEFAULT_BROKER: &str = "amqp://127.0.0.1:5672/%2f";

/// The wizard stopped.
type Abort = String;

/// Reads answers from `input`, writing questions to `output`.
struct Prompter<'a> {
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
}

impl Prompter<'_> {
    fn say(&mut self, text: &str) -> Result<(), Abort> {
        writeln!(self.output, "{text}").map_err(|e| format!("cannot write the questions: {e}"))
    }

    /// Asks until `parse` accepts the answer; an empty answer is `default`.
    fn ask<T>(
        &mut self,
        question: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, Abort> {
        loop {
            let shown = if default.is_empty() {
                String::new()
            } else {
                format!(" [{default}]")
            };
            write!(self.output, "{question}{shown}: ")
                .and_then(|()| self.output.flush())
                .map_err(|e| format!("cannot write the questions: {e}"))?;
            let mut line = String::new();
            let n = self
                .input
                .read_line(&mut line)
                .map_err(|e| format!("cannot read the answers: {e}"))?;
            if n == 0 {
                let _ = writeln!(self.output);
                return Err(format!(
                    "the input ended before the manifest was complete (at `{question}`); nothing was written"
                ));
            }
            let answer = line.trim();
            let answer = if answer.is_empty() { default } else { answer };
            match parse(answer) {
                Ok(v) => return Ok(v),
                Err(e) => self.say(&format!("  invalid: {e}"))?,
            }
        }
    }
}

/// Accepts any non-empty text on one line.
fn text_answer(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("an answer is needed".to_owned())
    } else if s.chars().any(char::is_control) {
        Err("control characters are not allowed".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

/// Empty (or `none`) for nothing, else text.
fn optional(
    s: &str,
    parse: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<String>, String> {
    if s.is_empty() || s.eq_ignore_ascii_case("none") {
        Ok(None)
    } else {
        parse(s).map(Some)
    }
}

fn env_name(s: &str) -> Result<String, String> {
    let ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an environment variable name: use letters, digits and `_`, e.g. `ACOUPI_MQTT_PASSWORD`"
        ))
    }
}

fn absolute_path(s: &str) -> Result<String, String> {
    let p = camino::Utf8Path::new(s);
    if !p.is_absolute() {
        Err(format!(
            "`{s}` is not an absolute path (it must start with `/`)"
        ))
    } else if p.components().any(|c| c.as_str() == "..") {
        Err(format!("`{s}` contains `..`"))
    } else if s.chars().any(char::is_control) {
        Err("control characters are not allowed".to_owned())
    } else {
        Ok(s.to_owned())
    }
}

fn duration_in(s: &str, min_ms: u128, max_ms: u128, range: &str) -> Result<String, String> {
    let d = units::parse_duration(s).map_err(|e| e.to_string())?;
    if d.as_millis() < min_ms || d.as_millis() > max_ms {
        return Err(format!("`{s}` is outside {range}"));
    }
    Ok(units::format_duration(d))
}

fn time_of_day(s: &str) -> Result<(String, bool), String> {
    let t = units::parse_time_of_day(s).map_err(|e| e.to_string())?;
    let sun = matches!(t, units::TimeOfDay::Sun { .. });
    Ok((units::format_time_of_day(&t), sun))
}

fn coordinate(s: &str, limit: f64, what: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of degrees"))?;
    if !v.is_finite() || v.abs() > limit {
        return Err(format!("{what} must be between -{limit} and {limit}"));
    }
    Ok(v)
}

fn yes_no(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(true),
        "n" | "no" => Ok(false),
        _ => Err("answer `y` or `n`".to_owned()),
    }
}

fn broker_url(s: &str) -> Result<String, String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "amqp" | "amqps") || url.host_str().is_none_or(str::is_empty) {
        return Err("the broker URL must be `amqp://HOST…` or `amqps://HOST…`".to_owned());
    }
    if url.password().is_some() {
        return Err(
            "do not put the password in the URL: the next question asks for the variable holding it"
                .to_owned(),
        );
    }
    Ok(s.to_owned())
}

/// The slug of a program name (as the compiler makes it for MQTT topics).
fn slug(name: &str) -> String {
    let s: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() {
        "program".to_owned()
    } else {
        s
    }
}

/// Runs the wizard: returns the manifest text and the kind chosen.
pub fn wizard(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    preset: Option<Kind>,
) -> Result<(String, Kind), Abort> {
    let mut p = Prompter { input, output };
    p.say("acoupi init: a few questions, each with its default in [brackets] (press Enter to take it).")?;
    let kind = match preset {
        Some(k) => k,
        None => {
            p.say("\nWhat should the sensor do?")?;
            for (i, t) in TEMPLATES.iter().enumerate() {
                p.say(&format!("  {}. {:<11} {}", i + 1, t.name, t.summary))?;
            }
            p.ask("Program kind (number or name)", "default", |s| {
                if let Ok(i) = s.parse::<usize>()
                    && (1..=TEMPLATES.len()).contains(&i)
                {
                    return Ok(Kind::from_name(TEMPLATES[i - 1].name));
                }
                template(s).map(|t| Kind::from_name(t.name))
            })?
        }
    };
    let mut a = Answers::new(kind);

    section(&mut p, &mut a, "Program", |p, a| {
        a.name = p.ask("Program name", &a.name.clone(), text_answer)?;
        a.timezone = p.ask("Timezone (IANA name)", &a.timezone.clone(), |s| {
            jiff::tz::db().get(s).map(|_| s.to_owned()).map_err(|_| {
                format!("`{s}` is not a known timezone, e.g. `Europe/London` or `UTC`")
            })
        })?;
        Ok(())
    })?;

    let devices = if a.kind == Kind::Quickstart {
        Ok(Vec::new())
    } else {
        crate::audio::device::list().map_err(|e| e.to_string())
    };
    section(&mut p, &mut a, "Microphone", |p, a| {
        if a.kind == Kind::Quickstart {
            p.say(
                "The quickstart program records a synthetic microphone playing bat-like sweeps.",
            )?;
        } else {
            match &devices {
                Ok(found) if !found.is_empty() => {
                    p.say("Input devices found:")?;
                    for d in found {
                        let rates = match (d.samplerates.first(), d.samplerates.last()) {
                            (Some(lo), Some(hi)) => format!(
                                " ({} to {})",
                                units::format_frequency(*lo),
                                units::format_frequency(*hi)
                            ),
                            _ => String::new(),
                        };
                        p.say(&format!("  {}. {}{rates}", d.index, d.name))?;
                    }
                }
                Ok(_) => p.say(
                    "No audio input device was found (plug the microphone in, or name it anyway).",
                )?,
                Err(e) => p.say(&format!(
                    "The audio input devices could not be listed ({e}); name the device anyway."
                ))?,
            }
            let found = devices.as_ref().map(Vec::as_slice).unwrap_or_default();
            a.device = p.ask(
                "Input device (its number, part of its name, or `default`)",
                &a.device.clone(),
                |s| match s
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| found.iter().find(|d| d.index == i))
                {
                    Some(d) => Ok(d.name.clone()),
                    None => text_answer(s),
                },
            )?;
        }
        let min_hz = if a.kind.detects() { 96_000 } else { 1_000 };
        a.samplerate_hz = p.ask(
            "Sample rate",
            &units::format_frequency(a.samplerate_hz),
            |s| {
                let hz = units::parse_frequency(s).map_err(|e| e.to_string())?;
                if hz < min_hz || hz > 768_000 {
                    return Err(format!(
                        "use {} to 768kHz{}",
                        units::format_frequency(min_hz),
                        if a.kind.detects() {
                            " (bat calls reach above 40kHz)"
                        } else {
                            ""
                        }
                    ));
                }
                Ok(hz)
            },
        )?;
        Ok(())
    })?;

    section(&mut p, &mut a, "Schedule", |p, a| {
        a.continuous = p.ask(
            "Recording mode (duty-cycle or continuous)",
            "duty-cycle",
            |s| match s {
                "duty-cycle" => Ok(false),
                "continuous" => Ok(true),
                _ => Err(
                    "answer `duty-cycle` (one recording per interval) or `continuous`".to_owned(),
                ),
            },
        )?;
        if a.continuous {
            a.duration = p.ask("Length of each file", "1m", |s| {
                duration_in(s, 100, 3_600_000, "100ms to 1h")
            })?;
        } else {
            a.duration = p.ask("Length of each recording", &a.duration.clone(), |s| {
                duration_in(s, 100, 3_600_000, "100ms to 1h")
            })?;
            let duration = units::parse_duration(&a.duration).map_err(|e| e.to_string())?;
            a.interval = p.ask("Time between recording starts", &a.interval.clone(), |s| {
                let text = duration_in(s, 100, 86_400_000, "100ms to 1d")?;
                let interval = units::parse_duration(s).map_err(|e| e.to_string())?;
                if interval < duration {
                    return Err(format!(
                        "shorter than the {} recordings",
                        units::format_duration(duration)
                    ));
                }
                Ok(text)
            })?;
        }
        p.say("Record only inside a daily window? Times are clock times (`21:00`) or sun events (`sunset-30m`, `sunrise+30m`, `dawn`, `dusk`).")?;
        let from = p.ask("Window start (empty: record all day)", "", |s| {
            if s.is_empty() {
                Ok(None)
            } else {
                time_of_day(s).map(Some)
            }
        })?;
        let mut needs_location = false;
        a.window = match from {
            None => None,
            Some((from, sun_from)) => {
                let (to, sun_to) = p.ask("Window end", "", |s| {
                    let (to, sun) = time_of_day(s)?;
                    if to == from {
                        return Err(
                            "the end equals the start; for all day, leave the window out"
                                .to_owned(),
                        );
                    }
                    Ok((to, sun))
                })?;
                needs_location = sun_from || sun_to;
                Some((from, to))
            }
        };
        if needs_location {
            p.say("Sun times need the sensor's location.")?;
        }
        let latitude = p.ask(
            if needs_location {
                "Latitude (degrees north)"
            } else {
                "Latitude (degrees north, empty to skip)"
            },
            "",
            |s| {
                if s.is_empty() && !needs_location {
                    Ok(None)
                } else {
                    coordinate(s, 90.0, "the latitude").map(Some)
                }
            },
        )?;
        a.location = match latitude {
            None => None,
            Some(lat) => {
                let lon = p.ask("Longitude (degrees east)", "", |s| {
                    coordinate(s, 180.0, "the longitude")
                })?;
                Some((lat, lon))
            }
        };
        Ok(())
    })?;

    if a.kind != Kind::Quickstart {
        section(&mut p, &mut a, "Broker", |p, a| {
            p.say("Tasks travel through RabbitMQ.")?;
            a.broker = p.ask("Broker URL", &a.broker.clone(), broker_url)?;
            a.broker_password_env = p.ask(
                "Environment variable holding the broker password (empty: none)",
                "",
                |s| optional(s, env_name),
            )?;
            a.broker_user = match a.broker_password_env {
                Some(_) => Some(p.ask("Broker user name", "acoupi", text_answer)?),
                None => None,
            };
            Ok(())
        })?;

        section(&mut p, &mut a, "Storage", |p, a| {
            p.say("Where data goes (absolute paths; `none` keeps it inside the home, which a rebuild empties).")?;
            let home = std::env::var("HOME")
                .ok()
                .filter(|h| h.starts_with('/'))
                .unwrap_or_else(|| "/home/pi".to_owned());
            let storage = format!("{}/acoupi-storage", home.trim_end_matches('/'));
            a.staging = p.ask(
                "Staging directory (ideally on tmpfs)",
                "/run/shm/acoupi",
                |s| optional(s, absolute_path),
            )?;
            a.recordings = p.ask(
                "Recordings directory",
                &format!("{storage}/recordings"),
                |s| optional(s, absolute_path),
            )?;
            a.metadata = p.ask(
                "Metadata database",
                &format!("{storage}/metadata.db"),
                |s| optional(s, absolute_path),
            )?;
            Ok(())
        })?;

        let wants_mqtt = match a.kind {
            Kind::Connected | Kind::Detection => true,
            _ => p.ask("Report over MQTT? (y/n)", "n", yes_no)?,
        };
        if wants_mqtt {
            section(&mut p, &mut a, "Messaging", |p, a| {
                let host = p.ask("MQTT host", "127.0.0.1", |s| {
                    let s = text_answer(s)?;
                    if s.contains(char::is_whitespace) || s.contains('/') {
                        Err("give a host name or address only, without spaces or `/`".to_owned())
                    } else {
                        Ok(s)
                    }
                })?;
                let port = p.ask("MQTT port", "1883", |s| {
                    s.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| format!("`{s}` is not a port (1 to 65535)"))
                })?;
                let topic = p.ask("MQTT topic", &format!("acoupi/{}", slug(&a.name)), |s| {
                    let s = text_answer(s)?;
                    if s.contains(['+', '#']) {
                        Err("a topic to publish to cannot hold `+` or `#`".to_owned())
                    } else {
                        Ok(s)
                    }
                })?;
                let username = p.ask("MQTT user name (empty: none)", "", |s| {
                    optional(s, text_answer)
                })?;
                let password_env = p.ask(
                    "Environment variable holding the MQTT password (empty: none)",
                    if username.is_some() {
                        "ACOUPI_MQTT_PASSWORD"
                    } else {
                        ""
                    },
                    |s| optional(s, env_name),
                )?;
                a.messages = p.ask(
                    "Message database (outbox)",
                    &a.metadata.as_deref().map_or_else(String::new, |m| {
                        camino::Utf8Path::new(m)
                            .with_file_name("messages.db")
                            .to_string()
                    }),
                    |s| optional(s, absolute_path),
                )?;
                a.mqtt = Some(Mqtt {
                    host,
                    port,
                    topic,
                    username,
                    password_env,
                });
                Ok(())
            })?;
        }
    }

    let text = render(&a);
    let issues = check_text(&text);
    if !issues.is_empty() {
        return Err(format!(
            "the manifest written from these answers does not check ({}); nothing was written",
            issues.join("; ")
        ));
    }
    p.say("\nThe manifest checks.")?;
    Ok((text, a.kind))
}

/// Asks one section; repeats it while the manifest with its answers has errors.
fn section(
    p: &mut Prompter<'_>,
    a: &mut Answers,
    title: &str,
    ask: impl Fn(&mut Prompter<'_>, &mut Answers) -> Result<(), Abort>,
) -> Result<(), Abort> {
    p.say(&format!("\n{title}"))?;
    loop {
        let mut trial = a.clone();
        ask(p, &mut trial)?;
        let issues = check_text(&render(&trial));
        if issues.is_empty() {
            *a = trial;
            return Ok(());
        }
        for issue in &issues {
            p.say(&format!("  invalid: {issue}"))?;
        }
        p.say("  Please answer this part again.")?;
    }
}

/// The errors `compile::check` finds in `text`, one line each (message and help).
fn check_text(text: &str) -> Vec<String> {
    let source = compile::from_bytes("acoupi.kdl", "/acoupi.kdl".into(), text.as_bytes().to_vec());
    compile::check(&source)
        .issues
        .iter()
        .filter(|i| i.is_error())
        .map(|i| {
            let help = miette::Diagnostic::help(i)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            format!("{i}{help}")
        })
        .collect()
}

/// A KDL string literal holding exactly `s`.
fn q(s: &str) -> String {
    crate::manifest::kdl_string(s)
}

/// The manifest for `a`, with comments.
fn render(a: &Answers) -> String {
    use std::fmt::Write as _;
    let mut m = String::new();
    let _ = writeln!(m, "/- kdl-version 2");
    let _ = writeln!(
        m,
        "// Written by `acoupi init` (a `{}` program). Check it with `acoupi check FILE`,",
        a.kind.name()
    );
    let _ = writeln!(
        m,
        "// build it with `acoupi build FILE --home DIR`; every node is described in"
    );
    let _ = writeln!(m, "// schema/manifest.md.");
    let _ = writeln!(m, "acoupi version=1\n");

    let description = match a.kind {
        Kind::Default => "Scheduled recording",
        Kind::Connected => "Scheduled recording with MQTT reporting",
        Kind::Detection => "Bat detection with MQTT reporting",
        Kind::Quickstart => "Synthetic bat calls, detected and saved",
    };
    let _ = writeln!(m, "program {} {{", q(&a.name));
    let _ = writeln!(m, "    description {}", q(description));
    let _ = writeln!(m, "    timezone {}", q(&a.timezone));
    if let Some((lat, lon)) = a.location {
        let _ = writeln!(m, "    location latitude={lat:?} longitude={lon:?}");
    }
    let _ = writeln!(m, "}}\n");

    if a.kind == Kind::Quickstart {
        let _ = writeln!(
            m,
            "// In-process queues: `acoupi run` only, no RabbitMQ needed."
        );
        let _ = writeln!(m, "broker \"memory\"\n");
    } else {
        let _ = writeln!(
            m,
            "// RabbitMQ carries the tasks between the scheduler and the workers."
        );
        match (&a.broker_user, &a.broker_password_env) {
            (Some(user), Some(var)) => {
                let _ = writeln!(m, "broker {} {{", q(&a.broker));
                let _ = writeln!(m, "    username {}", q(user));
                let _ = writeln!(
                    m,
                    "    // Put `{var}=…` in config/secrets.env of the home for the systemd units."
                );
                let _ = writeln!(m, "    password env={}", q(var));
                let _ = writeln!(m, "}}\n");
            }
            _ => {
                let _ = writeln!(m, "broker {}\n", q(&a.broker));
            }
        }
    }

    let _ = writeln!(m, "microphone \"mic\" {{");
    if a.kind == Kind::Quickstart {
        let _ = writeln!(
            m,
            "    synthetic \"sweep\" from=\"80kHz\" to=\"40kHz\" length=\"5ms\" every=\"100ms\" amplitude=0.5"
        );
    } else {
        let _ = writeln!(
            m,
            "    // The input device whose name contains this text, or \"default\"."
        );
        let _ = writeln!(m, "    device {}", q(&a.device));
    }
    let _ = writeln!(
        m,
        "    samplerate {}",
        q(&units::format_frequency(a.samplerate_hz))
    );
    let _ = writeln!(m, "}}\n");

    let _ = writeln!(m, "recording {{");
    if a.continuous {
        let _ = writeln!(m, "    // One open stream, cut into files of `duration`.");
        let _ = writeln!(m, "    mode \"continuous\"");
        let _ = writeln!(m, "    duration {}", q(&a.duration));
    } else {
        let _ = writeln!(m, "    // One recording of `duration` every `interval`.");
        let _ = writeln!(m, "    duration {}", q(&a.duration));
        let _ = writeln!(m, "    interval {}", q(&a.interval));
    }
    if let Some((from, to)) = &a.window {
        let _ = writeln!(m, "    window from={} to={}", q(from), q(to));
    }
    let _ = writeln!(m, "}}\n");

    let mut paths = Vec::new();
    for (key, value) in [
        ("staging", &a.staging),
        ("recordings", &a.recordings),
        ("metadata", &a.metadata),
        ("messages", &a.messages),
    ] {
        if let Some(v) = value {
            paths.push(format!("    {key} {}", q(v)));
        }
    }
    if !paths.is_empty() {
        let _ = writeln!(m, "// Storage outside the home, which a rebuild empties.");
        let _ = writeln!(m, "paths {{\n{}\n}}\n", paths.join("\n"));
    }

    if a.kind.detects() {
        let high = (a.samplerate_hz / 2).min(120_000);
        let _ = writeln!(
            m,
            "// Energy between 20kHz and {} against the whole spectrum.",
            units::format_frequency(high)
        );
        let _ = writeln!(m, "detector \"bats\" kind=\"band-energy\" {{");
        let _ = writeln!(
            m,
            "    band low=\"20kHz\" high={}",
            q(&units::format_frequency(high))
        );
        let _ = writeln!(m, "    threshold 0.5");
        let _ = writeln!(m, "}}\n");
        let _ = writeln!(
            m,
            "// Keep the recordings with a detection; delete the rest."
        );
        let _ = writeln!(m, "saving {{\n    keep-if detection min-score=0.5\n}}");
    } else {
        let _ = writeln!(m, "// Without a `saving` node every recording is kept.");
    }

    if let Some(mqtt) = &a.mqtt {
        let _ = writeln!(m, "\nmessaging {{");
        let _ = writeln!(
            m,
            "    mqtt host={} port={} topic={}{}",
            q(&mqtt.host),
            mqtt.port,
            q(&mqtt.topic),
            if mqtt.username.is_some() || mqtt.password_env.is_some() {
                " {"
            } else {
                ""
            }
        );
        if let Some(u) = &mqtt.username {
            let _ = writeln!(m, "        username {}", q(u));
        }
        if let Some(var) = &mqtt.password_env {
            let _ = writeln!(
                m,
                "        // Put `{var}=…` in config/secrets.env of the home for the systemd units."
            );
            let _ = writeln!(m, "        password env={}", q(var));
        }
        if mqtt.username.is_some() || mqtt.password_env.is_some() {
            let _ = writeln!(m, "    }}");
        }
        let _ = writeln!(m, "    heartbeat every=\"1h\"");
        if a.kind.detects() {
            let _ = writeln!(m, "    message detection min-score=0.5");
        } else {
            let _ = writeln!(m, "    message recording");
        }
        let _ = writeln!(m, "}}");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_wizard(answers: &str, preset: Option<Kind>) -> (Result<(String, Kind), Abort>, String) {
        let mut input = std::io::Cursor::new(answers.as_bytes().to_vec());
        let mut output = Vec::new();
        let r = wizard(&mut input, &mut output, preset);
        (r, String::from_utf8(output).expect("utf-8"))
    }

    #[test]
    fn every_bundled_example_checks() {
        for t in TEMPLATES {
            assert_eq!(check_text(t.text), Vec::<String>::new(), "{}", t.name);
        }
    }

    #[test]
    fn all_defaults_give_a_valid_manifest_for_every_kind() {
        for kind in ["1", "2", "3", "4"] {
            let (r, out) = run_wizard(&format!("{kind}\n{}", "\n".repeat(40)), None);
            let (text, _) = r.unwrap_or_else(|e| panic!("kind {kind}: {e}\n{out}"));
            assert!(check_text(&text).is_empty(), "{text}");
        }
    }

    #[test]
    fn the_input_ending_early_aborts() {
        let (r, _) = run_wizard("2\nmy program\n", None);
        let e = r.expect_err("ends early");
        assert!(e.contains("input ended"), "{e}");
    }

    #[test]
    fn strings_are_quoted_for_kdl() {
        assert_eq!(q("a \"b\" \\ c\nd"), "\"a \\\"b\\\" \\\\ c\\nd\"");
        assert_eq!(slug("Bat Monitor #1"), "bat-monitor--1");
    }
}
