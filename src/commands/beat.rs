//! `acoupi beat`: publish each scheduled task at its wall-clock slot until SIGTERM/SIGINT.

use camino::Utf8Path;
use tokio_util::sync::CancellationToken;

use super::{amqp_connector, fail, load_service, runtime};
use crate::ExitStatus;
use crate::runtime::{self as rt, beat};

/// Runs beat.
pub fn run(home_flag: Option<&Utf8Path>) -> ExitStatus {
    crate::host::memory::one_arena();
    rt::init_service_logging(home_flag, crate::spec::layout::BEAT_UNIT);
    let (_home, program) = match load_service(home_flag, crate::spec::layout::BEAT_UNIT) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let connector = match amqp_connector(&program, "beat") {
        Ok(c) => c,
        Err(s) => return s,
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    let options = beat::Options {
        state: crate::spec::layout::State(&program.paths.state).beat(),
        time: beat::TimeSource::System,
        fired: None,
    };
    let result = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        rt::handle_signals(shutdown.clone());
        let r = beat::run(connector, program, options, shutdown, || {
            rt::notify_ready("beat scheduling")
        })
        .await;
        rt::notify_stopping();
        r
    });
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => fail(e),
    }
}
