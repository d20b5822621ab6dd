"""Writing a benchmark's result: the numbers, the machine they came from, and a chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import numpy as np

RESULTS = Path("benchmarks/results")
PACKAGES = ("flask", "waitress", "sqlalchemy", "psycopg", "pymongo", "pika", "nx-27017")


def percentiles(values) -> dict[str, float | int]:
    data = np.asarray([v for v in values if v == v], dtype=float)  # drop NaN
    if data.size == 0:
        return {"count": 0}
    p = np.percentile(data, [50, 95, 99])
    return {"count": int(data.size), "p50": round(p[0], 3), "p95": round(p[1], 3), "p99": round(p[2], 3),
            "max": round(float(data.max()), 3), "mean": round(float(data.mean()), 3)}


def _server_version(command: list[str]) -> str | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip()[:120] or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def machine() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "postgresql": _server_version(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"]),
        "rabbitmq": _server_version(["rabbitmqctl", "version"]),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write(name: str, parameters: dict, results: dict, figure=None, directory: Path = RESULTS) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    document = {"scenario": name, "ran_at": utc_now(),
                "machine": machine(), "parameters": parameters, "results": results}
    path.write_text(json.dumps(document, indent=2, default=str))
    if figure is not None:
        figure.savefig(directory / f"{name}.png", dpi=110)
    return path
