//! The `messaging` and `summary` parts of an imported manifest.
//!
//! In: `messaging` (`connected`, acoupi-batdetect2), `model.detection_threshold` and
//! `summariser_config` (acoupi-batdetect2). Out: the destinations, the send and heartbeat
//! schedules, detection messages and summaries. A password is never copied: the manifest
//! names a variable, and the to-do list says where to put the value.

use super::program::{Context, seconds};
use super::writer::{Writer, kdl_number, kdl_string};
use super::{Error, ProgramKind, PythonHome};

/// The variable the MQTT password is read from at run time.
pub const MQTT_PASSWORD_VAR: &str = "ACOUPI_MQTT_PASSWORD";

/// The largest `send batch=`; the original's `max_messages: null` (every message) maps to it.
const MAX_BATCH: u64 = 100_000;

/// The seconds the Python MQTT messenger waited for each publish, whatever its `timeout`.
const PYTHON_MQTT_WAIT_S: u64 = 5;

/// Writes `messaging` (and, for acoupi-batdetect2, `summary`).
pub fn write(w: &mut Writer, home: &PythonHome, _ctx: &Context) -> Result<(), Error> {
    if home.kind == ProgramKind::Default {
        return Ok(());
    }
    let f = &home.config;
    let http = f.has("messaging.http");
    let mqtt = f.has("messaging.mqtt");
    let every = f.count("messaging.message_send_interval")?.unwrap_or(120);
    let max_messages = f.count("messaging.max_messages")?;
    let order = f
        .str("messaging.message_order")?
        .unwrap_or_else(|| "oldest_first".to_owned());
    let heartbeat = f.count("messaging.heartbeat_interval")?.unwrap_or(3600);
    // Read so that a `null` destination is not reported as an unknown setting.
    f.get("messaging.http");
    f.get("messaging.mqtt");
    if !http && !mqtt {
        w.blank();
        w.note(
            0,
            "neither `messaging.http` nor `messaging.mqtt` is set: the Python acoupi sent no messages and no heartbeats, so no `messaging` block is written (heartbeats are only logged)",
        );
        if home.kind == ProgramKind::BatDetect2 {
            summary_needs_messaging(w, home)?;
        }
        return Ok(());
    }
    w.blank();
    w.line(0, "messaging {");
    if http {
        write_http(w, home)?;
    }
    if mqtt {
        write_mqtt(w, home, http)?;
    }
    let batch = match max_messages {
        None => {
            w.comment(
                1,
                &format!(
                    "`messaging.max_messages` = null sent every unsent message per run; {MAX_BATCH} is the largest batch."
                ),
            );
            MAX_BATCH
        }
        Some(n) if n > MAX_BATCH => {
            w.note(
                1,
                &format!(
                    "`messaging.max_messages` = {n} is above the largest batch, {MAX_BATCH}, which is used"
                ),
            );
            MAX_BATCH
        }
        Some(n) => n,
    };
    let order = match order.as_str() {
        "newest_first" => "newest-first",
        _ => "oldest-first",
    };
    w.line(
        1,
        &format!(
            "send every={} batch={batch} order=\"{order}\"",
            seconds(every)
        ),
    );
    w.line(1, &format!("heartbeat every={}", seconds(heartbeat)));
    if home.kind == ProgramKind::BatDetect2 {
        let min = f.num("model.detection_threshold")?.unwrap_or(0.4);
        w.comment(
            1,
            "`model.detection_threshold`: the detections a message carries.",
        );
        w.line(
            1,
            &format!(
                "message detection min-score={} detector=\"batdetect2\"",
                kdl_number(min)
            ),
        );
    }
    w.line(0, "}");
    if home.kind == ProgramKind::BatDetect2 {
        write_summary(w, home)?;
    }
    Ok(())
}

fn write_http(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    let f = &home.config;
    let url = f.req_str("messaging.http.base_url")?;
    let timeout = f.count("messaging.http.timeout")?.unwrap_or(5);
    let content_type = f.str("messaging.http.content_type")?;
    w.line(1, &format!("http url={} {{", kdl_string(&url)));
    w.line(2, &format!("timeout {}", seconds(timeout)));
    if let Some(ct) = content_type.filter(|ct| ct != "application/json") {
        w.unmapped(
            2,
            "messaging.http.content_type",
            &ct.into(),
            "messages are always posted as JSON here",
        );
    }
    w.line(1, "}");
    Ok(())
}

fn write_mqtt(w: &mut Writer, home: &PythonHome, with_http: bool) -> Result<(), Error> {
    let f = &home.config;
    let host = f.req_str("messaging.mqtt.host")?;
    let port = f.count("messaging.mqtt.port")?.unwrap_or(1884);
    let topic = f
        .str("messaging.mqtt.topic")?
        .unwrap_or_else(|| "acoupi".to_owned());
    let username = f.str("messaging.mqtt.username")?;
    let has_password = f.str("messaging.mqtt.password")?.is_some();
    let tls = f.bool("messaging.mqtt.use_tls")?.unwrap_or(false);
    let per_type = f.bool("messaging.mqtt.use_message_type")?.unwrap_or(false);
    let timeout = f.count("messaging.mqtt.timeout")?;
    let transport = f.str("messaging.mqtt.transport")?;
    // The Python acoupi used only HTTP when both were set: MQTT is written commented out.
    let slash = if with_http {
        w.note(
            1,
            "the Python acoupi sent only over HTTP when both `http` and `mqtt` were set: the MQTT destination is written commented out (`/-`); remove the `/-` to send to both",
        );
        "/-"
    } else {
        ""
    };
    w.line(
        1,
        &format!(
            "{slash}mqtt host={} port={port} topic={} {{",
            kdl_string(&host),
            kdl_string(&topic)
        ),
    );
    if let Some(user) = username {
        w.line(2, &format!("username {}", kdl_string(&user)));
    }
    if has_password {
        w.comment(
            2,
            &format!(
                "The password is not copied from `program.json`: put it in `config/secrets.env` as {MQTT_PASSWORD_VAR}."
            ),
        );
        w.line(2, &format!("password env=\"{MQTT_PASSWORD_VAR}\""));
        w.todo(format!(
            "the MQTT password (`messaging.mqtt.password` in `{}`) is not copied into the manifest: after `acoupi build`, add the line `{MQTT_PASSWORD_VAR}=<the password>` to `config/secrets.env` in the new home (`acoupi deploy --check` says when it is missing)",
            f.path()
        ));
    }
    if tls {
        w.line(2, "tls #true");
    }
    if per_type {
        w.line(2, "topic-per-type #true");
    }
    w.line(2, &format!("timeout {}", seconds(PYTHON_MQTT_WAIT_S)));
    if let Some(t) = timeout.filter(|t| *t != PYTHON_MQTT_WAIT_S) {
        w.unmapped(
            2,
            "messaging.mqtt.timeout",
            &t.into(),
            "the Python acoupi ignored it and waited 5 s for each publish, as this manifest does",
        );
    }
    if let Some(t) = transport.filter(|t| t != "tcp") {
        w.unmapped(
            2,
            "messaging.mqtt.transport",
            &t.into(),
            "MQTT goes over TCP (with `tls` if set) here",
        );
    }
    w.line(1, "}");
    Ok(())
}

/// acoupi-batdetect2's summariser: its interval, and its low, mid and high bands when all three
/// are set.
type Summariser = (f64, Option<[f64; 3]>);

/// The summariser, when it runs.
fn summariser(home: &PythonHome) -> Result<Option<Summariser>, Error> {
    let f = &home.config;
    let interval = f.num("summariser_config.interval")?.unwrap_or(0.0);
    let low = f
        .num("summariser_config.low_band_threshold")?
        .unwrap_or(0.0);
    let mid = f
        .num("summariser_config.mid_band_threshold")?
        .unwrap_or(0.0);
    let high = f
        .num("summariser_config.high_band_threshold")?
        .unwrap_or(0.0);
    if interval <= 0.0 {
        return Ok(None);
    }
    let bands = (low != 0.0 && mid != 0.0 && high != 0.0).then_some([low, mid, high]);
    Ok(Some((interval, bands)))
}

fn summary_needs_messaging(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    if summariser(home)?.is_some() {
        w.note(
            0,
            "`summariser_config` is not imported: summaries are sent through messaging, and there is none",
        );
    }
    Ok(())
}

fn write_summary(w: &mut Writer, home: &PythonHome) -> Result<(), Error> {
    let Some((interval, bands)) = summariser(home)? else {
        return Ok(());
    };
    let secs = interval.round() as u64;
    w.blank();
    w.note(
        0,
        &format!(
            "`summariser_config.interval` = {} is documented in seconds, but acoupi-batdetect2 ran its summary every {} minutes; here it runs every {} and summarises that interval",
            kdl_number(interval),
            kdl_number(interval),
            crate::units::format_duration(std::time::Duration::from_secs(secs))
        ),
    );
    w.line(0, &format!("summary every={} {{", seconds(secs)));
    w.line(1, "statistics");
    if let Some([low, mid, high]) = bands {
        w.comment(
            1,
            "Each value is its band's lower bound here (the Python bands were up to low, up to mid, above mid).",
        );
        w.line(
            1,
            &format!(
                "thresholds low={} mid={} high={}",
                kdl_number(low),
                kdl_number(mid),
                kdl_number(high)
            ),
        );
    }
    w.line(0, "}");
    Ok(())
}
