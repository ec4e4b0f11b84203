"""acoupi 0.8.0's own SqliteStore against files the Rust store wrote, and the other way round.

Used by tests/store_compat.rs. Needs acoupi==0.8.0 (installed with --no-deps) and pydantic:
the store module imports only `acoupi.data`, `acoupi.components.types`, its own package and
two small `acoupi.system` modules, so the heavy package `__init__`s (PyAudio, Celery, MQTT)
are bypassed by registering those two packages as bare namespaces.

    store.py read PATH RECORDING_ID...  what SqliteStore reads from PATH, as JSON
    store.py write PATH                 writes a deployment, recordings and model outputs
                                        through SqliteStore, prints them as JSON
    store.py describe PATH              every acoupi table's columns, indexes and foreign keys
                                        as SQLite reports them, plus user_version, as JSON
"""

import dataclasses
import datetime
import importlib.metadata
import json
import sqlite3
import sys
import uuid
from pathlib import Path

import bare_packages


def import_store():
    bare_packages.register()
    from acoupi import data
    from acoupi.components.stores.sqlite.store import SqliteStore

    return data, SqliteStore


data, SqliteStore = import_store()
ACOUPI_TABLES = ["deployment", "recording", "model_output", "detection", "predicted_tag"]


def dump(value):
    if isinstance(value, list):
        return [dump(v) for v in value]
    if dataclasses.is_dataclass(value):
        return json.loads(json.dumps(dataclasses.asdict(value)))
    return value.model_dump(mode="json")


def read(path, recording_ids):
    store = SqliteStore(Path(path))
    recordings = store.get_recordings([uuid.UUID(i) for i in recording_ids])
    return {
        "acoupi": importlib.metadata.version("acoupi"),
        "current_deployment": dump(store.get_current_deployment()),
        "recordings": [
            {"recording": dump(r), "model_outputs": dump(list(outputs))}
            for r, outputs in recordings
        ],
        "model_outputs": dump(store.get_model_outputs()),
        "detections": dump(store.get_detections()),
        "predicted_tags": dump(store.get_predicted_tags()),
    }


def write(path):
    store = SqliteStore(Path(path))
    utc = datetime.timezone.utc
    deployment = data.Deployment(
        name="written by acoupi",
        latitude=-12.5,
        longitude=130.25,
        started_on=datetime.datetime(2024, 5, 1, 18, 0, 0, 250000, tzinfo=utc),
    )
    store.store_deployment(deployment)
    outputs = []
    for i in range(3):
        recording = data.Recording(
            created_on=datetime.datetime(2024, 5, 1, 21, 0, 10 * i, 123456 * (i % 2), tzinfo=utc),
            duration=3.0,
            samplerate=384000,
            audio_channels=1 + i % 2,
            deployment=deployment,
            path=Path(f"/run/shm/acoupi/{i}.wav") if i != 2 else None,
        )
        store.store_recording(recording)
        detections = [
            data.Detection(
                prediction_type=list(data.PredictionType)[k % 3],
                location=data.BoundingBox.from_coordinates(0.5 * k, 20000.0, 0.5 * k + 0.25, 45000.0)
                if k % 2 == 0
                else None,
                detection_score=0.25 * k,
                tags=[
                    data.PredictedTag(tag=data.Tag(key="species", value=f"sp{k}"), confidence_score=0.5),
                    data.PredictedTag(tag=data.Tag(key="call", value="social"), confidence_score=0.75),
                ][: k % 3],
            )
            for k in range(4)
        ]
        output = data.ModelOutput(
            name_model="batdetect2",
            recording=recording,
            detections=detections,
            created_on=recording.created_on + datetime.timedelta(seconds=4, microseconds=7),
        )
        store.store_model_output(output)
        outputs.append(output)
    return {"deployment": dump(deployment), "model_outputs": dump(outputs)}


def describe(path):
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    pragma = lambda sql: [list(row) for row in connection.execute(sql).fetchall()]
    tables = {}
    for table in ACOUPI_TABLES:
        indexes = pragma(f"PRAGMA index_list({table})")
        tables[table] = {
            "columns": pragma(f"PRAGMA table_xinfo({table})"),
            "foreign_keys": pragma(f"PRAGMA foreign_key_list({table})"),
            "indexes": {
                row[1]: {"unique": row[2], "origin": row[3], "partial": row[4],
                         "columns": pragma(f"PRAGMA index_xinfo('{row[1]}')")}
                for row in indexes
            },
        }
    master = pragma(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE tbl_name IN ('" + "', '".join(ACOUPI_TABLES) + "') ORDER BY name"
    )
    user_version = connection.execute("PRAGMA user_version").fetchone()[0]
    return {"tables": tables, "sqlite_master": master, "user_version": user_version}


def main():
    command, path, *rest = sys.argv[1:]
    result = {"read": lambda: read(path, rest), "write": lambda: write(path),
              "describe": lambda: describe(path)}[command]()
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
