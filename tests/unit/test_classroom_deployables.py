"""The classroom's deployables agree with each other and with the code.

classroom/docker-compose.classroom.yml cannot run here (no Docker engine), so this checks what can
be checked without running it: the images, the shared servers' URLs every student's server gets
(read through classroom/jupyterhub_config.py, loaded as JupyterHub loads it, with the environment
compose gives the hub), the students' image and network named alike on both sides, the idle
culler and its scopes, and the images installing the locked versions.
tests/e2e/test_jupyterhub.py runs the same config file with a real hub.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pika
import pytest
import yaml
from pymongo.uri_parser import parse_uri
from sqlalchemy.engine import make_url
from traitlets.config.loader import PyFileConfigLoader

from cqrs_demo import config

ROOT = Path(__file__).resolve().parents[2]
CLASSROOM = ROOT / "classroom"
COMPOSE_FILE = CLASSROOM / "docker-compose.classroom.yml"
HUB_DOCKERFILE = CLASSROOM / "hub.Dockerfile"
SINGLEUSER_DOCKERFILE = CLASSROOM / "singleuser.Dockerfile"
SHARED = ("CQRS_DATABASE_URL", "CQRS_AMQP_URL", "CQRS_MONGO_URL")
# What an instructor would type for the variables compose requires.
GIVEN = {"CLASSROOM_PASSWORD": "a-class-password", "CLASSROOM_ADMIN_PASSWORD": "x" * 32}


def interpolate(value: str, given: dict[str, str]) -> str:
    """Compose's `${NAME:-default}` and `${NAME:?message}`, with `given` as the shell's variables."""
    def one(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2), match.group(3)
        if given.get(name):
            return given[name]
        if operator == ":?":
            raise AssertionError(f"compose would stop: {rest}")
        return rest or ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, str(value))


@pytest.fixture(scope="module")
def services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def hub_env(services) -> dict[str, str]:
    return {key: interpolate(value, GIVEN) for key, value in services["hub"]["environment"].items()}


@pytest.fixture
def hub_config(hub_env, monkeypatch):
    """classroom/jupyterhub_config.py as JupyterHub reads it, in the hub container's environment."""
    for name in [name for name in os.environ if name.startswith(("CQRS_", "CLASSROOM_"))]:
        monkeypatch.delenv(name)
    for name, value in hub_env.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader("jupyterhub_config.py", path=str(CLASSROOM)).load_config()


def test_compose_runs_the_hub_with_mongo_7_postgres_and_rabbitmq(services):
    assert services["mongo"]["image"] == "mongo:7"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert (CLASSROOM / services["hub"]["build"]["context"] / services["hub"]["build"]["dockerfile"]).resolve() \
        == HUB_DOCKERFILE
    single = services["singleuser"]["build"]
    assert (CLASSROOM / single["context"] / single["dockerfile"]).resolve() == SINGLEUSER_DOCKERFILE
    assert "8000:8000" in services["hub"]["ports"]


def test_the_hub_waits_for_healthy_servers_and_the_students_image(services):
    depends_on = services["hub"]["depends_on"]
    for name in ("postgres", "mongo", "rabbitmq"):
        assert depends_on[name]["condition"] == "service_healthy"
        assert "healthcheck" in services[name]
    assert depends_on["singleuser"]["condition"] == "service_completed_successfully"


def test_the_hub_reaches_docker_to_start_the_students_containers(services):
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["hub"]["volumes"]


def test_the_class_password_must_be_given(services):
    with pytest.raises(AssertionError, match="CLASSROOM_PASSWORD"):
        interpolate(services["hub"]["environment"]["CLASSROOM_PASSWORD"], {})


def test_every_student_server_gets_the_shared_servers(hub_config, hub_env):
    environment = hub_config.Spawner.environment
    assert {name: environment[name] for name in SHARED} == {name: hub_env[name] for name in SHARED}
    unknown = {name for name in environment if name.startswith("CQRS_")} - set(config.variables())
    assert not unknown, f"variables cqrs_demo.config never reads: {unknown}"


def test_the_shared_servers_are_the_compose_services(hub_env, services):
    settings = config.from_environment({name: hub_env[name] for name in SHARED})
    database = make_url(settings.database_url)
    assert database.drivername == "postgresql+psycopg"
    assert (database.host, database.port or 5432, database.database) == ("postgres", 5432, "cqrs")
    postgres = services["postgres"]["environment"]
    assert (database.username, database.password) == (postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"])
    amqp = pika.URLParameters(settings.amqp_url)
    assert (amqp.host, amqp.port, amqp.virtual_host) == ("rabbitmq", 5672, "/")
    assert parse_uri(settings.mongo_url)["nodelist"] == [("mongo", 27017)]


def test_the_students_containers_are_the_image_compose_builds_on_its_network(hub_config, compose, services):
    assert hub_config.JupyterHub.spawner_class == "docker"
    assert hub_config.DockerSpawner.image == services["singleuser"]["image"]
    networks = {network.get("name", key) for key, network in compose["networks"].items()}
    assert hub_config.DockerSpawner.network_name in networks
    for name in ("postgres", "mongo", "rabbitmq", "hub"):
        assert set(services[name]["networks"]) == set(compose["networks"]), f"{name} is not on the class network"
    assert hub_config.JupyterHub.hub_connect_ip == "hub"


def test_each_server_starts_by_handing_out_the_course_the_image_holds(hub_config):
    command = hub_config.Spawner.cmd
    assert command[:3] == ["python", "-m", "cqrs_demo.course.handout"]
    assert command[command.index("--") + 1:] == ["jupyterhub-singleuser"]
    course = command[3]
    assert f"cqrs_demo.course.edition notebooks {course}" in SINGLEUSER_DOCKERFILE.read_text()


def test_resource_limits_come_from_the_environment(hub_config, hub_env):
    assert hub_config.Spawner.mem_limit == hub_env["CLASSROOM_MEM_LIMIT"]
    assert hub_config.Spawner.cpu_limit == float(hub_env["CLASSROOM_CPU_LIMIT"])


def test_the_idle_culler_runs_with_the_scopes_it_needs(hub_config, hub_env):
    [culler] = [service for service in hub_config.JupyterHub.services if service["name"] == "idle-culler"]
    assert culler["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    assert f"--timeout={hub_env['CLASSROOM_IDLE_SECONDS']}" in culler["command"]
    [role] = [role for role in hub_config.JupyterHub.load_roles if "idle-culler" in role.get("services", [])]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}


def test_students_sign_in_with_the_class_password(hub_config, hub_env):
    assert hub_config.JupyterHub.authenticator_class == "shared-password"
    assert hub_config.SharedPasswordAuthenticator.user_password == hub_env["CLASSROOM_PASSWORD"]
    assert hub_config.Authenticator.admin_users == {"instructor"}


def _runs(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_the_students_image_installs_the_lock_then_the_project_alone():
    runs = _runs(SINGLEUSER_DOCKERFILE)
    lock = next(i for i, run in enumerate(runs) if "-r requirements.lock" in run)
    assert "--require-hashes" in runs[lock]
    project = next(i for i, run in enumerate(runs) if re.search(r"pip install --no-deps \.(\s|$)", run))
    assert lock < project
    users = re.findall(r"^USER (\S+)", SINGLEUSER_DOCKERFILE.read_text(), re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_the_hub_image_installs_its_lock_and_the_proxy_from_the_node_lock():
    runs = _runs(HUB_DOCKERFILE)
    assert any("--require-hashes -r /opt/hub/hub-requirements.lock" in run for run in runs)
    assert any(run.startswith("npm ci") for run in runs)
    text = HUB_DOCKERFILE.read_text()
    assert "COPY classroom/hub-requirements.lock" in text
    assert "COPY node/package.json node/package-lock.json" in text
