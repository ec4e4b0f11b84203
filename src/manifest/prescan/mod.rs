//! The pre-scan: one linear pass over the raw manifest text before the KDL parser reads it.
//!
//! In: the manifest source. Out: the text the KDL parser reads, which is the source with
//! every comment blanked to spaces (byte for byte, so every span stays exact), and the
//! offsets where a top-level node starts a line (where the text may be cut into pieces
//! parsed apart, see `manifest::pieces`); or the one issue that stops the parse: children
//! nested deeper than [`MAX_DEPTH`], a comment or multi-line string that never closes, or a
//! malformed token in a file too large for the KDL parser's error recovery to be safe.
//!
//! Why: the `kdl` crate's parser is recursive. Each `{` is a level of recursion, so is each
//! segment of a `/* … */` comment, and its error recovery re-enters the document parser at
//! every stray token it skips at the top level; a hostile file overflows the stack and
//! aborts the process. Its comment rules also read one character at a time through several
//! alternatives, the slowest part of parsing a commented file. Blanking comments here
//! removes both, and the depth is counted on the raw text, outside strings and comments,
//! before any recursive code runs.
//!
//! Strings are followed as KDL 2 writes them (quoted, multi-line, raw with any number of
//! `#`), so braces inside them do not count. Malformed input is where the KDL parser's
//! recovery may disagree with this scan or restart itself: this pass records the first
//! token the parser will reject (a "doubt": a string glued to a value, a stray `}` or `)`,
//! an `=` with no key, a string not closed on its line, a bad escape…), and when a file with
//! a doubt holds more than [`SAFE_SOLID`] non-blank bytes, reports that token itself instead
//! of handing the file over.

use std::borrow::Cow;

use crate::diagnostic::Issue;

mod strings;

/// Deepest nesting of children blocks accepted. acoupi's nodes nest two levels deep
/// (`messaging { mqtt … { password … } }`); 64 leaves room for any hand-written file while staying
/// far below the depth at which the KDL parser's recursion exhausts a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 64;

/// Non-blank bytes (outside comments) of a malformed file that the KDL parser's error
/// recovery is known to survive, whatever it makes of them: each restart of its document
/// parser consumes at least one such byte, and 16 Ki restarts fit its thread's stack many
/// times over, in a debug build too. A malformed file with more is answered by the pre-scan alone.
pub const SAFE_SOLID: usize = 16 * 1024;

/// What the KDL parser is given.
#[derive(Debug)]
pub(crate) struct Prescanned<'a> {
    /// The source with its comments blanked.
    pub(crate) text: Cow<'a, str>,
    /// The lines, in order, that start with a top-level node or with a child of a top-level
    /// node: after a newline at depth 0 or 1 outside strings, comments and type annotations,
    /// not continued by a `\` or a `/-` before it, and (at depth 1) not inside the block of a
    /// node with a `/-` in it. Empty when the scan doubts a token (the file is malformed: it
    /// is parsed whole, so that its syntax errors are exactly the parser's).
    pub(crate) splits: Vec<Split>,
    /// Offsets, in order, of the `}` that close top-level nodes' children blocks.
    pub(crate) closes: Vec<usize>,
}

/// A line start where the text may be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split {
    /// Its offset.
    pub(crate) at: usize,
    /// 0 before a top-level node, 1 before a child of one.
    pub(crate) depth: u8,
}

/// Blanks comments and checks nesting; see the module documentation.
pub(crate) fn prescan(source: &str) -> Result<Prescanned<'_>, Issue> {
    let mut s = Scanner {
        text: source,
        bytes: source.as_bytes(),
        blank: Vec::new(),
        doubt: None,
        solid: 0,
        splits: Vec::new(),
        closes: Vec::new(),
    };
    s.run()?;
    if let Some(doubt) = s.doubt {
        if s.solid > SAFE_SOLID {
            return Err(doubt.into_issue());
        }
        s.splits.clear();
    }
    let (splits, closes) = (s.splits, s.closes);
    if s.blank.is_empty() {
        return Ok(Prescanned {
            text: Cow::Borrowed(source),
            splits,
            closes,
        });
    }
    let mut out = source.as_bytes().to_vec();
    for (start, end) in s.blank {
        out[start..end].fill(b' ');
    }
    // Every blanked range is a whole comment: it starts and ends on ASCII bytes, so it
    // holds whole characters and the text stays UTF-8.
    Ok(Prescanned {
        text: Cow::Owned(
            String::from_utf8(out).expect("blanking whole comments keeps the text UTF-8"),
        ),
        splits,
        closes,
    })
}

/// A token the KDL parser will reject, and whose recovery may disagree with this scan.
#[derive(Debug, Clone, Copy)]
struct Doubt {
    at: usize,
    len: usize,
    what: &'static str,
    help: &'static str,
}

impl Doubt {
    fn into_issue(self) -> Issue {
        Issue::Syntax {
            message: self.what.to_owned(),
            span: (self.at, self.len).into(),
            label: "here".to_owned(),
            help: Some(self.help.to_owned()),
        }
    }
}

/// The previous token, as far as spotting tokens the KDL parser rejects goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Start of the file, a newline, `;`, `{`, `(`, `)`, `/-` or `\\`.
    Break,
    /// A word, number, keyword or string, with nothing after it yet.
    Value,
    /// A value and then spaces or a comment.
    Space,
    /// `=`.
    Equals,
    /// `}`.
    Close,
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Byte ranges of comments, to blank.
    blank: Vec<(usize, usize)>,
    /// The first token the KDL parser will reject.
    doubt: Option<Doubt>,
    /// Bytes other than spaces and newlines outside comments, strings included.
    solid: usize,
    /// See [`Prescanned::splits`].
    splits: Vec<Split>,
    /// See [`Prescanned::closes`].
    closes: Vec<usize>,
}

/// KDL's whitespace other than newlines (`unicode-space`).
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// KDL's code points that may not appear literally anywhere.
fn is_disallowed(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}'
        | '\u{E}'..='\u{1F}'
        | '\u{7F}'
        | '\u{200E}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}'
    )
}

impl Scanner<'_> {
    /// The length in bytes of the KDL newline at `i` (CRLF counts as one), or 0.
    fn newline(&self, i: usize) -> usize {
        match self.bytes.get(i..).unwrap_or(&[]) {
            [b'\r', b'\n', ..] => 2,
            [b'\r' | b'\n' | 0x0B | 0x0C, ..] => 1,
            [0xC2, 0x85, ..] => 2,
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => 3,
            _ => 0,
        }
    }

    /// The character at byte `i` (which must be a character boundary).
    fn char_at(&self, i: usize) -> Option<char> {
        self.text.get(i..).and_then(|t| t.chars().next())
    }

    fn doubt(&mut self, at: usize, len: usize, what: &'static str, help: &'static str) {
        if self.doubt.is_none() {
            self.doubt = Some(Doubt {
                at,
                len,
                what,
                help,
            });
        }
    }

    fn run(&mut self) -> Result<(), Issue> {
        let n = self.bytes.len();
        let mut depth = 0usize;
        // What the previous token was, spaces and comments aside: a quote right after a
        // value (`b"x"`, `r"x"`), a value right after a `}`, an `=` with no key before it
        // are tokens the KDL parser rejects and may restart at.
        let mut last = Last::Break;
        // Inside a type annotation's parentheses.
        let mut in_type = false;
        // The last token was a `\` (the node goes on on the next line) or a `/-` (which
        // comments out whatever comes next, on this line or the next).
        let mut continued = false;
        // A `/-` in the current top-level node, and whether the block open at depth 1 is
        // that of such a node (its children may be commented out: never cut inside it).
        let mut dashed_node = false;
        let mut dashed_block = false;
        let mut i = 0;
        while i < n {
            let b = self.bytes[i];
            let nl = self.newline(i);
            if nl > 0 {
                i += nl;
                last = Last::Break;
                if !in_type && !continued && i < n {
                    if depth == 0 {
                        dashed_node = false;
                        self.splits.push(Split { at: i, depth: 0 });
                    } else if depth == 1 && !dashed_block {
                        self.splits.push(Split { at: i, depth: 1 });
                    }
                }
                continue;
            }
            if matches!(b, b' ' | b'\t') {
                i += 1;
                if last == Last::Value {
                    last = Last::Space;
                }
                continue;
            }
            if b == b'/' && self.bytes.get(i + 1) == Some(&b'/') {
                let mut j = i + 2;
                while j < n && self.newline(j) == 0 {
                    j += 1;
                }
                self.blank.push((i, j));
                i = j;
                continue;
            }
            if b == b'/' && self.bytes.get(i + 1) == Some(&b'*') {
                i = self.block_comment(i)?;
                if last == Last::Value {
                    last = Last::Space;
                }
                continue;
            }
            if b >= 0x80 && self.char_at(i).is_some_and(is_space) {
                i += self.char_at(i).map_or(1, char::len_utf8);
                if last == Last::Value {
                    last = Last::Space;
                }
                continue;
            }
            self.solid += 1;
            continued = b == b'\\' || (b == b'/' && self.bytes.get(i + 1) == Some(&b'-'));
            if depth == 0 {
                if b == b'/' && self.bytes.get(i + 1) == Some(&b'-') {
                    dashed_node = true;
                } else if b == b';' {
                    dashed_node = false;
                }
            }
            if last == Last::Close && !matches!(b, b'}' | b';' | b'/' | b'\\') {
                self.doubt(
                    i,
                    1,
                    "nothing may follow a children block on its line",
                    "end the node after its `}`: start the next node on a new line or after a `;`",
                );
            }
            match b {
                b'"' | b'#' => {
                    let hashes = self.bytes[i..].iter().take_while(|&&c| c == b'#').count();
                    if self.bytes.get(i + hashes) != Some(&b'"') {
                        // A keyword such as `#true`, or a stray `#`.
                        self.solid += hashes - 1;
                        i += hashes;
                        last = Last::Value;
                        continue;
                    }
                    if last == Last::Value {
                        self.doubt(
                            i,
                            1,
                            "a string starts right after another value",
                            "separate values with a space; KDL 2 raw strings are written `#\"…\"#`",
                        );
                    }
                    let end = self.string(i, hashes)?;
                    self.solid += end - i - 1;
                    i = end;
                    last = Last::Value;
                    continue;
                }
                b'{' => {
                    if depth == 0 {
                        dashed_block = dashed_node;
                    }
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Issue::TooDeep {
                            max: MAX_DEPTH,
                            span: (i, 1).into(),
                        });
                    }
                    last = Last::Break;
                }
                b'}' => {
                    if depth == 0 {
                        self.doubt(
                            i,
                            1,
                            "unmatched `}`",
                            "remove it, or add the `{` it was meant to close",
                        );
                    } else {
                        depth -= 1;
                        if depth == 0 {
                            self.closes.push(i);
                        }
                    }
                    last = Last::Close;
                }
                b'(' => {
                    if in_type {
                        self.doubt(
                            i,
                            1,
                            "unexpected `(`",
                            "a type annotation is written `(name)`",
                        );
                    }
                    in_type = true;
                    last = Last::Break;
                }
                b')' => {
                    if !in_type {
                        self.doubt(
                            i,
                            1,
                            "unmatched `)`",
                            "remove it; `(` and `)` only enclose a type annotation such as `(u8)`",
                        );
                    }
                    in_type = false;
                    last = Last::Break;
                }
                b'=' => {
                    if !matches!(last, Last::Value | Last::Space) {
                        self.doubt(
                            i,
                            1,
                            "`=` without a property name before it",
                            "write a property as `name=value`",
                        );
                    }
                    last = Last::Equals;
                }
                b'/' if self.bytes.get(i + 1) == Some(&b'-') => {
                    // Slashdash: the next node, entry or block is commented out.
                    self.solid += 1;
                    i += 2;
                    last = Last::Break;
                    continue;
                }
                b';' | b'\\' | b'/' => last = Last::Break,
                _ => {
                    let c = self.char_at(i).unwrap_or(' ');
                    let len = c.len_utf8();
                    last = Last::Value;
                    self.solid += len - 1;
                    i += len;
                    continue;
                }
            }
            i += 1;
        }
        if depth > 0 || in_type {
            // A block or type annotation never closed: malformed, so parsed whole.
            self.splits.clear();
        }
        Ok(())
    }

    /// A `/* … */` comment (comments nest) starting at `i`; returns the index after it.
    fn block_comment(&mut self, start: usize) -> Result<usize, Issue> {
        let n = self.bytes.len();
        let mut level = 0usize;
        let mut j = start;
        while j < n {
            match (self.bytes[j], self.bytes.get(j + 1)) {
                (b'/', Some(b'*')) => {
                    level += 1;
                    j += 2;
                }
                (b'*', Some(b'/')) => {
                    level -= 1;
                    j += 2;
                    if level == 0 {
                        self.blank.push((start, j));
                        return Ok(j);
                    }
                }
                _ => j += 1,
            }
        }
        Err(Issue::Syntax {
            message: "comment is never closed".to_owned(),
            span: (start, 2).into(),
            label: "this `/*` has no matching `*/`".to_owned(),
            help: Some("end the comment with `*/` (comments nest: each `/*` needs its own)".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blanked(src: &str) -> String {
        prescan(src).expect("no stopping issue").text.into_owned()
    }

    fn stop(src: &str) -> Issue {
        prescan(src).expect_err("a stopping issue")
    }

    #[test]
    fn comments_become_spaces_and_spans_stay_put() {
        let src = "a 1 // one\nb /* two\n /* nested */ */ 2\n/-c 3\n";
        let out = blanked(src);
        assert_eq!(out.len(), src.len());
        assert_eq!(out, "a 1       \nb                         2\n/-c 3\n");
    }

    #[test]
    fn comment_markers_inside_strings_are_text() {
        let src = "a \"// no\" #\"/* no\"# \"\"\"\n  /* no\n  \"\"\"\n";
        assert_eq!(blanked(src), src);
    }

    /// The offsets of the top-level splits.
    fn splits(src: &str) -> Vec<usize> {
        prescan(src)
            .expect("no stopping issue")
            .splits
            .iter()
            .filter(|s| s.depth == 0)
            .map(|s| s.at)
            .collect()
    }

    #[test]
    fn top_level_lines_are_where_the_text_may_be_cut() {
        assert_eq!(splits("a 1\nb {\n  c\n}\nd\n"), [4, 14]);
        // Not inside a multi-line string, a block comment or a type annotation, nor after a
        // line continued by `\\` or `/-`, nor past the end.
        assert_eq!(splits("a \"\"\"\n x\n \"\"\"\nb /* \n */ c\nd\n"), [14, 26]);
        assert_eq!(
            splits("a \\\n  1\nb /-\n  2\nc \\ // note\n 3\nd\n"),
            [8, 17, 32]
        );
        // Children of top-level nodes, unless the node has a `/-` in it.
        let scanned = prescan("a {\n  b\n  c { d\n  }\n}\n/-e {\n  f\n}\ng /-1 {\n  h\n}\n")
            .expect("no stopping issue");
        let at = |depth| {
            scanned
                .splits
                .iter()
                .filter(|s| s.depth == depth)
                .map(|s| s.at)
                .collect::<Vec<_>>()
        };
        assert_eq!(at(0), [22, 34]);
        assert_eq!(at(1), [4, 8, 20]);
        assert_eq!(scanned.closes, [20, 32, 46]);
        // A file the scan doubts is not cut at all.
        assert!(splits("a 1\n}\nb 2\n").is_empty());
    }

    #[test]
    fn without_comments_the_text_is_borrowed() {
        assert!(matches!(
            prescan("a { b }\n"),
            Ok(Prescanned {
                text: Cow::Borrowed(_),
                ..
            })
        ));
    }

    #[test]
    fn nesting_past_the_limit_stops_at_the_first_brace_too_deep() {
        let ok = format!("{}{}", "a {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(prescan(&ok).is_ok());
        let deep = format!(
            "{}{}",
            "a {".repeat(MAX_DEPTH + 10),
            "}".repeat(MAX_DEPTH + 10)
        );
        let issue = stop(&deep);
        assert_eq!(issue.code_str(), "manifest::too_deep");
        let span = crate::diagnostic::primary_span(&issue).expect("a span");
        assert_eq!(span.offset(), 3 * (MAX_DEPTH + 1) - 1);
        assert_eq!(&deep[span.offset()..span.offset() + 1], "{");
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_nest() {
        let braces = "{".repeat(MAX_DEPTH * 2);
        let src = format!(
            "a \"{braces}\" #\"{braces}\"# // {braces}\n/* {braces} */ b \"\"\"\n  {braces}\n  \"\"\"\n"
        );
        assert!(prescan(&src).is_ok());
    }

    #[test]
    fn unclosed_comments_and_multi_line_strings_stop_the_parse() {
        assert_eq!(stop("a /* /* */\n").code_str(), "manifest::syntax");
        assert_eq!(stop("a \"\"\"\n  text\n").code_str(), "manifest::syntax");
        assert_eq!(
            stop("a ##\"\"\"\n  \"\"\"#\n").code_str(),
            "manifest::syntax"
        );
    }

    #[test]
    fn a_malformed_token_in_a_large_file_is_reported_here() {
        let many = "a {}\n".repeat(SAFE_SOLID / 3 + 1);
        // A small file: the KDL parser reports the mistake in its own words.
        assert!(prescan("a \"\\q {\"\n").is_ok());
        // A large one: the pre-scan does, at the malformed token.
        for bad in [
            "a \"\\q {\"\n",
            "a b\"{\"\n",
            "}\n",
            "a \"x\n",
            "a \"\u{0}\"\n",
            "a ) b\n",
            "a = 1\n= 1\n",
            "a {} b\n",
            "a \"\"\"x\n  \"\"\"\n",
            "a \"\"\"\n x\n  \"\"\"\n",
        ] {
            let issue = stop(&format!("{bad}{many}"));
            assert_eq!(issue.code_str(), "manifest::syntax", "{bad:?}");
            let span = crate::diagnostic::primary_span(&issue).expect("a span");
            assert!(span.offset() < bad.len(), "{bad:?}: {span:?}");
        }
    }

    #[test]
    fn valid_kdl_raises_no_doubt() {
        let many = "a {}\n".repeat(SAFE_SOLID / 3 + 1);
        let fine = concat!(
            "a \"\\u{1F987} \\\n   x\" #\"raw \"q\" \"# (u8)1 k=(t)\"v\" k2 = 2 /-\"gone\"\n",
            "\"\"\"\n  one\n\n  two\n  \"\"\"\n",
            "b ##\"\"\"\n x\"\"\"#\n \"\"\"## {\n  c #true; d #null\n} /-{ e }\n",
            "f /* x */ \"g\" \u{a0}\"h\" \\\n  i {}; j\n",
        );
        assert!(
            kdl::KdlDocument::parse_v2(fine).is_ok(),
            "the sample is valid KDL"
        );
        assert!(prescan(&format!("{fine}{many}")).is_ok());
    }
}
