//! A private RabbitMQ node for tests that need an outage: its own node name, ports, data and
//! log directories, no plugins. The shared RabbitMQ of the machine is never touched. Dropping
//! the guard stops the node, also when the test fails.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

/// A running private RabbitMQ node.
pub(crate) struct PrivateRabbit {
    /// Its AMQP port on 127.0.0.1.
    pub(crate) port: u16,
    /// Its Erlang node name (`rabbitmqctl -n`).
    pub(crate) node: String,
    dir: Utf8PathBuf,
    _tmp: tempfile::TempDir,
    server: Option<Child>,
}

/// A TCP port free on 127.0.0.1 at the time of asking.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Stops private nodes left behind by test processes that were killed before their guard
/// ran (names end in the test process id; only nodes whose process is gone are stopped).
fn stop_orphans() {
    let Ok(out) = Command::new("epmd").arg("-names").output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line
            .strip_prefix("name ")
            .and_then(|l| l.split_whitespace().next())
        else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("acoupi-")
            .and_then(|n| n.rsplit('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("rabbitmqctl")
                .args(["-n", &format!("{name}@localhost"), "stop"])
                .output();
        }
    }
}

impl PrivateRabbit {
    /// Boots a node and waits until it accepts AMQP connections.
    pub(crate) fn start(tag: &str) -> Self {
        stop_orphans();
        let tmp = tempfile::Builder::new()
            .prefix("acoupi-rabbit-")
            .tempdir()
            .expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).expect("utf-8 temp dir");
        let port = free_port();
        let dist = loop {
            let p = free_port();
            if p != port {
                break p;
            }
        };
        let node = format!("acoupi-{tag}-{}@localhost", std::process::id());
        for sub in ["mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("node directories");
        }
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .expect("node config");
        std::fs::write(dir.join("env.conf"), "ERL_EPMD_ADDRESS=127.0.0.1\n").expect("env file");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        // Started as root, rabbitmq-server runs as the `rabbitmq` user: let it use the dir.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:", dir.as_str()])
            .status();
        let server = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_CONF_ENV_FILE", dir.join("env.conf"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", dir.join("feature_flags"))
            .env("ERL_FLAGS", "-kernel inet_dist_use_interface {127,0,0,1}")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("server.out")).expect("server log"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start a private RabbitMQ node ({e}): install rabbitmq-server and run the tests as root or as the `rabbitmq` user")
            });
        let mut rabbit = PrivateRabbit {
            port,
            node,
            dir,
            _tmp: tmp,
            server: Some(server),
        };
        rabbit.wait_listening(Duration::from_secs(90), "the private RabbitMQ node to boot");
        rabbit
    }

    /// The node's AMQP URL.
    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl -n NODE ARGS…`.
    pub(crate) fn ctl(&self, args: &[&str]) -> Output {
        Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .output()
            .expect("rabbitmqctl runs")
    }

    /// Runs `rabbitmqctl` and returns its stdout, failing the test when it fails.
    pub(crate) fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `stop_app`: the broker goes away (connections closed, listener gone), the Erlang node
    /// stays up.
    pub(crate) fn stop_app(&self) {
        self.ctl_ok(&["stop_app"]);
        assert!(!port_open(self.port), "the AMQP listener is still open");
    }

    /// `start_app`, retried while the old listener socket is still being released; returns
    /// once AMQP connections are accepted.
    pub(crate) fn start_app(&mut self) {
        let start = Instant::now();
        loop {
            let out = self.ctl(&["start_app"]);
            if out.status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "start_app kept failing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = self.ctl(&["stop_app"]);
            std::thread::sleep(Duration::from_millis(500));
        }
        self.wait_listening(Duration::from_secs(60), "the private node to listen again");
    }

    /// `list_queues` with `columns`, as rows of fields, for queues whose name starts with
    /// `prefix`.
    pub(crate) fn queues(&self, prefix: &str, columns: &[&str]) -> Vec<Vec<String>> {
        let mut args = vec!["list_queues", "-q", "--no-table-headers", "name"];
        args.extend_from_slice(columns);
        self.ctl_ok(&args)
            .lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .filter(|f| f.first().is_some_and(|n| n.starts_with(prefix)))
            .collect()
    }

    fn wait_listening(&mut self, limit: Duration, what: &str) {
        let start = Instant::now();
        while !port_open(self.port) {
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                panic!(
                    "the private RabbitMQ node exited ({status}) while waiting for {what}:\n{}",
                    self.server_log()
                );
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = self.ctl(&["stop"]);
        if let Some(mut server) = self.server.take() {
            let start = Instant::now();
            while matches!(server.try_wait(), Ok(None)) {
                if start.elapsed() > Duration::from_secs(20) {
                    let _ = server.kill();
                    let _ = server.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
