//! Typed reads of a JSON config file that remember what was read.
//!
//! In: one parsed JSON document and its path. Out: values by dotted path (`recording.duration`),
//! or an error naming the file, the field, what was expected and what was found; and, at the
//! end, every leaf that nothing read ([`Fields::unread`]), so a setting the importer does not
//! know is reported instead of silently dropped.

use std::cell::RefCell;
use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use super::Error;

/// A JSON document being read field by field.
#[derive(Debug)]
pub struct Fields {
    path: Utf8PathBuf,
    root: Value,
    read: RefCell<BTreeSet<String>>,
}

impl Fields {
    /// Wraps `root`, read from `path`.
    pub fn new(path: &Utf8Path, root: Value) -> Fields {
        Fields {
            path: path.to_owned(),
            root,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// The file the fields come from.
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// The value at `field` (dotted), marking it read; `None` when absent or `null`.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.read.borrow_mut().insert(field.to_owned());
        let mut v = &self.root;
        for part in field.split('.') {
            v = v.get(part)?;
        }
        (!v.is_null()).then_some(v)
    }

    /// Whether `field` holds an object (a configured section, not `null`).
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some_and(Value::is_object)
    }

    fn wrong(&self, field: &str, expected: &str, found: &Value) -> Error {
        Error::Field {
            path: self.path.clone(),
            field: field.to_owned(),
            expected: expected.to_owned(),
            found: found.to_string(),
        }
    }

    /// A required field.
    fn required<T>(
        &self,
        field: &str,
        read: impl Fn(&Self, &str) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        read(self, field)?.ok_or_else(|| Error::Field {
            path: self.path.clone(),
            field: field.to_owned(),
            expected: "a value".to_owned(),
            found: "nothing".to_owned(),
        })
    }

    /// A string.
    pub fn str(&self, field: &str) -> Result<Option<String>, Error> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(field, "a string", other)),
        }
    }

    /// A required string.
    pub fn req_str(&self, field: &str) -> Result<String, Error> {
        self.required(field, Self::str)
    }

    /// A whole number (JSON integer, or a float with no fraction, as pydantic may write).
    pub fn int(&self, field: &str) -> Result<Option<i64>, Error> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match (v.as_i64(), v.as_f64()) {
                (Some(i), _) => Ok(Some(i)),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9e15 => Ok(Some(f as i64)),
                _ => Err(self.wrong(field, "a whole number", v)),
            },
        }
    }

    /// A whole number that must not be negative.
    pub fn count(&self, field: &str) -> Result<Option<u64>, Error> {
        match self.int(field)? {
            None => Ok(None),
            Some(i) => u64::try_from(i)
                .map(Some)
                .map_err(|_| self.wrong(field, "a whole number, 0 or more", &Value::from(i))),
        }
    }

    /// A required non-negative whole number.
    pub fn req_count(&self, field: &str) -> Result<u64, Error> {
        self.required(field, Self::count)
    }

    /// A number.
    pub fn num(&self, field: &str) -> Result<Option<f64>, Error> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(field, "a number", v)),
        }
    }

    /// A boolean.
    pub fn bool(&self, field: &str) -> Result<Option<bool>, Error> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(field, "true or false", other)),
        }
    }

    /// A time of day as pydantic writes it (`HH:MM[:SS[.ffffff]]`), as seconds since midnight.
    pub fn time(&self, field: &str) -> Result<Option<u32>, Error> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let text = v.as_str().unwrap_or_default();
        let mut parts = text.split(':');
        let mut next = |max: u32| {
            parts.next().and_then(|p| {
                let whole = p.split('.').next().unwrap_or(p);
                whole.parse::<u32>().ok().filter(|n| *n <= max)
            })
        };
        match (next(23), next(59), next(59).or(Some(0))) {
            (Some(h), Some(m), Some(s)) => Ok(Some(h * 3600 + m * 60 + s)),
            _ => Err(self.wrong(field, "a time of day such as \"06:00:00\"", v)),
        }
    }

    /// Every leaf (a scalar, an empty object or array, or `null`) no read covered, with its
    /// dotted path and value, in path order.
    pub fn unread(&self) -> Vec<(String, Value)> {
        let read = self.read.borrow();
        let mut out = Vec::new();
        walk(&self.root, String::new(), &read, &mut out);
        out
    }
}

fn walk(v: &Value, at: String, read: &BTreeSet<String>, out: &mut Vec<(String, Value)>) {
    if !at.is_empty() && read.contains(&at) {
        return;
    }
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                walk(child, path, read, out);
            }
        }
        _ if at.is_empty() => {}
        _ => out.push((at, v.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields {
        Fields::new(
            Utf8Path::new("/h/program.json"),
            serde_json::from_str(json).expect("json"),
        )
    }

    #[test]
    fn reads_are_typed_and_remembered() {
        let f = fields(r#"{"a": {"b": 3, "c": "06:30:00", "d": null}, "e": [1], "g": 2.0}"#);
        assert_eq!(f.int("a.b").expect("int"), Some(3));
        assert_eq!(f.time("a.c").expect("time"), Some(6 * 3600 + 30 * 60));
        assert_eq!(f.str("a.d").expect("null"), None);
        assert_eq!(f.count("g").expect("2.0 is whole"), Some(2));
        let unread: Vec<String> = f.unread().into_iter().map(|(p, _)| p).collect();
        assert_eq!(unread, ["e"]);
    }

    #[test]
    fn a_wrong_type_names_the_file_and_the_field() {
        let f = fields(r#"{"recording": {"duration": "3s", "start": "25:00"}}"#);
        let e = f.int("recording.duration").expect_err("a string");
        assert_eq!(
            e.to_string(),
            r#"`/h/program.json`: `recording.duration` should be a whole number, not "3s""#
        );
        assert!(f.time("recording.start").is_err());
        assert!(f.req_str("missing").is_err());
    }
}
