"""What a set of processes costs the machine: CPU over a window, and memory at its end.

Memory is counted three ways, because a class of Python processes shares a lot: RSS counts every
page a process maps, shared or not (summed over processes, shared libraries count many times);
PSS divides each shared page among the processes that map it (sums add up to what the machine
really spends); USS counts only pages no other process maps (what stopping it would free). PSS
and USS come from /proc/PID/smaps_rollup (Linux; another user's processes need root), and are
None where they cannot be read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, TypeVar

import psutil
import sqlalchemy as sa

MB = 1024 * 1024

T = TypeVar("T")


@dataclass(frozen=True)
class Footprint:
    processes: int
    cpu_cores: float  # CPU seconds per wall second over the window: 1.0 is one core busy
    cpu_seconds: float  # CPU time spent over the window, user and system
    rss_mb: float
    pss_mb: float | None
    uss_mb: float | None

    def as_dict(self) -> dict:
        return {"processes": self.processes, "cpu_cores": round(self.cpu_cores, 4),
                "cpu_seconds": round(self.cpu_seconds, 3), "rss_mb": round(self.rss_mb, 1),
                "pss_mb": None if self.pss_mb is None else round(self.pss_mb, 1),
                "uss_mb": None if self.uss_mb is None else round(self.uss_mb, 1)}


def tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant (a kernel and the stack it started); [] once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_seconds(process: psutil.Process) -> float | None:
    try:
        times = process.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return None


def _memory(process: psutil.Process) -> tuple[float, float | None, float | None] | None:
    try:
        full = process.memory_full_info()
        return full.rss, getattr(full, "pss", None), getattr(full, "uss", None)
    except psutil.AccessDenied:
        try:
            return process.memory_info().rss, None, None
        except psutil.Error:
            return None
    except psutil.Error:
        return None


def measure(groups: dict[str, Callable[[], Iterable[psutil.Process]]], seconds: float) -> dict[str, Footprint]:
    """Each group's footprint over the same window of `seconds`.

    A group is a function giving its processes, asked at the start of the window; a process
    that ends during the window counts for the CPU it had used by its last reading.
    """
    return measure_while(groups, lambda: time.sleep(seconds))[0]


def measure_while(groups: dict[str, Callable[[], Iterable[psutil.Process]]],
                  action: Callable[[], T]) -> tuple[dict[str, Footprint], T]:
    """Each group's footprint over the window `action` takes to run, and what `action` returned."""
    members = {name: list(find()) for name, find in groups.items()}
    before = {name: {p.pid: _cpu_seconds(p) for p in procs} for name, procs in members.items()}
    started = time.monotonic()
    outcome = action()
    wall = time.monotonic() - started
    footprints = {}
    for name, procs in members.items():
        cpu = 0.0
        rss, pss, uss, alive = 0.0, 0.0, 0.0, 0
        pss_known = uss_known = True
        for process in procs:
            start, end = before[name][process.pid], _cpu_seconds(process)
            if start is not None and end is not None:
                cpu += end - start
            memory = _memory(process)
            if memory is None:
                continue
            alive += 1
            rss += memory[0]
            pss_known &= memory[1] is not None
            uss_known &= memory[2] is not None
            pss += memory[1] or 0
            uss += memory[2] or 0
        footprints[name] = Footprint(alive, cpu / wall, cpu, rss / MB, pss / MB if pss_known else None,
                                     uss / MB if uss_known else None)
    return footprints, outcome


def alive(pids: Iterable[int]) -> list[psutil.Process]:
    """The processes of these pids that still exist."""
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    return found


def by_name(name: str) -> list[psutil.Process]:
    """Every process with this executable name (`beam.smp`: RabbitMQ's Erlang VM)."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == name]


def _client_ports(pids: Iterable[int], server_port: int) -> set[int]:
    """The local ports of these processes' (and their children's) TCP connections to `server_port`."""
    ports = set()
    for pid in pids:
        for process in tree(pid):
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.Error:
                continue
            ports.update(c.laddr.port for c in connections if c.raddr and c.raddr.port == server_port)
    return ports


def postgres_backends(engine: sa.Engine, pids: Iterable[int]) -> list[psutil.Process]:
    """The PostgreSQL backends serving these processes' connections (matched by their client ports)."""
    ports = _client_ports(pids, engine.url.port or 5432)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT pid, client_port FROM pg_stat_activity WHERE client_port IS NOT NULL")).all()
    return alive(pid for pid, port in rows if port in ports)
