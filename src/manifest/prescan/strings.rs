//! The strings of the pre-scan: quoted, multi-line and raw, followed as KDL 2 writes them
//! so that the braces and comment markers inside them are text.
//!
//! In: the scanner at an opening quote. Out: the index after the string, with the first
//! malformed part (a bad escape, a newline in a one-line string, a misindented multi-line
//! string line, a forbidden code point) recorded as a doubt, or a stopping issue for a
//! multi-line string that never closes.

use super::{Scanner, is_disallowed, is_space};
use crate::diagnostic::Issue;

impl Scanner<'_> {
    /// A string whose opening `"` is at `start + hashes`; returns the index after it.
    pub(super) fn string(&mut self, start: usize, hashes: usize) -> Result<usize, Issue> {
        let open = start + hashes;
        if self.bytes[open..].starts_with(b"\"\"\"") {
            return self.multi_line(start, hashes);
        }
        let raw = hashes > 0;
        let n = self.bytes.len();
        let mut j = open + 1;
        while j < n {
            let b = self.bytes[j];
            if b == b'"'
                && self.bytes[j + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|&&c| c == b'#')
                    .count()
                    == hashes
            {
                return Ok(j + 1 + hashes);
            }
            if self.newline(j) > 0 {
                self.doubt(
                    start,
                    j - start,
                    "string is not closed on its line",
                    "close the string with `\"` on the same line; a string over several lines is written between `\"\"\"` lines",
                );
                return Ok(j);
            }
            if b == b'\\' && !raw {
                j = self.escape(j);
                continue;
            }
            j += self.plain_char(j);
        }
        self.doubt(
            start,
            n - start,
            "string is not closed",
            "close the string with `\"`",
        );
        Ok(n)
    }

    /// Steps over one character of a string body, noting disallowed code points.
    fn plain_char(&mut self, j: usize) -> usize {
        let c = self.char_at(j).unwrap_or(' ');
        if is_disallowed(c) {
            self.doubt(
                j,
                c.len_utf8(),
                "a control or direction character is not allowed in KDL text",
                "remove it, or write it as an escape such as `\\u{202e}`",
            );
        }
        c.len_utf8().max(1)
    }

    /// An escape at `j` (the `\`) in a quoted string; returns the index after it.
    fn escape(&mut self, j: usize) -> usize {
        let n = self.bytes.len();
        let next = j + 1;
        let bad = |s: &mut Self| {
            s.doubt(
                j,
                2.min(n - j),
                "invalid escape in a string",
                "the escapes are `\\\\`, `\\\"`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t`, `\\s` and `\\u{…}`",
            );
        };
        match self.bytes.get(next) {
            Some(b'\\' | b'"' | b'b' | b'f' | b'n' | b'r' | b't' | b's') => next + 1,
            Some(b'u') => {
                let digits: usize = self.bytes[next + 1..]
                    .iter()
                    .skip(1)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                let close = next + 2 + digits;
                let ok = self.bytes.get(next + 1) == Some(&b'{')
                    && (1..=6).contains(&digits)
                    && self.bytes.get(close) == Some(&b'}')
                    && u32::from_str_radix(&self.text[next + 2..close], 16)
                        .ok()
                        .and_then(char::from_u32)
                        .is_some();
                if ok {
                    close + 1
                } else {
                    bad(self);
                    next + 1
                }
            }
            _ => {
                // Whitespace escape: `\` then spaces and newlines, all skipped.
                let mut k = next;
                loop {
                    let nl = self.newline(k);
                    if nl > 0 {
                        k += nl;
                    } else if self.char_at(k).is_some_and(is_space) {
                        k += self.char_at(k).map_or(1, char::len_utf8);
                    } else {
                        break;
                    }
                }
                if k == next {
                    bad(self);
                    return next;
                }
                k
            }
        }
    }

    /// A multi-line string (`"""` or `#"""`), starting at `start`; returns the index after
    /// it. The opening quotes must end their line, the closing quotes start theirs after
    /// whitespace only, and every line in between starts with that whitespace or is blank.
    fn multi_line(&mut self, start: usize, hashes: usize) -> Result<usize, Issue> {
        let raw = hashes > 0;
        let n = self.bytes.len();
        let mut j = start + hashes + 3;
        let first = self.newline(j);
        if first == 0 {
            self.doubt(
                start,
                j - start,
                "multi-line string quotes must end their line",
                "start the text on the line after the opening `\"\"\"`",
            );
        }
        j += first;
        let mut lines = vec![j];
        while j < n {
            let b = self.bytes[j];
            if b == b'"'
                && self.bytes[j..].starts_with(b"\"\"\"")
                && self.bytes[j + 3..]
                    .iter()
                    .take(hashes)
                    .filter(|&&c| c == b'#')
                    .count()
                    == hashes
            {
                let line_start = *lines.last().unwrap_or(&j);
                let prefix = &self.text[line_start..j];
                if !prefix.chars().all(is_space) {
                    self.doubt(
                        j,
                        3,
                        "multi-line string closing quotes must start their line",
                        "put the closing `\"\"\"` on a line of its own",
                    );
                } else {
                    let body = &lines[..lines.len() - 1];
                    for &l in body {
                        if !self.line_fits(l, prefix) {
                            self.doubt(
                                l,
                                0,
                                "multi-line string line is not indented like its closing quotes",
                                "start every line of the string with the whitespace before the closing `\"\"\"`",
                            );
                            break;
                        }
                    }
                }
                return Ok(j + 3 + hashes);
            }
            let nl = self.newline(j);
            if nl > 0 {
                j += nl;
                lines.push(j);
                continue;
            }
            if b == b'\\' && !raw {
                j = self.escape(j);
                continue;
            }
            j += self.plain_char(j);
        }
        Err(Issue::Syntax {
            message: "multi-line string is never closed".to_owned(),
            span: (start, hashes + 3).into(),
            label: "this string has no closing quotes".to_owned(),
            help: Some(if raw {
                "end it with `\"\"\"` and the same number of `#` on a line of its own".into()
            } else {
                "end it with `\"\"\"` on a line of its own".into()
            }),
        })
    }

    /// Whether the line starting at `l` starts with `prefix` or holds only whitespace.
    fn line_fits(&self, l: usize, prefix: &str) -> bool {
        let rest = &self.text[l..];
        if rest.starts_with(prefix) {
            return true;
        }
        let mut k = l;
        while let Some(c) = self.char_at(k) {
            if self.newline(k) > 0 {
                return true;
            }
            if !is_space(c) {
                return false;
            }
            k += c.len_utf8();
        }
        true
    }
}
