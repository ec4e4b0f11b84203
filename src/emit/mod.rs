//! Stage 4, render: a [`Plan`] to an in-memory [`OutputTree`]. Pure: no file system.
//!
//! In: the plan. Out: every file of the home with its mode, plus `build.lock` holding the
//! sha256 of the source and of every other file. Text artifacts come from the minijinja
//! templates in `templates/` (embedded in the binary, strict undefined, no auto-escaping);
//! every manifest string passes through a quoting filter from `filters`. JSON artifacts are
//! serialised from typed structs, never templated.

mod filters;
mod tree;

use std::collections::BTreeMap;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context};
use serde::Serialize;

use crate::plan::{self, Plan};
pub use tree::{OutputFile, OutputTree, sha256_hex};

/// Rendering failed: a template bug or a string no quoting can make safe (a NUL byte).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A template could not be rendered.
    #[error("could not render `{template}`: {source:#}")]
    Template {
        /// The template's name.
        template: &'static str,
        /// The minijinja error.
        source: minijinja::Error,
    },
    /// A JSON artifact could not be serialised.
    #[error("could not serialise `{file}`: {source}")]
    Json {
        /// The file.
        file: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// The templates, embedded in the binary, keyed by their path under `templates/`.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "bin/acoupi.j2",
        include_str!("../../templates/bin/acoupi.j2"),
    ),
    (
        "bin/acoupi-workers.sh.j2",
        include_str!("../../templates/bin/acoupi-workers.sh.j2"),
    ),
    (
        "bin/acoupi-beat.sh.j2",
        include_str!("../../templates/bin/acoupi-beat.sh.j2"),
    ),
    (
        "config/env.j2",
        include_str!("../../templates/config/env.j2"),
    ),
    (
        "units/acoupi.service.j2",
        include_str!("../../templates/units/acoupi.service.j2"),
    ),
    (
        "units/acoupi.target.j2",
        include_str!("../../templates/units/acoupi.target.j2"),
    ),
];

/// Version of the `build.lock` layout.
pub const LOCK_FORMAT: u32 = 1;

/// `build.lock`: what was built, from what, by which acoupi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BuildLock {
    /// Layout version ([`LOCK_FORMAT`]).
    pub format: u32,
    /// The acoupi version that built the home.
    pub acoupi_version: String,
    /// The manifest.
    pub source: LockedSource,
    /// Every emitted file except the lock itself: path to sha256 and mode.
    pub files: BTreeMap<String, LockedFile>,
}

/// The manifest a home was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LockedSource {
    /// Its absolute path at build time.
    pub path: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// One emitted file in the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LockedFile {
    /// sha256 of its bytes.
    pub sha256: String,
    /// Permission bits, octal.
    pub mode: String,
}

/// Name of the lock file in the home.
pub use crate::spec::layout::LOCK_FILE;

const SCRIPT: u32 = 0o755;
const PRIVATE: u32 = 0o600;
const PUBLIC: u32 = 0o644;

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters form a valid syntax");
    env.set_syntax(syntax);
    filters::register(&mut env);
    for (name, source) in TEMPLATES {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("embedded template {name} must parse: {e:#}"));
    }
    env
}

fn render_one(
    env: &Environment<'_>,
    template: &'static str,
    ctx: minijinja::Value,
) -> Result<String, Error> {
    env.get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|source| Error::Template { template, source })
}

fn json<T: Serialize>(file: &'static str, value: &T) -> Result<String, Error> {
    let mut s =
        serde_json::to_string_pretty(value).map_err(|source| Error::Json { file, source })?;
    s.push('\n');
    Ok(s)
}

/// Renders the whole home for `plan`, with `source` (the manifest text) copied in.
pub fn render(plan: &Plan, source: &str, source_path: &str) -> Result<OutputTree, Error> {
    let env = environment();
    let mut tree = OutputTree::default();
    tree.insert(plan::MANIFEST_COPY, source, PRIVATE);
    // program.json can hold a broker URL with credentials: private like config/env.
    tree.insert(
        "config/program.json",
        json("config/program.json", &plan.program)?,
        PRIVATE,
    );
    tree.insert(
        "config/workers.json",
        json("config/workers.json", &plan.workers)?,
        PRIVATE,
    );
    tree.insert(
        "config/env",
        render_one(&env, "config/env.j2", context! { env => Serde(&plan.env) })?,
        PRIVATE,
    );
    let s = &plan.scripts;
    tree.insert(
        "bin/acoupi",
        render_one(
            &env,
            "bin/acoupi.j2",
            context! { exe => &s.exe, home => &s.home },
        )?,
        SCRIPT,
    );
    for action in ["start", "stop", "restart"] {
        let text = render_one(
            &env,
            "bin/acoupi-workers.sh.j2",
            context! { action, worker_units => Serde(&s.worker_units) },
        )?;
        tree.insert(format!("bin/acoupi-workers-{action}.sh"), text, SCRIPT);
    }
    tree.insert(
        "bin/acoupi-beat.sh",
        render_one(
            &env,
            "bin/acoupi-beat.sh.j2",
            context! { launcher => &s.launcher, beat_unit => &s.beat_unit },
        )?,
        SCRIPT,
    );
    for unit in &plan.units {
        let text = render_one(
            &env,
            "units/acoupi.service.j2",
            context! { unit => Serde(unit) },
        )?;
        tree.insert(format!("units/{}", unit.file), text, PUBLIC);
    }
    tree.insert(
        format!("units/{}", plan::TARGET_UNIT),
        render_one(
            &env,
            "units/acoupi.target.j2",
            context! { target => Serde(&plan.target) },
        )?,
        PUBLIC,
    );
    let lock = BuildLock {
        format: LOCK_FORMAT,
        acoupi_version: env!("CARGO_PKG_VERSION").to_owned(),
        source: LockedSource {
            path: source_path.to_owned(),
            sha256: sha256_hex(source.as_bytes()),
        },
        files: tree
            .iter()
            .map(|(p, f)| {
                (
                    p.to_string(),
                    LockedFile {
                        sha256: sha256_hex(&f.contents),
                        mode: format!("{:04o}", f.mode),
                    },
                )
            })
            .collect(),
    };
    tree.insert(LOCK_FILE, json(LOCK_FILE, &lock)?, PUBLIC);
    Ok(tree)
}
