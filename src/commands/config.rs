//! `acoupi config show [KEY] [--format json]`: the resolved configuration of a built home
//! (`config/program.json`), whole or one value by dotted path (`recording.duration_ms`,
//! `workers.0.queues`), with secrets masked.
//!
//! Secrets written in the manifest (`Secret::Value`) show as `***`, and so does the password
//! of every URL; references (`env=`, `file=`) are shown, since they are not secret. Text
//! prints one `path = value` line per leaf (a single scalar alone, strings unquoted); JSON
//! prints the value. An unknown key is a one-line error listing the keys there (exit 1).

use camino::Utf8Path;
use serde_json::Value;

use crate::ExitStatus;
use crate::cli::{ConfigCommand, OutputFormat};
use crate::home;
use crate::lifecycle::refuse;
use crate::runtime::config as runtime_config;
use crate::spec::{Broker, Program, Secret};

/// What a masked secret shows as.
pub const MASK: &str = "***";

/// Runs a `config` subcommand: `show` here, `get`, `set` and `unset` in `config_edit`.
pub fn run(cmd: &ConfigCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    use crate::manifest::edit::Op;
    match cmd {
        ConfigCommand::Show { key, format } => show(key.as_deref(), *format, home_flag),
        ConfigCommand::Get { path, manifest } => {
            super::config_edit::get(path.as_deref(), manifest.as_deref(), home_flag)
        }
        ConfigCommand::Set(a) => super::config_edit::change(
            Op::Set {
                path: a.path.clone(),
                values: a.values.clone(),
            },
            &a.edit,
            home_flag,
        ),
        ConfigCommand::Unset(a) => super::config_edit::change(
            Op::Unset {
                path: a.path.clone(),
            },
            &a.edit,
            home_flag,
        ),
    }
}

/// Shows the configuration.
fn show(key: Option<&str>, format: OutputFormat, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let home = match home::resolve(home_flag) {
        Ok(h) => h,
        Err(e) => return super::fail(e),
    };
    let program = match runtime_config::load_program(&home) {
        Ok(p) => p,
        Err(e) => return super::fail(e),
    };
    let value = match masked(program) {
        Ok(v) => v,
        Err(e) => return super::fail(e),
    };
    let (prefix, selected) = match key {
        None | Some("") => (String::new(), &value),
        Some(k) => match lookup(&value, k) {
            Ok(v) => (k.to_owned(), v),
            Err(e) => return refuse(e),
        },
    };
    match format {
        OutputFormat::Json => match serde_json::to_string_pretty(selected) {
            Ok(s) => println!("{s}"),
            Err(e) => return super::fail(e),
        },
        OutputFormat::Text => print!("{}", text(&prefix, selected)),
    }
    ExitStatus::Success
}

/// The program as JSON with every secret value and URL password masked.
pub fn masked(mut program: Program) -> Result<Value, String> {
    let secret = |s: &mut Option<Secret>| {
        if let Some(Secret::Value(v)) = s {
            *v = MASK.to_owned();
        }
    };
    if let Broker::Amqp {
        username, password, ..
    } = &mut program.broker
    {
        secret(username);
        secret(password);
    }
    if let Some(m) = &mut program.messaging {
        if let Some(mqtt) = &mut m.mqtt {
            secret(&mut mqtt.username);
            secret(&mut mqtt.password);
        }
        if let Some(http) = &mut m.http {
            for h in &mut http.headers {
                if let Secret::Value(v) = &mut h.value {
                    *v = MASK.to_owned();
                }
            }
        }
    }
    let mut value = serde_json::to_value(&program).map_err(|e| e.to_string())?;
    mask_urls(&mut value);
    Ok(value)
}

/// Replaces the password of every URL string in `value` with [`MASK`].
fn mask_urls(value: &mut Value) {
    match value {
        Value::String(s) => {
            if s.contains("://")
                && let Ok(mut url) = url::Url::parse(s)
                && url.password().is_some()
                && url.set_password(Some(MASK)).is_ok()
            {
                *s = url.to_string();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_urls),
        Value::Object(map) => map.values_mut().for_each(mask_urls),
        _ => {}
    }
}

/// The value at dotted path `key` (object keys and array indices).
pub fn lookup<'a>(value: &'a Value, key: &str) -> Result<&'a Value, String> {
    let mut current = value;
    let mut seen = String::new();
    for part in key.split('.') {
        let here = if seen.is_empty() {
            "the configuration".to_owned()
        } else {
            format!("`{seen}`")
        };
        current = match current {
            Value::Object(map) => map.get(part).ok_or_else(|| {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                let hint = crate::diagnostic::did_you_mean(part, &keys)
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!("no `{part}` in {here}{hint}; it has: {}", keys.join(", "))
            })?,
            Value::Array(items) => {
                let index: usize = part.parse().map_err(|_| {
                    format!(
                        "{here} is a list: use an index from 0 to {}, not `{part}`",
                        items.len().saturating_sub(1)
                    )
                })?;
                items.get(index).ok_or_else(|| {
                    format!(
                        "{here} has {} entries; there is no entry {index}",
                        items.len()
                    )
                })?
            }
            _ => return Err(format!("{here} is a single value; it has no `{part}`")),
        };
        if !seen.is_empty() {
            seen.push('.');
        }
        seen.push_str(part);
    }
    Ok(current)
}

/// `value` as text: a scalar alone (strings unquoted), else one `path = json` line per leaf.
pub fn text(prefix: &str, value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Object(_) | Value::Array(_) => flatten(prefix, value, &mut out),
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut String) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&join(k), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&join(&i.to_string()), v, out);
            }
        }
        leaf => {
            out.push_str(&format!("{prefix} = {leaf}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_lose_their_passwords_only() {
        let mut v = json!({
            "a": "amqp://guest:s3cr%40t@127.0.0.1:5672/%2f",
            "b": ["https://user@example.org/x", "not a url ://"],
            "c": {"d": "http://u:p@h/"}
        });
        mask_urls(&mut v);
        assert_eq!(v["a"], "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(v["b"][0], "https://user@example.org/x");
        assert_eq!(v["b"][1], "not a url ://");
        assert_eq!(v["c"]["d"], "http://u:***@h/");
    }

    #[test]
    fn dotted_paths_reach_keys_and_indices() {
        let v = json!({"workers": [{"queues": ["recording"]}], "recording": {"duration_ms": 3000}});
        assert_eq!(lookup(&v, "recording.duration_ms"), Ok(&json!(3000)));
        assert_eq!(lookup(&v, "workers.0.queues"), Ok(&json!(["recording"])));
        let e = lookup(&v, "recording.duration").expect_err("no such key");
        assert!(e.contains("no `duration` in `recording`"), "{e}");
        assert!(e.contains("duration_ms"), "{e}");
        let e = lookup(&v, "workers.3").expect_err("no entry");
        assert!(e.contains("`workers` has 1 entries"), "{e}");
        let e = lookup(&v, "workers.x").expect_err("not an index");
        assert!(e.contains("is a list"), "{e}");
        let e = lookup(&v, "recording.duration_ms.x").expect_err("scalar");
        assert!(e.contains("single value"), "{e}");
    }

    #[test]
    fn text_flattens_to_one_line_per_leaf() {
        let v = json!({"a": {"b": [1, "x"], "c": {}}, "d": null});
        assert_eq!(
            text("", &v),
            "a.b.0 = 1\na.b.1 = \"x\"\na.c = {}\nd = null\n"
        );
        assert_eq!(text("a.b.1", &json!("x")), "x\n");
        assert_eq!(text("k", &json!(3)), "3\n");
    }
}
