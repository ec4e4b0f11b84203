//! `acoupi logs [UNIT] [-f] [-n N]`: the services' last log lines, from the user journal when
//! it has entries for them, else from the rotated files under the home's `log/`.
//!
//! UNIT is a worker name, `beat`, or a unit name; without it, every service. From files, each
//! unit's last N lines are printed under a `==> FILE <==` header (only the lines when one
//! unit is asked for); `-f` then keeps printing what is appended, across rotations, until
//! interrupted. Exit 0; 2 when the unit is unknown, there are no logs, or reading fails.

use std::io::Write;
use std::time::Duration;

use camino::Utf8Path;

use super::{fail, load};
use crate::ExitStatus;
use crate::cli::LogsArgs;
use crate::lifecycle::logs;

/// How often `-f` looks at the files.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Prints the logs.
pub fn run(args: &LogsArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let (home, program) = match load(home_flag) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let units = match logs::resolve(&program, args.unit.as_deref()) {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let journalctl = logs::journalctl();
    if logs::journal_has(&journalctl, &units) {
        return match logs::journal_command(&journalctl, &units, args.lines, args.follow).status() {
            Ok(s) if s.success() => ExitStatus::Success,
            Ok(s) => fail(format!("`journalctl` failed ({s})")),
            Err(e) => fail(format!("cannot run `journalctl`: {e}")),
        };
    }
    // Made before the last lines are read, so that none logged in between is missed.
    let follower = args.follow.then(|| logs::Follower::new(&home, &units));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut found = false;
    for unit in &units {
        let lines = match logs::tail(&home, unit, args.lines) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => return fail(format!("cannot read the log of `{unit}`: {e}")),
        };
        if units.len() > 1 {
            let sep = if found { "\n" } else { "" };
            let _ = writeln!(
                out,
                "{sep}==> {} <==",
                crate::spec::layout::log_file(&home, unit)
            );
        }
        found = true;
        for line in lines {
            if writeln!(out, "{line}").is_err() {
                return ExitStatus::Success;
            }
        }
    }
    let _ = out.flush();
    if !found && !args.follow {
        return fail(format!(
            "no logs of {}: the user journal has no entries for {} and `{}` holds no log file",
            if units.len() == 1 {
                format!("`{}`", units[0])
            } else {
                "any service".to_owned()
            },
            if units.len() == 1 { "it" } else { "them" },
            home.join(crate::spec::layout::LOG_DIR)
        ));
    }
    if let Some(follower) = follower {
        // Ends when stdout closes (or on Ctrl-C, which ends the process).
        if let Err(e) = follower.run(FOLLOW_POLL, &mut out)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return fail(format!("cannot follow the logs: {e}"));
        }
    }
    ExitStatus::Success
}
