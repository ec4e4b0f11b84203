//! `acoupi build MANIFEST [--home DIR] [--check | --stdout]`: compile into ACOUPI_HOME.

use std::io::Write;

use camino::Utf8PathBuf;

use crate::cli::BuildArgs;
use crate::compile::{self, BuildError};
use crate::lifecycle::{
    self,
    apply::{self, Apply, Outcome},
    deploy::{POLL, settle_time},
    systemd::Systemctl,
    unit_dir,
};
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
    write_and_apply(&built.tree, &home, &source.name, !args.no_apply)
}

/// Writes `tree` into `home`; on a deployed home, and when `apply`, restarts the units whose
/// files or spec changed (`lifecycle::apply`), going back to the previous build when one of
/// them does not become ready. Exit 0 when built (and applied), 1 when rolled back, 2 when
/// the home could not be written.
pub(crate) fn write_and_apply(
    tree: &crate::emit::OutputTree,
    home: &camino::Utf8Path,
    name: &str,
    apply: bool,
) -> ExitStatus {
    let written = match home::write(tree, home) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: could not write the home: {e}");
            return ExitStatus::Error;
        }
    };
    let verb = if written.replaced { "rebuilt" } else { "built" };
    eprintln!("{verb} `{home}` from `{name}` ({} files)", written.files);
    // Without a unit directory nothing can be deployed from this home.
    let Ok(unit_dir) = unit_dir::user_unit_dir() else {
        return ExitStatus::Success;
    };
    if !lifecycle::apply::is_deployed(home, &unit_dir) {
        return ExitStatus::Success;
    }
    let manager = Systemctl::from_env();
    let target = Apply {
        home,
        unit_dir: &unit_dir,
        manager: &manager,
        settle: settle_time(),
        poll: POLL,
    };
    match lifecycle::apply::apply(&target, written.previous.as_deref(), &written.build, apply) {
        Ok(Outcome::NotDeployed) => ExitStatus::Success,
        Ok(Outcome::UpToDate) => {
            eprintln!("the running units already match this build: nothing to restart");
            ExitStatus::Success
        }
        Ok(Outcome::Left { changes }) => {
            let mut left = changes.units();
            left.extend(changes.added.iter().cloned());
            left.extend(changes.removed.iter().cloned());
            eprintln!(
                "`{home}` is deployed and these units still run the previous build (`--no-apply`): {}; apply it with `systemctl --user daemon-reload && systemctl --user restart acoupi.target`; `acoupi status` shows which differ",
                left.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ExitStatus::Success
        }
        Ok(Outcome::Applied { changes, .. }) => {
            for unit in &changes.removed {
                eprintln!("stopped `{unit}`: the build no longer has it");
            }
            for (unit, why) in &changes.restart {
                eprintln!("restarted `{unit}`: {why}");
            }
            for unit in &changes.added {
                eprintln!("started `{unit}`: new in this build");
            }
            if changes.restart.is_empty() && changes.added.is_empty() && changes.removed.is_empty()
            {
                eprintln!("reloaded the unit files: no unit needed a restart");
            }
            ExitStatus::Success
        }
        Err(e @ apply::Error::RolledBack(_)) => {
            eprintln!("error: {e}");
            if let apply::Error::RolledBack(r) = &e {
                super::deploy::print_unit_log(home, &r.cause);
            }
            ExitStatus::Failure
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitStatus::Error
        }
    }
}
