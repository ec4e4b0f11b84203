"""A stand-in for the `batdetect2` package, for acoupi's tests (no torch, no model).

It has the API surface examples/detectors/batdetect2.py uses, in `batdetect2.api`, and
returns fixed outputs documented there. Importing `batdetect2.api` sleeps for
BATDETECT2_STANDIN_LOAD_SECONDS (default 0) to stand for the real model load.
"""

__version__ = "0.0.0+standin"
