"""Python Celery on a real RabbitMQ (`amqp://`), for tests/celery_amqp.rs.

Run with the interpreter of a venv holding celery==5.7.0. Queues are bound to the default
exchange only (as acoupi's are) or the built-in `amq.direct`, so nothing but the named
queues is declared (and the bindings go with them).

    amqp_peer.py worker URL QUEUE CALLBACK_QUEUE OUT
        A real Celery worker (solo pool) consuming QUEUE (CALLBACK_QUEUE is where the
        callbacks go). Its task `acoupi.test.echo`
        appends, as one JSON line to OUT, what Celery parsed from each message, and returns
        {"echo": args}; Celery then publishes the message's callbacks. Runs until SIGTERM.

    amqp_peer.py send URL QUEUE CALLBACK_QUEUE MARK
        `send_task("noop", …)` to QUEUE with time limits, an expiry and a callback on
        CALLBACK_QUEUE; prints the message's id and what was sent, as JSON.
"""

import json
import sys

from celery import Celery
from kombu import Queue


def make_app(url, queues):
    app = Celery("acoupi-amqp", broker=url, set_as_current=False)
    app.conf.update(
        accept_content=["json"],
        task_serializer="json",
        result_serializer="json",
        result_backend=None,
        task_queues=[Queue(q, routing_key=q) for q in queues],
        task_default_queue=queues[0],
        # Celery gives queues without an exchange the default one, named after the default
        # queue unless set; a built-in exchange is never declared (nor left behind).
        task_default_exchange="amq.direct",
        task_create_missing_queues=False,
        task_send_sent_event=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


def iso(t):
    return t.isoformat() if hasattr(t, "isoformat") else t


def worker(url, queue, callback_queue, out):
    app = make_app(url, [queue, callback_queue])

    @app.task(name="acoupi.test.echo", bind=True)
    def echo(self, *args, **kwargs):
        r = self.request
        seen = {
            "id": r.id,
            "task": r.task,
            "args": list(args),
            "kwargs": kwargs,
            "retries": r.retries,
            "eta": iso(r.eta),
            "expires": iso(r.expires),
            "timelimit": list(r.timelimit or []),
            "root_id": r.root_id,
            "parent_id": r.parent_id,
            "correlation_id": r.correlation_id,
            "callbacks": [dict(c) for c in (r.callbacks or [])],
            "routing_key": (r.delivery_info or {}).get("routing_key"),
        }
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(seen, default=str) + "\n")
        return {"echo": list(args)}

    app.Worker(
        queues=[queue],
        pool="solo",
        concurrency=1,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        loglevel="WARNING",
        quiet=True,
    ).start()


def send(url, queue, callback_queue, mark):
    app = make_app(url, [queue, callback_queue])
    link = app.signature("noop", args=(), kwargs={}, queue=callback_queue)
    result = app.send_task(
        "noop",
        args=[{"x": 1, "y": [1.5, "z"]}],
        kwargs={"mark": mark},
        queue=queue,
        time_limit=30,
        soft_time_limit=20,
        expires=3600,
        link=link,
    )
    print(json.dumps({"id": result.id}))


def main(argv):
    if len(argv) == 6 and argv[1] == "worker":
        worker(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) == 6 and argv[1] == "send":
        send(argv[2], argv[3], argv[4], argv[5])
    else:
        sys.exit(f"usage: {argv[0]} worker URL QUEUE CALLBACK_QUEUE OUT | send URL QUEUE CALLBACK_QUEUE MARK")


if __name__ == "__main__":
    main(sys.argv)
