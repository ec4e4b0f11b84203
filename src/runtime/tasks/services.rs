//! What a worker process shares between its task runs: built once, handed to every handler.
//!
//! In: the compiled program. Out: [`Services`]: the program, the machine's facts, the clock
//! handlers read the time from, and the long-lived resources the pipeline stages hold (the
//! metadata store; detector processes and messengers as those stages land). A resource is
//! opened on first use, so a worker that never needs it never pays for it.

use std::sync::Arc;

use jiff::Timestamp;

use crate::host::Host;
use crate::spec::Program;

/// Where handlers read the time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The system clock.
    System,
    /// Always this instant (tests).
    Fixed(Timestamp),
}

impl Clock {
    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Fixed(t) => *t,
        }
    }
}

/// The services of one worker process.
#[derive(Debug)]
pub struct Services {
    /// The compiled program.
    pub program: Arc<Program>,
    /// This machine.
    pub host: Host,
    /// The clock.
    pub clock: Clock,
}

impl Services {
    /// The services of a process running `program`, on this machine's clock.
    pub fn new(program: Arc<Program>) -> Arc<Self> {
        Arc::new(Services {
            program,
            host: Host::detect(),
            clock: Clock::System,
        })
    }
}
