//! Reading the Python acoupi's home: which program it runs, its config, its deployment.
//!
//! In: the home directory. Out: a [`PythonHome`], or an [`Error`] naming the file that is
//! missing, unreadable, malformed or names a program this importer does not know.

use camino::{Utf8Path, Utf8PathBuf};

use super::fields::Fields;
use super::{Error, ProgramKind};

/// The deployment `acoupi deployment start` recorded in `config/deployment.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct PythonDeployment {
    /// Its name.
    pub name: String,
    /// Its position, when both coordinates were given.
    pub location: Option<(f64, f64)>,
    /// When it started, as written.
    pub started_on: String,
    /// Whether it has ended (`ended_on` is set).
    pub ended: bool,
}

/// A home of the Python acoupi, read.
#[derive(Debug)]
pub struct PythonHome {
    /// The home directory.
    pub dir: Utf8PathBuf,
    /// The module `config/name` holds.
    pub module: String,
    /// The program it names.
    pub kind: ProgramKind,
    /// `config/program.json`.
    pub config: Fields,
    /// `config/deployment.json`, when present.
    pub deployment: Option<PythonDeployment>,
}

fn read_text(path: &Utf8Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Read {
            path: path.to_owned(),
            cause: e.to_string(),
        }),
    }
}

fn read_json(path: &Utf8Path) -> Result<Option<serde_json::Value>, Error> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Malformed {
        path: path.to_owned(),
        cause: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(Error::Malformed {
            path: path.to_owned(),
            cause: "the document is not a JSON object".to_owned(),
        });
    }
    Ok(Some(value))
}

/// Reads the home at `dir`.
pub fn read(dir: &Utf8Path) -> Result<PythonHome, Error> {
    // Absolute, so relative paths in `program.json` resolve against it to absolute paths.
    let dir = std::path::absolute(dir.as_std_path())
        .ok()
        .and_then(|d| Utf8PathBuf::from_path_buf(d).ok())
        .unwrap_or_else(|| dir.to_owned());
    let dir = dir.as_path();
    let config_dir = dir.join("config");
    if !config_dir.is_dir() {
        return Err(Error::NoHome(dir.to_owned()));
    }
    let name_path = config_dir.join("name");
    let module = read_text(&name_path)?
        .ok_or_else(|| Error::Missing(name_path.clone()))?
        .trim()
        .to_owned();
    let kind = ProgramKind::from_module(&module).ok_or_else(|| Error::UnknownProgram {
        path: name_path.clone(),
        module: module.clone(),
    })?;
    let program_path = config_dir.join("program.json");
    let config = read_json(&program_path)?.ok_or_else(|| Error::Missing(program_path.clone()))?;
    let deployment_path = config_dir.join("deployment.json");
    let deployment = match read_json(&deployment_path)? {
        None => None,
        Some(v) => Some(deployment(&Fields::new(&deployment_path, v))?),
    };
    Ok(PythonHome {
        dir: dir.to_owned(),
        module,
        kind,
        config: Fields::new(&program_path, config),
        deployment,
    })
}

fn deployment(f: &Fields) -> Result<PythonDeployment, Error> {
    let latitude = f.num("latitude")?;
    let longitude = f.num("longitude")?;
    Ok(PythonDeployment {
        name: f.req_str("name")?,
        location: latitude.zip(longitude),
        started_on: f.str("started_on")?.unwrap_or_default(),
        ended: f.get("ended_on").is_some(),
    })
}
