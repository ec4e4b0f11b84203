//! libasound's own error lines, routed into our log instead of stderr.
//!
//! In: a closure that calls into ALSA on the current thread (listing devices, opening one).
//! Out: its result; whatever libasound printed meanwhile (`ALSA lib confmisc.c:855:(parse_card)
//! cannot find card '0'`, eight lines per attempt on a machine with no sound card) is logged at
//! debug level under the `alsa` target, one event per line, instead of going to stderr
//! between our own log lines. Our errors already say what went wrong, in one line.
//!
//! libasound's handler is per thread: the capture thread cpal starts keeps the default one,
//! which only speaks when a running stream fails.

/// Runs `f` with libasound's error output captured, then logs it at debug level.
pub(crate) fn quiet<T>(f: impl FnOnce() -> T) -> T {
    // A fresh buffer each time, so that what is logged is what `f` caused.
    let buffer = alsa::Output::local_error_handler().ok();
    let result = f();
    if let Some(buffer) = buffer {
        let text = buffer.borrow().to_string();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            tracing::debug!(target: "alsa", "{line}");
        }
    }
    result
}
