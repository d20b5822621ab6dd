"""The deployables agree with the code.

docker-compose.yml, services/Dockerfile and environment.yml cannot be run here (no Docker engine,
no conda), so this checks what can be checked without running them: every setting compose hands
a process is one that `cqrs_demo.config` declares and gives the value the process
needs; every process is started with a command line that `cqrs-demo` accepts; the seed's host
ports are published; and the image and the conda environment install the locked versions
(tests/unit/test_lock.py checks the locks themselves against pyproject.toml).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pika
import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pymongo.uri_parser import parse_uri
from sqlalchemy.engine import make_url

from cqrs_demo import config
from cqrs_demo.runtime import cli
from cqrs_demo.runtime.serve import SERVICES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENVIRONMENT_FILE = ROOT / "environment.yml"
DOCKERFILE = ROOT / "services" / "Dockerfile"
LOCK = "requirements.lock"
SERVICES_LOCK = "services/requirements.lock"
SERVICES_README = ROOT / "services" / "README.md"

HTTP_SERVICES = {"command": "command_port", "query": "query_port"}
BACKING_SERVICES = ("postgres", "mongo", "rabbitmq")
# The seed README's host ports: command, query, PostgreSQL, MongoDB, RabbitMQ AMQP and UI.
SEED_PORTS = {
    ("command", 8080): 8080,
    ("query", 8081): 8081,
    ("postgres", 5432): 5432,
    ("mongo", 27018): 27017,
    ("rabbitmq", 5671): 5672,
    ("rabbitmq", 15671): 15672,
}


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def conda_env() -> dict:
    return yaml.safe_load(ENVIRONMENT_FILE.read_text())


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    # YAML turns 8080 into an int; compose hands every value to the process as a string.
    return {key: str(value) for key, value in env.items()}


def _published(service: dict) -> dict[int, int]:
    """host port -> container port, from the short "HOST:CONTAINER" or the long form."""
    published = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            published[int(entry["published"])] = int(entry["target"])
        else:
            parts = str(entry).split("/")[0].split(":")
            assert len(parts) >= 2, f"port {entry!r} publishes no fixed host port"
            published[int(parts[-2])] = int(parts[-1])
    return published


# --- docker-compose.yml ---------------------------------------------------------------------


def test_compose_runs_the_backing_services_and_every_process(services):
    assert set(BACKING_SERVICES) <= set(services)
    assert set(SERVICES) <= set(services), "every process of cqrs_demo.runtime.serve needs a service"
    assert services["mongo"]["image"] == "mongo:7"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"


@pytest.mark.parametrize("name", SERVICES)
def test_each_process_runs_cqrs_demo_serve_with_its_own_name(services, name):
    command = services[name]["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    assert command == ["cqrs-demo", "serve", name]
    assert command[2] in SERVICES
    # The command line is one the real CLI accepts, and it reaches `serve`.
    args = cli.parser().parse_args(command[1:])
    assert args.service == name
    assert args.run is cli.cmd_serve


def test_the_console_script_in_the_commands_is_the_packaged_one(pyproject):
    assert pyproject["project"]["scripts"]["cqrs-demo"] == "cqrs_demo.runtime.cli:main"


@pytest.mark.parametrize("name", SERVICES)
def test_each_process_is_built_from_the_services_dockerfile(services, name):
    build = services[name]["build"]
    context = ROOT / build["context"]
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert services[name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", SERVICES)
def test_every_cqrs_variable_in_compose_is_read_by_config(services, name):
    env = _environment(services[name])
    used = {key for key in env if key.startswith("CQRS_")}
    assert used, f"{name} sets no CQRS_* variable"
    unknown = used - set(config.variables())
    assert not unknown, f"{name} sets variables that cqrs_demo.config never reads: {sorted(unknown)}"


@pytest.mark.parametrize("name", SERVICES)
def test_compose_environment_gives_the_settings_each_process_needs(services, name):
    env = _environment(services[name])
    settings = config.from_environment(env)

    assert settings.namespace == "cqrs"
    assert settings.database_url == env["CQRS_DATABASE_URL"]
    assert settings.amqp_url == env["CQRS_AMQP_URL"]
    assert settings.mongo_url == env["CQRS_MONGO_URL"]

    database = make_url(settings.database_url)
    assert database.drivername == "postgresql+psycopg"
    assert (database.host, database.port or 5432) == ("postgres", 5432)
    postgres_env = _environment(services["postgres"])
    assert database.username == postgres_env.get("POSTGRES_USER", "postgres")
    if postgres_env.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        assert database.password == postgres_env["POSTGRES_PASSWORD"]
    if "POSTGRES_DB" in postgres_env:
        assert database.database == postgres_env["POSTGRES_DB"]

    amqp = pika.URLParameters(settings.amqp_url)
    assert (amqp.host, amqp.port, amqp.virtual_host) == ("rabbitmq", 5672, "/")
    assert (amqp.credentials.username, amqp.credentials.password) == ("guest", "guest")

    assert parse_uri(settings.mongo_url)["nodelist"] == [("mongo", 27017)]

    if name in ("query", "projector"):
        # Without a Mongo URL, `cqrs-demo serve` looks for a stand-in started by `cqrs-demo up`,
        # which never exists in a container.
        assert settings.mongo_url


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_http_processes_listen_on_every_interface_on_their_published_port(services, name):
    settings = config.from_environment(_environment(services[name]))
    assert settings.host == "0.0.0.0"
    port = getattr(settings, HTTP_SERVICES[name])
    assert port in _published(services[name]).values()


def test_the_seed_host_ports_are_published(services):
    for (service, host_port), container_port in SEED_PORTS.items():
        published = _published(services[service])
        assert published.get(host_port) == container_port, (
            f"{service} should publish host port {host_port} to container port {container_port}, "
            f"publishes {published}"
        )
    everything = {port for service in services.values() for port in _published(service)}
    assert {host for _, host in SEED_PORTS} <= everything


@pytest.mark.parametrize("name", SERVICES)
def test_processes_wait_for_healthy_backing_services(services, name):
    depends_on = services[name]["depends_on"]
    assert isinstance(depends_on, dict), "the list form of depends_on cannot wait for health"
    assert depends_on, f"{name} depends on nothing"
    for dependency, condition in depends_on.items():
        assert condition["condition"] == "service_healthy"
        assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck to wait for"


@pytest.mark.parametrize(
    "name, words",
    [("postgres", ["pg_isready"]), ("mongo", ["mongosh", "ping"]), ("rabbitmq", ["rabbitmq-diagnostics", "ping"])],
)
def test_backing_services_have_healthchecks(services, name, words):
    test = services[name]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    for word in words:
        assert word in text


# --- services/Dockerfile --------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_default_command_is_a_cqrs_demo_serve_command():
    cmds = [rest for keyword, rest in _instructions() if keyword == "CMD"]
    assert len(cmds) == 1
    command = json.loads(cmds[0])  # the exec form, so signals reach the process
    assert command[:2] == ["cqrs-demo", "serve"]
    assert command[2] in SERVICES
    assert cli.parser().parse_args(command[1:]).service == command[2]


def test_dockerfile_installs_the_package_as_a_non_root_user(pyproject):
    instructions = _instructions()
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert froms == ["python:3.11-slim"]
    assert "3.11" in SpecifierSet(pyproject["project"]["requires-python"])

    copied = {word.rstrip("/") for keyword, rest in instructions if keyword == "COPY" for word in rest.split()}
    assert {"pyproject.toml", "cqrs_demo"} <= copied
    readme = pyproject["project"].get("readme")
    if readme:
        assert readme in copied, "pyproject.toml names a readme, so `pip install .` needs it copied"

    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_dockerfile_installs_the_locked_runtime_packages_then_the_project_alone():
    instructions = _instructions()
    runs = [(index, rest) for index, (keyword, rest) in enumerate(instructions) if keyword == "RUN"]
    copies = [(index, rest.split()) for index, (keyword, rest) in enumerate(instructions) if keyword == "COPY"]

    from_lock = [index for index, rest in runs if re.search(rf"pip install .*-r {re.escape(SERVICES_LOCK)}\b", rest)]
    assert from_lock, f"the image does not install {SERVICES_LOCK}"
    assert "--require-hashes" in instructions[from_lock[0]][1]
    lock_copied = [index for index, words in copies  # sources are all words but the last
                   if {SERVICES_LOCK, "services"} & {word.rstrip("/") for word in words[:-1]}]
    assert lock_copied and lock_copied[0] < from_lock[0], f"{SERVICES_LOCK} must be copied before it is installed"

    project = [index for index, rest in runs if re.search(r"pip install (.* )?\.(\s|$)", rest)]
    assert project, "the image does not install the project"
    assert "--no-deps" in instructions[project[0]][1], "the project's install must not resolve its dependencies again"
    assert from_lock[0] < project[0]


def test_services_readme_lists_every_command_line():
    text = SERVICES_README.read_text()
    for name in SERVICES:
        assert f"cqrs-demo serve {name}" in text


# --- environment.yml ------------------------------------------------------------------------


def test_environment_is_the_named_python_311_environment(conda_env):
    assert conda_env["name"] == "cqrs-workbench"
    assert "conda-forge" in conda_env["channels"]
    conda_packages = [entry for entry in conda_env["dependencies"] if isinstance(entry, str)]
    assert sorted(conda_packages) == ["pip", "python=3.11"], (
        "every package but Python comes from the lock; a conda package would be a second, unpinned copy"
    )


def test_environment_installs_the_lock_and_says_how_to_add_the_project(conda_env):
    pip_sections = [entry["pip"] for entry in conda_env["dependencies"] if isinstance(entry, dict)]
    assert pip_sections == [[f"-r {LOCK}"]]
    # The lock is hash-checked, and pip refuses a local directory in such an install: the project
    # (and its console script) is a second command, which the file's header must give.
    assert "pip install --no-deps -e ." in ENVIRONMENT_FILE.read_text()
