//! `acoupi task list` and `acoupi task run NAME`: inspect the task graph, or run one task in
//! this process without a broker.

use std::sync::Arc;

use camino::Utf8Path;
use serde_json::Value as Json;

use super::{fail, load, runtime};
use crate::ExitStatus;
use crate::cli::TaskCommand;
use crate::runtime::tasks::{Registry, TaskContext};
use crate::spec::{Program, Schedule, Task};
use crate::units::format_duration;

fn schedule_text(program: &Program, task: &Task) -> String {
    let ms = |v: u64| format_duration(std::time::Duration::from_millis(v));
    let windows = |w: &[crate::spec::Window]| {
        if w.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = w.iter().map(|w| format!("{}-{}", w.from, w.to)).collect();
            format!(" in {}", list.join(", "))
        }
    };
    match &task.schedule {
        Schedule::Interval {
            every_ms,
            offset_ms,
            windows: w,
        } if *offset_ms > 0 => {
            format!(
                "every {} at +{}{}",
                ms(*every_ms),
                ms(*offset_ms),
                windows(w)
            )
        }
        Schedule::Interval {
            every_ms,
            windows: w,
            ..
        } => format!("every {}{}", ms(*every_ms), windows(w)),
        Schedule::Continuous { windows: w } => format!("continuous{}", windows(w)),
        Schedule::Triggered => {
            let parents: Vec<&str> = program
                .tasks
                .iter()
                .filter(|t| t.follow_ups.contains(&task.name))
                .map(|t| t.name.as_str())
                .collect();
            format!(
                "after {}",
                if parents.is_empty() {
                    "nothing".into()
                } else {
                    parents.join(", ")
                }
            )
        }
    }
}

/// Runs a `task` subcommand.
pub fn run(cmd: &TaskCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let (_home, program) = match load(home_flag) {
        Ok(p) => p,
        Err(s) => return s,
    };
    match cmd {
        TaskCommand::List => {
            println!("{:<15} {:<12} {:<40} THEN", "TASK", "QUEUE", "SCHEDULE");
            for t in &program.tasks {
                let then = if t.follow_ups.is_empty() {
                    "-".to_owned()
                } else {
                    t.follow_ups.join(", ")
                };
                println!(
                    "{:<15} {:<12} {:<40} {then}",
                    t.name,
                    t.queue,
                    schedule_text(&program, t)
                );
            }
            ExitStatus::Success
        }
        TaskCommand::Run { name, args, kwargs } => run_one(program, name, args, kwargs.as_deref()),
    }
}

fn run_one(program: Arc<Program>, name: &str, args: &[String], kwargs: Option<&str>) -> ExitStatus {
    let registry = Registry::builtin();
    let Some(handler) = registry.get(name) else {
        let names: Vec<&str> = registry.names().collect();
        return fail(format!(
            "no task handler named `{name}`; available: {}",
            names.join(", ")
        ));
    };
    let mut parsed = Vec::new();
    for a in args {
        match serde_json::from_str::<Json>(a) {
            Ok(v) => parsed.push(v),
            Err(e) => return fail(format!("`--arg {a}` is not JSON: {e}")),
        }
    }
    let kwargs = match kwargs.map(serde_json::from_str::<Json>) {
        None => serde_json::Map::new(),
        Some(Ok(Json::Object(m))) => m,
        Some(Ok(_)) => return fail("`--kwargs` must be a JSON object"),
        Some(Err(e)) => return fail(format!("`--kwargs` is not JSON: {e}")),
    };
    let rt = match runtime() {
        Ok(r) => r,
        Err(s) => return s,
    };
    let ctx = TaskContext {
        services: crate::runtime::tasks::Services::new(program),
        task_id: uuid::Uuid::new_v4().to_string(),
        retries: 0,
        worker: "cli".into(),
    };
    match rt.block_on(handler(ctx, parsed, kwargs)) {
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            ExitStatus::Success
        }
        Err(e) => {
            eprintln!("error: task `{name}` failed: {e}");
            ExitStatus::Failure
        }
    }
}
