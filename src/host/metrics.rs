//! This machine's figures for heartbeats: CPU use, available memory, uptime, temperature and
//! free disk space.
//!
//! In: `/proc/stat`, `/proc/meminfo`, `/proc/uptime`, `/sys/class/thermal` and the file system
//! of a path. Out: each figure as an `Option`: a file that is missing, unreadable or in a shape
//! this code does not know gives `None`, never a panic or an error, so a heartbeat reports what
//! it can. Every parser is a pure function of the file's text, tested on real samples.
//!
//! Units: CPU use in percent of all cores (0 to 100), memory and disk space in bytes, uptime in
//! seconds, temperature in degrees Celsius.

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

/// Where the kernel lists thermal zones.
const THERMAL: &str = "/sys/class/thermal";

/// A temperature outside this range (°C) is a sensor reporting "no reading", not a figure.
const PLAUSIBLE_CELSIUS: std::ops::RangeInclusive<f64> = -100.0..=200.0;

/// The CPU time counters of the `cpu` line of `/proc/stat` (all cores), in clock ticks since
/// boot. Two samples give the CPU use between them ([`CpuTimes::usage_since`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// Ticks spent doing anything but idling or waiting for I/O.
    pub busy: u64,
    /// All ticks.
    pub total: u64,
}

impl CpuTimes {
    /// The share of CPU time spent busy between `earlier` and `self`, in percent; `None` when
    /// no time passed between them or the counters went back (a reboot in between).
    pub fn usage_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        if total == 0 || busy > total {
            return None;
        }
        Some(busy as f64 * 100.0 / total as f64)
    }
}

/// The `cpu` line of `/proc/stat` (`cpu user nice system idle iowait irq softirq steal guest
/// guest_nice`). Idle is `idle + iowait`; `guest` and `guest_nice` are already counted in
/// `user` and `nice`, so they are left out of the total. Older kernels write fewer columns;
/// at least the first four are needed.
pub fn parse_cpu_times(stat: &str) -> Option<CpuTimes> {
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    let total = fields.iter().try_fold(0u64, |sum, v| sum.checked_add(*v))?;
    Some(CpuTimes {
        busy: total - idle,
        total,
    })
}

/// This machine's CPU counters now.
pub fn cpu_times() -> Option<CpuTimes> {
    parse_cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// `MemAvailable` of `/proc/meminfo` in bytes: what can be allocated without swapping (what
/// acoupi reports as `free_memory`, psutil's `available`).
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// This machine's available memory in bytes.
pub fn available_memory() -> Option<u64> {
    parse_mem_available(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// The first field of `/proc/uptime`: seconds since boot.
pub fn parse_uptime(text: &str) -> Option<f64> {
    let seconds: f64 = text.split_whitespace().next()?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then_some(seconds)
}

/// Seconds since this machine booted.
pub fn uptime() -> Option<f64> {
    parse_uptime(&std::fs::read_to_string("/proc/uptime").ok()?)
}

/// A thermal zone's `temp` (millidegrees Celsius) in degrees, when plausible.
pub fn parse_millidegrees(text: &str) -> Option<f64> {
    let milli: i64 = text.trim().parse().ok()?;
    let celsius = milli as f64 / 1000.0;
    PLAUSIBLE_CELSIUS.contains(&celsius).then_some(celsius)
}

/// One thermal zone as read from sysfs: its `type` and its `temp` text (`None` when
/// unreadable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThermalZone {
    /// What it measures: `cpu-thermal` on a Raspberry Pi, `x86_pkg_temp`, `acpitz`, ….
    pub kind: String,
    /// The `temp` file's text.
    pub temp: Option<String>,
}

/// The temperature to report from `zones` (in zone number order): the first readable zone
/// whose type names the CPU or the SoC (`cpu-thermal`, `soc_thermal`), else the first readable
/// zone.
pub fn pick_temperature(zones: &[ThermalZone]) -> Option<f64> {
    let read = |z: &ThermalZone| z.temp.as_deref().and_then(parse_millidegrees);
    let is_cpu = |z: &ThermalZone| {
        let kind = z.kind.to_ascii_lowercase();
        kind.contains("cpu") || kind.contains("soc")
    };
    zones
        .iter()
        .filter(|z| is_cpu(z))
        .find_map(read)
        .or_else(|| zones.iter().find_map(read))
}

/// The thermal zones under `dir` (a sysfs `class/thermal` directory), in zone number order.
pub fn thermal_zones(dir: &Utf8Path) -> Vec<ThermalZone> {
    let Ok(entries) = dir.read_dir_utf8() else {
        return Vec::new();
    };
    let mut numbered: Vec<(u32, camino::Utf8PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().strip_prefix("thermal_zone")?.parse().ok()?;
            Some((n, e.into_path()))
        })
        .collect();
    numbered.sort();
    numbered
        .into_iter()
        .map(|(_, zone)| ThermalZone {
            kind: std::fs::read_to_string(zone.join("type"))
                .map(|t| t.trim().to_owned())
                .unwrap_or_default(),
            temp: std::fs::read_to_string(zone.join("temp")).ok(),
        })
        .collect()
}

/// This machine's CPU (or SoC) temperature in degrees Celsius, when it has a readable sensor.
pub fn temperature() -> Option<f64> {
    pick_temperature(&thermal_zones(Utf8Path::new(THERMAL)))
}

/// Bytes available to unprivileged users on the file system holding `path` (or its nearest
/// existing ancestor).
pub fn free_bytes(path: &Utf8Path) -> Option<u64> {
    crate::files::space::fs_stats(path).ok().map(|s| s.free)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/stat` of a Raspberry Pi 4 (four cores, kernel 6.6), shortened after `ctxt`.
    const PI_STAT: &str = "cpu  120443 0 41092 3359912 8715 0 2231 0 0 0
cpu0 30561 0 10846 838432 2269 0 1544 0 0 0
cpu1 29974 0 10034 840925 2133 0 260 0 0 0
cpu2 30043 0 10031 840560 2184 0 215 0 0 0
cpu3 29865 0 10181 839995 2129 0 212 0 0 0
intr 40467152 0 0 0 0 0 0 0 0 0
ctxt 69837315
btime 1717254003
processes 21930
procs_running 1
procs_blocked 0
";

    /// The same Pi ten seconds later, one core busy throughout.
    const PI_STAT_LATER: &str = "cpu  121243 0 41292 3362912 8715 0 2231 0 0 0
cpu0 31561 0 11046 838432 2269 0 1544 0 0 0
";

    /// `/proc/meminfo` of a Raspberry Pi 4 with 4 GB, first lines.
    const PI_MEMINFO: &str = "MemTotal:        3880404 kB
MemFree:         2779864 kB
MemAvailable:    3302572 kB
Buffers:           60968 kB
Cached:           599308 kB
SwapCached:            0 kB
";

    #[test]
    fn cpu_use_is_the_busy_share_between_two_samples() {
        let a = parse_cpu_times(PI_STAT).expect("the cpu line");
        assert_eq!(
            a,
            CpuTimes {
                busy: 120443 + 41092 + 2231,
                total: 120443 + 41092 + 3359912 + 8715 + 2231,
            }
        );
        let b = parse_cpu_times(PI_STAT_LATER).expect("the cpu line");
        // 1000 busy ticks out of 4000: one core of four.
        assert_eq!(b.usage_since(&a), Some(25.0));
        assert_eq!(a.usage_since(&a), None, "no time passed");
        assert_eq!(a.usage_since(&b), None, "counters went back: a reboot");
        // A kernel writing only the first four columns; guest time not counted twice.
        assert_eq!(
            parse_cpu_times("cpu 10 0 10 80\n"),
            Some(CpuTimes {
                busy: 20,
                total: 100
            })
        );
        assert_eq!(
            parse_cpu_times("cpu 10 0 10 80 0 0 0 0 7 3\n").map(|c| c.total),
            Some(100)
        );
        for bad in ["", "cpu0 1 2 3 4\n", "cpu 1 2 x 4\n", "cpu 1 2 3\n"] {
            assert_eq!(parse_cpu_times(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn available_memory_is_read_in_bytes() {
        assert_eq!(parse_mem_available(PI_MEMINFO), Some(3_302_572 * 1024));
        assert_eq!(
            parse_mem_available("MemTotal: 10 kB\nMemFree: 5 kB\n"),
            None
        );
        assert_eq!(parse_mem_available("MemAvailable: many kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: 12 MB\n"), None);
    }

    #[test]
    fn uptime_is_the_first_field() {
        assert_eq!(parse_uptime("86523.41 341208.92\n"), Some(86523.41));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("-1 2\n"), None);
        assert_eq!(parse_uptime("NaN 2\n"), None);
    }

    fn zone(kind: &str, temp: Option<&str>) -> ThermalZone {
        ThermalZone {
            kind: kind.into(),
            temp: temp.map(str::to_owned),
        }
    }

    #[test]
    fn the_cpu_zone_is_preferred_then_the_first_readable() {
        // A Raspberry Pi 4 or 5: one zone.
        assert_eq!(
            pick_temperature(&[zone("cpu-thermal", Some("47712\n"))]),
            Some(47.712)
        );
        // A Rockchip board: the SoC zone, though listed second.
        assert_eq!(
            pick_temperature(&[
                zone("gpu-thermal", Some("41000\n")),
                zone("soc-thermal", Some("43500\n")),
            ]),
            Some(43.5)
        );
        // A PC: no CPU zone by that name, so the first.
        assert_eq!(
            pick_temperature(&[
                zone("acpitz", Some("27800\n")),
                zone("x86_pkg_temp", Some("45000\n")),
            ]),
            Some(27.8)
        );
        // An unreadable or implausible CPU zone gives way to a readable one.
        assert_eq!(
            pick_temperature(&[
                zone("cpu-thermal", None),
                zone("cpu_thermal", Some("-274000\n")),
                zone("acpitz", Some("30000\n")),
            ]),
            Some(30.0)
        );
        assert_eq!(pick_temperature(&[]), None);
        assert_eq!(pick_temperature(&[zone("cpu-thermal", Some("hot"))]), None);
    }

    #[test]
    fn thermal_zones_are_read_in_number_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = Utf8Path::from_path(dir.path()).expect("utf-8");
        for (n, kind, temp) in [
            (10, "acpitz", Some("20000\n")),
            (2, "cpu-thermal", None),
            (0, "iwlwifi_1", Some("38000\n")),
        ] {
            let z = root.join(format!("thermal_zone{n}"));
            std::fs::create_dir(&z).expect("mkdir");
            std::fs::write(z.join("type"), format!("{kind}\n")).expect("type");
            if let Some(t) = temp {
                std::fs::write(z.join("temp"), t).expect("temp");
            }
        }
        std::fs::create_dir(root.join("cooling_device0")).expect("mkdir");
        let zones = thermal_zones(root);
        let kinds: Vec<&str> = zones.iter().map(|z| z.kind.as_str()).collect();
        assert_eq!(kinds, ["iwlwifi_1", "cpu-thermal", "acpitz"]);
        assert_eq!(zones[1].temp, None);
        assert_eq!(pick_temperature(&zones), Some(38.0));
        assert!(thermal_zones(&root.join("missing")).is_empty());
    }

    #[test]
    fn this_machine_reports_what_linux_always_has() {
        let a = cpu_times().expect("/proc/stat");
        assert!(a.total > 0 && a.busy <= a.total);
        assert!(available_memory().expect("/proc/meminfo") > 0);
        assert!(uptime().expect("/proc/uptime") > 0.0);
        assert!(free_bytes(Utf8Path::new("/")).is_some());
        // No thermal zones in a container or VM: absent, not an error.
        if let Some(t) = temperature() {
            assert!(PLAUSIBLE_CELSIUS.contains(&t), "{t}");
        }
    }
}
