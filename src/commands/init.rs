//! `acoupi init` (being written).
use crate::ExitStatus;
use crate::cli::InitArgs;
/// Writes a manifest.
pub fn run(_args: &InitArgs) -> ExitStatus {
    super::fail("`acoupi init` is not implemented yet")
}
