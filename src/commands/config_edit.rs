//! `acoupi config get|set|unset`: read and change the manifest by dotted path.
//!
//! The manifest is `--manifest FILE`, else the one the home was built from (its `build.lock`
//! names it). `set` and `unset` edit it in place through `manifest::edit`, keeping every byte
//! they do not change, and run the full checker on the result before writing: an edit that
//! would make the manifest invalid prints the diagnostics (on the edited text) and leaves the
//! file byte for byte as it was (exit 1). `--dry-run` prints the change as a unified diff and
//! writes nothing. Editing a home's manifest then rebuilds the home and, when it is deployed,
//! applies the new build (`commands::build::write_and_apply`; `--no-apply` leaves the units);
//! when the new build is rolled back, the manifest is restored too, so the home and its
//! manifest agree. `get` prints `path = value` lines, with secrets written in the manifest
//! masked.

use camino::{Utf8Path, Utf8PathBuf};

use crate::ExitStatus;
use crate::cli::ConfigEditArgs;
use crate::compile::{self, Source};
use crate::lifecycle::verify;
use crate::manifest::edit::{self, Op};
use crate::plan::BuildContext;
use crate::report::{self, Style};
use crate::{fsx, home};

/// Which manifest to act on, and the home to rebuild (none with `--manifest`).
fn locate(
    manifest: Option<&Utf8Path>,
    home_flag: Option<&Utf8Path>,
) -> Result<(Utf8PathBuf, Option<Utf8PathBuf>), String> {
    if let Some(m) = manifest {
        return Ok((m.to_owned(), None));
    }
    let home = home::resolve(home_flag).map_err(|e| e.to_string())?;
    let lock = verify::read_lock(&home)
        .map_err(|e| format!("{e}; to edit a manifest outside a home, pass `--manifest FILE`"))?;
    let path = Utf8PathBuf::from(lock.source.path.clone());
    if verify::manifest_stale(&lock) == Ok(true) {
        eprintln!(
            "note: `{path}` changed since `{home}` was built; a rebuild after the edit includes those changes"
        );
    }
    if !path.exists() {
        return Err(format!(
            "`{home}` was built from `{path}`, which is gone: pass `--manifest FILE` to edit another, then `acoupi build FILE --home {home}`"
        ));
    }
    Ok((path, Some(home)))
}

fn print_edit_error(e: &edit::Error) -> ExitStatus {
    eprintln!("error: {}", e.message);
    if let Some(h) = &e.help {
        eprintln!("  help: {h}");
    }
    ExitStatus::Failure
}

/// `config get [PATH]`.
pub fn get(
    path: Option<&str>,
    manifest: Option<&Utf8Path>,
    home_flag: Option<&Utf8Path>,
) -> ExitStatus {
    let (file, _) = match locate(manifest, home_flag) {
        Ok(l) => l,
        Err(e) => return super::fail(e),
    };
    let source = match compile::read_source(&file) {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    match edit::get(&source.text, path) {
        Ok(lines) => {
            match (path, lines.as_slice()) {
                // One value asked for: the value alone.
                (Some(p), [(key, value)]) if key == p => println!("{value}"),
                _ => {
                    for (key, value) in &lines {
                        println!("{key} = {value}");
                    }
                }
            }
            ExitStatus::Success
        }
        Err(e) => print_edit_error(&e),
    }
}

/// `config set PATH VALUE…` and `config unset PATH`.
pub fn change(op: Op, args: &ConfigEditArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let (file, home) = match locate(args.manifest.as_deref(), home_flag) {
        Ok(l) => l,
        Err(e) => return super::fail(e),
    };
    let source = match compile::read_source(&file) {
        Ok(s) => s,
        Err(e) => return super::fail(e),
    };
    let style = Style::detect();
    let before = compile::check(&source);
    if before.model.is_none() {
        eprint!(
            "{}",
            report::human(&before.issues, &source.name, &source.text, style)
        );
        eprintln!(
            "error: `{}` has errors already (above): fix them first; nothing was changed",
            source.name
        );
        return ExitStatus::Failure;
    }
    let candidates = match edit::edit(&source.text, &op) {
        Ok(c) => c,
        Err(e) => return print_edit_error(&e),
    };
    // The first spelling the checker accepts; else the one with the fewest errors.
    let mut best: Option<(usize, Source, Vec<crate::diagnostic::Issue>)> = None;
    let mut chosen: Option<Source> = None;
    for text in candidates {
        let edited = compile::from_bytes(&source.name, source.path.clone(), text.into_bytes());
        let checked = compile::check(&edited);
        if checked.model.is_some() {
            chosen = Some(edited);
            break;
        }
        let errors = checked.issues.iter().filter(|i| i.is_error()).count();
        if best.as_ref().is_none_or(|(n, _, _)| errors < *n) {
            best = Some((errors, edited, checked.issues));
        }
    }
    let Some(edited) = chosen else {
        if let Some((_, edited, issues)) = best {
            eprint!(
                "{}",
                report::human(&issues, &edited.name, &edited.text, style)
            );
        }
        eprintln!(
            "error: the edit would make `{}` invalid (above); the file was not changed",
            source.name
        );
        return ExitStatus::Failure;
    };
    if edited.text == source.text {
        eprintln!("`{}` already says so: nothing changed", source.name);
        return ExitStatus::Success;
    }
    if args.dry_run {
        print!("{}", unified_diff(&source.name, &source.text, &edited.text));
        return ExitStatus::Success;
    }
    if let Err(e) = write_manifest(&source.path, &edited.text) {
        return super::fail(e);
    }
    let what = match &op {
        Op::Set { path, .. } => format!("set `{path}`"),
        Op::Unset { path } => format!("removed `{path}`"),
    };
    eprintln!("{what} in `{}`", source.name);
    let Some(home) = home else {
        return ExitStatus::Success;
    };
    let status = rebuild(&edited, &home, !args.no_apply);
    if status == ExitStatus::Failure {
        // The home went back to its previous build: the manifest goes back with it.
        match write_manifest(&source.path, &source.text) {
            Ok(()) => eprintln!("`{}` was restored as it was before the edit", source.name),
            Err(e) => eprintln!("error: could not restore `{}`: {e}", source.name),
        }
    }
    status
}

/// Builds `source` into `home` and applies it.
fn rebuild(source: &Source, home: &Utf8Path, apply: bool) -> ExitStatus {
    let exe = match std::env::current_exe()
        .map_err(|e| e.to_string())
        .and_then(|p| Utf8PathBuf::from_path_buf(p).map_err(|p| p.display().to_string()))
    {
        Ok(e) => e,
        Err(e) => return super::fail(format!("cannot locate the acoupi binary: {e}")),
    };
    let ctx = BuildContext {
        home: home.to_owned(),
        exe,
        source_path: source.path.clone(),
    };
    match compile::build(source, &ctx) {
        Ok(built) => super::build::write_and_apply(&built.tree, home, &source.name, apply),
        Err(e) => super::fail(format!("could not build `{home}`: {e}")),
    }
}

/// Replaces the manifest atomically, keeping its permission bits.
fn write_manifest(path: &Utf8Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .ok();
    fsx::write_atomic(path, text.as_bytes(), mode).map_err(|e| e.to_string())
}

/// `old` to `new` as a unified diff with three lines of context.
pub fn unified_diff(name: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}
