"""Running one process of the stack in the foreground: what `cqrs-demo serve NAME` does.

The HTTP services run on waitress, a production WSGI server; the relay and the projector run
their loops until SIGTERM or SIGINT, then finish the message or batch in hand and exit.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading

from cqrs_demo import web
from cqrs_demo.config import Settings

SERVICES = ("command", "query", "relay", "projector")


def stop_on_signals(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)) -> threading.Event:
    """An event set by the first of `signums`; the ones that follow are ignored (a parent's death
    and a `stop()` both send SIGTERM). A handler run again inside `stop.set()` would wait for
    ever on the lock the interrupted set() holds."""
    stop = threading.Event()

    def _handler(signum, frame):
        for ignored in signums:
            signal.signal(ignored, signal.SIG_IGN)
        if not stop.is_set():
            stop.set()

    for signum in signums:
        signal.signal(signum, _handler)
    return stop


def _freeze_start_up() -> None:
    """Move what start-up made out of the garbage collector's way.

    Imports and set-up leave a few hundred thousand long-lived objects (Flask, SQLAlchemy,
    pymongo, pika...). Every full collection would walk them all, pausing the process for 40 to
    100 ms now and then under load, the slowest answers a client sees. `gc.freeze` moves them to
    a generation that collections skip; what the process makes later is collected as usual.
    """
    gc.collect()
    gc.freeze()


def serve(name: str, settings: Settings) -> None:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    if name in ("command", "query"):
        import waitress

        if name == "command":
            from cqrs_demo.write.app import create_app

            port = settings.command_port
        else:
            from cqrs_demo.read.app import create_app

            port = settings.query_port
        app = create_app(settings)
        _freeze_start_up()
        waitress.serve(app, host=settings.host, port=port, threads=web.REQUEST_THREADS, ident=f"cqrs-{name}")
    elif name in ("relay", "projector"):
        _run_loop(name, settings)
    else:
        raise ValueError(f"unknown service {name!r}; choose one of {', '.join(SERVICES)}")


def _run_loop(name: str, settings: Settings) -> None:
    from cqrs_demo.messaging.partition_layout import PartitionLayoutChanged

    if name == "relay":
        from cqrs_demo.messaging.relay import OutboxRelay as Loop
    else:
        from cqrs_demo.read.projector import Projector as Loop
    try:
        loop = Loop(settings)
        _freeze_start_up()
        loop.run(stop_on_signals())
    except PartitionLayoutChanged as exc:  # refused to start: say why, in words, and exit
        logging.getLogger(name).error("%s", exc)
        raise SystemExit(2) from None
