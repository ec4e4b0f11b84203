//! The deployment a new recording belongs to.
//!
//! In: the process's [`Services`]. Out: the current deployment in acoupi's shape: the one in the
//! home's deployment file (written by `acoupi deploy`), or, for a foreground run without an
//! active one, the implicit deployment of the home (the store's current one while it has not
//! ended, else a new one named after the program). A deployed worker whose deployment file is
//! missing or malformed fails the task with an error naming the file, before anything is
//! recorded.

use std::sync::Arc;

use camino::Utf8Path;

use super::{DeploymentSource, Services, TaskError};
use crate::lifecycle::deployment as file;
use crate::spec::data::Deployment;

/// The deployment recordings made now belong to.
pub(crate) async fn current(services: &Arc<Services>) -> Result<Deployment, TaskError> {
    match &services.deployment {
        DeploymentSource::File(path) => from_file(path),
        DeploymentSource::FileOrImplicit(path) => {
            if path.exists() {
                let d = from_file(path)?;
                if d.ended_on.is_none() {
                    return Ok(d);
                }
            }
            if let Some(d) = services.implicit_deployment() {
                return Ok(d);
            }
            let d = services
                .with_store(|store, s| match store.current_deployment()? {
                    Some(d) if d.ended_on.is_none() => Ok(d),
                    _ => {
                        let d = implicit(s);
                        store.upsert_deployment(&d)?;
                        Ok(d)
                    }
                })
                .await?;
            tracing::info!(deployment = %d.name, id = %d.id, "recording under the home's implicit deployment");
            services.set_implicit_deployment(&d);
            Ok(d)
        }
    }
}

/// A new implicit deployment of the program, starting now.
fn implicit(services: &Services) -> Deployment {
    let program = &services.program;
    Deployment {
        id: crate::spec::data::new_id(),
        name: format!("{} (acoupi run)", program.name),
        latitude: program.location.map(|l| l.latitude),
        longitude: program.location.map(|l| l.longitude),
        started_on: services.clock.now(),
        ended_on: None,
    }
}

/// The deployment in `path`, written by `acoupi deploy` (or the Python acoupi).
fn from_file(path: &Utf8Path) -> Result<Deployment, TaskError> {
    let bad = |why: String| TaskError::Permanent(format!("deployment file `{path}`: {why}"));
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad(
                "missing: deploy the program with `acoupi deploy`, or run it in the foreground with `acoupi run`".into(),
            ));
        }
        Err(e) => return Err(bad(e.to_string())),
    };
    let d: file::Deployment = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    d.to_data().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Utf8Path, text: &str) -> camino::Utf8PathBuf {
        let path = dir.join("deployment.json");
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn the_deployment_file_is_read_in_acoupis_shape() {
        let dir = tempfile::tempdir().expect("temp");
        let dir = Utf8Path::from_path(dir.path()).expect("utf-8");
        let path = write(
            dir,
            r#"{"id": "0b5c3f3e-6a55-4f0e-8a3e-2f1d7f0d9a11", "name": "hedge", "latitude": 51.5,
                "longitude": null, "started_on": "2024-05-01T20:00:00Z"}"#,
        );
        let d = from_file(&path).expect("reads");
        assert_eq!(d.id.to_string(), "0b5c3f3e-6a55-4f0e-8a3e-2f1d7f0d9a11");
        assert_eq!((d.latitude, d.longitude), (Some(51.5), None));
        assert_eq!(d.started_on.to_string(), "2024-05-01T20:00:00Z");
        assert_eq!(d.ended_on, None);
    }

    #[test]
    fn a_missing_or_malformed_file_is_a_permanent_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp");
        let dir = Utf8Path::from_path(dir.path()).expect("utf-8");
        let missing = dir.join("deployment.json");
        let e = from_file(&missing).expect_err("missing");
        assert!(
            matches!(&e, TaskError::Permanent(m) if m.contains(missing.as_str()) && m.contains("acoupi deploy")),
            "{e}"
        );
        let bad_id = write(
            dir,
            r#"{"id": "nope", "name": "x", "latitude": null, "longitude": null, "started_on": "2024-05-01T20:00:00Z"}"#,
        );
        let e = from_file(&bad_id).expect_err("bad id");
        assert!(e.to_string().contains("`id` is not a UUID"), "{e}");
        // Another read error is told as itself, not as a missing file.
        let unreadable = dir.join("a-folder");
        std::fs::create_dir(&unreadable).expect("mkdir");
        let e = from_file(&unreadable).expect_err("a folder");
        assert!(
            matches!(&e, TaskError::Permanent(m) if m.contains(unreadable.as_str()) && !m.contains("missing")),
            "{e}"
        );
        let truncated = write(dir, r#"{"id": "0b5c3f3e-6a5"#);
        let e = from_file(&truncated).expect_err("truncated");
        assert!(e.to_string().contains(truncated.as_str()), "{e}");
    }
}
