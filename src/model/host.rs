//! Checks of the machine a manifest is checked or built on, beside the pure validation: the
//! model files its detectors load.
//!
//! In: a validated [`Model`]. Out: a warning for each model file that is not there, with the
//! command that installs it. `acoupi check` and `acoupi build` add these to the manifest's
//! diagnostics; the compiler itself stays free of I/O, so a manifest compiles the same
//! anywhere.

use super::Model;
use crate::diagnostic::Issue;
use crate::models;

/// The warnings about `model`'s model files on this machine.
pub fn issues(model: &Model) -> Vec<Issue> {
    model
        .model_files
        .iter()
        .filter_map(|f| {
            let (path, help) = match &f.path {
                Some(p) => (
                    p.clone(),
                    format!(
                        "install it with `{} --dir {}`, or fix the path",
                        models::BATDETECT2_INSTALL,
                        p.parent().map(|d| d.as_str()).unwrap_or("/")
                    ),
                ),
                None => {
                    let help = format!(
                        "install it with `{}`, or name the checkpoint with `model \"/path/to/{}\"`",
                        models::BATDETECT2_INSTALL,
                        models::BATDETECT2_FILE
                    );
                    match models::batdetect2_default() {
                        Some(p) => (p, help),
                        None => (
                            format!(
                                "$XDG_DATA_HOME/acoupi/models/batdetect2/{}",
                                models::BATDETECT2_FILE
                            )
                            .into(),
                            help,
                        ),
                    }
                }
            };
            if path.is_file() {
                return None;
            }
            Some(Issue::MissingModel {
                path: path.to_string(),
                detector: f.detector.clone(),
                span: f.span,
                help: Some(help),
            })
        })
        .collect()
}
