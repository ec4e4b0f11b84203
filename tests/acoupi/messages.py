"""acoupi 0.8.0's own SqliteMessageStore against outboxes the Rust runtime wrote, and back.

Used by tests/outbox_compat.rs. Needs acoupi==0.8.0 (installed with --no-deps) and pydantic,
as tests/acoupi/store.py (the heavy package `__init__`s are bypassed the same way).

    messages.py unsent PATH [LIMIT]   acoupi's unsent messages in PATH, oldest first, as JSON
    messages.py write PATH            stores three messages through acoupi (one answered with
                                      success, one with an error), prints them as JSON
    messages.py respond PATH ID       stores a successful response to message ID through acoupi
"""

import json
import sys
from pathlib import Path

import bare_packages


def import_message_store():
    bare_packages.register()
    from acoupi import data
    from acoupi.components.message_stores.sqlite.message_store import SqliteMessageStore

    return data, SqliteMessageStore


data, SqliteMessageStore = import_message_store()


def dump(message):
    content = message.content
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    return {
        "id": str(message.id),
        "content": content,
        "created_on": message.created_on.isoformat(),
        "message_type": None if message.message_type is None else message.message_type.value,
    }


def main(argv):
    command, path = argv[1], Path(argv[2])
    store = SqliteMessageStore(path)
    if command == "unsent":
        limit = int(argv[3]) if len(argv) > 3 else None
        print(json.dumps([dump(m) for m in store.get_unsent_messages(limit=limit)]))
    elif command == "write":
        made = []
        for i, kind in enumerate(["heartbeat", "detection", "summary"]):
            message = data.Message(
                content=json.dumps({"n": i}),
                message_type=kind,
                created_on=f"2024-01-05T03:04:0{i}.25+00:00",
            )
            store.store_message(message)
            made.append(message)
        store.store_response(
            data.Response(message=made[0], status=data.ResponseStatus.SUCCESS, content="ok")
        )
        store.store_response(
            data.Response(message=made[1], status=data.ResponseStatus.ERROR, content="HTTP 500")
        )
        print(json.dumps([dump(m) for m in made]))
    elif command == "respond":
        message = next(m for m in store.get_unsent_messages() if str(m.id) == argv[3])
        store.store_response(
            data.Response(message=message, status=data.ResponseStatus.SUCCESS, content="ok")
        )
        print(json.dumps(dump(message)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
