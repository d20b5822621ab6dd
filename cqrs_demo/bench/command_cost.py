"""What one command costs each part of the stack, in CPU milliseconds.

The load generator sends product updates at a steady 50 per second, each followed by a
read-your-writes GET (`min_version`), for a window; every process's CPU time is read from /proc
before and after, and divided by the commands sent. The servers are counted as narrowly as they
can be: PostgreSQL by the backends serving this stack's connections, the MongoDB stand-in by its
own process. RabbitMQ's single Erlang VM serves every user of the broker, so on a machine where
others are busy its figure includes their share too; the JSON says how many connections it had.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import psutil
import sqlalchemy as sa

from cqrs_demo.bench.process_cost import alive, by_name, measure_while, tree
from cqrs_demo.bench.record import percentiles
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.load import LoadGenerator
from cqrs_demo.lab.stack import LabStack

POSTGRES_PORT = 5432


def _client_ports(pids: list[int], server_port: int) -> set[int]:
    """The local ports of these processes' TCP connections to `server_port`."""
    ports = set()
    for pid in pids:
        for process in tree(pid):
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.Error:
                continue
            ports.update(c.laddr.port for c in connections if c.raddr and c.raddr.port == server_port)
    return ports


def _postgres_backends(stack: LabStack) -> list[psutil.Process]:
    """The PostgreSQL backends that serve the stack's services (matched by their client ports)."""
    services = [process.pid for process in stack.stack.processes.values()]
    ports = _client_ports(services, POSTGRES_PORT)
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")).all()
    return alive(pid for pid, port in rows if port in ports)


def _groups(stack: LabStack) -> dict:
    groups = {name: (lambda pid=process.pid: tree(pid)) for name, process in stack.stack.processes.items()}
    if stack.stack.standin is not None:
        groups["mongo stand-in"] = lambda: tree(stack.stack.standin.pid)
    groups["postgresql"] = lambda: _postgres_backends(stack)
    groups["rabbitmq"] = lambda: by_name("beam.smp")
    groups["load generator"] = lambda: [psutil.Process()]
    return groups


def _figure(per_command: dict[str, float], total: float) -> plt.Figure:
    names = sorted(per_command, key=per_command.get)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(names, [per_command[n] for n in names])
    ax.set_xlabel("CPU ms per command")
    ax.set_title(f"CPU per command at 50/s: {total:.1f} ms in all")
    fig.tight_layout()
    return fig


def cpu_per_command(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
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
    }
    parameters = {"rate": rate, "seconds": seconds, "operation": "PATCH price + GET ?min_version, 50 products"}
    return parameters, results, _figure(per_command, total)
