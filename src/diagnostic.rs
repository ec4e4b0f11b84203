//! Manifest diagnostics: one miette enum for every mistake a manifest can hold, a collector
//! the decoder and validator push into, and `Spanned<T>` values that remember where they were
//! written.
//!
//! In: spans (byte offsets into the manifest) and the facts of each mistake. Out: `Issue`
//! values with a stable code (`manifest::…` for shape and syntax, `model::…` for meaning), a
//! label on the exact node or entry and a help that says what to write instead.

use miette::{Diagnostic, Severity, SourceSpan};
use thiserror::Error;

/// A value decoded from the manifest together with the span it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The decoded value.
    pub value: T,
    /// Where it was written (byte offsets into the manifest).
    pub span: SourceSpan,
}

impl<T> Spanned<T> {
    /// Pairs a value with its span.
    pub fn new(value: T, span: SourceSpan) -> Self {
        Self { value, span }
    }

    /// Maps the value, keeping the span.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned {
            value: f(self.value),
            span: self.span,
        }
    }
}

/// One mistake (or warning) in a manifest.
///
/// Every variant carries the span it is about, a stable code and a help. Warnings are marked
/// with `severity(Warning)`; everything else is an error.
#[derive(Debug, Clone, Error, Diagnostic)]
#[allow(missing_docs)] // the variants document themselves through their messages and codes
pub enum Issue {
    /// The text is not valid KDL 2.0.
    #[error("{message}")]
    #[diagnostic(code(manifest::syntax))]
    Syntax {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    /// Children blocks nested deeper than any manifest needs; found before the KDL parser
    /// runs, so hostile nesting cannot exhaust the stack.
    #[error("children blocks are nested more than {max} levels deep")]
    #[diagnostic(
        code(manifest::too_deep),
        help(
            "acoupi's nodes nest two levels deep (`messaging {{ mqtt … {{ password … }} }}`); close each `{{` with a `}}`, or remove the extra `{{`"
        )
    )]
    TooDeep {
        max: usize,
        #[label("level {} starts here", max + 1)]
        span: SourceSpan,
    },

    /// The file holds no nodes at all, or lacks a node every manifest needs.
    #[error("missing `{name}` node")]
    #[diagnostic(code(manifest::missing_node))]
    MissingNode {
        name: &'static str,
        #[label("expected a `{name}` node in this block")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown node `{name}`{context}")]
    #[diagnostic(code(manifest::unknown_node))]
    UnknownNode {
        name: String,
        context: String,
        #[label("not a known node here")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{name}` is given more than once{context}")]
    #[diagnostic(code(manifest::duplicate_node))]
    DuplicateNode {
        name: String,
        context: String,
        #[label(primary, "given again here")]
        span: SourceSpan,
        #[label("first given here")]
        first: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("unknown property `{name}` on `{node}`")]
    #[diagnostic(code(manifest::unknown_property))]
    UnknownProperty {
        name: String,
        node: String,
        #[label("not a property of `{node}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("property `{name}` is given more than once on `{node}`")]
    #[diagnostic(code(manifest::duplicate_property), help("remove one of them"))]
    DuplicateProperty {
        name: String,
        node: String,
        #[label(primary, "given again here")]
        span: SourceSpan,
        #[label("first given here")]
        first: SourceSpan,
    },

    #[error("`{node}` needs {what}")]
    #[diagnostic(code(manifest::missing_argument))]
    MissingArgument {
        node: String,
        what: String,
        #[label("argument missing here")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{node}` takes {expected}")]
    #[diagnostic(code(manifest::unexpected_argument))]
    UnexpectedArgument {
        node: String,
        expected: String,
        #[label("unexpected argument")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{node}` needs the property `{name}`")]
    #[diagnostic(code(manifest::missing_property))]
    MissingProperty {
        node: String,
        name: String,
        #[label("`{name}` missing here")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{node}` has no children block")]
    #[diagnostic(
        code(manifest::unexpected_children),
        help("remove the `{{ … }}` block; this node takes only arguments and properties")
    )]
    UnexpectedChildren {
        node: String,
        #[label("not allowed here")]
        span: SourceSpan,
    },

    #[error("{what} must be {expected}, found {found}")]
    #[diagnostic(code(manifest::wrong_type))]
    WrongType {
        what: String,
        expected: String,
        found: String,
        #[label("expected {expected}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(manifest::invalid_duration))]
    InvalidDuration {
        message: String,
        #[label("not a duration")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(manifest::invalid_size))]
    InvalidSize {
        message: String,
        #[label("not a size")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(manifest::invalid_frequency))]
    InvalidFrequency {
        message: String,
        #[label("not a frequency")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(manifest::invalid_time))]
    InvalidTime {
        message: String,
        #[label("not a time of day")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{value}` is not a valid {what}")]
    #[diagnostic(code(manifest::invalid_value))]
    InvalidValue {
        value: String,
        what: String,
        #[label("not one of the accepted values")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("manifest format version {found} is not supported")]
    #[diagnostic(
        code(manifest::unsupported_version),
        help("this acoupi reads `acoupi version=1`")
    )]
    UnsupportedVersion {
        found: String,
        #[label("unsupported version")]
        span: SourceSpan,
    },

    #[error("{what} is out of range: {value}")]
    #[diagnostic(code(model::out_of_range))]
    OutOfRange {
        what: String,
        value: String,
        #[label("{expected}")]
        span: SourceSpan,
        expected: String,
        #[help]
        help: Option<String>,
    },

    #[error("unknown timezone `{name}`")]
    #[diagnostic(code(model::unknown_timezone))]
    UnknownTimezone {
        name: String,
        #[label("not an IANA timezone")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("broker URL `{url}` is not valid: {reason}")]
    #[diagnostic(code(model::invalid_broker_url))]
    InvalidBrokerUrl {
        url: String,
        reason: String,
        #[label("not an AMQP URL")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{path}` is not an absolute path")]
    #[diagnostic(code(model::relative_path))]
    RelativePath {
        what: String,
        path: String,
        #[label("relative path")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{path}` goes up a directory with `..`")]
    #[diagnostic(code(model::parent_in_path))]
    ParentInPath {
        what: String,
        path: String,
        #[label("`..` here")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("recording duration {duration} is longer than its interval {interval}")]
    #[diagnostic(code(model::duration_exceeds_interval))]
    DurationExceedsInterval {
        duration: String,
        interval: String,
        #[label(primary, "duration")]
        span: SourceSpan,
        #[label("interval")]
        interval_span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("window from {from} to {to} is empty")]
    #[diagnostic(code(model::empty_window))]
    EmptyWindow {
        from: String,
        to: String,
        #[label("starts and ends at the same time")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{name}` is not declared")]
    #[diagnostic(code(model::undeclared_reference))]
    UndeclaredReference {
        what: &'static str,
        name: String,
        #[label("no {what} by this name")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{name}` is declared more than once")]
    #[diagnostic(code(model::duplicate_name))]
    DuplicateName {
        what: &'static str,
        name: String,
        #[label(primary, "declared again here")]
        span: SourceSpan,
        #[label("first declared here")]
        first: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} `{name}` is not a valid name")]
    #[diagnostic(
        code(model::invalid_name),
        help(
            "use 1 to 64 ASCII letters, digits, `-` or `_`, starting with a letter; the name becomes part of queue and systemd unit names"
        )
    )]
    InvalidName {
        what: &'static str,
        name: String,
        #[label("invalid name")]
        span: SourceSpan,
    },

    #[error("queue `{queue}` of task `{task}` is not consumed by any worker")]
    #[diagnostic(code(model::unconsumed_queue))]
    UnconsumedQueue {
        queue: String,
        task: String,
        #[label("no worker lists `{queue}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("queue `{queue}` of worker `{worker}` receives no tasks")]
    #[diagnostic(code(model::unused_queue), severity(Warning))]
    UnusedQueue {
        queue: String,
        worker: String,
        #[label("no task is routed to `{queue}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("no task is named `{name}`")]
    #[diagnostic(code(model::unknown_task))]
    UnknownTask {
        name: String,
        #[label("not a task of this program")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} is written in plain text in the manifest")]
    #[diagnostic(code(model::plaintext_secret), severity(Warning))]
    PlaintextSecret {
        what: String,
        #[label("secret in plain text")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(model::missing_setting))]
    MissingSetting {
        message: String,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(model::conflicting_settings))]
    ConflictingSettings {
        message: String,
        #[label(primary, "{label}")]
        span: SourceSpan,
        label: String,
        #[label("conflicts with this")]
        other: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("folder template `{template}` is not valid: {reason}")]
    #[diagnostic(code(model::invalid_folder_template))]
    InvalidFolderTemplate {
        template: String,
        reason: String,
        #[label("invalid template")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{what} needs the program's location")]
    #[diagnostic(code(model::location_required))]
    LocationRequired {
        what: String,
        #[label("sun times depend on where the sensor is")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error(
        "detector band up to {high} is above the Nyquist frequency {nyquist} of microphone `{microphone}`"
    )]
    #[diagnostic(code(model::band_above_nyquist))]
    BandAboveNyquist {
        high: String,
        nyquist: String,
        microphone: String,
        #[label("above half the sample rate")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("model file `{path}` of detector `{detector}` is not there")]
    #[diagnostic(code(model::missing_model), severity(Warning))]
    MissingModel {
        path: String,
        detector: String,
        #[label("not installed on this machine")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("{message}")]
    #[diagnostic(code(model::invalid_secret_reference))]
    InvalidSecretReference {
        message: String,
        #[label("invalid reference")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },
}

impl Issue {
    /// Whether this issue is an error (fails the check) rather than a warning.
    pub fn is_error(&self) -> bool {
        !matches!(
            self.severity(),
            Some(Severity::Warning) | Some(Severity::Advice)
        )
    }

    /// The stable code, e.g. `manifest::unknown_node`.
    pub fn code_str(&self) -> String {
        self.code().map(|c| c.to_string()).unwrap_or_default()
    }
}

/// The collector every stage pushes issues into; stages keep going after an issue so one run
/// reports every mistake.
#[derive(Debug, Default)]
pub struct Diagnostics {
    issues: Vec<Issue>,
}

impl Diagnostics {
    /// Records one issue.
    pub fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// Whether any recorded issue is an error.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(Issue::is_error)
    }

    /// The recorded issues, in the order they were found.
    pub fn issues(&self) -> &[Issue] {
        &self.issues
    }

    /// Takes the recorded issues, in the order they were found.
    pub fn into_issues(self) -> Vec<Issue> {
        self.issues
    }

    /// Takes the recorded issues, sorted by position in the file (stable for equal spans).
    pub fn into_sorted(mut self) -> Vec<Issue> {
        // Cached: an issue's labels are formatted each time they are asked for.
        self.issues.sort_by_cached_key(primary_offset);
        self.issues
    }
}

/// Byte offset of the primary label of an issue (0 when it has none).
pub fn primary_offset(issue: &Issue) -> usize {
    primary_span(issue).map(|s| s.offset()).unwrap_or(0)
}

/// The primary span of an issue: the label marked primary, else the first label.
pub fn primary_span(issue: &Issue) -> Option<SourceSpan> {
    let labels: Vec<_> = issue.labels()?.collect();
    labels
        .iter()
        .find(|l| l.primary())
        .or_else(|| labels.first())
        .map(|l| *l.inner())
}

/// A "did you mean `x`?" help for a misspelt word, if one of `candidates` is close to it.
pub fn did_you_mean(word: &str, candidates: &[&str]) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `word` by Jaro-Winkler similarity, if it is close enough to be a
/// likely typo (or differs only in case, `_` versus `-`, or a missing separator).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = norm(word);
    let normed: Vec<(String, &'a str)> = candidates.iter().map(|c| (norm(c), *c)).collect();
    if let Some((_, exact)) = normed.iter().find(|(n, _)| *n == w) {
        return Some(exact);
    }
    normed
        .iter()
        .map(|(n, c)| (strsim::jaro_winkler(&w, n), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A help listing the accepted words, with a "did you mean" first when one is close.
pub fn one_of_help(word: &str, candidates: &[&str]) -> String {
    let list = candidates
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match closest(word, candidates) {
        Some(c) => format!("did you mean `{c}`? expected one of {list}"),
        None => format!("expected one of {list}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos_and_separator_variants() {
        let c = ["samplerate", "channels", "device"];
        assert_eq!(closest("sample_rate", &c), Some("samplerate"));
        assert_eq!(closest("samplerte", &c), Some("samplerate"));
        assert_eq!(closest("chanels", &c), Some("channels"));
        assert_eq!(closest("zzz", &c), None);
    }

    #[test]
    fn warnings_are_not_errors() {
        let w = Issue::PlaintextSecret {
            what: "the MQTT password".into(),
            span: (0, 1).into(),
            help: None,
        };
        assert!(!w.is_error());
        assert_eq!(w.code_str(), "model::plaintext_secret");
        let mut d = Diagnostics::default();
        d.push(w);
        assert!(!d.has_errors());
    }
}
