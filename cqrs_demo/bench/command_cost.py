"""What one command costs each part of the stack, in CPU milliseconds.

The load generator sends product updates at a steady 50 per second, each followed by a
read-your-writes GET (`min_version`), for a window; every process's CPU time is read from /proc
before and after, and divided by the commands sent. The servers are counted as narrowly as they
can be: PostgreSQL by the backends serving this stack's connections, the MongoDB stand-in by its
own process. RabbitMQ's single Erlang VM serves every user of the broker, so on a machine where
others are busy its figure includes their share too; the JSON says how many connections it had.

Right after, on the same servers and at the same rate, the floor under that cost is measured the
same way: the bare pipeline per event (`bare_pipeline`), and the bare HTTP request (`bare_http`),
of which a command and its read make two.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import psutil

from cqrs_demo.bench import bare_http, bare_pipeline
from cqrs_demo.bench.process_cost import by_name, measure_while, postgres_backends, tree
from cqrs_demo.bench.record import percentiles
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.load import LoadGenerator
from cqrs_demo.lab.stack import LabStack


def _groups(stack: LabStack) -> dict:
    groups = {name: (lambda pid=process.pid: tree(pid)) for name, process in stack.stack.processes.items()}
    if stack.stack.standin is not None:
        groups["mongo stand-in"] = lambda: tree(stack.stack.standin.pid)
    services = [process.pid for process in stack.stack.processes.values()]
    groups["postgresql"] = lambda: postgres_backends(stack.engine, services)
    groups["rabbitmq"] = lambda: by_name("beam.smp")
    groups["load generator"] = lambda: [psutil.Process()]
    return groups


def _figure(per_command: dict[str, float], total: float, bare: dict, http: dict) -> plt.Figure:
    """The stack's cost per command next to its floor: the bare pipeline per event, and the two
    bare HTTP requests a command and its read make. The servers keep their colour in each bar."""
    floor = {**bare["cpu_ms_per_event"],
             **{f"HTTP {name} x2": 2 * ms for name, ms in http["cpu_ms_per_request"].items()}}
    rows = [(f"stack\n{total:.1f} ms", per_command),
            (f"bare pipeline\n{bare['total_cpu_ms_per_event']:.1f} ms", bare["cpu_ms_per_event"]),
            (f"+ two bare\nrequests\n{sum(floor.values()):.1f} ms", floor)]
    names = list(dict.fromkeys(name for _, parts in rows for name in sorted(parts, key=parts.get, reverse=True)))
    colours = dict(zip(names, plt.get_cmap("tab10").colors + plt.get_cmap("Set2").colors))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for y, (_, parts) in enumerate(rows):
        left = 0.0
        for name in sorted(parts, key=parts.get, reverse=True):
            ax.barh(y, parts[name], left=left, color=colours[name], edgecolor="white")
            if parts[name] >= 0.9:
                ax.text(left + parts[name] / 2, y, name.replace(" ", "\n", 1), ha="center", va="center", fontsize=7)
            left += parts[name]
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel("CPU ms per command (bare pipeline: per event)")
    ax.set_title("CPU per command at 50/s, and the floor on the same servers")
    fig.tight_layout()
    return fig


def cpu_per_command(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    """The stack's CPU per command; then, on the same servers, its floor: the bare pipeline per
    event and the bare HTTP request."""
    rate, seconds = 50, (5 if quick else 20)
    commands = int(rate * seconds)
    stack = LabStack(namespace="bench_cpu").start()
    try:
        load = LoadGenerator(stack, products=50)
        load.prepare()
        wait_until_equal(stack.engine, stack.read_db, 30)
        footprints, frame = measure_while(
            _groups(stack), lambda: load.run(commands=commands, rate=rate, progress=False))
        converged = wait_until_equal(stack.engine, stack.read_db, 60)["equal"]
    finally:
        stack.stop()
    bare = bare_pipeline.measure(rate, seconds)
    http = bare_http.measure(2 * rate, seconds)
    ok = frame[frame["status"] < 300]
    per_command = {name: round(f.cpu_seconds * 1000 / commands, 3) for name, f in footprints.items()}
    total = round(sum(per_command.values()), 3)
    results = {
        "cpu_ms_per_command": per_command,
        "total_cpu_ms_per_command": total,
        "processes": {name: f.processes for name, f in footprints.items()},
        "commands": commands,
        "errors": int((frame["status"] >= 300).sum()),
        "write_to_visible_ms": percentiles(ok["visible_ms"]),
        "converged": converged,
        "bare_pipeline": bare,
        "bare_http": http,
    }
    parameters = {"rate": rate, "seconds": seconds, "operation": "PATCH price + GET ?min_version, 50 products",
                  "bare_pipeline": "product UPDATE + outbox INSERT + NOTIFY; relay with confirms; versioned upsert",
                  "bare_http": "GET of a small JSON document from Flask on waitress, 2 per command"}
    return parameters, results, _figure(per_command, total, bare, http)
