//! A private Mosquitto broker for tests that need one of their own (an outage, a password):
//! its own config, port and log in a temporary directory, no persistence. The shared broker
//! on 127.0.0.1:1883 is never touched. Dropping the guard stops the broker, also when the
//! test fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

/// A running private Mosquitto.
pub(crate) struct PrivateMosquitto {
    port: u16,
    dir: Utf8PathBuf,
    _tmp: tempfile::TempDir,
    child: Option<Child>,
}

/// A TCP port free on 127.0.0.1 at the time of asking.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl PrivateMosquitto {
    /// Starts a broker listening on 127.0.0.1:`port` (a free port when `None`), anonymous,
    /// or accepting only `credentials` (user, password) when given, and waits until it
    /// accepts connections.
    pub(crate) fn start(port: Option<u16>, credentials: Option<(&str, &str)>) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("acoupi-mosquitto-")
            .tempdir()
            .expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).expect("utf-8 temp dir");
        let port = port.unwrap_or_else(free_port);
        let mut conf = format!("listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\n");
        // Started as root, mosquitto drops to the `mosquitto` user, which cannot read this
        // private directory; as anyone else it stays who it is.
        if rustix::process::geteuid().is_root() {
            conf.push_str("user root\n");
        }
        match credentials {
            None => conf.push_str("allow_anonymous true\n"),
            Some((user, password)) => {
                let file = dir.join("passwords");
                let out = Command::new("mosquitto_passwd")
                    .args(["-b", "-c", file.as_str(), user, password])
                    .output()
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot run `mosquitto_passwd` ({e}): install the `mosquitto` package"
                        )
                    });
                assert!(
                    out.status.success(),
                    "mosquitto_passwd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                conf.push_str(&format!("allow_anonymous false\npassword_file {file}\n"));
            }
        }
        let conf_path = dir.join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("broker config");
        let log = std::fs::File::create(dir.join("mosquitto.log")).expect("broker log");
        let child = Command::new("mosquitto")
            .args(["-c", conf_path.as_str()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start a private Mosquitto ({e}): install the `mosquitto` package")
            });
        let mut broker = PrivateMosquitto {
            port,
            dir,
            _tmp: tmp,
            child: Some(child),
        };
        broker.wait_listening();
        broker
    }

    /// Its port on 127.0.0.1.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Stops the broker (SIGKILL: an abrupt outage) and waits until it is gone.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    pub(crate) fn freeze(&self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// Lets a frozen broker run again (SIGCONT).
    pub(crate) fn thaw(&self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&self, signal: rustix::process::Signal) {
        let child = self.child.as_ref().expect("the broker is running");
        let pid = rustix::process::Pid::from_child(child);
        rustix::process::kill_process(pid, signal).expect("the broker can be signalled");
    }

    /// The broker's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if port_open(self.port) {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "the private Mosquitto on port {} exited ({status}):\n{}",
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the private Mosquitto did not listen on 127.0.0.1:{} within 10 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateMosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The shared Mosquitto of the test machine.
pub(crate) const SHARED_PORT: u16 = 1883;

/// Fails the test with advice when the shared Mosquitto is not running.
pub(crate) fn require_shared() {
    assert!(
        port_open(SHARED_PORT),
        "no Mosquitto on 127.0.0.1:{SHARED_PORT}: start it (`mosquitto -d -c /etc/mosquitto/mosquitto.conf`) or run ./scripts/test, which does"
    );
}

/// A topic no other test or run uses: `acoupi-test/<tag>/<process>-<counter>-<nanos>`.
pub(crate) fn unique_topic(tag: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("acoupi-test/{tag}/{}-{n}-{nanos}", std::process::id())
}

/// A real MQTT subscriber (rumqttc) whose received messages a test reads in arrival order.
/// It runs on a thread of its own, so the code under test cannot starve it; subscribed once
/// [`Subscriber::start`] returns; stops when dropped.
pub(crate) struct Subscriber {
    rx: tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Subscribes to `filter` at QoS 1 on 127.0.0.1:`port` (with `credentials` when given)
    /// and waits for the broker's SUBACK.
    pub(crate) async fn start(port: u16, filter: &str, credentials: Option<(&str, &str)>) -> Self {
        Self::start_at(port, filter, credentials, rumqttc::QoS::AtLeastOnce).await
    }

    /// [`Subscriber::start`] with the subscription's QoS.
    pub(crate) async fn start_at(
        port: u16,
        filter: &str,
        credentials: Option<(&str, &str)>,
        qos: rumqttc::QoS,
    ) -> Self {
        use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
        let id = unique_topic("sub").replace('/', "-");
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(64 * 1024 * 1024, 64 * 1024);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let filter = filter.to_owned();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the subscriber");
            runtime.block_on(async move {
                let (client, mut eventloop) = AsyncClient::new(options, 16);
                if let Err(e) = client.subscribe(&filter, qos).await {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                        Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return;
                        }
                        Err(_) => {
                            let _ = ready_tx.send(Err("no SUBACK in 10 s".into()));
                            return;
                        }
                    }
                }
                let _ = ready_tx.send(Ok(()));
                loop {
                    tokio::select! {
                        _ = &mut stopped => return,
                        event = eventloop.poll() => match event {
                            Ok(Event::Incoming(Packet::Publish(p))) => {
                                if tx.send((p.topic, p.payload.to_vec())).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            // The broker went away.
                            Err(_) => return,
                        },
                    }
                }
            });
        });
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("subscriber on 127.0.0.1:{port}: {e}"),
            Err(_) => panic!("subscriber on 127.0.0.1:{port}: its thread ended"),
        }
        Subscriber {
            rx,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The next `n` messages (topic, payload) in arrival order, or fewer when `within` passes
    /// first.
    pub(crate) async fn take(&mut self, n: usize, within: Duration) -> Vec<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => out.push(m),
                Ok(None) | Err(_) => break,
            }
        }
        out
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
