//! Model files acoupi's built-in detectors load: where they live and how they are installed.
//!
//! In: a model name (`batdetect2`), an optional install folder and a Python with pip. Out: the
//! checkpoint fetched from its published package (`pip download --no-deps`), taken out of the
//! wheel, checked against its known sha256 and installed with a note of its licence, and a
//! record of where it is (`$XDG_DATA_HOME/acoupi/models/batdetect2.location`), so a
//! manifest's detector that names no `model` finds it. Nothing here is committed to the
//! repository or downloaded at run time.

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

/// The BatDetect2 release whose checkpoint acoupi's native detector reproduces.
pub const BATDETECT2_VERSION: &str = "1.3.1";
/// The checkpoint's file name, in the wheel and once installed.
pub const BATDETECT2_FILE: &str = "Net2DFast_UK_same.pth.tar";
/// The checkpoint's path inside the `batdetect2` wheel.
const BATDETECT2_MEMBER: &str = "batdetect2/models/Net2DFast_UK_same.pth.tar";
/// sha256 of BatDetect2 1.3.1's checkpoint.
pub const BATDETECT2_SHA256: &str =
    "c4e399122bb8d99b0ff635b73944709fdaf4fb3f2a69e7b558e6a25ae7e26356";
/// The command that installs the checkpoint, for help texts.
pub const BATDETECT2_INSTALL: &str = "acoupi models install batdetect2";

/// The licence note installed beside the checkpoint.
const BATDETECT2_LICENSE: &str = "\
Net2DFast_UK_same.pth.tar is the model of BatDetect2 1.3.1
(https://github.com/macaodha/batdetect2), by Oisin Mac Aodha and co-authors, as published
in the `batdetect2` package on PyPI.

It is licensed under the Creative Commons Attribution-NonCommercial 4.0 International
licence (CC BY-NC 4.0): https://creativecommons.org/licenses/by-nc/4.0/
You may share and adapt it for non-commercial purposes, giving appropriate credit.

acoupi installed it unchanged (`acoupi models install batdetect2`); acoupi's own licence
(GPL-3.0-or-later) does not apply to it.
";

/// Why a model could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No home directory to put the data folder in.
    #[error("cannot tell where to install models: neither `XDG_DATA_HOME` nor `HOME` is set")]
    NoDataHome,
    /// Python or its pip cannot be run.
    #[error("`{python} -m pip` is not available: {reason}")]
    NoPip {
        /// The interpreter tried.
        python: String,
        /// What happened.
        reason: String,
    },
    /// A step run through Python failed.
    #[error("{step} failed: {detail}")]
    Step {
        /// What was being done.
        step: String,
        /// Its error output.
        detail: String,
    },
    /// The downloaded checkpoint is not the expected one.
    #[error("the checkpoint's sha256 is {got}, not the expected {expected}")]
    Checksum {
        /// What the file hashes to.
        got: String,
        /// What BatDetect2 1.3.1's checkpoint hashes to.
        expected: &'static str,
    },
    /// A file could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file could not be replaced atomically.
    #[error(transparent)]
    Write(#[from] crate::fsx::WriteError),
    /// A path is not UTF-8.
    #[error("`{0}` is not a UTF-8 path")]
    NotUtf8(String),
}

/// acoupi's model folder: `${XDG_DATA_HOME:-~/.local/share}/acoupi/models`.
pub fn models_dir() -> Result<Utf8PathBuf, Error> {
    let data = match std::env::var("XDG_DATA_HOME") {
        Ok(d) if Utf8Path::new(&d).is_absolute() => Utf8PathBuf::from(d),
        _ => match std::env::var("HOME") {
            Ok(h) if !h.is_empty() => Utf8PathBuf::from(h).join(".local/share"),
            _ => return Err(Error::NoDataHome),
        },
    };
    Ok(data.join("acoupi/models"))
}

/// The file recording where the BatDetect2 checkpoint was last installed.
fn batdetect2_record(models: &Utf8Path) -> Utf8PathBuf {
    models.join("batdetect2.location")
}

/// Where a `batdetect2` detector without a `model` finds its checkpoint: where
/// `acoupi models install batdetect2` last put it, else the default folder. `None` when there
/// is no data folder at all (no `HOME`).
pub fn batdetect2_default() -> Option<Utf8PathBuf> {
    let models = models_dir().ok()?;
    let recorded = std::fs::read_to_string(batdetect2_record(&models))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| Utf8Path::new(s).is_absolute());
    Some(match recorded {
        Some(path) => Utf8PathBuf::from(path),
        None => models.join("batdetect2").join(BATDETECT2_FILE),
    })
}

/// The result of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The checkpoint.
    pub path: Utf8PathBuf,
    /// False when a verified checkpoint was already there (nothing was downloaded).
    pub downloaded: bool,
}

/// Installs BatDetect2's checkpoint into `dir` (default `models_dir()/batdetect2`) with
/// `python`'s pip, verifies it and records where it is. A verified checkpoint already in
/// place is kept, with no download.
pub fn install_batdetect2(dir: Option<&Utf8Path>, python: &str) -> Result<Installed, Error> {
    let models = models_dir()?;
    let dir = match dir {
        Some(d) => absolute(d)?,
        None => models.join("batdetect2"),
    };
    let target = dir.join(BATDETECT2_FILE);
    let downloaded = if sha256_file(&target).ok().as_deref() == Some(BATDETECT2_SHA256) {
        false
    } else {
        fetch_batdetect2(&dir, &target, python)?;
        true
    };
    crate::fsx::write_atomic(&dir.join("LICENSE"), BATDETECT2_LICENSE.as_bytes(), None)?;
    crate::fsx::write_atomic(
        &batdetect2_record(&models),
        format!("{target}\n").as_bytes(),
        None,
    )?;
    Ok(Installed {
        path: target,
        downloaded,
    })
}

/// Downloads the wheel into a scratch folder under `dir`, takes the checkpoint out, checks
/// it and renames it to `target`. The scratch folder is removed whatever happens.
fn fetch_batdetect2(dir: &Utf8Path, target: &Utf8Path, python: &str) -> Result<(), Error> {
    check_pip(python)?;
    fs_err::create_dir_all(dir)?;
    let scratch = dir.join(format!(".download-{}", std::process::id()));
    let result = (|| {
        fs_err::create_dir_all(&scratch)?;
        run_python(
            python,
            &[
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--disable-pip-version-check",
                "--quiet",
                "--only-binary=:all:",
                &format!("batdetect2=={BATDETECT2_VERSION}"),
                "-d",
                scratch.as_str(),
            ],
            &format!("`pip download batdetect2=={BATDETECT2_VERSION}`"),
        )?;
        let wheel = fs_err::read_dir(&scratch)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| Error::Step {
                step: "`pip download`".into(),
                detail: "it left no wheel".into(),
            })?;
        let wheel = Utf8PathBuf::from_path_buf(wheel)
            .map_err(|p| Error::NotUtf8(p.display().to_string()))?;
        let part = scratch.join(BATDETECT2_FILE);
        // Python's zipfile reads the wheel: pip needs that Python anyway, and acoupi needs no
        // zip decoder of its own for this one file.
        run_python(
            python,
            &[
                "-c",
                "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], 'wb') as f:\n    f.write(z.read(sys.argv[2]))",
                wheel.as_str(),
                BATDETECT2_MEMBER,
                part.as_str(),
            ],
            &format!("extracting `{BATDETECT2_MEMBER}` from the wheel"),
        )?;
        let got = sha256_file(&part)?;
        if got != BATDETECT2_SHA256 {
            return Err(Error::Checksum {
                got,
                expected: BATDETECT2_SHA256,
            });
        }
        fs_err::rename(&part, target)?;
        crate::fsx::sync_dir(dir);
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Fails with advice unless `python -m pip` runs.
fn check_pip(python: &str) -> Result<(), Error> {
    match Command::new(python)
        .args(["-m", "pip", "--version"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::NoPip {
            python: python.into(),
            reason: last_line(&out.stderr),
        }),
        Err(e) => Err(Error::NoPip {
            python: python.into(),
            reason: e.to_string(),
        }),
    }
}

/// Runs `python args…`, failing with its last error line.
fn run_python(python: &str, args: &[&str], step: &str) -> Result<(), Error> {
    let out = Command::new(python)
        .args(args)
        .output()
        .map_err(|e| Error::Step {
            step: step.into(),
            detail: format!("cannot run `{python}`: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Step {
            step: step.into(),
            detail: last_line(&out.stderr),
        })
    }
}

/// The last non-empty line of a program's error output.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| "it failed without a message".into())
}

/// The hex sha256 of a file.
pub fn sha256_file(path: &Utf8Path) -> Result<String, Error> {
    let bytes = fs_err::read(path)?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// `path` made absolute against the working directory.
fn absolute(path: &Utf8Path) -> Result<Utf8PathBuf, Error> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let cwd = std::env::current_dir()?;
    let cwd =
        Utf8PathBuf::from_path_buf(cwd).map_err(|p| Error::NotUtf8(p.display().to_string()))?;
    Ok(cwd.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_python_is_reported_as_no_pip() {
        let err = check_pip("/nonexistent/python3").expect_err("no such interpreter");
        assert!(
            err.to_string()
                .starts_with("`/nonexistent/python3 -m pip` is not available"),
            "{err}"
        );
    }

    #[test]
    fn the_last_error_line_is_the_detail() {
        assert_eq!(
            last_line(b"Traceback\n  x\nValueError: bad\n\n"),
            "ValueError: bad"
        );
        assert_eq!(last_line(b""), "it failed without a message");
    }
}
