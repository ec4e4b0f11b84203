//! `acoupi run` as a user runs it in a terminal, for the end-to-end tests: started on a
//! manifest with the in-process broker, logging to a file, stopped with Ctrl-C, or killed with
//! everything it started (its own process group) when the test ends otherwise.

use std::os::unix::process::CommandExt;
use std::process::Child;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

/// A running `acoupi run`; killed with its process group (and reaped) if the test ends without
/// stopping it.
pub(crate) struct Sensor {
    child: Option<Child>,
    log: Utf8PathBuf,
}

impl Sensor {
    /// Builds `manifest` into `home` and runs it, logging at info to `log`.
    pub(crate) fn start(home: &Utf8Path, manifest: &Utf8Path, log: Utf8PathBuf) -> Sensor {
        let file = std::fs::File::create(&log).expect("log file");
        let child = super::acoupi()
            .args(["--home", home.as_str(), "run", manifest.as_str()])
            .args(["--broker", "memory"])
            .env("ACOUPI_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("acoupi starts");
        Sensor {
            child: Some(child),
            log,
        }
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `done` every 100 ms until it holds; panics with `what` and the log after `within`.
    pub(crate) fn wait_until(&self, what: &str, within: Duration, done: impl Fn() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops it as a user would (Ctrl-C) and checks it stopped cleanly.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::INT,
        );
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "acoupi run:\n{}", self.log());
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = rustix::process::kill_process_group(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::KILL,
            );
            let _ = child.wait();
        }
    }
}
