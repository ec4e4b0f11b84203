//! Files on the sensor: crash-safe moves and the saving rules.

pub mod moving;
pub mod saving;
