//! Values written the way people write them: durations, sizes, frequencies, times of day.
//!
//! In: the scalar strings of a manifest, e.g. `"1h30m"`, `"512MiB"`, `"22.05kHz"`, `"21:00"` or
//! `"sunset-30m"`. Out: plain values (a [`Duration`], bytes as `u64`, hertz as `u32`, a
//! [`TimeOfDay`]) or a [`UnitError`] saying what is wrong and what to write instead. Each
//! `parse_*` has a `format_*` that gives the canonical spelling, which parses back to the same value.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a value could not be parsed: a message and a help saying what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UnitError {
    /// What is wrong, e.g. "`3 sec` is not a duration".
    pub message: String,
    /// What to write instead.
    pub help: String,
}

impl UnitError {
    fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        let (message, help) = (message.into(), help.into());
        Self { message, help }
    }
}

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
        let digit = u128::from(b - b'0');
        let next = mantissa.checked_mul(10).and_then(|m| m.checked_add(digit));
        mantissa = next.ok_or(NumberError::Overflow)?;
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

/// Splits `s` before the first character that `keep` rejects.
fn split_while(s: &str, keep: impl Fn(char) -> bool) -> (&str, &str) {
    s.split_at(s.find(|c| !keep(c)).unwrap_or(s.len()))
}

/// Splits `"1.5 kHz rest"` into the number `"1.5"`, the unit `"kHz"` and the trimmed rest.
fn next_part(s: &str) -> (&str, &str, &str) {
    let (num, rest) = split_while(s, |c| c.is_ascii_digit() || c == '.');
    let (unit, rest) = split_while(rest.trim_start(), |c| c.is_ascii_alphabetic());
    (num, unit, rest.trim())
}

/// A kind of number-with-unit value, for error messages: its name, the units to list, a number
/// and unit for examples (the number is replaced by the input's, if it has one), two units to
/// suggest for a bare number, and a help for values too big to represent.
struct Kind {
    noun: &'static str,
    units: &'static str,
    example: (&'static str, &'static str),
    bare: (&'static str, &'static str),
    limit: &'static str,
}

const DURATION: Kind = Kind {
    noun: "duration",
    units: "`ms`, `s`, `m`, `h` or `d`",
    example: ("30", "s"),
    bare: ("s", "ms"),
    limit: "durations must be under 2^64 milliseconds (about 584 million years)",
};

const SIZE: Kind = Kind {
    noun: "size",
    units: "`B`, `kB`, `MB`, `GB`, `TB`, `KiB`, `MiB`, `GiB` or `TiB`",
    example: ("512", "MiB"),
    bare: ("B", "MiB"),
    limit: "sizes must be under 2^64 bytes (16 EiB)",
};

const FREQUENCY: Kind = Kind {
    noun: "frequency",
    units: "`Hz`, `kHz` or `MHz`",
    example: ("48", "kHz"),
    bare: ("kHz", "Hz"),
    limit: "frequencies must be at most `4294967295Hz`",
};

impl Kind {
    /// `s` is not a value of this kind (or is empty).
    fn invalid(&self, s: &str) -> UnitError {
        let (num, _, _) = next_part(s);
        let num = parse_decimal(num).map_or(self.example.0, |_| num);
        let (noun, units, unit) = (self.noun, self.units, self.example.1);
        let message = match s {
            "" => format!("empty {noun}"),
            _ => format!("`{s}` is not a {noun}"),
        };
        let help = format!("write a number followed by a unit: {units}, e.g. `\"{num}{unit}\"`");
        UnitError::new(message, help)
    }

    /// `s` is too big to represent.
    fn too_big(&self, s: &str) -> UnitError {
        UnitError::new(format!("`{s}` is out of range"), self.limit)
    }

    /// Reads the number and unit at the start of `part`, a piece of the input `s`: the value in
    /// base units (rounded down), whether that was exact, the unit and the trimmed rest.
    /// `factor` gives the size of a unit in base units, `None` if the unit is unknown.
    fn read<'a>(
        &self,
        s: &str,
        part: &'a str,
        factor: impl Fn(&str) -> Option<u128>,
    ) -> Result<(u128, bool, &'a str, &'a str), UnitError> {
        let (num, unit, rest) = next_part(part);
        let dec = parse_decimal(num).map_err(|e| match e {
            NumberError::Malformed => self.invalid(s),
            NumberError::Overflow => self.too_big(s),
        })?;
        match factor(unit) {
            Some(f) => {
                let (value, exact) = scale(dec, f).ok_or_else(|| self.too_big(s))?;
                Ok((value, exact, unit, rest))
            }
            None if unit.is_empty() && rest.is_empty() => {
                let (a, b) = self.bare;
                let help = format!("write `\"{s}{a}\"` or `\"{s}{b}\"`");
                Err(UnitError::new(format!("`{s}` has no unit"), help))
            }
            None => Err(self.invalid(s)),
        }
    }
}

/// Duration units, largest first, with their length in milliseconds.
const DURATION_UNITS: [(&str, u128); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// The index of a duration unit in [`DURATION_UNITS`] (`min` is an alias of `m`).
fn duration_rank(unit: &str) -> Option<usize> {
    let unit = if unit == "min" { "m" } else { unit };
    DURATION_UNITS.iter().position(|(name, _)| *name == unit)
}

/// Parses a non-negative duration such as `"30s"`, `"1.5s"`, `"1h30m"` or `"250ms"`.
///
/// Compound parts go from the largest unit to the smallest, each at most once. The result must
/// be a whole number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    if s.starts_with('-') {
        let help = "durations cannot be negative; write e.g. `\"30s\"`";
        return Err(UnitError::new(format!("`{s}` is negative"), help));
    }
    let factor = |unit: &str| duration_rank(unit).map(|r| DURATION_UNITS[r].1);
    let (mut rest, mut total, mut next_rank) = (s, 0u128, 0);
    loop {
        let (ms, exact, unit, after) = DURATION.read(s, rest, factor)?;
        let rank = duration_rank(unit).unwrap_or_default();
        if rank < next_rank {
            return Err(UnitError::new(
                format!("`{s}`: units must go from largest to smallest, each at most once"),
                "write e.g. `\"1h30m\"` or `\"2m30s\"`",
            ));
        }
        if !exact {
            return Err(UnitError::new(
                format!("`{s}` is not a whole number of milliseconds"),
                "round to whole milliseconds, e.g. `\"1.5s\"` or `\"1500ms\"`",
            ));
        }
        total = total.checked_add(ms).ok_or_else(|| DURATION.too_big(s))?;
        (rest, next_rank) = (after, rank + 1);
        if rest.is_empty() {
            let ms = u64::try_from(total).map_err(|_| DURATION.too_big(s))?;
            return Ok(Duration::from_millis(ms));
        }
    }
}

/// Formats a duration in canonical compound form, largest units first, zero parts omitted:
/// `"1m30s"`, `"1s500ms"`, `"1d"`, and `"0s"` for zero. Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    let mut out = String::new();
    for (unit, factor) in DURATION_UNITS {
        if ms >= factor {
            out += &format!("{}{unit}", ms / factor);
            ms %= factor;
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

/// Parses a size such as `"512MiB"`, `"1.5GiB"` or `"10kB"` into bytes, rounded down.
///
/// `k`, `M`, `G`, `T` (with or without `B`) are powers of 1000; `KiB` to `TiB` powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let s = s.trim();
    let (bytes, _, _, rest) = SIZE.read(s, s, |unit| match unit {
        "B" => Some(1),
        "kB" | "KB" | "k" | "K" => Some(1_000),
        "MB" | "M" => Some(1_000_000),
        "GB" | "G" => Some(1_000_000_000),
        "TB" | "T" => Some(1_000_000_000_000),
        "KiB" => Some(1 << 10),
        "MiB" => Some(1 << 20),
        "GiB" => Some(1 << 30),
        "TiB" => Some(1 << 40),
        _ => None,
    })?;
    if !rest.is_empty() {
        return Err(SIZE.invalid(s));
    }
    u64::try_from(bytes).map_err(|_| SIZE.too_big(s))
}

/// Formats bytes with the largest binary unit that divides them exactly, else in bytes:
/// `"2GiB"`, `"512MiB"`, `"1000B"`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes != 0 && bytes.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Parses a frequency such as `"48kHz"`, `"22.05kHz"`, `"1MHz"`, `"300Hz"` or a bare integer
/// `"48000"` into whole hertz. Unit letters are case-insensitive.
pub fn parse_frequency(s: &str) -> Result<u32, UnitError> {
    let s = s.trim();
    let (hz, exact, _, rest) =
        FREQUENCY.read(s, s, |unit| match unit.to_ascii_lowercase().as_str() {
            "hz" => Some(1),
            "khz" => Some(1_000),
            "mhz" => Some(1_000_000),
            "" if !s.contains('.') => Some(1),
            _ => None,
        })?;
    if !rest.is_empty() {
        return Err(FREQUENCY.invalid(s));
    }
    if !exact {
        return Err(UnitError::new(
            format!("`{s}` is not a whole number of hertz"),
            "round to whole hertz, e.g. `\"22.05kHz\"` or `\"22050Hz\"`",
        ));
    }
    u32::try_from(hz).map_err(|_| FREQUENCY.too_big(s))
}

/// Formats hertz as `"250kHz"` or `"44.1kHz"` when that is exact, else as `"22050Hz"`.
pub fn format_frequency(hz: u32) -> String {
    if hz >= 1_000 && hz.is_multiple_of(1_000) {
        format!("{}kHz", hz / 1_000)
    } else if hz >= 1_000 && hz.is_multiple_of(100) {
        format!("{}.{}kHz", hz / 1_000, (hz % 1_000) / 100)
    } else {
        format!("{hz}Hz")
    }
}

/// A sun event the sensor's schedule can be relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// The largest sun offset either way, in milliseconds: 12 hours.
const MAX_SUN_OFFSET_MS: i64 = 12 * 3_600_000;

/// Any time of day a manifest can give, for the property tests here and of the schedule.
#[cfg(test)]
pub(crate) fn any_time_of_day() -> impl proptest::strategy::Strategy<Value = TimeOfDay> {
    use proptest::prelude::*;
    prop_oneof![
        (0u32..86_400).prop_map(|seconds| TimeOfDay::Clock { seconds }),
        (0usize..4, -MAX_SUN_OFFSET_MS..=MAX_SUN_OFFSET_MS).prop_map(|(i, offset_ms)| {
            TimeOfDay::Sun {
                event: SunEvent::ALL[i],
                offset_ms,
            }
        }),
    ]
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_time_of_day(self))
    }
}

/// Parses `"21:00"`, `"5:30:15"`, `"sunset"`, `"sunset-30m"` or `"sunrise + 1h30m"`.
pub fn parse_time_of_day(s: &str) -> Result<TimeOfDay, UnitError> {
    let s = s.trim();
    if s.contains(':') {
        return parse_clock(s);
    }
    let (word, rest) = split_while(s, |c| c.is_ascii_alphabetic());
    let found = SunEvent::ALL
        .into_iter()
        .find(|e| e.name().eq_ignore_ascii_case(word));
    let Some(event) = found else {
        return Err(unknown_time_word(s, word));
    };
    let rest = rest.trim_start();
    let offset = match rest.strip_prefix(['+', '-']) {
        _ if rest.is_empty() => Duration::ZERO,
        Some(offset) => parse_duration(offset)
            .map_err(|e| UnitError::new(format!("bad offset in `{s}`: {}", e.message), e.help))?,
        None => {
            return Err(UnitError::new(
                format!("`{s}` is not a time of day: expected `+` or `-` after `{event}`"),
                format!("write e.g. `\"{event}-30m\"` or `\"{event}+1h\"`"),
            ));
        }
    };
    let ms = i64::try_from(offset.as_millis()).ok();
    let Some(ms) = ms.filter(|ms| *ms <= MAX_SUN_OFFSET_MS) else {
        return Err(UnitError::new(
            format!("the offset in `{s}` is more than 12 hours"),
            "sun offsets are limited to `12h` either way; use a clock time like `\"21:00\"` instead",
        ));
    };
    let offset_ms = if rest.starts_with('-') { -ms } else { ms };
    Ok(TimeOfDay::Sun { event, offset_ms })
}

/// The error for a time of day that is neither a clock time nor a sun event, with a suggestion.
fn unknown_time_word(s: &str, word: &str) -> UnitError {
    let lower = word.to_ascii_lowercase();
    let closest = SunEvent::ALL
        .into_iter()
        .map(|e| (strsim::levenshtein(&lower, e.name()), e))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= 2 && *distance < lower.len());
    let did_you_mean = closest.map_or(String::new(), |(_, e)| format!("did you mean `{e}`? "));
    let message = match s {
        "" => "empty time of day".to_owned(),
        _ => format!("`{s}` is not a time of day"),
    };
    let help = format!(
        "{did_you_mean}write a clock time like `\"21:00\"`, or `sunrise`, `sunset`, `dawn` or \
         `dusk` with an optional offset, e.g. `\"sunset-30m\"`"
    );
    UnitError::new(message, help)
}

/// The help for an hour out of range, which is most likely `24:00`.
const HOURS_HELP: &str = "hours go from `0` to `23`; for midnight write `00:00` (start of the day) \
                          or `23:59:59` (end of the day)";

/// Parses `HH:MM` or `HH:MM:SS` (hours may have one digit).
fn parse_clock(s: &str) -> Result<TimeOfDay, UnitError> {
    let field = |text: &str, min_len: usize| -> Option<u32> {
        let ok = (min_len..=2).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        text.parse().ok().filter(|_| ok)
    };
    let parts: Vec<&str> = s.split(':').collect();
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, "00"),
        [h, m, sec] => (*h, *m, *sec),
        _ => ("", "", ""),
    };
    let (Some(hours), Some(minutes), Some(seconds)) = (field(h, 1), field(m, 2), field(sec, 2))
    else {
        return Err(UnitError::new(
            format!("`{s}` is not a time of day"),
            "write `HH:MM` or `HH:MM:SS`, e.g. `\"21:00\"` or `\"05:30:15\"`",
        ));
    };
    for (value, max, name, text, help) in [
        (hours, 23, "hour", h, HOURS_HELP),
        (minutes, 59, "minute", m, "minutes go from `00` to `59`"),
        (seconds, 59, "second", sec, "seconds go from `00` to `59`"),
    ] {
        if value > max {
            let message = format!("{name} `{text}` in `{s}` is out of range");
            return Err(UnitError::new(message, help));
        }
    }
    let seconds = hours * 3600 + minutes * 60 + seconds;
    Ok(TimeOfDay::Clock { seconds })
}

/// Formats a time of day: `"21:00"`, `"21:00:30"`, `"dusk"`, `"sunset-30m"`, `"sunrise+1h30m"`.
pub fn format_time_of_day(t: &TimeOfDay) -> String {
    match *t {
        TimeOfDay::Clock { seconds } => {
            let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
            let hm = format!("{h:02}:{m:02}");
            if s == 0 { hm } else { format!("{hm}:{s:02}") }
        }
        TimeOfDay::Sun { event, offset_ms } => {
            let sign = if offset_ms < 0 { "-" } else { "+" };
            let offset = format_duration(Duration::from_millis(offset_ms.unsigned_abs()));
            match offset_ms {
                0 => event.to_string(),
                _ => format!("{event}{sign}{offset}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A parser whose value is formatted back, so one table can test all of them.
    type Parser = fn(&str) -> Result<String, UnitError>;

    fn duration(s: &str) -> Result<String, UnitError> {
        parse_duration(s).map(format_duration)
    }
    fn size(s: &str) -> Result<String, UnitError> {
        parse_size(s).map(format_size)
    }
    fn frequency(s: &str) -> Result<String, UnitError> {
        parse_frequency(s).map(format_frequency)
    }
    fn time(s: &str) -> Result<String, UnitError> {
        parse_time_of_day(s).map(|t| t.to_string())
    }

    #[test]
    fn parses_and_formats() {
        let cases: &[(Parser, &str, &str)] = &[
            (duration, " 3 s ", "3s"),
            (duration, "90s", "1m30s"),
            (duration, "1h 30m", "1h30m"),
            (duration, "2min", "2m"),
            (duration, "1.5s", "1s500ms"),
            (duration, "0.5h", "30m"),
            (duration, "86400s", "1d"),
            (duration, "0ms", "0s"),
            (size, "2048MiB", "2GiB"),
            (size, "1.5GiB", "1536MiB"),
            (size, "1.0001KiB", "1KiB"),
            (size, "1 kB", "1000B"),
            (size, "4K", "4000B"),
            (size, "1T", "976562500KiB"),
            (frequency, "250kHz", "250kHz"),
            (frequency, "22.05khz", "22050Hz"),
            (frequency, "44100", "44.1kHz"),
            (frequency, "1 MHz", "1000kHz"),
            (frequency, "500Hz", "500Hz"),
            (time, "21:00:00", "21:00"),
            (time, "5:30:15", "05:30:15"),
            (time, "23:59:59", "23:59:59"),
            (time, "SUNSET - 30m", "sunset-30m"),
            (time, "sunrise + 90m", "sunrise+1h30m"),
            (time, "dusk+0s", "dusk"),
            (time, "dawn-12h", "dawn-12h"),
        ];
        for (parse, input, want) in cases {
            assert_eq!(parse(input).as_deref(), Ok(*want), "{input}");
        }
        let t = parse_time_of_day("sunset-30m");
        let offset_ms = -1_800_000;
        assert_eq!(
            t,
            Ok(TimeOfDay::Sun {
                event: SunEvent::Sunset,
                offset_ms
            })
        );
        assert_eq!(
            parse_time_of_day("0:01:05"),
            Ok(TimeOfDay::Clock { seconds: 65 })
        );
    }

    #[test]
    fn errors_say_what_to_write() {
        let e = parse_duration("3 sec").unwrap_err();
        assert_eq!(e.message, "`3 sec` is not a duration");
        let help = "write a number followed by a unit: `ms`, `s`, `m`, `h` or `d`, e.g. `\"3s\"`";
        assert_eq!(e.help, help);
        assert_eq!(
            parse_size("512").unwrap_err().help,
            "write `\"512B\"` or `\"512MiB\"`"
        );
        // Each case: a substring of "<message> / <help>".
        let cases: &[(Parser, &str, &str)] = &[
            (duration, "", "empty duration"),
            (size, " ", "empty size"),
            (duration, "1s 2", "`1s 2` has no unit"),
            (
                duration,
                "10",
                "`10` has no unit / write `\"10s\"` or `\"10ms\"`",
            ),
            (duration, "1h30", "`1h30` has no unit"),
            (duration, "3x", "not a duration"),
            (duration, "-5s", "negative"),
            (duration, "30m1h", "largest to smallest"),
            (duration, "1m2min", "largest to smallest"),
            (duration, "0.0001s", "whole number of milliseconds"),
            (duration, "99999999999999999999d", "out of range"),
            (duration, "1e3s", "not a duration"),
            (duration, ".5s", "not a duration"),
            (size, "5 kb", "not a size"),
            (size, "1 2B", "not a size"),
            (size, "99999999TiB", "out of range"),
            (frequency, "22.05", "has no unit"),
            (frequency, "0.5Hz", "whole number of hertz"),
            (frequency, "4294967296", "out of range"),
            (frequency, "48 kHzz", "not a frequency"),
            (time, "24:00", "`00:00` (start of the day) or `23:59:59`"),
            (time, "12:60", "minute `60` in `12:60` is out of range"),
            (time, "12:00:61", "second `61`"),
            (time, "123:00", "`HH:MM`"),
            (time, "1:2:3:4", "`HH:MM`"),
            (time, "sunsett", "did you mean `sunset`?"),
            (time, "noon", "`sunrise`, `sunset`, `dawn` or `dusk`"),
            (time, "sunset30m", "expected `+` or `-`"),
            (time, "sunset-30", "bad offset"),
            (time, "sunset+12h1s", "more than 12 hours"),
        ];
        for (parse, input, want) in cases {
            let e = parse(input).unwrap_err();
            let text = format!("{} / {}", e.message, e.help);
            assert!(text.contains(want), "{input}: {text}");
        }
        assert!(
            !parse_time_of_day("noon")
                .unwrap_err()
                .help
                .contains("did you mean")
        );
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*", t in "[0-9.:+\\- a-zA-Z]{0,24}") {
            for input in [&s, &t] {
                for parse in [duration, size, frequency, time] {
                    let _ = parse(input);
                }
            }
        }

        #[test]
        fn roundtrips(ms in any::<u64>(), bytes in any::<u64>(), hz in any::<u32>(), t in any_time_of_day()) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
            prop_assert_eq!(parse_frequency(&format_frequency(hz)), Ok(hz));
            prop_assert_eq!(parse_time_of_day(&format_time_of_day(&t)), Ok(t));
        }
    }
}
