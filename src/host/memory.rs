//! A long-running service's heap, kept small: on glibc, one malloc arena for the whole
//! process, and memory freed by a task handed back to the kernel once the task is done.
//!
//! Why: glibc gives each thread that allocates an arena of its own (up to eight per core), so
//! every blocking thread a worker's tasks run on (recording, the store, file moves) kept its
//! own arena with whatever its busiest task took, and free memory stays resident until
//! something asks for it to be returned. An idle worker held 0.25 MB more that way
//! (`scripts/bench-worker-rss`). Neither changes what the program computes; on other C
//! libraries both are no-ops.

/// Called before the service starts any thread: every thread allocates from one arena.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::one_arena();
}

/// Hands the free pages of every arena back to the kernel (glibc's `malloc_trim`): called
/// when a worker has no task running. It takes well under a millisecond for a worker's heap.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc::give_back();
}

/// The two calls into glibc's allocator, the crate's only `unsafe` code.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod glibc {
    pub(super) fn one_arena() {
        // SAFETY: mallopt only sets an allocator parameter; it takes the allocator's own lock
        // and has no memory-safety preconditions. It returns 0 when the value is refused, in
        // which case glibc's default stays (more memory, same behaviour).
        let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }

    pub(super) fn give_back() {
        // SAFETY: malloc_trim takes each arena's lock and releases only free pages; it has
        // no preconditions and may run beside other threads that allocate.
        let _ = unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_back_leaves_live_allocations_intact() {
        one_arena();
        let live: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 4096 + i]).collect();
        let freed: Vec<Vec<u8>> = (0..64).map(|_| vec![7u8; 64 * 1024]).collect();
        drop(freed);
        give_back();
        for (i, v) in live.iter().enumerate() {
            assert_eq!(v.len(), 4096 + i);
            assert!(v.iter().all(|b| *b == i as u8));
        }
    }
}
