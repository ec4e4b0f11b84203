//! Facts about the machine the sensor runs on: who it is, read once per process, and how it
//! is doing ([`metrics`]), read at every heartbeat.
//!
//! In: `/proc`, `/sys` and `/etc`. Out: a [`Host`] with the host name and a stable device id,
//! used in GUANO serials, heartbeats and message client ids; CPU use, memory, uptime,
//! temperature and free disk space.

pub mod memory;
pub mod metrics;

/// The machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host name (`localhost` when unreadable).
    pub hostname: String,
    /// A stable id of this device: as acoupi does on a Raspberry Pi, characters 10 to 26 of the
    /// CPU serial in `/proc/cpuinfo`; elsewhere the systemd machine id (acoupi uses the MAC
    /// address, which changes with the network adapter); the host name as a last resort.
    pub device_id: String,
}

impl Host {
    /// Reads the facts of this machine.
    pub fn detect() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let device_id = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| pi_serial(&c))
            .or_else(|| {
                std::fs::read_to_string("/etc/machine-id")
                    .ok()
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
            })
            .unwrap_or_else(|| hostname.clone());
        Host {
            hostname,
            device_id,
        }
    }
}

/// The device id acoupi derives from a Raspberry Pi's `/proc/cpuinfo`: characters 10 to 26 of
/// the `Serial : …` line (the serial without its leading zeros' field width).
fn pi_serial(cpuinfo: &str) -> Option<String> {
    let line = cpuinfo.lines().find(|l| l.starts_with("Serial"))?;
    let id = line.get(10..26)?;
    (!id.trim_matches('0').is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pi_serial_is_cut_as_acoupi_cuts_it() {
        let cpuinfo = "processor\t: 0\nHardware\t: BCM2835\nSerial\t\t: 10000000abcdef12\nModel\t\t: Raspberry Pi 4\n";
        assert_eq!(pi_serial(cpuinfo).as_deref(), Some("10000000abcdef12"));
        assert_eq!(pi_serial("processor\t: 0\n"), None, "not a Pi");
        assert_eq!(
            pi_serial("Serial\t\t: 0000000000000000\n"),
            None,
            "an all-zero serial is no id"
        );
    }

    #[test]
    fn a_raspberry_pi_4s_cpuinfo_gives_its_serial() {
        // `/proc/cpuinfo` of a Raspberry Pi 4 Model B on 64-bit Raspberry Pi OS (cores 1-3
        // left out): no `Hardware` line, the serial after the last core.
        let cpuinfo = "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n\
CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n\
CPU revision\t: 3\n\nRevision\t: c03114\nSerial\t\t: 10000000e3b5c1a7\n\
Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        assert_eq!(pi_serial(cpuinfo).as_deref(), Some("10000000e3b5c1a7"));
    }

    #[test]
    fn this_machine_has_an_id_and_a_name() {
        let host = Host::detect();
        assert!(!host.hostname.is_empty());
        assert!(!host.device_id.is_empty());
    }
}
