//! Python's `repr` as Celery writes it into the `argsrepr` and `kwargsrepr` headers.
//!
//! In: a JSON value (task arguments). Out: the text Celery 5.7's
//! `saferepr(value, 1024, maxlevels=3)` gives for the same Python value, so tools that show
//! these headers (Flower, `celery inspect`) show our tasks as they show Python's.

use std::fmt::Write;

use serde_json::Value as Json;

/// Longest `argsrepr` / `kwargsrepr` header, in characters (Celery's default
/// `argsrepr_maxsize`); longer reprs are cut and end in `...`.
const REPR_MAX: usize = 1024;

/// The `argsrepr` / `kwargsrepr` text Celery's `saferepr(value, 1024, maxlevels=3)` gives
/// for short values; longer ones are cut at [`REPR_MAX`] characters and end in `...`.
pub(super) fn repr_capped(v: &Json) -> String {
    let mut out = String::new();
    saferepr(v, 0, &mut out);
    match out.char_indices().nth(REPR_MAX) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push_str("...");
            out
        }
        None => out,
    }
}

/// Containers this deep are shown as `[...]` / `{...}` (Celery's `task_repr_maxlevels`).
const REPR_LEVELS: usize = 3;

/// Celery's `saferepr`: Python literals, strings in single quotes with only `'` escaped.
fn saferepr(v: &Json, level: usize, out: &mut String) {
    match v {
        Json::Null => out.push_str("None"),
        Json::Bool(true) => out.push_str("True"),
        Json::Bool(false) => out.push_str("False"),
        Json::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => py_float(f, out),
            None => {
                let _ = write!(out, "{n}");
            }
        },
        Json::String(s) => py_str(s, out),
        Json::Array(_) | Json::Object(_) if level >= REPR_LEVELS => {
            out.push_str(if v.is_array() { "[...]" } else { "{...}" });
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                saferepr(item, level + 1, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(k, out);
                out.push_str(": ");
                saferepr(item, level + 1, out);
            }
            out.push('}');
        }
    }
}

/// A string as Celery's `saferepr` quotes it: `'…'` with `'` escaped, nothing else.
fn py_str(s: &str, out: &mut String) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents -4..16,
/// otherwise `d.ddde+XX`.
fn py_float(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str(if f.is_nan() {
            "nan"
        } else if f > 0.0 {
            "inf"
        } else {
            "-inf"
        });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    out.push_str(sign);
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else {
            let point = point as usize;
            if digits.len() <= point {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', point - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..point]);
                out.push('.');
                out.push_str(&digits[point..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_repr() {
        let r = |v: Json| repr_capped(&v);
        // Celery 5.7: saferepr([[[[1]]], {'a': {'b': {'c': 1}}}, 'it\'s "q" \n\\', 1e20, …], 1024, maxlevels=3)
        let v = json!([
            [[[1]]],
            {"a": {"b": {"c": 1}}},
            "it's \"q\" \n\\",
            1e20,
            1e16,
            1e15,
            1e-5,
            0.0001,
            2.5,
            -0.0,
            true,
            null
        ]);
        let want = concat!(
            "[[[[...]]], {'a': {'b': {...}}}, 'it\\'s \"q\" \n\\', 1e+20, 1e+16, ",
            "1000000000000000.0, 1e-05, 0.0001, 2.5, -0.0, True, None]"
        );
        assert_eq!(r(v), want);
        assert_eq!(
            r(json!({"a": null, "b": false, "c": 7})),
            "{'a': None, 'b': False, 'c': 7}"
        );
        assert_eq!(
            r(json!([1.5e-7, 123.456, 60.0])),
            "[1.5e-07, 123.456, 60.0]"
        );
        let long = r(json!(["x".repeat(5000)]));
        assert_eq!(long.chars().count(), REPR_MAX + 3);
        assert!(long.ends_with("..."));
    }
}
