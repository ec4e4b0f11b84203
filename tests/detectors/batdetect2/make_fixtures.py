#!/usr/bin/env python3
"""Reference outputs of BatDetect2 1.3.1 for acoupi's native BatDetect2 detector.

Run once, with a Python that has `batdetect2==1.3.1` (and so torch) installed, e.g. in a
virtual environment under target/ (PyPI's torch is the CUDA build: about 6 GB):

    python3 -m venv target/bd2ref && target/bd2ref/bin/pip install batdetect2==1.3.1
    target/bd2ref/bin/python tests/detectors/batdetect2/make_fixtures.py

It synthesises the test signals described in `signals.json` (FM sweeps like bat calls over
uniform noise, and silence), writes them as 16-bit WAV files to a scratch folder, runs
BatDetect2's two paths on them and writes `reference.json` beside this script:

- `spectrogram`: the network's input (`api.load_audio` then `api.generate_spectrogram`):
  its shape, sum and maximum, every 8th row and `col_step`-th column (16, or a 64th of the width), and a full-height crop of
  `crop_width` columns starting at `crop_x`;
- `network`: the network's outputs on it: the detection map's sum and maximum and the same
  crop of it, and the class logits at every detection's peak;
- `detections`: `api.process_spectrogram` (the whole-file path acoupi-batdetect2 takes);
- `chunked`: `api.process_file` (3 s chunks).

The Rust tests (`tests/detect_batdetect2.rs`) synthesise the same samples from
`signals.json` with the same arithmetic and compare every stage. The signals are generated
here and there rather than stored, to keep the fixtures small.
"""

import json
import math
import os
import sys
import tempfile
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import torch  # noqa: E402
import batdetect2.api as api  # noqa: E402


# Detections scoring under this are left out of the fixtures (BatDetect2 reports peaks down
# to 0.01, up to 200 per second of audio, most of them noise; the tests compare at 0.2).
FLOOR = 0.1


def synthesise(sig):
    """The signal's 16-bit samples: uniform noise from a 32-bit LCG plus Hann-windowed
    linear FM sweeps, all in float64, quantised with floor(x * 32767 + 0.5)."""
    rate = sig["rate"]
    n = int(round(sig["duration_s"] * rate))
    state = sig["seed"] & 0xFFFFFFFF
    noise = np.empty(n, dtype=np.float64)
    for i in range(n):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        noise[i] = (2.0 * (state / 4294967296.0) - 1.0) * sig["noise"]
    x = noise
    for call in sig["calls"]:
        start = int(round(call["t0"] * rate))
        length = int(round(call["dur"] * rate))
        t = np.arange(length, dtype=np.float64) / rate
        phase = 2.0 * math.pi * (call["f0"] * t + (call["f1"] - call["f0"]) * t * t / (2.0 * call["dur"]))
        env = 0.5 - 0.5 * np.cos(2.0 * math.pi * np.arange(length, dtype=np.float64) / length)
        end = min(n, start + length)
        x[start:end] += call["amp"] * env[: end - start] * np.sin(phase[: end - start])
    q = np.floor(np.clip(x, -1.0, 1.0) * 32767.0 + 0.5)
    return np.clip(q, -32768, 32767).astype("<i2")


def write_wav(path, samples, rate):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def g(v):
    """A float with 5 significant digits, for compact JSON."""
    return float(f"{float(v):.5g}")


def grid(a):
    return [[g(v) for v in row] for row in a]


def reference(sig, path):
    crop_x, crop_w = sig["crop_x"], sig["crop_width"]
    audio = api.load_audio(path)
    spec = api.generate_spectrogram(audio)
    s = spec[0, 0].numpy().astype(np.float64)
    with torch.no_grad():
        out = api.model(spec)
    det = out.pred_det[0, 0].numpy().astype(np.float64)
    logits = out.pred_class_un_norm[0].numpy()
    detections, _ = api.process_spectrogram(spec)
    peaks = []
    for d in detections:
        if d["det_prob"] < 0.2:
            continue
        # The peak's column and row, back from the detection's start time and low frequency.
        x = int(round((d["start_time"] * 256000 - 384) / 128 * 0.5))
        y = int(round(128 - (d["low_freq"] - 10000) / ((120000 - 10000) / 128)))
        if 0 <= x < det.shape[1] and 0 <= y < det.shape[0]:
            peaks.append({"x": x, "y": y, "logits": [g(v) for v in logits[:, y, x]]})
    chunked = api.process_file(path)["pred_dict"]["annotation"]
    keep = ["start_time", "end_time", "low_freq", "high_freq", "class", "class_prob", "det_prob"]
    return {
        "spectrogram": {
            "height": s.shape[0],
            "width": s.shape[1],
            "sum": g(s.sum()),
            "max": g(s.max()),
            "col_step": max(16, s.shape[1] // 64),
            "strided": grid(s[::8, :: max(16, s.shape[1] // 64)]),
            "crop": grid(s[:, crop_x : crop_x + crop_w]),
        },
        "network": {
            "det_sum": g(det.sum()),
            "det_max": g(det.max()),
            "det_crop": grid(det[:, crop_x : crop_x + crop_w]),
            "peaks": peaks,
        },
        "detections_total": len(detections),
        "detections": [{k: d[k] for k in keep} for d in detections if d["det_prob"] >= FLOOR],
        "chunked_total": len(chunked),
        "chunked": [{k: d[k] for k in keep} for d in chunked if d["det_prob"] >= FLOOR],
    }


def main():
    with open(os.path.join(HERE, "signals.json")) as f:
        signals = json.load(f)["signals"]
    out = {
        "batdetect2": "1.3.1",
        "class_names": list(api.get_config()["class_names"]),
        "signals": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for sig in signals:
            path = os.path.join(tmp, sig["name"] + ".wav")
            write_wav(path, synthesise(sig), sig["rate"])
            out["signals"][sig["name"]] = reference(sig, path)
            print(sig["name"], len(out["signals"][sig["name"]]["detections"]), "detections", file=sys.stderr)
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
