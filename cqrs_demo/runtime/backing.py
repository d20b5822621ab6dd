"""Making sure PostgreSQL and RabbitMQ answer before the stack starts.

When one does not answer and its URL points at this machine, we try the machine's own start
command once (the same ones a workshop laptop or CI uses), then wait for it. A remote server
that does not answer is reported, never "fixed".
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pika
import pika.exceptions
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_parameters, ensure_database
from cqrs_demo.polling import WaitTimeout, wait_until

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", None, ""}


class BackingServiceDown(RuntimeError):
    pass


def postgres_answers(settings: Settings) -> bool:
    url = make_url(settings.database_url).set(database="postgres")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def rabbitmq_answers(settings: Settings) -> bool:
    try:
        pika.BlockingConnection(amqp_parameters(settings)).close()
        return True
    except (pika.exceptions.AMQPError, OSError):
        return False


def _start_local_postgres() -> None:
    clusters = sorted(os.path.basename(path) for path in glob.glob("/etc/postgresql/*"))
    if clusters and shutil.which("pg_ctlcluster"):
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main", "start"],
            check=False, capture_output=True,
        )


def _start_local_rabbitmq() -> None:
    if shutil.which("rabbitmq-server"):
        subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)


def ensure(settings: Settings, timeout: float = 60.0) -> None:
    checks = [
        ("PostgreSQL", settings.database_url, postgres_answers, _start_local_postgres),
        ("RabbitMQ", settings.amqp_url, rabbitmq_answers, _start_local_rabbitmq),
    ]
    for name, url, answers, start_local in checks:
        if answers(settings):
            continue
        host = make_url(url).host if name == "PostgreSQL" else pika.URLParameters(url).host
        if host not in LOCAL_HOSTS:
            raise BackingServiceDown(f"{name} at {host} does not answer")
        start_local()
        try:
            wait_until(lambda: answers(settings), timeout, interval=0.5, what=f"{name} to answer")
        except WaitTimeout:
            raise BackingServiceDown(f"{name} on this machine does not answer and could not be started") from None
    ensure_database(settings.database_url)
