//! Edits on small manifests: each keeps every byte it does not change.

use super::*;

const SRC: &str = r#"// a sensor
program "p" {
    timezone "UTC" // where it is
}

recording {
    duration "3s"   // short
    window from="06:00" to="22:00"
}

detector "bats" kind="band-energy" {
    threshold 0.5
}

saving {
    keep-if detection min-score=0.5
    keep-if window from="21:00" to="21:30"
}

summary every="1h" { statistics }
"#;

fn set(path: &str, values: &[&str]) -> Result<Vec<String>, Error> {
    edit(
        SRC,
        &Op::Set {
            path: path.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        },
    )
}

fn first(path: &str, values: &[&str]) -> String {
    set(path, values).expect("an edit")[0].clone()
}

fn unset(path: &str) -> Result<String, Error> {
    edit(
        SRC,
        &Op::Unset {
            path: path.to_owned(),
        },
    )
    .map(|mut v| v.remove(0))
}

#[test]
fn a_node_value_is_replaced_in_place() {
    let out = first("recording.duration", &["5s"]);
    assert_eq!(out, SRC.replace("duration \"3s\"", "duration \"5s\""));
    let out = first("detector.bats.threshold", &["0.6"]);
    assert_eq!(out, SRC.replace("threshold 0.5", "threshold 0.6"));
}

#[test]
fn a_property_value_is_replaced_in_place() {
    let out = first("saving.keep-if[0].min-score", &["0.4"]);
    assert_eq!(out, SRC.replace("min-score=0.5", "min-score=0.4"));
    let out = first("recording.window.to", &["23:00"]);
    assert_eq!(out, SRC.replace("to=\"22:00\"", "to=\"23:00\""));
}

#[test]
fn strings_stay_strings_first_and_numbers_numbers() {
    let all = set("recording.duration", &["5"]).expect("edit");
    assert_eq!(all[0], SRC.replace("\"3s\"", "\"5\""));
    assert_eq!(all[1], SRC.replace("\"3s\"", "5"));
    let all = set("detector.bats.threshold", &["0.6"]).expect("edit");
    assert_eq!(all[1], SRC.replace("threshold 0.5", "threshold \"0.6\""));
}

#[test]
fn missing_entries_are_added_as_child_nodes_then_properties() {
    let all = set("recording.min-free-disk", &["2GiB"]).expect("edit");
    assert_eq!(
        all[0],
        SRC.replace(
            "to=\"22:00\"\n}",
            "to=\"22:00\"\n    min-free-disk \"2GiB\"\n}"
        )
    );
    assert_eq!(
        all[1],
        SRC.replace("recording {", "recording min-free-disk=\"2GiB\" {")
    );
}

#[test]
fn a_missing_block_is_opened_and_a_missing_top_level_node_appended() {
    let out = first("retention.max-age", &["30d"]);
    assert_eq!(
        out,
        format!("{SRC}\nretention {{\n    max-age \"30d\"\n}}\n")
    );
    let all = set("program.location.latitude", &["51.5"]).expect("edit");
    assert_eq!(
        all[0],
        SRC.replace(
            "// where it is\n}",
            "// where it is\n    location {\n        latitude 51.5\n    }\n}"
        )
    );
    assert!(
        all.contains(&SRC.replace(
            "// where it is\n}",
            "// where it is\n    location latitude=51.5\n}"
        )),
        "{all:#?}"
    );
    // A node without a block gets one.
    let out = first("detector.bats.threshold.extra", &["1"]);
    assert_eq!(
        out,
        SRC.replace("threshold 0.5", "threshold 0.5 {\n        extra 1\n    }")
    );
    // An inline block takes the new node inline.
    let out = first("summary.thresholds", &["x"]);
    assert_eq!(
        out,
        SRC.replace("{ statistics }", "{ statistics; thresholds \"x\" }")
    );
}

#[test]
fn unset_removes_the_line_or_the_property() {
    assert_eq!(
        unset("recording.duration").expect("unset"),
        SRC.replace("    duration \"3s\"   // short\n", "")
    );
    assert_eq!(
        unset("recording.window.to").expect("unset"),
        SRC.replace(" to=\"22:00\"", "")
    );
    assert_eq!(
        unset("saving.keep-if[1]").expect("unset"),
        SRC.replace("    keep-if window from=\"21:00\" to=\"21:30\"\n", "")
    );
    assert_eq!(
        unset("detector.bats").expect("unset"),
        SRC.replace(
            "detector \"bats\" kind=\"band-energy\" {\n    threshold 0.5\n}\n\n",
            ""
        )
    );
    assert_eq!(
        unset("summary.statistics").expect("unset"),
        SRC.replace("{ statistics }", "{ }")
    );
}

#[test]
fn unknown_paths_say_what_is_there() {
    let e = unset("recording.duraton").expect_err("no such node");
    assert!(e.message.contains("no `duraton` in `recording`"), "{e:?}");
    assert!(e.message.contains("`duration`, `window`"), "{e:?}");
    assert_eq!(e.help.as_deref(), Some("did you mean `duration`?"));
    let e = set("detector.bat.threshold", &["1"]).expect_err("no such detector");
    assert!(e.message.contains("no `detector` named `bat`"), "{e:?}");
    assert_eq!(e.help.as_deref(), Some("did you mean `bats`?"));
    let e = set("saving.keep-if.min-score", &["1"]).expect_err("ambiguous");
    assert!(e.message.contains("2 `keep-if` nodes"), "{e:?}");
    let e = set("saving.keep-if[2].min-score", &["1"]).expect_err("out of range");
    assert!(e.message.contains("no `keep-if[2]`"), "{e:?}");
    let e = set("recording", &["1"]).expect_err("a block");
    assert!(e.message.contains("no value of its own"), "{e:?}");
    assert!(
        e.help
            .as_deref()
            .is_some_and(|h| h.contains("`recording.duration`")),
        "{e:?}"
    );
    let e = set("recording.window.to.x", &["1"]).expect_err("into a property");
    assert!(e.message.contains("is a property"), "{e:?}");
    let e = set("detector", &["1"]).expect_err("named");
    assert!(e.message.contains("needs the name"), "{e:?}");
    let e = set("detector.owls.threshold", &["1"]).expect_err("cannot create");
    assert!(e.message.contains("no `detector` named `owls`"), "{e:?}");
}

#[test]
fn get_lists_paths_and_masks_written_secrets() {
    let src = "broker \"amqp://x\" {\n    username \"u\"\n    password \"hunter2\"\n}\nmessaging {\n    mqtt host=\"h\" {\n        password env=\"P\"\n    }\n}\n";
    let lines = get(src, None).expect("get");
    assert_eq!(
        lines,
        [
            ("broker", "amqp://x"),
            ("broker.username", "***"),
            ("broker.password", "***"),
            ("messaging.mqtt.host", "h"),
            ("messaging.mqtt.password.env", "P"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(
        get(SRC, Some("saving.keep-if[0]")).expect("get"),
        [
            ("saving.keep-if[0]", "detection"),
            ("saving.keep-if[0].min-score", "0.5"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(
        get(SRC, Some("detector.bats.threshold")).expect("get"),
        [("detector.bats.threshold".to_owned(), "0.5".to_owned())]
    );
}
