//! Values written the way people write them: durations, sizes, frequencies, times of day.
//!
//! In: the scalar strings of a manifest, e.g. `"1h30m"`, `"512MiB"`, `"22.05kHz"`, `"21:00"` or
//! `"sunset-30m"`. Out: plain values (a [`Duration`], bytes as `u64`, hertz as `u32`, a
//! [`TimeOfDay`]) or a [`UnitError`] saying what is wrong and what to write instead. Each
//! `parse_*` has a `format_*` that gives the canonical spelling, which parses back to the same value.

use std::fmt;
use std::time::Duration;

/// Why a value could not be parsed: a message and a help saying what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    /// What is wrong, e.g. "`3 sec` is not a duration".
    pub message: String,
    /// What to write instead.
    pub help: String,
}

impl UnitError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            help: help.into(),
        }
    }
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UnitError {}

/// A non-negative decimal number, `mantissa / 10^scale`.
#[derive(Clone, Copy)]
struct Decimal {
    mantissa: u128,
    scale: u32,
}

/// Why a number could not be read.
enum NumberError {
    Malformed,
    Overflow,
}

/// Reads `123` or `1.5` (digits on both sides of the point); trailing fractional zeros are dropped.
fn parse_decimal(s: &str) -> Result<Decimal, NumberError> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || (s.contains('.') && frac.is_empty()) || !digits(int) || !digits(frac) {
        return Err(NumberError::Malformed);
    }
    let frac = frac.trim_end_matches('0');
    let mut mantissa: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .ok_or(NumberError::Overflow)?;
    }
    let scale = u32::try_from(frac.len()).map_err(|_| NumberError::Overflow)?;
    Ok(Decimal { mantissa, scale })
}

/// `d * factor` rounded down, and whether that was exact; `None` on overflow.
fn scale(d: Decimal, factor: u128) -> Option<(u128, bool)> {
    let product = d.mantissa.checked_mul(factor)?;
    Some(match 10u128.checked_pow(d.scale) {
        Some(p) => (product / p, product % p == 0),
        None => (0, product == 0),
    })
}

/// Splits `"22.05 kHz"` into the leading number `"22.05"` and the trimmed rest `"kHz"`.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(end);
    (num, rest.trim())
}

/// The leading number of `s` if it is a valid one, for examples in help texts.
fn example_number<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    let (num, _) = split_number(s);
    if parse_decimal(num).is_ok() {
        num
    } else {
        fallback
    }
}

const DURATION_UNITS: &str = "`ms`, `s`, `m`, `h` or `d`";

/// Duration units: name, milliseconds, rank (compound parts must strictly decrease in rank).
const DURATION_TABLE: [(&str, u128, u8); 6] = [
    ("d", 86_400_000, 4),
    ("h", 3_600_000, 3),
    ("m", 60_000, 2),
    ("min", 60_000, 2),
    ("s", 1_000, 1),
    ("ms", 1, 0),
];

/// Parses a non-negative duration such as `"30s"`, `"1.5s"`, `"1h30m"` or `"250ms"`.
///
/// The result must be a whole number of milliseconds and fit in `u64` milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    let example = example_number(s, "30");
    let not_a_duration = || {
        UnitError::new(
            format!("`{s}` is not a duration"),
            format!("write a number followed by a unit: {DURATION_UNITS}, e.g. `\"{example}s\"`"),
        )
    };
    let too_long = || {
        UnitError::new(
            format!("`{s}` is too long a duration"),
            "write a shorter duration",
        )
    };
    if s.is_empty() {
        return Err(UnitError::new(
            "empty duration",
            format!("write a number followed by a unit: {DURATION_UNITS}, e.g. `\"30s\"`"),
        ));
    }
    if s.starts_with('-') {
        return Err(UnitError::new(
            format!("`{s}` is negative"),
            "durations cannot be negative; write e.g. `\"30s\"`",
        ));
    }
    let mut rest = s;
    let mut total: u128 = 0;
    let mut last_rank: Option<u8> = None;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_end);
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let dec = match parse_decimal(num) {
            Ok(d) => d,
            Err(NumberError::Malformed) => return Err(not_a_duration()),
            Err(NumberError::Overflow) => return Err(too_long()),
        };
        if unit.is_empty() {
            if !after.trim().is_empty() {
                return Err(not_a_duration());
            }
            let message = if num == s {
                format!("`{s}` has no unit")
            } else {
                format!("`{num}` in `{s}` has no unit")
            };
            return Err(UnitError::new(
                message,
                format!("add a unit: {DURATION_UNITS}, e.g. `\"{s}s\"`"),
            ));
        }
        let (_, factor, rank) = DURATION_TABLE
            .iter()
            .copied()
            .find(|(name, _, _)| *name == unit)
            .ok_or_else(not_a_duration)?;
        if last_rank.is_some_and(|last| rank >= last) {
            return Err(UnitError::new(
                format!("`{s}`: units must go from largest to smallest, each at most once"),
                "write e.g. `\"1h30m\"` or `\"2m30s\"`",
            ));
        }
        last_rank = Some(rank);
        let (ms, exact) = scale(dec, factor).ok_or_else(too_long)?;
        if !exact {
            return Err(UnitError::new(
                format!("`{s}` is not a whole number of milliseconds"),
                "round to whole milliseconds, e.g. `\"1.5s\"` or `\"1500ms\"`",
            ));
        }
        total = total.checked_add(ms).ok_or_else(too_long)?;
        rest = after.trim_start();
    }
    let ms = u64::try_from(total).map_err(|_| too_long())?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration in canonical compound form, largest units first, zero parts omitted:
/// `"1m30s"`, `"1s500ms"`, `"1d"`, and `"0s"` for zero. Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, factor) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        let n = ms / factor;
        ms %= factor;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
    }
    out
}

const SIZE_UNITS: &str = "`B`, `kB`, `MB`, `GB`, `TB`, `KiB`, `MiB`, `GiB` or `TiB`";

const SIZE_TABLE: [(&str, u128); 15] = [
    ("B", 1),
    ("kB", 1_000),
    ("KB", 1_000),
    ("k", 1_000),
    ("K", 1_000),
    ("MB", 1_000_000),
    ("M", 1_000_000),
    ("GB", 1_000_000_000),
    ("G", 1_000_000_000),
    ("TB", 1_000_000_000_000),
    ("T", 1_000_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
];

/// Parses a size such as `"512MiB"`, `"1.5GiB"` or `"10kB"` into bytes, rounded down.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let s = s.trim();
    let example = example_number(s, "512");
    let not_a_size = || {
        UnitError::new(
            format!("`{s}` is not a size"),
            format!("write a number followed by a unit: {SIZE_UNITS}, e.g. `\"{example}MiB\"`"),
        )
    };
    let too_large = || {
        UnitError::new(
            format!("`{s}` is too large"),
            "sizes must be below 16 EiB (2^64 bytes)",
        )
    };
    if s.is_empty() {
        return Err(UnitError::new(
            "empty size",
            format!("write a number followed by a unit: {SIZE_UNITS}, e.g. `\"512MiB\"`"),
        ));
    }
    let (num, unit) = split_number(s);
    let dec = match parse_decimal(num) {
        Ok(d) => d,
        Err(NumberError::Malformed) => return Err(not_a_size()),
        Err(NumberError::Overflow) => return Err(too_large()),
    };
    if unit.is_empty() {
        return Err(UnitError::new(
            format!("`{s}` has no unit"),
            format!("write `\"{num}B\"` or `\"{num}MiB\"`"),
        ));
    }
    let (_, factor) = SIZE_TABLE
        .iter()
        .copied()
        .find(|(name, _)| *name == unit)
        .ok_or_else(not_a_size)?;
    let (bytes, _) = scale(dec, factor).ok_or_else(too_large)?;
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Formats bytes with the largest binary unit that divides them exactly, else in bytes:
/// `"2GiB"`, `"512MiB"`, `"1000B"`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        let factor = 1u64 << shift;
        if bytes != 0 && bytes % factor == 0 {
            return format!("{}{unit}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Parses a frequency such as `"48kHz"`, `"22.05kHz"`, `"1MHz"`, `"300Hz"` or a bare `"48000"`
/// into whole hertz. Unit letters are case-insensitive.
pub fn parse_frequency(s: &str) -> Result<u32, UnitError> {
    let s = s.trim();
    let example = example_number(s, "48");
    let not_a_frequency = || {
        UnitError::new(
            format!("`{s}` is not a frequency"),
            format!("write a number followed by `Hz`, `kHz` or `MHz`, e.g. `\"{example}kHz\"`"),
        )
    };
    let too_high = || {
        UnitError::new(
            format!("`{s}` is too high"),
            "frequencies must be at most `4294967295Hz`",
        )
    };
    if s.is_empty() {
        return Err(UnitError::new(
            "empty frequency",
            "write a number followed by `Hz`, `kHz` or `MHz`, e.g. `\"48kHz\"`",
        ));
    }
    let (num, unit) = split_number(s);
    let dec = match parse_decimal(num) {
        Ok(d) => d,
        Err(NumberError::Malformed) => return Err(not_a_frequency()),
        Err(NumberError::Overflow) => return Err(too_high()),
    };
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" if !num.contains('.') => 1,
        "" => {
            return Err(UnitError::new(
                format!("`{s}` has no unit"),
                format!("write `\"{num}kHz\"` or `\"{num}Hz\"`"),
            ));
        }
        "hz" => 1,
        "khz" => 1_000,
        "mhz" => 1_000_000,
        _ => return Err(not_a_frequency()),
    };
    let (hz, exact) = scale(dec, factor).ok_or_else(too_high)?;
    if !exact {
        return Err(UnitError::new(
            format!("`{s}` is not a whole number of hertz"),
            "round to whole hertz, e.g. `\"22.05kHz\"` or `\"22050Hz\"`",
        ));
    }
    u32::try_from(hz).map_err(|_| too_high())
}

/// Formats hertz as `"250kHz"` or `"44.1kHz"` when that is exact, else as `"22050Hz"`.
pub fn format_frequency(hz: u32) -> String {
    if hz >= 1_000 && hz % 1_000 == 0 {
        format!("{}kHz", hz / 1_000)
    } else if hz >= 1_000 && hz % 100 == 0 {
        format!("{}.{}kHz", hz / 1_000, (hz % 1_000) / 100)
    } else {
        format!("{hz}Hz")
    }
}

/// A sun event the sensor's schedule can be relative to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SunEvent {
    /// The sun's upper edge rises above the horizon.
    Sunrise,
    /// The sun's upper edge sets below the horizon.
    Sunset,
    /// Start of morning civil twilight (sun 6° below the horizon).
    Dawn,
    /// End of evening civil twilight (sun 6° below the horizon).
    Dusk,
}

impl SunEvent {
    /// Every sun event, in the order they are listed in messages.
    pub const ALL: [Self; 4] = [Self::Sunrise, Self::Sunset, Self::Dawn, Self::Dusk];

    /// The name written in manifests: `sunrise`, `sunset`, `dawn` or `dusk`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sunrise => "sunrise",
            Self::Sunset => "sunset",
            Self::Dawn => "dawn",
            Self::Dusk => "dusk",
        }
    }
}

impl fmt::Display for SunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A time of day: a wall-clock time in the program's timezone, or an offset from a sun event.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TimeOfDay {
    /// Seconds since local midnight, 0..86400.
    Clock {
        /// Seconds since local midnight.
        seconds: u32,
    },
    /// A sun event shifted by a signed offset in milliseconds.
    Sun {
        /// The event the time is relative to.
        event: SunEvent,
        /// Milliseconds after (positive) or before (negative) the event, at most 12 hours.
        offset_ms: i64,
    },
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_time_of_day(self))
    }
}

/// The largest sun offset allowed, 12 hours.
const MAX_SUN_OFFSET: Duration = Duration::from_secs(12 * 3600);

/// Parses `"21:00"`, `"5:30:15"`, `"sunset"`, `"sunset-30m"` or `"sunrise + 1h30m"`.
pub fn parse_time_of_day(s: &str) -> Result<TimeOfDay, UnitError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(UnitError::new(
            "empty time of day",
            "write e.g. `\"21:00\"` or `\"sunset-30m\"`",
        ));
    }
    if s.contains(':') {
        return parse_clock(s);
    }
    let word_end = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let (word, rest) = s.split_at(word_end);
    let Some(event) = SunEvent::ALL
        .into_iter()
        .find(|e| e.name().eq_ignore_ascii_case(word))
    else {
        return Err(unknown_time_word(s, word));
    };
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Ok(TimeOfDay::Sun {
            event,
            offset_ms: 0,
        });
    }
    let (negative, offset) = if let Some(d) = rest.strip_prefix('+') {
        (false, d)
    } else if let Some(d) = rest.strip_prefix('-') {
        (true, d)
    } else {
        return Err(UnitError::new(
            format!(
                "`{s}` is not a time of day: expected `+` or `-` after `{}`",
                event.name()
            ),
            format!("write e.g. `\"{0}-30m\"` or `\"{0}+1h\"`", event.name()),
        ));
    };
    let offset = parse_duration(offset)
        .map_err(|e| UnitError::new(format!("bad offset in `{s}`: {}", e.message), e.help))?;
    let too_far = || {
        UnitError::new(
            format!("the offset in `{s}` is more than 12 hours"),
            "sun offsets are limited to `12h` either way; use a clock time like `\"21:00\"` instead",
        )
    };
    if offset > MAX_SUN_OFFSET {
        return Err(too_far());
    }
    let ms = i64::try_from(offset.as_millis()).map_err(|_| too_far())?;
    Ok(TimeOfDay::Sun {
        event,
        offset_ms: if negative { -ms } else { ms },
    })
}

/// The error for a time of day that is neither a clock time nor a sun event, with a suggestion.
fn unknown_time_word(s: &str, word: &str) -> UnitError {
    let lower = word.to_ascii_lowercase();
    let closest = SunEvent::ALL
        .into_iter()
        .map(|e| (strsim::levenshtein(&lower, e.name()), e))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 2 && *distance < lower.len());
    let did_you_mean = closest
        .map(|(_, e)| format!("did you mean `{e}`? "))
        .unwrap_or_default();
    UnitError::new(
        format!("`{s}` is not a time of day"),
        format!(
            "{did_you_mean}write a clock time like `\"21:00\"`, or `sunrise`, `sunset`, `dawn` or \
             `dusk` with an optional offset, e.g. `\"sunset-30m\"`"
        ),
    )
}

/// Parses `HH:MM` or `HH:MM:SS` (hours may have one digit).
fn parse_clock(s: &str) -> Result<TimeOfDay, UnitError> {
    let bad = || {
        UnitError::new(
            format!("`{s}` is not a time of day"),
            "write `HH:MM` or `HH:MM:SS`, e.g. `\"21:00\"` or `\"05:30:15\"`",
        )
    };
    let field = |text: &str, min_len: usize| -> Option<u32> {
        let ok = (min_len..=2).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        if ok { text.parse().ok() } else { None }
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "00"),
        [h, m, sec] => (*h, *m, *sec),
        _ => return Err(bad()),
    };
    let (Some(hours), Some(minutes), Some(seconds)) = (field(h, 1), field(m, 2), field(sec, 2))
    else {
        return Err(bad());
    };
    if hours > 23 {
        let midnight = if hours == 24 {
            "; write `00:00` for midnight at the start of the day or `23:59:59` for its end"
        } else {
            ""
        };
        return Err(UnitError::new(
            format!("hour `{h}` in `{s}` is out of range"),
            format!("hours go from `0` to `23`{midnight}"),
        ));
    }
    if minutes > 59 {
        return Err(UnitError::new(
            format!("minute `{m}` in `{s}` is out of range"),
            "minutes go from `00` to `59`",
        ));
    }
    if seconds > 59 {
        return Err(UnitError::new(
            format!("second `{sec}` in `{s}` is out of range"),
            "seconds go from `00` to `59`",
        ));
    }
    Ok(TimeOfDay::Clock {
        seconds: hours * 3600 + minutes * 60 + seconds,
    })
}

/// Formats a time of day: `"21:00"`, `"21:00:30"`, `"dusk"`, `"sunset-30m"`, `"sunrise+1h30m"`.
pub fn format_time_of_day(t: &TimeOfDay) -> String {
    match *t {
        TimeOfDay::Clock { seconds } => {
            let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
            if s == 0 {
                format!("{h:02}:{m:02}")
            } else {
                format!("{h:02}:{m:02}:{s:02}")
            }
        }
        TimeOfDay::Sun {
            event,
            offset_ms: 0,
        } => event.name().to_owned(),
        TimeOfDay::Sun { event, offset_ms } => {
            let sign = if offset_ms < 0 { '-' } else { '+' };
            let offset = format_duration(Duration::from_millis(offset_ms.unsigned_abs()));
            format!("{event}{sign}{offset}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration(" 3 s "), Ok(secs(3)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("2m30s"), Ok(secs(150)));
        assert_eq!(parse_duration("2min"), Ok(secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5h"), Ok(secs(1800)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn duration_errors() {
        let e = parse_duration("3 sec").unwrap_err();
        assert_eq!(e.message, "`3 sec` is not a duration");
        assert_eq!(
            e.help,
            "write a number followed by a unit: `ms`, `s`, `m`, `h` or `d`, e.g. `\"3s\"`"
        );
        assert!(
            parse_duration("3x")
                .unwrap_err()
                .message
                .contains("not a duration")
        );
        let e = parse_duration("10").unwrap_err();
        assert_eq!(e.message, "`10` has no unit");
        assert!(e.help.contains("`\"10s\"`"));
        for bad in [
            "", "-5s", "30m1h", "1m1m", "1m2min", "0.0001s", "1.s", ".5s", "1h30", "s", "1e3s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(
            parse_duration("99999999999999999999d")
                .unwrap_err()
                .message
                .contains("too long")
        );
        assert!(
            parse_duration("0.0001s")
                .unwrap_err()
                .message
                .contains("whole number")
        );
        assert!(
            parse_duration("30m1h")
                .unwrap_err()
                .message
                .contains("largest to smallest")
        );
    }

    #[test]
    fn format_durations() {
        assert_eq!(format_duration(secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(secs(86_400)), "1d");
        assert_eq!(format_duration(secs(5400)), "1h30m");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("10kB"), Ok(10_000));
        assert_eq!(parse_size("10 K"), Ok(10_000));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("1.0001KiB"), Ok(1024));
        assert_eq!(parse_size("100B"), Ok(100));
        let e = parse_size("512").unwrap_err();
        assert_eq!(e.help, "write `\"512B\"` or `\"512MiB\"`");
        for bad in ["", "5 kb", "MiB", "-1B", "99999999TiB", "1 2B"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(2 << 30), "2GiB");
        assert_eq!(format_size(512 << 20), "512MiB");
        assert_eq!(format_size(1000), "1000B");
        assert_eq!(format_size(0), "0B");
    }

    #[test]
    fn frequencies() {
        assert_eq!(parse_frequency("22.05kHz"), Ok(22_050));
        assert_eq!(parse_frequency("250kHz"), Ok(250_000));
        assert_eq!(parse_frequency("48000"), Ok(48_000));
        assert_eq!(parse_frequency("1 mhz"), Ok(1_000_000));
        assert_eq!(parse_frequency("300Hz"), Ok(300));
        for bad in [
            "",
            "22.05",
            "0.5Hz",
            "5000MHz",
            "4294967296",
            "48 kHzz",
            "kHz",
        ] {
            assert!(parse_frequency(bad).is_err(), "{bad}");
        }
        assert_eq!(format_frequency(250_000), "250kHz");
        assert_eq!(format_frequency(22_050), "22050Hz");
        assert_eq!(format_frequency(44_100), "44.1kHz");
        assert_eq!(format_frequency(500), "500Hz");
    }

    #[test]
    fn times_of_day() {
        let clock = |seconds| Ok(TimeOfDay::Clock { seconds });
        let sun = |event, offset_ms| Ok(TimeOfDay::Sun { event, offset_ms });
        assert_eq!(parse_time_of_day("21:00"), clock(75_600));
        assert_eq!(parse_time_of_day("5:30:15"), clock(19_815));
        assert_eq!(parse_time_of_day("00:00"), clock(0));
        assert_eq!(parse_time_of_day("23:59:59"), clock(86_399));
        assert_eq!(
            parse_time_of_day("sunset-30m"),
            sun(SunEvent::Sunset, -1_800_000)
        );
        assert_eq!(
            parse_time_of_day("Sunrise + 1h30m"),
            sun(SunEvent::Sunrise, 5_400_000)
        );
        assert_eq!(parse_time_of_day("dusk"), sun(SunEvent::Dusk, 0));
        assert_eq!(
            parse_time_of_day("dawn-12h"),
            sun(SunEvent::Dawn, -43_200_000)
        );
    }

    #[test]
    fn time_of_day_errors() {
        let e = parse_time_of_day("24:00").unwrap_err();
        assert!(
            e.help.contains("`00:00`") && e.help.contains("`23:59:59`"),
            "{}",
            e.help
        );
        assert!(
            parse_time_of_day("12:60")
                .unwrap_err()
                .message
                .starts_with("minute `60`")
        );
        assert!(
            parse_time_of_day("12:00:61")
                .unwrap_err()
                .message
                .starts_with("second `61`")
        );
        let e = parse_time_of_day("sunsett").unwrap_err();
        assert!(e.help.starts_with("did you mean `sunset`?"), "{}", e.help);
        let e = parse_time_of_day("noon").unwrap_err();
        assert!(!e.help.contains("did you mean") && e.help.contains("`dusk`"));
        assert!(
            parse_time_of_day("sunset+12h1s")
                .unwrap_err()
                .message
                .contains("12 hours")
        );
        for bad in [
            "",
            "21",
            "21:0",
            "123:00",
            "1:2:3:4",
            "sunset30m",
            "sunset-",
            "sunset-30",
        ] {
            assert!(parse_time_of_day(bad).is_err(), "{bad}");
        }
        let t = TimeOfDay::Sun {
            event: SunEvent::Sunrise,
            offset_ms: 5_400_000,
        };
        assert_eq!(t.to_string(), "sunrise+1h30m");
        assert_eq!(
            format_time_of_day(&TimeOfDay::Clock { seconds: 75_630 }),
            "21:00:30"
        );
    }

    fn time_of_day() -> impl Strategy<Value = TimeOfDay> {
        prop_oneof![
            (0u32..86_400).prop_map(|seconds| TimeOfDay::Clock { seconds }),
            (0usize..4, -43_200_000i64..=43_200_000).prop_map(|(i, offset_ms)| TimeOfDay::Sun {
                event: SunEvent::ALL[i],
                offset_ms
            }),
        ]
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*", t in "[0-9.:+\\- a-zA-Z]{0,24}") {
            for input in [&s, &t] {
                let _ = parse_duration(input);
                let _ = parse_size(input);
                let _ = parse_frequency(input);
                let _ = parse_time_of_day(input);
            }
        }

        #[test]
        fn roundtrips(ms in any::<u64>(), bytes in any::<u64>(), hz in any::<u32>(), t in time_of_day()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
            prop_assert_eq!(parse_frequency(&format_frequency(hz)), Ok(hz));
            prop_assert_eq!(parse_time_of_day(&format_time_of_day(&t)), Ok(t));
        }
    }
}
