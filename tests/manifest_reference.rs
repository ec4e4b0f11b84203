//! The language reference's examples run: every ```kdl block in `schema/manifest.md` preceded
//! by an `<!-- expect: OUTCOME -->` marker is checked, and must give that outcome.
//!
//! Marker grammar: `<!-- expect: CODE -->` (a diagnostic code such as
//! `model::unconsumed_queue`) or `<!-- expect: ok -->`, on the line right before the block's
//! opening fence (blank lines between are allowed). A block is a fragment: unless it has its
//! own `program` (and `microphone`) node, the smallest valid manifest's is added in front.
//! `CODE` means the check reports that code, and only that code; `ok` means no issue at all.

use acoupi::compile;

const PROGRAM: &str = "program \"p\"\n";
const MICROPHONE: &str = "microphone \"m\" { synthetic \"sine\" }\n";

/// One marked example: the line of its marker, the outcome, the KDL.
struct Example {
    line: usize,
    expect: String,
    kdl: String,
}

fn examples(text: &str) -> Vec<Example> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("<!-- expect:") else {
            continue;
        };
        let expect = rest
            .strip_suffix("-->")
            .unwrap_or_else(|| panic!("manifest.md:{}: marker not closed: {line}", i + 1))
            .trim()
            .to_owned();
        let mut j = i + 1;
        while lines.get(j).is_some_and(|l| l.trim().is_empty()) {
            j += 1;
        }
        assert_eq!(
            lines.get(j).map(|l| l.trim()),
            Some("```kdl"),
            "manifest.md:{}: an expect marker must precede a ```kdl block",
            i + 1
        );
        let body: Vec<&str> = lines[j + 1..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .copied()
            .collect();
        assert!(
            j + 1 + body.len() < lines.len(),
            "manifest.md:{}: the ```kdl block is not closed",
            i + 1
        );
        out.push(Example {
            line: i + 1,
            expect,
            kdl: body.join("\n") + "\n",
        });
    }
    out
}

/// The example as a manifest: its own `program`/`microphone` nodes, else the minimal ones.
fn manifest(kdl: &str) -> String {
    let has = |node: &str| {
        kdl.lines()
            .any(|l| l.starts_with(&format!("{node} ")) || l.starts_with(&format!("{node}{{")))
    };
    let mut m = String::new();
    if !has("program") {
        m.push_str(PROGRAM);
    }
    if !has("microphone") {
        m.push_str(MICROPHONE);
    }
    m + kdl
}

#[test]
fn marked_examples_give_the_outcome_they_state() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/manifest.md");
    let text = fs_err::read_to_string(path).unwrap();
    let examples = examples(&text);
    assert!(
        examples.len() >= 3,
        "expected the reference's marked examples, found {}",
        examples.len()
    );
    let mut failures = Vec::new();
    for ex in &examples {
        let source = manifest(&ex.kdl);
        let checked = compile::check(&compile::from_bytes(
            "example.kdl",
            "/example.kdl".into(),
            source.clone().into_bytes(),
        ));
        let codes: Vec<String> = checked.issues.iter().map(|i| i.code_str()).collect();
        let holds = if ex.expect == "ok" {
            codes.is_empty()
        } else {
            !codes.is_empty() && codes.iter().all(|c| *c == ex.expect)
        };
        if !holds {
            failures.push(format!(
                "manifest.md:{}: expected {}, got {codes:?} for\n{source}",
                ex.line, ex.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The extractor itself: a marker, blank lines, a block; the prelude added to fragments only.
#[test]
fn examples_are_extracted_with_their_marker() {
    let text =
        "intro\n<!-- expect: model::x -->\n\n```kdl\nworkers {\n}\n```\n```kdl\nno marker\n```\n";
    let ex = examples(text);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].line, 2);
    assert_eq!(ex[0].expect, "model::x");
    assert_eq!(ex[0].kdl, "workers {\n}\n");
    assert_eq!(
        manifest("workers {\n}\n"),
        format!("{PROGRAM}{MICROPHONE}workers {{\n}}\n")
    );
    assert_eq!(
        manifest("program \"q\"\n"),
        format!("{MICROPHONE}program \"q\"\n")
    );
}
