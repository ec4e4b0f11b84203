//! Task names, defined once: the compiler emits them into `config/program.json`, beat publishes
//! them, and the runtime registers a handler under each.
//!
//! In: nothing. Out: the names, and [`PROGRAM_TASKS`], every task a compiled program can
//! contain (a test checks the built-in registry has a handler for each, or says which
//! pipeline stage is still to come).

/// Records one file (duty cycle) or runs the continuous recorder.
pub const RECORD: &str = "record";
/// Runs the program's detectors on a recording.
pub const DETECT: &str = "detect";
/// Applies the saving rules to staged recordings: keep (move) or delete.
pub const MANAGE_FILES: &str = "manage-files";
/// Sends the outbox's unsent messages.
pub const SEND_MESSAGES: &str = "send-messages";
/// Says the program is alive.
pub const HEARTBEAT: &str = "heartbeat";
/// Summarises recent detections into a message.
pub const SUMMARY: &str = "summary";
/// Does nothing (benchmarks and tests drive the worker with it).
pub const NOOP: &str = "noop";

/// Every task the compiler can put in a program.
pub const PROGRAM_TASKS: [&str; 6] = [
    RECORD,
    DETECT,
    MANAGE_FILES,
    SEND_MESSAGES,
    HEARTBEAT,
    SUMMARY,
];
