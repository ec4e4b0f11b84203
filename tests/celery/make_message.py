"""Builds and checks Celery task messages with real Celery, for tests/celery_compat.rs.

Run with the interpreter of a venv holding celery==5.7.0; no broker is needed (kombu's
in-process `memory://` transport carries the messages).

    make_message.py make
        Publishes a set of task messages with Celery (`send_task`, `as_task_v2`, a chain, the
        pickle serialiser, protocol v1, compression) and prints, as JSON, each message exactly
        as it reached the queue: headers, properties, content type and encoding, body bytes.

    make_message.py check FILE
        FILE holds messages encoded by acoupi (`{"cases": [{"name", "envelope": {...}}]}`).
        Each is published raw and consumed the way a Celery worker does: strict JSON-only
        decoding, a `celery.worker.request.Request`, every callback through
        `celery.canvas.signature`, headers and body compared with what `as_task_v2` builds for
        the same task, then the request is executed in process. Prints one verdict per case:
        the problems found, what Celery parsed, and every message the execution published
        (callbacks, retries), for the Rust side to decode.
"""

import base64
import datetime as dt
import json
import re
import socket
import sys
import traceback

from celery import Celery, chain, signature
from celery.utils.time import maybe_iso8601
from kombu import Producer, Queue
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.serialization import prepare_accept_content

UTC = dt.timezone.utc
IN_QUEUE = "acoupi-in"


def make_app(**conf):
    app = Celery("acoupi-compat", broker="memory://", set_as_current=False)
    app.conf.update(accept_content=["json"], task_serializer="json", result_serializer="json")
    app.conf.update(**conf)

    @app.task(name="acoupi.test.add", bind=True)
    def add(self, *args, **kwargs):
        nums = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        return {"sum": sum(nums), "kwargs": sorted(kwargs), "retries": self.request.retries}

    @app.task(name="acoupi.test.flaky", bind=True)
    def flaky(self, *args, **kwargs):
        raise self.retry(countdown=90, max_retries=10)

    @app.task(name="acoupi.test.a")
    def task_a(*args, **kwargs):
        return 1

    @app.task(name="acoupi.test.b")
    def task_b(*args, **kwargs):
        return 2

    return app


def drain(app):
    """Every message waiting in any memory:// queue, as it sits on the queue."""
    out = []
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        for name in sorted(ch.queues):  # memory:// keeps every declared queue here
            while True:
                try:
                    raw = ch._get(name)
                except Exception:  # kombu raises Empty
                    break
                out.append(raw_message(name, raw))
    return out


def raw_message(queue, raw):
    props = dict(raw.get("properties") or {})
    body = raw["body"]
    if props.pop("body_encoding", None) == "base64":
        body = base64.b64decode(body)
    elif isinstance(body, str):
        body = body.encode("utf-8")
    props.pop("delivery_tag", None)
    return {
        "queue": queue,
        "headers": raw.get("headers") or {},
        "properties": props,
        "content_type": raw.get("content-type"),
        "content_encoding": raw.get("content-encoding"),
        "body": list(body),
    }


def from_task_v2(message, serializer="json"):
    """A message as `as_task_v2` returns it, serialised the way kombu's producer does."""
    headers, properties, body, _ = message
    content_type, content_encoding, data = kombu_dumps(body, serializer=serializer)
    if isinstance(data, str):
        data = data.encode(content_encoding or "utf-8")
    return {
        "queue": None,
        "headers": headers,
        "properties": dict(properties, delivery_mode=2, priority=0),
        "content_type": content_type,
        "content_encoding": content_encoding,
        "body": list(data),
    }


def make():
    app = make_app()
    eta = dt.datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=UTC)
    expires = dt.datetime(2126, 11, 25, 10, 0, 0, tzinfo=UTC)
    cb2 = app.signature("acoupi.test.store", args=(1,), kwargs={"k": "v"}, queue="q2")
    cb = app.signature("acoupi.test.detect", args=("a",), kwargs={}, queue="q1", link=[cb2])
    eb = app.signature("acoupi.test.on_error", immutable=True)
    cases = {}

    def sent(name, **kw):
        drain(app)
        app.send_task(name, **kw)
        msgs = drain(app)
        assert len(msgs) == 1, msgs
        return msgs[0]

    cases["rich"] = sent(
        "acoupi.test.rich",
        task_id="11111111-2222-4333-8444-555555555555",
        args=[1, "two", 3.5, None, True, {"nested": [1, 2]}],
        kwargs={"slot": "2026-11-24T10:00:00Z", "n": 7},
        eta=eta,
        expires=expires,
        time_limit=60,
        soft_time_limit=30.5,
        link=cb,
        link_error=eb,
        root_id="root-1",
        parent_id="parent-1",
        retries=2,
    )
    cases["minimal"] = sent("acoupi.test.minimal", task_id="minimal-id")
    now = dt.datetime.now(UTC)
    cases["countdown"] = sent("acoupi.test.countdown", countdown=30, expires=120)
    cases["countdown"]["now"] = now.isoformat()
    cases["naive"] = sent(
        "acoupi.test.naive",
        eta=dt.datetime(2026, 11, 24, 10, 0, 0, 500000),
        expires=dt.datetime(2126, 1, 1, 0, 0, 0),
    )
    cases["as_task_v2"] = from_task_v2(
        app.amqp.as_task_v2(
            "as-task-v2-id",
            "acoupi.test.v2",
            args=(4,),
            kwargs={"x": [1, 2]},
            countdown=10,
            expires=expires,
            time_limit=120,
            soft_time_limit=None,
            callbacks=[dict(cb)],
            errbacks=None,
            root_id="root-2",
            parent_id="parent-2",
            retries=3,
        ),
    )
    cases["pickle"] = sent("acoupi.test.pickle", args=[1], serializer="pickle")
    cases["compressed"] = sent("acoupi.test.gzip", args=[1], compression="gzip")
    drain(app)
    chain(app.signature("acoupi.test.a"), app.signature("acoupi.test.b")).apply_async()
    cases["chain"] = drain(app)[0]
    cases["group_link"] = sent(
        "acoupi.test.grouped",
        link=app.signature("acoupi.test.a") | app.signature("acoupi.test.b"),
    )

    app1 = make_app(task_protocol=1)
    drain(app1)
    app1.send_task("acoupi.test.v1", args=[1])
    cases["protocol1"] = drain(app1)[0]

    print(json.dumps({"celery": __import__("celery").__version__, "cases": cases}))


def envelope_parts(env):
    headers = env["headers"]
    properties = {
        "correlation_id": env["correlation_id"],
        "priority": env["priority"],
        "delivery_mode": 2,
    }
    return headers, properties, bytes(env["body"])


def check_case(app, case):
    problems = []
    env = case["envelope"]
    headers, properties, body = envelope_parts(env)
    drain(app)

    # publish raw, exactly the bytes and headers acoupi produced
    with app.connection_for_write() as conn:
        producer = Producer(conn.default_channel)
        q = Queue(IN_QUEUE, routing_key=IN_QUEUE)
        q(conn.default_channel).declare()
        producer.publish(
            body,
            exchange="",
            routing_key=IN_QUEUE,
            content_type=env["content_type"],
            content_encoding=env["content_encoding"],
            headers=headers,
            serializer=None,
            **properties,
        )
        message = q(conn.default_channel).get(no_ack=False, accept=["json"])
        if message is None:
            return {"name": case["name"], "problems": ["message did not reach the queue"]}

        # the worker's JSON-only decode (accept_content=['json'])
        payload = kombu_loads(
            message.body,
            message.content_type,
            message.content_encoding,
            accept=prepare_accept_content(["json"]),
        )
        if message.payload != payload:
            problems.append("message.payload differs from strict json decoding")
        if not (isinstance(payload, (list, tuple)) and len(payload) == 3):
            problems.append(f"body is not [args, kwargs, embed]: {payload!r}")
            return {"name": case["name"], "problems": problems}
        args, kwargs, embed = payload
        if not isinstance(args, list):
            problems.append(f"args is {type(args).__name__}")
        if not isinstance(kwargs, dict):
            problems.append(f"kwargs is {type(kwargs).__name__}")
        if set(embed) != {"callbacks", "errbacks", "chain", "chord"}:
            problems.append(f"embed keys {sorted(embed)}")
        if "task" not in message.headers:
            problems.append("no `task` header: a worker would take this for protocol v1")

        sigs = {}
        for key in ("callbacks", "errbacks"):
            sigs[key] = []
            for d in embed.get(key) or []:
                sig = signature(d, app=app)
                for sub in sig.options.get("link") or []:
                    signature(sub, app=app)  # must parse as a signature too
                sigs[key].append(json.loads(json.dumps(dict(sig))))
                if dict(sig) != d:
                    problems.append(f"{key}: signature(d) does not reproduce the dict {d!r}")

        # the worker's request object
        from celery.worker.request import Request

        task = app.tasks[message.headers["task"]]
        req = Request(
            message,
            app=app,
            task=task,
            on_ack=message.ack_log_error,
            on_reject=message.reject_log_error,
        )
        parsed = {
            "id": req.id,
            "task": req.name,
            "args": req.args,
            "kwargs": req.kwargs,
            "eta": req.eta.isoformat() if req.eta else None,
            "expires": req.expires.isoformat() if req.expires else None,
            "time_limits": list(req.time_limits),
            "root_id": req.root_id,
            "parent_id": req.parent_id,
            "retries": message.headers.get("retries"),
            "correlation_id": req.correlation_id,
            "callbacks": sigs["callbacks"],
            "errbacks": sigs["errbacks"],
        }

        # what as_task_v2 builds for the same task
        hard, soft = req.time_limits
        ref_headers, ref_props, ref_body, _ = app.amqp.as_task_v2(
            req.id,
            req.name,
            args=args,
            kwargs=kwargs,
            eta=maybe_iso8601(headers.get("eta")),
            expires=maybe_iso8601(headers.get("expires")),
            time_limit=hard,
            soft_time_limit=soft,
            callbacks=embed.get("callbacks"),
            errbacks=embed.get("errbacks"),
            root_id=req.root_id,
            parent_id=req.parent_id,
            retries=message.headers.get("retries"),
        )
        ref_headers = json.loads(json.dumps(ref_headers))
        ours = dict(message.headers)
        if set(ours) != set(ref_headers):
            problems.append(
                f"header names differ: extra {sorted(set(ours) - set(ref_headers))}, "
                f"missing {sorted(set(ref_headers) - set(ours))}"
            )
        for key in sorted(set(ours) & set(ref_headers)):
            a, b = ours[key], ref_headers[key]
            if key == "origin":
                m = re.fullmatch(r"gen(\d+)@(.+)", str(a))
                if not m:
                    problems.append(f"origin {a!r} is not gen<pid>@<host>")
                elif m.group(2) != socket.gethostname():
                    problems.append(f"origin host {m.group(2)!r} != {socket.gethostname()!r}")
            elif a != b or type(a) is not type(b):
                problems.append(f"header {key}: ours {a!r} vs as_task_v2 {b!r}")
        if json.loads(json.dumps(ref_body)) != [args, kwargs, embed]:
            problems.append(f"body differs from as_task_v2: {ref_body!r}")
        content_type, content_encoding, _ = kombu_dumps(ref_body, serializer="json")
        if (message.content_type, message.content_encoding) != (content_type, content_encoding):
            problems.append(
                f"content type/encoding {message.content_type}/{message.content_encoding} "
                f"vs {content_type}/{content_encoding}"
            )
        if message.properties.get("correlation_id") != ref_props["correlation_id"]:
            problems.append("correlation_id is not the task id")

        # run it as the worker would; callbacks and retries get published
        retval = req.execute()
        if not message.acknowledged:
            problems.append("the request was not acknowledged")

    published = drain(app)
    return {
        "name": case["name"],
        "problems": problems,
        "parsed": parsed,
        "retval": retval,
        "published": published,
    }


def check(path):
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    app = make_app()
    verdicts = []
    for case in cases:
        try:
            verdicts.append(check_case(app, case))
        except Exception:
            verdicts.append({"name": case["name"], "problems": [traceback.format_exc()]})
    print(json.dumps({"verdicts": verdicts}, default=str))


def main(argv):
    if len(argv) >= 2 and argv[1] == "make":
        make()
    elif len(argv) == 3 and argv[1] == "check":
        check(argv[2])
    else:
        sys.exit(f"usage: {argv[0]} make | check FILE")


if __name__ == "__main__":
    main(sys.argv)
