//! One module per subcommand; each returns an [`ExitStatus`](crate::ExitStatus).

pub mod beat;
pub mod bench;
pub mod bench_detect;
pub mod build;
pub mod check;
pub mod completions;
pub mod config;
pub mod config_edit;
pub mod db;
pub mod deploy;
pub mod detect;
pub mod devices;
pub mod import;
pub mod init;
pub mod logs;
pub mod models;
pub mod run;
pub mod status;
pub mod stop;
pub mod task;
pub mod worker;
pub mod workers;

use std::sync::Arc;

use camino::Utf8Path;

use crate::runtime::{config as runtime_config, worker::Connector};
use crate::spec::Program;
use crate::{ExitStatus, home};

/// Prints `error: …` (and logs it, for a service logging to a file) and returns
/// [`ExitStatus::Error`].
pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitStatus {
    eprintln!("error: {msg}");
    if crate::runtime::logs_to_file() {
        tracing::error!("{msg}");
    }
    ExitStatus::Error
}

/// The home and its compiled program.
pub(crate) fn load(
    home_flag: Option<&Utf8Path>,
) -> Result<(camino::Utf8PathBuf, Arc<Program>), ExitStatus> {
    let home = home::resolve(home_flag).map_err(fail)?;
    let program = runtime_config::load_program(&home).map_err(fail)?;
    Ok((home, Arc::new(program)))
}

/// [`load`] for the service `unit`, recording which build the program was read from
/// (`lifecycle::running`), so that `acoupi status` can tell when it is not the built one.
pub(crate) fn load_service(
    home_flag: Option<&Utf8Path>,
    unit: &str,
) -> Result<(camino::Utf8PathBuf, Arc<Program>), ExitStatus> {
    let home = home::resolve(home_flag).map_err(fail)?;
    let before = home::current_build(&home);
    let loaded = load(Some(&home))?;
    // A build switched in while the program was read leaves the record unknown.
    match before {
        Some(build) if home::current_build(&home).as_ref() == Some(&build) => {
            if let Err(e) = crate::lifecycle::running::record(&home, unit, &build) {
                tracing::warn!(error = %e, "cannot record which build this service runs");
            }
        }
        _ => {
            let _ = std::fs::remove_file(crate::lifecycle::running::path(&home, unit));
        }
    }
    Ok(loaded)
}

/// How to reach the program's broker over AMQP; the in-process broker is refused with a hint,
/// since it only exists inside one `acoupi run`.
pub(crate) fn amqp_connector(program: &Program, role: &str) -> Result<Connector, ExitStatus> {
    match runtime_config::broker_url(&program.broker).map_err(fail)? {
        Some(url) => Ok(Connector::Amqp {
            url,
            name: format!("acoupi {} {role}", program.name),
        }),
        None => Err(fail(format!(
            "program `{}` uses the in-process broker, which only exists inside `acoupi run`; run it with `acoupi run`",
            program.name
        ))),
    }
}

/// A current-thread tokio runtime (workers and beat are I/O-bound and small).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, ExitStatus> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the async runtime: {e}")))
}
