//! Stage 1, parse: manifest text to the raw [`Ast`].
//!
//! In: the manifest source (KDL 2.0). Out: an `Ast` mirroring what was written, plus every
//! syntax and shape problem in the `Diagnostics` collector (unknown or repeated nodes and
//! properties, wrong types, values that do not parse). Meaning is checked later, in `model`.

pub mod ast;
pub mod edit;
mod pieces;
mod prescan;
mod reader;
mod sensor;
mod service;
mod storage;

use kdl::{KdlDocument, KdlError};
use miette::SourceSpan;

pub use ast::Ast;
pub use prescan::{MAX_DEPTH, SAFE_SOLID};

use crate::diagnostic::{Diagnostics, Issue, Spanned};
use reader::{arg, check_shape, known_nodes, name, prop};

/// Top-level node names, in the order the language reference presents them.
pub const TOP_LEVEL: &[&str] = &[
    "acoupi",
    "program",
    "broker",
    "microphone",
    "recording",
    "paths",
    "detector",
    "saving",
    "retention",
    "messaging",
    "summary",
    "workers",
];

/// Stack of the thread the KDL parser runs on. Its recursion goes one level per `{` (at
/// most [`MAX_DEPTH`]) and one per stray token its error recovery restarts at (bounded by
/// the pre-scan); 64 MiB is reserved, and only what the parse touches is used.
pub(crate) const PARSER_STACK: usize = 64 * 1024 * 1024;

/// A KDL string literal holding exactly `s`.
pub fn kdl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Parses manifest text into the raw AST.
///
/// Returns `None` only when the text is not KDL at all, or nests blocks deeper than
/// [`MAX_DEPTH`] (the errors are recorded); otherwise an `Ast` with whatever decoded, and the
/// shape problems recorded.
pub fn parse(source: &str, diags: &mut Diagnostics) -> Option<Ast> {
    let (ast, found) = std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("kdl-parse".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || parse_here(source));
        match worker {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            // No thread to be had: the pre-scan's bounds still hold on this one.
            Err(_) => parse_here(source),
        }
    });
    for issue in found.into_issues() {
        diags.push(issue);
    }
    ast
}

/// How many threads parse a large manifest: `ACOUPI_PARSE_THREADS` when it is a positive
/// number (1 parses in one piece), else the number of cores.
fn parse_threads() -> usize {
    std::env::var("ACOUPI_PARSE_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// [`parse`], on the current thread, with its own collector.
fn parse_here(source: &str) -> (Option<Ast>, Diagnostics) {
    let mut diags = Diagnostics::default();
    // The KDL parser reads the pre-scanned text: comments blanked, nesting bounded.
    let scanned = match prescan::prescan(source) {
        Ok(scanned) => scanned,
        Err(issue) => {
            diags.push(issue);
            return (None, diags);
        }
    };
    let text = &scanned.text;
    let parsed = if text.len() >= pieces::MIN_BYTES {
        pieces::parse(&scanned, parse_threads(), PARSER_STACK)
    } else {
        KdlDocument::parse_v2(text)
    };
    let ast = match parsed {
        Ok(doc) => Some(decode(&doc, &mut diags)),
        Err(err) => {
            syntax_issues(source, &err, &mut diags);
            None
        }
    };
    (ast, diags)
}

fn decode(doc: &KdlDocument, diags: &mut Diagnostics) -> Ast {
    let mut ast = Ast {
        version: None,
        program: None,
        broker: None,
        microphones: Vec::new(),
        recording: None,
        paths: None,
        detectors: Vec::new(),
        saving: None,
        retention: None,
        messaging: None,
        summary: None,
        workers: None,
        start: (0, 0).into(),
    };
    let nodes = known_nodes(
        doc.nodes(),
        TOP_LEVEL,
        &["microphone", "detector"],
        " at the top level",
        diags,
    );
    for node in nodes {
        match name(node) {
            "acoupi" => ast.version = version(node, diags),
            "program" => ast.program = Some(sensor::program(node, diags)),
            "broker" => ast.broker = Some(service::broker(node, diags)),
            "microphone" => ast.microphones.push(sensor::microphone(node, diags)),
            "recording" => ast.recording = Some(sensor::recording(node, diags)),
            "paths" => ast.paths = Some(sensor::paths(node, diags)),
            "detector" => ast.detectors.push(sensor::detector(node, diags)),
            "saving" => ast.saving = Some(sensor::saving(node, diags)),
            "retention" => ast.retention = Some(storage::retention(node, diags)),
            "messaging" => ast.messaging = Some(service::messaging(node, diags)),
            "summary" => ast.summary = Some(service::summary(node, diags)),
            "workers" => ast.workers = Some(service::workers(node, diags)),
            other => unreachable!("known_nodes only yields top-level names, got {other}"),
        }
    }
    if ast.program.is_none() {
        diags.push(Issue::MissingNode {
            name: "program",
            span: first_node_span(doc),
            help: Some(
                "start the manifest with `program \"my-sensor\" { timezone \"Europe/London\" }`"
                    .into(),
            ),
        });
    }
    ast
}

fn first_node_span(doc: &KdlDocument) -> SourceSpan {
    doc.nodes()
        .first()
        .map(|n| n.name().span())
        .unwrap_or_else(|| (0, 0).into())
}

/// `acoupi version=1`.
fn version(node: &kdl::KdlNode, diags: &mut Diagnostics) -> Option<Spanned<i128>> {
    check_shape(
        node,
        &reader::Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &["version"],
            children: false,
            example: "acoupi version=1",
        },
        diags,
    );
    let entry = prop(node, "version").or_else(|| arg(node, 0))?;
    let v = reader::integer(
        entry,
        "the manifest version",
        0,
        i128::from(u32::MAX),
        diags,
    )?;
    if v.value != 1 {
        diags.push(Issue::UnsupportedVersion {
            found: v.value.to_string(),
            span: v.span,
        });
    }
    Some(v)
}

/// Converts the KDL parser's errors into our own issues, adding KDL 1 migration hints.
fn syntax_issues(source: &str, err: &KdlError, diags: &mut Diagnostics) {
    for d in &err.diagnostics {
        let span = clamp(d.span, source.len());
        // At most a few characters are looked at, however long the rest of the line is.
        let snippet = source.get(span.offset()..).unwrap_or("");
        let help = kdl1_hint(snippet).or_else(|| d.help.clone());
        diags.push(Issue::Syntax {
            message: d
                .message
                .clone()
                .unwrap_or_else(|| "invalid KDL".to_owned())
                .to_lowercase()
                .trim_end_matches('.')
                .to_owned(),
            span,
            label: d.label.clone().unwrap_or_else(|| "here".to_owned()),
            help,
        });
    }
    if err.diagnostics.is_empty() {
        diags.push(Issue::Syntax {
            message: "the manifest is not valid KDL".into(),
            span: (0, 0).into(),
            label: "here".into(),
            help: None,
        });
    }
}

fn clamp(span: SourceSpan, len: usize) -> SourceSpan {
    let start = span.offset().min(len);
    let end = (span.offset() + span.len()).min(len);
    (start, end - start).into()
}

/// A help for KDL 1 spellings that KDL 2 rejects.
fn kdl1_hint(text: &str) -> Option<String> {
    let word: String = text
        .chars()
        .take(8)
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '"' || *c == '#')
        .collect();
    let bare = |w: &str| word == w;
    if bare("true") || bare("false") || bare("null") {
        return Some(format!("KDL 2 spells this `#{word}`"));
    }
    if bare("inf") || bare("nan") {
        return Some(format!("KDL 2 spells this `#{word}`"));
    }
    if text.starts_with("r\"") || text.starts_with("r#") {
        return Some("KDL 2 raw strings are written `#\"…\"#`, without the `r`".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(src: &str) -> Vec<String> {
        let mut d = Diagnostics::default();
        parse(src, &mut d);
        d.into_sorted().iter().map(|i| i.code_str()).collect()
    }

    #[test]
    fn kdl1_booleans_get_a_hint() {
        let mut d = Diagnostics::default();
        assert!(parse("program \"x\"\nmessaging { mqtt tls=true }\n", &mut d).is_none());
        let issues = d.into_sorted();
        assert_eq!(issues[0].code_str(), "manifest::syntax");
        let help = miette::Diagnostic::help(&issues[0]).map(|h| h.to_string());
        assert_eq!(help.as_deref(), Some("KDL 2 spells this `#true`"));
    }

    #[test]
    fn unknown_top_level_node_suggests_a_name() {
        assert_eq!(
            codes("program \"x\"\nmicrophon \"m\"\n"),
            ["manifest::unknown_node"]
        );
    }

    #[test]
    fn empty_manifest_lacks_program() {
        assert_eq!(codes(""), ["manifest::missing_node"]);
    }

    #[test]
    fn version_two_is_rejected() {
        assert_eq!(
            codes("acoupi version=2\nprogram \"x\"\n"),
            ["manifest::unsupported_version"]
        );
    }
}
