//! `acoupi stop [--purge]`: stop and disable the units (workers drain their in-flight tasks
//! first: `systemctl stop` waits, within each unit's `TimeoutStopSec=`), unlink them, end the
//! deployment (`ended_on`), and with `--purge` delete the tasks still queued.
//!
//! Stopping a home that is not deployed is a one-line error (exit 1). A failing step undoes
//! the ones before it (exit 1). A purge that fails after the stop succeeded is reported with
//! exit 1; the deployment stays stopped.

use camino::Utf8Path;

use crate::ExitStatus;
use crate::cli::StopArgs;
use crate::home;
use crate::lifecycle::deploy::{Target, stop};
use crate::lifecycle::systemd::Systemctl;
use crate::lifecycle::{broker_url, purge_queues, refuse, unit_dir};
use crate::runtime::config as runtime_config;

/// Stops the deployment.
pub fn run(args: &StopArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let home = match home::resolve(home_flag) {
        Ok(h) => h,
        Err(e) => return refuse(e),
    };
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
    let stopped = match stop(&target) {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    if stopped.stopped.is_empty() {
        println!("no unit was loaded: nothing to stop");
    } else {
        println!(
            "stopped and disabled {} units: {}",
            stopped.stopped.len(),
            stopped.stopped.join(", ")
        );
    }
    if !stopped.unlinked.is_empty() {
        println!("unlinked {} units from `{dir}`", stopped.unlinked.len());
    }
    if !stopped.drop_ins.is_empty() {
        println!(
            "removed {} reduced-sandbox drop-ins from `{dir}`",
            stopped.drop_ins.len()
        );
    }
    match &stopped.deployment {
        Some(d) => println!(
            "deployment `{}` ({}) ended {}",
            d.name,
            d.id,
            d.ended_on.as_deref().unwrap_or("")
        ),
        None => println!("no deployment was running"),
    }
    if !args.purge {
        return ExitStatus::Success;
    }
    let queues: Vec<String> = program.queues.iter().map(|q| q.name.clone()).collect();
    let purged = match broker_url(&home, &program) {
        Ok(Some(url)) => purge_queues(&url, &queues),
        Ok(None) => Err("the in-process broker keeps no queues between runs".to_owned()),
        Err(e) => Err(e),
    };
    match purged {
        Ok(counts) => {
            let total: u64 = counts.iter().map(|(_, n)| u64::from(*n)).sum();
            for (q, n) in &counts {
                println!("  {q:<20} {n} purged");
            }
            println!("{total} queued tasks purged");
            ExitStatus::Success
        }
        Err(e) => refuse(format!(
            "the units are stopped, but purging the queues failed: {e}; purge later with `acoupi workers purge`"
        )),
    }
}
