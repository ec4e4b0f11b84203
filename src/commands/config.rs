//! `acoupi config show` (being written).
use crate::ExitStatus;
use crate::cli::ConfigCommand;
use camino::Utf8Path;
/// Shows the configuration.
pub fn run(_cmd: &ConfigCommand, _home: Option<&Utf8Path>) -> ExitStatus {
    super::fail("`acoupi config show` is not implemented yet")
}
