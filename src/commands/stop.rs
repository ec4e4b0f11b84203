//! `acoupi stop` (being written).
use crate::ExitStatus;
use crate::cli::StopArgs;
use camino::Utf8Path;
/// Stops.
pub fn run(_args: &StopArgs, _home: Option<&Utf8Path>) -> ExitStatus {
    super::fail("`acoupi stop` is not implemented yet")
}
