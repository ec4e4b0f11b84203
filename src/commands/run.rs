//! `acoupi run [MANIFEST]`: the foreground mode. Builds the manifest into the home when one
//! is given, then runs beat and every worker in this process, logging to the terminal, until
//! Ctrl-C (or SIGTERM): in-flight tasks drain, then exit 0. With the in-process broker
//! (`--broker memory` or `broker "memory"`) no RabbitMQ is needed.

use std::sync::Arc;

use camino::Utf8Path;
use tokio_util::sync::CancellationToken;

use super::{fail, load};
use crate::ExitStatus;
use crate::cli::{BuildArgs, MicrophoneOverride, RunArgs};
use crate::runtime::transport::memory::MemoryBroker;
use crate::runtime::worker::Connector;
use crate::runtime::{self as rt, beat, config, tasks::Registry};

/// Runs the program in the foreground.
pub fn run(args: &RunArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    if let Some(manifest) = &args.manifest {
        let build = BuildArgs {
            manifest: manifest.clone(),
            check: false,
            stdout: false,
            // The foreground run is not the deployed units: they are left as they are.
            no_apply: true,
        };
        let status = super::build::run(&build, home_flag);
        if status != ExitStatus::Success {
            return status;
        }
    }
    rt::init_logging();
    let (_home, program) = match load(home_flag) {
        Ok(p) => p,
        Err(s) => return s,
    };
    let program = match args.microphone {
        Some(MicrophoneOverride::Synthetic) => {
            for mic in &program.microphones {
                tracing::info!(microphone = %mic.name, "replaced by a synthetic sweep source");
            }
            Arc::new((*program).clone().with_synthetic_microphones())
        }
        None => program,
    };
    let connector = match args.broker.as_deref() {
        Some("memory") => Connector::Memory(MemoryBroker::default()),
        Some(url) => Connector::Amqp {
            url: url.to_owned(),
            name: format!("acoupi {} run", program.name),
        },
        None => match config::broker_url(&program.broker) {
            Ok(Some(url)) => Connector::Amqp {
                url,
                name: format!("acoupi {} run", program.name),
            },
            Ok(None) => Connector::Memory(MemoryBroker::default()),
            Err(e) => return fail(e),
        },
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let result = rt.block_on(async move {
        let shutdown = CancellationToken::new();
        rt::handle_signals(shutdown.clone());
        let registry = Arc::new(Registry::builtin());
        // One process: one set of services shared by every worker in it.
        let services = rt::tasks::Services::new(Arc::clone(&program));
        for def in &program.workers {
            services.warm_detectors_for(&def.queues);
        }
        let mut all = tokio::task::JoinSet::new();
        for def in program.workers.clone() {
            let (c, v, r, s) = (
                connector.clone(),
                Arc::clone(&services),
                Arc::clone(&registry),
                shutdown.clone(),
            );
            all.spawn(async move {
                rt::serve::serve(c, v, def, r, s, || {}).await;
                Ok(())
            });
        }
        let options = beat::Options {
            state: crate::spec::layout::State(&program.paths.state).beat(),
            time: beat::TimeSource::System,
            fired: None,
        };
        let (c, p, s) = (connector.clone(), Arc::clone(&program), shutdown.clone());
        all.spawn(async move { beat::run(c, p, options, s, || {}).await });
        tracing::info!(program = %program.name, workers = program.workers.len(), "running; Ctrl-C to stop");
        let mut result = Ok(());
        while let Some(joined) = all.join_next().await {
            match joined {
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "beat stopped");
                    shutdown.cancel();
                    result = Err(e.to_string());
                }
                Err(e) => {
                    shutdown.cancel();
                    result = Err(e.to_string());
                }
                Ok(Ok(())) => {}
            }
        }
        services.shutdown().await;
        result
    });
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => fail(e),
    }
}
