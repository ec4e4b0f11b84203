//! The deploy preflight: each check with a failing and a passing case on homes built into
//! temporary directories, and `acoupi deploy --check` (and a refused `acoupi deploy`) through
//! the real binary. The broker check talks to the real RabbitMQ on 127.0.0.1:5672.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use acoupi::lifecycle::preflight::{self, Check, Severity};
use acoupi::lifecycle::sandbox::Profile;
use acoupi::lifecycle::systemd::{ServiceManager, UnitState};
use acoupi::spec::Program;
use camino::{Utf8Path, Utf8PathBuf};
use common::{acoupi, code, stderr, stdout, tempdir};

/// A built home whose program takes its secrets from variables and a file unique to it.
struct Home {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
    home: Utf8PathBuf,
    /// The broker username and password, and the HTTP header, variables.
    user_var: String,
    pass_var: String,
    header_var: String,
    /// The MQTT password file.
    secret_file: Utf8PathBuf,
}

impl Home {
    fn new(broker: &str) -> Home {
        Home::with_staging(broker, None)
    }

    /// A home whose staging directory is `staging` (relative to the temporary root).
    fn with_staging(broker: &str, staging: Option<&str>) -> Home {
        let (dir, root) = tempdir();
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_uppercase();
        let (user_var, pass_var, header_var) = (
            format!("PF_USER_{tag}"),
            format!("PF_PASS_{tag}"),
            format!("PF_HEADER_{tag}"),
        );
        let secret_file = root.join("mqtt-password");
        let paths = staging
            .map(|s| format!("paths {{\n    staging \"{root}/{s}\"\n}}\n"))
            .unwrap_or_default();
        let manifest = format!(
            r#"acoupi version=1
program "preflight" {{
    timezone "UTC"
}}
broker "{broker}" {{
    username env="{user_var}"
    password env="{pass_var}"
}}
{paths}microphone "m" {{
    synthetic "sweep"
    samplerate "48kHz"
}}
messaging {{
    mqtt host="127.0.0.1" {{
        password file="{secret_file}"
    }}
    http url="http://127.0.0.1:9/messages" {{
        header "Authorization" env="{header_var}"
    }}
    message recording
}}
"#
        );
        let manifest = common::write(&root, "acoupi.kdl", manifest);
        let home = root.join("home");
        let out = acoupi()
            .args(["build", manifest.as_str(), "--home", home.as_str()])
            .output()
            .expect("build runs");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        Home {
            _dir: dir,
            root,
            home,
            user_var,
            pass_var,
            header_var,
            secret_file,
        }
    }

    fn program(&self) -> Program {
        acoupi::runtime::config::load_program(&self.home).expect("program")
    }

    /// Writes `config/secrets.env` with the guest credentials (password `password`).
    fn secrets_env(&self, password: &str) {
        std::fs::write(
            self.home.join("config/secrets.env"),
            format!(
                "# broker\n{}=guest\n\n{}='{password}'\n{}=Bearer x\n",
                self.user_var, self.pass_var, self.header_var
            ),
        )
        .expect("secrets.env");
    }

    fn secret_file_mode(&self, mode: u32) {
        std::fs::write(&self.secret_file, "s3cret\n").expect("secret file");
        std::fs::set_permissions(&self.secret_file, std::fs::Permissions::from_mode(mode))
            .expect("chmod");
    }
}

#[test]
fn env_secrets_must_be_in_secrets_env() {
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    let p = h.program();
    // Missing everywhere: one error per variable, naming it and the file.
    let found = preflight::check_env_secrets(&h.home, &p);
    assert_eq!(found.len(), 3, "{found:#?}");
    for (f, var) in found.iter().zip([&h.user_var, &h.pass_var, &h.header_var]) {
        assert_eq!(f.severity, Severity::Error);
        assert!(
            f.message.contains(&format!("`{var}`")) && f.message.contains("is not set in"),
            "{f:?}"
        );
        assert!(f.fix.contains(&format!("`{var}=…`")), "{f:?}");
    }
    assert!(found[2].message.contains("the HTTP header `Authorization`"));
    // In secrets.env (with comments and blank lines): nothing to say.
    h.secrets_env("guest");
    assert_eq!(preflight::check_env_secrets(&h.home, &p), []);
}

#[test]
fn a_secret_set_only_in_the_shell_gets_the_line_to_add_without_its_value() {
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    std::fs::write(
        h.home.join("config/secrets.env"),
        format!("{}=guest\n{}=Bearer x\n", h.user_var, h.header_var),
    )
    .expect("secrets.env");
    h.secret_file_mode(0o600);
    let linger = tempdir();
    std::fs::write(linger.1.join("tester"), "").expect("linger");
    let out = acoupi()
        .args(["deploy", "--check", "--home", h.home.as_str()])
        .env(&h.pass_var, "guest-value-never-printed")
        .env("ACOUPI_LINGER_DIR", &linger.1)
        .env("USER", "tester")
        .output()
        .expect("runs");
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    assert!(
        text.contains(&format!(
            "error    secrets: `{}` (the broker password) is set in this shell but not in `{}/config/secrets.env`",
            h.pass_var, h.home
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "printf '%s=%s\\n' {v} \"${v}\" >> {}/config/secrets.env",
            h.home,
            v = h.pass_var
        )),
        "{text}"
    );
    assert!(!text.contains("guest-value-never-printed"), "{text}");
    assert!(!stderr(&out).contains("guest-value-never-printed"));
}

#[test]
fn file_secrets_must_exist_and_not_be_world_readable() {
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    let p = h.program();
    let found = preflight::check_file_secrets(&p);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0].message.contains(&format!(
            "`{}` (the MQTT password) does not exist",
            h.secret_file
        )),
        "{found:?}"
    );
    h.secret_file_mode(0o644);
    let found = preflight::check_file_secrets(&p);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0]
            .message
            .contains("is readable by every user (mode 0644)")
            && found[0].fix.contains("chmod o-r"),
        "{found:?}"
    );
    h.secret_file_mode(0o640);
    assert_eq!(preflight::check_file_secrets(&p), []);
}

#[test]
fn the_broker_must_answer_and_accept_the_credentials() {
    const T: Duration = Duration::from_secs(3);
    // The real RabbitMQ, with guest/guest from secrets.env.
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    h.secrets_env("guest");
    assert_eq!(
        preflight::check_broker(&h.home, &h.program(), T),
        [],
        "is RabbitMQ running on 127.0.0.1:5672 with guest/guest?"
    );
    // A wrong password is refused: an error.
    h.secrets_env("not-the-password");
    let found = preflight::check_broker(&h.home, &h.program(), T);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error, "{found:?}");
    assert!(
        found[0]
            .message
            .contains("the broker at 127.0.0.1:5672 refused the units' credentials"),
        "{found:?}"
    );
    assert!(!found[0].message.contains("not-the-password"));
    // A port nothing listens on: a warning (the workers wait for the broker), said otherwise.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let h = Home::new(&format!("amqp://127.0.0.1:{port}/%2f"));
    h.secrets_env("guest");
    let started = std::time::Instant::now();
    let found = preflight::check_broker(&h.home, &h.program(), T);
    assert!(started.elapsed() < T + Duration::from_secs(2));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Warning, "{found:?}");
    assert!(
        found[0].message.contains(&format!(
            "the broker at 127.0.0.1:{port} did not answer within 3s"
        )),
        "{found:?}"
    );
    // Secrets missing from secrets.env: not tried, and said so.
    std::fs::remove_file(h.home.join("config/secrets.env")).expect("rm");
    let found = preflight::check_broker(&h.home, &h.program(), T);
    assert!(found[0].message.starts_with("not tried"), "{found:?}");
}

#[test]
fn the_binary_the_launcher_runs_must_exist_and_be_executable() {
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    assert_eq!(preflight::check_binary(&h.home), []);
    assert_eq!(
        preflight::launcher_exe(&h.home).expect("exe"),
        Utf8Path::new(env!("CARGO_BIN_EXE_acoupi"))
    );
    // The launcher naming a binary that is gone (moved after the build).
    let gone = h.root.join("old-acoupi");
    let launcher = h.home.join("bin/acoupi");
    let text = std::fs::read_to_string(&launcher).expect("launcher");
    let text = text.replace(env!("CARGO_BIN_EXE_acoupi"), gone.as_str());
    std::fs::write(&launcher, text).expect("launcher");
    let found = preflight::check_binary(&h.home);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].message.contains(&format!(
            "`{gone}`, the acoupi binary the units run, does not exist"
        )) && found[0].fix.contains("acoupi build MANIFEST --home"),
        "{found:?}"
    );
    // There, but not executable.
    std::fs::write(&gone, "#!/bin/sh\n").expect("file");
    std::fs::set_permissions(&gone, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let found = preflight::check_binary(&h.home);
    assert!(found[0].message.contains("is not executable"), "{found:?}");
}

#[test]
fn storage_must_be_writable_or_creatable() {
    // Missing directories under a writable one are fine: the units create them.
    let h = Home::with_staging("amqp://127.0.0.1:5672/%2f", Some("not/yet/staging"));
    assert!(!h.root.join("not").exists());
    assert_eq!(preflight::check_storage(&h.program().paths), []);
    assert!(!h.root.join("not").exists(), "the check creates nothing");
    // A file where a directory would have to be made.
    let h = Home::with_staging("amqp://127.0.0.1:5672/%2f", Some("blocker/staging"));
    std::fs::write(h.root.join("blocker"), "").expect("file");
    let found = preflight::check_storage(&h.program().paths);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0].message.contains(&format!(
            "storage directory `{}/blocker/staging` does not exist and cannot be made: `{}/blocker` is not a directory",
            h.root, h.root
        )),
        "{found:?}"
    );
}

/// A service manager that only answers `linger`.
struct LingerOnly(Result<bool, String>);

impl ServiceManager for LingerOnly {
    fn daemon_reload(&self) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn enable(&self, _: &str) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn disable(&self, _: &str) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn start(&self, _: &[String], _: bool) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn stop(&self, _: &[String]) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn restart(&self, _: &[String], _: bool) -> acoupi::lifecycle::systemd::Result<()> {
        unreachable!("not used by the preflight")
    }
    fn show(&self, _: &str) -> acoupi::lifecycle::systemd::Result<UnitState> {
        unreachable!("not used by the preflight")
    }
    fn linger(&self, _: &str) -> acoupi::lifecycle::systemd::Result<bool> {
        self.0
            .clone()
            .map_err(|message| acoupi::lifecycle::systemd::Error::Failed {
                command: "loginctl show-user tester -p Linger".into(),
                message,
                hint: String::new(),
            })
    }
}

#[test]
fn lingering_off_is_a_warning_with_the_command_that_turns_it_on() {
    let (_d, dir) = tempdir();
    let asked = LingerOnly(Err("must not be asked".into()));
    // logind's directory without the user's file: off.
    let found = preflight::check_linger("tester", &dir, &asked);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Warning);
    assert!(
        found[0].message.contains("lingering is off for `tester`")
            && found[0].fix == "turn it on with `sudo loginctl enable-linger tester`",
        "{found:?}"
    );
    // The user's file there: on.
    std::fs::write(dir.join("tester"), "").expect("linger file");
    assert_eq!(preflight::check_linger("tester", &dir, &asked), []);
    // No such directory: loginctl is asked, and an answer it cannot give is said so.
    let none = dir.join("absent");
    assert_eq!(
        preflight::check_linger("tester", &none, &LingerOnly(Ok(true))),
        []
    );
    let off = preflight::check_linger("tester", &none, &LingerOnly(Ok(false)));
    assert!(off[0].message.contains("lingering is off"), "{off:?}");
    let unknown = preflight::check_linger("tester", &none, &LingerOnly(Err("no logind".into())));
    assert_eq!(unknown[0].severity, Severity::Warning);
    assert!(
        unknown[0]
            .message
            .contains("could not tell whether lingering is on for `tester`")
            && unknown[0].message.contains("no logind"),
        "{unknown:?}"
    );
}

#[test]
fn a_sandbox_without_user_namespaces_names_226_and_the_reduced_profile() {
    let cannot = || Err::<(), _>("Operation not permitted".to_owned());
    let found = preflight::check_sandbox(Profile::Full, &cannot);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].severity, Severity::Error);
    assert!(
        found[0].message.contains("Operation not permitted")
            && found[0].message.contains("226/NAMESPACE")
            && found[0].fix.contains("`acoupi deploy --sandbox reduced`"),
        "{found:?}"
    );
    assert_eq!(preflight::check_sandbox(Profile::Full, &|| Ok(())), []);
    // The reduced profile needs no namespaces: the probe is not even run.
    let never = || -> Result<(), String> { panic!("the reduced profile needs no probe") };
    assert_eq!(preflight::check_sandbox(Profile::Reduced, &never), []);
    // The real probe agrees with util-linux on this machine.
    let unshare = std::process::Command::new("unshare")
        .args(["--user", "--mount", "true"])
        .status()
        .expect("unshare (util-linux) runs");
    assert_eq!(preflight::userns_probe().is_ok(), unshare.success());
}

/// A `systemctl` stub that logs its arguments and reports every unit inactive.
fn systemctl_stub(root: &Utf8Path) -> Utf8PathBuf {
    let stub = root.join("systemctl");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >> {root}/systemctl.log\nprintf 'LoadState=loaded\\nActiveState=inactive\\nSubState=dead\\nResult=success\\nNRestarts=0\\nJob=\\n'\n"
        ),
    )
    .expect("stub");
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    stub
}

#[test]
fn deploy_check_reports_everything_and_deploy_refuses_on_errors() {
    let h = Home::new("amqp://127.0.0.1:5672/%2f");
    let (_l, linger) = tempdir();
    let stub = systemctl_stub(&h.root);
    let run = |args: &[&str]| {
        acoupi()
            .args(args)
            .args(["--home", h.home.as_str()])
            .env("ACOUPI_LINGER_DIR", &linger)
            .env("ACOUPI_SYSTEMCTL", &stub)
            .env("XDG_CONFIG_HOME", h.root.join("config"))
            .env("USER", "tester")
            .env_remove(&h.user_var)
            .env_remove(&h.pass_var)
            .env_remove(&h.header_var)
            .output()
            .expect("acoupi runs")
    };
    // Nothing set up: every secret, the secret file, the broker (not tried) and lingering.
    let out = run(&["deploy", "--check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}{}", stderr(&out));
    assert!(
        text.starts_with(&format!("preflight of `{}`:\n", h.home)),
        "{text}"
    );
    for needle in [
        format!(
            "  error    secrets: `{}` (the broker username) is not set in",
            h.user_var
        ),
        format!(
            "  error    secrets: `{}` (the broker password) is not set in",
            h.pass_var
        ),
        format!(
            "  error    secrets: `{}` (the HTTP header `Authorization`) is not set in",
            h.header_var
        ),
        format!(
            "  error    secret files: `{}` (the MQTT password) does not exist",
            h.secret_file
        ),
        "  warning  broker: not tried".to_owned(),
        "  ok       binary\n".to_owned(),
        "  ok       storage\n".to_owned(),
        "  warning  linger: lingering is off for `tester`".to_owned(),
        "           fix: turn it on with `sudo loginctl enable-linger tester`\n".to_owned(),
        "4 error(s), 2 warning(s): `acoupi deploy` would refuse\n".to_owned(),
    ] {
        assert!(text.contains(&needle), "missing {needle:?} in\n{text}");
    }
    let reduced = stdout(&run(&["deploy", "--check", "--sandbox", "reduced"]));
    assert!(reduced.contains("  ok       sandbox\n"), "{reduced}");
    // --check changed nothing and never asked systemd.
    assert!(!h.root.join("systemctl.log").exists());
    assert!(!h.home.join("config/deployment.json").exists());

    // Deploy refuses with the same report on stderr, before touching systemd.
    let out = run(&["deploy"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("4 error(s), 2 warning(s)")
            && err.lines().last().is_some_and(|l| l.starts_with(
                "error: the preflight found 4 problem(s) that would make the units fail (above); nothing was changed"
            )),
        "{err}"
    );
    let calls = std::fs::read_to_string(h.root.join("systemctl.log")).unwrap_or_default();
    assert!(
        calls.lines().all(|l| l.starts_with("--user show")),
        "only looked, never changed: {calls}"
    );
    assert!(!h.root.join("config/systemd/user/acoupi.target").exists());
    assert!(!h.home.join("config/deployment.json").exists());

    // Set up: secrets, the file, lingering: all pass (the broker is the real RabbitMQ).
    h.secrets_env("guest");
    h.secret_file_mode(0o600);
    std::fs::write(linger.join("tester"), "").expect("linger");
    let out = run(&["deploy", "--check", "--sandbox", "reduced"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    for check in Check::ALL {
        assert!(
            text.contains(&format!("  ok       {}\n", check.text())),
            "{check:?} in\n{text}"
        );
    }
    assert!(
        text.ends_with("no errors, 0 warning(s): ready to deploy\n"),
        "{text}"
    );
}
