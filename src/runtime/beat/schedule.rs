//! Wall-clock schedules: aligned interval slots, daily and sun-relative windows, beat state.
//!
//! In: the program's IANA timezone and optional location, an interval schedule (`every_ms`,
//! `offset_ms`, daily [`Window`]s) and timestamps chosen by the caller. Out: the concrete
//! instants of slots and windows ([`Clock`]), and beat's persisted last-fired slots
//! ([`BeatState`]). Nothing here reads the real clock, sleeps or spawns: every answer is a
//! pure function of its arguments, so the scheduler can be tested at any date.
//!
//! Slots are aligned to local midnight: a day's slots are `midnight + offset + k * every` for
//! `k >= 0`, strictly before the next local midnight, counted in elapsed time (so on a DST day
//! an hourly task still fires every 60 minutes, which is on the hour in local time). Windows
//! are half-open `[start, end)` intervals; all instants are handled at millisecond
//! resolution.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use sunrise::{Coordinates, DawnType, SolarDay, SolarEvent};

use crate::spec::{Location, SunEvent, TimeOfDay, Window};

/// One day in milliseconds.
const DAY_MS: i64 = 86_400_000;
/// One hour in milliseconds.
const HOUR_MS: i64 = 3_600_000;
/// How far ahead [`Clock::next_slot`] and how far back [`Clock::prev_slot`] look.
const HORIZON_MS: i64 = 8 * DAY_MS;
/// How much earlier than its local date's midnight a window may start when its start is a sun
/// event without offset (the event of the solar day nearest local noon falls at most about
/// 13 h 16 min before local midnight), rounded up with slack.
const SUN_EARLY_MS: i64 = 15 * HOUR_MS;
/// The earliest a sun window is assumed to start before its event (the manifest allows 12 h);
/// with larger negative offsets the scans may return a later slot than the first.
const MAX_SUN_OFFSET_MS: i64 = 2 * DAY_MS;
/// A window scan that finds no interval on this many consecutive local days gives up: the
/// windows never open (no location for a sun window, a clock time out of range).
const EMPTY_DAYS_LIMIT: u32 = 400;
/// Offsets of a day or more are refused (no slots at all), so that no scan crawls through
/// days that can never hold a slot.
const MAX_OFFSET_MS: u64 = DAY_MS as u64;

/// Why a schedule or beat's state could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The timezone is not in the bundled tz database.
    #[error("unknown timezone `{0}`: use an IANA name such as `Europe/London` or `UTC`")]
    UnknownTimezone(String),
    /// The location's coordinates or elevation are out of range.
    #[error(
        "invalid location: latitude `{latitude}` must be -90 to 90, longitude `{longitude}` \
         -180 to 180 and elevation `{elevation_m}` finite"
    )]
    InvalidLocation {
        /// Degrees north.
        latitude: f64,
        /// Degrees east.
        longitude: f64,
        /// Metres above sea level.
        elevation_m: f64,
    },
    /// The state file exists but cannot be read.
    #[error("cannot read beat state `{path}`: {source}")]
    ReadState {
        /// The state file.
        path: Utf8PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not valid beat state.
    #[error("corrupt beat state `{path}`: {source}")]
    CorruptState {
        /// The state file.
        path: Utf8PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The state file cannot be written.
    #[error("cannot write beat state `{path}`: {source}")]
    WriteState {
        /// The state file.
        path: Utf8PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Resolves schedules against a timezone and (optional) location.
///
/// Cheap to query: nothing is cached, sun times are computed on demand (a few hundred
/// nanoseconds each).
#[derive(Debug, Clone)]
pub struct Clock {
    /// The program's timezone.
    tz: TimeZone,
    /// The sensor's location, when known.
    location: Option<Location>,
    /// The location as `sunrise` wants it.
    coordinates: Option<Coordinates>,
}

impl Clock {
    /// A clock for the IANA `timezone` and the sensor's `location` (needed only for sun
    /// windows: without it every sun-relative window is closed).
    pub fn new(timezone: &str, location: Option<Location>) -> Result<Self, ScheduleError> {
        let tz = TimeZone::get(timezone)
            .map_err(|_| ScheduleError::UnknownTimezone(timezone.to_owned()))?;
        let coordinates = match location {
            None => None,
            Some(l) => {
                let c = Coordinates::new(l.latitude, l.longitude)
                    .filter(|_| l.elevation_m.is_finite())
                    .ok_or(ScheduleError::InvalidLocation {
                        latitude: l.latitude,
                        longitude: l.longitude,
                        elevation_m: l.elevation_m,
                    })?;
                Some(c)
            }
        };
        Ok(Self {
            tz,
            location,
            coordinates,
        })
    }

    /// The timezone.
    pub fn timezone(&self) -> &TimeZone {
        &self.tz
    }

    /// Instant of a sun event on a local date at the location (None: no location, or the
    /// event does not happen that day, e.g. no sunset during polar day, no civil dusk in a
    /// white night).
    ///
    /// The event is the one of the solar day whose noon is nearest local noon on `date`, so
    /// sunrise and sunset come from the same solar day even when the timezone is far from the
    /// longitude; near the polar circles an evening event may fall after local midnight.
    /// Dawn and dusk are civil twilight (sun 6° below the horizon); the location's elevation
    /// lowers the horizon.
    pub fn sun_event(&self, date: Date, event: SunEvent) -> Option<Timestamp> {
        self.sun_ms(date, event).and_then(from_ms)
    }

    /// The concrete `[start, end)` interval of `window` that starts on local date `date`.
    ///
    /// `from` is resolved on `date`; `to` is resolved on `date` too, and when that is not after
    /// the start the window crosses midnight and `to` is resolved on the next day instead (a
    /// sun end is the event of the day it falls on). Clock times in a DST gap resolve to the
    /// instant after the gap, those in a fold to the first occurrence.
    ///
    /// None when the window is closed that day: the start cannot be resolved on `date`, the
    /// end cannot be resolved on `date` (even if it could on the next day), or the next-day
    /// end is still not after the start. A sun event that does not happen (polar day or
    /// night), a sun time without a location and a clock time of `86400` s or more cannot be
    /// resolved.
    pub fn window_on(&self, window: &Window, date: Date) -> Option<(Timestamp, Timestamp)> {
        let (start, end) = self.window_ms(window, date)?;
        Some((from_ms(start)?, from_ms(end)?))
    }

    /// Whether `t` is inside any of `windows` (empty = always).
    ///
    /// Considers the windows starting from two local days before `t`'s to two days after.
    pub fn in_windows(&self, windows: &[Window], t: Timestamp) -> bool {
        if windows.is_empty() {
            return true;
        }
        let x = floor_ms(t);
        let Some(d) = self.local_date(x) else {
            return false;
        };
        let mut date = back(d, 2);
        for _ in 0..5 {
            for w in windows {
                if let Some((s, e)) = self.window_ms(w, date)
                    && s <= x
                    && x < e
                {
                    return true;
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        false
    }

    /// The first slot at or after `after` of an interval schedule, or None when no slot lies
    /// in any window within the next 8 days.
    ///
    /// Slots are aligned to local midnight of each day: `midnight + offset_ms + k * every_ms`
    /// for `k >= 0`, strictly before the next local midnight, counted in elapsed time from
    /// that day's midnight (so a 10 s task fires at :00, :10, :20, a 7 min task restarts at
    /// midnight, a 1 h task fires on the hour in local time, 23 times on a spring-forward
    /// day). Only slots inside `windows` count (empty = all). `every_ms = 0` and
    /// `offset_ms >= 86400000` (a day) have no slots at all (None); an offset longer than a
    /// short DST day leaves that day without slots.
    pub fn next_slot(
        &self,
        every_ms: u64,
        offset_ms: u64,
        windows: &[Window],
        after: Timestamp,
    ) -> Option<Timestamp> {
        if every_ms == 0 || offset_ms >= MAX_OFFSET_MS {
            return None;
        }
        let grid = Grid {
            every_ms,
            offset_ms,
        };
        let lo = ceil_ms(after);
        let hi = lo.saturating_add(HORIZON_MS);
        let found = if windows.is_empty() {
            self.first_slot(grid, lo, hi)
        } else {
            let mut found = None;
            // Intervals arrive in start order, so the first one holding a slot holds the
            // earliest.
            self.walk(windows, lo, hi, |s, e| {
                found = self.first_slot(grid, s.max(lo), e.min(hi));
                found.is_none()
            });
            found
        };
        found.and_then(from_ms)
    }

    /// The latest slot at or before `t` that lies inside `windows` (empty = all), or None when
    /// there is none within the 8 days before `t`.
    ///
    /// Windows are respected, like [`Clock::next_slot`]: this is the last slot a scheduler
    /// running at `t` should have fired. Same alignment rules as [`Clock::next_slot`].
    pub fn prev_slot(
        &self,
        every_ms: u64,
        offset_ms: u64,
        windows: &[Window],
        t: Timestamp,
    ) -> Option<Timestamp> {
        if every_ms == 0 || offset_ms >= MAX_OFFSET_MS {
            return None;
        }
        let grid = Grid {
            every_ms,
            offset_ms,
        };
        let hi = floor_ms(t).saturating_add(1);
        let lo = hi.saturating_sub(HORIZON_MS);
        let found = if windows.is_empty() {
            self.last_slot(grid, lo, hi)
        } else {
            let mut best: Option<i64> = None;
            self.walk(windows, lo, hi, |s, e| {
                if let Some(x) = self.last_slot(grid, s.max(lo), e.min(hi)) {
                    best = best.max(Some(x));
                }
                true
            });
            best
        };
        found.and_then(from_ms)
    }

    /// Number of in-window slots strictly after `a` and strictly before `b`, capped at `cap`.
    ///
    /// Counts per local day in constant time, so weeks of a 10 s schedule cost a few
    /// microseconds per day and the scan stops as soon as `cap` is reached (below the cap the
    /// cost is linear in the number of local days between `a` and `b`). Overlapping windows
    /// count a slot once. 0 when `every_ms = 0`, `offset_ms` is a day or more, or `b <= a`.
    pub fn slots_between(
        &self,
        every_ms: u64,
        offset_ms: u64,
        windows: &[Window],
        a: Timestamp,
        b: Timestamp,
        cap: u64,
    ) -> u64 {
        if every_ms == 0 || cap == 0 || offset_ms >= MAX_OFFSET_MS {
            return 0;
        }
        let grid = Grid {
            every_ms,
            offset_ms,
        };
        // Slots are whole milliseconds: s > a <=> s >= floor(a) + 1, s < b <=> s < ceil(b).
        let lo = floor_ms(a).saturating_add(1);
        let hi = ceil_ms(b);
        if lo >= hi {
            return 0;
        }
        if windows.is_empty() {
            return self.count_slots(grid, lo, hi, cap);
        }
        let mut count = 0u64;
        let mut covered = lo;
        self.walk(windows, lo, hi, |s, e| {
            let from = s.max(covered);
            let to = e.min(hi);
            if from < to {
                count += self.count_slots(grid, from, to, cap - count);
            }
            covered = covered.max(e);
            count < cap
        });
        count
    }

    /// Calls `f` with the intervals of `windows` that may meet `[lo, hi)`, in order of start
    /// (unclipped, possibly overlapping), until `f` returns false.
    ///
    /// Walks local dates from two days before `lo`'s; an interval is released once no window
    /// of a later date can start before it. Windows are assumed to end within about a day of
    /// their local date's next midnight, which holds for any sun event offset by up to 12 h,
    /// and to start at most [`MAX_SUN_OFFSET_MS`] before their sun event.
    fn walk(&self, windows: &[Window], lo: i64, hi: i64, mut f: impl FnMut(i64, i64) -> bool) {
        let Some(first) = self.local_date(lo) else {
            return;
        };
        let early = windows
            .iter()
            .map(|w| match w.from {
                TimeOfDay::Clock { .. } => 0,
                TimeOfDay::Sun { offset_ms, .. } => {
                    SUN_EARLY_MS + offset_ms.saturating_neg().clamp(0, MAX_SUN_OFFSET_MS)
                }
            })
            .max()
            .unwrap_or(0);
        let mut pending: Vec<(i64, i64)> = Vec::new();
        let mut date = back(first, 2);
        let mut empty_days = 0u32;
        loop {
            let before = pending.len();
            for w in windows {
                if let Some(interval) = self.window_ms(w, date) {
                    pending.push(interval);
                }
            }
            empty_days = if pending.len() > before {
                0
            } else {
                empty_days + 1
            };
            let next = date.tomorrow().ok();
            // No window of `next` or later starts before `frontier`.
            let frontier = next
                .and_then(|n| self.midnight(n))
                .map(|m| m.saturating_sub(early));
            pending.sort_unstable();
            let ready = match frontier {
                Some(fr) => pending.partition_point(|(s, _)| *s < fr),
                None => pending.len(),
            };
            for (s, e) in pending.drain(..ready) {
                if e > lo && s < hi && !f(s, e) {
                    return;
                }
            }
            match (next, frontier) {
                (Some(n), Some(fr)) if fr < hi && empty_days < EMPTY_DAYS_LIMIT => date = n,
                _ => break,
            }
        }
        for (s, e) in pending {
            if e > lo && s < hi && !f(s, e) {
                return;
            }
        }
    }

    /// The first slot in `[lo, hi)`.
    fn first_slot(&self, grid: Grid, lo: i64, hi: i64) -> Option<i64> {
        if lo >= hi {
            return None;
        }
        let mut date = self.local_date(lo)?;
        let mut from = lo;
        loop {
            let (m, n) = self.day_bounds(date)?;
            if m >= hi {
                return None;
            }
            if let Some(s) = grid.first_at_or_after(m, n, from) {
                return (s < hi).then_some(s);
            }
            date = date.tomorrow().ok()?;
            from = n;
        }
    }

    /// The last slot in `[lo, hi)`.
    fn last_slot(&self, grid: Grid, lo: i64, hi: i64) -> Option<i64> {
        if lo >= hi {
            return None;
        }
        let mut date = self.local_date(hi - 1)?;
        let mut to = hi;
        loop {
            let (m, n) = self.day_bounds(date)?;
            if n <= lo {
                return None;
            }
            if let Some(s) = grid.last_before(m, n, to) {
                return (s >= lo).then_some(s);
            }
            date = date.yesterday().ok()?;
            to = m;
        }
    }

    /// The number of slots in `[lo, hi)`, at most `cap`.
    fn count_slots(&self, grid: Grid, lo: i64, hi: i64, cap: u64) -> u64 {
        let Some(mut date) = self.local_date(lo) else {
            return 0;
        };
        let mut count = 0u64;
        while count < cap {
            let Some((m, n)) = self.day_bounds(date) else {
                break;
            };
            if m >= hi {
                break;
            }
            count = count.saturating_add(grid.count(m, n, lo.max(m), hi.min(n)));
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        count.min(cap)
    }

    /// [`Clock::window_on`] in milliseconds since the Unix epoch.
    fn window_ms(&self, window: &Window, date: Date) -> Option<(i64, i64)> {
        let start = self.resolve(&window.from, date)?;
        let end = self.resolve(&window.to, date)?;
        if end > start {
            return Some((start, end));
        }
        let end = self.resolve(&window.to, date.tomorrow().ok()?)?;
        (end > start).then_some((start, end))
    }

    /// A time of day on `date`, in milliseconds since the Unix epoch.
    fn resolve(&self, t: &TimeOfDay, date: Date) -> Option<i64> {
        match *t {
            TimeOfDay::Clock { seconds } => {
                if seconds >= 86_400 {
                    return None;
                }
                let hour = i8::try_from(seconds / 3600).ok()?;
                let minute = i8::try_from(seconds / 60 % 60).ok()?;
                let second = i8::try_from(seconds % 60).ok()?;
                let time = Time::new(hour, minute, second, 0).ok()?;
                self.local(date, time)
            }
            TimeOfDay::Sun { event, offset_ms } => self.sun_ms(date, event)?.checked_add(offset_ms),
        }
    }

    /// [`Clock::sun_event`] in milliseconds since the Unix epoch.
    fn sun_ms(&self, date: Date, event: SunEvent) -> Option<i64> {
        let coordinates = self.coordinates?;
        let elevation = self.location.map_or(0.0, |l| l.elevation_m);
        // The UTC date whose mean solar noon at this longitude is nearest local noon.
        let noon = self.local(date, Time::new(12, 0, 0, 0).ok()?)?;
        let shift_ms = (coordinates.lon() * 240_000.0).round() as i64;
        let solar = from_ms(noon.checked_add(shift_ms)?)?;
        let utc_date = TimeZone::UTC.to_datetime(solar).date();
        // `sunrise` takes a chrono date; parsing the ISO form avoids depending on chrono.
        let naive = utc_date.to_string().parse().ok()?;
        let day = SolarDay::new(coordinates, naive).with_altitude(elevation);
        let event = match event {
            SunEvent::Sunrise => SolarEvent::Sunrise,
            SunEvent::Sunset => SolarEvent::Sunset,
            SunEvent::Dawn => SolarEvent::Dawn(DawnType::Civil),
            SunEvent::Dusk => SolarEvent::Dusk(DawnType::Civil),
        };
        day.event_time(event)?.timestamp().checked_mul(1000)
    }

    /// The local date of `ms`.
    fn local_date(&self, ms: i64) -> Option<Date> {
        Some(self.tz.to_datetime(from_ms(ms)?).date())
    }

    /// A local date and time in milliseconds (gaps resolve after, folds to the first).
    fn local(&self, date: Date, time: Time) -> Option<i64> {
        self.tz
            .to_timestamp(date.to_datetime(time))
            .ok()
            .map(floor_ms)
    }

    /// The first instant of `date`.
    fn midnight(&self, date: Date) -> Option<i64> {
        self.local(date, Time::midnight())
    }

    /// The first instant of `date` and of the next day.
    fn day_bounds(&self, date: Date) -> Option<(i64, i64)> {
        Some((self.midnight(date)?, self.midnight(date.tomorrow().ok()?)?))
    }
}

/// An interval schedule's slot grid within one day.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// Time between slots (> 0).
    every_ms: u64,
    /// First slot after midnight.
    offset_ms: u64,
}

impl Grid {
    /// The first slot at or after `x` of the day `[m, n)`, if the day has one.
    fn first_at_or_after(self, m: i64, n: i64, x: i64) -> Option<i64> {
        let every = i128::from(self.every_ms);
        let base = i128::from(m) + i128::from(self.offset_ms);
        let x = i128::from(x.max(m));
        let s = if x <= base {
            base
        } else {
            base + (x - base + every - 1) / every * every
        };
        if s < i128::from(n) {
            i64::try_from(s).ok()
        } else {
            None
        }
    }

    /// The last slot before `x` of the day `[m, n)`, if the day has one.
    fn last_before(self, m: i64, n: i64, x: i64) -> Option<i64> {
        let every = i128::from(self.every_ms);
        let base = i128::from(m) + i128::from(self.offset_ms);
        let y = i128::from(x.min(n)) - 1;
        if y < base {
            return None;
        }
        i64::try_from(base + (y - base) / every * every).ok()
    }

    /// The number of slots of the day `[m, n)` in `[lo, hi)` (both within the day).
    fn count(self, m: i64, n: i64, lo: i64, hi: i64) -> u64 {
        let every = i128::from(self.every_ms);
        let base = i128::from(m) + i128::from(self.offset_ms);
        let lo = i128::from(lo).max(base);
        let hi = i128::from(hi.min(n));
        if lo >= hi {
            return 0;
        }
        let ceil = |v: i128| (v - base + every - 1) / every;
        u64::try_from(ceil(hi) - ceil(lo)).unwrap_or(0)
    }
}

/// `date` moved `days` days back, or as far as the calendar allows.
fn back(date: Date, days: u32) -> Date {
    let mut d = date;
    for _ in 0..days {
        match d.yesterday() {
            Ok(y) => d = y,
            Err(_) => break,
        }
    }
    d
}

/// Whole milliseconds at or before `t`.
fn floor_ms(t: Timestamp) -> i64 {
    let ns = i64::from(t.subsec_nanosecond());
    t.as_second() * 1000 + ns.div_euclid(1_000_000)
}

/// Whole milliseconds at or after `t`.
fn ceil_ms(t: Timestamp) -> i64 {
    let ns = i64::from(t.subsec_nanosecond());
    floor_ms(t) + i64::from(ns.rem_euclid(1_000_000) != 0)
}

/// The instant `ms` milliseconds after the Unix epoch, if representable.
fn from_ms(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

/// Beat's persisted state: the last slot it fired per task, so a restart neither fires a slot
/// twice nor replays missed slots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BeatState {
    /// Task name to the slot it was last fired for.
    pub last_fired: BTreeMap<String, Timestamp>,
}

impl BeatState {
    /// Loads `path`; a missing file is an empty state; a corrupt file is an error naming the
    /// path (beat will log and start fresh).
    pub fn load(path: &Utf8Path) -> Result<Self, ScheduleError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ScheduleError::ReadState {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|source| ScheduleError::CorruptState {
            path: path.to_owned(),
            source,
        })
    }

    /// Saves atomically: writes a temporary file in the same directory (created if missing),
    /// fsyncs it, renames it over `path`, then fsyncs the directory.
    pub fn save(&self, path: &Utf8Path) -> Result<(), ScheduleError> {
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| ScheduleError::WriteState {
            path: path.to_owned(),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        crate::fsx::write_atomic(path, &json, None).map_err(|e| ScheduleError::WriteState {
            path: e.path,
            source: e.source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::any_time_of_day;
    use jiff::civil::date;
    use proptest::prelude::*;

    const LONDON: Location = Location {
        latitude: 51.5074,
        longitude: -0.1278,
        elevation_m: 0.0,
    };
    const TROMSO: Location = Location {
        latitude: 69.65,
        longitude: 18.96,
        elevation_m: 0.0,
    };

    fn clock(tz: &str) -> Clock {
        Clock::new(tz, Some(LONDON)).unwrap()
    }

    /// A local time in `tz`.
    fn at(tz: &str, s: &str) -> Timestamp {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        TimeZone::get(tz).unwrap().to_timestamp(dt).unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn hm(h: u32, m: u32) -> TimeOfDay {
        TimeOfDay::Clock {
            seconds: h * 3600 + m * 60,
        }
    }

    fn window(from: TimeOfDay, to: TimeOfDay) -> Window {
        Window { from, to }
    }

    fn sun(event: SunEvent, offset_min: i64) -> TimeOfDay {
        TimeOfDay::Sun {
            event,
            offset_ms: offset_min * 60_000,
        }
    }

    /// Local wall time of `t` in `tz`, as `YYYY-MM-DDTHH:MM:SS`.
    fn wall(tz: &str, t: Timestamp) -> String {
        TimeZone::get(tz).unwrap().to_datetime(t).to_string()
    }

    #[test]
    fn unknown_timezone_and_bad_location_are_errors() {
        let e = Clock::new("Europe/Lundon", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown timezone `Europe/Lundon`: use an IANA name such as `Europe/London` or `UTC`"
        );
        let bad = Location {
            latitude: 91.0,
            ..LONDON
        };
        assert!(matches!(
            Clock::new("UTC", Some(bad)),
            Err(ScheduleError::InvalidLocation { .. })
        ));
        let nan = Location {
            elevation_m: f64::NAN,
            ..LONDON
        };
        assert!(Clock::new("UTC", Some(nan)).is_err());
        assert!(Clock::new("UTC", None).is_ok());
    }

    #[test]
    fn ten_second_slots_align_to_the_minute() {
        let tz = "Europe/London";
        let c = clock(tz);
        let after = at(tz, "2026-05-04T12:34:56.789");
        let next = c.next_slot(10_000, 0, &[], after).unwrap();
        assert_eq!(wall(tz, next), "2026-05-04T12:35:00");
        let exact = at(tz, "2026-05-04T12:35:10");
        assert_eq!(c.next_slot(10_000, 0, &[], exact), Some(exact));
        let just_after = exact
            .checked_add(jiff::SignedDuration::from_nanos(1))
            .unwrap();
        let next = c.next_slot(10_000, 0, &[], just_after).unwrap();
        assert_eq!(wall(tz, next), "2026-05-04T12:35:20");
        // With an offset of 3 s: :03, :13, ...
        let next = c.next_slot(10_000, 3_000, &[], after).unwrap();
        assert_eq!(wall(tz, next), "2026-05-04T12:35:03");
        // Offset larger than the interval: first slot of the day at 00:30, then hourly.
        let next = c
            .next_slot(3_600_000, 1_800_000, &[], at(tz, "2026-05-04T00:10"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-05-04T00:30:00");
        let next = c
            .next_slot(3_600_000, 1_800_000, &[], at(tz, "2026-05-04T00:31"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-05-04T01:30:00");
    }

    #[test]
    fn seven_minute_slots_restart_at_midnight() {
        let tz = "America/New_York";
        let c = clock(tz);
        let every = 7 * 60_000;
        let last = c
            .next_slot(every, 0, &[], at(tz, "2026-05-04T23:50"))
            .unwrap();
        assert_eq!(wall(tz, last), "2026-05-04T23:55:00");
        let next = c
            .next_slot(every, 0, &[], at(tz, "2026-05-04T23:56"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-05-05T00:00:00");
        let next = c
            .next_slot(every, 0, &[], at(tz, "2026-05-05T00:00:01"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-05-05T00:07:00");
        let prev = c
            .prev_slot(every, 0, &[], at(tz, "2026-05-05T00:06:59"))
            .unwrap();
        assert_eq!(wall(tz, prev), "2026-05-05T00:00:00");
        let prev = c
            .prev_slot(every, 0, &[], at(tz, "2026-05-04T23:59"))
            .unwrap();
        assert_eq!(wall(tz, prev), "2026-05-04T23:55:00");
    }

    #[test]
    fn hourly_slots_across_london_dst_changes() {
        let tz = "Europe/London";
        let c = clock(tz);
        let hour = 3_600_000;
        // Spring forward 2026-03-29: 01:00 GMT becomes 02:00 BST.
        let next = c
            .next_slot(hour, 0, &[], ts("2026-03-29T00:30:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-03-29T01:00:00Z"));
        assert_eq!(wall(tz, next), "2026-03-29T02:00:00");
        let next = c
            .next_slot(hour, 0, &[], ts("2026-03-29T22:30:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-03-29T23:00:00Z"));
        assert_eq!(wall(tz, next), "2026-03-30T00:00:00");
        let day = |d: &str, e: &str| {
            let a = ts(d)
                .checked_sub(jiff::SignedDuration::from_millis(1))
                .unwrap();
            c.slots_between(hour, 0, &[], a, ts(e), u64::MAX)
        };
        assert_eq!(day("2026-03-29T00:00:00Z", "2026-03-29T23:00:00Z"), 23);
        // Fall back 2026-10-25: 02:00 BST becomes 01:00 GMT; 01:00 happens twice.
        let next = c
            .next_slot(hour, 0, &[], ts("2026-10-25T00:30:00Z"))
            .unwrap();
        assert_eq!(next, ts("2026-10-25T01:00:00Z"));
        assert_eq!(wall(tz, next), "2026-10-25T01:00:00");
        let first = c
            .next_slot(hour, 0, &[], ts("2026-10-24T23:30:00Z"))
            .unwrap();
        assert_eq!(first, ts("2026-10-25T00:00:00Z"));
        assert_eq!(wall(tz, first), "2026-10-25T01:00:00");
        assert_eq!(day("2026-10-24T23:00:00Z", "2026-10-26T00:00:00Z"), 25);
        assert_eq!(day("2026-05-03T23:00:00Z", "2026-05-04T23:00:00Z"), 24);
    }

    #[test]
    fn same_day_window_excludes_the_night() {
        let tz = "Europe/London";
        let c = clock(tz);
        let w = [window(hm(6, 0), hm(22, 30))];
        let inside = |s: &str| c.in_windows(&w, at(tz, s));
        assert!(!inside("2026-05-04T23:00"));
        assert!(!inside("2026-05-04T05:00"));
        assert!(inside("2026-05-04T06:00"));
        assert!(inside("2026-05-04T12:00"));
        assert!(inside("2026-05-04T22:29:59.999"));
        assert!(!inside("2026-05-04T22:30"));
        let (s, e) = c.window_on(&w[0], date(2026, 5, 4)).unwrap();
        assert_eq!(
            (wall(tz, s).as_str(), wall(tz, e).as_str()),
            ("2026-05-04T06:00:00", "2026-05-04T22:30:00")
        );
        assert!(c.in_windows(&[], at(tz, "2026-05-04T03:00")));
    }

    #[test]
    fn window_crossing_midnight() {
        let tz = "Europe/London";
        let c = clock(tz);
        let w = [window(hm(21, 0), hm(6, 0))];
        let inside = |s: &str| c.in_windows(&w, at(tz, s));
        assert!(inside("2026-05-04T23:00"));
        assert!(inside("2026-05-04T03:00"));
        assert!(!inside("2026-05-04T12:00"));
        assert!(inside("2026-05-04T21:00"));
        assert!(!inside("2026-05-04T20:59:59.999"));
        assert!(inside("2026-05-04T05:59:59.999"));
        assert!(!inside("2026-05-04T06:00"));
        let (s, e) = c.window_on(&w[0], date(2026, 5, 4)).unwrap();
        assert_eq!(
            (wall(tz, s).as_str(), wall(tz, e).as_str()),
            ("2026-05-04T21:00:00", "2026-05-05T06:00:00")
        );
        // Equal ends: the whole day.
        let all = window(hm(0, 0), hm(0, 0));
        let (s, e) = c.window_on(&all, date(2026, 5, 4)).unwrap();
        assert_eq!(e.duration_since(s).as_hours(), 24);
        // A clock time out of range never resolves.
        let bad = window(TimeOfDay::Clock { seconds: 86_400 }, hm(1, 0));
        assert_eq!(c.window_on(&bad, date(2026, 5, 4)), None);
        assert!(!c.in_windows(&[bad], at(tz, "2026-05-04T00:30")));
    }

    /// With a clock far from the location's meridian (New York's time, Sydney's sun), a
    /// date's sunrise and sunset are those of the solar day whose noon is nearest local noon:
    /// Sydney's solar noon nearest New York's noon of 15 January is in the early hours UTC of
    /// the 16th, 9 h after it; the 15th's UTC solar day would put it 15 h before.
    #[test]
    fn sun_events_come_from_the_solar_day_nearest_local_noon() {
        let tz = "America/New_York";
        let c = Clock::new(tz, Some(SYDNEY)).unwrap();
        for day in [date(2026, 1, 15), date(2026, 7, 15)] {
            let noon = at(tz, &format!("{day}T12:00"));
            let rise = c.sun_event(day, SunEvent::Sunrise).unwrap();
            let set = c.sun_event(day, SunEvent::Sunset).unwrap();
            assert!(rise < set, "{rise} {set}");
            let solar_noon = rise + set.duration_since(rise) / 2;
            let from_noon = solar_noon.duration_since(noon).abs();
            assert!(
                from_noon < jiff::SignedDuration::from_hours(12),
                "{day}: solar noon {solar_noon} is {from_noon} from local noon {noon}"
            );
        }
    }

    #[test]
    fn london_sun_times_match_published_values() {
        let tz = "Europe/London";
        let c = clock(tz);
        let d = date(2026, 6, 21);
        let near = |t: Timestamp, want: &str| {
            let diff = t.duration_since(at(tz, want)).as_secs().abs();
            assert!(diff <= 180, "{} vs {want}", wall(tz, t));
        };
        let sunrise = c.sun_event(d, SunEvent::Sunrise).unwrap();
        let sunset = c.sun_event(d, SunEvent::Sunset).unwrap();
        near(sunrise, "2026-06-21T04:43");
        near(sunset, "2026-06-21T21:21");
        let dawn = c.sun_event(d, SunEvent::Dawn).unwrap();
        let dusk = c.sun_event(d, SunEvent::Dusk).unwrap();
        assert!(dusk > sunset && dawn < sunrise);
        // Civil twilight lasts ~48 min at 51.5° N at the solstice (hour angle 124.8° to 136.7°).
        let twilight = |a: Timestamp, b: Timestamp| b.duration_since(a).as_secs() / 60;
        assert!(
            (44..=52).contains(&twilight(sunset, dusk)),
            "{}",
            wall(tz, dusk)
        );
        assert!(
            (44..=52).contains(&twilight(dawn, sunrise)),
            "{}",
            wall(tz, dawn)
        );
        // Winter solstice: sunrise ~08:04 GMT, sunset ~15:54 GMT.
        let d = date(2026, 12, 21);
        near(
            c.sun_event(d, SunEvent::Sunrise).unwrap(),
            "2026-12-21T08:04",
        );
        near(
            c.sun_event(d, SunEvent::Sunset).unwrap(),
            "2026-12-21T15:54",
        );
        // No location: no sun.
        let blind = Clock::new(tz, None).unwrap();
        assert_eq!(blind.sun_event(d, SunEvent::Sunset), None);
        let w = window(sun(SunEvent::Sunset, 0), hm(23, 0));
        assert_eq!(blind.window_on(&w, d), None);
        assert_eq!(
            blind.next_slot(60_000, 0, &[w], at(tz, "2026-12-21T12:00")),
            None
        );
    }

    #[test]
    fn sun_window_across_midnight() {
        let tz = "Europe/London";
        let c = clock(tz);
        let w = window(sun(SunEvent::Sunset, -30), sun(SunEvent::Sunrise, 30));
        let d = date(2026, 6, 21);
        let (s, e) = c.window_on(&w, d).unwrap();
        let sunset = c.sun_event(d, SunEvent::Sunset).unwrap();
        let sunrise = c
            .sun_event(d.tomorrow().unwrap(), SunEvent::Sunrise)
            .unwrap();
        assert_eq!(
            s,
            sunset
                .checked_sub(jiff::SignedDuration::from_mins(30))
                .unwrap()
        );
        assert_eq!(
            e,
            sunrise
                .checked_add(jiff::SignedDuration::from_mins(30))
                .unwrap()
        );
        assert!(c.in_windows(&[w], at(tz, "2026-06-22T01:00")));
        assert!(!c.in_windows(&[w], at(tz, "2026-06-22T12:00")));
    }

    #[test]
    fn midsummer_tromso_has_no_sunset() {
        let tz = "Europe/Oslo";
        let c = Clock::new(tz, Some(TROMSO)).unwrap();
        let d = date(2026, 6, 21);
        assert_eq!(c.sun_event(d, SunEvent::Sunset), None);
        assert_eq!(c.sun_event(d, SunEvent::Sunrise), None);
        assert_eq!(c.sun_event(d, SunEvent::Dusk), None);
        let night = window(sun(SunEvent::Sunset, -30), sun(SunEvent::Sunrise, 30));
        assert_eq!(c.window_on(&night, d), None);
        let evening = window(hm(20, 0), sun(SunEvent::Sunset, 0));
        assert_eq!(c.window_on(&evening, d), None);
        assert!(!c.in_windows(&[night], at(tz, "2026-06-21T23:59")));
        // The whole polar day has no slot: next_slot gives up after 8 days.
        assert_eq!(
            c.next_slot(600_000, 0, &[night], at(tz, "2026-06-21T12:00")),
            None
        );
        // In winter the sun sets (and rises) again.
        let d = date(2026, 10, 1);
        assert!(c.window_on(&night, d).is_some());
    }

    /// Days ahead: the first night after Tromsø's midnight sun is found from days before it
    /// (next_slot looks up to 8 days ahead).
    #[test]
    fn the_first_night_after_the_midnight_sun_is_days_ahead() {
        let tz = "Europe/Oslo";
        let c = Clock::new(tz, Some(TROMSO)).unwrap();
        let night = [window(
            sun(SunEvent::Sunset, -30),
            sun(SunEvent::Sunrise, 30),
        )];
        let after = at(tz, "2026-07-22T12:00");
        let first_sunset = (0..10)
            .map(|k| date(2026, 7, 22) + jiff::Span::new().days(k))
            .find_map(|d| c.sun_event(d, SunEvent::Sunset))
            .expect("the sun sets again in July");
        let days = first_sunset.duration_since(after).as_hours() / 24;
        assert!(
            days >= 2,
            "the midnight sun lasts days past {after}: {first_sunset}"
        );
        let next = c
            .next_slot(600_000, 0, &night, after)
            .expect("a slot that night");
        let start = first_sunset
            .checked_sub(jiff::SignedDuration::from_mins(30))
            .unwrap();
        assert!(
            next >= start,
            "{next} is before the window opens at {start}"
        );
        assert!(
            next.duration_since(start) < jiff::SignedDuration::from_mins(10),
            "{next} is the first 10-minute slot after {start}"
        );
    }

    /// A sun window with a large negative offset can start more than the usual slack before
    /// its local date's midnight: on a UTC clock, Sydney's December sunrise of the 15th falls
    /// on the evening of the 14th, and 12 h earlier is the morning of the 14th. That window's
    /// slots still come first, before those of a clock window later that morning, and ranges
    /// ending before the 14th's midnight still count them.
    #[test]
    fn a_sun_window_starting_the_morning_before_its_date_is_scanned_in_order() {
        let c = Clock::new("UTC", Some(SYDNEY)).unwrap();
        let early = window(
            sun(SunEvent::Sunrise, -12 * 60),
            sun(SunEvent::Sunrise, -9 * 60),
        );
        let (start, end) = c.window_on(&early, date(2026, 12, 15)).unwrap();
        let midnight = ts("2026-12-15T00:00:00Z");
        assert!(
            midnight.duration_since(start) > jiff::SignedDuration::from_hours(16),
            "{start}"
        );
        let eight = ts("2026-12-14T08:00:00Z");
        assert!(start < eight && eight < end, "{start} to {end}");
        let windows = [early, window(hm(8, 0), hm(10, 0))];
        let after = ts("2026-12-14T05:00:00Z");
        let next = c.next_slot(600_000, 0, &windows, after).unwrap();
        assert_eq!(Some(next), brute_next(&c, 600_000, 0, &windows, after));
        assert!(next >= start && next < eight, "{next}");
        assert_eq!(c.prev_slot(600_000, 0, &windows, next), Some(next));
        let between = eight.duration_since(next).as_mins() / 10;
        assert_eq!(
            c.slots_between(600_000, 0, &windows, after, eight, 1_000),
            u64::try_from(between).unwrap()
        );
    }

    #[test]
    fn next_slot_skips_to_the_window_start() {
        let tz = "Europe/London";
        let c = clock(tz);
        let w = [window(
            sun(SunEvent::Sunset, -30),
            sun(SunEvent::Sunrise, 30),
        )];
        let every = 10 * 60_000;
        let after = at(tz, "2026-06-21T12:00");
        let next = c.next_slot(every, 0, &w, after).unwrap();
        let start = c.sun_event(date(2026, 6, 21), SunEvent::Sunset).unwrap();
        let start = start
            .checked_sub(jiff::SignedDuration::from_mins(30))
            .unwrap();
        // The first 10-minute mark at or after sunset-30m (~20:51 BST) is 21:00 BST.
        assert!(next >= start);
        assert!(next.duration_since(start).as_millis() < i128::from(every));
        assert_eq!(wall(tz, next), "2026-06-21T21:00:00");
        assert!(c.in_windows(&w, next));
        // Inside the window, the next aligned slot.
        let next = c
            .next_slot(every, 0, &w, at(tz, "2026-06-22T01:01"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-06-22T01:10:00");
        // The last slot before the window closes, then the next evening.
        let prev = c
            .prev_slot(every, 0, &w, at(tz, "2026-06-22T12:00"))
            .unwrap();
        assert!(c.in_windows(&w, prev));
        assert_eq!(wall(tz, prev), "2026-06-22T05:10:00");
        // A clock window closing at 22:30 with a slot grid that has no slot inside.
        let narrow = [window(hm(22, 1), hm(22, 9))];
        let next = c.next_slot(every, 0, &narrow, after);
        assert_eq!(next, None);
        let next = c.next_slot(every, 5 * 60_000, &narrow, after).unwrap();
        assert_eq!(wall(tz, next), "2026-06-21T22:05:00");
    }

    /// A day's slots end before its next midnight even where the grid reaches it: every 5 min
    /// from 00:05 ends at 23:55, and the next slot is 00:05, not midnight. The latest slot at
    /// or before an instant is never after it: a millisecond before a slot gives the one before.
    #[test]
    fn slots_end_before_midnight_and_the_latest_slot_is_never_later() {
        let tz = "Europe/London";
        let c = clock(tz);
        let next = c
            .next_slot(300_000, 300_000, &[], at(tz, "2026-05-04T23:57"))
            .unwrap();
        assert_eq!(wall(tz, next), "2026-05-05T00:05:00");
        let slot = at(tz, "2026-05-04T12:00:10");
        let just_before = slot - jiff::SignedDuration::from_millis(1);
        let latest = c.prev_slot(10_000, 0, &[], just_before).unwrap();
        assert_eq!(wall(tz, latest), "2026-05-04T12:00:00");
        assert_eq!(c.prev_slot(10_000, 0, &[], slot), Some(slot));
    }

    #[test]
    fn slots_between_counts_exactly_and_caps() {
        let tz = "Europe/London";
        let c = clock(tz);
        let a = at(tz, "2026-05-04T12:00");
        let b = at(tz, "2026-05-04T12:01");
        assert_eq!(c.slots_between(10_000, 0, &[], a, b, 100), 5);
        assert_eq!(c.slots_between(10_000, 0, &[], a, b, 3), 3);
        assert_eq!(c.slots_between(10_000, 0, &[], b, a, 100), 0);
        assert_eq!(c.slots_between(10_000, 0, &[], a, a, 100), 0);
        assert_eq!(c.slots_between(0, 0, &[], a, b, 100), 0);
        let day = [window(hm(6, 0), hm(22, 30))];
        let a = at(tz, "2026-05-04T22:00");
        let b = at(tz, "2026-05-05T06:01");
        // 22:01..22:29 and 06:00.
        assert_eq!(c.slots_between(60_000, 0, &day, a, b, 1_000), 30);
        // Overlapping windows count a slot once.
        let both = [window(hm(6, 0), hm(22, 30)), window(hm(22, 0), hm(6, 30))];
        let a = at(tz, "2026-05-04T00:00");
        let b = at(tz, "2026-05-05T00:00");
        assert_eq!(c.slots_between(60_000, 0, &both, a, b, 10_000), 1439);
        // Four weeks of a 10 s schedule: exact, and fast.
        let a = at(tz, "2026-05-04T00:00");
        let b = at(tz, "2026-06-01T00:00");
        assert_eq!(
            c.slots_between(10_000, 0, &[], a, b, u64::MAX),
            28 * 8640 - 1
        );
        // Longer than the scan's give-up limit of 400 days without a window, a window every
        // day: each day's slot counted.
        let evening = [window(hm(22, 0), hm(23, 0))];
        let a = at(tz, "2025-01-01T12:00");
        let b = at(tz, "2026-06-01T12:00");
        assert_eq!(c.slots_between(3_600_000, 0, &evening, a, b, u64::MAX), 516);
        let night = [window(hm(21, 0), hm(6, 0))];
        let a = at(tz, "2026-05-04T12:00");
        let b = at(tz, "2026-06-01T12:00");
        assert_eq!(
            c.slots_between(10_000, 0, &night, a, b, u64::MAX),
            28 * 9 * 360
        );
        assert_eq!(c.slots_between(10_000, 0, &night, a, b, 1_000_000), 90_720);
        assert_eq!(c.slots_between(10_000, 0, &night, a, b, 1_000), 1_000);
        let started = std::time::Instant::now();
        let years = at(tz, "2036-05-04T12:00");
        assert_eq!(
            c.slots_between(10_000, 0, &night, a, years, 1_000_000),
            1_000_000
        );
        let polar = Clock::new("Europe/Oslo", Some(TROMSO)).unwrap();
        let sunny = [window(sun(SunEvent::Sunset, 0), sun(SunEvent::Sunrise, 0))];
        let a = at("Europe/Oslo", "2026-06-01T12:00");
        let b = at("Europe/Oslo", "2026-07-01T12:00");
        assert_eq!(polar.slots_between(10_000, 0, &sunny, a, b, u64::MAX), 0);
        // Capped counting, not a scan of ten years of slots: a hang guard with wide margin
        // for a debug build on a loaded machine (it takes well under a second).
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let c = clock("Pacific/Apia");
        let w = [
            window(
                TimeOfDay::Sun {
                    event: SunEvent::Dusk,
                    offset_ms: i64::MIN,
                },
                TimeOfDay::Sun {
                    event: SunEvent::Dawn,
                    offset_ms: i64::MAX,
                },
            ),
            window(sun(SunEvent::Sunset, -10 * 24 * 60), hm(3, 0)),
        ];
        for t in [Timestamp::MIN, Timestamp::MAX, Timestamp::UNIX_EPOCH] {
            for (every, offset) in [(0, 0), (1, 0), (u64::MAX, u64::MAX), (10_000, 90_000_000)] {
                for ws in [&[][..], &w[..]] {
                    eprintln!("{t} {every} {offset} {}", ws.len());
                    let _ = c.next_slot(every, offset, ws, t);
                    eprintln!("a");
                    let _ = c.prev_slot(every, offset, ws, t);
                    eprintln!("b");
                    let _ = c.slots_between(every, offset, ws, Timestamp::MIN, t, 10);
                    let _ = c.in_windows(ws, t);
                }
            }
        }
        // Samoa skipped 2011-12-30: hourly slots go straight from the 29th to the 31st.
        let next = c
            .next_slot(3_600_000, 0, &[], at("Pacific/Apia", "2011-12-29T23:30"))
            .unwrap();
        assert_eq!(wall("Pacific/Apia", next), "2011-12-31T00:00:00");
        assert_eq!(
            c.next_slot(u64::MAX, 0, &[], ts("2026-01-01T00:00:01Z"))
                .map(|_| ()),
            Some(())
        );
    }

    #[test]
    fn beat_state_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().join("state/beat.json")).unwrap();
        assert_eq!(BeatState::load(&path).unwrap(), BeatState::default());
        let mut state = BeatState::default();
        state
            .last_fired
            .insert("record".into(), ts("2026-06-21T20:50:00Z"));
        state
            .last_fired
            .insert("summary".into(), ts("2026-06-21T20:00:00.250Z"));
        state.save(&path).unwrap();
        assert_eq!(BeatState::load(&path).unwrap(), state);
        state.last_fired.remove("summary");
        state.save(&path).unwrap();
        assert_eq!(BeatState::load(&path).unwrap(), state);
        // No temporary file is left behind.
        let files = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(files, 1);
    }

    #[test]
    fn corrupt_beat_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::try_from(dir.path().join("beat.json")).unwrap();
        std::fs::write(&path, "{\"last_fired\": {\"record\": 12").unwrap();
        let e = BeatState::load(&path).unwrap_err();
        assert!(matches!(e, ScheduleError::CorruptState { .. }));
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("corrupt beat state `{path}`: ")),
            "{text}"
        );
        std::fs::write(&path, "{\"last_fired\": {\"record\": \"yesterday\"}}").unwrap();
        assert!(BeatState::load(&path).is_err());
        let dir_path = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        assert!(matches!(
            BeatState::load(&dir_path),
            Err(ScheduleError::ReadState { .. })
        ));
    }

    /// The brute-force answer: every slot of the days around `after`, filtered.
    fn brute_next(
        c: &Clock,
        every: u64,
        offset: u64,
        windows: &[Window],
        after: Timestamp,
    ) -> Option<Timestamp> {
        let a = ceil_ms(after);
        let mut date = back(c.local_date(a)?, 1);
        for _ in 0..10 {
            let (m, n) = c.day_bounds(date)?;
            let mut s = m + offset as i64;
            while s < n {
                if s >= a && s < a + HORIZON_MS && c.in_windows(windows, from_ms(s)?) {
                    return from_ms(s);
                }
                s += every as i64;
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    const SYDNEY: Location = Location {
        latitude: -33.87,
        longitude: 151.21,
        elevation_m: 40.0,
    };

    /// Timezones with locations, some far from the timezone's longitude.
    const ZONES: [(&str, Location); 7] = [
        ("Europe/London", LONDON),
        ("America/New_York", LONDON),
        ("Australia/Lord_Howe", LONDON),
        ("UTC", SYDNEY),
        ("Australia/Sydney", SYDNEY),
        ("Asia/Kolkata", LONDON),
        ("Europe/Oslo", TROMSO),
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn next_slot_is_aligned_and_in_windows(
            zone in 0usize..ZONES.len(),
            secs in 946_684_800i64..2_208_988_800,
            millis in 0i64..1000,
            every in prop_oneof![1u64..5_000, 5_000u64..4_000_000, 4_000_000u64..200_000_000],
            offset in prop_oneof![Just(0u64), 0u64..100_000_000],
            windows in proptest::collection::vec((any_time_of_day(), any_time_of_day()), 0..3),
        ) {
            let (tz, location) = ZONES[zone];
            let c = Clock::new(tz, Some(location)).unwrap();
            let windows: Vec<Window> = windows.into_iter().map(|(from, to)| Window { from, to }).collect();
            let after = Timestamp::from_millisecond(secs * 1000 + millis).unwrap();
            let Some(next) = c.next_slot(every, offset, &windows, after) else {
                return Ok(());
            };
            prop_assert!(next >= after);
            prop_assert!(next.duration_since(after).as_secs() < HORIZON_MS / 1000);
            prop_assert!(c.in_windows(&windows, next));
            let ms = floor_ms(next);
            let (m, _) = c.day_bounds(c.local_date(ms).unwrap()).unwrap();
            let since = ms - m - offset as i64;
            prop_assert!(since >= 0);
            prop_assert_eq!(since % every as i64, 0);
            // Nothing in between.
            prop_assert_eq!(c.slots_between(every, offset, &windows, after, next, 10), 0);
            if every >= 600_000 {
                prop_assert_eq!(Some(next), brute_next(&c, every, offset, &windows, after));
            }
            prop_assert_eq!(c.prev_slot(every, offset, &windows, next), Some(next));
        }
    }

    /// `cargo test --release --lib runtime::beat::schedule -- --ignored --nocapture bench`
    #[test]
    #[ignore = "benchmark"]
    fn bench_next_slot() {
        let tz = "Europe/London";
        let c = clock(tz);
        let night = [window(
            sun(SunEvent::Sunset, -30),
            sun(SunEvent::Sunrise, 30),
        )];
        let clock_night = [window(hm(21, 0), hm(6, 0))];
        for (name, windows) in [
            ("none", &[][..]),
            ("clock", &clock_night[..]),
            ("sun", &night[..]),
        ] {
            let mut t = at(tz, "2026-06-21T00:00:00");
            let n = 20_000;
            let started = std::time::Instant::now();
            for _ in 0..n {
                let next = c.next_slot(10_000, 0, windows, t).unwrap();
                t = next
                    .checked_add(jiff::SignedDuration::from_millis(1))
                    .unwrap();
                // Also walk through the day so every phase is measured.
                t = t.checked_add(jiff::SignedDuration::from_secs(97)).unwrap();
            }
            let per_call = started.elapsed() / n;
            println!("next_slot with {name} windows: {per_call:?} per call");
        }
        // Worst case: a polar day, all 8 days scanned in vain.
        let polar = Clock::new("Europe/Oslo", Some(TROMSO)).unwrap();
        let t = at("Europe/Oslo", "2026-06-21T12:00");
        let n = 2_000;
        let started = std::time::Instant::now();
        for _ in 0..n {
            assert_eq!(polar.next_slot(10_000, 0, &night, t), None);
        }
        let per_call = started.elapsed() / n;
        println!("next_slot with sun windows in a polar day (none): {per_call:?} per call");
    }
}
