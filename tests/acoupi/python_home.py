"""Writes a home of the Python acoupi 0.8.0 the way its `setup` and `deployment start` do.

Used by tests/import_python.rs. `acoupi setup` needs a microphone (its PyAudio wizard lists
the devices), so this script does setup's file-writing steps itself, with acoupi's own code:
its program config schemas validate the config and fill in every default, its `write_config`
writes `config/program.json`, its `start_deployment` writes `config/deployment.json`, and its
`install_services` writes the systemd user units. Everything goes under `$HOME/.acoupi`, as
acoupi's `Settings` derive every path from the home directory at import: the caller sets
`HOME`.

    python_home.py SPEC_JSON     prints {"home", "program_json", "deployment_json"} as JSON

SPEC_JSON: {"program": "default" | "connected" | "batdetect2", "config": {...} (validated by
the program's schema; the batdetect2 schema is built below from acoupi's own section classes
and the fields of acoupi-batdetect2 0.3.0), "deployment": {"name", "latitude", "longitude"}
(optional), "unit_dir": PATH (optional: install the units there)}.

acoupi is installed with --no-deps plus the light dependencies its program modules import
(Celery, pydantic-settings, ...; see scripts/test). PyAudio is not installed: the module
`pyaudio` is replaced by an empty stand-in, which is enough because acoupi only calls it from
functions that open devices, never while importing or validating a config.
"""

import datetime
import json
import sys
import types
from pathlib import Path
from typing import Literal, Optional


def stand_in_pyaudio():
    module = types.ModuleType("pyaudio")

    class PyAudio:  # only named in annotations; never instantiated here
        pass

    module.PyAudio = PyAudio
    module.paInt16 = 8
    sys.modules["pyaudio"] = module


stand_in_pyaudio()

from pydantic import BaseModel, Field  # noqa: E402

from acoupi.components.audio_recorder import MicrophoneConfig  # noqa: E402
from acoupi.programs import connected, default  # noqa: E402
from acoupi.programs.templates import (  # noqa: E402
    AudioConfiguration,
    DetectionProgramConfiguration,
)
from acoupi.system.config.operations import write_config  # noqa: E402
from acoupi.system.constants import Settings  # noqa: E402
from acoupi.system.deployments import start_deployment  # noqa: E402
from acoupi.system.services import install_services  # noqa: E402


# acoupi-batdetect2 0.3.0's own sections (its package needs torch): the fields and defaults of
# its `config/program.json`, as listed in the project's reference notes on detectors.
class BatDetect2Recording(AudioConfiguration):
    schedule_start: datetime.time = datetime.time(19, 0, 0)
    schedule_end: datetime.time = datetime.time(7, 0, 0)


class ModelConfig(BaseModel):
    detection_threshold: float = 0.4


class SavingFilters(BaseModel):
    starttime: Optional[datetime.time] = None
    endtime: Optional[datetime.time] = None
    before_dawndusk_duration: int = 0
    after_dawndusk_duration: int = 0
    frequency_duration: int = 0
    frequency_interval: int = 0
    saving_threshold: float = 0.3


class SavingManagers(BaseModel):
    true_dir: Path = Path("bats")
    false_dir: Path = Path("no_bats")
    timeformat: str = "%Y%m%d_%H%M%S"
    bat_threshold: float = 0.5


class SummariserConfig(BaseModel):
    interval: float = 3600.0
    low_band_threshold: float = 0.0
    mid_band_threshold: float = 0.0
    high_band_threshold: float = 0.0


class BatDetect2ConfigSchema(DetectionProgramConfiguration):
    microphone: MicrophoneConfig
    recording: BatDetect2Recording = Field(default_factory=BatDetect2Recording)
    model: ModelConfig = Field(default_factory=ModelConfig)
    saving_filters: SavingFilters = Field(default_factory=SavingFilters)
    saving_managers: SavingManagers = Field(default_factory=SavingManagers)
    summariser_config: SummariserConfig = Field(default_factory=SummariserConfig)


PROGRAMS = {
    "default": ("acoupi.programs.default", default.ConfigSchema),
    "connected": ("acoupi.programs.connected", connected.Connected_ConfigSchema),
    "batdetect2": ("acoupi_batdetect2.program", BatDetect2ConfigSchema),
}


def main(spec):
    settings = Settings()
    module, schema = PROGRAMS[spec["program"]]
    # setup's steps 3 and 4: the program name, then the validated config.
    settings.program_name_file.parent.mkdir(parents=True, exist_ok=True)
    settings.program_name_file.write_text(module)
    config = schema.model_validate(spec["config"])
    write_config(config, settings.program_config_file)
    if "deployment" in spec:
        start_deployment(settings, **spec["deployment"])
    if "unit_dir" in spec:
        install_services(settings, Path(spec["unit_dir"]))
    deployment = settings.deployment_file
    return {
        "home": str(settings.home),
        "program_json": json.loads(settings.program_config_file.read_text()),
        "deployment_json": json.loads(deployment.read_text()) if deployment.exists() else None,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
