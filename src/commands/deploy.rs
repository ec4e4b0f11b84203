//! `acoupi deploy`: install and start the built home's systemd user units.
//!
//! Refuses (exit 1, nothing changed) a home that does not match its `build.lock`, one built by
//! another acoupi, a program on the in-process broker, and a deployment already running.
//! Then links the units into the user unit directory, reloads systemd, enables and starts
//! `acoupi.target`, waits up to `ACOUPI_DEPLOY_SETTLE_SECS` (default 10) seconds for the
//! units to come up, and writes `config/deployment.json`; a failing step undoes the ones
//! before it (exit 1); a unit that failed to start has its last 20 log lines printed after
//! the error. A worker still waiting for its broker is not a failure. With
//! `--sandbox reduced` a drop-in next to each service's link turns off the sandbox options
//! that need namespaces. Finally it says whether lingering is on, without which the units
//! stop at logout.
//!
//! Before any of that the preflight (`lifecycle::preflight`) looks for what would make a unit
//! fail at once; an error refuses the deploy with every problem listed (stderr, exit 1),
//! warnings are printed after the deploy. `--check` runs only the preflight and prints its
//! report to stdout: exit 0 when nothing would fail, 1 otherwise.
//!
//! `--replace-python-acoupi` first stops, disables and sets aside the Python acoupi's units
//! (`lifecycle::python_units`), after showing them and asking (`--yes` does not ask), once the
//! checks above pass; a deploy that then fails puts them back and starts them again.

use camino::Utf8Path;

use crate::ExitStatus;
use crate::cli::DeployArgs;
use crate::home;
use crate::lifecycle::deploy::{DeployOptions, Error, POLL, Target, deploy, precheck, settle_time};
use crate::lifecycle::logs;
use crate::lifecycle::preflight::{self, Check};
use crate::lifecycle::python_units::{self, Replaced};
use crate::lifecycle::sandbox::{self, Profile};
use crate::lifecycle::systemd::Systemctl;
use crate::lifecycle::{refuse, unit_dir};
use crate::runtime::config as runtime_config;

/// Lines of a failed unit's log printed after the error.
const FAILED_UNIT_LINES: usize = 20;

/// When `e` is a unit that failed to start, prints its last log lines (journal, else its log
/// file) to stderr, or says there are none.
fn print_failed_unit_log(home: &Utf8Path, services: &[String], e: &Error) {
    let Error::Step(failure) = e else { return };
    let Some(unit) = logs::failed_unit(services, &failure.cause) else {
        return;
    };
    match logs::last_lines(home, &logs::journalctl(), unit, FAILED_UNIT_LINES) {
        Ok(Some((source, lines))) => {
            eprintln!(
                "last {} log lines of `{unit}` (from {source}):",
                lines.len()
            );
            for line in lines {
                eprintln!("    {line}");
            }
        }
        Ok(None) => eprintln!(
            "no log lines of `{unit}`: the user journal has none and `{}` does not exist",
            crate::spec::layout::log_file(home, unit)
        ),
        Err(err) => eprintln!("cannot read the log of `{unit}`: {err}"),
    }
}

/// When `cause` says a unit failed to start, prints that unit's last log lines.
pub(crate) fn print_unit_log(home: &Utf8Path, cause: &str) {
    let services: Vec<String> = match runtime_config::load_program(home) {
        Ok(p) => crate::lifecycle::deploy::service_units(&p),
        Err(_) => return,
    };
    let e = Error::Step(crate::lifecycle::deploy::StepFailure {
        step: String::new(),
        cause: cause.to_owned(),
        undone: Vec::new(),
        undo_failures: Vec::new(),
    });
    print_failed_unit_log(home, &services, &e);
}

/// Deploys the home.
pub fn run(args: &DeployArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let home = match home::resolve(home_flag) {
        Ok(h) => h,
        Err(e) => return refuse(e),
    };
    if let Err(e) = check_args(args) {
        return refuse(e);
    }
    let program = match runtime_config::load_program(&home) {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let dir = match unit_dir::user_unit_dir() {
        Ok(d) => d,
        Err(e) => return refuse(e),
    };
    let manager = Systemctl::from_env();
    let target = Target {
        home: &home,
        program: &program,
        unit_dir: &dir,
        manager: &manager,
    };
    let preflight_options = preflight::Options::from_env(args.sandbox);
    if args.check {
        let findings = preflight::preflight(&target, &preflight_options);
        print!("{}", preflight::render(&home, &findings));
        return if preflight::has_errors(&findings) {
            ExitStatus::Failure
        } else {
            ExitStatus::Success
        };
    }
    let options = DeployOptions {
        name: args.name.clone(),
        location: args.latitude.zip(args.longitude),
        settle: settle_time(),
        poll: POLL,
        sandbox: args.sandbox,
        preflight: preflight_options,
    };
    let replaced = if args.replace_python_acoupi {
        match replace_python(args.yes, &target, &options) {
            Ok(r) => r,
            Err(status) => return status,
        }
    } else {
        None
    };
    let deployed = match deploy(&target, &options) {
        Ok(d) => d,
        Err(e) => {
            let status = if let Error::Preflight(findings) = &e {
                eprint!("{}", preflight::render(&home, findings));
                refuse(&e)
            } else {
                let status = refuse(&e);
                print_failed_unit_log(&home, &target.services(), &e);
                status
            };
            if let Some(r) = &replaced {
                put_back(&target, r);
            }
            return status;
        }
    };
    let d = &deployed.deployment;
    println!(
        "deployed `{}` from `{home}` (deployment {}, started {})",
        d.name, d.id, d.started_on
    );
    let location = match (d.latitude, d.longitude) {
        (Some(lat), Some(lon)) => format!("{lat}, {lon}"),
        _ => "unknown".to_owned(),
    };
    println!("location: {location}");
    println!(
        "units linked into `{dir}`; `{}` enabled and started",
        crate::plan::TARGET_UNIT
    );
    match deployed.sandbox {
        Profile::Full => println!("sandbox: full"),
        Profile::Reduced => println!(
            "sandbox: reduced (`{}` drop-ins turn off the options that need namespaces)",
            sandbox::DROP_IN
        ),
    }
    for (unit, state) in &deployed.units {
        let note = if state.is_up() {
            "running".to_owned()
        } else {
            format!(
                "{}/{}: still starting (a worker waits until its broker answers; see `acoupi status`)",
                state.active_state, state.sub_state
            )
        };
        println!("  {unit:<40} {note}");
    }
    if !deployed.warnings.iter().any(|f| f.check == Check::Linger) {
        println!("lingering is on for `{}`", deployed.user);
    }
    for f in &deployed.warnings {
        eprintln!("warning: {}; {}", f.message, f.fix);
    }
    ExitStatus::Success
}

/// `--replace-python-acoupi`: finds the Python acoupi's units, refuses (changing nothing) what
/// the deploy would refuse, shows what it will do and asks (unless `yes`), then stops,
/// disables and sets them aside. `None` when there are none.
fn replace_python(
    yes: bool,
    target: &Target<'_>,
    options: &DeployOptions,
) -> Result<Option<Replaced>, ExitStatus> {
    let dir = target.unit_dir;
    let found = python_units::find(dir, target.home, target.manager).map_err(refuse)?;
    if found.is_empty() {
        println!("no units of the Python acoupi in `{dir}`: nothing to replace");
        return Ok(None);
    }
    // What the deploy would refuse is refused before the Python acoupi is touched.
    if let Err(e) = precheck(target, options) {
        if let Error::Preflight(findings) = &e {
            eprint!("{}", preflight::render(target.home, findings));
        }
        return Err(refuse(&e));
    }
    let aside = dir.join(python_units::SET_ASIDE);
    println!(
        "the Python acoupi's units in `{dir}` will be stopped, disabled and moved to `{aside}/`:"
    );
    for f in &found {
        println!("  {:<24} {}", f.unit, f.state.active_state);
    }
    if !yes && !confirm()? {
        return Err(refuse(
            "nothing was changed: the Python acoupi's units are as they were",
        ));
    }
    let replaced = python_units::replace(target.manager, dir, &found).map_err(refuse)?;
    println!(
        "stopped and disabled the Python acoupi ({}); its unit files are in `{aside}/`",
        found
            .iter()
            .map(|f| format!("`{}`", f.unit))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Some(replaced))
}

/// Asks on stderr whether to go on; a closed stdin is a refusal that names `--yes`.
fn confirm() -> Result<bool, ExitStatus> {
    eprint!("stop and disable them, then deploy? [y/N] ");
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) => Err(refuse(
            "no answer (stdin is closed): pass `--yes` to replace the Python acoupi's units without asking; nothing was changed",
        )),
        Ok(_) => Ok(matches!(
            line.trim().to_ascii_lowercase().as_str(),
            "y" | "yes"
        )),
        Err(e) => Err(refuse(format!("cannot read the answer: {e}"))),
    }
}

/// After a failed deploy: the Python acoupi's units back as they were.
fn put_back(target: &Target<'_>, replaced: &Replaced) {
    let failures = python_units::restore(target.manager, target.unit_dir, replaced);
    if failures.is_empty() {
        eprintln!("the Python acoupi's units were put back, enabled and started as before");
    } else {
        eprintln!(
            "error: could not put the Python acoupi's units back: {}",
            failures.join("; ")
        );
    }
}

/// Checks the flags before anything is touched.
fn check_args(args: &DeployArgs) -> Result<(), String> {
    if let Some(name) = &args.name
        && (name.trim().is_empty() || name.chars().any(char::is_control))
    {
        return Err(format!(
            "`--name {}`: a deployment name must be non-empty text on one line",
            name.escape_debug()
        ));
    }
    if let Some(lat) = args.latitude
        && !(-90.0..=90.0).contains(&lat)
    {
        return Err(format!("`--latitude {lat}` is not between -90 and 90"));
    }
    if let Some(lon) = args.longitude
        && !(-180.0..=180.0).contains(&lon)
    {
        return Err(format!("`--longitude {lon}` is not between -180 and 180"));
    }
    Ok(())
}
