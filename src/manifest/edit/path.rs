//! Dotted paths over a manifest's own nodes, and where one leads in a parsed document.
//!
//! In: a path as the user writes it (`detector.bats.threshold`, `saving.keep-if[0].min-score`,
//! `messaging.mqtt.host`) and a `KdlDocument`. Out: the node or property it names, or the
//! first name along it that the document does not have (what `set` creates), or an error
//! with a "did you mean" among the names that are there.
//!
//! A segment is a node name, a property key (last segment only), or, after a node of a named
//! kind (`microphone`, `detector`, `worker`, `task`, `header`), that node's name. A node
//! written more than once is picked by index (`keep-if[1]`); a segment with a `.` or `[` in
//! it is written in double quotes (`worker."a.b"`).

use kdl::{KdlEntry, KdlNode};

use super::Error;
use crate::diagnostic::closest;

/// Nodes whose first argument names them: a path names one by that name.
pub(crate) const NAMED: &[&str] = &["microphone", "detector", "worker", "task", "header"];

/// One segment of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    /// The node name, property key or identity.
    pub(crate) name: String,
    /// `[i]`: which of the nodes of this name.
    pub(crate) index: Option<usize>,
}

/// Splits `text` into segments.
pub(crate) fn parse(text: &str) -> Result<Vec<Segment>, Error> {
    let bad = |why: &str| {
        Error::new(format!("`{text}` is not a path: {why}")).help(
            "write node names separated by dots, e.g. `detector.bats.threshold` or `saving.keep-if[0].min-score`",
        )
    };
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut name = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => name.push(c),
                        None => return Err(bad("a quoted name is not closed")),
                    },
                    Some(c) => name.push(c),
                    None => return Err(bad("a quoted name is not closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' || c == '[' {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() {
                return Err(bad("a name is empty"));
            }
        }
        let mut index = None;
        if chars.peek() == Some(&'[') {
            chars.next();
            let mut digits = String::new();
            loop {
                match chars.next() {
                    Some(']') => break,
                    Some(c) => digits.push(c),
                    None => return Err(bad("`[` is not closed")),
                }
            }
            index = Some(
                digits
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| bad(&format!("`[{digits}]` is not an index")))?,
            );
        }
        out.push(Segment { name, index });
        match chars.next() {
            None => return Ok(out),
            Some('.') => {}
            Some(c) => return Err(bad(&format!("unexpected `{c}`"))),
        }
    }
}

/// Where a path leads.
#[derive(Debug)]
pub(crate) enum Found<'a> {
    /// An existing node.
    Node {
        /// The node.
        node: &'a KdlNode,
    },
    /// An existing property.
    Property {
        /// The node holding it.
        node: &'a KdlNode,
        /// The property.
        entry: &'a KdlEntry,
    },
    /// The path goes on past what the document has.
    Missing {
        /// The last node that exists (`None`: the top level).
        parent: Option<&'a KdlNode>,
        /// The path up to that node, as written.
        found: String,
        /// The names that are missing, from the first one on.
        rest: Vec<Segment>,
    },
}

/// The positional arguments of a node.
pub(crate) fn args(node: &KdlNode) -> impl Iterator<Item = &KdlEntry> {
    node.entries().iter().filter(|e| e.name().is_none())
}

/// The first property `key` of `node`.
pub(crate) fn prop<'a>(node: &'a KdlNode, key: &str) -> Option<&'a KdlEntry> {
    node.entries()
        .iter()
        .find(|e| e.name().is_some_and(|n| n.value() == key))
}

/// The name a node of a named kind carries (its first argument), if it is a string.
pub(crate) fn identity(node: &KdlNode) -> Option<&str> {
    args(node).next().and_then(|e| e.value().as_string())
}

/// The names a path may continue with after `parent` (its children and properties).
pub(crate) fn names_under(parent: Option<&KdlNode>, nodes: &[KdlNode]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(p) = parent {
        for e in p.entries() {
            if let Some(k) = e.name()
                && !out.iter().any(|o| o == k.value())
            {
                out.push(k.value().to_owned());
            }
        }
    }
    for n in nodes {
        let name = n.name().value();
        if !out.iter().any(|o| o == name) {
            out.push(name.to_owned());
        }
    }
    out
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn join(found: &str, name: &str) -> String {
    if found.is_empty() {
        name.to_owned()
    } else {
        format!("{found}.{name}")
    }
}

/// Follows `path` through `nodes` (a document's top level).
pub(crate) fn resolve<'a>(nodes: &'a [KdlNode], path: &[Segment]) -> Result<Found<'a>, Error> {
    let mut nodes = nodes;
    let mut parent: Option<&'a KdlNode> = None;
    let mut found = String::new();
    let mut i = 0;
    while i < path.len() {
        let seg = &path[i];
        let last = i + 1 == path.len();
        let here = if found.is_empty() {
            "the manifest".to_owned()
        } else {
            format!("`{found}`")
        };
        if let Some(p) = parent
            && seg.index.is_none()
            && let Some(entry) = prop(p, &seg.name)
        {
            if !last {
                return Err(Error::new(format!(
                    "`{}` is a property: it has no `{}`",
                    join(&found, &seg.name),
                    path[i + 1].name
                )));
            }
            return Ok(Found::Property { node: p, entry });
        }
        let matching: Vec<&'a KdlNode> = nodes
            .iter()
            .filter(|n| n.name().value() == seg.name)
            .collect();
        if matching.is_empty() {
            if seg.index.is_some() || NAMED.contains(&seg.name.as_str()) {
                let what = match (NAMED.contains(&seg.name.as_str()), path.get(i + 1)) {
                    (true, Some(id)) => format!("`{}` named `{}`", seg.name, id.name),
                    _ => format!("`{}`", seg.name),
                };
                return Err(missing(&here, &what, &seg.name, parent, nodes));
            }
            return Ok(Found::Missing {
                parent,
                found,
                rest: path[i..].to_vec(),
            });
        }
        let chosen = if let Some(ix) = seg.index {
            *matching.get(ix).ok_or_else(|| {
                Error::new(format!(
                    "{here} has {} `{}` node{}: there is no `{}[{ix}]`",
                    matching.len(),
                    seg.name,
                    if matching.len() == 1 { "" } else { "s" },
                    seg.name
                ))
                .help(format!(
                    "use an index from 0 to {}",
                    matching.len().saturating_sub(1)
                ))
            })?
        } else if NAMED.contains(&seg.name.as_str()) {
            let idents: Vec<String> = matching
                .iter()
                .filter_map(|n| identity(n).map(str::to_owned))
                .collect();
            let Some(id) = path.get(i + 1) else {
                return Err(Error::new(format!(
                    "`{}` needs the name of one: {}",
                    join(&found, &seg.name),
                    list(&idents)
                ))
                .help(format!(
                    "for example `{}`",
                    join(
                        &found,
                        &format!(
                            "{}.{}",
                            seg.name,
                            idents.first().map(String::as_str).unwrap_or("NAME")
                        )
                    )
                )));
            };
            i += 1;
            let hit = matching
                .iter()
                .find(|n| identity(n) == Some(id.name.as_str()))
                .copied();
            match (hit, id.index) {
                (Some(n), None) => {
                    found = join(&found, &seg.name);
                    n
                }
                (Some(_), Some(_)) => {
                    return Err(Error::new(format!(
                        "`{}` names one `{}`: it takes no index",
                        join(&found, &format!("{}.{}", seg.name, id.name)),
                        seg.name
                    )));
                }
                (None, _) => {
                    let refs: Vec<&str> = idents.iter().map(String::as_str).collect();
                    let mut e = Error::new(format!(
                        "no `{}` named `{}` in {here}; there {}: {}",
                        seg.name,
                        id.name,
                        if idents.len() == 1 { "is" } else { "are" },
                        list(&idents)
                    ));
                    if let Some(c) = closest(&id.name, &refs) {
                        e = e.help(format!("did you mean `{c}`?"));
                    }
                    return Err(e);
                }
            }
        } else if matching.len() == 1 {
            matching[0]
        } else {
            return Err(Error::new(format!(
                "{here} has {} `{}` nodes: say which",
                matching.len(),
                seg.name
            ))
            .help(format!(
                "write `{0}[0]` to `{0}[{1}]`",
                join(&found, &seg.name),
                matching.len() - 1
            )));
        };
        let written = match seg.index {
            Some(ix) => format!("{}[{ix}]", seg.name),
            None => seg.name.clone(),
        };
        found = if NAMED.contains(&seg.name.as_str()) && seg.index.is_none() {
            format!("{found}.{}", quote_segment(&path[i].name))
        } else {
            join(&found, &written)
        };
        parent = Some(chosen);
        nodes = chosen.children().map(|d| d.nodes()).unwrap_or(&[]);
        i += 1;
    }
    match parent {
        Some(node) => Ok(Found::Node { node }),
        None => Err(Error::new("the path is empty")),
    }
}

/// A segment as a path writes it: quoted when it holds a `.`, `[` or `"`.
pub(crate) fn quote_segment(name: &str) -> String {
    if name.contains(['.', '[', ']', '"']) || name.is_empty() {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        name.to_owned()
    }
}

/// "no `x` in …", with a "did you mean" among the names there.
pub(crate) fn missing(
    here: &str,
    what: &str,
    name: &str,
    parent: Option<&KdlNode>,
    nodes: &[KdlNode],
) -> Error {
    let names = names_under(parent, nodes);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut e = Error::new(format!("no {what} in {here}; it has: {}", list(&names)));
    if let Some(c) = closest(name, &refs) {
        e = e.help(format!("did you mean `{c}`?"));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, index: Option<usize>) -> Segment {
        Segment {
            name: name.to_owned(),
            index,
        }
    }

    #[test]
    fn paths_split_on_dots_with_indices_and_quotes() {
        assert_eq!(
            parse("saving.keep-if[0].min-score").expect("path"),
            [
                seg("saving", None),
                seg("keep-if", Some(0)),
                seg("min-score", None)
            ]
        );
        assert_eq!(
            parse("workers.worker.\"a.b\".concurrency").expect("path"),
            [
                seg("workers", None),
                seg("worker", None),
                seg("a.b", None),
                seg("concurrency", None)
            ]
        );
        for bad in ["", "a..b", "a.", "a[x]", "a[1", "\"a", "a[0]b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
