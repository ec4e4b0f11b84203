//! `acoupi config get`: what a path leads to, as `path = value` lines.
//!
//! In: the manifest text and a path (or none, for everything). Out: one line per value: a
//! node's arguments under its own path, each property under `path.key`, children under
//! their paths (a named node by its name, a repeated one by index), so every line names a
//! path `config set` takes. Values of `username`, `password` and `header` written in the
//! manifest show as `***`; references (`env=`, `file=`) are shown.

use kdl::KdlNode;

use super::path::{self, Found};
use super::{Error, NAMED, children_of, parse};

/// The `path = value` lines of what `path` leads to (the whole manifest when `None`), with
/// the values of secret nodes written in the manifest masked.
pub fn get(source: &str, path: Option<&str>) -> Result<Vec<(String, String)>, Error> {
    let parsed = parse(source)?;
    let mut out = Vec::new();
    match path {
        None | Some("") => list_nodes(parsed.doc.nodes(), "", false, &mut out),
        Some(p) => {
            let segs = path::parse(p)?;
            let secret = segs.iter().any(|s| SECRET_NODES.contains(&s.name.as_str()));
            match path::resolve(parsed.doc.nodes(), &segs)? {
                Found::Property { entry, node } => {
                    let masked = secret && entry_is_plain_secret(node, entry);
                    out.push((p.to_owned(), show(entry, masked)));
                }
                Found::Node { node } => list_node(node, p, secret, &mut out),
                Found::Missing {
                    parent,
                    found,
                    rest,
                } => {
                    let here = if found.is_empty() {
                        "the manifest".to_owned()
                    } else {
                        format!("`{found}`")
                    };
                    let nodes = children_of(parent, &parsed.doc);
                    let what = format!("`{}`", rest[0].name);
                    return Err(path::missing(&here, &what, &rest[0].name, parent, nodes));
                }
            }
        }
    }
    Ok(out)
}

/// Nodes whose values are secrets when written in the manifest.
const SECRET_NODES: &[&str] = &["username", "password", "header"];

fn entry_is_plain_secret(node: &KdlNode, entry: &kdl::KdlEntry) -> bool {
    // `password env="X"`: a reference, not a secret. A header's value argument is.
    entry.name().is_none() && !(node.name().value() == "header" && is_first_arg(node, entry))
}

fn is_first_arg(node: &KdlNode, entry: &kdl::KdlEntry) -> bool {
    path::args(node)
        .next()
        .is_some_and(|a| a.span() == entry.span())
}

fn show(entry: &kdl::KdlEntry, masked: bool) -> String {
    if masked {
        return "***".to_owned();
    }
    match entry.value().as_string() {
        Some(s) => s.to_owned(),
        None => entry
            .format()
            .map(|f| f.value_repr.clone())
            .unwrap_or_else(|| entry.value().to_string()),
    }
}

fn list_nodes(nodes: &[KdlNode], prefix: &str, secret: bool, out: &mut Vec<(String, String)>) {
    let join = |n: &str| {
        if prefix.is_empty() {
            n.to_owned()
        } else {
            format!("{prefix}.{n}")
        }
    };
    for node in nodes {
        let name = node.name().value();
        let count = nodes.iter().filter(|n| n.name().value() == name).count();
        let here = if NAMED.contains(&name)
            && let Some(id) = path::identity(node)
        {
            join(&format!("{name}.{}", path::quote_segment(id)))
        } else if count > 1 {
            let index = nodes
                .iter()
                .filter(|n| n.name().value() == name)
                .position(|n| std::ptr::eq(n, node))
                .unwrap_or(0);
            join(&format!("{name}[{index}]"))
        } else {
            join(&path::quote_segment(name))
        };
        let secret = secret || SECRET_NODES.contains(&name);
        list_node(node, &here, secret, out);
    }
}

fn list_node(node: &KdlNode, here: &str, secret: bool, out: &mut Vec<(String, String)>) {
    let named = NAMED.contains(&node.name().value());
    let args: Vec<String> = path::args(node)
        .skip(usize::from(named))
        .map(|e| show(e, secret && entry_is_plain_secret(node, e)))
        .collect();
    let props: Vec<&kdl::KdlEntry> = node
        .entries()
        .iter()
        .filter(|e| e.name().is_some())
        .collect();
    let children = node.children().map(|d| d.nodes()).unwrap_or(&[]);
    if !args.is_empty() || (props.is_empty() && children.is_empty()) {
        out.push((here.to_owned(), args.join(" ")));
    }
    for p in props {
        let key = p.name().map(|k| k.value()).unwrap_or_default();
        out.push((
            format!("{here}.{}", path::quote_segment(key)),
            show(p, false),
        ));
    }
    list_nodes(children, here, secret, out);
}
