//! Times as acoupi stores them: Python's `datetime.isoformat()` of a UTC datetime.
//!
//! In: a `jiff::Timestamp` (to write) or stored text (to read). Out: `2024-01-05T03:04:05+00:00`,
//! or `2024-01-05T03:04:05.123456+00:00` when there are microseconds, exactly as Python writes
//! it, so acoupi's text comparisons (`created_on >= ?`) and `datetime.fromisoformat` work on
//! our rows; and back. Python datetimes hold microseconds, so nanoseconds are truncated. The
//! format also sorts as text in time order: `05+00:00` < `05.5+00:00` since `+` < `.`.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// `t` as Python's `isoformat()` of the same instant in UTC.
pub(super) fn encode(t: Timestamp) -> String {
    crate::spec::data::isoformat(t)
}

/// A stored time: any offset (`+00:00`, `Z`, `+01:00`); a time without one is UTC, as acoupi
/// reads it.
pub(super) fn decode(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    s.parse::<DateTime>()
        .and_then(|dt| TimeZone::UTC.to_timestamp(dt))
        .map_err(|e| format!("time `{s}` is not ISO 8601: {e}"))
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
            encode(ts("2024-01-05T03:04:05Z")),
            "2024-01-05T03:04:05+00:00"
        );
        assert_eq!(
            encode(ts("2024-01-05T03:04:05.123456Z")),
            "2024-01-05T03:04:05.123456+00:00"
        );
        assert_eq!(
            encode(ts("2024-01-05T03:04:05.1Z")),
            "2024-01-05T03:04:05.100000+00:00"
        );
        // Nanoseconds below a microsecond are dropped, like a Python datetime would.
        assert_eq!(
            encode(ts("2024-01-05T03:04:05.000000999Z")),
            "2024-01-05T03:04:05+00:00"
        );
        assert_eq!(
            encode(ts("2024-01-05T04:04:05+01:00")),
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
            assert_eq!(decode(s), Ok(ts("2024-01-05T03:04:05Z")), "{s}");
        }
        assert_eq!(
            decode("2024-01-05T03:04:05.123456+00:00"),
            Ok(ts("2024-01-05T03:04:05.123456Z"))
        );
        assert!(decode("yesterday").is_err());
    }

    #[test]
    fn text_order_is_time_order() {
        let a = encode(ts("2024-01-05T03:04:05Z"));
        let b = encode(ts("2024-01-05T03:04:05.5Z"));
        let c = encode(ts("2024-01-05T03:04:06Z"));
        assert!(a < b && b < c, "{a} {b} {c}");
    }
}
