//! `acoupi status` (being written).
use crate::ExitStatus;
use crate::cli::StatusArgs;
use camino::Utf8Path;
/// Reports status.
pub fn run(_args: &StatusArgs, _home: Option<&Utf8Path>) -> ExitStatus {
    super::fail("`acoupi status` is not implemented yet")
}
