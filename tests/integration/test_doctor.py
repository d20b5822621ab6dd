"""`cqrs-demo doctor` on this machine: the real servers answer, so every required check passes, and nothing is left."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from cqrs_demo.connections import write_engine
from cqrs_demo.runtime.processes import child_environment


def doctor_schemas(settings) -> list[str]:
    engine = write_engine(settings)
    try:
        with engine.connect() as conn:
            return conn.scalars(sa.text(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'doctor\_%'")).all()
    finally:
        engine.dispose()


@pytest.mark.parametrize("mongo", ["stand-in", "url"])
def test_the_doctor_finds_this_machine_ready(base_settings, mongo_url, mongo):
    settings = base_settings.with_(mongo_url=mongo_url if mongo == "url" else None)
    before = doctor_schemas(settings)
    result = subprocess.run([sys.executable, "-m", "cqrs_demo", "doctor"], env=child_environment(settings),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for check in ("Python", "venv", "PostgreSQL", "RabbitMQ", "MongoDB", "ports", "disk", "kernel", "Chromium"):
        (line,) = [line for line in lines if line[9:].startswith(check)]
        assert line.startswith(("ok", "warning")), line
    assert "can create a schema" in result.stdout and "can declare an exchange" in result.stdout
    assert "can write and drop a database" in result.stdout
    assert "ready for class" in lines[-1]
    assert doctor_schemas(settings) == before  # its probe schema was rolled back, never committed
