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

use kdl::{KdlDocument, KdlError};

/// Texts shorter than this are parsed whole: a thread costs more than it saves.
pub(crate) const MIN_BYTES: usize = 64 * 1024;

/// At most this many pieces.
const MAX_PIECES: usize = 8;

/// Parses `text` (whose top-level nodes start at the offsets `splits`) in up to `pieces`
/// pieces, each on its own thread with a stack of `stack` bytes.
pub(crate) fn parse(
    text: &str,
    splits: &[usize],
    pieces: usize,
    stack: usize,
) -> Result<KdlDocument, KdlError> {
    let bounds = bounds(text.len(), splits, pieces.min(MAX_PIECES));
    if bounds.len() < 3 {
        return KdlDocument::parse_v2(text);
    }
    let parsed: Vec<Option<Result<KdlDocument, KdlError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (start, end) = (w[0], w[1]);
                std::thread::Builder::new()
                    .name("kdl-piece".into())
                    .stack_size(stack)
                    .spawn_scoped(scope, move || parse_piece(text, start, end))
                    .ok()
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.and_then(|h| h.join().ok()))
            .collect()
    });
    let mut doc: Option<KdlDocument> = None;
    for piece in parsed {
        match (piece, doc.as_mut()) {
            (Some(Ok(piece)), None) => doc = Some(piece),
            (Some(Ok(mut piece)), Some(whole)) => {
                whole.nodes_mut().append(piece.nodes_mut());
            }
            // A piece that does not parse (or a thread that could not be had): the whole
            // text is parsed, for the exact errors.
            _ => return KdlDocument::parse_v2(text),
        }
    }
    doc.map_or_else(|| KdlDocument::parse_v2(text), Ok)
}

/// `text[start..end]` parsed at its place in the file: everything before it blanked.
fn parse_piece(text: &str, start: usize, end: usize) -> Result<KdlDocument, KdlError> {
    if start == 0 {
        return KdlDocument::parse_v2(&text[..end]);
    }
    let mut placed = String::with_capacity(end);
    placed.extend(std::iter::repeat_n(' ', start));
    placed.push_str(&text[start..end]);
    KdlDocument::parse_v2(&placed)
}

/// Cut points `0 = b0 < b1 < … < bk = len` taken from `splits`, making up to `pieces`
/// pieces of about equal length (fewer when the splits are too few or too uneven).
fn bounds(len: usize, splits: &[usize], pieces: usize) -> Vec<usize> {
    let mut out = vec![0];
    for k in 1..pieces {
        let target = len * k / pieces;
        let at = splits.partition_point(|&s| s < target);
        if let Some(&cut) = splits.get(at)
            && cut > *out.last().unwrap_or(&0)
            && cut < len
        {
            out.push(cut);
        }
    }
    out.push(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::prescan::prescan;

    const STACK: usize = 8 * 1024 * 1024;

    /// The nodes of `text` parsed whole and in `pieces` pieces, printed with their spans.
    fn both(text: &str, pieces: usize) -> (String, String) {
        let scanned = prescan(text).expect("no stopping issue");
        both_scanned(&scanned, pieces)
    }

    fn both_scanned(
        scanned: &crate::manifest::prescan::Prescanned<'_>,
        pieces: usize,
    ) -> (String, String) {
        let show = |doc: Result<KdlDocument, KdlError>| match doc {
            Ok(doc) => doc
                .nodes()
                .iter()
                .map(|n| {
                    let mut bare = n.clone();
                    bare.clear_format_recursive();
                    format!("{:?} {bare}\n", n.span())
                })
                .collect(),
            Err(e) => format!("error: {e:?}"),
        };
        (
            show(KdlDocument::parse_v2(&scanned.text)),
            show(parse(&scanned.text, &scanned.splits, pieces, STACK)),
        )
    }

    #[test]
    fn cut_points_are_line_starts_near_equal_shares() {
        assert_eq!(bounds(100, &[10, 30, 55, 70, 90], 2), [0, 55, 100]);
        assert_eq!(bounds(100, &[10, 30, 55, 70, 90], 4), [0, 30, 55, 90, 100]);
        // Too few splits: fewer pieces, never an empty one.
        assert_eq!(bounds(100, &[95], 4), [0, 95, 100]);
        assert_eq!(bounds(100, &[], 4), [0, 100]);
    }

    #[test]
    fn pieces_give_the_nodes_and_spans_of_the_whole() {
        let mut text = String::from("/- kdl-version 2\nacoupi version=1\n");
        for i in 0..200 {
            text.push_str(&format!(
                "node{i} \"a\" k=#true {{\n    child {i} \"\"\"\n        x\n        \"\"\"\n}}\n// note {i}\nnext{i} \\\n    1; other{i} 2\n/-gone{i} {{ a }}\n"
            ));
        }
        for pieces in [2, 3, 8] {
            let (whole, split) = both(&text, pieces);
            assert!(whole.contains("node199"), "{whole}");
            assert_eq!(whole, split, "{pieces} pieces");
        }
    }

    #[test]
    fn a_piece_that_does_not_parse_gives_the_whole_texts_error() {
        let mut text = String::new();
        for i in 0..100 {
            text.push_str(&format!("node{i} 1\n"));
        }
        // Not a doubt of the pre-scan, but not KDL: an unknown keyword.
        text.push_str("broken #nope\n");
        for i in 0..100 {
            text.push_str(&format!("more{i} 1\n"));
        }
        let (whole, split) = both(&text, 4);
        assert!(whole.starts_with("error:"), "{whole}");
        assert_eq!(whole, split);
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
        "i \"\"\"\n  text { }\n  \"\"\"\n",
        "j #\"raw \" } \"#\n",
        "k /* block\n } */ 4\n",
        "// comment {\n",
        "(t)l (u8)5\n",
        "m \\ // go on\n",
        "\n",
        "n #nope\n",
        "o \"unclosed\n",
    ];

    proptest::proptest! {
        #[test]
        fn pieces_always_agree_with_the_whole(
            picks in proptest::collection::vec(0..FRAGMENTS.len(), 1..120),
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
