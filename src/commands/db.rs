//! `acoupi db recordings|outputs|detections [filters] [--format table|json|csv]` and
//! `acoupi db info`: the metadata store of the home (`paths.metadata` of its compiled program),
//! read only.
//!
//! In: the home and the parsed filters. Out: rows on stdout (JSON in acoupi's field names,
//! with our extras such as `task_id` alongside), errors on stderr. Exit 0 on success (and for
//! `info`, a passing integrity check), 1 when the integrity check finds problems, 2 when the
//! store cannot be read.

use std::fmt::Write as _;

use camino::Utf8Path;
use serde::Serialize;

use crate::ExitStatus;
use crate::cli::{DbCommand, DbQueryArgs, OutputFormat, TableFormat};
use crate::spec::data::{Detection, ModelOutput};
use crate::store::{Error, Filter, FoundDetection, Info, Store, StoredRecording};

/// Runs `acoupi db …`.
pub fn run(cmd: &DbCommand, home_flag: Option<&Utf8Path>) -> ExitStatus {
    let (_home, program) = match super::load(home_flag) {
        Ok(loaded) => loaded,
        Err(status) => return status,
    };
    let store = match Store::open_read_only(&program.paths.metadata) {
        Ok(store) => store,
        Err(e @ Error::Missing { .. }) => {
            return super::fail(format!("{e}: nothing has been recorded in this home yet"));
        }
        Err(e) => return super::fail(e),
    };
    let result = match cmd {
        DbCommand::Recordings(args) => store
            .recordings(&filter(args))
            .map(|rows| print_rows(&rows, args.format, RECORDING_COLUMNS, recording_row)),
        DbCommand::Outputs(args) => store
            .model_outputs(&filter(args))
            .map(|rows| print_rows(&rows, args.format, OUTPUT_COLUMNS, output_row)),
        DbCommand::Detections(args) => store
            .detections(&filter(args))
            .map(|rows| print_rows(&rows, args.format, DETECTION_COLUMNS, detection_row)),
        DbCommand::Info { format } => {
            return match store.info() {
                Ok(info) => print_info(&info, *format),
                Err(e) => super::fail(e),
            };
        }
    };
    match result {
        Ok(()) => ExitStatus::Success,
        Err(e) => super::fail(e),
    }
}

fn filter(args: &DbQueryArgs) -> Filter {
    Filter {
        since: args.since,
        until: args.until,
        min_score: args.min_score,
        tag: args.tag.clone(),
        detector: args.detector.clone(),
        limit: args.limit,
    }
}

/// Prints `rows` as JSON, or as `columns` filled by `cells`.
fn print_rows<T: Serialize>(
    rows: &[T],
    format: TableFormat,
    columns: &[&str],
    cells: fn(&T) -> Vec<String>,
) {
    let body: Vec<Vec<String>> = rows.iter().map(cells).collect();
    let out = match format {
        TableFormat::Json => {
            let mut s = serde_json::to_string_pretty(rows)
                .expect("store rows are plain data and always serialise");
            s.push('\n');
            s
        }
        TableFormat::Table => table(columns, &body),
        TableFormat::Csv => csv(columns, &body),
    };
    print!("{out}");
}

const RECORDING_COLUMNS: &[&str] = &[
    "id",
    "created_on",
    "duration_s",
    "samplerate_hz",
    "channels",
    "time_expansion",
    "deployment",
    "path",
    "deleted_on",
];

fn recording_row(r: &StoredRecording) -> Vec<String> {
    let rec = &r.recording;
    vec![
        rec.id.to_string(),
        rec.created_on.to_string(),
        rec.duration.to_string(),
        rec.samplerate.to_string(),
        rec.audio_channels.to_string(),
        rec.time_expansion.to_string(),
        rec.deployment.name.clone(),
        rec.path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        r.deleted_on.map(|t| t.to_string()).unwrap_or_default(),
    ]
}

const OUTPUT_COLUMNS: &[&str] = &[
    "id",
    "created_on",
    "name_model",
    "recording_id",
    "recording_created_on",
    "detections",
    "best_score",
];

fn output_row(o: &ModelOutput) -> Vec<String> {
    let best = o
        .detections
        .iter()
        .map(|d| d.detection_score)
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.max(s)))
        });
    vec![
        o.id.to_string(),
        o.created_on.to_string(),
        o.name_model.clone(),
        o.recording.id.to_string(),
        o.recording.created_on.to_string(),
        o.detections.len().to_string(),
        best.map(|s| s.to_string()).unwrap_or_default(),
    ]
}

const DETECTION_COLUMNS: &[&str] = &[
    "id",
    "created_on",
    "name_model",
    "prediction_type",
    "detection_score",
    "start_time_s",
    "low_freq_hz",
    "end_time_s",
    "high_freq_hz",
    "tags",
    "recording_id",
];

fn detection_row(f: &FoundDetection) -> Vec<String> {
    let d: &Detection = &f.detection;
    let coord = |i: usize| {
        d.location
            .map(|b| b.coordinates[i].to_string())
            .unwrap_or_default()
    };
    let tags = d
        .tags
        .iter()
        .map(|t| format!("{}={} ({})", t.tag.key, t.tag.value, t.confidence_score))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        d.id.to_string(),
        f.created_on.to_string(),
        f.name_model.clone(),
        d.prediction_type.as_str().to_owned(),
        d.detection_score.to_string(),
        coord(0),
        coord(1),
        coord(2),
        coord(3),
        tags,
        f.recording_id.to_string(),
    ]
}

/// Left-aligned columns two spaces apart, a header line first.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (cell, w) in cells.zip(&widths) {
            let _ = write!(text, "{cell:<w$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// RFC 4180 CSV: cells with a comma, quote or line break are quoted, quotes doubled.
fn csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let quote = |cell: &str| {
        if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_owned()
        }
    };
    let mut out = String::new();
    let lines = std::iter::once(header.iter().map(|h| quote(h)).collect::<Vec<_>>())
        .chain(rows.iter().map(|r| r.iter().map(|c| quote(c)).collect()));
    for cells in lines {
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

fn print_info(info: &Info, format: OutputFormat) -> ExitStatus {
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(info).expect("the info is plain data and serialises")
        ),
        OutputFormat::Text => {
            let mut out = String::new();
            let _ = writeln!(out, "path            {}", info.path);
            let _ = writeln!(out, "schema version  {}", info.schema_version);
            let _ = writeln!(out, "user_version    {}", info.user_version);
            let _ = writeln!(out, "journal mode    {}", info.journal_mode);
            let _ = writeln!(out, "size            {} bytes", info.size_bytes);
            for t in &info.tables {
                let _ = writeln!(out, "rows            {:<24} {}", t.table, t.rows);
            }
            let _ = writeln!(out, "integrity       {}", info.integrity.join("; "));
            print!("{out}");
        }
    }
    if info.is_ok() {
        ExitStatus::Success
    } else {
        eprintln!(
            "error: metadata store `{}` failed its integrity check",
            info.path
        );
        ExitStatus::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows = vec![vec![
            "a,b".to_owned(),
            "say \"hi\"".to_owned(),
            "x".to_owned(),
        ]];
        assert_eq!(
            csv(&["one", "two", "three"], &rows),
            "one,two,three\r\n\"a,b\",\"say \"\"hi\"\"\",x\r\n"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![vec!["long value".to_owned(), "1".to_owned()]];
        assert_eq!(table(&["id", "n"], &rows), "id          n\nlong value  1\n");
    }
}
