//! `acoupi workers purge`: delete the queued tasks of this program's queues.
//! `acoupi workers start|stop|restart`: drive the worker units through the user's systemd
//! (`stop` waits while the workers drain; `start` and `restart` enqueue the jobs, since a
//! worker only reports ready once its broker answers, then show the units' states).

use camino::Utf8Path;

use super::{amqp_connector, fail, load, runtime};
use crate::ExitStatus;
use crate::cli::WorkersCommand;
use crate::lifecycle::deploy::{POLL, settle, settle_time};
use crate::lifecycle::refuse;
use crate::lifecycle::systemd::{ServiceManager, Systemctl};
use crate::runtime::transport::Broker;
use crate::spec::layout::worker_unit;

/// Runs a `workers` subcommand.
pub fn run(cmd: &WorkersCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    if !matches!(cmd, WorkersCommand::Purge) {
        return drive(cmd, home_flag, &Systemctl::from_env());
    }
    let (_home, program) = match load(home_flag) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let connector = match amqp_connector(&program, "purge") {
        Ok(c) => c,
        Err(s) => return s,
    };
    let crate::runtime::worker::Connector::Amqp { url, name } = connector else {
        return fail("nothing to purge: the in-process broker keeps no queues between runs");
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    rt.block_on(async move {
        let broker =
            match Broker::connect_amqp(&url, &name, Some(std::time::Duration::from_secs(10))).await
            {
                Ok(b) => b,
                Err(e) => return fail(format!("cannot reach the broker: {e}")),
            };
        let mut total = 0u64;
        for q in &program.queues {
            // Declaring first makes purging a queue that never existed a no-op, not an error
            // that would close the channel.
            let purged = match broker.declare(&q.name).await {
                Ok(()) => broker.purge(&q.name).await,
                Err(e) => Err(e),
            };
            match purged {
                Ok(n) => {
                    println!("{:<20} {n} purged", q.name);
                    total += u64::from(n);
                }
                Err(e) => {
                    broker.close().await;
                    return fail(e);
                }
            }
        }
        println!("{total} tasks purged");
        broker.close().await;
        ExitStatus::Success
    })
}

/// `workers start|stop|restart` on `manager`.
fn drive(
    cmd: &WorkersCommand,
    home_flag: Option<&Utf8Path>,
    manager: &dyn ServiceManager,
) -> ExitStatus {
    let (_home, program) = match load(home_flag) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let units: Vec<String> = program
        .workers
        .iter()
        .map(|w| worker_unit(&w.name))
        .collect();
    let (done, result) = match cmd {
        WorkersCommand::Start => ("started", manager.start(&units, false)),
        WorkersCommand::Stop => ("stopped", manager.stop(&units)),
        WorkersCommand::Restart => ("restarted", manager.restart(&units, false)),
        WorkersCommand::Purge => return fail("`purge` is not a unit action"),
    };
    if let Err(e) = result {
        return refuse(e);
    }
    // Started units may wait for their broker: wait a little, then say where they are.
    let states = if matches!(cmd, WorkersCommand::Stop) {
        units
            .iter()
            .map(|u| manager.show(u).map(|s| (u.clone(), s)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    } else {
        settle(manager, &units, settle_time(), POLL)
    };
    let states = match states {
        Ok(s) => s,
        Err(e) => return refuse(e),
    };
    println!("{done} {} worker units", units.len());
    for (unit, s) in &states {
        println!("  {unit:<40} {}/{}", s.active_state, s.sub_state);
    }
    ExitStatus::Success
}
