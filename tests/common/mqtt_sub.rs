//! A real MQTT subscriber for tests: `mosquitto_sub` (package `mosquitto-clients`, which
//! `scripts/test` installs) subscribed at QoS 1, collecting what it receives.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running subscriber; stopped when dropped.
pub(crate) struct Subscriber {
    child: Child,
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl Subscriber {
    /// Subscribes to `filter` on the broker at 127.0.0.1:`port` and returns once the broker
    /// has acknowledged the subscription (so nothing published afterwards is missed).
    pub(crate) fn start(port: u16, filter: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-d"])
            .args(["-t", filter, "-F", "@@ %t %p"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub runs (package mosquitto-clients; scripts/test installs it)");
        let stdout = child.stdout.take().expect("piped stdout");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        {
            let received = Arc::clone(&received);
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if let Some(rest) = line.strip_prefix("@@ ") {
                        let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
                        received
                            .lock()
                            .expect("lock")
                            .push((topic.to_owned(), payload.to_owned()));
                    } else if line.contains("SUBACK") {
                        let _ = ready_tx.send(());
                    }
                }
            });
        }
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("mosquitto_sub got no SUBACK from 127.0.0.1:{port}"));
        Subscriber { child, received }
    }

    /// Everything received so far: (topic, payload), in arrival order.
    pub(crate) fn received(&self) -> Vec<(String, String)> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until `done` holds for what was received; panics with it after `within`.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        within: Duration,
        done: impl Fn(&[(String, String)]) -> bool,
    ) -> Vec<(String, String)> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received {} messages: {:#?}",
                got.len(),
                got.iter().map(|(t, _)| t).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
