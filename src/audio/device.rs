//! Audio input devices through cpal (ALSA on Linux): listing them, and capturing from one.
//!
//! In: a device matcher (a case-insensitive substring of the device's name, `default`, or an
//! exact cpal device id such as `alsa:null` or `alsa:hw:CARD=r4,DEV=0`) and the [`Format`] to
//! capture. Out: [`DeviceInfo`] for `acoupi devices`, and a [`DeviceSource`] delivering
//! interleaved `i32` samples at exactly the requested rate, channel count and sample format.
//!
//! The audio thread only converts and copies samples into a lock-free single-producer,
//! single-consumer ring (`rtrb`), counting the samples it had to drop when the ring was full;
//! it never allocates, locks or does I/O. [`DeviceSource::read`] runs on the consumer's thread
//! and polls the ring with 1 ms sleeps when it is empty: a condition variable would need the
//! audio thread to take a mutex and make a syscall to wake the reader, and a millisecond of
//! latency is nothing next to the ring's two seconds. Stream errors travel through a second
//! small ring, so a device that goes away makes `read` fail with a message naming it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{ErrorKind, SupportedStreamConfigRange};
use serde::Serialize;

use super::synthetic::{bits, from_unit};
use super::{AudioError, Format, Source, alsa_log, usb};
use crate::spec::SampleFormat;

/// Sample rates `acoupi devices` checks each device against.
pub const COMMON_SAMPLERATES: [u32; 11] = [
    8_000, 16_000, 22_050, 44_100, 48_000, 96_000, 192_000, 250_000, 256_000, 384_000, 500_000,
];

/// The ring holds this much audio; more is dropped and counted as overruns.
const RING_SECONDS: usize = 2;
/// A stream that delivers nothing for this long is reported as stalled.
const STALL: Duration = Duration::from_secs(5);
/// How long `read` sleeps between looks at an empty ring.
const POLL: Duration = Duration::from_millis(1);

/// An inclusive range of sample rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateRange {
    /// Lowest rate, in hertz.
    pub min: u32,
    /// Highest rate, in hertz.
    pub max: u32,
}

/// An audio input device and what it can capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// Position in the listing.
    pub index: usize,
    /// The cpal device id (`alsa:hw:CARD=r4,DEV=0`); accepted as a device matcher.
    pub id: String,
    /// The device's name; a microphone's `device` matches a substring of it.
    pub name: String,
    /// Channel counts the device can capture.
    pub channels: Vec<u16>,
    /// Sample rates the device can capture, merged into ranges.
    pub samplerate_ranges: Vec<RateRange>,
    /// Which of the [`COMMON_SAMPLERATES`] the device can capture.
    pub samplerates: Vec<u32>,
    /// The rate cpal would choose by default, when known.
    pub default_samplerate: Option<u32>,
    /// Native sample formats (`i16`, `i24`, `i32`, `f32`…).
    pub formats: Vec<String>,
    /// Why the device's capabilities could not be read (it may be busy), if they could not.
    pub error: Option<String>,
    /// The USB identity of the device's sound card (`usb:0869:0389:A1B2`), when it is on USB;
    /// accepted as a device matcher that survives re-plugging.
    pub usb: Option<String>,
}

/// Lists the audio input devices and their capabilities.
///
/// Devices whose capabilities cannot be read (busy, say) are listed with an `error`.
pub fn list() -> Result<Vec<DeviceInfo>, AudioError> {
    alsa_log::quiet(list_devices)
}

/// [`list`], with libasound's error output going wherever the caller routed it.
fn list_devices() -> Result<Vec<DeviceInfo>, AudioError> {
    let host = cpal::default_host();
    let devices = input_devices(&host)?;
    let usb_cards = usb::cards(&usb::SoundRoots::default());
    let mut out = Vec::new();
    for device in devices {
        if let Some((mut info, _)) = describe(out.len(), &device) {
            info.usb = usb_card_of(&usb_cards, &info.id).map(|c| c.usb.to_string());
            out.push(info);
        }
    }
    Ok(out)
}

/// The USB card among `cards` that the device with cpal id `id` (`alsa:hw:CARD=Mic,DEV=0`)
/// belongs to.
fn usb_card_of<'a>(cards: &'a [usb::UsbCard], id: &str) -> Option<&'a usb::UsbCard> {
    let card = usb::card_of(id)?;
    cards.iter().find(|c| c.id == card)
}

/// Opens the input device `matcher` designates and starts capturing at exactly `format`.
///
/// `matcher` is `default`, an exact device id (`alsa:null`; the `alsa:` may be left out), or
/// a case-insensitive substring of a device's name. ALSA lists one sound card under several
/// ids sharing a name (`hw:`, `plughw:`, `sysdefault:`, `dsnoop:`…); when a direct hardware
/// (`hw:`) device matches, only those are considered, so a rate the hardware does not support
/// is refused rather than silently resampled by a plugin (name a plugin by its exact id to
/// use it). Otherwise the matching devices are tried in listing order, `plughw:` last. The
/// first device supporting the format is opened. When it cannot deliver the requested sample
/// format but another one, samples are converted (a float stream is scaled to the format's
/// range, integers are shifted). Fails, listing the devices and their rates, when nothing
/// matches ([`AudioError::Missing`]) or no matching device supports the format.
pub fn open(matcher: &str, format: Format) -> Result<DeviceSource, AudioError> {
    alsa_log::quiet(|| open_device(matcher, format))
}

/// [`open`], with libasound's error output going wherever the caller routed it.
fn open_device(matcher: &str, format: Format) -> Result<DeviceSource, AudioError> {
    let host = cpal::default_host();
    let candidates = candidates(&host, matcher)?;
    if candidates.is_empty() {
        let kind = if usb::UsbId::parse(matcher).is_some() {
            "a USB identity `usb:VENDOR:PRODUCT[:SERIAL]`; `acoupi devices` shows each USB card's"
        } else {
            "a substring of the name, `default` or an exact id"
        };
        return Err(AudioError::Missing(format!(
            "no audio input device matches `{matcher}` ({kind})\n{}",
            available()
        )));
    }
    let mut tried = Vec::new();
    let mut gone = 0;
    for device in &candidates {
        let Some((info, configs)) = describe(tried.len(), device) else {
            continue;
        };
        match configs {
            Ok(configs) => {
                if let Some(native) = pick_native(&configs, format) {
                    return start(device, &info, format, native);
                }
            }
            Err(ErrorKind::DeviceNotAvailable) => gone += 1,
            Err(_) => {}
        }
        tried.push(info);
    }
    // ALSA names `default` (and any exact id) whether or not a card is behind it: a device
    // that is named but not there is as missing as one that is not named.
    if gone > 0 && gone == tried.len() {
        let mut msg = format!("no audio input device matching `{matcher}` is present");
        for info in &tried {
            msg.push_str(&format!("\n  {}", summary(info)));
        }
        msg.push('\n');
        msg.push_str(&available());
        return Err(AudioError::Missing(msg));
    }
    let mut msg = format!(
        "no audio input device matching `{matcher}` captures {}",
        describe_format(format)
    );
    for info in &tried {
        msg.push_str(&format!("\n  {}", summary(info)));
    }
    if tried.is_empty() {
        msg.push_str(": the matching devices do not support input");
    }
    msg.push('\n');
    msg.push_str(&available());
    Err(AudioError::Format(msg))
}

/// A running capture stream from an input device.
pub struct DeviceSource {
    // The stream goes first so that it stops before the rings go away.
    _stream: cpal::Stream,
    label: String,
    format: Format,
    native: cpal::SampleFormat,
    samples: rtrb::Consumer<i32>,
    errors: rtrb::Consumer<cpal::Error>,
    dropped: Arc<AtomicU64>,
    xruns: Arc<AtomicU64>,
    failed: Option<String>,
    last_data: Instant,
}

impl std::fmt::Debug for DeviceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSource")
            .field("device", &self.label)
            .field("format", &self.format)
            .field("native", &self.native)
            .finish_non_exhaustive()
    }
}

impl DeviceSource {
    /// The device's name and id, as error messages give them.
    pub fn device(&self) -> &str {
        &self.label
    }

    /// The sample format the device delivers (converted to [`Source::format`]).
    pub fn native_format(&self) -> cpal::SampleFormat {
        self.native
    }

    /// Overruns the driver reported (the audio thread fell behind the hardware; how many
    /// samples were lost is unknown), since the stream opened.
    pub fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }

    /// Takes the stream's pending errors: the first fatal one is kept in `failed`.
    fn drain_errors(&mut self) {
        while let Ok(e) = self.errors.pop() {
            match e.kind() {
                ErrorKind::DeviceNotAvailable
                | ErrorKind::DeviceChanged
                | ErrorKind::StreamInvalidated
                | ErrorKind::HostUnavailable
                | ErrorKind::PermissionDenied => {
                    if self.failed.is_none() {
                        self.failed = Some(format!("device {}: {}", self.label, sentence(&e)));
                    }
                }
                _ => tracing::warn!(device = %self.label, "audio stream: {}", sentence(&e)),
            }
        }
    }
}

impl Source for DeviceSource {
    fn format(&self) -> Format {
        self.format
    }

    fn read(&mut self, buf: &mut [i32]) -> Result<usize, AudioError> {
        let channels = usize::from(self.format.channels);
        let max = buf.len() / channels * channels;
        if max == 0 {
            return Err(AudioError::Format(format!(
                "device {}: a buffer of {} samples holds no whole frame of {channels} channels",
                self.label,
                buf.len()
            )));
        }
        loop {
            self.drain_errors();
            if let Some(msg) = &self.failed {
                return Err(AudioError::Device(msg.clone()));
            }
            // The producer commits whole frames, so this is a whole number of frames.
            let n = (self.samples.slots() / channels * channels).min(max);
            if n > 0 {
                if let Ok(chunk) = self.samples.read_chunk(n) {
                    let (a, b) = chunk.as_slices();
                    buf[..a.len()].copy_from_slice(a);
                    buf[a.len()..a.len() + b.len()].copy_from_slice(b);
                    chunk.commit_all();
                }
                self.last_data = Instant::now();
                return Ok(n);
            }
            if self.last_data.elapsed() > STALL {
                let msg = format!(
                    "device {}: no samples for {} s; the device stalled or went away",
                    self.label,
                    STALL.as_secs()
                );
                self.failed = Some(msg.clone());
                return Err(AudioError::Device(msg));
            }
            std::thread::sleep(POLL);
        }
    }

    fn overruns(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The devices `matcher` designates, best first.
fn candidates(host: &cpal::Host, matcher: &str) -> Result<Vec<cpal::Device>, AudioError> {
    let matcher = matcher.trim();
    if matcher.eq_ignore_ascii_case("default") {
        return Ok(host.default_input_device().into_iter().collect());
    }
    if let Some(usb_id) = usb::UsbId::parse(matcher) {
        let usb_id = usb_id.map_err(|why| {
            AudioError::Format(format!("`{matcher}` is not a USB identity: {why}"))
        })?;
        return usb_candidates(host, &usb_id, &usb::cards(&usb::SoundRoots::default()));
    }
    for id in [matcher.to_owned(), format!("{}:{matcher}", host.id())] {
        if let Ok(id) = id.parse::<cpal::DeviceId>()
            && let Some(device) = host.device_by_id(&id)
        {
            return Ok(vec![device]);
        }
    }
    let needle = matcher.to_lowercase();
    let devices = input_devices(host)?;
    Ok(in_preferred_order(
        devices
            .filter(|d| name(d).to_lowercase().contains(&needle))
            .collect(),
    ))
}

/// The devices of the plugged-in USB sound cards with identity `usb_id`, best first (as
/// [`preferred`] orders them); none when no such card is plugged in.
fn usb_candidates(
    host: &cpal::Host,
    usb_id: &usb::UsbId,
    cards: &[usb::UsbCard],
) -> Result<Vec<cpal::Device>, AudioError> {
    let wanted: Vec<&str> = cards
        .iter()
        .filter(|c| usb_id.matches(&c.usb))
        .map(|c| c.id.as_str())
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let devices = input_devices(host)?;
    Ok(in_preferred_order(
        devices
            .filter(|d| usb::card_of(&alsa_id(d)).is_some_and(|card| wanted.contains(&card)))
            .collect(),
    ))
}

/// A device's ALSA id (`hw:CARD=r4,DEV=0`), empty when cpal cannot tell it.
fn alsa_id(device: &cpal::Device) -> String {
    device.id().map(|i| i.id().to_owned()).unwrap_or_default()
}

/// `found`, reordered and filtered by [`preferred`].
fn in_preferred_order(found: Vec<cpal::Device>) -> Vec<cpal::Device> {
    let ids: Vec<String> = found.iter().map(alsa_id).collect();
    let mut found: Vec<Option<cpal::Device>> = found.into_iter().map(Some).collect();
    preferred(&ids)
        .into_iter()
        .filter_map(|i| found.get_mut(i).and_then(Option::take))
        .collect()
}

/// Which of the devices with these ALSA ids (`hw:CARD=r4,DEV=0`) to try, best first: only the
/// direct hardware ones when there are any (never resample), else all with converting `plug`
/// devices last, in listing order otherwise.
fn preferred(ids: &[String]) -> Vec<usize> {
    let rank = |id: &str| {
        if id.starts_with("hw:") {
            0
        } else if id.starts_with("plughw:") || id.starts_with("plug:") {
            2
        } else {
            1
        }
    };
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|i| rank(&ids[*i])); // stable: listing order within a rank
    if order.first().is_some_and(|i| rank(&ids[*i]) == 0) {
        order.retain(|i| rank(&ids[*i]) == 0);
    }
    order
}

/// The host's input devices.
fn input_devices(host: &cpal::Host) -> Result<cpal::InputDevices<cpal::Devices>, AudioError> {
    host.input_devices().map_err(|e| {
        AudioError::Device(format!(
            "cannot list the {} audio input devices: {}",
            host.id(),
            sentence(&e)
        ))
    })
}

/// A device's name (the first line of its description).
fn name(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_default()
}

/// What `device` can capture, or why that could not be read (also in the info's `error`);
/// `None` when it cannot capture at all.
fn describe(
    index: usize,
    device: &cpal::Device,
) -> Option<(
    DeviceInfo,
    Result<Vec<SupportedStreamConfigRange>, ErrorKind>,
)> {
    let id = device.id().map(|i| i.to_string()).unwrap_or_default();
    let mut info = DeviceInfo {
        index,
        id,
        name: name(device),
        channels: Vec::new(),
        samplerate_ranges: Vec::new(),
        samplerates: Vec::new(),
        default_samplerate: None,
        formats: Vec::new(),
        error: None,
        usb: None,
    };
    let configs: Vec<SupportedStreamConfigRange> = match device.supported_input_configs() {
        Ok(c) => c.collect(),
        Err(e) if e.kind() == ErrorKind::UnsupportedOperation => return None,
        Err(e) => {
            info.error = Some(sentence(&e));
            return Some((info, Err(e.kind())));
        }
    };
    for c in &configs {
        info.channels.push(c.channels());
        info.samplerate_ranges.push(RateRange {
            min: c.min_sample_rate(),
            max: c.max_sample_rate(),
        });
        let f = c.sample_format().to_string();
        if !info.formats.contains(&f) {
            info.formats.push(f);
        }
    }
    info.channels.sort_unstable();
    info.channels.dedup();
    info.samplerate_ranges = merge(info.samplerate_ranges);
    info.samplerates = COMMON_SAMPLERATES
        .into_iter()
        .filter(|r| configs.iter().any(|c| c.contains_rate(*r)))
        .collect();
    // cpal's own choice, computed from the ranges without opening the device again.
    info.default_samplerate = configs
        .iter()
        .max_by(|a, b| a.cmp_default_heuristics(b))
        .map(|c| {
            c.try_with_standard_sample_rate()
                .unwrap_or_else(|| c.with_max_sample_rate())
                .sample_rate()
        });
    Some((info, Ok(configs)))
}

/// Sorted, overlapping or adjacent ranges merged.
fn merge(mut ranges: Vec<RateRange>) -> Vec<RateRange> {
    ranges.sort_by_key(|r| (r.min, r.max));
    let mut out: Vec<RateRange> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.min <= last.max.saturating_add(1) => last.max = last.max.max(r.max),
            _ => out.push(r),
        }
    }
    out
}

/// The device's sample format to capture `format` with: the same one when offered, else the
/// most precise one offered at this rate and channel count.
fn pick_native(
    configs: &[SupportedStreamConfigRange],
    format: Format,
) -> Option<cpal::SampleFormat> {
    use cpal::SampleFormat as S;
    let same = match format.sample_format {
        SampleFormat::I16 => S::I16,
        SampleFormat::I24 => S::I24,
        SampleFormat::I32 => S::I32,
        SampleFormat::F32 => S::F32,
    };
    [
        same,
        S::I32,
        S::I24,
        S::F32,
        S::F64,
        S::I16,
        S::U32,
        S::U16,
        S::I8,
        S::U8,
    ]
    .into_iter()
    .find(|native| {
        configs.iter().any(|c| {
            c.sample_format() == *native
                && c.channels() == format.channels
                && c.contains_rate(format.samplerate)
        })
    })
}

/// Builds and starts the stream.
fn start(
    device: &cpal::Device,
    info: &DeviceInfo,
    format: Format,
    native: cpal::SampleFormat,
) -> Result<DeviceSource, AudioError> {
    let label = format!("`{}` ({})", info.name, info.id);
    let channels = usize::from(format.channels);
    let capacity = (format.samplerate as usize)
        .saturating_mul(channels)
        .saturating_mul(RING_SECONDS)
        .max(16_384);
    let (producer, samples) = rtrb::RingBuffer::<i32>::new(capacity);
    let (error_tx, errors) = rtrb::RingBuffer::<cpal::Error>::new(16);
    let dropped = Arc::new(AtomicU64::new(0));
    let xruns = Arc::new(AtomicU64::new(0));
    let ring = Ring {
        producer,
        channels,
        target: format.sample_format,
        dropped: Arc::clone(&dropped),
    };
    let on_error = error_callback(error_tx, Arc::clone(&xruns));
    let config = cpal::StreamConfig {
        channels: format.channels,
        sample_rate: format.samplerate,
        buffer_size: cpal::BufferSize::Default,
    };
    use cpal::SampleFormat as S;
    let built = match native {
        S::I8 => build::<i8>(device, config, ring, on_error),
        S::U8 => build::<u8>(device, config, ring, on_error),
        S::I16 => build::<i16>(device, config, ring, on_error),
        S::U16 => build::<u16>(device, config, ring, on_error),
        S::I24 => build::<cpal::I24>(device, config, ring, on_error),
        S::I32 => build::<i32>(device, config, ring, on_error),
        S::U32 => build::<u32>(device, config, ring, on_error),
        S::F32 => build::<f32>(device, config, ring, on_error),
        S::F64 => build::<f64>(device, config, ring, on_error),
        other => {
            return Err(AudioError::Format(format!(
                "device {label}: its {other} samples cannot be converted"
            )));
        }
    };
    let stream = built.map_err(|e| {
        AudioError::Device(format!(
            "device {label}: cannot capture {}: {}",
            describe_format(format),
            sentence(&e)
        ))
    })?;
    stream.play().map_err(|e| {
        AudioError::Device(format!("device {label}: cannot start: {}", sentence(&e)))
    })?;
    Ok(DeviceSource {
        _stream: stream,
        label,
        format,
        native,
        samples,
        errors,
        dropped,
        xruns,
        failed: None,
        last_data: Instant::now(),
    })
}

/// The audio thread's end of the sample ring.
struct Ring {
    producer: rtrb::Producer<i32>,
    channels: usize,
    target: SampleFormat,
    dropped: Arc<AtomicU64>,
}

impl Ring {
    /// Converts and copies whole frames into the ring; counts what does not fit. Runs on the
    /// audio thread: no allocation, no lock, no I/O.
    fn push<T: Native>(&mut self, data: &[T]) {
        let frames = data.len() / self.channels;
        let fit = frames.min(self.producer.slots() / self.channels);
        let lost = (data.len() - fit * self.channels) as u64;
        if lost > 0 {
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        let n = fit * self.channels;
        if n > 0
            && let Ok(chunk) = self.producer.write_chunk_uninit(n)
        {
            let target = self.target;
            chunk.fill_from_iter(data[..n].iter().map(|s| s.to_i32(target)));
        }
    }
}

/// The stream's error callback: counts xruns, queues everything else for `read`.
fn error_callback(
    mut tx: rtrb::Producer<cpal::Error>,
    xruns: Arc<AtomicU64>,
) -> impl FnMut(cpal::Error) + Send + 'static {
    move |e: cpal::Error| {
        if e.kind() == ErrorKind::Xrun {
            xruns.fetch_add(1, Ordering::Relaxed);
        } else {
            // A full error ring already holds errors enough to report.
            let _ = tx.push(e);
        }
    }
}

fn build<T: Native>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut ring: Ring,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error> {
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| ring.push(data),
        on_error,
        Some(Duration::from_secs(5)),
    )
}

/// A native sample type and its conversion to the `i32` representation of a format.
trait Native: cpal::SizedSample + Send + 'static {
    fn to_i32(self, target: SampleFormat) -> i32;
}

/// A sample left-justified in an `i32` (full scale is the `i32` range), shifted down to the
/// target's bit depth: exact between equal widths, truncating to narrower ones.
fn justify(full: i32, target: SampleFormat) -> i32 {
    full >> (32 - bits(target))
}

impl Native for i8 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify(i32::from(self) << 24, target)
    }
}

impl Native for u8 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify((i32::from(self) - 128) << 24, target)
    }
}

impl Native for i16 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify(i32::from(self) << 16, target)
    }
}

impl Native for u16 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify((i32::from(self) - 32_768) << 16, target)
    }
}

impl Native for cpal::I24 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        // Drops the container's top byte, which ALSA does not promise to sign-extend.
        justify(self.inner() << 8, target)
    }
}

impl Native for i32 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify(self, target)
    }
}

impl Native for u32 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        justify((self ^ 0x8000_0000) as i32, target)
    }
}

impl Native for f32 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        from_unit(f64::from(self), target)
    }
}

impl Native for f64 {
    fn to_i32(self, target: SampleFormat) -> i32 {
        from_unit(self, target)
    }
}

/// `48000 Hz, 1 channel, i16`.
fn describe_format(format: Format) -> String {
    let s = if format.channels == 1 { "" } else { "s" };
    let sf = match format.sample_format {
        SampleFormat::I16 => "i16",
        SampleFormat::I24 => "i24",
        SampleFormat::I32 => "i32",
        SampleFormat::F32 => "f32",
    };
    format!(
        "{} Hz, {} channel{s}, {sf}",
        format.samplerate, format.channels
    )
}

/// One line describing a device for error messages and the text listing.
fn summary(info: &DeviceInfo) -> String {
    let head = format!("{} `{}`", info.id, info.name);
    match &info.error {
        Some(e) => format!("{head}: {e}"),
        None => format!(
            "{head}: {} channels; {} Hz; {}",
            runs(&info.channels),
            rates(&info.samplerate_ranges),
            info.formats.join(", ")
        ),
    }
}

/// Channel counts as runs: `1-2, 4`.
pub(crate) fn runs(values: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            values[i].to_string()
        } else {
            format!("{}-{}", values[i], values[j])
        });
        i = j + 1;
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// Rate ranges: `8000, 16000-48000`.
pub(crate) fn rates(ranges: &[RateRange]) -> String {
    if ranges.is_empty() {
        return "none".into();
    }
    ranges
        .iter()
        .map(|r| {
            if r.min == r.max {
                r.min.to_string()
            } else {
                format!("{}-{}", r.min, r.max)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The available input devices, for error messages.
fn available() -> String {
    match list_devices() {
        Ok(devices) if devices.is_empty() => "there are no audio input devices".into(),
        Ok(devices) => {
            let mut s = String::from("available input devices:");
            for d in &devices {
                s.push_str(&format!("\n  [{}] {}", d.index, summary(d)));
            }
            s
        }
        Err(e) => e.to_string(),
    }
}

/// A cpal error as a clause: first letter lowercased, no final period.
fn sentence(e: &cpal::Error) -> String {
    let text = e.to_string();
    let text = text.trim().trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()).to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(samplerate: u32, channels: u16, sample_format: SampleFormat) -> Format {
        Format {
            samplerate,
            channels,
            sample_format,
        }
    }

    #[test]
    fn conversions_are_exact_between_equal_widths() {
        assert_eq!(12_345i16.to_i32(SampleFormat::I16), 12_345);
        assert_eq!(i16::MIN.to_i32(SampleFormat::I16), -32_768);
        assert_eq!(1i16.to_i32(SampleFormat::I24), 256);
        assert_eq!(1i16.to_i32(SampleFormat::I32), 65_536);
        assert_eq!(
            cpal::I24::new(-5).map(|s| s.to_i32(SampleFormat::I24)),
            Some(-5)
        );
        assert_eq!(
            cpal::I24::new(-5).map(|s| s.to_i32(SampleFormat::F32)),
            Some(-5)
        );
        let unextended = cpal::I24::new_unchecked(0x00FF_FFFF);
        assert_eq!(unextended.to_i32(SampleFormat::I24), -1);
        assert_eq!(i32::MIN.to_i32(SampleFormat::I32), i32::MIN);
        assert_eq!(0x0001_0000i32.to_i32(SampleFormat::I16), 1);
        assert_eq!(0x0000_0100i32.to_i32(SampleFormat::I24), 1);
        assert_eq!(0u8.to_i32(SampleFormat::I16), -32_768);
        assert_eq!(128u8.to_i32(SampleFormat::I16), 0);
        assert_eq!(32_768u16.to_i32(SampleFormat::I16), 0);
        assert_eq!(0x8000_0001u32.to_i32(SampleFormat::I32), 1);
        assert_eq!((-1i8).to_i32(SampleFormat::I16), -256);
    }

    #[test]
    fn float_conversion_scales_and_clamps() {
        assert_eq!(0.5f32.to_i32(SampleFormat::I16), 16_384);
        assert_eq!(1.0f32.to_i32(SampleFormat::I16), 32_767);
        assert_eq!((-1.0f32).to_i32(SampleFormat::I16), -32_768);
        assert_eq!(2.0f32.to_i32(SampleFormat::F32), (1 << 23) - 1);
        assert_eq!((-0.5f64).to_i32(SampleFormat::I24), -(1 << 22));
        assert_eq!(1.0f32.to_i32(SampleFormat::I32), i32::MAX);
        assert_eq!(f32::NAN.to_i32(SampleFormat::I32), 0);
    }

    #[test]
    fn hardware_devices_are_preferred_and_exclusive() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let card = ids(&[
            "sysdefault:CARD=r4",
            "plughw:CARD=r4,DEV=0",
            "hw:CARD=r4,DEV=0",
            "dsnoop:CARD=r4,DEV=0",
            "hw:CARD=1,DEV=0",
        ]);
        assert_eq!(preferred(&card), [2, 4]);
        let plugins = ids(&["plughw:CARD=r4,DEV=0", "fixture", "dsnoop:CARD=r4,DEV=0"]);
        assert_eq!(preferred(&plugins), [1, 2, 0]);
        assert!(preferred(&[]).is_empty());
    }

    #[test]
    fn rate_ranges_merge_and_print() {
        let r = |min, max| RateRange { min, max };
        let merged = merge(vec![r(48_000, 48_000), r(8_000, 8_000), r(16_000, 48_000)]);
        assert_eq!(merged, [r(8_000, 8_000), r(16_000, 48_000)]);
        assert_eq!(rates(&merged), "8000, 16000-48000");
        assert_eq!(runs(&[1, 2, 3, 6, 8, 9]), "1-3, 6, 8-9");
        assert_eq!(runs(&[]), "none");
    }

    #[test]
    fn picks_the_same_format_then_the_most_precise() {
        let range = |channels, min, max, f| {
            SupportedStreamConfigRange::new(
                channels,
                min,
                max,
                cpal::SupportedBufferSize::Unknown,
                f,
            )
        };
        use cpal::SampleFormat as S;
        let configs = [
            range(1, 250_000, 250_000, S::I16),
            range(1, 8_000, 48_000, S::F32),
            range(2, 8_000, 48_000, S::I32),
        ];
        let pick = |rate, ch, sf| pick_native(&configs, fmt(rate, ch, sf));
        assert_eq!(pick(250_000, 1, SampleFormat::I16), Some(S::I16));
        assert_eq!(pick(250_000, 1, SampleFormat::I24), Some(S::I16));
        assert_eq!(pick(48_000, 1, SampleFormat::I16), Some(S::F32));
        assert_eq!(pick(48_000, 2, SampleFormat::F32), Some(S::I32));
        assert_eq!(pick(96_000, 1, SampleFormat::I16), None);
        assert_eq!(pick(250_000, 2, SampleFormat::I16), None);
    }

    // The ALSA `null` PCM is defined by alsa-lib's own configuration, so these run without a
    // sound card and without touching HOME; the fixture PCM tests live in
    // tests/audio_device.rs.

    #[test]
    fn null_device_is_listed() {
        let devices = list().unwrap_or_default();
        let null = devices.iter().find(|d| d.id == "alsa:null");
        let Some(null) = null else {
            panic!("alsa:null not listed: {devices:#?}");
        };
        assert!(null.channels.contains(&1) && null.channels.contains(&2));
        assert!(null.samplerates.contains(&384_000));
        assert!(null.formats.iter().any(|f| f == "i16"));
        assert!(null.error.is_none());
    }

    #[test]
    fn null_device_captures_silence_through_cpal() {
        for sf in [
            SampleFormat::I16,
            SampleFormat::I24,
            SampleFormat::I32,
            SampleFormat::F32,
        ] {
            let mut src = open("alsa:null", fmt(384_000, 2, sf)).expect("open alsa:null");
            assert_eq!(src.format(), fmt(384_000, 2, sf));
            let mut got = 0;
            let mut buf = vec![1; 4097]; // odd: never splits a frame
            while got < 384_000 * 2 {
                let n = src.read(&mut buf).expect("read");
                assert!(n > 0 && n.is_multiple_of(2));
                assert!(buf[..n].iter().all(|s| *s == 0));
                got += n;
            }
        }
    }

    #[test]
    fn a_full_ring_counts_whole_frames_as_overruns() {
        // `null` is not paced: it fills the two-second ring at once, then overruns.
        let mut src = open("null", fmt(8_000, 3, SampleFormat::I16)).expect("open null");
        let mut buf = vec![0; 300];
        assert!(src.read(&mut buf).is_ok());
        // Wait for the capture thread to fill the ring and overrun, however loaded the
        // machine is.
        let start = std::time::Instant::now();
        while src.overruns() == 0 {
            assert!(start.elapsed() < Duration::from_secs(30), "no overruns");
            std::thread::sleep(Duration::from_millis(10));
        }
        let lost = src.overruns();
        assert_eq!(lost % 3, 0, "whole frames are dropped");
    }

    #[test]
    fn no_match_lists_the_devices() {
        let err = open("no such microphone 123", fmt(48_000, 1, SampleFormat::I16)).err();
        assert!(matches!(err, Some(AudioError::Missing(_))), "{err:?}");
        let err = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.contains("no audio input device matches `no such microphone 123`"),
            "{err}"
        );
        assert!(err.contains("available input devices:"), "{err}");
        assert!(err.contains("alsa:null"), "{err}");
    }

    #[test]
    fn unsupported_format_lists_what_the_device_supports() {
        let err = open("alsa:null", fmt(48_000, 100, SampleFormat::I16))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(
                "no audio input device matching `alsa:null` captures 48000 Hz, 100 channels, i16"
            ),
            "{err}"
        );
        assert!(err.contains("1-64 channels"), "{err}");
    }
}
