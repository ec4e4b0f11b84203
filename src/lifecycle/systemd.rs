//! The user's service manager, behind [`ServiceManager`]: the real implementation
//! ([`Systemctl`]) runs `systemctl --user …` and `loginctl …`.
//!
//! In: unit names. Out: jobs enqueued or finished, unit states, the user's linger setting.
//! The programs are `systemctl` and `loginctl` on `PATH`, or the paths in `ACOUPI_SYSTEMCTL`
//! and `ACOUPI_LOGINCTL` (tests point them at recording stubs, since there is no user
//! systemd where they run). Every failure names the command that failed and what it
//! printed.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::Command;

/// A `systemctl` or `loginctl` command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The program could not be started at all.
    #[error("cannot run `{program}`: {reason} (set `{variable}` to its path)")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        reason: String,
        /// The environment variable that overrides the program.
        variable: &'static str,
    },
    /// The program ran and failed.
    #[error("`{command}` failed: {message}{hint}")]
    Failed {
        /// The command line, shell-quoted.
        command: String,
        /// Its last line of stderr, or its exit status.
        message: String,
        /// A hint when the user manager is not reachable, else empty.
        hint: String,
    },
}

/// Result of a service manager operation.
pub type Result<T> = std::result::Result<T, Error>;

/// What `systemctl --user show` says about one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct UnitState {
    /// `LoadState` (`loaded`, `not-found`, …).
    pub load_state: String,
    /// `ActiveState` (`active`, `activating`, `inactive`, `failed`, …).
    pub active_state: String,
    /// `SubState` (`running`, `start`, `auto-restart`, `dead`, …).
    pub sub_state: String,
    /// `Result` of the last run (`success`, `exit-code`, `watchdog`, …).
    pub result: String,
    /// `NRestarts`: automatic restarts since the unit was last started by hand.
    pub n_restarts: Option<u32>,
    /// `Job`: the id of the job queued or running on the unit, empty when there is none.
    pub job: String,
    /// `ExecMainStatus` when the main process last exited with a non-zero status
    /// (`ExecMainCode` 1); systemd's own statuses, such as 226/NAMESPACE, say which step of
    /// setting up the process failed.
    pub exit_status: Option<i32>,
}

impl UnitState {
    /// Whether the unit is up: `active` (a service also `running`).
    pub fn is_up(&self) -> bool {
        self.active_state == "active" && (self.sub_state == "running" || self.sub_state == "active")
    }

    /// Whether the unit is being started or stopped, or is active in any way.
    pub fn is_engaged(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading" | "deactivating"
        )
    }

    /// Whether starting the unit failed: no job is pending on it, and it waits to be
    /// restarted after a failure, or it failed (or stopped with an error). A unit whose start
    /// job has not run yet still shows its previous state, which is not counted: a rollback
    /// restarts units the failed build left waiting in `auto-restart`, and on a busy machine
    /// the first look can come before the restart job runs.
    pub fn start_failed(&self) -> bool {
        let bad_result = !self.result.is_empty() && self.result != "success";
        self.job.is_empty()
            && (self.sub_state == "auto-restart"
                || self.active_state == "failed"
                || (self.active_state == "inactive" && bad_result))
    }
}

/// The operations acoupi needs from the user's service manager.
pub trait ServiceManager {
    /// `daemon-reload`: read the unit files again.
    fn daemon_reload(&self) -> Result<()>;
    /// `enable UNIT`.
    fn enable(&self, unit: &str) -> Result<()>;
    /// `disable UNIT`.
    fn disable(&self, unit: &str) -> Result<()>;
    /// `start UNITS…`; with `wait` false, only enqueues the jobs (`--no-block`).
    fn start(&self, units: &[String], wait: bool) -> Result<()>;
    /// `stop UNITS…`, waiting until they stopped (workers drain first).
    fn stop(&self, units: &[String]) -> Result<()>;
    /// `restart UNITS…`; with `wait` false, only enqueues the jobs (`--no-block`).
    fn restart(&self, units: &[String], wait: bool) -> Result<()>;
    /// `show -p LoadState,ActiveState,SubState,Result,NRestarts,Job,ExecMainCode,ExecMainStatus UNIT`.
    fn show(&self, unit: &str) -> Result<UnitState>;
    /// Whether lingering is on for `user` (`loginctl show-user USER -p Linger`).
    fn linger(&self, user: &str) -> Result<bool>;
}

/// The real service manager: `systemctl --user` and `loginctl`.
#[derive(Debug, Clone)]
pub struct Systemctl {
    systemctl: OsString,
    loginctl: OsString,
}

impl Systemctl {
    /// `systemctl` and `loginctl` from `ACOUPI_SYSTEMCTL` / `ACOUPI_LOGINCTL`, else `PATH`.
    pub fn from_env() -> Self {
        let var = |k: &str, default: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.into())
        };
        Self {
            systemctl: var("ACOUPI_SYSTEMCTL", "systemctl"),
            loginctl: var("ACOUPI_LOGINCTL", "loginctl"),
        }
    }

    fn systemctl(&self, args: &[&str]) -> Result<String> {
        let mut full = vec!["--user"];
        full.extend_from_slice(args);
        run(&self.systemctl, "systemctl", "ACOUPI_SYSTEMCTL", &full)
    }
}

/// Runs `program args…` and returns its stdout, or the error naming the command.
fn run(program: &OsString, display: &str, variable: &'static str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Spawn {
            program: program.to_string_lossy().into_owned(),
            reason: e.to_string(),
            variable,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let message = stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_owned(),
        });
    let unreachable = stderr.contains("Failed to connect to bus")
        || stderr.contains("XDG_RUNTIME_DIR")
        || stderr.contains("not been booted with systemd");
    let hint = if unreachable && display == "systemctl" {
        " (is the user's systemd running? it starts when the user logs in, or at boot with lingering)"
            .to_owned()
    } else {
        String::new()
    };
    let mut words = vec![display.to_owned()];
    words.extend(args.iter().map(|a| (*a).to_owned()));
    Err(Error::Failed {
        command: shell_words(&words),
        message,
        hint,
    })
}

/// The words joined as a shell command line, quoted where needed.
fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            shlex::try_quote(w)
                .map(|q| q.into_owned())
                .unwrap_or_else(|_| w.escape_debug().to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `KEY=VALUE` lines (the output of `systemctl show` and `loginctl show-user`).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

impl ServiceManager for Systemctl {
    fn daemon_reload(&self) -> Result<()> {
        self.systemctl(&["daemon-reload"]).map(drop)
    }

    fn enable(&self, unit: &str) -> Result<()> {
        self.systemctl(&["enable", unit]).map(drop)
    }

    fn disable(&self, unit: &str) -> Result<()> {
        self.systemctl(&["disable", unit]).map(drop)
    }

    fn start(&self, units: &[String], wait: bool) -> Result<()> {
        let mut args = vec!["start"];
        if !wait {
            args.push("--no-block");
        }
        args.extend(units.iter().map(String::as_str));
        self.systemctl(&args).map(drop)
    }

    fn stop(&self, units: &[String]) -> Result<()> {
        let mut args = vec!["stop"];
        args.extend(units.iter().map(String::as_str));
        self.systemctl(&args).map(drop)
    }

    fn restart(&self, units: &[String], wait: bool) -> Result<()> {
        let mut args = vec!["restart"];
        if !wait {
            args.push("--no-block");
        }
        args.extend(units.iter().map(String::as_str));
        self.systemctl(&args).map(drop)
    }

    fn show(&self, unit: &str) -> Result<UnitState> {
        let text = self.systemctl(&[
            "show",
            "-p",
            "LoadState,ActiveState,SubState,Result,NRestarts,Job,ExecMainCode,ExecMainStatus",
            unit,
        ])?;
        let mut p = parse_properties(&text);
        let mut take = |k: &str| p.remove(k).unwrap_or_default();
        // ExecMainCode is the si_code of the exit: 1 (CLD_EXITED) for an exit status.
        let exited = take("ExecMainCode") == "1";
        let exit_status = take("ExecMainStatus")
            .parse()
            .ok()
            .filter(|s| exited && *s != 0);
        Ok(UnitState {
            exit_status,
            load_state: take("LoadState"),
            active_state: take("ActiveState"),
            sub_state: take("SubState"),
            result: take("Result"),
            n_restarts: take("NRestarts").parse().ok(),
            job: take("Job"),
        })
    }

    fn linger(&self, user: &str) -> Result<bool> {
        let text = run(
            &self.loginctl,
            "loginctl",
            "ACOUPI_LOGINCTL",
            &["show-user", user, "-p", "Linger"],
        )?;
        Ok(parse_properties(&text)
            .get("Linger")
            .is_some_and(|v| v == "yes"))
    }
}

/// The user whose service manager this is: `$USER`, else `$LOGNAME`, else the numeric uid
/// (which `loginctl` also accepts).
pub fn current_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Some(v) = std::env::var_os(var).and_then(|v| v.into_string().ok())
            && !v.is_empty()
        {
            return v;
        }
    }
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid().to_string())
        .unwrap_or_else(|_| "0".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_parse_and_states_classify() {
        let p = parse_properties(
            "ActiveState=active\nSubState=running\nResult=success\nNRestarts=0\n\nX",
        );
        assert_eq!(p.get("SubState").map(String::as_str), Some("running"));
        let up = UnitState {
            load_state: "loaded".into(),
            active_state: "active".into(),
            sub_state: "running".into(),
            result: "success".into(),
            n_restarts: Some(0),
            job: String::new(),
            exit_status: None,
        };
        assert!(up.is_up() && up.is_engaged() && !up.start_failed());
        let restarting = UnitState {
            active_state: "activating".into(),
            sub_state: "auto-restart".into(),
            result: "exit-code".into(),
            n_restarts: Some(2),
            ..up.clone()
        };
        assert!(!restarting.is_up() && restarting.is_engaged() && restarting.start_failed());
        // Waiting to restart, with a restart job queued (a rollback's): not (yet) a failure.
        let restarted = UnitState {
            job: "11".into(),
            ..restarting.clone()
        };
        assert!(!restarted.start_failed());
        // Failed before, with the new start job still queued: not (yet) a failure.
        let queued = UnitState {
            active_state: "failed".into(),
            sub_state: "failed".into(),
            result: "exit-code".into(),
            job: "12".into(),
            ..up.clone()
        };
        assert!(!queued.start_failed());
        assert!(
            UnitState {
                job: String::new(),
                ..queued
            }
            .start_failed()
        );
    }

    #[test]
    fn a_missing_program_names_the_variable() {
        let s = Systemctl {
            systemctl: "/nonexistent/acoupi-test-systemctl".into(),
            loginctl: "/nonexistent/acoupi-test-loginctl".into(),
        };
        let e = s.daemon_reload().expect_err("no such program");
        assert!(e.to_string().contains("`ACOUPI_SYSTEMCTL`"), "{e}");
        let e = s.linger("pi").expect_err("no such program");
        assert!(e.to_string().contains("`ACOUPI_LOGINCTL`"), "{e}");
    }

    #[test]
    fn a_failing_command_reports_its_last_stderr_line() {
        let s = Systemctl {
            systemctl: "sh".into(),
            loginctl: "sh".into(),
        };
        // `sh --user …` fails: whatever sh prints is the message, the command is named.
        let e = s.enable("acoupi.target").expect_err("sh refuses --user");
        let text = e.to_string();
        assert!(
            text.starts_with("`systemctl --user enable acoupi.target` failed: "),
            "{text}"
        );
    }
}
