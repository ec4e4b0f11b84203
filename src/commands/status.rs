//! `acoupi status [--format json]`: the deployment's health, read without side effects and
//! without opening the microphone.
//!
//! Exit 0 when healthy, 1 when degraded (the problems are listed), 2 when it could not tell
//! (no built home, or the user's systemd cannot be asked).

use camino::Utf8Path;

use crate::ExitStatus;
use crate::cli::{OutputFormat, StatusArgs};
use crate::home;
use crate::lifecycle::sandbox::Profile;
use crate::lifecycle::status::{Health, Report, gather, human_bytes};
use crate::lifecycle::systemd::Systemctl;
use crate::lifecycle::{broker_url, unit_dir};
use crate::runtime::config as runtime_config;

/// Reports the status.
pub fn run(args: &StatusArgs, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let home = match home::resolve(home_flag) {
        Ok(h) => h,
        Err(e) => return super::fail(e),
    };
    let program = match runtime_config::load_program(&home) {
        Ok(p) => p,
        Err(e) => return super::fail(e),
    };
    let url = broker_url(&home, &program);
    let unit_dir = unit_dir::user_unit_dir().ok();
    let report = gather(
        &home,
        &program,
        &Systemctl::from_env(),
        unit_dir.as_deref(),
        url,
    );
    match args.format {
        OutputFormat::Json => match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => return super::fail(format!("cannot serialise the report: {e}")),
        },
        OutputFormat::Text => print!("{}", text(&report)),
    }
    match report.health {
        Health::Healthy => ExitStatus::Success,
        Health::Degraded => ExitStatus::Failure,
        Health::Unknown => ExitStatus::Error,
    }
}

/// How long ago `time` (RFC 3339) was, roughly, e.g. `3m ago`.
fn ago(time: &str) -> String {
    let Ok(t) = time.parse::<jiff::Timestamp>() else {
        return String::new();
    };
    let secs = jiff::Timestamp::now().as_second() - t.as_second();
    if secs < 0 {
        return " (in the future)".to_owned();
    }
    let d = std::time::Duration::from_secs(secs.unsigned_abs());
    let rounded = match secs {
        0..60 => d,
        60..3600 => std::time::Duration::from_secs(secs.unsigned_abs() / 60 * 60),
        _ => std::time::Duration::from_secs(secs.unsigned_abs() / 3600 * 3600),
    };
    format!(" ({} ago)", crate::units::format_duration(rounded))
}

/// The report as text.
fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let verdict = match r.health {
        Health::Healthy => "healthy",
        Health::Degraded => "degraded",
        Health::Unknown => "unknown (systemd could not be asked)",
    };
    let _ = writeln!(out, "program      {} (home `{}`)", r.program, r.home);
    let deployment = match &r.deployment {
        Some(d) => {
            let location = match (d.latitude, d.longitude) {
                (Some(lat), Some(lon)) => format!("at {lat}, {lon}"),
                _ => "location unknown".to_owned(),
            };
            match &d.ended_on {
                None => format!(
                    "`{}` since {}{} {location}",
                    d.name,
                    d.started_on,
                    ago(&d.started_on)
                ),
                Some(end) => format!("`{}` ended {end}{}", d.name, ago(end)),
            }
        }
        None => "not deployed".to_owned(),
    };
    let _ = writeln!(out, "deployment   {deployment}");
    match r.sandbox {
        Some(Profile::Full) => {
            let _ = writeln!(out, "sandbox      full");
        }
        Some(Profile::Reduced) => {
            let _ = writeln!(
                out,
                "sandbox      reduced: the options that need namespaces are off"
            );
        }
        None => {}
    }
    let _ = writeln!(out, "health       {verdict}");
    for p in &r.problems {
        let _ = writeln!(out, "  - {p}");
    }
    let _ = writeln!(out, "\nunits");
    for u in &r.units {
        let state = match &u.state {
            Some(s) => {
                let mut t = format!("{}/{}", s.active_state, s.sub_state);
                if !s.result.is_empty() && s.result != "success" {
                    let _ = write!(t, ", last result {}", s.result);
                }
                if let Some(n) = s.n_restarts.filter(|n| *n > 0) {
                    let _ = write!(t, ", {n} restarts");
                }
                t
            }
            None => "unknown".to_owned(),
        };
        let state = match (&u.build, &r.built) {
            (Some(runs), Some(built)) if runs != built => {
                format!("{state}, runs an older build (`{runs}`)")
            }
            _ => state,
        };
        let _ = writeln!(out, "  {:<40} {state}", u.unit);
    }
    let _ = writeln!(out, "\nworkers");
    for w in &r.workers {
        let _ = writeln!(
            out,
            "  {:<20} {:<24} queues: {}",
            w.name,
            w.state.text(),
            w.queues.join(", ")
        );
    }
    let _ = writeln!(out, "\nqueues");
    if !r.broker.reachable {
        let _ = writeln!(
            out,
            "  broker unreachable: {}",
            r.broker.error.as_deref().unwrap_or("")
        );
    }
    let n = |v: Option<u32>| v.map_or("?".to_owned(), |v| v.to_string());
    for q in &r.queues {
        let _ = writeln!(
            out,
            "  {:<20} {} ready, {} consumers, {} dead letters",
            q.name,
            n(q.ready),
            n(q.consumers),
            n(q.dead_letters)
        );
    }
    let _ = writeln!(out);
    let heartbeat = match &r.last_heartbeat {
        Some(t) => format!("{t}{}", ago(t)),
        None => "unknown".to_owned(),
    };
    let _ = writeln!(out, "last heartbeat  {heartbeat}");
    if let Some(m) = &r.microphone {
        let since = m.missing_since.to_string();
        let _ = writeln!(
            out,
            "microphone      `{}` missing since {since}{}",
            m.microphone,
            ago(&since)
        );
    }
    let recording = match &r.last_recording {
        Some(rec) => format!("{}{} `{}`", rec.time, ago(&rec.time), rec.path),
        None => "none found".to_owned(),
    };
    let _ = writeln!(out, "last recording  {recording}");
    let st = &r.storage;
    if let (Some(files), Some(bytes), Some(budget)) =
        (st.staged_files, st.staged_bytes, st.staging_budget_bytes)
    {
        let _ = writeln!(
            out,
            "staging         {files} files, {} of a {} budget",
            human_bytes(bytes),
            human_bytes(budget)
        );
    }
    if let Some(waiting) = st.waiting {
        let _ = writeln!(
            out,
            "waiting         {waiting} recordings for detection or file management"
        );
    }
    if let Some(deleted) = st.retention_deleted_last_day {
        let _ = writeln!(
            out,
            "retention       {deleted} kept recordings deleted in the last day"
        );
    }
    if let Some(e) = &st.error {
        let _ = writeln!(out, "storage         unknown: {e}");
    }
    if let Some(m) = &r.messages {
        let line = match (m.unsent, m.expired, &m.error) {
            (Some(unsent), Some(expired), _) => {
                let oldest = m
                    .oldest_unsent
                    .as_ref()
                    .map(|t| format!(", the oldest from {t}{}", ago(t)))
                    .unwrap_or_default();
                format!("{unsent} unsent{oldest}; {expired} expired")
            }
            (_, _, Some(e)) => format!("unknown: {e}"),
            _ => "unknown".to_owned(),
        };
        let _ = writeln!(out, "messages        {line}");
    }
    for d in &r.disk {
        let free = match (d.free_bytes, &d.error) {
            (Some(b), _) => format!("{} free", human_bytes(b)),
            (None, Some(e)) => e.clone(),
            (None, None) => "unknown".to_owned(),
        };
        let _ = writeln!(out, "disk            {free} on `{}`", d.path);
    }
    let manifest = match (r.manifest.stale, &r.manifest.note) {
        (Some(false), _) => format!("up to date with `{}`", r.manifest.path),
        (Some(true), _) => format!("stale: rebuild from `{}`", r.manifest.path),
        (None, Some(note)) => format!("unknown: {note}"),
        (None, None) => "unknown".to_owned(),
    };
    let _ = writeln!(out, "home            {manifest}");
    out
}
