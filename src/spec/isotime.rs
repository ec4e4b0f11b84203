//! Times as the Python original writes them: `datetime.isoformat()` of a UTC datetime, in
//! Celery headers and in the SQLite metadata store.
//!
//! In: a `jiff::Timestamp` (to write) or text (to read). Out: `2024-01-05T03:04:05+00:00`,
//! or `2024-01-05T03:04:05.123456+00:00` when there are microseconds, exactly as Python writes
//! it, so acoupi's text comparisons (`created_on >= ?`) and `datetime.fromisoformat` work on
//! what we write; and back. Python datetimes hold microseconds, so nanoseconds are truncated.
//! The format sorts as text in time order: `05+00:00` < `05.5+00:00` since `+` < `.`.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;

/// `t` as Python's `isoformat()` of the same instant in UTC.
pub fn isoformat(t: Timestamp) -> String {
    let dt = TimeZone::UTC.to_datetime(t);
    let micros = dt.subsec_nanosecond() / 1_000;
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if micros != 0 {
        s.push_str(&format!(".{micros:06}"));
    }
    s.push_str("+00:00");
    s
}

/// `t` truncated to the microsecond, the precision acoupi's times (Python datetimes) keep.
pub fn to_micros(t: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(t.as_microsecond()).unwrap_or(t)
}

/// An ISO 8601 / RFC 3339 time with any offset (`+00:00`, `Z`, `+01:00`); one without an
/// offset is UTC (as acoupi and Celery read it), a bare date is its midnight UTC.
pub fn parse_iso(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let with_offset = match text.parse::<Timestamp>() {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let civil = text.parse::<DateTime>().or_else(|_| {
        text.parse::<Date>()
            .map(|d| d.to_datetime(Time::midnight()))
    });
    match civil {
        Ok(dt) => TimeZone::UTC.to_timestamp(dt).map_err(|e| e.to_string()),
        Err(_) => Err(with_offset.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("a valid timestamp literal")
    }

    #[test]
    fn writes_what_python_isoformat_writes() {
        // Python: datetime(2024,1,5,3,4,5,tzinfo=timezone.utc).isoformat()
        assert_eq!(
            isoformat(ts("2024-01-05T03:04:05Z")),
            "2024-01-05T03:04:05+00:00"
        );
        assert_eq!(
            isoformat(ts("2024-01-05T03:04:05.123456Z")),
            "2024-01-05T03:04:05.123456+00:00"
        );
        assert_eq!(
            isoformat(ts("2024-01-05T03:04:05.1Z")),
            "2024-01-05T03:04:05.100000+00:00"
        );
        // Nanoseconds below a microsecond are dropped, like a Python datetime would.
        assert_eq!(
            isoformat(ts("2024-01-05T03:04:05.000000999Z")),
            "2024-01-05T03:04:05+00:00"
        );
        assert_eq!(
            isoformat(ts("2024-01-05T04:04:05+01:00")),
            "2024-01-05T03:04:05+00:00"
        );
    }

    #[test]
    fn reads_offsets_z_and_naive_times() {
        for s in [
            "2024-01-05T03:04:05+00:00",
            "2024-01-05T03:04:05Z",
            "2024-01-05T04:04:05+01:00",
            "2024-01-05T03:04:05",
            "2024-01-05 03:04:05",
        ] {
            assert_eq!(parse_iso(s), Ok(ts("2024-01-05T03:04:05Z")), "{s}");
        }
        assert_eq!(
            parse_iso("2024-01-05T03:04:05.123456+00:00"),
            Ok(ts("2024-01-05T03:04:05.123456Z"))
        );
        assert_eq!(parse_iso("2024-01-05"), Ok(ts("2024-01-05T00:00:00Z")));
        assert!(parse_iso("yesterday").is_err());
    }

    proptest::proptest! {
        #[test]
        fn reads_back_what_it_writes_to_the_microsecond(
            secs in -2_000_000_000i64..4_000_000_000,
            nanos in 0i32..1_000_000_000,
        ) {
            let t = Timestamp::new(secs, nanos).expect("in range");
            let micros = Timestamp::new(secs, nanos / 1_000 * 1_000).expect("in range");
            proptest::prop_assert_eq!(parse_iso(&isoformat(t)), Ok(micros));
        }
    }

    #[test]
    fn text_order_is_time_order() {
        let a = isoformat(ts("2024-01-05T03:04:05Z"));
        let b = isoformat(ts("2024-01-05T03:04:05.5Z"));
        let c = isoformat(ts("2024-01-05T03:04:06Z"));
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
