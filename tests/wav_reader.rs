//! The WAV reader on files written byte by byte (every encoding, chunks before and after
//! `data`, missing pad bytes, placeholder sizes, 312.5 kHz, many channels, 1 sample, empty,
//! truncated, garbage) and by hound: what it decodes, and the errors it gives.

use acoupi::audio::wav_reader::{Encoding, WavInfo, WavReader, probe};
use camino::{Utf8Path, Utf8PathBuf};

/// The last 14 bytes of the `KSDATAFORMAT_SUBTYPE_*` GUIDs.
const SUBTYPE_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// One decoding case: name, `fmt ` body, `data` body, expected encoding, bits and samples.
type Case = (&'static str, Vec<u8>, Vec<u8>, Encoding, u16, Vec<f32>);

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
    let cases: Vec<Case> = vec![
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
    assert_eq!(n, 32 * 1024, "one 64 KiB block per call");
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
