//! The command line, as clap derive types. Parsing only; `commands` does the work.

use camino::Utf8PathBuf;
use clap::{Parser, Subcommand, ValueEnum};

use crate::report::Format;

/// acoupi: compile a sensor manifest into a deployable home, and run it.
#[derive(Debug, Parser)]
#[command(name = "acoupi", version, about, long_about = None)]
pub struct Cli {
    /// The ACOUPI_HOME to build into or act on [default: $ACOUPI_HOME, else $HOME/.acoupi]
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<Utf8PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a manifest and report every problem; needs no hardware, broker or writes.
    Check(CheckArgs),
    /// Compile a manifest into ACOUPI_HOME (atomically; runtime state is kept).
    Build(BuildArgs),
    /// Run one worker of the built program: consume its queues until SIGTERM.
    Worker(WorkerArgs),
    /// Run the scheduler: publish each scheduled task at its wall-clock slot.
    Beat,
    /// Run beat and every worker in the foreground (building the manifest first, if given).
    Run(RunArgs),
    /// List or run the program's tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Manage the program's queues.
    #[command(subcommand)]
    Workers(WorkersCommand),
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// List audio input devices with their channels and sample rates.
    Devices(DevicesArgs),
    /// Install and start the built home's systemd user units.
    Deploy(DeployArgs),
    /// Report the deployment's health: units, workers, queues, storage (never opens the microphone).
    Status(StatusArgs),
    /// Stop and disable the units, let workers drain, end the deployment.
    Stop(StopArgs),
    /// Show the services' last log lines (journal, else the files under `log/`).
    Logs(LogsArgs),
    /// Write a new manifest, step by step (or from an example with --no-prompt).
    Init(InitArgs),
    /// Show the built configuration, or read and change the manifest by dotted path.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Read the metadata store: recordings, model outputs, detections, or its health.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run the home's detectors on WAV files or folders, without a broker.
    Detect(DetectArgs),
    /// Write a manifest equivalent to a home of the Python acoupi (its `default` or
    /// `connected` program, or acoupi-batdetect2's).
    Import(ImportArgs),
    /// Print a shell completion script to stdout.
    ///
    /// The Debian package installs the bash, zsh and fish scripts system-wide. Otherwise
    /// write the script where the shell looks for it:
    ///
    /// bash: `acoupi completions bash > ~/.local/share/bash-completion/completions/acoupi`
    ///
    /// zsh: `acoupi completions zsh > ~/.zfunc/_acoupi`, with `fpath+=~/.zfunc` before
    /// `compinit` in `~/.zshrc`
    ///
    /// fish: `acoupi completions fish > ~/.config/fish/completions/acoupi.fish`
    Completions(CompletionsArgs),
    /// Install the model files of acoupi's built-in detectors.
    #[command(subcommand)]
    Models(ModelsCommand),
}

/// `acoupi import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The Python acoupi's home [default: $HOME/.acoupi].
    #[arg(value_name = "PYTHON_HOME")]
    pub python_home: Option<Utf8PathBuf>,
    /// Where to write the manifest.
    #[arg(long, short, default_value = "acoupi.kdl", value_name = "FILE")]
    pub output: Utf8PathBuf,
    /// Overwrite FILE when it exists.
    #[arg(long)]
    pub force: bool,
}

/// `acoupi completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete acoupi in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `acoupi models …`.
#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Fetch a model's published package, take its model file out, verify and install it.
    Install(ModelsInstallArgs),
}

/// A model `acoupi models install` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelName {
    /// BatDetect2 1.3.1's Net2DFast checkpoint (CC BY-NC 4.0), from the `batdetect2` wheel.
    Batdetect2,
}

/// `acoupi models install`.
#[derive(Debug, clap::Args)]
pub struct ModelsInstallArgs {
    /// The model.
    #[arg(value_enum)]
    pub model: ModelName,
    /// Install into this folder [default: ${XDG_DATA_HOME:-~/.local/share}/acoupi/models/MODEL].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<Utf8PathBuf>,
    /// The Python whose pip downloads the package.
    #[arg(long, default_value = "python3", value_name = "PYTHON")]
    pub python: String,
}

/// `acoupi detect …`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// WAV files, or folders searched recursively for `*.wav`.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<camino::Utf8PathBuf>,
    /// Only this detector (all of the program's detectors when absent).
    #[arg(long, value_name = "NAME")]
    pub detector: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: DetectFormat,
    /// Also write the recordings and model outputs to the metadata store.
    #[arg(long)]
    pub store: bool,
}

/// How `acoupi detect` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DetectFormat {
    /// A line per file and detector, then one per detection.
    #[default]
    Table,
    /// One acoupi `ModelOutput` JSON object per line, per file and detector.
    Json,
}

/// Text or JSON output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON document on stdout.
    Json,
}

/// `acoupi devices`.
#[derive(Debug, clap::Args)]
pub struct DevicesArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// `acoupi deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// A name for this deployment [default: the program's name].
    #[arg(long)]
    pub name: Option<String>,
    /// Latitude of the deployment [default: the program's location].
    #[arg(long, allow_hyphen_values = true, requires = "longitude")]
    pub latitude: Option<f64>,
    /// Longitude of the deployment [default: the program's location].
    #[arg(long, allow_hyphen_values = true, requires = "latitude")]
    pub longitude: Option<f64>,
    /// The units' sandbox: `reduced` turns off the options that need namespaces, for
    /// machines that cannot give them (most containers).
    #[arg(long, value_enum, default_value_t)]
    pub sandbox: crate::lifecycle::sandbox::Profile,
    /// Only run the preflight (secrets, broker, binary, storage, lingering, sandbox) and
    /// report every problem found; exit 1 when one would make a unit fail. Changes nothing.
    #[arg(long)]
    pub check: bool,
    /// First stop and disable the Python acoupi's units (`acoupi.service`,
    /// `acoupi-beat.service`) and move them aside, after confirming; they are put back when
    /// the deploy fails.
    #[arg(long, conflicts_with = "check")]
    pub replace_python_acoupi: bool,
    /// Do not ask before replacing the Python acoupi's units (for scripts).
    #[arg(long, requires = "replace_python_acoupi")]
    pub yes: bool,
}

/// `acoupi status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutputFormat,
}

/// `acoupi logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// A worker name, `beat`, or a unit name [default: every service].
    pub unit: Option<String>,
    /// Keep printing lines as they are logged, until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// How many of the last lines to print (per log file; from the journal, in all).
    #[arg(short = 'n', long, default_value_t = 50, value_name = "N")]
    pub lines: usize,
}

/// `acoupi stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Also delete the tasks still queued.
    #[arg(long)]
    pub purge: bool,
}

/// `acoupi init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the manifest.
    #[arg(default_value = "acoupi.kdl")]
    pub path: Utf8PathBuf,
    /// Start from this example (`default`, `connected`, `detection`, `quickstart`).
    #[arg(long)]
    pub template: Option<String>,
    /// Do not ask anything (needs --template).
    #[arg(long, requires = "template")]
    pub no_prompt: bool,
}

/// `acoupi config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved configuration, or one value by dotted path (secrets masked).
    Show {
        /// A dotted path such as `recording.duration_ms` or `workers.0.queues`.
        key: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
    /// Print values of the manifest by the paths `config set` takes (secrets masked).
    Get {
        /// A dotted path over the manifest's nodes, e.g. `detector.bats.threshold`
        /// [default: every value].
        path: Option<String>,
        /// Read this manifest instead of the one the home was built from.
        #[arg(long, value_name = "FILE")]
        manifest: Option<Utf8PathBuf>,
    },
    /// Set a value of the manifest in place, check it, rebuild the home and apply it.
    Set(ConfigSetArgs),
    /// Remove an entry of the manifest, check it, rebuild the home and apply it.
    Unset(ConfigUnsetArgs),
}

/// What `config set` and `config unset` share.
#[derive(Debug, clap::Args)]
pub struct ConfigEditArgs {
    /// Edit this manifest only (no home is rebuilt) instead of the one the home was built from.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<Utf8PathBuf>,
    /// Print the change as a unified diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rebuild the home but leave the running units as they are.
    #[arg(long)]
    pub no_apply: bool,
}

/// `acoupi config set PATH VALUE…`.
#[derive(Debug, clap::Args)]
pub struct ConfigSetArgs {
    /// A dotted path over the manifest's nodes: `recording.duration`,
    /// `detector.bats.threshold`, `messaging.mqtt.host`, `saving.keep-if[0].min-score`.
    pub path: String,
    /// The value (a node's arguments, when it takes several).
    #[arg(required = true, num_args = 1.., allow_negative_numbers = true)]
    pub values: Vec<String>,
    /// Where and how to edit.
    #[command(flatten)]
    pub edit: ConfigEditArgs,
}

/// `acoupi config unset PATH`.
#[derive(Debug, clap::Args)]
pub struct ConfigUnsetArgs {
    /// A dotted path over the manifest's nodes.
    pub path: String,
    /// Where and how to edit.
    #[command(flatten)]
    pub edit: ConfigEditArgs,
}

/// `acoupi worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The worker's name (see `config/workers.json`).
    pub name: String,
}

/// `acoupi run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// A manifest to build into the home first.
    pub manifest: Option<Utf8PathBuf>,
    /// Use this broker instead of the program's: `memory` for in-process queues, or an AMQP URL.
    #[arg(long, value_name = "memory|URL")]
    pub broker: Option<String>,
    /// Replace the microphones with a synthetic source (bat-like sweeps), to try a manifest
    /// on a machine without its sound card.
    #[arg(long, value_name = "synthetic")]
    pub microphone: Option<MicrophoneOverride>,
}

/// What `acoupi run --microphone` can substitute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MicrophoneOverride {
    /// Frequency sweeps like bat calls, paced in real time.
    Synthetic,
}

/// `acoupi task …`.
#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List the compiled tasks with their queue, schedule and follow-ups.
    List,
    /// Run one task in this process, without a broker, and print its result.
    Run {
        /// The task (or handler) name.
        name: String,
        /// A positional argument as JSON; repeat for more.
        #[arg(long = "arg", value_name = "JSON")]
        args: Vec<String>,
        /// Keyword arguments as a JSON object.
        #[arg(long, value_name = "JSON")]
        kwargs: Option<String>,
    },
}

/// `acoupi workers …`.
#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// Delete the queued tasks of this program's queues.
    Purge,
    /// Start the worker units.
    Start,
    /// Stop the worker units.
    Stop,
    /// Restart the worker units.
    Restart,
}

/// `acoupi bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Publish no-op tasks to a scratch queue and drain them through the real worker.
    Queue(BenchQueueArgs),
    /// Time the home's detectors on WAV files: start-up, memory with the model loaded, and
    /// the median time per file.
    Detect(BenchDetectArgs),
    /// Run beat on the real clock with in-process queues and report how late each slot fired.
    Beat {
        /// Slots to measure.
        #[arg(long, default_value_t = 1_000)]
        slots: u32,
        /// Slot length in milliseconds.
        #[arg(long, default_value_t = 20)]
        every_ms: u64,
    },
}

/// `acoupi db …`: reads the metadata store (`paths.metadata`), never writes it.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Recordings by start time, newest first.
    Recordings(DbQueryArgs),
    /// Model outputs (with their recording and detections) by creation time, newest first.
    Outputs(DbQueryArgs),
    /// Detections by their model output's creation time, newest first.
    Detections(DbQueryArgs),
    /// The store's path, schema versions, size, row counts and integrity check.
    Info {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: OutputFormat,
    },
}

/// The filters and format of `acoupi db recordings|outputs|detections`.
#[derive(Debug, clap::Args)]
pub struct DbQueryArgs {
    /// Only rows at or after this time: RFC 3339 (`2024-05-01T21:00:00Z`, `…+01:00`), or a date
    /// (`2024-05-01`, its midnight UTC).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<jiff::Timestamp>,
    /// Only rows before this time (same forms as --since).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<jiff::Timestamp>,
    /// Only detections scoring at least this (0 to 1), and what they belong to.
    #[arg(long, value_name = "SCORE", value_parser = parse_score)]
    pub min_score: Option<f64>,
    /// Only detections with this tag, e.g. `species=Myotis`, and what they belong to.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tag: Option<crate::spec::data::Tag>,
    /// Only the outputs of the detector (model) with this name.
    #[arg(long, value_name = "NAME")]
    pub detector: Option<String>,
    /// At most this many rows, the newest.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: TableFormat,
}

/// How `acoupi db` prints rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TableFormat {
    /// Aligned columns, for people.
    #[default]
    Table,
    /// One JSON array on stdout, rows in acoupi's field names.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// A `--since`/`--until` value: an RFC 3339 instant, a date-time without offset (UTC) or a
/// date (its midnight UTC).
fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    crate::spec::isotime::parse_iso(s).map_err(|_| {
        format!(
            "`{s}` is not a time: write RFC 3339 (`2024-05-01T21:00:00Z`) or a date (`2024-05-01`)"
        )
    })
}

/// A `--min-score` value: a number from 0 to 1.
fn parse_score(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a score: write a number from 0 to 1")),
    }
}

/// A `--tag` value: `KEY=VALUE`.
fn parse_tag(s: &str) -> Result<crate::spec::data::Tag, String> {
    match s.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok(crate::spec::data::Tag {
            key: key.to_owned(),
            value: value.to_owned(),
        }),
        _ => Err(format!(
            "`{s}` is not a tag: write KEY=VALUE, e.g. `species=Myotis`"
        )),
    }
}

/// `acoupi bench detect`.
#[derive(Debug, clap::Args)]
pub struct BenchDetectArgs {
    /// WAV files, or folders searched recursively for `*.wav`.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<camino::Utf8PathBuf>,
    /// Only this detector (all of the program's detectors when absent).
    #[arg(long, value_name = "NAME")]
    pub detector: Option<String>,
    /// Analyses of each file after the first request.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

/// `acoupi bench queue`.
#[derive(Debug, clap::Args)]
pub struct BenchQueueArgs {
    /// Number of tasks.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: u32,
    /// Tasks run at once by the worker.
    #[arg(long, default_value_t = 1)]
    pub concurrency: u32,
    /// Unacknowledged deliveries held at once [default: the concurrency].
    #[arg(long)]
    pub prefetch: Option<u16>,
    /// The AMQP URL [default: the built program's broker, else amqp://127.0.0.1:5672/%2f].
    #[arg(long)]
    pub broker: Option<String>,
    /// Number of tasks for the latency measurement.
    #[arg(long, default_value_t = 1_000)]
    pub latency_tasks: u32,
}

/// Diagnostic classes `--deny` can turn into failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Deny {
    /// Fail on warnings too.
    Warnings,
}

/// `acoupi check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The manifest (KDL).
    pub manifest: Utf8PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Treat these diagnostics as errors.
    #[arg(long, value_enum)]
    pub deny: Vec<Deny>,
}

/// `acoupi build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The manifest (KDL).
    pub manifest: Utf8PathBuf,
    /// Report whether the home is up to date instead of writing (exit 1 when it is not).
    #[arg(long, conflicts_with = "stdout")]
    pub check: bool,
    /// Print the generated tree to stdout instead of writing it.
    #[arg(long)]
    pub stdout: bool,
    /// On a deployed home, leave the running units as they are (by default the units whose
    /// files or spec changed are restarted).
    #[arg(long)]
    pub no_apply: bool,
}
