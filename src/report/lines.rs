//! A line index of the manifest text, built once per report, so that finding the line and
//! column of a span costs a binary search instead of a scan from the start of the file.
//!
//! In: the manifest text. Out: 1-based lines and columns for the JSON and GitHub reports,
//! and [`Indexed`], the text as miette reads it: it hands miette's own span reader only the
//! lines a snippet shows, so drawing N diagnostics costs N snippets, not N whole files.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

/// Bytes between the character-count checkpoints used for columns.
const BLOCK: usize = 1024;

/// Lines longer than this are not drawn whole: a snippet shows [`WINDOW`] bytes either side
/// of the span instead (a generated or hostile file may hold one line of megabytes).
const LONG_LINE: usize = 1024;

/// Bytes of a long line a snippet shows either side of its span.
const WINDOW: usize = 80;

/// Line starts of a text, counted two ways, and character counts for columns.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Start of every line as miette counts lines (after `\n`, `\r\n` or a lone `\r`).
    miette: Vec<usize>,
    /// Start of every line as the JSON report counts lines (after `\n`).
    lf: Vec<usize>,
    /// Characters before each multiple of `BLOCK` bytes.
    chars: Vec<usize>,
}

impl Lines {
    /// Indexes `text` in one pass.
    pub(crate) fn new(text: &str) -> Lines {
        let bytes = text.as_bytes();
        let mut miette = vec![0];
        let mut lf = vec![0];
        let mut chars = Vec::with_capacity(bytes.len() / BLOCK + 1);
        let mut count = 0usize;
        for (i, &b) in bytes.iter().enumerate() {
            if i % BLOCK == 0 {
                chars.push(count);
            }
            if !is_continuation(b) {
                count += 1;
            }
            match b {
                b'\n' => {
                    miette.push(i + 1);
                    lf.push(i + 1);
                }
                b'\r' if bytes.get(i + 1) != Some(&b'\n') => miette.push(i + 1),
                _ => {}
            }
        }
        Lines { miette, lf, chars }
    }

    /// Characters in `text[..offset]`.
    fn chars_before(&self, text: &str, offset: usize) -> usize {
        let block = offset / BLOCK;
        let from = block * BLOCK;
        let base = self.chars.get(block).copied().unwrap_or(0);
        base + count_chars(&text.as_bytes()[from..offset])
    }

    /// The 1-based line (counting `\n`) and column (in characters) of a byte offset; offsets
    /// past the end or inside a character are moved back to the nearest character start.
    pub(crate) fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.lf.partition_point(|&s| s <= offset) - 1;
        let start = self.lf[line];
        let column = if offset - start <= 2 * BLOCK {
            count_chars(&text.as_bytes()[start..offset])
        } else {
            self.chars_before(text, offset) - self.chars_before(text, start)
        };
        (line + 1, column + 1)
    }

    /// The 0-based line, as miette counts lines, holding byte `offset`.
    fn miette_line(&self, offset: usize) -> usize {
        self.miette
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// The byte range of a miette line, without its line break.
    fn miette_range(&self, text: &str, line: usize) -> (usize, usize) {
        let start = self.miette[line];
        let mut end = self.miette.get(line + 1).copied().unwrap_or(text.len());
        let bytes = text.as_bytes();
        while end > start && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        (start, end)
    }
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Characters starting in `bytes`.
fn count_chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| !is_continuation(b)).count()
}

/// The manifest text as miette reads it, named, with its line index.
pub(crate) struct Indexed<'a> {
    /// The file name shown in snippet headers.
    pub(crate) name: &'a str,
    /// The whole text.
    pub(crate) text: &'a str,
    /// Its line index.
    pub(crate) lines: &'a Lines,
}

impl SourceCode for Indexed<'_> {
    /// miette's own reader, on the text from just before the first line the snippet shows:
    /// the same snippet as reading from the start of the file, at the cost of the lines
    /// shown. Line
    /// numbers and offsets are moved back to the whole file; the line count is the snippet's
    /// own, so that miette joins the snippets of two labels only when they touch.
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let offset = span.offset().min(self.text.len());
        if let Some(clipped) = self.clipped(span, context_lines_before) {
            return Ok(Box::new(clipped));
        }
        // One line more than the context, so that the span never starts the slice: miette's
        // reader treats an empty span at offset 0 differently from one further on.
        let first = self
            .lines
            .miette_line(offset)
            .saturating_sub(context_lines_before + 1);
        let base = self.lines.miette[first];
        let local = SourceSpan::new((span.offset() - base).into(), span.len());
        let inner = self.text.as_bytes()[base..].read_span(
            &local,
            context_lines_before,
            context_lines_after,
        )?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_owned(),
            inner.data(),
            (base + inner.span().offset(), inner.span().len()).into(),
            first + inner.line(),
            inner.column(),
            inner.line_count().saturating_sub(inner.line()),
        )))
    }
}

impl<'s> Indexed<'s> {
    /// A snippet of [`WINDOW`] bytes either side of a span on a line longer than
    /// [`LONG_LINE`], without context lines; `None` for a span elsewhere, or one that is
    /// itself long or crosses lines.
    fn clipped(&self, span: &SourceSpan, before: usize) -> Option<MietteSpanContents<'s>> {
        let text = self.text;
        let (offset, end) = (span.offset(), span.offset() + span.len());
        if end > text.len() || span.len() > LONG_LINE {
            return None;
        }
        let line = self.lines.miette_line(offset);
        let (start, stop) = self.lines.miette_range(text, line);
        if stop - start <= LONG_LINE || end > stop {
            return None;
        }
        let mut lo = if before == 0 {
            offset
        } else {
            offset.saturating_sub(WINDOW).max(start)
        };
        while !text.is_char_boundary(lo) {
            lo -= 1;
        }
        let mut hi = (end + WINDOW).min(stop);
        while !text.is_char_boundary(hi) {
            hi += 1;
        }
        // miette's reader gives the column (in bytes) only when it shows no line before.
        let column = if before == 0 { offset - start } else { 0 };
        Some(MietteSpanContents::new_named(
            self.name.to_owned(),
            &text.as_bytes()[lo..hi],
            (lo, hi - lo).into(),
            line,
            column,
            0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line and column of every offset, the slow way.
    fn scan(text: &str, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        (line, before[start..].chars().count() + 1)
    }

    #[test]
    fn line_and_column_match_a_scan_from_the_start() {
        let long = "é".repeat(3000);
        let text = format!("ab\nçd x\r\n\r{long}\nz{long}q\n");
        let lines = Lines::new(&text);
        for offset in 0..=text.len() + 2 {
            assert_eq!(
                lines.line_col(&text, offset),
                scan(&text, offset),
                "{offset}"
            );
        }
    }

    #[test]
    fn long_lines_are_shown_around_the_span() {
        let text = format!("a\n{}X{}\nb\n", "é".repeat(1000), "y".repeat(3000));
        let lines = Lines::new(&text);
        let indexed = Indexed {
            name: "m.kdl",
            text: &text,
            lines: &lines,
        };
        let at = text.find('X').expect("an X");
        let span = SourceSpan::new(at.into(), 1);
        let shown = indexed.read_span(&span, 1, 1).expect("a snippet");
        assert!(
            shown.data().len() <= 2 * WINDOW + 4,
            "{}",
            shown.data().len()
        );
        assert!(
            std::str::from_utf8(shown.data())
                .expect("whole characters")
                .contains('X')
        );
        assert_eq!(shown.line(), 1);
        let header = indexed.read_span(&span, 0, 0).expect("a header");
        assert_eq!((header.line(), header.column()), (1, at - 2));
    }

    #[test]
    fn snippets_match_miettes_reader_from_the_start() {
        let text = "a\nb\r\nc\rd\n\ne  f\ng\n";
        let lines = Lines::new(text);
        let indexed = Indexed {
            name: "m.kdl",
            text,
            lines: &lines,
        };
        for offset in 0..=text.len() {
            for len in [0, 1, 3] {
                let span = SourceSpan::new(offset.into(), len);
                for ctx in [0, 1, 2] {
                    let want = text.read_span(&span, ctx, ctx);
                    let got = indexed.read_span(&span, ctx, ctx);
                    match (want, got) {
                        (Ok(w), Ok(g)) => {
                            assert_eq!(w.data(), g.data(), "{offset}+{len} ctx {ctx}");
                            assert_eq!(w.span(), g.span(), "{offset}+{len} ctx {ctx}");
                            assert_eq!(w.line(), g.line(), "{offset}+{len} ctx {ctx}");
                            assert_eq!(w.column(), g.column(), "{offset}+{len} ctx {ctx}");
                        }
                        (Err(_), Err(_)) => {}
                        (w, g) => panic!(
                            "{offset}+{len} ctx {ctx}: {:?} vs {:?}",
                            w.is_ok(),
                            g.is_ok()
                        ),
                    }
                }
            }
        }
    }
}
