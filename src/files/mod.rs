//! Files on the sensor: crash-safe moves of recordings across file systems, and the saving
//! rules that decide which recordings are kept and where.

pub mod moving;
pub mod retention;
pub mod saving;
pub mod space;
