//! The command line, as clap derive types. Parsing only; `commands` does the work.

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand, ValueEnum};

use crate::report::Format;

/// acoupi: compile a sensor manifest into a deployable home, and run it.
#[derive(Debug, Parser)]
#[command(name = "acoupi", version, about, long_about = None)]
pub struct Cli {
    /// The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<Utf8PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a manifest and report every problem; needs no hardware, broker or writes.
    Check(CheckArgs),
    /// Compile a manifest into ACOUPI_HOME (atomically; runtime state is kept).
    Build(BuildArgs),
}

/// Diagnostic classes `--deny` can turn into failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Fail on warnings too.
    Warnings,
}

/// `acoupi check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The manifest (KDL).
    pub manifest: Utf8PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Treat these diagnostics as errors.
    #[arg(long, value_enum)]
    pub deny: Vec<Deny>,
}

/// `acoupi build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The manifest (KDL).
    pub manifest: Utf8PathBuf,
    /// Report whether the home is up to date instead of writing (exit 1 when it is not).
    #[arg(long, conflicts_with = "stdout")]
    pub check: bool,
    /// Print the generated tree to stdout instead of writing it.
    #[arg(long)]
    pub stdout: bool,
}
