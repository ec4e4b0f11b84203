//! Loading what the runtime runs from: the compiled `config/program.json` of a home, and the
//! broker URL with its secrets resolved from the environment or files.
//!
//! In: a home directory. Out: the `spec::Program` and a connectable broker URL, or an error
//! that names the file, variable or setting at fault.

use camino::{Utf8Path, Utf8PathBuf};

use crate::spec::{self, Broker, Program, Secret};

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The home has no compiled program.
    #[error("`{path}` not found: build the home first with `acoupi build MANIFEST --home {home}`")]
    NotBuilt {
        /// The missing file.
        path: Utf8PathBuf,
        /// The home.
        home: Utf8PathBuf,
    },
    /// Reading a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// program.json does not match this acoupi's spec.
    #[error(
        "`{path}` is not a program this acoupi can run ({reason}); rebuild the home with this acoupi"
    )]
    Incompatible {
        /// The file.
        path: Utf8PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A secret could not be resolved.
    #[error("{0}")]
    Secret(String),
    /// The broker URL is not usable.
    #[error("broker URL: {0}")]
    BrokerUrl(String),
}

/// Reads and checks `config/program.json` of `home`.
pub fn load_program(home: &Utf8Path) -> Result<Program, Error> {
    let path = crate::spec::layout::program_file(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotBuilt {
                path,
                home: home.to_owned(),
            });
        }
        Err(e) => {
            return Err(
                std::io::Error::new(e.kind(), format!("failed to read `{path}`: {e}")).into(),
            );
        }
    };
    let program: Program = serde_json::from_str(&text).map_err(|e| Error::Incompatible {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if program.schema_version != spec::SCHEMA_VERSION {
        return Err(Error::Incompatible {
            path,
            reason: format!(
                "layout version {}, this acoupi reads {}",
                program.schema_version,
                spec::SCHEMA_VERSION
            ),
        });
    }
    Ok(program)
}

/// The value of a secret reference, read now.
pub fn resolve_secret(secret: &Secret, what: &str) -> Result<String, Error> {
    match secret {
        Secret::Value(v) => Ok(v.clone()),
        Secret::Env(name) => std::env::var(name).map_err(|_| {
            Error::Secret(format!(
                "{what}: environment variable `{name}` is not set (for the systemd units, put `{name}=…` in config/secrets.env)"
            ))
        }),
        Secret::File(path) => std::fs::read_to_string(path)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
            .map_err(|e| Error::Secret(format!("{what}: cannot read `{path}`: {e}"))),
    }
}

/// The AMQP URL to connect to, with credentials applied; `None` for the in-process broker.
pub fn broker_url(broker: &Broker) -> Result<Option<String>, Error> {
    let Broker::Amqp {
        url,
        url_env,
        username,
        password,
    } = broker
    else {
        return Ok(None);
    };
    let base = match (url, url_env) {
        (Some(u), _) => u.clone(),
        (None, Some(var)) => resolve_secret(&Secret::Env(var.clone()), "the broker URL")?,
        (None, None) => return Err(Error::BrokerUrl("no URL configured".into())),
    };
    let mut parsed = url::Url::parse(&base).map_err(|e| Error::BrokerUrl(e.to_string()))?;
    if let Some(u) = username {
        let value = resolve_secret(u, "the broker username")?;
        parsed
            .set_username(&value)
            .map_err(|()| Error::BrokerUrl("cannot set the username".into()))?;
    }
    if let Some(p) = password {
        let value = resolve_secret(p, "the broker password")?;
        parsed
            .set_password(Some(&value))
            .map_err(|()| Error::BrokerUrl("cannot set the password".into()))?;
    }
    Ok(Some(parsed.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_applied_and_escaped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pw");
        std::fs::write(&file, "p@ss:w/rd\n").expect("write");
        let broker = Broker::Amqp {
            url: Some("amqp://127.0.0.1:5672/%2f".into()),
            url_env: None,
            username: Some(Secret::Value("acoupi".into())),
            password: Some(Secret::File(
                Utf8PathBuf::from_path_buf(file).expect("utf-8"),
            )),
        };
        let url = broker_url(&broker).expect("resolves").expect("amqp");
        assert_eq!(url, "amqp://acoupi:p%40ss%3Aw%2Frd@127.0.0.1:5672/%2f");
        assert_eq!(broker_url(&Broker::Memory).expect("memory"), None);
    }

    #[test]
    fn missing_secrets_name_the_variable() {
        let broker = Broker::Amqp {
            url: Some("amqp://h/%2f".into()),
            url_env: None,
            username: None,
            password: Some(Secret::Env("ACOUPI_TEST_SURELY_UNSET_VAR".into())),
        };
        let e = broker_url(&broker).expect_err("unset variable");
        assert!(
            e.to_string()
                .contains("`ACOUPI_TEST_SURELY_UNSET_VAR` is not set"),
            "{e}"
        );
    }
}
