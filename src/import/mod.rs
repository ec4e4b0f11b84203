//! `acoupi import`: a home of the Python acoupi, translated into a manifest.
//!
//! In: the original's home (`config/name`, `config/program.json`, `config/deployment.json` if
//! a deployment was started). Out: the text of an equivalent manifest, with a comment where
//! each setting without an equivalent would go, the same warnings for stderr, and the steps
//! left to the user (secrets are written as references, never copied). The manifest points at
//! the original's databases, staging and recordings folders, so our runtime continues them.
//!
//! Reading is [`python_home`], typed field access [`fields`], the KDL text [`writer`]; the
//! translation is split by subject: [`program`] (program, microphone, recording, paths),
//! [`saving`] and [`messaging`]. The caller checks the text with the real checker before
//! writing it.

pub mod fields;
pub mod messaging;
pub mod program;
pub mod python_home;
pub mod saving;
pub mod writer;

use camino::{Utf8Path, Utf8PathBuf};

pub use python_home::{PythonHome, read};

/// The program modules `acoupi import` translates, as `config/name` holds them.
pub const SUPPORTED: [&str; 3] = [
    "acoupi.programs.default",
    "acoupi.programs.connected",
    "acoupi_batdetect2.program",
];

/// Which of the original's programs a home runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgramKind {
    /// `acoupi.programs.default`: record and save, no messaging.
    Default,
    /// `acoupi.programs.connected`: `default` plus messaging and heartbeats.
    Connected,
    /// acoupi-batdetect2's `BatDetect2_Program`: detection with BatDetect2.
    BatDetect2,
}

impl ProgramKind {
    /// The kind for a module path from `config/name` (a class path below the module, as
    /// acoupi-batdetect2's documentation writes it, is accepted too).
    pub fn from_module(module: &str) -> Option<ProgramKind> {
        match module {
            "acoupi.programs.default" => Some(ProgramKind::Default),
            "acoupi.programs.connected" => Some(ProgramKind::Connected),
            "acoupi_batdetect2.program" | "acoupi_batdetect2.program.BatDetect2_Program" => {
                Some(ProgramKind::BatDetect2)
            }
            _ => None,
        }
    }

    /// A short name: `default`, `connected`, `batdetect2`.
    pub fn name(self) -> &'static str {
        match self {
            ProgramKind::Default => "default",
            ProgramKind::Connected => "connected",
            ProgramKind::BatDetect2 => "batdetect2",
        }
    }
}

/// Why a home could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory is missing or holds no `config/`.
    #[error(
        "`{0}` is not a Python acoupi home (it has no `config` directory): give the home that `acoupi setup` wrote, e.g. `acoupi import ~/.acoupi`"
    )]
    NoHome(Utf8PathBuf),
    /// A file the import needs is missing.
    #[error("`{0}` is missing: the Python acoupi writes it at `acoupi setup`, so run that first")]
    Missing(Utf8PathBuf),
    /// A file could not be read.
    #[error("cannot read `{path}`: {cause}")]
    Read {
        /// The file.
        path: Utf8PathBuf,
        /// The OS error.
        cause: String,
    },
    /// A file is not the JSON it should be.
    #[error("`{path}` is not valid JSON: {cause}")]
    Malformed {
        /// The file.
        path: Utf8PathBuf,
        /// The parser's message.
        cause: String,
    },
    /// `config/name` names a program this importer does not know.
    #[error(
        "`{path}` names the program `{module}`, which `acoupi import` cannot translate; it translates {}: for another program, start from `acoupi init` and copy its settings by hand",
        SUPPORTED.map(|m| format!("`{m}`")).join(", ")
    )]
    UnknownProgram {
        /// `config/name`.
        path: Utf8PathBuf,
        /// What it holds.
        module: String,
    },
    /// A field has the wrong type or value.
    #[error("`{path}`: `{field}` should be {expected}, not {found}")]
    Field {
        /// The file.
        path: Utf8PathBuf,
        /// The dotted field.
        field: String,
        /// What it should be.
        expected: String,
        /// What it is.
        found: String,
    },
}

/// Where things the manifest names live on this machine.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where `scripts/install-batdetect2` installs BatDetect2 and its adapter by default:
    /// `${XDG_DATA_HOME:-$HOME/.local/share}/acoupi/batdetect2`.
    pub batdetect2_dir: Utf8PathBuf,
}

impl Options {
    /// The defaults for the current user.
    pub fn from_env() -> Options {
        let data = std::env::var("XDG_DATA_HOME")
            .ok()
            .filter(|d| d.starts_with('/'))
            .map(Utf8PathBuf::from)
            .unwrap_or_else(|| {
                Utf8PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned()))
                    .join(".local/share")
            });
        Options {
            batdetect2_dir: data.join("acoupi/batdetect2"),
        }
    }
}

/// A translated home.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The program it ran.
    pub kind: ProgramKind,
    /// The manifest text.
    pub text: String,
    /// One line per setting without an equivalent (also a comment in `text`).
    pub warnings: Vec<String>,
    /// What the user must still do (provide a secret, install a detector).
    pub todo: Vec<String>,
}

/// Reads and translates the home at `dir`.
pub fn import(dir: &Utf8Path, options: &Options) -> Result<Imported, Error> {
    let home = read(dir)?;
    translate(&home, options)
}

/// Translates a home already read.
pub fn translate(home: &PythonHome, options: &Options) -> Result<Imported, Error> {
    let mut w = writer::Writer::new();
    w.header(home);
    let ctx = program::write(&mut w, home)?;
    if home.kind == ProgramKind::BatDetect2 {
        program::write_detector(&mut w, home, options)?;
    }
    saving::write(&mut w, home, &ctx)?;
    messaging::write(&mut w, home, &ctx)?;
    for (field, value) in home.config.unread() {
        w.unknown_setting(&field, &value);
    }
    Ok(w.finish(home.kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile;
    use fields::Fields;

    fn home(kind: ProgramKind, config: serde_json::Value) -> PythonHome {
        PythonHome {
            dir: "/home/pi/.acoupi".into(),
            module: "test".into(),
            kind,
            config: Fields::new(
                Utf8Path::new("/home/pi/.acoupi/config/program.json"),
                config,
            ),
            deployment: None,
        }
    }

    /// Translates and checks: the text and its error codes.
    fn imported(kind: ProgramKind, config: serde_json::Value) -> (Imported, Vec<String>) {
        let options = Options {
            batdetect2_dir: "/opt/batdetect2".into(),
        };
        let imported = translate(&home(kind, config), &options).expect("translates");
        let source = compile::from_bytes(
            "acoupi.kdl",
            "/acoupi.kdl".into(),
            imported.text.as_bytes().to_vec(),
        );
        let codes = compile::check(&source)
            .issues
            .iter()
            .map(|i| {
                miette::Diagnostic::code(i)
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            })
            .collect();
        (imported, codes)
    }

    #[test]
    fn edge_cases_translate_to_manifests_that_check() {
        // Back-to-back recording, an all-day schedule, sun rules with no position.
        let (i, codes) = imported(
            ProgramKind::Default,
            serde_json::json!({
                "microphone": {"device_name": "m"},
                "recording": {"duration": 3, "interval": 0,
                              "schedule_start": "06:00:00", "schedule_end": "06:00:00"},
                "recording_saving": {"starttime": "18:00:00", "endtime": "18:00:00",
                                     "before_dawndusk_duration": 10,
                                     "after_dawndusk_duration": 0,
                                     "frequency_duration": 0, "frequency_interval": 0},
                "something_new": {"x": 1},
            }),
        );
        assert!(codes.is_empty(), "{codes:?}\n{}", i.text);
        assert!(i.text.contains("mode \"continuous\""), "{}", i.text);
        assert!(!i.text.contains("window from=\"06:00\""), "{}", i.text);
        assert!(
            i.text
                .contains("/-keep-if window from=\"dusk-10m\" to=\"dusk\""),
            "{}",
            i.text
        );
        assert!(
            i.warnings
                .iter()
                .any(|w| w.starts_with("`something_new.x` = 1 is not imported: unknown setting")),
            "{:?}",
            i.warnings
        );

        // A connected program with no destination, and a BatDetect2 program whose summary
        // has nowhere to go.
        for kind in [ProgramKind::Connected, ProgramKind::BatDetect2] {
            let (i, codes) = imported(
                kind,
                serde_json::json!({
                    "microphone": {"device_name": "m", "samplerate": 256000},
                    "messaging": {"http": null, "mqtt": null, "max_messages": null},
                    "summariser_config": {"interval": 3600.0},
                }),
            );
            assert!(codes.is_empty(), "{codes:?}\n{}", i.text);
            assert!(!i.text.contains("messaging {"), "{}", i.text);
            assert!(
                i.warnings
                    .iter()
                    .any(|w| w.contains("neither `messaging.http`")),
                "{:?}",
                i.warnings
            );
        }
    }
}
