#!/usr/bin/env python3
"""BatDetect2 as an acoupi detector (detector protocol version 1).

BatDetect2 takes seconds to import (it loads its model then), so this program loads it once
and answers requests for as long as acoupi keeps it running (serve mode): it announces
itself with a ready line (BatDetect2's version and, if the installed version exposes them,
its class names), then answers each request line with one reply line, and exits when stdin
closes. Given a WAV path as its last argument it answers for that file and exits (per-file
mode, one model load per file: much slower).

Each BatDetect2 detection becomes one acoupi detection: `det_prob` is its score and its
`class` a tag `species` scored `class_prob`. Detections scoring under the request's
threshold are left out. A file BatDetect2 cannot process gets an error reply; the program
goes on with the next request.

Install with scripts/install-batdetect2, which prints the manifest line:

    detector "bats" kind="command" {
        command "/venv/bin/python" "/path/to/batdetect2.py"
        threshold 0.4
    }
"""

import json
import os
import sys

# stdout carries protocol lines only: whatever the libraries print goes to stderr, which
# acoupi logs.
PROTOCOL = sys.stdout
sys.stdout = sys.stderr


def send(obj):
    PROTOCOL.write(json.dumps(obj, allow_nan=False) + "\n")
    PROTOCOL.flush()


def log(message):
    print(message, file=sys.stderr, flush=True)


# This file is itself named batdetect2.py: its folder, first on the path, would shadow the
# package.
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import batdetect2  # noqa: E402
import batdetect2.api as api  # noqa: E402  (loads the model)


def version():
    try:
        from importlib.metadata import version as installed

        return installed("batdetect2")
    except Exception:
        return getattr(batdetect2, "__version__", None)


def class_names():
    """The species the model knows, if this version of the API says."""
    try:
        names = api.get_config().get("class_names")
        return [str(n) for n in names] if names else []
    except Exception:
        return []


def detections(path, threshold, time_expansion):
    """BatDetect2's detections in `path` scoring at least `threshold`, in protocol form."""
    if time_expansion == 1:
        audio = api.load_audio(path)
    else:
        # BatDetect2 takes the capture rate as the header rate times this factor, so its
        # times and frequencies come out real.
        audio = api.load_audio(path, time_exp_fact=time_expansion)
    spec = api.generate_spectrogram(audio)
    found, _features = api.process_spectrogram(spec)
    out = []
    for d in found:
        score = float(d["det_prob"])
        if score < threshold:
            continue
        out.append(
            {
                "start_time": float(d["start_time"]),
                "end_time": float(d["end_time"]),
                "low_freq": float(d["low_freq"]),
                "high_freq": float(d["high_freq"]),
                "score": score,
                "tags": [
                    {
                        "key": "species",
                        "value": str(d["class"]),
                        "score": float(d["class_prob"]),
                    }
                ],
            }
        )
    return out


def answer(request):
    rid = request.get("id")
    try:
        if request.get("protocol") != 1:
            raise ValueError(f"unsupported protocol version {request.get('protocol')!r}")
        found = detections(
            request["path"],
            float(request.get("threshold", 0.0)),
            float(request.get("time_expansion", 1.0)),
        )
        return {"id": rid, "detections": found}
    except Exception as e:
        log(f"request {rid} ({request.get('path')}): {type(e).__name__}: {e}")
        return {"id": rid, "error": f"{type(e).__name__}: {e}"}


def main(argv):
    if argv:
        request = json.loads(os.environ.get("ACOUPI_REQUEST", "{}"))
        request.setdefault("protocol", 1)
        request["path"] = argv[-1]
        reply = answer(request)
        reply.pop("id", None)
        send(reply)
        return 0
    send({"ready": True, "name": "BatDetect2", "version": version(), "labels": class_names()})
    log(f"BatDetect2 {version()} ready")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
        except ValueError as e:
            log(f"ignoring a line that is not JSON: {e}")
            continue
        send(answer(request))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
