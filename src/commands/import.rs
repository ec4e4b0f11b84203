//! `acoupi import [PYTHON_HOME] [--output FILE] [--force]`: a manifest from a home of the
//! Python acoupi.
//!
//! Reads the home (default `$HOME/.acoupi`: the original writes there even when its
//! `ACOUPI_HOME` is set, and our `ACOUPI_HOME` names our own home), translates it, checks the
//! text with the real checker and only then writes it (never over an existing file without
//! `--force`). Warnings (one per setting without an equivalent) go to stderr; what was written
//! and what is left to do go to stdout. Exit status: 0 written; 1 the output exists or the
//! translation does not pass `check` (nothing written); 2 the home could not be read.

use std::io::Write as _;

use camino::{Utf8Path, Utf8PathBuf};

use crate::cli::ImportArgs;
use crate::commands::fail;
use crate::import::{self, Imported};
use crate::lifecycle::refuse;
use crate::report::{self, Style};
use crate::{ExitStatus, compile, fsx};

/// The Python acoupi's default home.
fn default_home() -> Result<Utf8PathBuf, String> {
    match std::env::var("HOME") {
        Ok(h) if h.starts_with('/') => Ok(Utf8PathBuf::from(h).join(".acoupi")),
        _ => Err(
            "`HOME` is not set to an absolute path: give the Python acoupi's home, e.g. `acoupi import /home/pi/.acoupi`"
                .to_owned(),
        ),
    }
}

/// The errors `check` finds in `text`, drawn for stderr; empty when it passes.
fn check(output: &Utf8Path, text: &str) -> String {
    let abs = std::path::absolute(output.as_std_path())
        .ok()
        .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())
        .unwrap_or_else(|| output.to_owned());
    let source = compile::from_bytes(output.as_str(), abs, text.as_bytes().to_vec());
    let checked = compile::check(&source);
    let errors: Vec<_> = checked
        .issues
        .into_iter()
        .filter(|i| i.is_error())
        .collect();
    if errors.is_empty() {
        return String::new();
    }
    report::human(&errors, &source.name, &source.text, Style::detect())
}

/// Writes `text` to `path`: replacing it atomically with `force`, else only when absent.
fn write(path: &Utf8Path, text: &str, force: bool) -> Result<(), String> {
    if force {
        return fsx::write_atomic(path, text.as_bytes(), Some(0o644)).map_err(|e| e.to_string());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write `{path}`: {e}"))
}

/// Runs the import.
pub fn run(args: &ImportArgs) -> ExitStatus {
    let dir = match &args.python_home {
        Some(d) => d.clone(),
        None => match default_home() {
            Ok(d) => d,
            Err(e) => return fail(e),
        },
    };
    if !args.force && std::fs::symlink_metadata(&args.output).is_ok() {
        return refuse(format!(
            "`{}` already exists: pass `--force` to replace it, or `--output FILE` to write elsewhere",
            args.output
        ));
    }
    let imported = match import::import(&dir, &import::Options::from_env()) {
        Ok(i) => i,
        Err(e) => return fail(e),
    };
    let report = check(&args.output, &imported.text);
    if !report.is_empty() {
        eprint!("{report}");
        return refuse(format!(
            "the manifest translated from `{dir}` does not pass `acoupi check` (above), so nothing was written: change those settings in the Python acoupi's `config/program.json` and import again, or report it if they look right"
        ));
    }
    if let Err(e) = write(&args.output, &imported.text, args.force) {
        return refuse(e);
    }
    print_summary(&dir, &args.output, &imported);
    ExitStatus::Success
}

fn print_summary(dir: &Utf8Path, output: &Utf8Path, imported: &Imported) {
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wrote `{output}` from the Python acoupi home `{dir}` (its `{}` program); it passes `acoupi check`",
        imported.kind.name()
    );
    if !imported.warnings.is_empty() {
        let _ = writeln!(
            out,
            "{} setting(s) changed or were not imported: see the warnings above and the comments in `{output}`",
            imported.warnings.len()
        );
    }
    let _ = writeln!(out, "next:");
    for t in &imported.todo {
        let _ = writeln!(out, "  - {t}");
    }
    let _ = writeln!(
        out,
        "  - build it into a new home (`acoupi build` never takes over the Python acoupi's): `acoupi build {output} --home DIR`"
    );
    let _ = writeln!(
        out,
        "  - then `acoupi deploy --home DIR --replace-python-acoupi` stops and disables the Python acoupi's services and starts these"
    );
}
