//! `acoupi deploy` (being written).
use crate::ExitStatus;
use crate::cli::DeployArgs;
use camino::Utf8Path;
/// Deploys.
pub fn run(_args: &DeployArgs, _home: Option<&Utf8Path>) -> ExitStatus {
    super::fail("`acoupi deploy` is not implemented yet")
}
