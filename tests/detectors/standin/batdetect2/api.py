"""The stand-in `batdetect2.api`: fixed outputs, an optional load delay.

- `load_audio(path, time_exp_fact=1, ...)` opens `path` with the `wave` module (so a file
  that is not a WAV raises, as the real one does) and returns a dict describing it.
- `generate_spectrogram(audio)` returns it unchanged, marked as a spectrogram.
- `process_spectrogram(spec)` returns `(DETECTIONS, [])`, whatever the audio.
- `get_config()` returns `{"class_names": CLASS_NAMES}`.

Every import of this module sleeps BATDETECT2_STANDIN_LOAD_SECONDS seconds (default 0),
as the real one loads its model on import.
"""

import os
import time
import wave

time.sleep(float(os.environ.get("BATDETECT2_STANDIN_LOAD_SECONDS", "0")))

CLASS_NAMES = ["Myotis mystacinus", "Pipistrellus pipistrellus", "Nyctalus noctula"]

# The fixed detections: scores 0.9, 0.5 and 0.15 so a threshold sorts them.
DETECTIONS = [
    {
        "start_time": 0.0123,
        "end_time": 0.0178,
        "low_freq": 41000,
        "high_freq": 78000,
        "class": "Pipistrellus pipistrellus",
        "class_prob": 0.812,
        "det_prob": 0.9,
        "individual": "-1",
        "event": "Echolocation",
    },
    {
        "start_time": 0.2501,
        "end_time": 0.2555,
        "low_freq": 33000,
        "high_freq": 95000,
        "class": "Myotis mystacinus",
        "class_prob": 0.333,
        "det_prob": 0.5,
        "individual": "-1",
        "event": "Echolocation",
    },
    {
        "start_time": 0.4,
        "end_time": 0.41,
        "low_freq": 18000,
        "high_freq": 24000,
        "class": "Nyctalus noctula",
        "class_prob": 0.1,
        "det_prob": 0.15,
        "individual": "-1",
        "event": "Echolocation",
    },
]


def get_config(**kwargs):
    return {"class_names": list(CLASS_NAMES)}


def load_audio(path, time_exp_fact=1, target_samp_rate=256000, scale=False, max_duration=None):
    with wave.open(str(path), "rb") as w:
        return {
            "path": str(path),
            "rate": w.getframerate() * time_exp_fact,
            "frames": w.getnframes(),
        }


def generate_spectrogram(audio, config=None, device=None):
    return dict(audio, spectrogram=True)


def process_spectrogram(spec, samp_rate=256000, model=None, config=None):
    if not spec.get("spectrogram"):
        raise ValueError("not a spectrogram")
    return [dict(d) for d in DETECTIONS], []
