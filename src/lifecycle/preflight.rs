//! The deploy preflight: what would make a unit fail at once, found before systemd is
//! touched, every problem at once and each with what to do about it.
//!
//! In: a [`Target`] and [`Options`] (the sandbox profile, the linger directory, the broker's
//! time limit). Out: [`Finding`]s, errors (deploy refuses) and warnings (deploy goes on), and
//! their text. One function per check; none of them changes anything: a storage directory
//! that does not exist yet is fine when its nearest existing ancestor is writable, because the
//! units create it (`ExecStartPre=+/bin/mkdir -p`, as the same user) before they start.

use std::collections::BTreeMap;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use super::deploy::Target;
use super::sandbox::Profile;
use super::systemd::ServiceManager;
use crate::spec::layout;
use crate::spec::{Broker, Paths, Program, Secret};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A unit would fail: deploy refuses.
    Error,
    /// Worth fixing, but the units would run: deploy goes on.
    Warning,
}

/// What the preflight checks, in the order it reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Every `env=` secret is in `config/secrets.env`.
    Secrets,
    /// Every `file=` secret is readable, and by no one else.
    SecretFiles,
    /// The broker answers with the units' credentials.
    Broker,
    /// The acoupi binary the launcher runs exists and is executable.
    Binary,
    /// The storage paths are writable.
    Storage,
    /// The user's lingering is on.
    Linger,
    /// The sandbox the units use can be set up here.
    Sandbox,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 7] = [
        Check::Secrets,
        Check::SecretFiles,
        Check::Broker,
        Check::Binary,
        Check::Storage,
        Check::Linger,
        Check::Sandbox,
    ];

    /// How it reads in text.
    pub fn text(self) -> &'static str {
        match self {
            Check::Secrets => "secrets",
            Check::SecretFiles => "secret files",
            Check::Broker => "broker",
            Check::Binary => "binary",
            Check::Storage => "storage",
            Check::Linger => "linger",
            Check::Sandbox => "sandbox",
        }
    }
}

/// One problem the preflight found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check that found it.
    pub check: Check,
    /// Whether deploy refuses because of it.
    pub severity: Severity,
    /// What is wrong (never a secret's value).
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Finding {
    fn error(check: Check, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Error,
            message: message.into(),
            fix: fix.into(),
        }
    }

    fn warning(check: Check, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            check,
            severity: Severity::Warning,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// The systemd-logind directory holding one file per lingering user.
pub const LINGER_DIR: &str = "/var/lib/systemd/linger";

/// How to run the preflight.
#[derive(Debug, Clone)]
pub struct Options {
    /// The sandbox the units will run in.
    pub sandbox: Profile,
    /// The user whose lingering is checked.
    pub user: String,
    /// Where logind records lingering users ([`LINGER_DIR`]; `ACOUPI_LINGER_DIR` overrides).
    pub linger_dir: Utf8PathBuf,
    /// How long the broker has to answer.
    pub broker_timeout: Duration,
}

impl Options {
    /// The options for this process: the current user, `ACOUPI_LINGER_DIR` or
    /// [`LINGER_DIR`], five seconds for the broker.
    pub fn from_env(sandbox: Profile) -> Self {
        Options {
            sandbox,
            user: super::systemd::current_user(),
            linger_dir: std::env::var("ACOUPI_LINGER_DIR")
                .map(Utf8PathBuf::from)
                .unwrap_or_else(|_| Utf8PathBuf::from(LINGER_DIR)),
            broker_timeout: Duration::from_secs(5),
        }
    }
}

/// Runs every check; returns what they found, in [`Check::ALL`] order.
pub fn preflight(t: &Target<'_>, o: &Options) -> Vec<Finding> {
    let mut out = check_env_secrets(t.home, t.program);
    out.extend(check_file_secrets(t.program));
    out.extend(check_broker(t.home, t.program, o.broker_timeout));
    out.extend(check_binary(t.home));
    out.extend(check_storage(&t.program.paths));
    out.extend(check_linger(&o.user, &o.linger_dir, t.manager));
    out.extend(check_sandbox(o.sandbox, &userns_probe));
    out
}

/// Whether any finding makes deploy refuse.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The secrets of `program`, each with what it is for: a broker URL given by `env=`, then
/// [`Program::secrets`].
fn secrets(program: &Program) -> Vec<(String, Secret)> {
    let mut out = Vec::new();
    if let Broker::Amqp {
        url_env: Some(var), ..
    } = &program.broker
    {
        out.push(("the broker URL".to_owned(), Secret::Env(var.clone())));
    }
    out.extend(
        program
            .secrets()
            .into_iter()
            .map(|(what, s)| (what, s.clone())),
    );
    out
}

fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| s.escape_debug().to_string())
}

/// Check 1: every `env=` secret is set in `config/secrets.env`, the only place the units read
/// it from (they do not see the shell that ran `deploy`).
pub fn check_env_secrets(home: &Utf8Path, program: &Program) -> Vec<Finding> {
    let file = home.join(layout::SECRETS_FILE);
    let set = super::read_secrets_env(home);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (what, secret) in secrets(program) {
        let Secret::Env(name) = secret else { continue };
        if set.contains_key(&name) || seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        if std::env::var_os(&name).is_some() {
            out.push(Finding::error(
                Check::Secrets,
                format!(
                    "`{name}` ({what}) is set in this shell but not in `{file}`, and the units read only that file"
                ),
                format!(
                    "add it from this shell: printf '%s=%s\\n' {name} \"${name}\" >> {f} && chmod 600 {f}",
                    f = quote(file.as_str())
                ),
            ));
        } else {
            out.push(Finding::error(
                Check::Secrets,
                format!("`{name}` ({what}) is not set in `{file}`"),
                format!("add the line `{name}=…` (its value) to `{file}`, then `chmod 600` it"),
            ));
        }
    }
    out
}

/// Check 2: every `file=` secret exists, is readable by this user and is not readable by
/// every user (mode & 0o004).
pub fn check_file_secrets(program: &Program) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let mut seen: Vec<Utf8PathBuf> = Vec::new();
    let mut out = Vec::new();
    for (what, secret) in secrets(program) {
        let Secret::File(path) = secret else { continue };
        if seen.contains(&path) {
            continue;
        }
        seen.push(path.clone());
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(Finding::error(
                    Check::SecretFiles,
                    format!("`{path}` ({what}) does not exist"),
                    format!("write the secret to `{path}` (one line), then `chmod 600` it"),
                ));
                continue;
            }
            Err(e) => {
                out.push(Finding::error(
                    Check::SecretFiles,
                    format!("cannot look at `{path}` ({what}): {e}"),
                    "make the file and its directories readable by the user that deploys",
                ));
                continue;
            }
        };
        if let Err(e) = std::fs::File::open(&path) {
            out.push(Finding::error(
                Check::SecretFiles,
                format!("cannot read `{path}` ({what}): {e}"),
                format!(
                    "make it readable by `{}` only: `chmod 600 {q}` as its owner (`chown` it first if another user owns it)",
                    super::systemd::current_user(),
                    q = quote(path.as_str())
                ),
            ));
            continue;
        }
        if meta.permissions().mode() & 0o004 != 0 {
            out.push(Finding::error(
                Check::SecretFiles,
                format!(
                    "`{path}` ({what}) is readable by every user (mode {:04o})",
                    meta.permissions().mode() & 0o7777
                ),
                format!("`chmod o-r {}`", quote(path.as_str())),
            ));
        }
    }
    out
}

/// The broker the units will use: its `env=` secrets taken from `secrets` (the units'
/// `config/secrets.env`) only. `None` when one of them is missing there (check 1 says so).
fn units_broker(broker: &Broker, secrets: &BTreeMap<String, String>) -> Option<Broker> {
    let Broker::Amqp {
        url,
        url_env,
        username,
        password,
    } = broker
    else {
        return None;
    };
    let resolve = |s: &Option<Secret>| -> Option<Option<Secret>> {
        match s {
            Some(Secret::Env(name)) => Some(Some(Secret::Value(secrets.get(name)?.clone()))),
            other => Some(other.clone()),
        }
    };
    let url = match (url, url_env) {
        (Some(u), _) => Some(u.clone()),
        (None, Some(var)) => Some(secrets.get(var)?.clone()),
        (None, None) => None,
    };
    Some(Broker::Amqp {
        url,
        url_env: None,
        username: resolve(username)?,
        password: resolve(password)?,
    })
}

/// Check 3 (AMQP programs only): the broker answers, with the credentials the units will
/// use, within `timeout`. Refused credentials are an error (the workers would never
/// consume); a broker that does not answer is a warning (the workers wait for it).
pub fn check_broker(home: &Utf8Path, program: &Program, timeout: Duration) -> Vec<Finding> {
    if matches!(program.broker, Broker::Memory) {
        return Vec::new();
    }
    let Some(broker) = units_broker(&program.broker, &super::read_secrets_env(home)) else {
        return vec![Finding::warning(
            Check::Broker,
            "not tried: a secret it needs is missing from `config/secrets.env`",
            "fix the secrets above, then run `acoupi deploy --check` again",
        )];
    };
    let url = match crate::runtime::config::broker_url(&broker) {
        Ok(Some(u)) => u,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![Finding::error(
                Check::Broker,
                format!("the broker cannot be reached as configured: {e}"),
                "fix the `broker` node of the manifest (or its secrets) and rebuild",
            )];
        }
    };
    let place = url::Url::parse(&url)
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("?"),
                u.port_or_known_default().unwrap_or(5672)
            )
        })
        .unwrap_or_else(|_| "the broker".to_owned());
    match try_connect(&url, timeout) {
        Ok(()) => Vec::new(),
        Err(e) if credentials_refused(&e) => vec![Finding::error(
            Check::Broker,
            format!("the broker at {place} refused the units' credentials: {e}"),
            "fix the username and password (in the manifest or `config/secrets.env`) to match a RabbitMQ user (`rabbitmqctl list_users`)",
        )],
        Err(e) => vec![Finding::warning(
            Check::Broker,
            format!(
                "the broker at {place} did not answer within {}s: {e}",
                timeout.as_secs()
            ),
            "start RabbitMQ (`sudo systemctl start rabbitmq-server`) or fix the broker address; the workers wait for it until it answers",
        )],
    }
}

/// Whether a connection error is the broker refusing the credentials (rather than not
/// answering).
fn credentials_refused(e: &str) -> bool {
    let e = e.to_ascii_lowercase();
    [
        "access_refused",
        "accessrefused",
        "access refused",
        "login was refused",
    ]
    .iter()
    .any(|s| e.contains(s))
}

/// Connects once to `url`, giving up after `timeout`.
fn try_connect(url: &str, timeout: Duration) -> Result<(), String> {
    use crate::runtime::transport::Broker;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let connect = Broker::connect_amqp(url, "acoupi deploy --check", Some(timeout));
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(broker)) => {
                broker.close().await;
                Ok(())
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {}s", timeout.as_secs())),
        }
    })
}

/// The acoupi binary the home's launcher (`bin/acoupi`) runs.
pub fn launcher_exe(home: &Utf8Path) -> Result<Utf8PathBuf, String> {
    let launcher = home.join(layout::LAUNCHER);
    let text = std::fs::read_to_string(&launcher)
        .map_err(|e| format!("cannot read the launcher `{launcher}`: {e}"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("exec "))
        .find_map(|rest| shlex::split(rest)?.into_iter().next())
        .map(Utf8PathBuf::from)
        .ok_or_else(|| format!("the launcher `{launcher}` names no program to exec"))
}

/// Check 4: the acoupi binary the launcher (and so every unit) runs exists and is executable.
pub fn check_binary(home: &Utf8Path) -> Vec<Finding> {
    let rebuild = format!(
        "rebuild the home with the acoupi you mean to run: `acoupi build MANIFEST --home {}`",
        quote(home.as_str())
    );
    let exe = match launcher_exe(home) {
        Ok(e) => e,
        Err(e) => return vec![Finding::error(Check::Binary, e, rebuild)],
    };
    let problem = match std::fs::metadata(&exe) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        Err(e) => format!("cannot be looked at ({e})"),
        Ok(m) if !m.is_file() => "is not a file".to_owned(),
        Ok(_) => match rustix::fs::access(exe.as_std_path(), rustix::fs::Access::EXEC_OK) {
            Ok(()) => return Vec::new(),
            Err(e) => format!("is not executable by this user ({e})"),
        },
    };
    vec![Finding::error(
        Check::Binary,
        format!("`{exe}`, the acoupi binary the units run, {problem}"),
        rebuild,
    )]
}

/// The directories the runtime writes: staging, recordings, the directories of the two
/// databases and the state directory, without repeats.
fn storage_dirs(paths: &Paths) -> Vec<Utf8PathBuf> {
    let mut out: Vec<Utf8PathBuf> = Vec::new();
    let dirs = [
        Some(paths.staging.as_path()),
        Some(paths.recordings.as_path()),
        paths.metadata.parent(),
        paths.messages.parent(),
        Some(paths.state.as_path()),
    ];
    for dir in dirs.into_iter().flatten() {
        if !dir.as_str().is_empty() && !out.iter().any(|d| d == dir) {
            out.push(dir.to_owned());
        }
    }
    out
}

/// Check 5: every storage directory is writable, or, when it does not exist yet, its nearest
/// existing ancestor is (the units create it before they start). Nothing is created.
pub fn check_storage(paths: &Paths) -> Vec<Finding> {
    use rustix::fs::Access;
    let mut out = Vec::new();
    for dir in storage_dirs(paths) {
        let mut at = dir.as_path();
        let problem = loop {
            match std::fs::metadata(at) {
                Ok(m) if !m.is_dir() => break Some(format!("`{at}` is not a directory")),
                Ok(_) => {
                    break rustix::fs::access(at.as_std_path(), Access::WRITE_OK | Access::EXEC_OK)
                        .err()
                        .map(|e| format!("`{at}` is not writable by this user ({e})"));
                }
                // A missing directory, or a file where a directory should be (found above).
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                    ) =>
                {
                    match at.parent() {
                        Some(p) => at = p,
                        None => break Some(format!("no ancestor of `{dir}` exists")),
                    }
                }
                Err(e) => break Some(format!("cannot look at `{at}`: {e}")),
            }
        };
        if let Some(problem) = problem {
            let message = if at == dir {
                format!("storage directory {problem}")
            } else {
                format!("storage directory `{dir}` does not exist and cannot be made: {problem}")
            };
            out.push(Finding::error(
                Check::Storage,
                message,
                format!(
                    "make `{at}` a directory this user can write to (`chown`/`chmod`; a read-only or immutable file system cannot be used), or set the manifest's `paths` elsewhere and rebuild"
                ),
            ));
        }
    }
    out
}

/// Check 6: lingering is on for `user` (a file named after them in `linger_dir`; when that
/// directory does not exist, `loginctl` is asked). A warning when off: the units stop when
/// the user logs out and do not start at boot.
pub fn check_linger(user: &str, linger_dir: &Utf8Path, m: &dyn ServiceManager) -> Vec<Finding> {
    let on = if linger_dir.join(user).exists() {
        Ok(true)
    } else if linger_dir.is_dir() {
        Ok(false)
    } else {
        m.linger(user).map_err(|e| e.to_string())
    };
    let fix = format!("turn it on with `sudo loginctl enable-linger {user}`");
    match on {
        Ok(true) => Vec::new(),
        Ok(false) => vec![Finding::warning(
            Check::Linger,
            format!(
                "lingering is off for `{user}`: the units stop when {user} logs out and do not start at boot"
            ),
            fix,
        )],
        Err(e) => vec![Finding::warning(
            Check::Linger,
            format!(
                "could not tell whether lingering is on for `{user}` ({e}); without it the units stop at logout"
            ),
            fix,
        )],
    }
}

/// Check 7: the full sandbox (`PrivateUsers=yes` and the mount namespace behind
/// `ProtectSystem=` and the rest) needs unprivileged user namespaces; `probe` says whether
/// this user can create one. The reduced profile needs none.
pub fn check_sandbox(profile: Profile, probe: &dyn Fn() -> Result<(), String>) -> Vec<Finding> {
    if profile == Profile::Reduced {
        return Vec::new();
    }
    match probe() {
        Ok(()) => Vec::new(),
        Err(why) => vec![Finding::error(
            Check::Sandbox,
            format!(
                "this user cannot create a user namespace ({why}), which the units' sandbox needs (`PrivateUsers=yes`, `ProtectSystem=strict`, …): they would fail to start with exit status 226/NAMESPACE (most containers, or a kernel with user namespaces turned off)"
            ),
            "where that cannot change, deploy with the sandbox reduced to what needs no namespaces: `acoupi deploy --sandbox reduced` (a drop-in beside each unit; the system call, capability and address family filters stay)",
        )],
    }
}

/// Whether this user can create a user namespace with a mount namespace in it, as systemd
/// does for `PrivateUsers=` and `ProtectSystem=`: runs `unshare --user --mount true`; without
/// `unshare`, reads `/proc/sys/user/max_user_namespaces` and
/// `/proc/sys/kernel/unprivileged_userns_clone`.
pub fn userns_probe() -> Result<(), String> {
    let out = std::process::Command::new("unshare")
        .args(["--user", "--mount", "true"])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            Err(format!(
                "`unshare --user --mount true` failed: {}",
                err.lines().last().unwrap_or("no message").trim()
            ))
        }
        Err(_) => {
            let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
            if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
                return Err("/proc/sys/user/max_user_namespaces is 0".to_owned());
            }
            if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
                && !rustix::process::geteuid().is_root()
            {
                return Err("/proc/sys/kernel/unprivileged_userns_clone is 0".to_owned());
            }
            Ok(())
        }
    }
}

/// The findings as text: one line per check (`ok`, or each finding with its fix), then a
/// summary line.
pub fn render(home: &Utf8Path, findings: &[Finding]) -> String {
    let mut text = format!("preflight of `{home}`:\n");
    for check in Check::ALL {
        let mine: Vec<&Finding> = findings.iter().filter(|f| f.check == check).collect();
        if mine.is_empty() {
            text.push_str(&format!("  ok       {}\n", check.text()));
        }
        for f in mine {
            let label = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            text.push_str(&format!("  {label:<8} {}: {}\n", check.text(), f.message));
            text.push_str(&format!("           fix: {}\n", f.fix));
        }
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    let warnings = findings.len() - errors;
    text.push_str(&if errors > 0 {
        format!("{errors} error(s), {warnings} warning(s): `acoupi deploy` would refuse\n")
    } else {
        format!("no errors, {warnings} warning(s): ready to deploy\n")
    });
    text
}
