//! acoupi: a declarative config compiler and a small runtime for autonomous bioacoustic
//! sensors.
//!
//! The compiler pipeline, one module per stage, each depending only on the ones before it:
//!
//! ```text
//! acoupi.kdl --manifest::parse--> Ast --model::validate--> Model --plan::lower--> Plan
//!            --emit::render--> OutputTree --home::write--> ACOUPI_HOME
//! ```
//!
//! `spec` holds the types of `config/program.json`, the one contract between the compiler and
//! the runtime. `diagnostic` holds the manifest error enum every stage reports through.

pub mod audio;
pub mod cli;
pub mod commands;
pub mod compile;
pub mod detect;
pub mod diagnostic;
pub mod emit;
pub mod files;
pub mod fsx;
pub mod home;
pub mod host;
pub mod import;
pub mod lifecycle;
pub mod manifest;
pub mod manpages;
pub mod messaging;
pub mod model;
pub mod models;
pub mod plan;
pub mod report;

pub mod runtime;
pub mod spec;
pub mod store;
pub mod units;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It did what was asked (exit 0).
    Success,
    /// The input has problems: manifest errors, a stale home (exit 1).
    Failure,
    /// It could not run: a missing file, an unwritable directory (exit 2).
    Error,
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(s: ExitStatus) -> Self {
        std::process::ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        })
    }
}

/// Runs a parsed command line.
pub fn run(cli: cli::Cli) -> ExitStatus {
    match &cli.command {
        cli::Command::Check(args) => commands::check::run(args),
        cli::Command::Build(args) => commands::build::run(args, cli.home.as_deref()),
        cli::Command::Worker(args) => commands::worker::run(args, cli.home.as_deref()),
        cli::Command::Beat => commands::beat::run(cli.home.as_deref()),
        cli::Command::Run(args) => commands::run::run(args, cli.home.as_deref()),
        cli::Command::Task(cmd) => commands::task::run(cmd, cli.home.as_deref()),
        cli::Command::Workers(cmd) => commands::workers::run(cmd, cli.home.as_deref()),
        cli::Command::Bench(cmd) => commands::bench::run(cmd, cli.home.as_deref()),
        cli::Command::Devices(args) => commands::devices::run(args),
        cli::Command::Deploy(args) => commands::deploy::run(args, cli.home.as_deref()),
        cli::Command::Status(args) => commands::status::run(args, cli.home.as_deref()),
        cli::Command::Stop(args) => commands::stop::run(args, cli.home.as_deref()),
        cli::Command::Logs(args) => commands::logs::run(args, cli.home.as_deref()),
        cli::Command::Init(args) => commands::init::run(args),
        cli::Command::Config(cmd) => commands::config::run(cmd, cli.home.as_deref()),
        cli::Command::Db(cmd) => commands::db::run(cmd, cli.home.as_deref()),
        cli::Command::Detect(args) => commands::detect::run(args, cli.home.as_deref()),
        cli::Command::Import(args) => commands::import::run(args),
        cli::Command::Completions(args) => commands::completions::run(args),
        cli::Command::Models(cmd) => commands::models::run(cmd),
    }
}
