"""The settings: declared once, read from an environment, validated, handed to children, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cqrs_demo import config
from cqrs_demo.config import ConfigError, Settings
from cqrs_demo.runtime import cli

README = Path(__file__).resolve().parents[2] / "README.md"

# A value for every setting, none of them its default.
EVERY_SETTING = {
    "CQRS_DATABASE_URL": "postgresql+psycopg://teacher@db.example:5433/course",
    "CQRS_AMQP_URL": "amqp://u:p@mq.example:5673/class",
    "CQRS_MONGO_URL": "mongodb://mongo.example:27018/",
    "CQRS_NAMESPACE": "ada_1",
    "CQRS_STUDENT": "ada@example.org",
    "CQRS_HOST": "0.0.0.0",
    "CQRS_COMMAND_PORT": "9080",
    "CQRS_QUERY_PORT": "9081",
    "CQRS_READ_WAIT_SECONDS": "0.5",
    "CQRS_RELAY_POLL_SECONDS": "0.25",
    "CQRS_RELAY_LISTEN": "false",
    "CQRS_PROJECTOR_PREFETCH": "7",
    "CQRS_PARTITIONS": "3",
    "CQRS_RUN_DIR": "/tmp/elsewhere",
    "CQRS_DELIVERY": "naive",
    "CQRS_PROJECTOR_ACK": "auto",
    "CQRS_PROJECTOR_DEDUP": "false",
    "CQRS_PROJECTION_AUDIT": "true",
    "CQRS_POISON_ATTEMPTS": "5",
    "CQRS_AMQP_HEARTBEAT_SECONDS": "2",
    "CQRS_RELAY_LEASE_SECONDS": "8.0",
    "CQRS_OUTBOX_RETENTION_HOURS": "0.5",
    "CQRS_RELAY_PRUNES_OUTBOX": "false",
    "CQRS_AUDIT_RETENTION_HOURS": "24.0",
    "CQRS_IDEMPOTENCY_KEY_HOURS": "1.0",
    "CQRS_PRODUCT_EVENT_VERSION": "2",
}


def test_an_empty_environment_gives_the_defaults(monkeypatch):
    monkeypatch.setattr(config.getpass, "getuser", lambda: "grace")
    settings = config.from_environment({})
    assert settings == Settings()
    assert settings.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/cqrs"
    assert (settings.namespace, settings.command_port, settings.query_port) == ("cqrs", 8080, 8081)
    assert settings.mongo_url is None and settings.relay_listen and settings.projector_dedup
    assert settings.student == "grace"


def test_every_declared_setting_is_read_from_its_variable():
    assert {config.variable(name) for name in Settings.model_fields} == set(EVERY_SETTING)
    settings = config.from_environment(EVERY_SETTING)
    defaults = config.from_environment({})
    for name in Settings.model_fields:
        assert getattr(settings, name) != getattr(defaults, name), f"{config.variable(name)} was not read"
    assert settings.command_port == 9080 and settings.read_wait_seconds == 0.5
    assert settings.relay_listen is False and settings.run_dir == Path("/tmp/elsewhere")


def test_what_a_parent_exports_a_child_reads_back_unchanged():
    settings = config.from_environment(EVERY_SETTING)
    exported = config.to_environment(settings)
    assert exported == EVERY_SETTING
    assert config.from_environment(exported) == settings
    assert "CQRS_MONGO_URL" not in config.to_environment(settings.with_(mongo_url=None))


def test_an_explicit_mapping_is_read_alone(monkeypatch):
    monkeypatch.setenv("CQRS_NAMESPACE", "from_the_process")
    monkeypatch.setenv("CQRS_STUDENT", "someone")
    assert config.from_environment({}).namespace == "cqrs"
    assert config.from_environment({"CQRS_STUDENT": "ada"}).student == "ada"
    assert config.from_environment().namespace == "from_the_process"


def test_an_empty_value_means_the_default_and_names_ignore_case():
    settings = config.from_environment({"CQRS_MONGO_URL": "", "CQRS_COMMAND_PORT": "", "cqrs_namespace": "low"})
    assert settings.mongo_url is None and settings.command_port == 8080 and settings.namespace == "low"


@pytest.mark.parametrize("word, value", [("1", True), ("yes", True), ("on", True), ("TRUE", True),
                                          ("0", False), ("no", False), ("off", False), ("false", False)])
def test_booleans_take_the_usual_words(word, value):
    assert config.from_environment({"CQRS_RELAY_LISTEN": word}).relay_listen is value


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CQRS_NAMESPACE", "Has-Capitals"),
        ("CQRS_NAMESPACE", "x" * 41),
        ("CQRS_DELIVERY", "carrier-pigeon"),
        ("CQRS_PROJECTOR_ACK", "sometimes"),
        ("CQRS_PROJECTOR_PREFETCH", "0"),
        ("CQRS_COMMAND_PORT", "eighty"),
        ("CQRS_QUERY_PORT", "70000"),
        ("CQRS_READ_WAIT_SECONDS", "soon"),
        ("CQRS_RELAY_LISTEN", "maybe"),
        ("CQRS_POISON_ATTEMPTS", "0"),
    ],
)
def test_a_malformed_value_is_a_config_error_naming_the_variable_and_the_value(variable, value):
    with pytest.raises(ConfigError) as raised:
        config.from_environment({variable: value})
    assert str(raised.value).startswith(f"{variable}: ")
    assert repr(value) in str(raised.value)


def test_every_malformed_value_is_named_at_once():
    with pytest.raises(ConfigError) as raised:
        config.from_environment({"CQRS_DELIVERY": "x", "CQRS_PROJECTOR_PREFETCH": "-1"})
    assert "CQRS_DELIVERY: " in str(raised.value) and "CQRS_PROJECTOR_PREFETCH: " in str(raised.value)


def test_the_student_is_cqrs_student_else_the_jupyterhub_user_else_the_login_name(monkeypatch):
    monkeypatch.setattr(config.getpass, "getuser", lambda: "root")
    assert config.from_environment({}).student == "root"
    assert config.from_environment({"JUPYTERHUB_USER": "ada"}).student == "ada"
    assert config.from_environment({"JUPYTERHUB_USER": "ada", "CQRS_STUDENT": "grace"}).student == "grace"
    assert config.from_environment({"JUPYTERHUB_USER": "", "CQRS_STUDENT": ""}).student == "root"
    # A child is handed the student its parent resolved, whoever runs the child.
    child = config.to_environment(config.from_environment({"JUPYTERHUB_USER": "ada"}))
    assert child["CQRS_STUDENT"] == "ada" and "JUPYTERHUB_USER" not in child


def test_without_a_user_name_the_student_is_the_uid(monkeypatch):
    def no_name():
        raise OSError("no user name")

    monkeypatch.setattr(config.getpass, "getuser", no_name)
    assert re.fullmatch(r"uid\d+", config.from_environment({}).student)


def test_settings_are_immutable_and_with_validates_the_copy():
    settings = config.from_environment({})
    with pytest.raises(ValueError):
        settings.namespace = "other"
    changed = settings.with_(namespace="other", command_port=1234)
    assert (changed.namespace, changed.command_port, settings.namespace) == ("other", 1234, "cqrs")
    with pytest.raises(ConfigError, match="CQRS_NAMESPACE"):
        settings.with_(namespace="Not Valid")
    with pytest.raises(TypeError, match="no field colour"):
        settings.with_(colour="blue")


def test_names_are_derived_from_the_namespace_and_the_delivery():
    settings = config.from_environment({"CQRS_NAMESPACE": "ns", "CQRS_RUN_DIR": "runs"})
    assert (settings.schema, settings.exchange, settings.projector_queue) == ("ns", "ns.events", "ns.projector")
    assert (settings.dead_letter_queue, settings.mongo_database, settings.notify_channel) == (
        "ns.projector.dead", "ns_read", "ns_outbox")
    assert settings.stack_dir == Path("runs/ns")
    assert settings.services == ("command", "query", "relay", "projector")
    naive = settings.with_(delivery="naive")
    assert naive.services == ("command", "query", "projector") and naive.auto_ack
    assert naive.projector_queue == "ns.projector.naive"


def test_cqrs_demo_reports_a_malformed_setting_and_exits_2(monkeypatch, capsys):
    monkeypatch.setenv("CQRS_PROJECTOR_PREFETCH", "0")
    assert cli.main(["status"]) == 2
    assert "CQRS_PROJECTOR_PREFETCH" in capsys.readouterr().err


def _readme_table() -> str:
    text = README.read_text()
    section = text[text.index("## Configuration"):]
    lines = section[section.index("| Variable |"):].splitlines()
    return "\n".join(line for line in lines[: next(i for i, line in enumerate(lines) if not line.startswith("|"))])


def test_the_readme_table_is_the_one_the_declaration_prints(capsys):
    assert config.main(["--markdown"]) == 0
    printed = capsys.readouterr().out.strip()
    assert _readme_table() == printed, (
        "README.md's configuration table differs from the settings; paste `python -m cqrs_demo.config --markdown`"
    )
    for name in Settings.model_fields:
        assert f"| `{config.variable(name)}` |" in printed
