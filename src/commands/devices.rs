//! `acoupi devices` (being written).
use crate::ExitStatus;
use crate::cli::DevicesArgs;
/// Lists input devices.
pub fn run(_args: &DevicesArgs) -> ExitStatus {
    super::fail("`acoupi devices` is not implemented yet")
}
