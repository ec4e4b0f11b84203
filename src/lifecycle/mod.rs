//! The life of a deployment: checking a built home against its `build.lock` (`verify`),
//! linking its units into the user unit directory (`unit_dir`), driving the user's systemd
//! (`systemd`, behind a trait), the units' sandbox and its failures (`sandbox`), what would
//! make the units fail, found before deploying (`preflight`), deploying and stopping with
//! every step undone on failure (`deploy`), setting the Python acoupi's units aside so ours
//! can take over (`python_units`), recording the deployment (`deployment`),
//! reporting its health (`status`) and reading its logs (`logs`).
//!
//! In: a built home. Out: running systemd user units and `config/deployment.json`, or a
//! one-line reason why not, with nothing left half done.

pub mod apply;
pub mod changes;
pub mod deploy;
pub mod deployment;
pub mod logs;
pub mod preflight;
pub mod python_units;
pub mod running;
pub mod sandbox;
pub mod status;
pub mod systemd;
pub mod unit_dir;
pub mod verify;

use std::collections::BTreeMap;

use camino::Utf8Path;

use crate::runtime::config as runtime_config;
use crate::spec::{Broker, Program, Secret};

/// The variables of `config/secrets.env` (the file the units read with `EnvironmentFile=`):
/// `KEY=VALUE` lines, values optionally in single or double quotes, `#` comments.
pub fn read_secrets_env(home: &Utf8Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(home.join("config/secrets.env")) else {
        return BTreeMap::new();
    };
    parse_env_file(&text)
}

/// Parses an environment file as systemd's `EnvironmentFile=` does, for the simple forms.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        let value = if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
            value[1..value.len() - 1].to_owned()
        } else if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
            let mut s = String::new();
            let mut chars = value[1..value.len() - 1].chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(n @ ('"' | '\\' | '`' | '$')) => s.push(n),
                        Some(n) => {
                            s.push('\\');
                            s.push(n);
                        }
                        None => s.push('\\'),
                    },
                    c => s.push(c),
                }
            }
            s
        } else {
            value.to_owned()
        };
        out.insert(key.trim().to_owned(), value);
    }
    out
}

/// The program's broker URL with its secrets resolved as the units resolve them: from the
/// environment, else from `config/secrets.env`. `None` for the in-process broker.
pub fn broker_url(home: &Utf8Path, program: &Program) -> Result<Option<String>, String> {
    let secrets = read_secrets_env(home);
    let lookup = |name: &str| {
        if std::env::var_os(name).is_some() {
            None
        } else {
            secrets.get(name).cloned()
        }
    };
    let resolve = |s: &Option<Secret>| match s {
        Some(Secret::Env(name)) => match lookup(name) {
            Some(v) => Some(Secret::Value(v)),
            None => s.clone(),
        },
        other => other.clone(),
    };
    let broker = match &program.broker {
        Broker::Amqp {
            url,
            url_env,
            username,
            password,
        } => {
            let from_file = url_env.as_deref().and_then(lookup);
            Broker::Amqp {
                url: url.clone().or(from_file.clone()),
                url_env: if from_file.is_some() {
                    None
                } else {
                    url_env.clone()
                },
                username: resolve(username),
                password: resolve(password),
            }
        }
        Broker::Memory => Broker::Memory,
    };
    runtime_config::broker_url(&broker).map_err(|e| e.to_string())
}

/// Deletes the ready messages of `queues` on the broker at `url` (declaring each first, so a
/// queue that never existed counts 0); returns how many each held.
pub fn purge_queues(url: &str, queues: &[String]) -> Result<Vec<(String, u32)>, String> {
    use crate::runtime::transport::Broker;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let broker =
            Broker::connect_amqp(url, "acoupi stop", Some(std::time::Duration::from_secs(10)))
                .await
                .map_err(|e| format!("cannot reach the broker: {e}"))?;
        let mut out = Vec::new();
        for q in queues {
            let purged = match broker.declare(q).await {
                Ok(()) => broker.purge(q).await,
                Err(e) => Err(e),
            };
            match purged {
                Ok(n) => out.push((q.clone(), n)),
                Err(e) => {
                    broker.close().await;
                    return Err(e.to_string());
                }
            }
        }
        broker.close().await;
        Ok(out)
    })
}

/// Prints `error: …` and returns [`ExitStatus::Failure`](crate::ExitStatus::Failure): the
/// lifecycle commands exit 1 on refusals and failed steps.
pub(crate) fn refuse(msg: impl std::fmt::Display) -> crate::ExitStatus {
    eprintln!("error: {msg}");
    crate::ExitStatus::Failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_parse_like_systemd_for_the_simple_forms() {
        let env = parse_env_file(
            "# comment\nA=plain\nB=\"q \\\"x\\\" \\$y\"\nC='single $z'\n  D = spaced \nnot a line\n",
        );
        assert_eq!(env["A"], "plain");
        assert_eq!(env["B"], "q \"x\" $y");
        assert_eq!(env["C"], "single $z");
        assert_eq!(env["D"], "spaced");
        assert_eq!(env.len(), 4);
    }
}
