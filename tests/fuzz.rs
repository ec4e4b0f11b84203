//! Property tests: no input makes the parser, the validator, the report renderers or the
//! build panic, and every diagnostic points inside the text it was reported against.
//!
//! Five properties feed the whole pipeline (`from_bytes` -> `check` -> `report::human`,
//! `report::json`, `report::github`, `report::summary`, and `build` when the check passes):
//! arbitrary bytes (invalid UTF-8 included), arbitrary strings, soups of KDL-ish tokens, and
//! two kinds of mutations of the manifests under `examples/`: raw ones (byte ranges deleted,
//! duplicated, swapped or spliced in from another example, tokens inserted anywhere) and
//! structured ones (a string, word or number replaced by a value or name of the language, a
//! whole node line inserted), which mostly keep the KDL well formed and so reach the
//! validator and the build.
//!
//! Each property runs `ACOUPI_FUZZ_CASES` cases (256 by default, so `cargo test` stays fast).
//! A long run:
//!
//! ```text
//! ACOUPI_FUZZ_CASES=200000 cargo test --release --test fuzz
//! ```
//!
//! Last long run, 2026-11-24, on a 2-core machine: the release test binary built by
//! `cargo test --release --test fuzz`, run as
//! `ACOUPI_FUZZ_CASES=300000 target/release/deps/fuzz-<hash> --test-threads=2`
//! (equivalent to `ACOUPI_FUZZ_CASES=300000 cargo test --release --test fuzz`):
//! 300,000 cases for each of the five pipeline properties (1.5 million inputs), 768 s
//! (12.8 minutes) wall time, 899 s CPU. No panics, no invariant violations.
//!
//! After the pre-scan went in (2026-11-28), a shorter run in a debug build:
//! `ACOUPI_FUZZ_CASES=3000 cargo test --test fuzz`, 15,000 pipeline inputs and the hostile
//! tests, 35 s. No panics, no invariant violations.
//!
//! Hostile inputs have their own plain tests (`hostile_*`, below the properties): nesting
//! far past the limit, runs of stray tokens the KDL parser's error recovery restarts at,
//! comments built to recurse, very long lines, hundreds of thousands of diagnostics, and a
//! file at the size limit. Each must end in diagnostics, not a crash; each runs under a
//! generous hang guard (a minute, in a debug build), not a timing.
//!
//! Failures are not persisted to `proptest-regressions/`: a panic found here becomes a plain
//! `#[test]` regression case at the bottom of this file.

use std::sync::{Arc, OnceLock};

use std::time::{Duration, Instant};

use acoupi::compile::{self, BuildError, MAX_MANIFEST_BYTES, Source};
use acoupi::diagnostic::primary_span;
use acoupi::manifest::{MAX_DEPTH, SAFE_SOLID};
use acoupi::plan::BuildContext;
use acoupi::report::{self, Style};
use camino::Utf8PathBuf;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

/// Cases per property: `ACOUPI_FUZZ_CASES`, else 256.
fn config() -> Config {
    let cases = std::env::var("ACOUPI_FUZZ_CASES")
        .ok()
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("ACOUPI_FUZZ_CASES must be a number, not `{v}`"))
        })
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The build context every build uses: fixed, so nothing depends on where the test runs.
fn context() -> BuildContext {
    BuildContext {
        home: "/home/pi/.acoupi".into(),
        exe: "/usr/local/bin/acoupi".into(),
        source_path: "/home/pi/fuzz.kdl".into(),
    }
}

/// Every `examples/*.kdl`, read once, sorted by name.
fn examples() -> &'static [Vec<u8>] {
    static EXAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .expect("examples/ is readable")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
            .collect();
        paths.sort();
        let texts: Vec<_> = paths
            .iter()
            .map(|p| std::fs::read(p).expect("example is readable"))
            .collect();
        assert!(
            texts.len() >= 4,
            "expected the four examples, found {paths:?}"
        );
        texts
    })
}

/// KDL punctuation and syntax fragments.
const SYNTAX: &[&str] = &[
    "{", "}", "\"", "=", ";", "\n", "\r\n", "\r", " ", "\t", "\\", "/-", "//", "/*", "*/", "(",
    ")", "(u8)", "#", "#\"", "\"#", "\"\"\"", "\"\"\"\n", "\\\n", "\\u{",
];

/// Whole KDL values, most of them strings the validator interprets.
const VALUES: &[&str] = &[
    "#true",
    "#false",
    "#null",
    "#inf",
    "#-inf",
    "#nan",
    "true",
    "null",
    "-1",
    "0",
    "-0",
    "1",
    "2",
    "1.5",
    "0.5",
    "1e999",
    "-1e999",
    "1e-999",
    "0x0",
    "0xFFFFFFFFFFFFFFFFFF",
    "0b1",
    "0o7",
    "1_000",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "99999999999999999999999999999999999999",
    "4294967296",
    "65536",
    "\"\"",
    "\" \"",
    "\"25:00\"",
    "\"23:59\"",
    "\"00:00\"",
    "\"24:00\"",
    "\"-1:00\"",
    "\"12:60\"",
    "\"sunset-99h\"",
    "\"sunrise+25h\"",
    "\"sunset-30m\"",
    "\"dusk\"",
    "\"dawn-0s\"",
    "\"noon\"",
    "\"sunrise+\"",
    "\"0s\"",
    "\"-1s\"",
    "\"1ms\"",
    "\"1ns\"",
    "\"3s\"",
    "\"10s\"",
    "\"1h\"",
    "\"999999999999999999h\"",
    "\"18446744073709551615s\"",
    "\"1e9s\"",
    "\"1.5s\"",
    "\"s\"",
    "\"99999999999999999999GiB\"",
    "\"18446744073709551615B\"",
    "\"16EiB\"",
    "\"0B\"",
    "\"1.5KiB\"",
    "\"1GiB\"",
    "\"85%\"",
    "\"0%\"",
    "\"100%\"",
    "\"99999999999999999999999%\"",
    "\"%\"",
    "\"1.5%\"",
    "\"180d\"",
    "\"0Hz\"",
    "\"1Hz\"",
    "\"999999999999kHz\"",
    "\"250kHz\"",
    "\"48kHz\"",
    "\"NaNkHz\"",
    "\"-5kHz\"",
    "\"Europe/Nowhere\"",
    "\"UTC\"",
    "\"memory\"",
    "\"amqp://\"",
    "\"amqp://[::1\"",
    "\"http://\"",
    "\"mqtt://u:p@h:99999/\"",
    "\"relative/path\"",
    "\"/\"",
    "\"..\"",
    "\"/tmp/../x\"",
    "\"{date:%Y}\"",
    "\"{date:%Q}\"",
    "\"{\"",
    "\"}\"",
    "\"{{ x }}\"",
    "\"{% raw %}\"",
    "\"{# c #}\"",
    "\"$(rm -rf /)\"",
    "\"'\"",
    "\"a\\nb\"",
    "\"a,b,,c\"",
    "\",\"",
    "\"recording\"",
    "\"detection\"",
    "\"default\"",
    "\"heartbeat\"",
    "\"manage-files\"",
    "\"detect\"",
    "\"bats\"",
    "\"usb\"",
    "\"ultramic\"",
    "\"delete\"",
    "\"keep\"",
    "\"i16\"",
    "\"f32\"",
    "\"sweep\"",
    "\"noise\"",
    "\"band-energy\"",
    "\"command\"",
    "\"oldest-first\"",
    "\"\\u{10FFFF}\"",
    "#\"raw \"quoted\" string\"#",
    "\"\"\"\n  multi\n  line\n  \"\"\"",
];

/// Node names of the language (and a near miss).
const NODES: &[&str] = &[
    "acoupi",
    "program",
    "broker",
    "microphone",
    "recording",
    "paths",
    "detector",
    "saving",
    "retention",
    "max-age",
    "max-usage",
    "keep-newest",
    "staging-budget",
    "messaging",
    "summary",
    "workers",
    "worker",
    "task",
    "window",
    "keep-if",
    "otherwise",
    "folder",
    "detection",
    "every",
    "mqtt",
    "http",
    "send",
    "heartbeat",
    "message",
    "statistics",
    "thresholds",
    "synthetic",
    "device",
    "samplerate",
    "channels",
    "format",
    "duration",
    "interval",
    "min-free-disk",
    "staging",
    "recordings",
    "metadata",
    "messages",
    "band",
    "threshold",
    "frame",
    "description",
    "timezone",
    "location",
    "username",
    "password",
    "header",
    "timeout",
    "topic-per-type",
    "duty-cycle",
    "bursts",
    "continuous",
    "time-expansion",
    "client-id",
    "device-id",
    "tls",
    "keep_if",
    "Recording",
];

/// Property names of the language.
const PROPS: &[&str] = &[
    "version",
    "from",
    "to",
    "queues",
    "queue",
    "concurrency",
    "prefetch",
    "every",
    "n",
    "min-score",
    "detector",
    "kind",
    "low",
    "mid",
    "high",
    "host",
    "port",
    "topic",
    "batch",
    "order",
    "env",
    "file",
    "url",
    "latitude",
    "longitude",
    "elevation",
    "time-limit",
    "soft-time-limit",
    "retries",
    "amplitude",
    "length",
    "frequency",
    "offset",
    "mode",
    "loop",
    "per",
    "max-attempts",
    "max-age",
];

/// Unicode and control characters, KDL's other newlines and spaces among them.
const UNICODE: &[&str] = &[
    "é",
    "ß",
    "日本語",
    "🦇",
    "\u{0}",
    "\u{1}",
    "\u{7f}",
    "\u{85}",
    "\u{a0}",
    "\u{200b}",
    "\u{200e}",
    "\u{202e}",
    "\u{2028}",
    "\u{2029}",
    "\u{3000}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "e\u{301}",
];

/// Every fragment the mutator inserts and the token soup strings together: the categories
/// above, and `name=` forms of the properties.
fn tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let mut all: Vec<String> = [SYNTAX, VALUES, NODES, PROPS, UNICODE]
            .concat()
            .into_iter()
            .map(str::to_owned)
            .collect();
        all.extend(PROPS.iter().map(|p| format!("{p}=")));
        all
    })
}

fn pick<'a, T: AsRef<str>>(list: &'a [T], i: &Index) -> &'a str {
    list[i.index(list.len())].as_ref()
}

/// One edit of a byte buffer. Positions and lengths are resolved against the buffer when
/// applied, so every generated edit applies to any buffer.
#[derive(Debug, Clone)]
enum Mutation {
    /// Remove a range.
    Delete { at: Index, len: usize },
    /// Copy a range to another position.
    Duplicate { from: Index, len: usize, to: Index },
    /// Exchange two ranges of the same length (clamped so they do not overlap).
    Swap { a: Index, b: Index, len: usize },
    /// Insert one of [`tokens`] anywhere.
    Insert { at: Index, token: Index },
    /// Insert a range of another example.
    Splice {
        at: Index,
        example: Index,
        from: Index,
        len: usize,
    },
    /// Replace one atom (a quoted string, or a run of word characters) with a value, a node
    /// name or a property name: these edits mostly keep the KDL well formed, so they reach
    /// the validator.
    Replace { atom: Index, with: Index },
    /// Insert a whole node line, `name value… prop=value…`, at the start of a line.
    Line {
        line: Index,
        node: Index,
        args: Vec<Index>,
        props: Vec<(Index, Index)>,
    },
}

/// Any edit.
fn mutation() -> impl Strategy<Value = Mutation> {
    let len = || prop_oneof![3 => 0usize..8, 2 => 0usize..64, 1 => 0usize..512];
    prop_oneof![
        10 => structured_mutation(),
        2 => (any::<Index>(), len()).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<Index>(), len(), any::<Index>())
            .prop_map(|(from, len, to)| Mutation::Duplicate { from, len, to }),
        2 => (any::<Index>(), any::<Index>(), len())
            .prop_map(|(a, b, len)| Mutation::Swap { a, b, len }),
        4 => (any::<Index>(), any::<Index>())
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), len()).prop_map(
            |(at, example, from, len)| Mutation::Splice { at, example, from, len }
        ),
    ]
}

/// The edits that mostly keep the KDL well formed: atoms replaced, node lines inserted.
fn structured_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), any::<Index>())
            .prop_map(|(atom, with)| Mutation::Replace { atom, with }),
        1 => (
            any::<Index>(),
            any::<Index>(),
            prop::collection::vec(any::<Index>(), 0..3),
            prop::collection::vec(any::<(Index, Index)>(), 0..3),
        )
            .prop_map(|(line, node, args, props)| Mutation::Line { line, node, args, props }),
    ]
}

/// A position in `0..=len`.
fn position(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// The atoms of a manifest: byte ranges of single-line quoted strings and of runs of
/// characters that can make up a bare identifier or number.
fn atoms(buf: &[u8]) -> Vec<(usize, usize)> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b"-_.+#:%".contains(&b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'"' {
            let mut j = i + 1;
            while j < buf.len() && buf[j] != b'"' && buf[j] != b'\n' {
                j += if buf[j] == b'\\' { 2 } else { 1 };
            }
            if j < buf.len() && buf[j] == b'"' {
                out.push((i, j + 1));
            }
            i = j + 1;
        } else if word(buf[i]) {
            let mut j = i;
            while j < buf.len() && word(buf[j]) {
                j += 1;
            }
            out.push((i, j));
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn apply(buf: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Delete { at, len } => {
            let start = position(at, buf.len());
            let end = (start + len).min(buf.len());
            buf.drain(start..end);
        }
        Mutation::Duplicate { from, len, to } => {
            let start = position(from, buf.len());
            let end = (start + len).min(buf.len());
            let range = buf[start..end].to_vec();
            let to = position(to, buf.len());
            buf.splice(to..to, range);
        }
        Mutation::Swap { a, b, len } => {
            let (a, b) = (position(a, buf.len()), position(b, buf.len()));
            let (lo, hi) = (a.min(b), a.max(b));
            // The first range ends before the second begins, and the second fits.
            let len = (*len).min(hi - lo).min(buf.len() - hi);
            let second = buf[hi..hi + len].to_vec();
            let first: Vec<u8> = buf.splice(lo..lo + len, second).collect();
            buf.splice(hi..hi + len, first);
        }
        Mutation::Insert { at, token } => {
            let at = position(at, buf.len());
            buf.splice(at..at, pick(tokens(), token).bytes());
        }
        Mutation::Splice {
            at,
            example,
            from,
            len,
        } => {
            let other = &examples()[example.index(examples().len())];
            let start = position(from, other.len());
            let end = (start + len).min(other.len());
            let at = position(at, buf.len());
            buf.splice(at..at, other[start..end].iter().copied());
        }
        Mutation::Replace { atom, with } => {
            let atoms = atoms(buf);
            if atoms.is_empty() {
                return;
            }
            let (start, end) = atoms[atom.index(atoms.len())];
            let old = &buf[start..end];
            // Like for like most of the time: a value for a value, a name for a name.
            let is_value =
                old[0] == b'"' || old[0] == b'#' || old[0].is_ascii_digit() || old[0] == b'-';
            let followed_by_eq = buf.get(end) == Some(&b'=');
            let list = match (with.index(8), is_value, followed_by_eq) {
                (0, ..) => tokens().iter().map(String::as_str).collect::<Vec<_>>(),
                (_, true, _) => VALUES.to_vec(),
                (_, false, true) => PROPS.to_vec(),
                (1..=2, false, false) => VALUES.to_vec(),
                _ => NODES.to_vec(),
            };
            let new = pick(&list, with).as_bytes().to_vec();
            buf.splice(start..end, new);
        }
        Mutation::Line {
            line,
            node,
            args,
            props,
        } => {
            let starts: Vec<usize> = std::iter::once(0)
                .chain(
                    buf.iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(i, _)| i + 1),
                )
                .collect();
            let at = starts[line.index(starts.len())];
            let mut text = pick(NODES, node).to_owned();
            for a in args {
                text.push(' ');
                text.push_str(pick(VALUES, a));
            }
            for (k, v) in props {
                text.push(' ');
                text.push_str(pick(PROPS, k));
                text.push('=');
                text.push_str(pick(VALUES, v));
            }
            text.push('\n');
            buf.splice(at..at, text.into_bytes());
        }
    }
}

/// Runs the whole pipeline on `bytes` and checks what must hold for any input. Returns
/// whether the manifest was valid (so generators can be seen to reach the validator).
fn pipeline(bytes: Vec<u8>) -> bool {
    pipeline_codes(bytes).0
}

/// [`pipeline`], also returning the diagnostic codes.
fn pipeline_codes(bytes: Vec<u8>) -> (bool, Vec<String>) {
    let source: Source =
        compile::from_bytes("fuzz.kdl", Utf8PathBuf::from("/fuzz/fuzz.kdl"), bytes);
    let text: &Arc<String> = &source.text;
    let checked = compile::check(&source);

    for issue in &checked.issues {
        let span = primary_span(issue)
            .unwrap_or_else(|| panic!("issue without a label: {issue:?}\n--- text ---\n{text}"));
        assert!(
            span.offset() + span.len() <= text.len(),
            "span {}+{} is outside the {}-byte text: {issue:?}\n--- text ---\n{text}",
            span.offset(),
            span.len(),
            text.len(),
        );
    }
    let errors = checked.issues.iter().filter(|i| i.is_error()).count();
    assert_eq!(
        checked.model.is_some(),
        errors == 0,
        "a model comes with no errors, and only then: {:?}",
        checked.issues
    );
    if source.not_utf8_at.is_some() {
        assert!(checked.model.is_none(), "invalid UTF-8 was accepted");
    }

    let human = report::human(&checked.issues, &source.name, text, Style::PLAIN);
    assert_eq!(
        human.is_empty(),
        checked.issues.is_empty(),
        "the human report is empty exactly when there are no issues"
    );

    let json = report::json(&checked.issues, &source.name, text);
    assert_eq!(json.diagnostics.len(), checked.issues.len());
    assert_eq!(json.errors, errors);
    assert_eq!(json.valid, errors == 0);
    let line_count = text.matches('\n').count() + 1;
    for d in &json.diagnostics {
        assert!(d.line >= 1 && d.column >= 1, "{d:?}");
        assert!(d.end_line >= 1 && d.end_column >= 1, "{d:?}");
        assert!(d.line <= line_count && d.end_line <= line_count, "{d:?}");
        assert!(
            (d.end_line, d.end_column) >= (d.line, d.column),
            "the end comes before the start: {d:?}"
        );
    }
    let doc = serde_json::to_string(&json).expect("the JSON report serialises");
    let back: serde_json::Value = serde_json::from_str(&doc).expect("and parses back");
    assert_eq!(
        back["diagnostics"].as_array().map(Vec::len),
        Some(checked.issues.len())
    );

    let github = report::github(&checked.issues, &source.name, text);
    assert_eq!(
        github.lines().count(),
        checked.issues.len(),
        "one annotation line per issue:\n{github}"
    );

    let summary = report::summary(&checked.issues, &source.name);
    assert_eq!(summary.contains("is valid"), errors == 0, "{summary}");

    let codes = checked.issues.iter().map(|i| i.code_str()).collect();
    let valid = checked.model.is_some();
    if valid {
        match compile::build(&source, &context()) {
            Ok(built) => {
                assert_eq!(built.warnings.len(), checked.issues.len());
                assert!(!built.tree.to_text().is_empty());
            }
            Err(BuildError::Emit(e)) => {
                panic!("a checked manifest failed to render: {e}\n--- text ---\n{text}")
            }
            Err(BuildError::Invalid(issues)) => {
                panic!("check passed but build found errors: {issues:?}\n--- text ---\n{text}")
            }
        }
    }
    (valid, codes)
}

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        8 => any::<Index>().prop_map(|i| pick(tokens(), &i).to_owned()),
        1 => "[ -~]{1,8}",
        1 => any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(token, 0..200).prop_map(|ts| ts.concat().into_bytes())
}

/// An example with a few edits applied.
fn mutated_example(
    edit: impl Strategy<Value = Mutation>,
    edits: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<u8>> {
    (any::<Index>(), prop::collection::vec(edit, edits)).prop_map(|(example, edits)| {
        let mut buf = examples()[example.index(examples().len())].clone();
        for m in &edits {
            apply(&mut buf, m);
        }
        buf
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        pipeline(bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        pipeline(text.into_bytes());
    }

    #[test]
    fn token_soups_never_panic(bytes in token_soup()) {
        pipeline(bytes);
    }

    #[test]
    fn mutated_examples_never_panic(bytes in mutated_example(mutation(), 1..6)) {
        pipeline(bytes);
    }

    #[test]
    fn structured_mutations_never_panic(bytes in mutated_example(structured_mutation(), 1..10)) {
        pipeline(bytes);
    }
}

/// The generators are only worth anything if they get past the parser: mutating the
/// examples must produce valid manifests some of the time and invalid ones most of the time.
#[test]
fn mutations_reach_the_validator() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = mutated_example(mutation(), 1..6);
    let (mut valid, mut invalid) = (0, 0);
    for _ in 0..300 {
        let bytes = strategy.new_tree(&mut runner).expect("a value").current();
        if pipeline(bytes) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid > 0, "no mutation left a valid manifest");
    assert!(invalid > valid, "{valid} valid, {invalid} invalid");
}

/// Unmutated examples go through the same pipeline and are valid.
#[test]
fn examples_pass_the_pipeline() {
    for example in examples() {
        assert!(pipeline(example.clone()));
    }
}

proptest! {
    #![proptest_config(config())]

    /// The mutator itself: swaps keep every byte, duplicates and inserts only grow, deletes
    /// only shrink, on any buffer (the empty one included).
    #[test]
    fn mutations_do_what_they_say(
        buf in prop::collection::vec(any::<u8>(), 0..64),
        m in mutation(),
    ) {
        let mut out = buf.clone();
        apply(&mut out, &m);
        match m {
            Mutation::Swap { .. } => {
                let (mut a, mut b) = (buf.clone(), out.clone());
                a.sort_unstable();
                b.sort_unstable();
                prop_assert_eq!(a, b);
            }
            Mutation::Delete { .. } => prop_assert!(out.len() <= buf.len()),
            Mutation::Insert { .. } => prop_assert!(out.len() > buf.len()),
            Mutation::Line { .. } => prop_assert!(out.len() > buf.len()),
            Mutation::Replace { .. } => {}
            Mutation::Duplicate { .. } | Mutation::Splice { .. } => {
                prop_assert!(out.len() >= buf.len());
            }
        }
    }
}

/// How long a hostile input may take in a debug build before it counts as a hang: far
/// above what linear work needs, far below what quadratic work on these sizes takes.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs the pipeline on `text` under the hang guard; returns the diagnostic codes.
fn hostile(what: &str, text: String) -> Vec<String> {
    let started = Instant::now();
    let (_, codes) = pipeline_codes(text.into_bytes());
    let took = started.elapsed();
    assert!(took < HANG_GUARD, "{what}: took {took:?}");
    codes
}

const HEAD: &str = "program \"x\" { timezone \"UTC\"; }\nmicrophone \"m\" { device \"d\"; }\n";

#[test]
fn hostile_nesting_stops_at_the_limit() {
    for levels in [MAX_DEPTH + 1, 5_000, 200_000] {
        let text = format!("{HEAD}{}{}", "a {".repeat(levels), "}".repeat(levels));
        assert_eq!(
            hostile("nesting", text),
            ["manifest::too_deep"],
            "{levels} levels"
        );
    }
    // Unclosed, and inside a known node.
    let text = format!("{HEAD}messaging {}", "{ mqtt ".repeat(100_000));
    assert_eq!(hostile("unclosed nesting", text), ["manifest::too_deep"]);
    // At the limit the KDL parser runs, and reports the unknown node.
    let text = format!("{HEAD}{}{}", "a {".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
    assert_eq!(
        hostile("nesting at the limit", text),
        ["manifest::unknown_node"]
    );
}

#[test]
fn hostile_stray_tokens_are_syntax_errors() {
    for (what, junk) in [
        ("closing braces", "}"),
        ("closing parentheses", ")"),
        ("parentheses and spaces", ") "),
        ("equals signs", "="),
        ("glued strings", "\"a\""),
        ("blocks after blocks", "{}"),
        ("bad escapes", "\"\\q{ "),
    ] {
        let text = format!("{HEAD}a {}\n", junk.repeat(500_000 / junk.len()));
        let codes = hostile(what, text);
        assert!(!codes.is_empty(), "{what}");
        // Bad escapes leave strings where the stray quotes put them, and braces outside.
        let stops = ["manifest::syntax", "manifest::too_deep"];
        assert!(
            codes.iter().all(|c| stops.contains(&c.as_str())),
            "{what}: {codes:?}"
        );
    }
    // Up to the pre-scan's threshold the KDL parser reports stray tokens itself, restarting
    // at each: its thread's stack holds that many restarts.
    for junk in [")", "}", "=", ") "] {
        let solid = HEAD.bytes().filter(|b| !b.is_ascii_whitespace()).count() + 1;
        let count = (SAFE_SOLID - solid) / junk.trim().len();
        let text = format!("{HEAD}a {}\n", junk.repeat(count));
        let codes = hostile("stray tokens up to the threshold", text);
        // The KDL parser's own errors: many, where the pre-scan reports one.
        assert!(codes.len() > 1, "{junk:?}: {codes:?}");
        assert!(codes.iter().all(|c| c == "manifest::syntax"), "{codes:?}");
    }
}

#[test]
fn hostile_comments_never_recurse() {
    for (what, text) in [
        ("stars", format!("{HEAD}/*{}*/\n", "*".repeat(1_000_000))),
        ("slashes", format!("{HEAD}/*{}*/\n", "/ ".repeat(500_000))),
        (
            "nested",
            format!("{HEAD}{}{}\n", "/*".repeat(200_000), "*/".repeat(200_000)),
        ),
        (
            "line comments",
            format!("{HEAD}{}", "// {{{{ \"\n".repeat(100_000)),
        ),
    ] {
        assert_eq!(hostile(what, text), Vec::<String>::new(), "{what}");
    }
    let text = format!("{HEAD}{}\n", "/*".repeat(200_000));
    assert_eq!(hostile("unclosed", text), ["manifest::syntax"]);
    let text = format!("{HEAD}a \"\"\"\n{}", "{ x\n".repeat(100_000));
    assert_eq!(
        hostile("unclosed multi-line string", text),
        ["manifest::syntax"]
    );
}

#[test]
fn hostile_long_lines_and_many_diagnostics_are_all_reported() {
    // One line, 50,000 unknown properties.
    let n = 50_000;
    let text = format!("program \"x\" {}\n", "a=1 ".repeat(n));
    let codes = hostile("a long line", text.clone());
    assert!(
        codes
            .iter()
            .filter(|c| *c == "manifest::unknown_property")
            .count()
            >= n
    );
    let source = compile::from_bytes("l.kdl", "/l.kdl".into(), text.into_bytes());
    let issues = compile::check(&source).issues;
    let human = report::human(&issues, "l.kdl", &source.text, Style::PLAIN);
    let tail = &human[human.len().saturating_sub(300)..];
    assert!(human.contains("more errors, not shown"), "{tail}");
    // 100,000 unknown nodes, one a line.
    let text = format!("{HEAD}{}", "a\n".repeat(100_000));
    let codes = hostile("many unknown nodes", text);
    assert_eq!(codes.len(), 100_000);
}

#[test]
fn hostile_files_at_the_size_limit_are_checked() {
    let limit = MAX_MANIFEST_BYTES as usize;
    // A valid manifest that is mostly comments.
    let comment = "// a remark about the deployment, repeated to fill the file\n";
    let mut text = examples()[2].clone();
    while text.len() + comment.len() < limit {
        text.extend_from_slice(comment.as_bytes());
    }
    let text = String::from_utf8(text).expect("examples are UTF-8");
    assert_eq!(hostile("comments", text), Vec::<String>::new());
    // Valid nodes to the limit: workers.
    let mut text = String::from(HEAD);
    text.push_str("workers {\n    worker \"main\" queues=\"recording,default\"\n");
    let mut i = 0;
    while text.len() < limit - 100 {
        text.push_str(&format!("    worker \"w{i}\" queues=\"default\"\n"));
        i += 1;
    }
    text.push_str("}\n");
    // Checked and reported, not built: rendering a hundred thousand units is another test.
    let started = Instant::now();
    let source = compile::from_bytes("w.kdl", "/w.kdl".into(), text.into_bytes());
    let checked = compile::check(&source);
    assert!(
        checked.model.is_some(),
        "{:?}",
        &checked.issues[..checked.issues.len().min(5)]
    );
    report::json(&checked.issues, "w.kdl", &source.text);
    let took = started.elapsed();
    assert!(took < HANG_GUARD, "workers: took {took:?}");
}
