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

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk with its pad byte.
    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut c = id.to_vec();
        c.extend_from_slice(&(body.len() as u32).to_le_bytes());
        c.extend_from_slice(body);
        if body.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    /// A 16-byte `fmt ` body.
    fn fmt(tag: u16, channels: u16, rate: u32, block_align: u16, bits: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
        b.extend_from_slice(&block_align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b
    }

    /// A 40-byte `WAVE_FORMAT_EXTENSIBLE` body.
    fn ext(sub: u16, channels: u16, rate: u32, container: u16, valid: u16) -> Vec<u8> {
        let mut b = fmt(0xFFFE, channels, rate, channels * container / 8, container);
        b.extend_from_slice(&22u16.to_le_bytes());
        b.extend_from_slice(&valid.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&sub.to_le_bytes());
        b.extend_from_slice(&SUBTYPE_TAIL);
        b
    }

    /// A RIFF/WAVE file of `chunks`.
    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut f = b"RIFF".to_vec();
        f.extend_from_slice(&(body.len() as u32 + 4).to_le_bytes());
        f.extend_from_slice(b"WAVE");
        f.extend_from_slice(&body);
        f
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> Utf8PathBuf {
        let path = Utf8PathBuf::from_path_buf(dir.path().join(name)).expect("utf-8 temp dir");
        std::fs::write(&path, bytes).expect("write test file");
        path
    }

    fn read_all(path: &Utf8Path) -> (WavInfo, Vec<f32>) {
        let mut r = WavReader::open(path).expect("open");
        let info = r.info();
        let mut out = Vec::new();
        let mut buf = vec![0.0; 999 * usize::from(info.channels)];
        loop {
            let n = r.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n * usize::from(info.channels)]);
        }
        (info, out)
    }

    fn err(path: &Utf8Path) -> String {
        match WavReader::open(path) {
            Ok(_) => panic!("{path} opened"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_encoding_decodes_to_unit_range() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f32s: Vec<u8> = [0.5f32, -0.25, 2.0, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let i32s: Vec<u8> = [i32::MIN, i32::MAX, 1 << 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let cases: Vec<(&str, Vec<u8>, Vec<u8>, Encoding, u16, Vec<f32>)> = vec![
            (
                "u8",
                fmt(1, 1, 8_000, 1, 8),
                vec![0, 128, 255, 192],
                Encoding::U8,
                8,
                vec![-1.0, 0.0, 127.0 / 128.0, 0.5],
            ),
            (
                "i16",
                fmt(1, 1, 8_000, 2, 16),
                vec![0x00, 0x80, 0xFF, 0x7F, 0x00, 0x40],
                Encoding::I16,
                16,
                vec![-1.0, 32_767.0 / 32_768.0, 0.5],
            ),
            (
                "i24",
                fmt(1, 1, 8_000, 3, 24),
                vec![0, 0, 0x80, 0xFF, 0xFF, 0xFF, 0, 0, 0x40],
                Encoding::I24,
                24,
                vec![-1.0, -1.0 / 8_388_608.0, 0.5],
            ),
            (
                "i32",
                fmt(1, 1, 8_000, 4, 32),
                i32s.clone(),
                Encoding::I32,
                32,
                vec![-1.0, 1.0, 0.5],
            ),
            (
                "f32",
                fmt(3, 1, 8_000, 4, 32),
                f32s.clone(),
                Encoding::F32,
                32,
                vec![0.5, -0.25, 1.0, 0.0],
            ),
            (
                "ext-pcm24",
                ext(1, 1, 8_000, 24, 24),
                vec![0, 0, 0xC0],
                Encoding::I24,
                24,
                vec![-0.5],
            ),
            (
                "ext-24in32",
                ext(1, 1, 8_000, 32, 24),
                i32s,
                Encoding::I32,
                24,
                vec![-1.0, 1.0, 0.5],
            ),
            (
                "ext-float",
                ext(3, 1, 8_000, 32, 32),
                f32s,
                Encoding::F32,
                32,
                vec![0.5, -0.25, 1.0, 0.0],
            ),
        ];
        for (name, fmt_body, data, encoding, bits, expect) in cases {
            let path = write(
                &dir,
                name,
                &riff(&[chunk(b"fmt ", &fmt_body), chunk(b"data", &data)]),
            );
            let (info, samples) = read_all(&path);
            assert_eq!(info.encoding, encoding, "{name}");
            assert_eq!(info.bits, bits, "{name}");
            assert_eq!(info.frames, expect.len() as u64, "{name}");
            assert_eq!(samples, expect, "{name}");
            assert_eq!(probe(&path).expect("probe"), info, "{name}");
        }
    }

    #[test]
    fn hound_files_read_back_at_312_5_khz_with_three_channels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rate = 312_500;
        let frames = rate as usize / 10; // 0.1 s
        for (bits, float) in [
            (8, false),
            (16, false),
            (24, false),
            (32, false),
            (32, true),
        ] {
            let path = Utf8PathBuf::from_path_buf(dir.path().join(format!("h{bits}{float}.wav")))
                .expect("utf-8");
            let spec = hound::WavSpec {
                channels: 3,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: if float {
                    hound::SampleFormat::Float
                } else {
                    hound::SampleFormat::Int
                },
            };
            let mut w = hound::WavWriter::create(&path, spec).expect("create");
            let full = ((1i64 << (bits - 1)) - 1) as f64;
            let value = |i: usize, c: usize| ((i * 7 + c * 13) % 200) as f64 / 100.0 - 1.0;
            for i in 0..frames {
                for c in 0..3 {
                    if float {
                        w.write_sample(value(i, c) as f32).expect("write");
                    } else if bits == 8 {
                        w.write_sample((value(i, c) * full).round() as i8)
                            .expect("write");
                    } else {
                        w.write_sample((value(i, c) * full).round() as i32)
                            .expect("write");
                    }
                }
            }
            w.finalize().expect("finalize");
            let (info, samples) = read_all(&path);
            assert_eq!(
                (info.samplerate, info.channels, info.frames),
                (rate, 3, frames as u64)
            );
            // f32 output carries 24 bits of mantissa.
            let tolerance = (2.0 / full).max(1e-6);
            for (k, s) in samples.iter().enumerate() {
                let expect = value(k / 3, k % 3);
                assert!(
                    (f64::from(*s) - expect).abs() <= tolerance,
                    "{bits}: {k}: {s} vs {expect}"
                );
            }
            let mut r = WavReader::open(&path).expect("open");
            let mut mono = vec![0.0; 5000];
            let n = r.read_mono(&mut mono).expect("mono");
            assert!(n > 0);
            for (i, m) in mono[..n].iter().enumerate() {
                let expect = (value(i, 0) + value(i, 1) + value(i, 2)) / 3.0;
                assert!((f64::from(*m) - expect).abs() <= tolerance * 2.0, "mix {i}");
            }
        }
    }

    #[test]
    fn unknown_chunks_anywhere_are_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = [1u8, 0, 2, 0, 3, 0];
        let path = write(
            &dir,
            "chunks.wav",
            &riff(&[
                chunk(b"JUNK", &[0; 27]),
                chunk(b"bext", &[7; 602]),
                chunk(b"fmt ", &fmt(1, 1, 384_000, 2, 16)),
                chunk(b"guan", b"GUANO|Version:1.0\nMake:x"),
                chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00test\x00\x00"),
                chunk(b"data", &data),
                chunk(b"id3 ", &[1; 11]),
                chunk(b"wamd", &[2; 9]),
            ]),
        );
        let (info, samples) = read_all(&path);
        assert_eq!((info.samplerate, info.frames), (384_000, 3));
        assert_eq!(samples, [1.0 / 32_768.0, 2.0 / 32_768.0, 3.0 / 32_768.0]);
        // `fmt ` after `data`, and an odd-sized 8-bit `data` chunk with its pad byte.
        let path = write(
            &dir,
            "late-fmt.wav",
            &riff(&[
                chunk(b"data", &[128, 255, 0]),
                chunk(b"fmt ", &fmt(1, 1, 8_000, 1, 8)),
            ]),
        );
        assert_eq!(read_all(&path).1, [0.0, 127.0 / 128.0, -1.0]);
    }

    #[test]
    fn a_missing_pad_byte_is_tolerated() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut odd = b"guan".to_vec();
        odd.extend_from_slice(&5u32.to_le_bytes());
        odd.extend_from_slice(b"abcde"); // no pad byte
        let path = write(
            &dir,
            "nopad.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
                odd,
                chunk(b"data", &[0, 0x40]),
            ]),
        );
        assert_eq!(read_all(&path).1, [0.5]);
    }

    #[test]
    fn one_sample_empty_and_partial_frames() {
        let dir = tempfile::tempdir().expect("temp dir");
        let one = write(
            &dir,
            "one.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 2, 8_000, 4, 16)),
                chunk(b"data", &[0, 0x40, 0, 0xC0]),
            ]),
        );
        assert_eq!(
            read_all(&one),
            (probe(&one).expect("probe"), vec![0.5, -0.5])
        );
        let mut r = WavReader::open(&one).expect("open");
        let mut m = [9.0; 4];
        assert_eq!(r.read_mono(&mut m).expect("mono"), 1);
        assert_eq!(m[0], 0.0);
        assert_eq!(r.read_mono(&mut m).expect("mono"), 0);
        let empty = write(
            &dir,
            "empty.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
                chunk(b"data", &[]),
            ]),
        );
        assert_eq!(read_all(&empty).0.frames, 0);
        // A trailing partial frame is ignored.
        let partial = write(
            &dir,
            "partial.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 2, 8_000, 4, 16)),
                chunk(b"data", &[0, 0x40, 0, 0xC0, 1, 2]),
            ]),
        );
        assert_eq!(read_all(&partial).1, [0.5, -0.5]);
    }

    #[test]
    fn truncated_data_says_how_many_bytes_are_missing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut bytes = riff(&[
            chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
            chunk(b"data", &[0; 100]),
        ]);
        bytes.truncate(bytes.len() - 30);
        let path = write(&dir, "cut.wav", &bytes);
        let e = err(&path);
        assert!(e.contains("cut.wav") && e.contains("truncated"), "{e}");
        assert!(
            e.contains("declares 100 bytes but only 70 follow (30 bytes missing)"),
            "{e}"
        );
    }

    #[test]
    fn placeholder_data_sizes_run_to_the_end_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let samples = [0u8, 0x40, 0, 0xC0, 0, 0x20];
        for (name, riff_size, data_size) in [
            ("ffff", 0xFFFF_FFFFu32, 0xFFFF_FFFFu32),
            ("zero", 0, 0),
            ("ff-riff-ok", 100, 0xFFFF_FFFF),
        ] {
            let mut bytes = b"RIFF".to_vec();
            bytes.extend_from_slice(&riff_size.to_le_bytes());
            bytes.extend_from_slice(b"WAVE");
            bytes.extend_from_slice(&chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)));
            bytes.extend_from_slice(b"data");
            bytes.extend_from_slice(&data_size.to_le_bytes());
            bytes.extend_from_slice(&samples);
            let path = write(&dir, name, &bytes);
            let (info, s) = read_all(&path);
            assert!(info.data_to_end, "{name}");
            assert_eq!(s, [0.5, -0.5, 0.25], "{name}");
        }
        // A real empty `data` chunk followed by another chunk stays empty.
        let path = write(
            &dir,
            "real-empty.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
                chunk(b"data", &[]),
                chunk(b"LIST", &[0; 10]),
            ]),
        );
        let (info, s) = read_all(&path);
        assert!(!info.data_to_end && s.is_empty());
    }

    #[test]
    fn garbage_and_missing_chunks_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("short", b"RIFF".to_vec(), "shorter than a RIFF header"),
            (
                "text",
                b"hello, this is not audio at all".to_vec(),
                "not a WAV file: it starts with `hell`",
            ),
            ("zeros", vec![0; 4096], "not a WAV file"),
            (
                "rf64",
                {
                    let mut b = riff(&[]);
                    b[..4].copy_from_slice(b"RF64");
                    b
                },
                "unsupported format: RF64",
            ),
            (
                "nofmt",
                riff(&[chunk(b"data", &[0; 4])]),
                "has no `fmt ` chunk",
            ),
            (
                "nodata",
                riff(&[
                    chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
                    chunk(b"LIST", &[0; 4]),
                ]),
                "has no `data` chunk",
            ),
            (
                "overrun",
                riff(&[chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)), {
                    let mut c = chunk(b"LIST", &[0; 4]);
                    c[4] = 200;
                    c
                }]),
                "runs past the end",
            ),
            (
                "binary",
                riff(&[chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)), vec![0xFF; 16]]),
                "is no chunk id",
            ),
            (
                "mulaw",
                riff(&[
                    chunk(b"fmt ", &fmt(7, 1, 8_000, 1, 8)),
                    chunk(b"data", &[0; 4]),
                ]),
                "µ-law",
            ),
            (
                "f64",
                riff(&[
                    chunk(b"fmt ", &fmt(3, 1, 8_000, 8, 64)),
                    chunk(b"data", &[0; 8]),
                ]),
                "64-bit float",
            ),
            (
                "guid",
                riff(&[
                    chunk(b"fmt ", &{
                        let mut b = ext(1, 1, 8_000, 16, 16);
                        b[39] = 0;
                        b
                    }),
                    chunk(b"data", &[0; 4]),
                ]),
                "sub-format GUID",
            ),
            (
                "nochan",
                riff(&[
                    chunk(b"fmt ", &fmt(1, 0, 8_000, 0, 16)),
                    chunk(b"data", &[0; 4]),
                ]),
                "0 channels",
            ),
            (
                "norate",
                riff(&[
                    chunk(b"fmt ", &fmt(1, 1, 0, 2, 16)),
                    chunk(b"data", &[0; 4]),
                ]),
                "sample rate of 0 Hz",
            ),
            (
                "align",
                riff(&[
                    chunk(b"fmt ", &fmt(1, 2, 8_000, 2, 16)),
                    chunk(b"data", &[0; 4]),
                ]),
                "block align 2 does not match 2 channels of 16-bit samples (expected 4)",
            ),
            (
                "shortfmt",
                riff(&[chunk(b"fmt ", &[1, 0, 1, 0]), chunk(b"data", &[0; 4])]),
                "invalid `fmt ` chunk",
            ),
        ];
        for (name, bytes, expect) in cases {
            let path = write(&dir, name, &bytes);
            let e = err(&path);
            assert!(e.contains(expect) && e.contains(name), "{name}: {e}");
            assert!(probe(&path).is_err(), "{name}");
        }
        let e = err(Utf8Path::new("/nonexistent/acoupi.wav"));
        assert!(
            e.starts_with("cannot read `/nonexistent/acoupi.wav`"),
            "{e}"
        );
    }

    #[test]
    fn reads_are_bounded_and_seekable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let frames = 100_000u32;
        let data: Vec<u8> = (0..frames).flat_map(|i| (i as i16).to_le_bytes()).collect();
        let path = write(
            &dir,
            "long.wav",
            &riff(&[
                chunk(b"fmt ", &fmt(1, 1, 8_000, 2, 16)),
                chunk(b"data", &data),
            ]),
        );
        let mut r = WavReader::open(&path).expect("open");
        let mut buf = vec![0.0; frames as usize];
        let n = r.read(&mut buf).expect("read");
        assert_eq!(n, BLOCK_BYTES / 2, "one block per call");
        assert_eq!(r.position(), n as u64);
        r.seek(77_777).expect("seek");
        assert_eq!(r.read_mono(&mut buf[..2]).expect("read"), 2);
        assert_eq!(
            buf[..2],
            [
                f32::from(77_777u32 as i16) / 32_768.0,
                f32::from(77_778u32 as i16) / 32_768.0
            ]
        );
        r.seek(u64::MAX).expect("seek past the end");
        assert_eq!(r.read(&mut buf).expect("read"), 0);
    }
}
