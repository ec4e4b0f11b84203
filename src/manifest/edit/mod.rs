//! Editing a manifest in place by dotted path: `acoupi config set/unset/get`.
//!
//! In: the manifest text and an [`Op`]. Out: the edited text, in each way the value may be
//! written (most likely first; the caller keeps the first one the checker accepts), or an
//! error saying why the path does not lead anywhere. Edits are byte ranges replaced in the
//! original text, found through our own parse (the pre-scanned text keeps every offset), so
//! every byte outside the edited entry or node stays as it was: comments, blank lines,
//! indentation, the order of the other nodes.
//!
//! What an edit does:
//! - `set` on a property replaces its value; on a node, its arguments (`recording.duration
//!   5s` makes `duration "5s"`); a missing property or node is added: a property on the last
//!   node that exists, or a child node at the end of its block (the block is opened when the
//!   node had none), a top-level node at the end of the file. The checker decides between
//!   the two readings of a new name, as between `5` and `"5"`.
//! - `unset` removes the property, or the node with the rest of its line.
//! - `get` lists `path = value` lines for what the path leads to.

mod get;
mod path;
mod value;

use kdl::{KdlDocument, KdlNode};

pub use get::get;
use path::{Found, NAMED, Segment};

/// Why an edit or a lookup could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// What is wrong, one line.
    pub message: String,
    /// What to do instead.
    pub help: Option<String>,
}

impl Error {
    fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// An edit of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set the value (or the arguments) at `path`, adding what is missing.
    Set {
        /// A dotted path.
        path: String,
        /// One value for a property; a node's arguments, in order.
        values: Vec<String>,
    },
    /// Remove the property or node at `path`.
    Unset {
        /// A dotted path.
        path: String,
    },
}

/// The manifest parsed for editing: the pre-scanned text (comments blanked, offsets kept)
/// and its document.
struct Parsed {
    scan: String,
    doc: KdlDocument,
}

/// Parses on a thread with the parser's stack, as [`super::parse`] does.
fn parse(source: &str) -> Result<Parsed, Error> {
    let invalid = || {
        Error::new("the manifest is not valid KDL")
            .help("run `acoupi check` on it and fix what it reports, then edit again")
    };
    let work = || -> Result<Parsed, Error> {
        let scan = super::prescan::prescan(source)
            .map_err(|_| invalid())?
            .text
            .into_owned();
        let doc = KdlDocument::parse_v2(&scan).map_err(|_| invalid())?;
        Ok(Parsed { scan, doc })
    };
    std::thread::scope(|scope| {
        match std::thread::Builder::new()
            .name("kdl-edit".into())
            .stack_size(super::PARSER_STACK)
            .spawn_scoped(scope, work)
        {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(_) => work(),
        }
    })
}

/// The edited texts for `op` on `source`, most likely first (never empty on success).
pub fn edit(source: &str, op: &Op) -> Result<Vec<String>, Error> {
    let parsed = parse(source)?;
    let t = Text {
        src: source,
        scan: &parsed.scan,
    };
    match op {
        Op::Set { path, values } => {
            if values.is_empty() {
                return Err(Error::new("no value to set"));
            }
            let segs = path::parse(path)?;
            set(&t, &parsed.doc, &segs, path, values)
        }
        Op::Unset { path } => {
            let segs = path::parse(path)?;
            let range = match path::resolve(parsed.doc.nodes(), &segs)? {
                Found::Property { entry, .. } => t.entry_removal(entry.span()),
                Found::Node { node } => t.node_removal(node),
                Found::Missing {
                    parent,
                    found,
                    rest,
                } => {
                    let nodes = children_of(parent, &parsed.doc);
                    let here = if found.is_empty() {
                        "the manifest".to_owned()
                    } else {
                        format!("`{found}`")
                    };
                    let what = format!("`{}`", rest[0].name);
                    return Err(path::missing(&here, &what, &rest[0].name, parent, nodes));
                }
            };
            Ok(vec![t.replaced(range, "")])
        }
    }
}

fn children_of<'a>(parent: Option<&'a KdlNode>, doc: &'a KdlDocument) -> &'a [KdlNode] {
    match parent {
        Some(p) => p.children().map(|d| d.nodes()).unwrap_or(&[]),
        None => doc.nodes(),
    }
}

fn set(
    t: &Text<'_>,
    doc: &KdlDocument,
    segs: &[Segment],
    path: &str,
    values: &[String],
) -> Result<Vec<String>, Error> {
    match path::resolve(doc.nodes(), segs)? {
        Found::Property { entry, .. } => {
            let [raw] = values else {
                return Err(Error::new(format!(
                    "`{path}` is a property: it takes one value, not {}",
                    values.len()
                ))
                .help("quote a value with spaces in it, e.g. `'a b'`"));
            };
            let range = t.value_range(entry)?;
            let string_first = entry.value().is_string();
            Ok(value::spellings(raw, string_first)
                .into_iter()
                .map(|v| t.replaced(range.clone(), &v))
                .collect())
        }
        Found::Node { node } => {
            let name = node.name().value();
            if NAMED.contains(&name) {
                return Err(Error::new(format!(
                    "`{path}` is a whole `{name}`: set one of its entries"
                ))
                .help(entries_help(path, node)));
            }
            let args: Vec<&kdl::KdlEntry> = path::args(node).collect();
            let has_props = node.entries().iter().any(|e| e.name().is_some());
            if args.is_empty() && (has_props || node.children().is_some()) {
                return Err(Error::new(format!(
                    "`{path}` has no value of its own: set one of its entries"
                ))
                .help(entries_help(path, node)));
            }
            let range = match (args.first(), args.last()) {
                (Some(first), Some(last)) => {
                    let (a, b) = (first.span().offset(), end(last.span()));
                    let interleaved = node.entries().iter().any(|e| {
                        e.name().is_some() && e.span().offset() > a && e.span().offset() < b
                    });
                    if interleaved {
                        return Err(Error::new(format!(
                            "`{path}` has properties between its arguments; edit it by hand"
                        )));
                    }
                    a..b
                }
                _ => {
                    let at = end(node.name().span());
                    at..at
                }
            };
            let lead = if args.is_empty() { " " } else { "" };
            let string_first = args.first().is_some_and(|a| a.value().is_string());
            Ok(arg_spellings(values, string_first)
                .into_iter()
                .map(|v| t.replaced(range.clone(), &format!("{lead}{v}")))
                .collect())
        }
        Found::Missing { parent, rest, .. } => {
            if let Some(bad) = rest
                .iter()
                .find(|s| s.index.is_some() || NAMED.contains(&s.name.as_str()))
            {
                return Err(Error::new(format!(
                    "`{path}` does not exist, and `config set` adds only single nodes and properties, not `{}`",
                    bad.name
                ))
                .help("add it with an editor (see `schema/manifest.md`), then `acoupi check` the file"));
            }
            let names: Vec<&str> = rest.iter().map(|s| s.name.as_str()).collect();
            let (chain, leaf) = names.split_at(names.len() - 1);
            // As a child node holding the value, the usual shape of a setting…
            let mut out: Vec<String> = arg_spellings(values, false)
                .into_iter()
                .map(|v| {
                    let line = format!("{} {v}", value::ident(leaf[0]));
                    t.add(parent, chain, Leaf::Node(&line))
                })
                .collect();
            // …or as a property of the last node along the path.
            if values.len() == 1 && (parent.is_some() || !chain.is_empty()) {
                for v in value::spellings(&values[0], false) {
                    let prop = format!("{}={v}", value::ident(leaf[0]));
                    out.push(t.add(parent, chain, Leaf::Property(&prop)));
                }
            }
            Ok(out)
        }
    }
}

/// The spellings of several arguments: all as typed, then all as strings.
fn arg_spellings(values: &[String], string_first: bool) -> Vec<String> {
    let per: Vec<Vec<String>> = values
        .iter()
        .map(|v| value::spellings(v, string_first))
        .collect();
    let pick = |i: usize| {
        per.iter()
            .map(|s| s.get(i).unwrap_or(&s[0]).as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = vec![pick(0), pick(1)];
    out.dedup();
    out
}

/// "set one of …": the paths of a node's properties and children.
fn entries_help(path: &str, node: &KdlNode) -> String {
    let names = path::names_under(
        Some(node),
        node.children().map(|d| d.nodes()).unwrap_or(&[]),
    );
    if names.is_empty() {
        return format!(
            "`{path}` is empty: add an entry with `acoupi config set {path}.NAME VALUE`"
        );
    }
    format!(
        "it has {}",
        names
            .iter()
            .map(|n| format!("`{path}.{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn end(span: miette::SourceSpan) -> usize {
    span.offset() + span.len()
}

/// What to add at the end of a chain of new nodes.
enum Leaf<'a> {
    /// `key=value` on the last node.
    Property(&'a str),
    /// A child node line, `name value`.
    Node(&'a str),
}

/// The source and its pre-scanned twin (comments blanked), which share every offset.
struct Text<'a> {
    src: &'a str,
    scan: &'a str,
}

/// One level of indentation for nodes this module writes.
const INDENT: &str = "    ";

impl Text<'_> {
    fn replaced(&self, range: std::ops::Range<usize>, with: &str) -> String {
        let mut out = String::with_capacity(self.src.len() + with.len());
        out.push_str(&self.src[..range.start]);
        out.push_str(with);
        out.push_str(&self.src[range.end..]);
        out
    }

    /// The bytes of a property's value.
    fn value_range(&self, entry: &kdl::KdlEntry) -> Result<std::ops::Range<usize>, Error> {
        let e = end(entry.span());
        let repr = entry.format().map(|f| f.value_repr.as_str()).unwrap_or("");
        let start = e.checked_sub(repr.len()).unwrap_or(e);
        if repr.is_empty() || self.scan.get(start..e) != Some(repr) {
            return Err(Error::new(
                "cannot find the value's text in the manifest; edit it by hand",
            ));
        }
        Ok(start..e)
    }

    fn line_start(&self, pos: usize) -> usize {
        self.scan[..pos].rfind('\n').map_or(0, |i| i + 1)
    }

    /// The indentation of the line holding `pos`.
    fn indent(&self, pos: usize) -> &str {
        let start = self.line_start(pos);
        let line = &self.src[start..];
        &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
    }

    /// Whether only blanks come before `pos` on its line.
    fn first_on_line(&self, pos: usize) -> bool {
        self.scan[self.line_start(pos)..pos].trim().is_empty()
    }

    /// A property with the blanks before it.
    fn entry_removal(&self, span: miette::SourceSpan) -> std::ops::Range<usize> {
        let start = span.offset();
        let before = self.scan[..start].trim_end_matches([' ', '\t']).len();
        before..end(span)
    }

    /// A node: its whole line(s) when it stands alone on them, else itself and its `;`.
    fn node_removal(&self, node: &KdlNode) -> std::ops::Range<usize> {
        let span = node.span();
        let mut b = end(span);
        let rest = &self.scan[b..];
        let blanks = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if rest[blanks..].starts_with(';') {
            b += blanks + 1;
        }
        let rest = &self.scan[b..];
        b += rest.len() - rest.trim_start_matches([' ', '\t']).len();
        if !self.first_on_line(span.offset()) {
            return span.offset()..b;
        }
        let a = self.line_start(span.offset());
        if self.scan[b..].starts_with('\n') {
            b += 1;
        } else if self.scan[b..].starts_with("\r\n") {
            b += 2;
        } else if !self.scan[b..].is_empty() {
            // Something else follows on the line (`a 1; b 2`): keep it on its line.
            return span.offset()..b;
        }
        // Between two blank lines, one of them goes too.
        if self.scan[..a].ends_with("\n\n") && self.scan[b..].starts_with('\n') {
            b += 1;
        }
        a..b
    }

    /// The text with new nodes `chain` (each inside the previous), ending with `leaf`, added
    /// under `parent` (`None`: at the top level).
    fn add(&self, parent: Option<&KdlNode>, chain: &[&str], leaf: Leaf<'_>) -> String {
        // Only a property on an existing node is added inline.
        if let (Some(p), [], Leaf::Property(prop)) = (parent, chain, &leaf) {
            let at = content_end(p);
            return self.replaced(at..at, &format!(" {prop}"));
        }
        let block = |base: &str| -> String {
            let mut text = String::new();
            let mut indent = base.to_owned();
            for (i, name) in chain.iter().enumerate() {
                let last = i + 1 == chain.len();
                text.push_str(&value::ident(name));
                match (&leaf, last) {
                    (Leaf::Property(p), true) => {
                        text.push(' ');
                        text.push_str(p);
                        for _ in 0..i {
                            indent.truncate(indent.len() - INDENT.len());
                            text.push_str(&format!("\n{indent}}}"));
                        }
                        return text;
                    }
                    _ => {
                        indent.push_str(INDENT);
                        text.push_str(&format!(" {{\n{indent}"));
                    }
                }
            }
            if let Leaf::Node(line) = &leaf {
                text.push_str(line);
            }
            for _ in chain {
                indent.truncate(indent.len() - INDENT.len());
                text.push_str(&format!("\n{indent}}}"));
            }
            text
        };
        let Some(p) = parent else {
            let sep = if self.src.is_empty() || self.src.ends_with("\n\n") {
                ""
            } else if self.src.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            let at = self.src.len();
            return self.replaced(at..at, &format!("{sep}{}\n", block("")));
        };
        let pindent = self.indent(p.span().offset()).to_owned();
        match p.children() {
            None => {
                let at = content_end(p);
                let inner = format!("{pindent}{INDENT}");
                self.replaced(
                    at..at,
                    &format!(" {{\n{inner}{}\n{pindent}}}", block(&inner)),
                )
            }
            Some(children) => {
                let close = self.closing_brace(p);
                let inner = children
                    .nodes()
                    .first()
                    .filter(|n| self.first_on_line(n.span().offset()))
                    .map(|n| self.indent(n.span().offset()).to_owned())
                    .unwrap_or_else(|| format!("{pindent}{INDENT}"));
                if self.first_on_line(close) {
                    let at = self.line_start(close);
                    self.replaced(at..at, &format!("{inner}{}\n", block(&inner)))
                } else {
                    let at = self.scan[..close].trim_end().len();
                    let sep = if self.scan[..at].ends_with([';', '{']) {
                        " "
                    } else {
                        "; "
                    };
                    self.replaced(at..at, &format!("{sep}{}", block(&inner)))
                }
            }
        }
    }

    /// The offset of the `}` closing `node`'s children block.
    fn closing_brace(&self, node: &KdlNode) -> usize {
        let span = node.span();
        let text = &self.scan[span.offset()..end(span)];
        span.offset() + text.trim_end().len() - 1
    }
}

/// Where a node's name and entries end (before any children block or comment).
fn content_end(node: &KdlNode) -> usize {
    node.entries()
        .iter()
        .map(|e| end(e.span()))
        .max()
        .unwrap_or_else(|| end(node.name().span()))
}

#[cfg(test)]
mod tests;
