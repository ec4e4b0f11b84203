"""Makes acoupi 0.8.0's store modules importable without its heavy package `__init__`s.

acoupi is installed with --no-deps: `acoupi.components` and `acoupi.system` import PyAudio,
Celery and MQTT on import, while the SQLite stores need only `acoupi.data` and a few small
modules. Registering those two packages as bare namespaces bypasses their `__init__`s.
Used by store.py and messages.py.
"""

import importlib.util
import sys
import types
from pathlib import Path


def register():
    spec = importlib.util.find_spec("acoupi")
    if spec is None:
        sys.exit("acoupi is not installed in this Python")
    root = Path(spec.submodule_search_locations[0])
    for name in ("acoupi.components", "acoupi.system"):
        package = types.ModuleType(name)
        package.__path__ = [str(root / name.split(".")[1])]
        sys.modules[name] = package
