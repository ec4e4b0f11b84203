//! Decoder for the storage side of the manifest: `retention`.
//!
//! In: the `retention` `KdlNode`. Out: its raw [`RetentionNode`]; problems go to the
//! collector. Ranges (percentages, ages, counts against the program) are checked in `model`.

use kdl::KdlNode;

use super::ast::{KeepNewestNode, RetentionNode};
use super::reader::{self, Shape, arg, check_shape, children, name, prop, value_arg};
use crate::diagnostic::{Diagnostics, Issue};

/// An example of a whole `keep-newest` node, for helps.
const KEEP_NEWEST: &str = "keep-newest 20 per=\"species\"";

/// `retention { max-age; max-usage; keep-newest }`.
pub(super) fn retention(node: &KdlNode, diags: &mut Diagnostics) -> RetentionNode {
    check_shape(
        node,
        &Shape {
            min_args: 0,
            max_args: 0,
            args: "",
            props: &[],
            children: true,
            example: "retention { max-age \"180d\"; max-usage \"85%\" }",
        },
        diags,
    );
    let mut out = RetentionNode {
        span: node.span(),
        max_age: None,
        max_usage: None,
        keep_newest: None,
    };
    let allowed = ["max-age", "max-usage", "keep-newest"];
    for child in children(node, &allowed, &[], diags) {
        match name(child) {
            "max-age" => {
                out.max_age = value_arg(child, "a duration", "max-age \"180d\"", diags)
                    .and_then(|e| reader::duration(e, "the maximum age", diags));
            }
            "max-usage" => {
                out.max_usage =
                    value_arg(child, "a percentage or a size", "max-usage \"85%\"", diags)
                        .and_then(|e| reader::usage(e, "the maximum usage", diags));
            }
            _ => out.keep_newest = Some(keep_newest(child, diags)),
        }
    }
    out
}

/// `keep-newest N per=KEY`; `per=` is required.
fn keep_newest(node: &KdlNode, diags: &mut Diagnostics) -> KeepNewestNode {
    check_shape(
        node,
        &Shape {
            min_args: 1,
            max_args: 1,
            args: "a count",
            props: &["per"],
            children: false,
            example: KEEP_NEWEST,
        },
        diags,
    );
    let n = arg(node, 0).and_then(|e| {
        reader::integer(e, "the `keep-newest` count", 1, i128::from(u32::MAX), diags)
    });
    let per = match prop(node, "per") {
        Some(e) => reader::string(e, "the tag key", diags),
        None => {
            diags.push(Issue::MissingProperty {
                node: "keep-newest".into(),
                name: "per".into(),
                span: reader::after_name(node),
                help: Some(format!(
                    "name the tag key whose values are counted: {KEEP_NEWEST}"
                )),
            });
            None
        }
    };
    KeepNewestNode {
        span: node.span(),
        n,
        per,
    }
}
