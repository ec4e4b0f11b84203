//! Stage 2, validate: the raw [`Ast`] to a typed [`Model`].
//!
//! In: the AST (possibly partial: values that failed to decode are missing). Out: a `Model`
//! with defaults applied, names checked, references resolved and the task graph and worker
//! topology derived, or `None` when any error was found. Every problem is pushed into the
//! collector; nothing stops at the first one.

mod audio;
pub mod host;
mod processing;
mod storage;
mod topology;

use camino::Utf8PathBuf;
use miette::SourceSpan;

use crate::diagnostic::{Diagnostics, Issue, Spanned, did_you_mean};
use crate::manifest::Ast;
use crate::manifest::ast::{BrokerNode, ProgramNode, SecretRef};
use crate::spec::{self, Broker, Secret};

/// The validated manifest: everything `plan::lower` needs, nothing left to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Program name.
    pub name: String,
    /// Description.
    pub description: String,
    /// IANA timezone.
    pub timezone: String,
    /// Location, when given.
    pub location: Option<spec::Location>,
    /// Device id, when given; else the machine's is used at run time.
    pub device_id: Option<String>,
    /// Task broker.
    pub broker: Broker,
    /// Storage paths; `None` means the default under the home.
    pub paths: StoragePaths,
    /// Microphones.
    pub microphones: Vec<spec::Microphone>,
    /// Recording settings.
    pub recording: spec::Recording,
    /// Detectors.
    pub detectors: Vec<spec::Detector>,
    /// Saving rules.
    pub saving: spec::Saving,
    /// When kept recordings are deleted; `None` never.
    pub retention: Option<spec::Retention>,
    /// Messaging.
    pub messaging: Option<spec::Messaging>,
    /// Summaries.
    pub summary: Option<spec::Summary>,
    /// The task graph.
    pub tasks: Vec<spec::Task>,
    /// The queues tasks are routed to.
    pub queues: Vec<spec::Queue>,
    /// Workers.
    pub workers: Vec<spec::Worker>,
    /// The model files detectors load, for the check of the machine the manifest is built on
    /// ([`host::issues`]).
    pub model_files: Vec<ModelFile>,
}

/// A model file a detector loads, and where the manifest names it (or its detector).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// The detector.
    pub detector: String,
    /// The file as written; `None` for the installed default.
    pub path: Option<Utf8PathBuf>,
    /// The `model` node, or the detector's name when there is none.
    pub span: SourceSpan,
}

/// Storage paths as written; `None` takes the default under `ACOUPI_HOME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoragePaths {
    /// Staging directory.
    pub staging: Option<Utf8PathBuf>,
    /// Recordings directory.
    pub recordings: Option<Utf8PathBuf>,
    /// Metadata database.
    pub metadata: Option<Utf8PathBuf>,
    /// Message database.
    pub messages: Option<Utf8PathBuf>,
}

/// Validates the AST; returns the model when no error (warnings allowed) was found.
pub fn validate(ast: &Ast, diags: &mut Diagnostics) -> Option<Model> {
    let (name, description, timezone, location) = program(ast.program.as_ref(), diags);
    let device_id = ast
        .program
        .as_ref()
        .and_then(|p| p.device_id.as_ref())
        .and_then(|id| device_id(id, diags));
    let broker = broker(ast.broker.as_ref(), diags);
    let paths = storage_paths(ast, diags);
    let microphones = audio::microphones(ast, diags);
    let (mut recording, windows) = audio::recording(ast, location.is_some(), diags);
    let detectors = processing::detectors(ast, &microphones, &recording, diags);
    let saving = processing::saving(ast, &detectors, location.is_some(), diags);
    let mic = microphones.iter().find(|m| m.name == recording.microphone);
    recording.staging_budget = storage::staging_budget(ast, mic, &recording, diags);
    let retention = storage::retention(ast, mic, &recording, &detectors, diags);
    let messaging = processing::messaging(ast, &name, &detectors, diags);
    let summary = processing::summary(ast, &detectors, diags);
    let graph = topology::derive(
        ast,
        topology::Needs {
            recording: &recording,
            windows,
            detectors: &detectors,
            messaging: messaging.as_ref(),
            summary: summary.as_ref(),
        },
        diags,
    );
    if diags.has_errors() {
        return None;
    }
    Some(Model {
        name,
        description,
        timezone,
        location,
        device_id,
        broker,
        paths,
        microphones,
        recording,
        detectors,
        saving,
        retention,
        messaging: messaging.map(|m| m.spec),
        summary: summary.map(|s| s.spec),
        tasks: graph.tasks,
        queues: graph.queues,
        workers: graph.workers,
        model_files: processing::model_files(ast),
    })
}

fn program(
    node: Option<&ProgramNode>,
    diags: &mut Diagnostics,
) -> (String, String, String, Option<spec::Location>) {
    let Some(node) = node else {
        return (String::new(), String::new(), "UTC".into(), None);
    };
    let name = node
        .name
        .as_ref()
        .map(|n| n.value.clone())
        .unwrap_or_default();
    if let Some(n) = &node.name
        && (n.value.trim().is_empty() || n.value.contains('\0'))
    {
        diags.push(Issue::InvalidValue {
            value: n.value.escape_debug().to_string(),
            what: "program name".into(),
            span: n.span,
            help: Some("give the program a name, e.g. `program \"bat-monitor\"`".into()),
        });
    }
    let description = node
        .description
        .as_ref()
        .map(|d| d.value.clone())
        .unwrap_or_default();
    let timezone = match &node.timezone {
        Some(tz) => timezone(tz, diags),
        None => "UTC".into(),
    };
    let location = node.location.as_ref().and_then(|loc| {
        let lat = coordinate(loc.latitude.as_ref(), "latitude", 90.0, loc.span, diags);
        let lon = coordinate(loc.longitude.as_ref(), "longitude", 180.0, loc.span, diags);
        let elevation = match &loc.elevation {
            Some(e) if !(-500.0..=9000.0).contains(&e.value) => {
                diags.push(Issue::OutOfRange {
                    what: "the elevation".into(),
                    value: format!("{} m", e.value),
                    span: e.span,
                    expected: "expected -500 to 9000 metres".into(),
                    help: None,
                });
                0.0
            }
            Some(e) => e.value,
            None => 0.0,
        };
        Some(spec::Location {
            latitude: lat?,
            longitude: lon?,
            elevation_m: elevation,
        })
    });
    (name, description, timezone, location)
}

/// The longest device id accepted.
const MAX_DEVICE_ID: usize = 64;

/// A device id: it goes into MQTT topics and file names, so 1 to 64 printable ASCII
/// characters, none of them a space, `/`, `+` or `#`.
fn device_id(id: &Spanned<String>, diags: &mut Diagnostics) -> Option<String> {
    let v = &id.value;
    let bad = v
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '/' | '+' | '#'));
    let problem = if v.trim().is_empty() {
        Some("it is blank".to_owned())
    } else if let Some(c) = bad {
        Some(format!("it contains {}", describe_char(c)))
    } else if v.len() > MAX_DEVICE_ID {
        Some(format!("it is {} characters long", v.chars().count()))
    } else {
        None
    };
    let Some(problem) = problem else {
        return Some(v.clone());
    };
    diags.push(Issue::InvalidValue {
        value: v.escape_debug().to_string(),
        what: "device id".into(),
        span: id.span,
        help: Some(format!(
            "{problem}; use 1 to {MAX_DEVICE_ID} printable ASCII characters without spaces, `/`, `+` or `#` (the id goes into MQTT topics and file names), e.g. `device-id \"site-7-pi\"`"
        )),
    });
    None
}

/// A character as a help names it: a space, a control or non-ASCII character by its code.
fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        c if c.is_ascii_graphic() => format!("`{c}`"),
        c => format!("the character U+{:04X}", u32::from(c)),
    }
}

fn coordinate(
    value: Option<&Spanned<f64>>,
    what: &'static str,
    limit: f64,
    node: SourceSpan,
    diags: &mut Diagnostics,
) -> Option<f64> {
    let Some(v) = value else {
        diags.push(Issue::MissingProperty {
            node: "location".into(),
            name: what.into(),
            span: node,
            help: Some("write both: location latitude=51.5074 longitude=-0.1278".into()),
        });
        return None;
    };
    if !(-limit..=limit).contains(&v.value) {
        diags.push(Issue::OutOfRange {
            what: format!("the {what}"),
            value: v.value.to_string(),
            span: v.span,
            expected: format!("expected -{limit} to {limit} degrees"),
            help: (what == "latitude" && v.value.abs() <= 180.0)
                .then(|| "latitude and longitude may be swapped".to_owned()),
        });
        return None;
    }
    Some(v.value)
}

fn timezone(tz: &Spanned<String>, diags: &mut Diagnostics) -> String {
    // The database bundled in the binary: checks give the same answer on every machine,
    // and no zoneinfo directory is walked on every `acoupi check`.
    static BUNDLED: std::sync::OnceLock<jiff::tz::TimeZoneDatabase> = std::sync::OnceLock::new();
    let db = BUNDLED.get_or_init(jiff::tz::TimeZoneDatabase::bundled);
    if db.get(&tz.value).is_ok() {
        return tz.value.clone();
    }
    let names: Vec<String> = db.available().map(|n| n.to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let help = did_you_mean(&tz.value, &refs)
        .unwrap_or_else(|| "use an IANA name such as `Europe/London` or `UTC`".into());
    diags.push(Issue::UnknownTimezone {
        name: tz.value.clone(),
        span: tz.span,
        help: Some(help),
    });
    "UTC".into()
}

/// The default broker: RabbitMQ on this machine.
pub const DEFAULT_BROKER_URL: &str = "amqp://127.0.0.1:5672/%2f";

fn broker(node: Option<&BrokerNode>, diags: &mut Diagnostics) -> Broker {
    let Some(node) = node else {
        return Broker::Amqp {
            url: Some(DEFAULT_BROKER_URL.into()),
            url_env: None,
            username: None,
            password: None,
        };
    };
    if let Some(url) = &node.url
        && url.value == "memory"
    {
        if let Some(cred) = node.username.as_ref().or(node.password.as_ref()) {
            diags.push(Issue::ConflictingSettings {
                message: "the in-process broker takes no credentials".into(),
                span: cred.span,
                label: "credential".into(),
                other: url.span,
                help: Some("remove `username` and `password`, or give an `amqp://` URL".into()),
            });
        }
        return Broker::Memory;
    }
    let username = node.username.as_ref().and_then(|s| secret(s, None, diags));
    let password = node
        .password
        .as_ref()
        .and_then(|s| secret(s, Some("the broker password"), diags));
    if let Some(url) = &node.url {
        check_broker_url(url, diags);
    }
    if let Some(env) = &node.url_env {
        check_env_name(env, diags);
    }
    Broker::Amqp {
        url: node.url.as_ref().map(|u| u.value.clone()),
        url_env: node.url_env.as_ref().map(|u| u.value.clone()),
        username,
        password,
    }
}

fn check_broker_url(url: &Spanned<String>, diags: &mut Diagnostics) {
    let bad = |reason: String, help: &str, diags: &mut Diagnostics| {
        diags.push(Issue::InvalidBrokerUrl {
            url: url.value.clone(),
            reason,
            span: url.span,
            help: Some(help.to_owned()),
        });
    };
    let example = "write `amqp://HOST:5672/%2f`, or `memory` for in-process queues";
    match url::Url::parse(&url.value) {
        Err(e) => bad(e.to_string(), example, diags),
        Ok(u) if !matches!(u.scheme(), "amqp" | "amqps") => bad(
            format!("scheme `{}` is not `amqp` or `amqps`", u.scheme()),
            example,
            diags,
        ),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => bad("no host".into(), example, diags),
        Ok(u) => {
            if u.password().is_some() {
                diags.push(Issue::PlaintextSecret {
                    what: "the broker password".into(),
                    span: url.span,
                    help: Some(
                        "drop the password from the URL and write `password env=\"ACOUPI_BROKER_PASSWORD\"` in the `broker` block"
                            .into(),
                    ),
                });
            }
        }
    }
}

/// Converts a secret reference, checking the variable name or path, and warning about a
/// plain-text value when `sensitive` names what it is.
pub(crate) fn secret(
    s: &Spanned<SecretRef>,
    sensitive: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<Secret> {
    match &s.value {
        SecretRef::Plain(v) => {
            if let Some(what) = sensitive {
                diags.push(Issue::PlaintextSecret {
                    what: what.to_owned(),
                    span: s.span,
                    help: Some(
                        "write `env=\"VARIABLE\"` or `file=\"/path/to/secret\"` instead, so the manifest holds no secret"
                            .into(),
                    ),
                });
            }
            Some(Secret::Value(v.clone()))
        }
        SecretRef::Env(name) => {
            check_env_name(&Spanned::new(name.clone(), s.span), diags);
            Some(Secret::Env(name.clone()))
        }
        SecretRef::File(path) => absolute(
            &Spanned::new(path.clone(), s.span),
            "the secret file",
            diags,
        )
        .map(Secret::File),
    }
}

fn check_env_name(name: &Spanned<String>, diags: &mut Diagnostics) {
    let ok = name
        .value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        diags.push(Issue::InvalidSecretReference {
            message: format!("`{}` is not an environment variable name", name.value.escape_debug()),
            span: name.span,
            help: Some("use letters, digits and `_`, not starting with a digit, e.g. `ACOUPI_MQTT_PASSWORD`".into()),
        });
    }
}

/// An absolute path without `..`, or a `model::relative_path` or `model::parent_in_path`
/// diagnostic (systemd refuses `..` in the units' path settings, and a path that climbs out
/// of a directory is never what a sandbox should be given).
pub(crate) fn absolute(
    path: &Spanned<String>,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Utf8PathBuf> {
    let p = Utf8PathBuf::from(&path.value);
    if p.is_absolute() && !path.value.contains('\0') {
        if p.components()
            .any(|c| c == camino::Utf8Component::ParentDir)
        {
            let mut clean = Utf8PathBuf::new();
            for c in p.components() {
                if c == camino::Utf8Component::ParentDir {
                    clean.pop();
                } else {
                    clean.push(c);
                }
            }
            diags.push(Issue::ParentInPath {
                what: what.to_owned(),
                path: path.value.clone(),
                span: path.span,
                help: Some(format!("write the directory it means, e.g. `{clean}`")),
            });
            return None;
        }
        return Some(p);
    }
    let help = if path.value.starts_with('~') {
        "`~` is not expanded; write the full path, e.g. `/home/pi/…`".to_owned()
    } else {
        format!(
            "write the full path, e.g. `/home/pi/{}`",
            path.value.trim_start_matches("./")
        )
    };
    diags.push(Issue::RelativePath {
        what: what.to_owned(),
        path: path.value.clone(),
        span: path.span,
        help: Some(help),
    });
    None
}

fn storage_paths(ast: &Ast, diags: &mut Diagnostics) -> StoragePaths {
    let Some(p) = &ast.paths else {
        return StoragePaths::default();
    };
    let mut get =
        |v: &Option<Spanned<String>>, what: &str| v.as_ref().and_then(|s| absolute(s, what, diags));
    StoragePaths {
        staging: get(&p.staging, "the staging path"),
        recordings: get(&p.recordings, "the recordings path"),
        metadata: get(&p.metadata, "the metadata database path"),
        messages: get(&p.messages, "the messages database path"),
    }
}

/// Whether `name` is a valid worker, queue, microphone or detector name.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks names for validity and uniqueness, reporting `model::invalid_name` and
/// `model::duplicate_name`.
pub(crate) fn check_names<'a>(
    what: &'static str,
    names: impl IntoIterator<Item = &'a Spanned<String>>,
    diags: &mut Diagnostics,
) {
    let mut seen: Vec<&Spanned<String>> = Vec::new();
    for n in names {
        if !valid_name(&n.value) {
            diags.push(Issue::InvalidName {
                what,
                name: n.value.escape_debug().to_string(),
                span: n.span,
            });
        } else if let Some(first) = seen.iter().find(|s| s.value == n.value) {
            diags.push(Issue::DuplicateName {
                what,
                name: n.value.clone(),
                span: n.span,
                first: first.span,
                help: Some(format!("give each {what} its own name")),
            });
        }
        seen.push(n);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::diagnostic::Diagnostics;

    /// Validates `src` and returns the sorted issue codes.
    pub(crate) fn codes(src: &str) -> Vec<String> {
        let mut d = Diagnostics::default();
        if let Some(ast) = crate::manifest::parse(src, &mut d) {
            super::validate(&ast, &mut d);
        }
        d.into_sorted().iter().map(|i| i.code_str()).collect()
    }

    pub(crate) const MIC: &str = "microphone \"m\" { synthetic \"sine\" }\n";

    /// The model `src` validates to, with no diagnostic at all.
    pub(crate) fn model(src: &str) -> super::Model {
        let mut d = Diagnostics::default();
        let ast = crate::manifest::parse(src, &mut d).expect("parses");
        let model = super::validate(&ast, &mut d).expect("validates");
        assert!(d.into_sorted().is_empty(), "no diagnostics");
        model
    }

    #[test]
    fn minimal_manifest_is_clean() {
        assert!(codes(&format!("program \"p\"\n{MIC}")).is_empty());
    }

    #[test]
    fn unknown_timezone() {
        assert_eq!(
            codes(&format!(
                "program \"p\" {{ timezone \"Europe/Londn\" }}\n{MIC}"
            )),
            ["model::unknown_timezone"]
        );
    }

    #[test]
    fn latitude_out_of_range() {
        assert_eq!(
            codes(&format!(
                "program \"p\" {{ location latitude=91 longitude=0 }}\n{MIC}"
            )),
            ["model::out_of_range"]
        );
    }

    #[test]
    fn a_device_id_is_kept_when_it_fits_topics_and_file_names() {
        let program = |id: &str| format!("program \"p\" {{ device-id \"{id}\" }}\n{MIC}");
        assert_eq!(model(&format!("program \"p\"\n{MIC}")).device_id, None);
        assert_eq!(
            model(&program("site-7_pi.A:1")).device_id.as_deref(),
            Some("site-7_pi.A:1")
        );
        let longest = "x".repeat(64);
        assert_eq!(
            model(&program(&longest)).device_id.as_deref(),
            Some(longest.as_str())
        );
        for bad in [
            "", "  ", "site 7", "site/7", "site+7", "site#7", "s\\t7", "é",
        ] {
            assert_eq!(
                codes(&program(bad)),
                ["manifest::invalid_value"],
                "device id {bad:?}"
            );
        }
        assert_eq!(
            codes(&program(&"x".repeat(65))),
            ["manifest::invalid_value"]
        );
        assert_eq!(
            codes(&format!("program \"p\" {{ device-id 7 }}\n{MIC}")),
            ["manifest::wrong_type"]
        );
    }

    #[test]
    fn a_bad_device_id_says_what_is_wrong() {
        use miette::Diagnostic;
        let mut d = Diagnostics::default();
        let src = format!("program \"p\" {{ device-id \"site/7\" }}\n{MIC}");
        let ast = crate::manifest::parse(&src, &mut d).expect("parses");
        assert!(super::validate(&ast, &mut d).is_none());
        let issues = d.into_sorted();
        let help = issues[0].help().map(|h| h.to_string()).unwrap_or_default();
        assert!(help.starts_with("it contains `/`; use 1 to 64"), "{help}");
    }

    #[test]
    fn broker_url_with_password_warns() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\nbroker \"amqp://u:secret@h/%2f\"\n{MIC}"
            )),
            ["model::plaintext_secret"]
        );
    }

    #[test]
    fn broker_url_must_be_amqp() {
        assert_eq!(
            codes(&format!("program \"p\"\nbroker \"http://h\"\n{MIC}")),
            ["model::invalid_broker_url"]
        );
    }

    #[test]
    fn relative_paths_are_rejected() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\npaths {{ recordings \"data/rec\" }}\n{MIC}"
            )),
            ["model::relative_path"]
        );
    }

    #[test]
    fn paths_that_go_up_are_rejected() {
        assert_eq!(
            codes(&format!(
                "program \"p\"\npaths {{ staging \"/tmp/..\" }}\n{MIC}"
            )),
            ["model::parent_in_path"]
        );
        assert!(
            codes(&format!(
                "program \"p\"\npaths {{ staging \"/tmp/a..b\" }}\n{MIC}"
            ))
            .is_empty()
        );
    }
}
