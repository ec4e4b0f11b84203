//! Recording files on disk: moving them from the staging directory into storage, safely.

pub mod moving;
