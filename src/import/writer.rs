//! The manifest text being written, with its comments, warnings and to-do list.
//!
//! In: lines and notes from the translation. Out: an [`Imported`]: the KDL text, one warning per
//! setting without an equivalent (each also a comment in the text, where the setting would
//! go), and what the user must still do.

use super::{Imported, ProgramKind, PythonHome};

pub use crate::manifest::kdl_string;

/// A number as KDL writes it (`0.4`, `1`, `-0.12`).
pub fn kdl_number(n: f64) -> String {
    format!("{n}")
}

/// Text safe inside a `//` comment: one line, control characters escaped.
fn comment_text(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Whether a field's value may be a secret, so it is never repeated in the output.
fn secret_field(field: &str) -> bool {
    let f = field.to_ascii_lowercase();
    ["password", "secret", "token", "key", "auth"]
        .iter()
        .any(|w| f.contains(w))
}

/// The manifest being written.
#[derive(Debug, Default)]
pub struct Writer {
    text: String,
    warnings: Vec<String>,
    todo: Vec<String>,
    unknown_started: bool,
}

impl Writer {
    /// An empty manifest.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The opening comment and the version node.
    pub fn header(&mut self, home: &PythonHome) {
        self.line(0, "/- kdl-version 2");
        self.comment(
            0,
            &format!(
                "Imported by `acoupi import` from the Python acoupi home `{}` (program `{}`).",
                home.dir, home.module
            ),
        );
        self.comment(
            0,
            "Settings without an equivalent are noted where they would go. Check the result",
        );
        self.comment(0, "with `acoupi check`, then build it with `acoupi build`.");
        self.line(0, "acoupi version=1");
    }

    /// One line at `indent` levels of four spaces.
    pub fn line(&mut self, indent: usize, s: &str) {
        for _ in 0..indent {
            self.text.push_str("    ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }

    /// An empty line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// A `//` comment line.
    pub fn comment(&mut self, indent: usize, s: &str) {
        self.line(indent, &format!("// {}", comment_text(s)));
    }

    /// A behaviour that changes: a comment in the manifest and a warning on stderr.
    pub fn note(&mut self, indent: usize, s: &str) {
        self.comment(indent, s);
        self.warnings.push(comment_text(s));
    }

    /// A setting without an equivalent: `field` (dotted, in `program.json`) with `value` is
    /// not imported, because `why`.
    pub fn unmapped(&mut self, indent: usize, field: &str, value: &serde_json::Value, why: &str) {
        let value = if secret_field(field) {
            "(hidden)".to_owned()
        } else {
            value.to_string()
        };
        self.note(
            indent,
            &format!("`{field}` = {value} is not imported: {why}"),
        );
    }

    /// A setting this importer does not know at all.
    pub fn unknown_setting(&mut self, field: &str, value: &serde_json::Value) {
        if !self.unknown_started {
            self.blank();
            self.comment(
                0,
                "Settings of `program.json` that `acoupi import` does not know:",
            );
            self.unknown_started = true;
        }
        self.unmapped(0, field, value, "unknown setting");
    }

    /// Something the user must still do.
    pub fn todo(&mut self, s: impl Into<String>) {
        self.todo.push(s.into());
    }

    /// The result.
    pub fn finish(self, kind: ProgramKind) -> Imported {
        Imported {
            kind,
            text: self.text,
            warnings: self.warnings,
            todo: self.todo,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_numbers_and_comments_are_safe() {
        assert_eq!(kdl_string("a \"b\" \\ \n"), r#""a \"b\" \\ \n""#);
        assert_eq!(kdl_number(0.4), "0.4");
        assert_eq!(kdl_number(1.0), "1");
        let mut w = Writer::new();
        w.unmapped(
            1,
            "messaging.http.api_key",
            &"hunter2".into(),
            "no equivalent",
        );
        w.comment(0, "two\nlines");
        assert!(!w.text.contains("hunter2"), "{}", w.text);
        assert_eq!(w.text.lines().count(), 2, "{}", w.text);
        assert_eq!(w.warnings.len(), 1);
    }
}
