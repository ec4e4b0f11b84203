//! One module per subcommand; each returns an [`ExitStatus`](crate::ExitStatus).

pub mod build;
pub mod check;
