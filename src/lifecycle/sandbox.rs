//! The sandbox the units run in: the full one the home's units declare, or the reduced one
//! for machines that cannot give them namespaces, and what to say when systemd cannot set a
//! unit's sandbox up.
//!
//! In: the `--sandbox` choice, or the exit status of a unit that failed to start. Out: a
//! drop-in (`<unit>.d/acoupi-sandbox.conf`, from `templates/units/sandbox-reduced.conf`) next
//! to each service's link in the user unit directory, written and removed exactly; or a
//! one-line explanation of the failure and its remedy.

use camino::{Utf8Path, Utf8PathBuf};

use super::systemd::UnitState;
use super::unit_dir::Error;

/// Which sandbox the units run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// The units as built: file system, user, device and kernel isolation through namespaces,
    /// and every other restriction.
    #[default]
    Full,
    /// Without the options that need namespaces (for containers and kernels without user
    /// namespaces); the system call, capability and address family restrictions stay.
    Reduced,
}

impl Profile {
    /// How it reads in text.
    pub fn text(self) -> &'static str {
        match self {
            Profile::Full => "full",
            Profile::Reduced => "reduced",
        }
    }
}

/// The file name of the drop-in, in each service's `<unit>.d/`.
pub const DROP_IN: &str = "acoupi-sandbox.conf";

/// The drop-in that reduces the sandbox.
pub const REDUCED: &str = include_str!("../../templates/units/sandbox-reduced.conf");

/// Where the drop-in of `unit` goes in the unit directory `dir`.
pub fn drop_in(dir: &Utf8Path, unit: &str) -> Utf8PathBuf {
    dir.join(format!("{unit}.d")).join(DROP_IN)
}

fn io(what: &'static str, path: &Utf8Path, e: std::io::Error) -> Error {
    Error::Io {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

/// Writes the reduced-sandbox drop-in for each of `services`; returns the files written. On
/// an error nothing it wrote is left behind.
pub fn write_reduced(dir: &Utf8Path, services: &[String]) -> Result<Vec<Utf8PathBuf>, Error> {
    let mut written = Vec::new();
    for unit in services {
        let path = drop_in(dir, unit);
        if let Err(e) = crate::fsx::write_atomic(&path, REDUCED.as_bytes(), Some(0o644)) {
            let _ = remove_files(&written);
            return Err(io("write", &e.path, e.source));
        }
        written.push(path);
    }
    Ok(written)
}

/// Removes the drop-ins of `services` from `dir` (absent ones are fine); returns the ones
/// removed.
pub fn remove(dir: &Utf8Path, services: &[String]) -> Result<Vec<Utf8PathBuf>, Error> {
    let present: Vec<Utf8PathBuf> = services
        .iter()
        .map(|u| drop_in(dir, u))
        .filter(|p| p.exists())
        .collect();
    remove_files(&present)?;
    Ok(present)
}

/// Removes drop-ins [`write_reduced`] wrote.
pub fn remove_written(files: &[Utf8PathBuf]) -> Result<(), Error> {
    remove_files(files)
}

/// Writes the reduced-sandbox drop-in again at each of `files` (undoing [`remove`]).
pub fn rewrite(files: &[Utf8PathBuf]) -> Result<(), Error> {
    for path in files {
        crate::fsx::write_atomic(path, REDUCED.as_bytes(), Some(0o644))
            .map_err(|e| io("write", &e.path, e.source))?;
    }
    Ok(())
}

/// Removes `files` and then their directories when that leaves them empty.
fn remove_files(files: &[Utf8PathBuf]) -> Result<(), Error> {
    for path in files {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("remove", path, e));
            }
            _ => {}
        }
        if let Some(parent) = path.parent() {
            // Fails, as it should, when another drop-in is there.
            let _ = std::fs::remove_dir(parent);
        }
    }
    Ok(())
}

/// The name systemd gives an exit status it sets itself (systemd.exec(5), "Process Exit
/// Codes"), for the ones a unit of ours may meet.
pub fn exit_status_name(status: i32) -> Option<&'static str> {
    Some(match status {
        200 => "CHDIR",
        203 => "EXEC",
        209 => "STDOUT",
        217 => "USER",
        218 => "CAPABILITIES",
        226 => "NAMESPACE",
        228 => "SECCOMP",
        _ => return None,
    })
}

/// `226/NAMESPACE`, `1`, …
pub fn exit_status_text(status: i32) -> String {
    match exit_status_name(status) {
        Some(name) => format!("{status}/{name}"),
        None => status.to_string(),
    }
}

/// Why `unit` failed to start, in one line: its state and exit status, and for a sandbox
/// that could not be set up (226/NAMESPACE, 217/USER) what that means and the remedy.
pub fn start_failure(unit: &str, state: &UnitState) -> String {
    let status = match state.exit_status {
        Some(s) => format!(", exit status {}", exit_status_text(s)),
        None => String::new(),
    };
    let logs = format!("see `acoupi logs {unit}`");
    let (needs, likely) = match state.exit_status {
        Some(226) => ("a mount namespace", "a container?"),
        Some(217) => (
            "a user namespace (`PrivateUsers=`)",
            "a container, or a kernel without user namespaces?",
        ),
        _ => {
            return format!(
                "`{unit}` failed to start ({}/{}, result `{}`{status}); {logs}",
                state.active_state, state.sub_state, state.result
            );
        }
    };
    format!(
        "`{unit}` failed to start{status}: systemd could not set up its sandbox, which needs {needs}, and this machine does not allow it ({likely}); where that cannot change, deploy with the sandbox reduced to what needs no namespaces: `acoupi deploy --sandbox reduced`; {logs}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<i32>) -> UnitState {
        UnitState {
            load_state: "loaded".into(),
            active_state: "activating".into(),
            sub_state: "auto-restart".into(),
            result: "exit-code".into(),
            n_restarts: Some(1),
            job: String::new(),
            exit_status: status,
        }
    }

    #[test]
    fn a_sandbox_failure_names_the_namespace_and_the_remedy() {
        let text = start_failure("acoupi-beat.service", &failed(Some(226)));
        assert!(
            text.contains("exit status 226/NAMESPACE")
                && text.contains("a mount namespace")
                && text.contains("`acoupi deploy --sandbox reduced`")
                && text.contains("acoupi logs acoupi-beat.service"),
            "{text}"
        );
        let text = start_failure("a.service", &failed(Some(217)));
        assert!(text.contains("217/USER") && text.contains("user namespace"));
        let text = start_failure("a.service", &failed(Some(1)));
        assert_eq!(
            text,
            "`a.service` failed to start (activating/auto-restart, result `exit-code`, exit status 1); see `acoupi logs a.service`"
        );
        assert!(!start_failure("a.service", &failed(None)).contains("exit status"));
    }

    #[test]
    fn drop_ins_are_written_and_removed_exactly() {
        let d = tempfile::tempdir().expect("temp dir");
        let dir = Utf8Path::from_path(d.path()).expect("utf-8").join("user");
        let units = vec!["a.service".to_owned(), "b.service".to_owned()];
        // Another drop-in of `b` is kept, and so is its directory.
        std::fs::create_dir_all(dir.join("b.service.d")).expect("dir");
        std::fs::write(dir.join("b.service.d/local.conf"), "[Service]\n").expect("local");
        let written = write_reduced(&dir, &units).expect("written");
        assert_eq!(
            written,
            [drop_in(&dir, "a.service"), drop_in(&dir, "b.service")]
        );
        let text = std::fs::read_to_string(&written[0]).expect("read");
        assert!(text.contains("\nPrivateUsers=no\n") && text.contains("\nReadWritePaths=\n"));
        assert_eq!(remove(&dir, &units).expect("removed"), written);
        assert!(!dir.join("a.service.d").exists());
        assert!(dir.join("b.service.d/local.conf").exists());
        assert!(remove(&dir, &units).expect("nothing left").is_empty());
    }
}
