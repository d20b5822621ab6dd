"""The doctor's checks of the servers: reachable with the configured URLs, and letting us do our job.

Each check runs a probe (real I/O, raising `Unreachable` or `NotPermitted`) and turns what it
raised into a finding with the command that fixes it. Probes clean up after themselves: the
PostgreSQL schema is created in a transaction that is rolled back, the exchange is deleted, the
Mongo database dropped, the stand-in stopped.
"""

from __future__ import annotations

import glob
import os
import tempfile
import uuid
from urllib.parse import quote

import pika
import pika.exceptions
import pymongo.errors
from pymongo.uri_parser import parse_uri
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_parameters, ensure_database, mongo_client
from cqrs_demo.runtime.backing import LOCAL_HOSTS
from cqrs_demo.runtime.doctor.finding import Finding, failed, ok
from cqrs_demo.runtime.doctor.machine import REINSTALL
from cqrs_demo.runtime.standin import MongoStandIn

CONNECT_TIMEOUT = 5


class Unreachable(Exception):
    """The server does not answer at the configured URL (or refuses the credentials in it)."""


class NotPermitted(Exception):
    """The server answers, but does not let the configured user do something the stack needs."""


class LoginRefused(NotPermitted):
    """The server answers, but refuses the user or password in the URL."""


def _probe_name() -> str:
    return "doctor_" + uuid.uuid4().hex[:10]


# -- PostgreSQL ---------------------------------------------------------------------------------


def probe_postgresql(settings: Settings) -> str:
    url = make_url(settings.database_url)
    engine = sa.create_engine(url.set(database="postgres"), connect_args={"connect_timeout": CONNECT_TIMEOUT})
    try:
        with engine.connect() as conn:
            version = conn.scalar(sa.text("SHOW server_version"))
    except sa.exc.OperationalError as exc:
        message = str(exc.orig).strip().splitlines()[0]
        if "authentication failed" in message or ("role" in message and "does not exist" in message):
            raise LoginRefused(message) from None
        raise Unreachable(message) from None
    finally:
        engine.dispose()
    try:
        ensure_database(settings.database_url)
    except sa.exc.ProgrammingError as exc:
        raise NotPermitted(f"cannot create the database {url.database!r}: {str(exc.orig).splitlines()[0]}") from None
    engine = sa.create_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT})
    schema = _probe_name()
    try:
        with engine.connect() as conn:  # rolled back at the end of the block: nothing stays
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(sa.text(f'CREATE TABLE "{schema}".probe (id bigint PRIMARY KEY)'))
            conn.rollback()
    except sa.exc.ProgrammingError as exc:
        raise NotPermitted(f"cannot create a schema in {url.database!r}: {str(exc.orig).splitlines()[0]}") from None
    finally:
        engine.dispose()
    return version


def _postgres_start_command() -> str:
    clusters = sorted(os.path.basename(path) for path in glob.glob("/etc/postgresql/*"))
    return f"pg_ctlcluster {clusters[-1]} main start" if clusters else "apt-get install postgresql"


def check_postgresql(settings: Settings, probe=probe_postgresql, start_command=_postgres_start_command) -> Finding:
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    try:
        version = probe(settings)
    except Unreachable as exc:
        fix = f"{start_command()} (if it runs, check the port in CQRS_DATABASE_URL)" if url.host in LOCAL_HOSTS else (
            f"check CQRS_DATABASE_URL and that {url.host} accepts connections from this machine")
        return failed("PostgreSQL", f"{shown} does not answer: {exc}", fix)
    except LoginRefused as exc:
        return failed("PostgreSQL", f"{shown}: {exc}",
                      f"as a superuser: createuser --pwprompt {url.username or 'postgres'}; "
                      "or fix the user and password in CQRS_DATABASE_URL")
    except NotPermitted as exc:
        user = url.username or "postgres"
        return failed("PostgreSQL", f"{shown}: {exc}",
                      f"as a superuser: createdb -O {user} {url.database}, or "
                      f"psql -c 'GRANT CREATE ON DATABASE \"{url.database}\" TO \"{user}\"'")
    return ok("PostgreSQL", f"{shown} (server {version}): can create a schema")


# -- RabbitMQ -----------------------------------------------------------------------------------


def probe_rabbitmq(settings: Settings) -> None:
    params = amqp_parameters(settings)
    params.socket_timeout = params.blocked_connection_timeout = CONNECT_TIMEOUT
    try:
        connection = pika.BlockingConnection(params)
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
        raise LoginRefused(f"the user {params.credentials.username!r} cannot log in (wrong user or password)") from None
    except pika.exceptions.ProbableAccessDeniedError:
        raise NotPermitted(f"the user {params.credentials.username!r} has no access to the virtual host "
                           f"{params.virtual_host!r}") from None
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise Unreachable(repr(exc)) from None
    exchange = _probe_name()
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange, exchange_type="topic", auto_delete=True)
        channel.exchange_delete(exchange)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise NotPermitted(f"cannot declare an exchange: {exc.reply_text}") from None
    finally:
        if connection.is_open:
            connection.close()


def _safe_amqp(url: str) -> str:
    params = pika.URLParameters(url)
    return f"amqp://{params.credentials.username}:***@{params.host}:{params.port}/{quote(params.virtual_host, safe='')}"


def check_rabbitmq(settings: Settings, probe=probe_rabbitmq) -> Finding:
    params = pika.URLParameters(settings.amqp_url)
    shown = _safe_amqp(settings.amqp_url)
    permissions = f"rabbitmqctl set_permissions -p '{params.virtual_host}' {params.credentials.username} '.*' '.*' '.*'"
    try:
        probe(settings)
    except Unreachable as exc:
        fix = "rabbitmq-server -detached" if params.host in LOCAL_HOSTS else (
            f"check CQRS_AMQP_URL and that {params.host}:{params.port} accepts connections from this machine")
        return failed("RabbitMQ", f"{shown} does not answer: {exc}", fix)
    except LoginRefused as exc:
        return failed("RabbitMQ", f"{shown}: {exc}",
                      f"rabbitmqctl add_user {params.credentials.username} PASSWORD, then {permissions}; "
                      "or fix the user and password in CQRS_AMQP_URL")
    except NotPermitted as exc:
        return failed("RabbitMQ", f"{shown}: {exc}", permissions)
    return ok("RabbitMQ", f"{shown}: can declare an exchange")


# -- MongoDB ------------------------------------------------------------------------------------


def probe_mongodb(settings: Settings) -> str | None:
    """The configured MongoDB, or (without CQRS_MONGO_URL) a stand-in started for a moment."""
    if not settings.mongo_url:
        with tempfile.TemporaryDirectory(prefix="cqrs-doctor-") as directory:
            try:
                standin = MongoStandIn(directory, in_memory=True).start(timeout=20)
            except RuntimeError as exc:
                raise Unreachable(str(exc)) from None
            try:
                return _write_and_drop(settings.with_(mongo_url=standin.url))
            finally:
                standin.stop()
    return _write_and_drop(settings)


def _write_and_drop(settings: Settings) -> str | None:
    """The server's version (None if it does not say), once a database was written and dropped."""
    database = _probe_name()
    try:
        with mongo_client(settings, serverSelectionTimeoutMS=CONNECT_TIMEOUT * 1000) as client:
            version = client.server_info().get("version")
            try:
                client[database]["probe"].insert_one({"probe": True})
            finally:
                client.drop_database(database)
    except pymongo.errors.OperationFailure as exc:
        raise NotPermitted(f"cannot write a database: {exc.details.get('errmsg', exc) if exc.details else exc}") from None
    except pymongo.errors.PyMongoError as exc:
        raise Unreachable(str(exc).split(" (configured timeouts")[0]) from None
    return version


def check_mongodb(settings: Settings, probe=probe_mongodb) -> Finding:
    where = "the local stand-in (nx-27017, as CQRS_MONGO_URL is unset)"
    if settings.mongo_url:
        parsed = parse_uri(settings.mongo_url)
        where = "mongodb://" + ",".join(f"{host}:{port}" for host, port in parsed["nodelist"])
    try:
        version = probe(settings)
    except Unreachable as exc:
        fix = ("check CQRS_MONGO_URL, or unset it to use the local stand-in" if settings.mongo_url
               else f"{REINSTALL}   (installs nx-27017, the stand-in)")
        return failed("MongoDB", f"{where} does not answer: {exc}", fix)
    except NotPermitted as exc:
        return failed("MongoDB", f"{where}: {exc}",
                      "give the user in CQRS_MONGO_URL the readWriteAnyDatabase role (mongosh: db.grantRolesToUser)")
    return ok("MongoDB", f"{where}{f' (server {version})' if version else ''}: can write and drop a database")
