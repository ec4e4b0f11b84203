//! WAV input as it is found in the field: our own RIFF/WAVE chunk walker, lenient where
//! recorders are sloppy and exact about what it cannot decode.
//!
//! In: a path. Out: the file's [`WavInfo`] ([`probe`]), or a [`WavReader`] that streams its
//! frames as `f32` normalised to [-1, 1] in bounded blocks (interleaved, or mixed down to
//! mono), or a [`WavError`] naming the file and the cause.
//!
//! Accepted: `WAVE_FORMAT_PCM` (1) with 8-bit unsigned or 16/24/32-bit signed samples,
//! `WAVE_FORMAT_IEEE_FLOAT` (3) with 32-bit samples, and `WAVE_FORMAT_EXTENSIBLE` (0xFFFE)
//! with a PCM or float sub-format; any channel count, any non-zero integer sample rate.
//!
//! Leniency, chosen for files from the field:
//! - chunks other than `fmt ` and `data` (`LIST`, `guan`, `id3 `, `wamd`, `bext`, `JUNK`…)
//!   are skipped wherever they are, before or after `data`; walking stops once both are found;
//! - an odd-sized chunk is followed by a pad byte; when a writer forgot it (the padded position
//!   holds no plausible chunk id but the unpadded one does) the unpadded position is used;
//! - a `data` size of `0xFFFFFFFF`, or of 0 while the RIFF size was never filled in (0,
//!   `0xFFFFFFFF`, or too small to reach the `data` chunk) and bytes follow, is a recorder
//!   killed mid-write: the data runs to the end of the file;
//! - a trailing partial frame (a `data` size that is not a whole number of frames) is ignored;
//! - the header's byte rate is not checked (it is redundant and often wrong);
//! - float samples outside [-1, 1] are clamped, NaN reads as 0.
//!
//! Refused: not RIFF/WAVE (RF64 and big-endian RIFX included), no `fmt ` or `data` chunk,
//! other encodings (A-law, µ-law, ADPCM, 64-bit float…), zero channels or rate, a block align
//! that is not channels × bytes per sample, and a `data` chunk declaring more bytes than the
//! file holds (truncated; the error says how many bytes are missing).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use camino::{Utf8Path, Utf8PathBuf};

/// Bytes read from the file per block: bounds the reader's memory whatever the file's length.
const BLOCK_BYTES: usize = 64 * 1024;

/// The last 14 bytes of the `KSDATAFORMAT_SUBTYPE_*` GUIDs (PCM, IEEE float): the first two
/// hold the format code.
const SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How samples are stored in the `data` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 8-bit unsigned integer, 128 is silence.
    U8,
    /// 16-bit signed integer, little-endian.
    I16,
    /// 24-bit signed integer packed in 3 bytes, little-endian.
    I24,
    /// 32-bit signed integer, little-endian (also 24-bit samples in 32-bit containers).
    I32,
    /// 32-bit IEEE float, little-endian.
    F32,
}

impl Encoding {
    /// Bytes one sample occupies.
    pub fn bytes(self) -> usize {
        match self {
            Encoding::U8 => 1,
            Encoding::I16 => 2,
            Encoding::I24 => 3,
            Encoding::I32 | Encoding::F32 => 4,
        }
    }
}

/// What a WAV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavInfo {
    /// Header sample rate, Hz.
    pub samplerate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample that carry signal (the extensible format's valid bits, else the
    /// header's bits per sample).
    pub bits: u16,
    /// Frames (samples per channel).
    pub frames: u64,
    /// How samples are stored.
    pub encoding: Encoding,
    /// True when the `data` chunk's size was a placeholder and its length was taken from the
    /// file's length (a recording interrupted mid-write).
    pub data_to_end: bool,
}

/// Why a WAV file cannot be read. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The file cannot be opened or read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: Utf8PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a RIFF/WAVE file.
    #[error("`{path}` is not a WAV file: {reason}")]
    NotWav {
        /// The file.
        path: Utf8PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// A required chunk is missing.
    #[error("`{path}` has no `{chunk}` chunk{note}")]
    MissingChunk {
        /// The file.
        path: Utf8PathBuf,
        /// `fmt ` or `data`.
        chunk: &'static str,
        /// Why the walk ended early, if it did (starts with `; `), or empty.
        note: String,
    },
    /// The samples are stored in a way this reader does not decode.
    #[error("`{path}` uses an unsupported format: {what}")]
    Unsupported {
        /// The file.
        path: Utf8PathBuf,
        /// The format, e.g. `µ-law (format 7)`.
        what: String,
    },
    /// The `fmt ` chunk is inconsistent.
    #[error("`{path}` has an invalid `fmt ` chunk: {reason}")]
    InvalidFormat {
        /// The file.
        path: Utf8PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A chunk declares more bytes than the file holds.
    #[error(
        "`{path}` is truncated: its `{chunk}` chunk declares {declared} bytes but only \
         {present} follow ({} bytes missing)",
        declared - present
    )]
    Truncated {
        /// The file.
        path: Utf8PathBuf,
        /// The chunk's id.
        chunk: String,
        /// Bytes the chunk declares.
        declared: u64,
        /// Bytes the file holds after the chunk header.
        present: u64,
    },
}

/// Where the samples are and how to decode them.
#[derive(Debug, Clone, Copy)]
struct Layout {
    info: WavInfo,
    data_start: u64,
}

/// The format of the WAV file at `path`, or why it cannot be read.
pub fn probe(path: &Utf8Path) -> Result<WavInfo, WavError> {
    let mut file = open(path)?;
    Ok(parse(&mut file, path)?.info)
}

fn open(path: &Utf8Path) -> Result<File, WavError> {
    File::open(path).map_err(|source| WavError::Io {
        path: path.to_owned(),
        source,
    })
}

fn io(path: &Utf8Path) -> impl FnOnce(std::io::Error) -> WavError + '_ {
    move |source| WavError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads up to `buf.len()` bytes at `pos`; returns how many were read (fewer at end of file).
fn read_at(file: &mut File, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    file.seek(SeekFrom::Start(pos))?;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// A chunk id as text, for messages.
fn id_text(id: &[u8]) -> String {
    id.iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// True when `id` looks like a chunk id: four printable ASCII characters.
fn plausible_id(id: &[u8]) -> bool {
    id.len() == 4 && id.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
}

/// Walks the chunks of `file` and finds its format and samples.
fn parse(file: &mut File, path: &Utf8Path) -> Result<Layout, WavError> {
    let len = file.metadata().map_err(io(path))?.len();
    let mut head = [0u8; 12];
    let got = read_at(file, 0, &mut head).map_err(io(path))?;
    let not_wav = |reason: String| WavError::NotWav {
        path: path.to_owned(),
        reason,
    };
    if got < 12 {
        return Err(not_wav(format!(
            "it is {len} bytes long, shorter than a RIFF header (12 bytes)"
        )));
    }
    match (&head[0..4], &head[8..12]) {
        (b"RIFF", b"WAVE") => {}
        (b"RF64", _) => {
            return Err(WavError::Unsupported {
                path: path.to_owned(),
                what: "RF64 (64-bit WAV)".into(),
            });
        }
        (b"RIFX", _) => {
            return Err(WavError::Unsupported {
                path: path.to_owned(),
                what: "big-endian RIFX".into(),
            });
        }
        (riff, wave) => {
            return Err(not_wav(format!(
                "it starts with `{}`…`{}`, not `RIFF`…`WAVE`",
                id_text(riff),
                id_text(wave)
            )));
        }
    }
    let riff_size = u64::from(u32_at(&head, 4));
    let mut fmt: Option<Fmt> = None;
    let mut data: Option<(u64, u64, bool)> = None;
    let mut note = String::new();
    let mut pos = 12u64;
    while pos + 8 <= len && (fmt.is_none() || data.is_none()) {
        let mut header = [0u8; 8];
        read_at(file, pos, &mut header).map_err(io(path))?;
        let id = [header[0], header[1], header[2], header[3]];
        let size = u64::from(u32_at(&header, 4));
        let body = pos + 8;
        let present = len - body;
        let mut next_size = size;
        match &id {
            b"fmt " => {
                if size > present {
                    return Err(WavError::Truncated {
                        path: path.to_owned(),
                        chunk: "fmt ".into(),
                        declared: size,
                        present,
                    });
                }
                // Bytes past the 40 of the extensible format carry nothing we read.
                let mut buf = vec![0u8; size.min(40) as usize];
                read_at(file, body, &mut buf).map_err(io(path))?;
                fmt = Some(parse_fmt(&buf, path)?);
            }
            b"data" => {
                let unset_riff =
                    riff_size == 0 || riff_size == 0xFFFF_FFFF || riff_size + 8 <= body;
                let to_end = size == 0xFFFF_FFFF || (size == 0 && present > 0 && unset_riff);
                if to_end {
                    data = Some((body, present, true));
                    next_size = present;
                } else if size > present {
                    return Err(WavError::Truncated {
                        path: path.to_owned(),
                        chunk: "data".into(),
                        declared: size,
                        present,
                    });
                } else {
                    data = Some((body, size, false));
                }
            }
            _ if !plausible_id(&id) => {
                note = format!(
                    "; the walk stopped at byte {pos}, where `{}` is no chunk id",
                    id_text(&id)
                );
                break;
            }
            _ if size > present => {
                note = format!(
                    "; the `{}` chunk at byte {pos} runs past the end of the file",
                    id_text(&id)
                );
                break;
            }
            _ => {}
        }
        pos = body + next_size;
        if next_size % 2 == 1 {
            pos = skip_pad(file, pos, len).map_err(io(path))?;
        }
    }
    let missing = |chunk| WavError::MissingChunk {
        path: path.to_owned(),
        chunk,
        note: note.clone(),
    };
    let fmt = fmt.ok_or_else(|| missing("fmt "))?;
    let (data_start, data_len, data_to_end) = data.ok_or_else(|| missing("data"))?;
    let block = fmt.encoding.bytes() as u64 * u64::from(fmt.channels);
    Ok(Layout {
        info: WavInfo {
            samplerate: fmt.samplerate,
            channels: fmt.channels,
            bits: fmt.bits,
            frames: data_len / block,
            encoding: fmt.encoding,
            data_to_end,
        },
        data_start,
    })
}

/// The position after the pad byte that follows an odd-sized chunk ending at `pos`: `pos + 1`,
/// unless that holds no plausible chunk id while `pos` does (a writer that forgot the pad).
fn skip_pad(file: &mut File, pos: u64, len: u64) -> std::io::Result<u64> {
    if pos + 1 + 8 > len {
        return Ok(pos + 1);
    }
    let mut ids = [0u8; 5];
    read_at(file, pos, &mut ids)?;
    if !plausible_id(&ids[1..5]) && plausible_id(&ids[0..4]) {
        Ok(pos)
    } else {
        Ok(pos + 1)
    }
}

/// The decoded `fmt ` chunk.
#[derive(Debug, Clone, Copy)]
struct Fmt {
    samplerate: u32,
    channels: u16,
    bits: u16,
    encoding: Encoding,
}

/// Decodes a `fmt ` chunk body (at most its first 40 bytes).
fn parse_fmt(b: &[u8], path: &Utf8Path) -> Result<Fmt, WavError> {
    let invalid = |reason: String| WavError::InvalidFormat {
        path: path.to_owned(),
        reason,
    };
    let unsupported = |what: String| WavError::Unsupported {
        path: path.to_owned(),
        what,
    };
    if b.len() < 16 {
        return Err(invalid(format!(
            "it is {} bytes long, at least 16 are needed",
            b.len()
        )));
    }
    let mut tag = u16_at(b, 0);
    let channels = u16_at(b, 2);
    let samplerate = u32_at(b, 4);
    let block_align = u16_at(b, 12);
    let container = u16_at(b, 14);
    let mut bits = container;
    if tag == 0xFFFE {
        if b.len() < 40 {
            return Err(invalid(format!(
                "a `WAVE_FORMAT_EXTENSIBLE` chunk needs 40 bytes, this one has {}",
                b.len()
            )));
        }
        if b[26..40] != SUBTYPE_TAIL {
            let guid: String = b[24..40].iter().map(|x| format!("{x:02x}")).collect();
            return Err(unsupported(format!(
                "`WAVE_FORMAT_EXTENSIBLE` with sub-format GUID {guid}"
            )));
        }
        tag = u16_at(b, 24);
        let valid = u16_at(b, 18);
        if valid != 0 && valid <= container {
            bits = valid;
        }
    }
    if channels == 0 {
        return Err(invalid("it declares 0 channels".into()));
    }
    if samplerate == 0 {
        return Err(invalid("it declares a sample rate of 0 Hz".into()));
    }
    let encoding = match (tag, container.div_ceil(8)) {
        (1, 1) => Encoding::U8,
        (1, 2) => Encoding::I16,
        (1, 3) => Encoding::I24,
        (1, 4) => Encoding::I32,
        (3, 4) => Encoding::F32,
        (1, _) => return Err(unsupported(format!("{container}-bit integer PCM"))),
        (3, _) => return Err(unsupported(format!("{container}-bit float"))),
        (tag, _) => return Err(unsupported(format_name(tag))),
    };
    let expected = encoding.bytes() * usize::from(channels);
    if usize::from(block_align) != expected {
        return Err(invalid(format!(
            "block align {block_align} does not match {channels} channels of {container}-bit \
             samples (expected {expected})"
        )));
    }
    Ok(Fmt {
        samplerate,
        channels,
        bits,
        encoding,
    })
}

/// A format code's name, for messages.
fn format_name(tag: u16) -> String {
    let name = match tag {
        2 => "Microsoft ADPCM",
        6 => "A-law",
        7 => "µ-law",
        0x11 => "IMA ADPCM",
        0x31 => "GSM 6.10",
        0x55 => "MPEG layer 3",
        _ => "format code",
    };
    format!("{name} (format {tag:#06x})")
}

/// A WAV file's frames, read in bounded blocks.
#[derive(Debug)]
pub struct WavReader {
    file: File,
    path: Utf8PathBuf,
    layout: Layout,
    /// Index of the next frame to read.
    next: u64,
    /// Raw bytes of one block.
    raw: Vec<u8>,
    /// Interleaved samples of one block, for the mono mix-down.
    mix: Vec<f32>,
}

impl WavReader {
    /// Opens the WAV file at `path` and reads its header.
    pub fn open(path: &Utf8Path) -> Result<WavReader, WavError> {
        let mut file = open(path)?;
        let layout = parse(&mut file, path)?;
        file.seek(SeekFrom::Start(layout.data_start))
            .map_err(io(path))?;
        Ok(WavReader {
            file,
            path: path.to_owned(),
            layout,
            next: 0,
            raw: Vec::new(),
            mix: Vec::new(),
        })
    }

    /// The file's format.
    pub fn info(&self) -> WavInfo {
        self.layout.info
    }

    /// Index of the next frame [`read`](Self::read) returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Moves to frame `frame` (the end when past it).
    pub fn seek(&mut self, frame: u64) -> Result<(), WavError> {
        let frame = frame.min(self.layout.info.frames);
        let block = self.block_align() as u64;
        self.file
            .seek(SeekFrom::Start(self.layout.data_start + frame * block))
            .map_err(io(&self.path))?;
        self.next = frame;
        Ok(())
    }

    fn block_align(&self) -> usize {
        self.layout.info.encoding.bytes() * usize::from(self.layout.info.channels)
    }

    /// Frames to read next: at most `max`, what remains, and one block.
    fn frames_for(&self, max: usize) -> usize {
        let remaining = self.layout.info.frames - self.next;
        let per_block = (BLOCK_BYTES / self.block_align()).max(1);
        max.min(per_block)
            .min(usize::try_from(remaining).unwrap_or(usize::MAX))
    }

    /// Reads the next frames into the start of `out`, interleaved, normalised to [-1, 1];
    /// returns how many frames it wrote (0 at the end of the data). Reads at most one block
    /// (64 KiB of the file) per call, and only whole frames (`out.len()` / channels).
    pub fn read(&mut self, out: &mut [f32]) -> Result<usize, WavError> {
        let channels = usize::from(self.layout.info.channels);
        let frames = self.frames_for(out.len() / channels);
        self.read_raw(frames)?;
        decode(
            self.layout.info.encoding,
            &self.raw,
            &mut out[..frames * channels],
        );
        Ok(frames)
    }

    /// Reads the next frames mixed down to mono (the mean of the channels) into the start of
    /// `out`; returns how many frames it wrote (0 at the end of the data). At most one block
    /// per call.
    pub fn read_mono(&mut self, out: &mut [f32]) -> Result<usize, WavError> {
        let channels = usize::from(self.layout.info.channels);
        let frames = self.frames_for(out.len());
        self.read_raw(frames)?;
        let encoding = self.layout.info.encoding;
        if channels == 1 {
            decode(encoding, &self.raw, &mut out[..frames]);
            return Ok(frames);
        }
        self.mix.resize(frames * channels, 0.0);
        decode(encoding, &self.raw, &mut self.mix);
        let scale = 1.0 / channels as f32;
        for (o, frame) in out.iter_mut().zip(self.mix.chunks_exact(channels)) {
            *o = frame.iter().sum::<f32>() * scale;
        }
        Ok(frames)
    }

    /// Fills `self.raw` with the bytes of the next `frames` frames.
    fn read_raw(&mut self, frames: usize) -> Result<(), WavError> {
        self.raw.resize(frames * self.block_align(), 0);
        if let Err(e) = self.file.read_exact(&mut self.raw) {
            // The header said the bytes were there: the file shrank since it was opened.
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                let present = self.file.metadata().map(|m| m.len()).unwrap_or(0);
                let present = present.saturating_sub(self.layout.data_start);
                let declared = self.layout.info.frames * self.block_align() as u64;
                WavError::Truncated {
                    path: self.path.clone(),
                    chunk: "data".into(),
                    declared,
                    present: present.min(declared),
                }
            } else {
                io(&self.path)(e)
            });
        }
        self.next += frames as u64;
        Ok(())
    }
}

/// Decodes the samples in `raw` into `out` (as many as `out` holds), normalised to [-1, 1].
fn decode(encoding: Encoding, raw: &[u8], out: &mut [f32]) {
    match encoding {
        Encoding::U8 => {
            for (o, b) in out.iter_mut().zip(raw) {
                *o = (f32::from(*b) - 128.0) / 128.0;
            }
        }
        Encoding::I16 => {
            for (o, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                *o = f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0;
            }
        }
        Encoding::I24 => {
            for (o, b) in out.iter_mut().zip(raw.chunks_exact(3)) {
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                *o = v as f32 / 8_388_608.0;
            }
        }
        Encoding::I32 => {
            for (o, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
                let v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                *o = (f64::from(v) / 2_147_483_648.0) as f32;
            }
        }
        Encoding::F32 => {
            for (o, b) in out.iter_mut().zip(raw.chunks_exact(4)) {
                let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                *o = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
            }
        }
    }
}
