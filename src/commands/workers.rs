//! `acoupi workers purge`: delete the queued tasks of this program's queues.

use camino::Utf8Path;

use super::{amqp_connector, fail, load, runtime};
use crate::ExitStatus;
use crate::cli::WorkersCommand;
use crate::runtime::broker::Broker;

/// Runs a `workers` subcommand.
pub fn run(cmd: &WorkersCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    if !matches!(cmd, WorkersCommand::Purge) {
        return super::fail("`acoupi workers start|stop|restart` is not implemented yet");
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
