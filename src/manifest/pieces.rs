//! A large manifest parsed in pieces, one per core, and put back together.
//!
//! In: the pre-scanned text and the offsets where a top-level node starts a line. Out: the
//! same [`KdlDocument`] nodes, with the same spans, as one parse of the whole text, or the
//! whole text's own parse error.
//!
//! Why: the `kdl` crate parses about 2 MB/s (most of its time goes to building and dropping
//! error contexts while it tries alternatives), so a 1 MiB manifest costs half a second on
//! one core. Top-level nodes do not depend on each other, so the text is cut at line starts
//! the pre-scan vouches for and each piece is parsed on its own thread. A piece is parsed as
//! the text before it blanked to spaces plus the piece itself: every span is then already an
//! offset into the whole file, and the blanks cost the parser little. If any piece fails to
//! parse, the whole text is parsed instead, so that a syntax error reads exactly as it would
//! have (the pieces only speed up files that parse).

use kdl::{KdlDocument, KdlError, KdlNode};
use miette::SourceSpan;

use super::prescan::{Prescanned, Split};

/// Texts shorter than this are parsed whole: a thread costs more than it saves.
pub(crate) const MIN_BYTES: usize = 64 * 1024;

/// At most this many pieces.
const MAX_PIECES: usize = 8;

/// A piece of the text: `[start, end)`, and the depth (0 or 1) at each end.
#[derive(Debug, Clone, Copy)]
struct Piece {
    start: usize,
    end: usize,
    /// 1 when the piece starts among the children of a top-level node.
    open_at_start: bool,
    /// 1 when the piece ends among the children of a top-level node.
    open_at_end: bool,
    /// Where the block open at the start closes, when it closes in this piece.
    close: Option<usize>,
}

/// Parses the pre-scanned text in up to `pieces` pieces, each on its own thread with a stack
/// of `stack` bytes.
pub(crate) fn parse(
    scanned: &Prescanned<'_>,
    pieces: usize,
    stack: usize,
) -> Result<KdlDocument, KdlError> {
    let text: &str = &scanned.text;
    let cuts = cuts(text.len(), &scanned.splits, pieces.min(MAX_PIECES));
    if cuts.len() < 3 {
        return KdlDocument::parse_v2(text);
    }
    let pieces: Vec<Piece> = cuts
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            let open_at_start = start.depth == 1;
            let close = open_at_start
                .then(|| first_in(&scanned.closes, start.at, end.at))
                .flatten();
            Piece {
                start: start.at,
                end: end.at,
                open_at_start,
                open_at_end: end.depth == 1,
                close,
            }
        })
        .collect();
    let parsed: Vec<Option<Result<KdlDocument, KdlError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces
            .iter()
            .map(|&piece| {
                std::thread::Builder::new()
                    .name("kdl-piece".into())
                    .stack_size(stack)
                    .spawn_scoped(scope, move || parse_piece(text, piece))
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.and_then(|h| h.join().ok()))
            .collect()
    });
    let mut whole = KdlDocument::new();
    for (piece, doc) in pieces.iter().zip(parsed) {
        match doc {
            Some(Ok(mut doc)) => {
                if !join(&mut whole, piece, doc.nodes_mut()) {
                    return KdlDocument::parse_v2(text);
                }
            }
            // A piece that does not parse (or a thread that could not be had): the whole
            // text is parsed, for the exact errors.
            _ => return KdlDocument::parse_v2(text),
        }
    }
    fit(&mut whole, text.len());
    Ok(whole)
}

/// A document's span as the parser gives it: from its first node's start to its last node's
/// end; for a document without nodes (all blank, comments or commented out), empty at `end`,
/// where its text ends (the text's end, or a block's closing `}`).
fn fit(doc: &mut KdlDocument, end: usize) {
    let (Some(first), Some(last)) = (doc.nodes().first(), doc.nodes().last()) else {
        doc.set_span(SourceSpan::from((end, 0)));
        return;
    };
    let start = first.span().offset();
    let end = last.span().offset() + last.span().len();
    doc.set_span(SourceSpan::from((start, end - start)));
}

/// The first offset of the sorted `offsets` in `[from, to)`.
fn first_in(offsets: &[usize], from: usize, to: usize) -> Option<usize> {
    let i = offsets.partition_point(|&o| o < from);
    offsets.get(i).copied().filter(|&o| o < to)
}

/// The piece's text at its place in the file: everything before it blanked; the `}` that
/// closes a block opened in an earlier piece blanked too (its children come first, then
/// top-level nodes); and a `}` added when the piece ends inside a block.
fn parse_piece(text: &str, piece: Piece) -> Result<KdlDocument, KdlError> {
    let mut placed = String::with_capacity(piece.end + 1);
    placed.extend(std::iter::repeat_n(' ', piece.start));
    match piece.close {
        Some(close) => {
            placed.push_str(&text[piece.start..close]);
            placed.push(' ');
            placed.push_str(&text[close + 1..piece.end]);
        }
        None => placed.push_str(&text[piece.start..piece.end]),
    }
    if piece.open_at_end && (!piece.open_at_start || piece.close.is_some()) {
        placed.push('}');
    }
    KdlDocument::parse_v2(&placed)
}

/// Adds a piece's nodes to the document being put together: those before the block's close
/// (all of them, when it does not close in this piece) as children of the last top-level node,
/// the rest as top-level nodes. False when the pieces do not fit (no block to continue).
fn join(whole: &mut KdlDocument, piece: &Piece, nodes: &mut Vec<KdlNode>) -> bool {
    let mut nodes = std::mem::take(nodes).into_iter().peekable();
    if piece.open_at_start {
        let Some(parent) = whole.nodes_mut().last_mut() else {
            return false;
        };
        let Some(children) = parent.children_mut().as_mut() else {
            return false;
        };
        let limit = piece.close.unwrap_or(piece.end);
        while let Some(child) = nodes.next_if(|n| n.span().offset() < limit) {
            children.nodes_mut().push(child);
        }
        if let Some(close) = piece.close {
            // A last child ending in a line continuation runs on over the blank put in place
            // of the `}`; in one parse it stops at the `}`.
            if let Some(last) = children.nodes_mut().last_mut() {
                let start = last.span().offset();
                if start + last.span().len() > close {
                    last.set_span(SourceSpan::from((start, close - start)));
                }
            }
            // The block ends here: its span and its node's, as one parse would give them.
            fit(children, close);
            let start = parent.span().offset();
            parent.set_span(SourceSpan::from((start, close + 1 - start)));
        }
    }
    whole.nodes_mut().extend(nodes);
    true
}

/// Cut points (the text's start, splits, its end) making up to `pieces` pieces of about
/// equal length (fewer when the splits are too few or too uneven).
fn cuts(len: usize, splits: &[Split], pieces: usize) -> Vec<Split> {
    let mut out = vec![Split { at: 0, depth: 0 }];
    for k in 1..pieces {
        let target = len * k / pieces;
        let at = splits.partition_point(|s| s.at < target);
        if let Some(&cut) = splits.get(at)
            && cut.at > out.last().map_or(0, |s| s.at)
            && cut.at < len
        {
            out.push(cut);
        }
    }
    out.push(Split { at: len, depth: 0 });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::prescan::prescan;

    const STACK: usize = 8 * 1024 * 1024;

    /// Every node at every depth with its span and its children block's span, formatting
    /// aside.
    fn show(doc: &KdlDocument, depth: usize, out: &mut String) {
        out.push_str(&format!("{}doc {:?}\n", "  ".repeat(depth), doc.span()));
        for n in doc.nodes() {
            let mut bare = n.clone();
            bare.set_children(KdlDocument::new());
            bare.clear_format_recursive();
            let entries: Vec<String> = n
                .entries()
                .iter()
                .map(|e| format!("{:?}", e.span()))
                .collect();
            out.push_str(&format!(
                "{}{:?} {bare} {entries:?}\n",
                "  ".repeat(depth),
                n.span()
            ));
            if let Some(children) = n.children() {
                show(children, depth + 1, out);
            }
        }
    }

    fn shown(doc: Result<KdlDocument, KdlError>) -> String {
        match doc {
            Ok(doc) => {
                let mut out = String::new();
                show(&doc, 0, &mut out);
                out
            }
            Err(e) => format!("error: {e:?}"),
        }
    }

    /// `text` parsed whole and in `pieces` pieces.
    fn both(text: &str, pieces: usize) -> (String, String) {
        let scanned = prescan(text).expect("no stopping issue");
        both_scanned(&scanned, pieces)
    }

    fn both_scanned(scanned: &Prescanned<'_>, pieces: usize) -> (String, String) {
        (
            shown(KdlDocument::parse_v2(&scanned.text)),
            shown(parse(scanned, pieces, STACK)),
        )
    }

    #[test]
    fn cut_points_are_line_starts_near_equal_shares() {
        let at = |cuts: Vec<Split>| cuts.iter().map(|s| s.at).collect::<Vec<_>>();
        let splits: Vec<Split> = [10, 30, 55, 70, 90].map(|at| Split { at, depth: 0 }).into();
        assert_eq!(at(cuts(100, &splits, 2)), [0, 55, 100]);
        assert_eq!(at(cuts(100, &splits, 4)), [0, 30, 55, 90, 100]);
        // Too few splits: fewer pieces, never an empty one.
        assert_eq!(at(cuts(100, &splits[4..], 4)), [0, 90, 100]);
        assert_eq!(at(cuts(100, &[], 4)), [0, 100]);
    }

    #[test]
    fn pieces_give_the_nodes_and_spans_of_the_whole() {
        let mut text = String::from("/- kdl-version 2\nacoupi version=1\n");
        for i in 0..200 {
            text.push_str(&format!(
                "node{i} \"a\" k=#true {{\n    child {i} \"\"\"\n        x\n        \"\"\"\n    deep {{ a; b }}\n}}\n// note {i}\nnext{i} \\\n    1; other{i} 2\n/-gone{i} {{\n    a\n}}\n"
            ));
        }
        text.push_str("recording {\n");
        for i in 0..300 {
            text.push_str(&format!("    window from=\"{i}\" to=\"{i}\"\n"));
        }
        text.push_str("}\nlast 1\n");
        for pieces in [2, 3, 8] {
            let (whole, split) = both(&text, pieces);
            assert!(whole.contains("node199"), "{whole}");
            assert_eq!(whole, split, "{pieces} pieces");
        }
    }

    #[test]
    fn a_piece_that_does_not_parse_gives_the_whole_texts_error() {
        let mut text = String::from("block {\n");
        for i in 0..100 {
            text.push_str(&format!("    node{i} 1\n"));
        }
        // Not a doubt of the pre-scan, but not KDL: an unknown keyword.
        text.push_str("    broken #nope\n}\n");
        for i in 0..100 {
            text.push_str(&format!("more{i} 1\n"));
        }
        let (whole, split) = both(&text, 4);
        assert!(whole.starts_with("error:"), "{whole}");
        assert_eq!(whole, split);
    }

    #[test]
    fn a_document_whose_every_node_is_commented_out_has_the_wholes_span() {
        // Found by pieces_always_agree_with_the_whole: the empty document's span is at the
        // end of the text, not at its start.
        let top = "/-\ni \"\"\"\n  text { }\n  \"\"\"\n/-g { h }\n";
        // A block whose children are all commented out, cut inside it: empty at its `}`.
        let mut block = String::from("x {\n");
        for i in 0..40 {
            block.push_str(&format!("    /-c{i} 1\n"));
        }
        block.push_str("}\n");
        for text in [top, &block] {
            for pieces in 2..5 {
                let (whole, split) = both(text, pieces);
                assert_eq!(whole, split, "{pieces} pieces of {text:?}");
            }
        }
    }

    /// Lines and fragments that end or continue nodes in every way KDL allows.
    const FRAGMENTS: &[&str] = &[
        "a 1\n",
        "b \"two\" k=v\n",
        "c {\n",
        "}\n",
        "  d 1; e 2\n",
        "f \\\n",
        "  3\n",
        "/-\n",
        "/-g { h }\n",
        "/-p {\n",
        "q /-{\n",
        "i \"\"\"\n  text { }\n  \"\"\"\n",
        "j #\"raw \" } \"#\n",
        "k /* block\n } */ 4\n",
        "// comment {\n",
        "(t)l (u8)5\n",
        "m \\ // go on\n",
        "\n",
        "n #nope\n",
        "o \"unclosed\n",
        "r { s 1\n",
    ];

    #[test]
    fn a_line_continuation_just_before_a_blocks_close_ends_where_one_parse_ends_it() {
        // The child's last token is a `\` (with or without a comment after it) and the `}`
        // starts the next line: a piece blanks that `}`, and the child ran on over the blank.
        for text in [
            "c {\nm \\ // go on\n}\n",
            "c {\nm \\\n}\n",
            "c {\nm 1 \\ // x\n}\nz 2\n",
        ] {
            let scanned = prescan(text).expect("scans");
            for pieces in 2..6 {
                let (whole, split) = both_scanned(&scanned, pieces);
                assert_eq!(whole, split, "{text:?} in {pieces} pieces");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(96))]
        #[test]
        fn pieces_always_agree_with_the_whole(
            picks in proptest::collection::vec(0..FRAGMENTS.len(), 1..100),
            pieces in 2usize..6,
        ) {
            let text: String = picks.iter().map(|&i| FRAGMENTS[i]).collect();
            if let Ok(scanned) = prescan(&text) {
                let (whole, split) = both_scanned(&scanned, pieces);
                proptest::prop_assert_eq!(whole, split, "{:?}", text);
            }
        }
    }
}
