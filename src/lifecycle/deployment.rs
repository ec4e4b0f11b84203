//! `config/deployment.json`: the deployment a home is running, in the layout of the Python
//! acoupi (`id`, `name`, `latitude`, `longitude`, `started_on`, and `ended_on` once it ended).
//!
//! In: a home. Out: the file read, or written atomically (a temporary file renamed over it),
//! so a reader sees the old deployment or the new one, never half of either. Fields this
//! acoupi does not know (written by the Python acoupi) are kept.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// The file's path inside the home.
pub use crate::spec::layout::DEPLOYMENT_FILE;

/// One deployment of the program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// A random UUID.
    pub id: String,
    /// The deployment's name.
    pub name: String,
    /// Degrees north, when known.
    pub latitude: Option<f64>,
    /// Degrees east, when known.
    pub longitude: Option<f64>,
    /// When it started: RFC 3339 in UTC (`2025-05-01T20:00:00Z`).
    pub started_on: String,
    /// When it ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_on: Option<String>,
    /// Fields written by other tools, kept as they are.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Deployment {
    /// A deployment starting now.
    pub fn start(name: String, latitude: Option<f64>, longitude: Option<f64>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            name,
            latitude,
            longitude,
            started_on: now(),
            ended_on: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Whether it is still running (no `ended_on`).
    pub fn is_active(&self) -> bool {
        self.ended_on.is_none()
    }

    /// The deployment in acoupi's data model (as the metadata store keeps it), or what is
    /// malformed in it.
    pub fn to_data(&self) -> Result<crate::spec::data::Deployment, String> {
        let time = |what: &str, t: &str| {
            t.parse::<jiff::Timestamp>()
                .map_err(|e| format!("`{what}` is not a date-time ({t}): {e}"))
        };
        Ok(crate::spec::data::Deployment {
            id: self
                .id
                .parse()
                .map_err(|e| format!("`id` is not a UUID ({}): {e}", self.id))?,
            name: self.name.clone(),
            latitude: self.latitude,
            longitude: self.longitude,
            started_on: time("started_on", &self.started_on)?,
            ended_on: self
                .ended_on
                .as_deref()
                .map(|t| time("ended_on", t))
                .transpose()?,
        })
    }
}

/// Now, as RFC 3339 in UTC with whole seconds.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed.
    #[error("cannot {what} `{path}`: {reason}")]
    Io {
        /// `read`, `write`, …
        what: &'static str,
        /// The file.
        path: Utf8PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The file is not a deployment.
    #[error("`{path}` is not a deployment file: {reason}")]
    Invalid {
        /// The file.
        path: Utf8PathBuf,
        /// The parse error.
        reason: String,
    },
}

/// The path of the deployment file of `home`.
pub fn path(home: &Utf8Path) -> Utf8PathBuf {
    crate::spec::layout::deployment_file(home)
}

/// Reads the deployment of `home`; `None` when there is none.
pub fn read(home: &Utf8Path) -> Result<Option<Deployment>, Error> {
    let path = path(home);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Io {
                what: "read",
                path,
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Invalid {
            path,
            reason: e.to_string(),
        })
}

/// Writes `deployment` as the deployment of `home`, atomically (mode 0600).
pub fn write(home: &Utf8Path, deployment: &Deployment) -> Result<(), Error> {
    let path = path(home);
    let mut text = serde_json::to_string_pretty(deployment).map_err(|e| Error::Invalid {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    text.push('\n');
    crate::fsx::write_atomic(&path, text.as_bytes(), Some(0o600)).map_err(|e| Error::Io {
        what: "write",
        path: e.path,
        reason: e.source.to_string(),
    })
}

/// Removes the deployment file of `home` (no error when it is absent).
pub fn remove(home: &Utf8Path) -> Result<(), Error> {
    let path = path(home);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: "remove",
            path,
            reason: e.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_python_layout_and_keeps_unknown_fields() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Utf8Path::from_path(dir.path()).expect("utf-8");
        std::fs::create_dir(home.join("config")).expect("config");
        let python = r#"{"id": "0b5c3f3e-6a55-4f0e-8a3e-2f1d7f0d9a11", "name": "hedge",
            "latitude": null, "longitude": 3.5, "started_on": "2024-05-01T20:00:00Z",
            "ended_on": null, "notes": "north"}"#;
        std::fs::write(path(home), python).expect("write");
        let d = read(home).expect("reads").expect("present");
        assert!(d.is_active());
        assert_eq!(d.latitude, None);
        assert_eq!(d.longitude, Some(3.5));
        write(home, &d).expect("writes");
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path(home)).expect("read"))
                .expect("json");
        assert_eq!(back["notes"], "north");
        assert!(back.get("ended_on").is_none(), "{back}");
        let names: Vec<String> = std::fs::read_dir(home.join("config"))
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["deployment.json"], "no temporary file is left");
    }

    #[test]
    fn a_new_deployment_has_a_uuid_and_a_utc_start() {
        let d = Deployment::start("x".into(), Some(1.0), Some(2.0));
        assert!(uuid::Uuid::parse_str(&d.id).is_ok());
        assert!(d.started_on.ends_with('Z'), "{}", d.started_on);
        assert!(d.started_on.parse::<jiff::Timestamp>().is_ok());
        let json = serde_json::to_value(&d).expect("json");
        let keys: Vec<&String> = json.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            ["id", "latitude", "longitude", "name", "started_on"]
                .iter()
                .collect::<Vec<_>>()
        );
    }
}
