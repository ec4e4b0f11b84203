//! A private systemd user manager for one test: [`UserManager::start`] runs `systemd --user`
//! with its own runtime directory (under `/run`, mode 0700) and its own `XDG_CONFIG_HOME`, in a
//! mount namespace and a cgroup of its own (`private-user-manager.sh` says why each is
//! needed); dropping it stops the manager, kills whatever is left in its cgroup and removes
//! everything it made. Commands given [`UserManager::env`] talk to it with
//! `systemctl --user`, never to the real user's manager, and link units into its unit
//! directory, never the real one.
//!
//! It needs root (to mount and to make cgroups), `unshare` (util-linux) and systemd installed;
//! `scripts/test` installs systemd. Without them [`UserManager::start`] says what is missing.

use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

const SCRIPT: &str = include_str!("private-user-manager.sh");

/// How long the manager may take to answer on its private socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to stop its units and exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the machine offers the manager's units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Host {
    /// Whether units may create user namespaces (`PrivateUsers=`).
    pub(crate) user_namespaces: bool,
    /// Whether the nodes sandboxed units are masked with exist (as where systemd is PID 1).
    pub(crate) inaccessible_nodes: bool,
}

impl Host {
    /// This machine as it is, made ready for the manager.
    pub(crate) const FULL: Host = Host {
        user_namespaces: true,
        inaccessible_nodes: true,
    };
}

/// A running private user manager; stopped when dropped.
pub(crate) struct UserManager {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    cgroup: String,
    child: Option<Child>,
}

impl UserManager {
    /// Starts the manager and waits until it answers `systemctl --user`; `Err` says why it
    /// could not, and how to fix that.
    pub(crate) fn start() -> Result<UserManager, String> {
        UserManager::start_on(Host::FULL)
    }

    /// [`UserManager::start`] on a machine that offers `host`.
    pub(crate) fn start_on(host: Host) -> Result<UserManager, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the private user manager needs root, to give it a mount namespace and a cgroup of its own: run the tests as root (CI does)".to_owned());
        }
        let dir = tempfile::Builder::new()
            .prefix("acoupi-test-")
            .tempdir_in("/run")
            .map_err(|e| format!("cannot make a runtime directory under /run: {e}"))?;
        let root = Utf8PathBuf::from_path_buf(dir.path().to_owned())
            .map_err(|p| format!("`{}` is not UTF-8", p.display()))?;
        let cgroup = root.file_name().expect("a temp dir has a name").to_owned();
        let mut manager = UserManager {
            _dir: dir,
            root,
            cgroup,
            child: None,
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(manager.runtime_dir())
            .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(manager.unit_dir()).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(manager.log_path()).map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut unshare = Command::new("unshare");
        if !host.user_namespaces {
            unshare.args(["--user", "--map-root-user"]);
        }
        unshare.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            SCRIPT,
        ]);
        unshare.args(["private-user-manager", &manager.cgroup]);
        if !host.user_namespaces {
            unshare.arg("no-user-namespaces");
        }
        if !host.inaccessible_nodes {
            unshare.arg("no-inaccessible-nodes");
        }
        let child = unshare
            .env("XDG_RUNTIME_DIR", manager.runtime_dir())
            .env("XDG_CONFIG_HOME", manager.config_home())
            .env("XDG_DATA_HOME", manager.root.join("data"))
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!("cannot run `unshare` (util-linux): {e}; install it with `apt-get install util-linux`")
            })?;
        manager.child = Some(child);
        manager.wait_until_up()?;
        Ok(manager)
    }

    fn wait_until_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("started above");
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "`systemd --user` exited at once ({status}); it printed:\n{}\nsystemd must be installed (`apt-get install systemd`; scripts/test does it)",
                    self.log()
                ));
            }
            let out = self.systemctl(&["show", "-p", "SystemState", "--value"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && matches!(state.as_str(), "running" | "degraded") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "`systemd --user` did not answer within {START_TIMEOUT:?} (state `{state}`, {}); it printed:\n{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The manager's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Its `XDG_RUNTIME_DIR`.
    pub(crate) fn runtime_dir(&self) -> Utf8PathBuf {
        self.root.join("runtime")
    }

    /// Its `XDG_CONFIG_HOME`.
    pub(crate) fn config_home(&self) -> Utf8PathBuf {
        self.root.join("config")
    }

    /// Its unit directory, where `acoupi deploy` links units.
    pub(crate) fn unit_dir(&self) -> Utf8PathBuf {
        self.config_home().join("systemd/user")
    }

    fn log_path(&self) -> Utf8PathBuf {
        self.root.join("manager.log")
    }

    /// What the manager and its units printed so far (its last 60 lines).
    pub(crate) fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Points `cmd` at this manager: its runtime directory and its unit directory.
    pub(crate) fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("XDG_CONFIG_HOME", self.config_home())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
    }

    /// `systemctl --user ARGS…` against this manager.
    pub(crate) fn systemctl(&self, args: &[&str]) -> Output {
        self.env(&mut Command::new("systemctl"))
            .arg("--user")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("systemctl runs")
    }

    /// One property of one unit (`systemctl --user show -p NAME --value UNIT`).
    pub(crate) fn property(&self, unit: &str, name: &str) -> String {
        let out = self.systemctl(&["show", "-p", name, "--value", unit]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `systemctl --user status` of `units` and the manager's log, to explain a failure.
    pub(crate) fn diagnose(&self, units: &[String]) -> String {
        let mut args = vec!["status", "--no-pager", "--lines=0", "--full"];
        args.extend(units.iter().map(String::as_str));
        let status = self.systemctl(&args);
        format!(
            "systemctl --user status:\n{}\nmanager log:\n{}",
            String::from_utf8_lossy(&status.stdout),
            self.log()
        )
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: the manager stops its units (workers drain) and exits.
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        remove_cgroup(&self.cgroup);
        // `_dir` (the runtime and unit directories) is removed after this.
    }
}

/// Kills whatever still runs in the cgroup `name` (in every hierarchy) and removes it.
fn remove_cgroup(name: &str) {
    let base = Path::new("/sys/fs/cgroup");
    let mut tops = vec![base.join(name)];
    if let Ok(entries) = std::fs::read_dir(base) {
        tops.extend(entries.flatten().map(|e| e.path().join(name)));
    }
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while top.exists() && Instant::now() < deadline {
            let groups = depth_first(&top);
            for group in &groups {
                let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse().ok()) {
                    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
            }
            for group in &groups {
                let _ = std::fs::remove_dir(group);
            }
            if top.exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `dir` and every directory below it, children before their parents.
fn depth_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(depth_first(&e.path()));
            }
        }
    }
    out.push(dir.to_owned());
    out
}
