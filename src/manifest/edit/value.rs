//! A value given on the command line, as KDL text.
//!
//! In: what the user typed (`0.6`, `5s`, `mqtt.example.org`, `true`, `"quoted"`). Out: the
//! ways to write it in KDL, most likely first: a number or keyword as itself, anything else
//! as a quoted string. The checker then picks: the first way that validates is written.

use kdl::KdlDocument;

/// The KDL spellings of `raw`, most likely first; a string first when `string_first`.
pub(crate) fn spellings(raw: &str, string_first: bool) -> Vec<String> {
    let quoted = quote(raw);
    let typed = typed(raw);
    let mut out = Vec::new();
    match typed {
        // The user wrote a KDL string (`"…"`, `#"…"#`): exactly that.
        Some(Typed::String(s)) => out.push(s),
        Some(Typed::Other(t)) if !string_first => {
            out.push(t);
            out.push(quoted);
        }
        Some(Typed::Other(t)) => {
            out.push(quoted);
            out.push(t);
        }
        None => out.push(quoted),
    }
    out
}

enum Typed {
    String(String),
    Other(String),
}

/// `raw` read as one KDL value: a number, a keyword (`true` becomes `#true`) or a string
/// written with its quotes. A bare word is not taken as KDL's identifier string: it is
/// quoted like any other text.
fn typed(raw: &str) -> Option<Typed> {
    if matches!(raw, "true" | "false" | "null" | "inf" | "-inf" | "nan") {
        return Some(Typed::Other(format!("#{raw}")));
    }
    let doc = KdlDocument::parse_v2(&format!("n {raw}")).ok()?;
    let [node] = doc.nodes() else { return None };
    if node.children().is_some() || node.ty().is_some() {
        return None;
    }
    let [entry] = node.entries() else { return None };
    if entry.name().is_some() || entry.ty().is_some() {
        return None;
    }
    if entry.value().is_string() {
        let explicit = raw.starts_with('"') || raw.starts_with('#');
        return explicit.then(|| Typed::String(raw.trim().to_owned()));
    }
    Some(Typed::Other(raw.trim().to_owned()))
}

/// `s` as a quoted KDL string.
pub(crate) fn quote(s: &str) -> String {
    crate::manifest::kdl_string(s)
}

/// A node name or property key as KDL text: bare when it is a plain word, else quoted.
pub(crate) fn ident(s: &str) -> String {
    let plain = !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(s, "true" | "false" | "null" | "inf" | "nan");
    if plain { s.to_owned() } else { quote(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_keywords_stay_themselves_and_text_is_quoted() {
        assert_eq!(spellings("0.6", false), ["0.6", "\"0.6\""]);
        assert_eq!(spellings("0.6", true), ["\"0.6\"", "0.6"]);
        assert_eq!(spellings("true", false), ["#true", "\"true\""]);
        assert_eq!(spellings("5s", false), ["\"5s\""]);
        assert_eq!(
            spellings("mqtt.example.org", false),
            ["\"mqtt.example.org\""]
        );
        assert_eq!(spellings("\"quoted\"", false), ["\"quoted\""]);
        assert_eq!(spellings("a b; c {", false), ["\"a b; c {\""]);
        assert_eq!(spellings("say \"hi\"\n", false), ["\"say \\\"hi\\\"\\n\""]);
        assert_eq!(spellings("x=1", false), ["\"x=1\""]);
    }

    #[test]
    fn idents_are_bare_when_plain() {
        assert_eq!(ident("min-score"), "min-score");
        assert_eq!(ident("a b"), "\"a b\"");
        assert_eq!(ident("1x"), "\"1x\"");
    }
}
