#!/usr/bin/env python3
"""A minimal acoupi detector: reports the loud parts of a recording.

It speaks the acoupi detector protocol, version 1 (schema/detector-protocol.md), with the
Python standard library only, and is meant to be read as an example of it.

Serve mode (the default): acoupi starts it once and writes one JSON request per line on its
stdin; it announces itself with a ready line, then answers each request with one JSON line
on stdout, and exits when stdin closes. Per-file mode: started with the WAV path as its last
argument, it prints one reply and exits (the request, if acoupi sent it, is in the
environment variable ACOUPI_REQUEST).

Detection: the first channel is cut into 10 ms frames; consecutive frames whose RMS level is
at or above LEVEL dBFS (default -30, option --level) make one detection. Its score is how far
its loudest frame is from LEVEL towards full scale (0 at LEVEL, 1 at 0 dBFS); it spans the
whole band (0 Hz to half the capture rate) and carries one tag, `sound` = `loud`.

Logs go to stderr (acoupi writes them to its log); stdout carries protocol lines only.

    manifest:   detector "loud" kind="command" {
                    command "/usr/bin/python3" "/path/to/example.py"
                }
    by hand:    echo '{"protocol": 1, "id": "a", "path": "/abs/x.wav", "samplerate": 48000,
                  "channels": 1, "duration": 3.0, "time_expansion": 1.0,
                  "recorded_at": "2025-06-01T21:00:00Z", "threshold": 0.5}' | ./example.py
"""

import array
import json
import math
import os
import sys
import wave

NAME = "example-loudness"
VERSION = "1.0"
FRAME_SECONDS = 0.010


def log(message):
    """One line on stderr, which acoupi logs with the detector's name."""
    print(message, file=sys.stderr, flush=True)


def first_channel(path):
    """The file's first channel as floats in -1..1, and the file's header rate."""
    with wave.open(path, "rb") as w:
        width = w.getsampwidth()
        channels = w.getnchannels()
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())
    if width == 1:
        # 8-bit WAV is unsigned.
        samples = [(b - 128) / 128.0 for b in raw[::channels]]
        return samples, rate
    if width == 3:
        step = 3 * channels
        samples = []
        for i in range(0, len(raw) - 2, step):
            v = int.from_bytes(raw[i : i + 3], "little", signed=True)
            samples.append(v / 8388608.0)
        return samples, rate
    codes = {2: ("h", 32768.0), 4: ("i", 2147483648.0)}
    if width not in codes:
        raise ValueError(f"unsupported sample width of {width} bytes")
    code, scale = codes[width]
    values = array.array(code)
    values.frombytes(raw)
    if sys.byteorder == "big":
        values.byteswap()
    return [v / scale for v in values[::channels]], rate


def detect(path, samplerate, level_db, threshold):
    """The loud segments of `path`, as protocol detections.

    `samplerate` is the capture rate: times are real seconds even for a time-expanded file
    (whose header rate is lower), because sample i was captured at i / samplerate.
    """
    samples, header_rate = first_channel(path)
    if samplerate is None:
        samplerate = header_rate
    frame = max(1, int(round(header_rate * FRAME_SECONDS)))
    detections = []
    current = None  # [start sample, end sample, loudest dBFS]
    for start in range(0, len(samples), frame):
        chunk = samples[start : start + frame]
        rms = math.sqrt(sum(s * s for s in chunk) / len(chunk))
        db = 20 * math.log10(rms) if rms > 0 else -math.inf
        if db >= level_db:
            if current is None:
                current = [start, start + len(chunk), db]
            else:
                current[1] = start + len(chunk)
                current[2] = max(current[2], db)
        elif current is not None:
            detections.append(current)
            current = None
    if current is not None:
        detections.append(current)

    out = []
    for start, end, loudest in detections:
        score = min(1.0, max(0.0, (loudest - level_db) / -level_db))
        if score < threshold:
            continue  # acoupi would drop it anyway
        out.append(
            {
                "start_time": start / samplerate,
                "end_time": end / samplerate,
                "low_freq": 0.0,
                "high_freq": samplerate / 2.0,
                "score": round(score, 4),
                "tags": [{"key": "sound", "value": "loud", "score": round(score, 4)}],
            }
        )
    return out


def answer(request, level_db):
    """The reply to one request: its detections, or an error message."""
    rid = request.get("id")
    try:
        if request.get("protocol") != 1:
            raise ValueError(f"unsupported protocol version {request.get('protocol')!r}")
        detections = detect(
            request["path"],
            request.get("samplerate"),
            level_db,
            float(request.get("threshold", 0.0)),
        )
        return {"id": rid, "detections": detections}
    except Exception as e:  # one bad file must not stop the detector
        log(f"request {rid}: {type(e).__name__}: {e}")
        return {"id": rid, "error": f"{type(e).__name__}: {e}"}


def serve(level_db):
    """Serve mode: announce, then one reply per request line until stdin closes."""
    ready = {"ready": True, "name": NAME, "version": VERSION, "labels": ["loud"]}
    print(json.dumps(ready), flush=True)
    log(f"{NAME} {VERSION} ready, level {level_db} dBFS")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            log(f"ignoring a line that is not JSON: {e}")
            continue
        print(json.dumps(answer(request, level_db), allow_nan=False), flush=True)
    log("stdin closed, exiting")


def per_file(path, level_db):
    """Per-file mode: one reply for `path` on stdout."""
    request = json.loads(os.environ.get("ACOUPI_REQUEST", "{}"))
    request.setdefault("protocol", 1)
    request["path"] = path
    reply = answer(request, level_db)
    reply.pop("id", None)
    print(json.dumps(reply, allow_nan=False), flush=True)


def main(argv):
    level_db = -30.0
    args = list(argv)
    if args[:1] == ["--level"] and len(args) >= 2:
        level_db = float(args[1])
        args = args[2:]
    if level_db >= 0:
        log("--level must be below 0 dBFS")
        return 2
    if args:
        per_file(args[0], level_db)
    else:
        serve(level_db)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
