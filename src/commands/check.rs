//! `acoupi check MANIFEST`: parse and validate, report every problem, write nothing.

use std::io::Write;

use crate::ExitStatus;
use crate::cli::{CheckArgs, Deny};
use crate::compile;
use crate::report::{self, Format, Style};

/// Runs the check; diagnostics go to stderr (human) or stdout (json, github).
pub fn run(args: &CheckArgs) -> ExitStatus {
    let source = match compile::read_source(&args.manifest) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitStatus::Error;
        }
    };
    let checked = compile::check_on_host(&source);
    let issues = &checked.issues;
    let failed = issues.iter().any(|i| i.is_error())
        || (args.deny.contains(&Deny::Warnings) && !issues.is_empty());
    let out = match args.format {
        Format::Human => {
            let mut err = std::io::stderr().lock();
            let text = report::human(issues, &source.name, &source.text, Style::detect());
            let _ = write!(err, "{text}");
            let _ = writeln!(err, "{}", report::summary(issues, &source.name));
            Ok(())
        }
        Format::Json => {
            let doc = report::json(issues, &source.name, &source.text);
            // Streamed: half a million diagnostics need no second copy as one string.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(out))
                .and_then(|()| out.flush())
        }
        Format::Github => write!(
            std::io::stdout().lock(),
            "{}",
            report::github(issues, &source.name, &source.text)
        ),
    };
    if let Err(e) = out {
        eprintln!("error: could not write the report: {e}");
        return ExitStatus::Error;
    }
    if failed {
        ExitStatus::Failure
    } else {
        ExitStatus::Success
    }
}
