//! Rendering manifest diagnostics for people and machines.
//!
//! In: the issues of one manifest and its source. Out: text in one of three formats: human
//! (miette's graphical report, ASCII or Unicode, colour only on a terminal without
//! `NO_COLOR`, at most [`HUMAN_LIMIT`] diagnostics then "and N more"), JSON (one document,
//! 1-based lines and columns) and GitHub workflow annotations, both with every diagnostic.
//! Every format indexes the lines once, so its cost grows linearly with the diagnostics.

mod lines;

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, Severity, SourceCode,
    SourceSpan,
};
use serde::Serialize;

use crate::diagnostic::{Issue, primary_span};
use lines::{Indexed, Lines};

/// Diagnostics the human report draws; past this many it says how many more there are. A
/// person fixes the first few and checks again; `--format json` lists them all.
pub const HUMAN_LIMIT: usize = 100;

/// Output format of `acoupi check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Graphical reports on stderr.
    #[default]
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow annotations on stdout.
    Github,
}

/// How human reports are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
    /// Use Unicode box drawing (else ASCII).
    pub unicode: bool,
    /// Wrap width.
    pub width: usize,
}

impl Style {
    /// Plain ASCII, no colour, 80 columns: stable for snapshots and logs.
    pub const PLAIN: Style = Style {
        color: false,
        unicode: false,
        width: 80,
    };

    /// Colour and Unicode on a terminal (unless `NO_COLOR` is set), plain otherwise.
    pub fn detect() -> Style {
        use std::io::IsTerminal;
        let tty = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: tty && !no_color,
            unicode: tty,
            width: 100,
        }
    }
}

/// An issue paired with the source it points into, so miette can draw snippets.
struct WithSource<'a> {
    issue: &'a Issue,
    source: &'a Indexed<'a>,
}

impl fmt::Debug for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.issue, f)
    }
}

impl fmt::Display for WithSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.issue, f)
    }
}

impl std::error::Error for WithSource<'_> {}

impl Diagnostic for WithSource<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.issue.code()
    }
    fn severity(&self) -> Option<Severity> {
        self.issue.severity()
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.issue.help()
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.issue.labels()
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(self.source)
    }
}

/// Renders the issues as graphical reports, one after another: the first [`HUMAN_LIMIT`],
/// then a line saying how many more there are.
pub fn human(issues: &[Issue], name: &str, text: &Arc<String>, style: Style) -> String {
    let lines = Lines::new(text);
    let source = Indexed {
        name,
        text,
        lines: &lines,
    };
    let theme = match (style.unicode, style.color) {
        (true, true) => GraphicalTheme::unicode(),
        (true, false) => GraphicalTheme::unicode_nocolor(),
        (false, true) => GraphicalTheme::ascii(),
        (false, false) => GraphicalTheme::none(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_width(style.width);
    let mut out = String::new();
    for issue in issues.iter().take(HUMAN_LIMIT) {
        let d = WithSource {
            issue,
            source: &source,
        };
        if handler.render_report(&mut out, &d).is_err() {
            // Rendering into a String cannot fail; fall back to the message anyway.
            out.push_str(&format!("{}: {issue}\n", issue.code_str()));
        }
    }
    if let Some(rest) = issues.get(HUMAN_LIMIT..).filter(|r| !r.is_empty()) {
        out.push_str(&more(rest));
    }
    out
}

/// "… and 3 more errors and 1 more warning (not shown; …)".
fn more(rest: &[Issue]) -> String {
    let errors = rest.iter().filter(|i| i.is_error()).count();
    let warnings = rest.len() - errors;
    let count = |n: usize, what: &str| format!("{n} more {what}{}", if n == 1 { "" } else { "s" });
    let what = match (errors, warnings) {
        (e, 0) => count(e, "error"),
        (0, w) => count(w, "warning"),
        (e, w) => format!("{} and {}", count(e, "error"), count(w, "warning")),
    };
    format!(
        "... and {what}, not shown: the first {HUMAN_LIMIT} are; `acoupi check --format json` lists them all\n\n"
    )
}

/// A one-line summary: "`acoupi.kdl`: 2 errors, 1 warning".
pub fn summary(issues: &[Issue], name: &str) -> String {
    let errors = issues.iter().filter(|i| i.is_error()).count();
    let warnings = issues.len() - errors;
    let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("`{name}` is valid"),
        (0, w) => format!("`{name}` is valid, with {}", count(w, "warning")),
        (e, 0) => format!("`{name}` has {}", count(e, "error")),
        (e, w) => format!(
            "`{name}` has {} and {}",
            count(e, "error"),
            count(w, "warning")
        ),
    }
}

/// One diagnostic in the JSON report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonDiagnostic {
    /// Stable code, e.g. `manifest::unknown_node`.
    pub code: String,
    /// `error` or `warning`.
    pub severity: &'static str,
    /// The message.
    pub message: String,
    /// 1-based line of the primary label.
    pub line: usize,
    /// 1-based column (characters) of the primary label.
    pub column: usize,
    /// 1-based line where the label ends.
    pub end_line: usize,
    /// 1-based column where the label ends (exclusive).
    pub end_column: usize,
    /// The primary label's text.
    pub label: Option<String>,
    /// What to write instead.
    pub help: Option<String>,
}

/// The JSON report of `acoupi check --format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonReport {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The manifest, as given.
    pub file: String,
    /// Whether the manifest has no errors.
    pub valid: bool,
    /// Number of errors.
    pub errors: usize,
    /// Number of warnings.
    pub warnings: usize,
    /// Every diagnostic, in file order.
    pub diagnostics: Vec<JsonDiagnostic>,
}

fn json_diagnostic(issue: &Issue, text: &str, lines: &Lines) -> JsonDiagnostic {
    let span = primary_span(issue).unwrap_or_else(|| SourceSpan::from((0, 0)));
    let (line, column) = lines.line_col(text, span.offset());
    let (end_line, end_column) = lines.line_col(text, span.offset() + span.len());
    let label = issue
        .labels()
        .and_then(|mut ls| {
            ls.find(|l| l.primary())
                .or_else(|| issue.labels().and_then(|mut l| l.next()))
        })
        .and_then(|l| l.label().map(str::to_owned));
    JsonDiagnostic {
        code: issue.code_str(),
        severity: if issue.is_error() { "error" } else { "warning" },
        message: issue.to_string(),
        line,
        column,
        end_line,
        end_column,
        label,
        help: issue.help().map(|h| h.to_string()),
    }
}

/// Builds the JSON report.
pub fn json(issues: &[Issue], name: &str, text: &str) -> JsonReport {
    let lines = Lines::new(text);
    let diagnostics: Vec<_> = issues
        .iter()
        .map(|i| json_diagnostic(i, text, &lines))
        .collect();
    let errors = issues.iter().filter(|i| i.is_error()).count();
    JsonReport {
        schema_version: 1,
        file: name.to_owned(),
        valid: errors == 0,
        errors,
        warnings: issues.len() - errors,
        diagnostics,
    }
}

/// Escapes a workflow-command message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders GitHub Actions annotations, one line per issue.
pub fn github(issues: &[Issue], name: &str, text: &str) -> String {
    let lines = Lines::new(text);
    let mut out = String::new();
    for issue in issues {
        let d = json_diagnostic(issue, text, &lines);
        let kind = if issue.is_error() { "error" } else { "warning" };
        let mut message = d.message.clone();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        out.push_str(&format!(
            "::{kind} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            escape_property(name),
            d.line,
            d.column,
            d.end_line,
            d.end_column,
            escape_property(&d.code),
            escape_data(&message)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "ab\nçd x\n";
        let lines = Lines::new(text);
        assert_eq!(lines.line_col(text, 0), (1, 1));
        assert_eq!(lines.line_col(text, 3), (2, 1));
        // `x` is after a two-byte character: byte 7, character column 4.
        assert_eq!(lines.line_col(text, 7), (2, 4));
        assert_eq!(lines.line_col(text, 999), (3, 1));
    }

    #[test]
    fn the_human_report_stops_after_the_limit() {
        let issues: Vec<Issue> = (0..HUMAN_LIMIT + 3)
            .map(|i| Issue::UnknownNode {
                name: format!("n{i}"),
                context: String::new(),
                span: (3 * i, 2).into(),
                help: None,
            })
            .collect();
        let text: String = (0..HUMAN_LIMIT + 3)
            .map(|i| format!("n{}\n", i % 10))
            .collect();
        let out = human(&issues, "m.kdl", &Arc::new(text), Style::PLAIN);
        assert_eq!(out.matches("manifest::unknown_node").count(), HUMAN_LIMIT);
        assert!(out.contains("... and 3 more errors, not shown"), "{out}");
    }

    #[test]
    fn github_escapes_properties_and_newlines() {
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(escape_data("x\ny"), "x%0Ay");
    }
}
