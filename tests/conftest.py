"""Fixtures shared by every test layer.

The servers start once per session: PostgreSQL and RabbitMQ are the machine's own (started if
they are down), the MongoDB stand-in is started here on a free port. Each test gets a fresh
namespace, so tests never see each other's rows, queues or documents, and everything a test's
namespace created is removed after it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from cqrs_demo.config import Settings, from_environment
from support import Background, remove_namespace


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory) -> Settings:
    # The root conftest names the tests' database (CQRS_TEST_DATABASE_URL).
    return from_environment().with_(database_url=os.environ["CQRS_TEST_DATABASE_URL"],
                                    run_dir=tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def mongo_url(base_settings, tmp_path_factory):
    """A real MongoDB URL from CQRS_TEST_MONGO_URL, or a stand-in started for this session."""
    if os.environ.get("CQRS_TEST_MONGO_URL"):
        yield os.environ["CQRS_TEST_MONGO_URL"]
        return
    from cqrs_demo.runtime import backing
    from cqrs_demo.runtime.standin import MongoStandIn

    backing.ensure(base_settings)
    standin = MongoStandIn(tmp_path_factory.mktemp("mongo"), in_memory=True).start()
    yield standin.url
    standin.stop()


@pytest.fixture
def settings(base_settings, mongo_url) -> Settings:
    namespace = "t_" + uuid.uuid4().hex[:12]
    settings = base_settings.with_(namespace=namespace, mongo_url=mongo_url, read_wait_seconds=2.0)
    yield settings
    remove_namespace(settings)


@pytest.fixture
def command_client(settings):
    from cqrs_demo.write.app import create_app

    app = create_app(settings)
    yield app.test_client()
    app.extensions["cqrs"]["engine"].dispose()


@pytest.fixture
def query_client(settings):
    from cqrs_demo.read.app import create_app

    app = create_app(settings)
    yield app.test_client()
    app.extensions["cqrs"]["watch"].close()  # its subscription to the projector's notices


@pytest.fixture
def pipeline(settings):
    """A relay and a projector running in this process, against the real servers."""
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    workers = [Background("relay", OutboxRelay(settings)).start(), Background("projector", Projector(settings)).start()]
    yield {worker.name: worker.worker for worker in workers}
    for worker in workers:
        worker.halt()


@pytest.fixture
def broker(settings):
    """The namespace's exchange and dead-letter queue, as a test publishes to and reads them."""
    from support import Broker

    b = Broker(settings)
    yield b
    b.close()


@pytest.fixture
def read_db(settings):
    from cqrs_demo.connections import mongo_client

    with mongo_client(settings) as client:
        yield client[settings.mongo_database]


@pytest.fixture
def write_engine(settings):
    from cqrs_demo.connections import write_engine
    from cqrs_demo.write.schema import create_schema

    engine = write_engine(settings)
    create_schema(settings, engine)
    yield engine
    engine.dispose()


@pytest.fixture
def stack(settings):
    """The whole stack as separate processes on free ports, as `cqrs-demo up` starts it."""
    from cqrs_demo.runtime.ports import free_port
    from cqrs_demo.runtime.stack import Stack, StackError

    for attempt in range(3):
        try:
            stack = Stack(settings.with_(command_port=free_port(), query_port=free_port())).start()
            break
        except StackError as error:
            # A free port can be taken by another process between being found and being bound.
            if attempt == 2 or not _lost_its_port(settings):
                raise error
    yield stack
    stack.stop()


def _lost_its_port(settings) -> bool:
    logs = settings.stack_dir.glob("*.log")
    return any("Address already in use" in log.read_text(errors="replace") for log in logs)


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parent
    for item in items:
        if root / "unit" not in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
