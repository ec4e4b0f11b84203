//! `acoupi build MANIFEST [--home DIR] [--check | --stdout]`: compile into ACOUPI_HOME.

use std::io::Write;

use camino::Utf8PathBuf;

use crate::cli::BuildArgs;
use crate::compile::{self, BuildError};
use crate::plan::BuildContext;
use crate::report::{self, Style};
use crate::{ExitStatus, home};

/// The absolute path of the running acoupi binary, which the launcher will exec.
fn current_exe() -> Result<Utf8PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the acoupi binary: {e}"))?;
    Utf8PathBuf::from_path_buf(exe)
        .map_err(|p| format!("the acoupi binary's path `{}` is not UTF-8", p.display()))
}

/// Runs the build.
pub fn run(args: &BuildArgs, home_flag: Option<&camino::Utf8Path>) -> ExitStatus {
    let fail = |msg: String| {
        eprintln!("error: {msg}");
        ExitStatus::Error
    };
    let source = match compile::read_source(&args.manifest) {
        Ok(s) => s,
        Err(e) => return fail(e.to_string()),
    };
    let home = match home::resolve(home_flag) {
        Ok(h) => h,
        Err(e) => return fail(e.to_string()),
    };
    let exe = match current_exe() {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let ctx = BuildContext {
        home: home.clone(),
        exe,
        source_path: source.path.clone(),
    };
    let style = Style::detect();
    let built = match compile::build_on_host(&source, &ctx) {
        Ok(b) => b,
        Err(BuildError::Invalid(issues)) => {
            eprint!(
                "{}",
                report::human(&issues, &source.name, &source.text, style)
            );
            eprintln!("{}", report::summary(&issues, &source.name));
            return ExitStatus::Failure;
        }
        Err(e @ BuildError::Emit(_)) => return fail(e.to_string()),
    };
    if !built.warnings.is_empty() {
        eprint!(
            "{}",
            report::human(&built.warnings, &source.name, &source.text, style)
        );
    }
    if args.stdout {
        let _ = write!(std::io::stdout().lock(), "{}", built.tree.to_text());
        return ExitStatus::Success;
    }
    if args.check {
        return match home::compare(&built.tree, &home) {
            Ok(diffs) if diffs.is_empty() => {
                eprintln!("`{home}` is up to date with `{}`", source.name);
                ExitStatus::Success
            }
            Ok(diffs) => {
                eprintln!("`{home}` is out of date with `{}`:", source.name);
                for d in diffs {
                    eprintln!("  {d}");
                }
                ExitStatus::Failure
            }
            Err(e) => fail(e.to_string()),
        };
    }
    match home::write(&built.tree, &home) {
        Ok(w) => {
            let verb = if w.replaced { "rebuilt" } else { "built" };
            eprintln!("{verb} `{home}` from `{}` ({} files)", source.name, w.files);
            ExitStatus::Success
        }
        Err(e) => fail(format!("could not write the home: {e}")),
    }
}
