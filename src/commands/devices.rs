//! `acoupi devices`: list the audio input devices.
//!
//! In: `--format text|json`. Out: a table of the input devices (index, name, id, channels,
//! sample rates, default rate) or one JSON document `{"devices": [...]}` on stdout; exit 0,
//! or 2 with `error: …` when the audio system cannot be queried.

use serde::Serialize;

use crate::ExitStatus;
use crate::audio::device::{self, DeviceInfo};
use crate::cli::{DevicesArgs, OutputFormat};

/// The JSON document.
#[derive(Serialize)]
struct Listing<'a> {
    devices: &'a [DeviceInfo],
}

/// Lists input devices.
pub fn run(args: &DevicesArgs) -> ExitStatus {
    let devices = match device::list() {
        Ok(d) => d,
        Err(e) => return super::fail(e),
    };
    match args.format {
        OutputFormat::Json => match serde_json::to_string_pretty(&Listing { devices: &devices }) {
            Ok(json) => println!("{json}"),
            Err(e) => return super::fail(format!("cannot serialise the device list: {e}")),
        },
        OutputFormat::Text => print!("{}", table(&devices)),
    }
    ExitStatus::Success
}

/// The text table, one device per line, columns padded to their widest cell. The `USB`
/// column (the identity a microphone's `device "usb:…"` matches) appears when a device is
/// on USB.
fn table(devices: &[DeviceInfo]) -> String {
    if devices.is_empty() {
        return "no audio input devices\n".into();
    }
    let with_usb = devices.iter().any(|d| d.usb.is_some());
    let mut header: Vec<String> = ["INDEX", "NAME", "ID", "CHANNELS", "RATES (Hz)", "DEFAULT"]
        .map(String::from)
        .into();
    if with_usb {
        header.push("USB".into());
    }
    let mut rows = vec![header];
    for d in devices {
        let (channels, rates) = match &d.error {
            Some(e) => (String::from("?"), format!("error: {e}")),
            None => (
                device::runs(&d.channels),
                device::rates(&d.samplerate_ranges),
            ),
        };
        let mut row = vec![
            d.index.to_string(),
            d.name.clone(),
            d.id.clone(),
            channels,
            rates,
            d.default_samplerate
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
        ];
        if with_usb {
            row.push(d.usb.clone().unwrap_or_else(|| "-".into()));
        }
        rows.push(row);
    }
    let mut widths = vec![0usize; rows[0].len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = *w));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::device::RateRange;

    fn info(index: usize, name: &str, error: Option<&str>) -> DeviceInfo {
        DeviceInfo {
            index,
            id: format!("alsa:{name}"),
            name: name.into(),
            channels: vec![1, 2],
            samplerate_ranges: vec![
                RateRange {
                    min: 8_000,
                    max: 8_000,
                },
                RateRange {
                    min: 16_000,
                    max: 48_000,
                },
            ],
            samplerates: vec![8_000, 16_000, 22_050, 44_100, 48_000],
            default_samplerate: Some(48_000),
            formats: vec!["i16".into()],
            error: error.map(String::from),
            usb: None,
        }
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(&[
            info(0, "null", None),
            info(1, "a longer name", Some("device busy")),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "INDEX  NAME           ID                  CHANNELS  RATES (Hz)          DEFAULT",
                "0      null           alsa:null           1-2       8000, 16000-48000   48000",
                "1      a longer name  alsa:a longer name  ?         error: device busy  48000",
            ]
        );
        assert_eq!(table(&[]), "no audio input devices\n");
    }

    #[test]
    fn table_shows_usb_identities_when_a_device_has_one() {
        let mut usb = info(1, "UltraMic", None);
        usb.usb = Some("usb:0869:0389:A1B2".into());
        let t = table(&[info(0, "null", None), usb]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].ends_with("DEFAULT  USB"), "{t}");
        assert!(lines[1].ends_with("48000    -"), "{t}");
        assert!(lines[2].ends_with("48000    usb:0869:0389:A1B2"), "{t}");
    }

    #[test]
    fn json_is_one_document() {
        let devices = [info(0, "null", None)];
        let json = serde_json::to_value(Listing { devices: &devices }).unwrap_or_default();
        assert_eq!(json["devices"][0]["id"], "alsa:null");
        assert_eq!(json["devices"][0]["samplerate_ranges"][1]["max"], 48_000);
        assert_eq!(json["devices"][0]["default_samplerate"], 48_000);
        assert!(json["devices"][0]["error"].is_null());
    }
}
