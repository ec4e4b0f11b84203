//! `acoupi worker NAME`: consume the worker's queues until SIGTERM/SIGINT.

use std::sync::Arc;

use camino::Utf8Path;
use tokio_util::sync::CancellationToken;

use super::{amqp_connector, fail, load_service, runtime};
use crate::ExitStatus;
use crate::cli::WorkerArgs;
use crate::runtime::{self as rt, tasks::Registry};

/// Runs the worker; exit 0 after a clean, drained shutdown.
pub fn run(args: &WorkerArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    crate::host::memory::one_arena();
    rt::init_service_logging(home_flag, &crate::spec::layout::worker_unit(&args.name));
    let unit = crate::spec::layout::worker_unit(&args.name);
    let (_home, program) = match load_service(home_flag, &unit) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let Some(def) = program.worker(&args.name).cloned() else {
        let names: Vec<&str> = program.workers.iter().map(|w| w.name.as_str()).collect();
        return fail(format!(
            "no worker named `{}`; this program has: {}",
            args.name,
            names.join(", ")
        ));
    };
    let connector = match amqp_connector(&program, &format!("worker {}", def.name)) {
        Ok(c) => c,
        Err(s) => return s,
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        rt::handle_signals(shutdown.clone());
        let name = def.name.clone();
        let services = rt::tasks::Services::deployed(program);
        services.warm_detectors_for(&def.queues);
        let registry = Arc::new(Registry::builtin());
        rt::serve::serve(
            connector,
            Arc::clone(&services),
            def,
            registry,
            shutdown,
            move || rt::notify_ready(&format!("worker {name} consuming")),
        )
        .await;
        rt::notify_stopping();
        services.shutdown().await;
    });
    ExitStatus::Success
}
