//! USB identities of sound cards: a microphone named by what it is, not by where it is plugged.
//!
//! In: a `usb:VVVV:PPPP[:SERIAL]` device matcher (vendor and product ids in hex, as `lsusb`
//! prints them, and optionally the serial number), and the kernel's view of the sound cards
//! (`/proc/asound/cardN/{id,usbid}` and the USB device's `serial` under
//! `/sys/class/sound/cardN/device/..`). Out: the ALSA card ids (`CARD=…`) of the plugged-in
//! cards with that identity, which the device opener turns into `hw:CARD=…` devices.
//!
//! A USB microphone that drops out and comes back may come back as another card number, or
//! beside a second microphone of the same model with the same name; its vendor, product and
//! serial stay the same.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the kernel describes the sound cards.
#[derive(Debug, Clone)]
pub struct SoundRoots {
    /// `/proc/asound`: `cardN/id` and, for USB cards, `cardN/usbid`.
    pub proc_asound: PathBuf,
    /// `/sys/class/sound`: `cardN/device` links to the card's USB interface.
    pub sys_sound: PathBuf,
}

impl Default for SoundRoots {
    fn default() -> Self {
        SoundRoots {
            proc_asound: PathBuf::from("/proc/asound"),
            sys_sound: PathBuf::from("/sys/class/sound"),
        }
    }
}

/// A USB device's identity, as a microphone's `device "usb:…"` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbId {
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
    /// Serial number, when the matcher (or the device) has one.
    pub serial: Option<String>,
}

impl UsbId {
    /// Parses a `usb:VVVV:PPPP[:SERIAL]` matcher. `None` when `text` is not a USB matcher at
    /// all (no `usb:` prefix); `Some(Err(why))` when it is one but malformed.
    pub fn parse(text: &str) -> Option<Result<UsbId, String>> {
        let rest = text.trim().strip_prefix("usb:")?;
        let mut parts = rest.splitn(3, ':');
        let hex = |part: Option<&str>, what: &str| -> Result<u16, String> {
            let part = part.unwrap_or("");
            if part.len() != 4 {
                return Err(format!(
                    "the {what} id must be 4 hex digits, as `lsusb` prints it (`usb:0d8c:0014`)"
                ));
            }
            u16::from_str_radix(part, 16)
                .map_err(|_| format!("the {what} id `{part}` is not hexadecimal (`usb:0d8c:0014`)"))
        };
        let parsed = (|| {
            let vendor = hex(parts.next(), "vendor")?;
            let product = hex(parts.next(), "product")?;
            let serial = match parts.next() {
                None => None,
                Some("") => return Err("the serial number after the last `:` is empty".into()),
                Some(s) => Some(s.to_owned()),
            };
            Ok(UsbId {
                vendor,
                product,
                serial,
            })
        })();
        Some(parsed)
    }

    /// Whether a card with identity `card` is this device: same vendor and product, and the
    /// same serial when this one names a serial.
    pub fn matches(&self, card: &UsbId) -> bool {
        self.vendor == card.vendor
            && self.product == card.product
            && match &self.serial {
                None => true,
                Some(want) => card.serial.as_deref() == Some(want.as_str()),
            }
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usb:{:04x}:{:04x}", self.vendor, self.product)?;
        if let Some(serial) = &self.serial {
            write!(f, ":{serial}")?;
        }
        Ok(())
    }
}

/// A sound card on the USB bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbCard {
    /// The card's number (`cardN`), which changes as devices come and go.
    pub number: u32,
    /// The card's ALSA id (`hw:CARD=<id>`).
    pub id: String,
    /// Its USB identity.
    pub usb: UsbId,
}

/// The USB sound cards plugged in now, by card number. Cards that are not on USB, and
/// entries that cannot be read (a card going away while it is read), are left out.
pub fn cards(roots: &SoundRoots) -> Vec<UsbCard> {
    let Ok(entries) = std::fs::read_dir(&roots.proc_asound) else {
        return Vec::new();
    };
    let mut found: Vec<UsbCard> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let number: u32 = name.to_str()?.strip_prefix("card")?.parse().ok()?;
            let dir = entry.path();
            let id = read_trimmed(&dir.join("id"))?;
            let (vendor, product) = parse_usbid(&read_trimmed(&dir.join("usbid"))?)?;
            let serial = read_trimmed(
                &roots
                    .sys_sound
                    .join(format!("card{number}"))
                    .join("device/../serial"),
            )
            .filter(|s| !s.is_empty());
            Some(UsbCard {
                number,
                id,
                usb: UsbId {
                    vendor,
                    product,
                    serial,
                },
            })
        })
        .collect();
    found.sort_by_key(|c| c.number);
    found
}

/// The ALSA card id an ALSA device id names (`hw:CARD=Mic,DEV=0` -> `Mic`), if any.
pub fn card_of(alsa_id: &str) -> Option<&str> {
    let (_, after) = alsa_id.split_once("CARD=")?;
    Some(after.split(',').next().unwrap_or(after))
}

/// `0d8c:0014` -> (0x0d8c, 0x0014).
fn parse_usbid(text: &str) -> Option<(u16, u16)> {
    let (v, p) = text.split_once(':')?;
    Some((
        u16::from_str_radix(v, 16).ok()?,
        u16::from_str_radix(p, 16).ok()?,
    ))
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel view with card 0 on-board (no usbid) and USB cards 1 and 3.
    fn fake_roots(dir: &Path) -> SoundRoots {
        let proc_asound = dir.join("proc/asound");
        let sys_sound = dir.join("sys/class/sound");
        let card = |n: u32, id: &str, usbid: Option<&str>, serial: Option<&str>| {
            let d = proc_asound.join(format!("card{n}"));
            std::fs::create_dir_all(&d).expect("temp dir is writable");
            std::fs::write(d.join("id"), format!("{id}\n")).expect("write id");
            if let Some(u) = usbid {
                std::fs::write(d.join("usbid"), format!("{u}\n")).expect("write usbid");
            }
            // sys/class/sound/cardN/device is the USB interface; its parent holds `serial`.
            let iface = dir.join(format!("sys/devices/usb1/1-{n}/1-{n}:1.0"));
            std::fs::create_dir_all(&iface).expect("temp dir is writable");
            if let Some(s) = serial {
                std::fs::write(iface.join("../serial"), format!("{s}\n")).expect("write serial");
            }
            let link = sys_sound.join(format!("card{n}"));
            std::fs::create_dir_all(&link).expect("temp dir is writable");
            std::os::unix::fs::symlink(&iface, link.join("device")).expect("symlink");
        };
        card(0, "PCH", None, None);
        card(1, "UltraMic", Some("0869:0389"), Some("A1B2"));
        card(3, "Device", Some("0d8c:0014"), None);
        std::fs::create_dir_all(&proc_asound).expect("temp dir is writable");
        std::fs::write(proc_asound.join("cards"), "not a card\n").expect("write cards");
        SoundRoots {
            proc_asound,
            sys_sound,
        }
    }

    #[test]
    fn parses_usb_matchers() {
        assert_eq!(UsbId::parse("UltraMic"), None);
        assert_eq!(
            UsbId::parse("usb:0869:0389"),
            Some(Ok(UsbId {
                vendor: 0x0869,
                product: 0x0389,
                serial: None
            }))
        );
        assert_eq!(
            UsbId::parse("usb:0869:0389:A1:B2").and_then(Result::ok),
            Some(UsbId {
                vendor: 0x0869,
                product: 0x0389,
                serial: Some("A1:B2".into())
            })
        );
        for bad in [
            "usb:",
            "usb:869:0389",
            "usb:zzzz:0389",
            "usb:0869",
            "usb:0869:0389:",
        ] {
            assert!(
                matches!(UsbId::parse(bad), Some(Err(_))),
                "{bad} should be refused"
            );
        }
        let id = UsbId::parse("usb:0D8C:0014:x").and_then(Result::ok);
        assert_eq!(
            id.map(|i| i.to_string()).as_deref(),
            Some("usb:0d8c:0014:x")
        );
    }

    #[test]
    fn finds_usb_cards_with_their_serials() {
        let dir = tempfile::tempdir().expect("temp dir");
        let roots = fake_roots(dir.path());
        let found = cards(&roots);
        assert_eq!(
            found,
            vec![
                UsbCard {
                    number: 1,
                    id: "UltraMic".into(),
                    usb: UsbId {
                        vendor: 0x0869,
                        product: 0x0389,
                        serial: Some("A1B2".into())
                    }
                },
                UsbCard {
                    number: 3,
                    id: "Device".into(),
                    usb: UsbId {
                        vendor: 0x0d8c,
                        product: 0x0014,
                        serial: None
                    }
                },
            ]
        );
        let missing = SoundRoots {
            proc_asound: dir.path().join("nowhere"),
            sys_sound: dir.path().join("nowhere"),
        };
        assert!(cards(&missing).is_empty());
    }

    #[test]
    fn matches_by_vendor_product_and_serial() {
        let card = UsbId {
            vendor: 0x0869,
            product: 0x0389,
            serial: Some("A1B2".into()),
        };
        let want = |s: &str| UsbId::parse(s).and_then(Result::ok).expect("valid matcher");
        assert!(want("usb:0869:0389").matches(&card));
        assert!(want("usb:0869:0389:A1B2").matches(&card));
        assert!(!want("usb:0869:0389:OTHER").matches(&card));
        assert!(!want("usb:0869:0390").matches(&card));
        let no_serial = UsbId {
            serial: None,
            ..card
        };
        assert!(!want("usb:0869:0389:A1B2").matches(&no_serial));
    }

    #[test]
    fn reads_the_card_of_an_alsa_id() {
        assert_eq!(card_of("hw:CARD=UltraMic,DEV=0"), Some("UltraMic"));
        assert_eq!(card_of("sysdefault:CARD=UltraMic"), Some("UltraMic"));
        assert_eq!(card_of("default"), None);
    }
}
