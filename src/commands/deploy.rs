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

use camino::Utf8Path;

use crate::ExitStatus;
use crate::cli::DeployArgs;
use crate::home;
use crate::lifecycle::deploy::{DeployOptions, Error, POLL, Target, deploy, settle_time};
use crate::lifecycle::logs;
use crate::lifecycle::preflight::{self, Check};
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
    let deployed = match deploy(&target, &options) {
        Ok(d) => d,
        Err(Error::Preflight(findings)) => {
            eprint!("{}", preflight::render(&home, &findings));
            return refuse(Error::Preflight(findings));
        }
        Err(e) => {
            let status = refuse(&e);
            print_failed_unit_log(&home, &target.services(), &e);
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
