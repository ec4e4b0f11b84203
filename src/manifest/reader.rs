//! Generic helpers the node decoders are built from: shape checks (arguments, properties,
//! children), typed reads of entries, and child iteration with unknown/duplicate detection.
//!
//! In: a `KdlNode` and what the node may hold. Out: `Spanned` values, with every problem
//! pushed into the `Diagnostics` collector instead of stopping.

use std::collections::HashMap;
use std::time::Duration;

use kdl::{KdlEntry, KdlNode, KdlValue};
use miette::SourceSpan;

use super::ast::UsageValue;
use crate::diagnostic::{Diagnostics, Issue, Spanned, did_you_mean, one_of_help};
use crate::units::{self, TimeOfDay};

/// The shape a node is allowed to have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    /// Minimum number of positional arguments.
    pub(crate) min_args: usize,
    /// Maximum number of positional arguments.
    pub(crate) max_args: usize,
    /// What the arguments are, for messages (`a name`, `a path`).
    pub(crate) args: &'static str,
    /// Allowed property keys.
    pub(crate) props: &'static [&'static str],
    /// Whether a children block is allowed.
    pub(crate) children: bool,
    /// An example of the node, used in helps.
    pub(crate) example: &'static str,
}

impl Shape {
    /// A node with exactly one argument and nothing else, e.g. `timezone "UTC"`.
    pub(crate) const fn value(args: &'static str, example: &'static str) -> Self {
        Shape {
            min_args: 1,
            max_args: 1,
            args,
            props: &[],
            children: false,
            example,
        }
    }
}

/// The node's name as written.
pub(crate) fn name(node: &KdlNode) -> &str {
    node.name().value()
}

/// A span of zero length at the end of the node's name, for "missing" labels.
pub(crate) fn after_name(node: &KdlNode) -> SourceSpan {
    let s = node.name().span();
    (s.offset() + s.len(), 0).into()
}

/// The positional arguments of a node.
pub(crate) fn args(node: &KdlNode) -> impl Iterator<Item = &KdlEntry> {
    node.entries().iter().filter(|e| e.name().is_none())
}

/// The `i`-th positional argument.
pub(crate) fn arg(node: &KdlNode, i: usize) -> Option<&KdlEntry> {
    args(node).nth(i)
}

/// The first property named `key`.
pub(crate) fn prop<'a>(node: &'a KdlNode, key: &str) -> Option<&'a KdlEntry> {
    node.entries()
        .iter()
        .find(|e| e.name().is_some_and(|n| n.value() == key))
}

/// The property `key`, which `node` must have: absent, it is a `manifest::missing_property`
/// whose help shows `example`.
pub(crate) fn required<'a>(
    node: &'a KdlNode,
    key: &str,
    example: &str,
    diags: &mut Diagnostics,
) -> Option<&'a KdlEntry> {
    let entry = prop(node, key);
    if entry.is_none() {
        diags.push(Issue::MissingProperty {
            node: name(node).to_owned(),
            name: key.to_owned(),
            span: after_name(node),
            help: Some(format!("for example: {example}")),
        });
    }
    entry
}

/// Checks arguments, properties and the children block against `shape`; reports unknown and
/// duplicate properties, extra or missing arguments and unexpected children.
pub(crate) fn check_shape(node: &KdlNode, shape: &Shape, diags: &mut Diagnostics) {
    let node_name = name(node).to_owned();
    let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
    let mut n_args = 0usize;
    for entry in node.entries() {
        match entry.name() {
            None => {
                n_args += 1;
                if n_args > shape.max_args {
                    let expected = match shape.max_args {
                        0 => "no arguments".to_owned(),
                        n => format!("at most {n} argument{}: {}", plural(n), shape.args),
                    };
                    diags.push(Issue::UnexpectedArgument {
                        node: node_name.clone(),
                        expected,
                        span: entry.span(),
                        help: Some(format!("for example: {}", shape.example)),
                    });
                }
            }
            Some(key) => {
                let k = key.value();
                if !shape.props.contains(&k) {
                    let help = did_you_mean(k, shape.props).or_else(|| {
                        if shape.props.is_empty() {
                            Some(format!("`{node_name}` takes no properties"))
                        } else {
                            Some(one_of_help(k, shape.props))
                        }
                    });
                    diags.push(Issue::UnknownProperty {
                        name: k.to_owned(),
                        node: node_name.clone(),
                        span: entry.span(),
                        help,
                    });
                } else if let Some(first) = seen.get(k) {
                    diags.push(Issue::DuplicateProperty {
                        name: k.to_owned(),
                        node: node_name.clone(),
                        span: entry.span(),
                        first: *first,
                    });
                } else {
                    seen.insert(k, entry.span());
                }
            }
        }
    }
    if n_args < shape.min_args {
        diags.push(Issue::MissingArgument {
            node: node_name.clone(),
            what: shape.args.to_owned(),
            span: after_name(node),
            help: Some(format!("for example: {}", shape.example)),
        });
    }
    if !shape.children
        && let Some(children) = node.children()
    {
        diags.push(Issue::UnexpectedChildren {
            node: node_name,
            span: children.span(),
        });
    }
}

/// The child nodes of `node` whose names are in `allowed`; reports unknown children (with a
/// "did you mean") and repeats of names not listed in `repeatable`.
pub(crate) fn children<'a>(
    node: &'a KdlNode,
    allowed: &[&str],
    repeatable: &[&str],
    diags: &mut Diagnostics,
) -> Vec<&'a KdlNode> {
    let context = format!(" in `{}`", name(node));
    let Some(doc) = node.children() else {
        return Vec::new();
    };
    known_nodes(doc.nodes(), allowed, repeatable, &context, diags)
}

/// Filters `nodes` to the known ones, reporting unknown and duplicate names.
pub(crate) fn known_nodes<'a>(
    nodes: &'a [KdlNode],
    allowed: &[&str],
    repeatable: &[&str],
    context: &str,
    diags: &mut Diagnostics,
) -> Vec<&'a KdlNode> {
    let mut seen: HashMap<&str, SourceSpan> = HashMap::new();
    let mut out = Vec::new();
    for child in nodes {
        let n = name(child);
        if !allowed.contains(&n) {
            diags.push(Issue::UnknownNode {
                name: n.to_owned(),
                context: context.to_owned(),
                span: child.name().span(),
                help: Some(one_of_help(n, allowed)),
            });
            continue;
        }
        if !repeatable.contains(&n) {
            if let Some(first) = seen.get(n) {
                diags.push(Issue::DuplicateNode {
                    name: n.to_owned(),
                    context: context.to_owned(),
                    span: child.name().span(),
                    first: *first,
                    help: Some(format!("keep one `{n}` node")),
                });
                continue;
            }
            seen.insert(n, child.name().span());
        }
        out.push(child);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How a KDL value is described in "found …" messages.
pub(crate) fn describe(value: &KdlValue) -> String {
    match value {
        KdlValue::String(s) => format!("the string \"{}\"", s.escape_debug()),
        KdlValue::Integer(i) => format!("the integer {i}"),
        KdlValue::Float(f) => format!("the number {f}"),
        KdlValue::Bool(b) => format!("#{b}"),
        KdlValue::Null => "#null".to_owned(),
    }
}

/// Reports a wrong type for `entry`.
fn wrong_type(entry: &KdlEntry, what: &str, expected: &str, help: Option<String>) -> Issue {
    Issue::WrongType {
        what: what.to_owned(),
        expected: expected.to_owned(),
        found: describe(entry.value()),
        span: entry.span(),
        help,
    }
}

/// A string value.
pub(crate) fn string(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<String>> {
    match entry.value() {
        KdlValue::String(s) => Some(Spanned::new(s.clone(), entry.span())),
        other => {
            let help = match other {
                KdlValue::Integer(i) => Some(format!("quote it: \"{i}\"")),
                KdlValue::Float(f) => Some(format!("quote it: \"{f}\"")),
                _ => None,
            };
            diags.push(wrong_type(entry, what, "a string", help));
            None
        }
    }
}

/// An integer value within `min..=max`.
pub(crate) fn integer(
    entry: &KdlEntry,
    what: &str,
    min: i128,
    max: i128,
    diags: &mut Diagnostics,
) -> Option<Spanned<i128>> {
    match entry.value() {
        KdlValue::Integer(i) if (min..=max).contains(i) => Some(Spanned::new(*i, entry.span())),
        KdlValue::Integer(i) => {
            diags.push(Issue::OutOfRange {
                what: what.to_owned(),
                value: i.to_string(),
                span: entry.span(),
                expected: format!("expected {min} to {max}"),
                help: None,
            });
            None
        }
        KdlValue::String(s) if s.trim().parse::<i128>().is_ok() => {
            diags.push(wrong_type(
                entry,
                what,
                "an integer",
                Some(format!("remove the quotes: {}", s.trim())),
            ));
            None
        }
        _ => {
            diags.push(wrong_type(entry, what, "an integer", None));
            None
        }
    }
}

/// A finite number (integer or decimal) within `min..=max`.
pub(crate) fn number(
    entry: &KdlEntry,
    what: &str,
    min: f64,
    max: f64,
    diags: &mut Diagnostics,
) -> Option<Spanned<f64>> {
    let v = match entry.value() {
        KdlValue::Integer(i) => *i as f64,
        KdlValue::Float(f) => *f,
        KdlValue::String(s) if s.trim().parse::<f64>().is_ok() => {
            diags.push(wrong_type(
                entry,
                what,
                "a number",
                Some(format!("remove the quotes: {}", s.trim())),
            ));
            return None;
        }
        _ => {
            diags.push(wrong_type(entry, what, "a number", None));
            return None;
        }
    };
    if !v.is_finite() || v < min || v > max {
        diags.push(Issue::OutOfRange {
            what: what.to_owned(),
            value: v.to_string(),
            span: entry.span(),
            expected: format!("expected {min} to {max}"),
            help: None,
        });
        return None;
    }
    Some(Spanned::new(v, entry.span()))
}

/// A boolean (`#true` / `#false`).
pub(crate) fn boolean(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<bool>> {
    match entry.value() {
        KdlValue::Bool(b) => Some(Spanned::new(*b, entry.span())),
        KdlValue::String(s) if matches!(s.as_str(), "true" | "false" | "yes" | "no") => {
            let b = matches!(s.as_str(), "true" | "yes");
            diags.push(wrong_type(
                entry,
                what,
                "a boolean",
                Some(format!("KDL 2 writes booleans as `#{b}`")),
            ));
            None
        }
        _ => {
            diags.push(wrong_type(
                entry,
                what,
                "a boolean",
                Some("write `#true` or `#false`".to_owned()),
            ));
            None
        }
    }
}

/// One of a fixed set of words.
pub(crate) fn choice(
    entry: &KdlEntry,
    what: &str,
    choices: &[&'static str],
    diags: &mut Diagnostics,
) -> Option<Spanned<&'static str>> {
    let s = string(entry, what, diags)?;
    match choices.iter().find(|c| **c == s.value) {
        Some(c) => Some(Spanned::new(*c, s.span)),
        None => {
            diags.push(Issue::InvalidValue {
                value: s.value.clone(),
                what: what.to_owned(),
                span: s.span,
                help: Some(one_of_help(&s.value, choices)),
            });
            None
        }
    }
}

/// A duration written with a unit, e.g. `"3s"`.
pub(crate) fn duration(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<Duration>> {
    if let KdlValue::Integer(i) = entry.value() {
        diags.push(wrong_type(
            entry,
            what,
            "a duration with a unit",
            Some(format!("write \"{i}s\" for {i} seconds")),
        ));
        return None;
    }
    let s = string(entry, what, diags)?;
    match units::parse_duration(&s.value) {
        Ok(d) => Some(Spanned::new(d, s.span)),
        Err(e) => {
            diags.push(Issue::InvalidDuration {
                message: e.message,
                span: s.span,
                help: Some(e.help),
            });
            None
        }
    }
}

/// A size written with a unit, e.g. `"2GiB"`.
pub(crate) fn size(entry: &KdlEntry, what: &str, diags: &mut Diagnostics) -> Option<Spanned<u64>> {
    if let KdlValue::Integer(i) = entry.value() {
        diags.push(wrong_type(
            entry,
            what,
            "a size with a unit",
            Some(format!("write \"{i}MiB\" or \"{i}GiB\"")),
        ));
        return None;
    }
    let s = string(entry, what, diags)?;
    match units::parse_size(&s.value) {
        Ok(b) => Some(Spanned::new(b, s.span)),
        Err(e) => {
            diags.push(Issue::InvalidSize {
                message: e.message,
                span: s.span,
                help: Some(e.help),
            });
            None
        }
    }
}

/// How to write a percentage or a size, for helps.
const USAGE_HELP: &str =
    "write a whole percentage such as `\"85%\"` or a size such as `\"200GiB\"`";

/// A whole percentage (`"85%"`, `"85 %"`) or a size with a unit (`"200GiB"`). The percentage's
/// range is the validator's to check; here only the form.
pub(crate) fn usage(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<UsageValue>> {
    let number = match entry.value() {
        KdlValue::Integer(i) => Some(i.to_string()),
        KdlValue::Float(f) => Some(f.to_string()),
        _ => None,
    };
    if let Some(n) = number {
        diags.push(wrong_type(
            entry,
            what,
            "a percentage or a size",
            Some(format!("write \"{n}%\" or \"{n}GiB\"")),
        ));
        return None;
    }
    let s = string(entry, what, diags)?;
    let text = s.value.trim();
    if let Some(number) = text.strip_suffix('%') {
        let number = number.trim_end();
        // Digits only: no sign, point, exponent, `inf` or `nan`.
        let digits = number.bytes().all(|b| b.is_ascii_digit());
        return match number.parse::<u64>() {
            Ok(p) if digits => Some(Spanned::new(UsageValue::Percent(p), s.span)),
            _ => {
                diags.push(Issue::InvalidSize {
                    message: format!("`{}` is not a whole percentage", s.value.escape_debug()),
                    span: s.span,
                    help: Some(USAGE_HELP.to_owned()),
                });
                None
            }
        };
    }
    match units::parse_size(text) {
        Ok(b) => Some(Spanned::new(UsageValue::Bytes(b), s.span)),
        Err(e) => {
            // A bare number is as likely a percentage without its `%` as a size without a unit.
            let help = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                format!("write `\"{text}%\"` or `\"{text}GiB\"`")
            } else {
                format!("{}; or write a percentage such as `\"85%\"`", e.help)
            };
            diags.push(Issue::InvalidSize {
                message: e.message,
                span: s.span,
                help: Some(help),
            });
            None
        }
    }
}

/// A frequency, e.g. `"250kHz"` or an integer number of hertz.
pub(crate) fn frequency(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<u32>> {
    let text = match entry.value() {
        KdlValue::Integer(i) => i.to_string(),
        KdlValue::String(s) => s.clone(),
        _ => {
            diags.push(wrong_type(
                entry,
                what,
                "a frequency",
                Some("write e.g. \"48kHz\" or 48000".to_owned()),
            ));
            return None;
        }
    };
    match units::parse_frequency(&text) {
        Ok(hz) => Some(Spanned::new(hz, entry.span())),
        Err(e) => {
            diags.push(Issue::InvalidFrequency {
                message: e.message,
                span: entry.span(),
                help: Some(e.help),
            });
            None
        }
    }
}

/// A time of day: `"21:00"` or a sun event with an offset, `"sunset-30m"`.
pub(crate) fn time_of_day(
    entry: &KdlEntry,
    what: &str,
    diags: &mut Diagnostics,
) -> Option<Spanned<TimeOfDay>> {
    let s = string(entry, what, diags)?;
    match units::parse_time_of_day(&s.value) {
        Ok(t) => Some(Spanned::new(t, s.span)),
        Err(e) => {
            diags.push(Issue::InvalidTime {
                message: e.message,
                span: s.span,
                help: Some(e.help),
            });
            None
        }
    }
}

/// The single argument of a value node such as `timezone "UTC"`, shape-checked.
pub(crate) fn value_arg<'a>(
    node: &'a KdlNode,
    args: &'static str,
    example: &'static str,
    diags: &mut Diagnostics,
) -> Option<&'a KdlEntry> {
    check_shape(node, &Shape::value(args, example), diags);
    arg(node, 0)
}
