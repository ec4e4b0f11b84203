//! The `acoupi` binary: parse the command line, run, map the outcome to an exit code.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = acoupi::cli::Cli::parse();
    acoupi::run(cli).into()
}
