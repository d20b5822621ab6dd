"""`cqrs-demo doctor`, on fakes: every failure names what is wrong and prints the command that fixes it."""

from __future__ import annotations

import subprocess

import pytest

from cqrs_demo.config import Settings
from cqrs_demo.runtime import doctor
from cqrs_demo.runtime.doctor import machine, servers
from cqrs_demo.runtime.doctor.finding import FAILED, OK, WARNING, Finding, failed, ok, warning
from cqrs_demo.runtime.doctor.servers import LoginRefused, NotPermitted, Unreachable

LOCAL = Settings()
REMOTE = Settings(database_url="postgresql+psycopg://teacher:secret@db.example:5432/course",
                  amqp_url="amqp://teacher:secret@mq.example:5672/class", mongo_url="mongodb://mongo.example:27017/")
GIB = 1024**3


def raising(exc):
    def probe(settings):
        raise exc
    return probe


def assert_fails_with_fix(finding: Finding, *fix_words: str) -> None:
    assert finding.status == FAILED, finding
    for word in fix_words:
        assert word in finding.fix, finding.fix
    assert f"fix: {finding.fix}" in finding.text()


# -- the machine ------------------------------------------------------------------------------


def test_an_old_python_fails_with_how_to_get_a_new_one():
    assert_fails_with_fix(machine.check_python(LOCAL, version=(3, 10, 12)), "python3.11", "make clean install")
    assert machine.check_python(LOCAL, version=(3, 11, 0)).status == OK


def test_outside_a_virtualenv_or_without_the_lab_packages_fails_with_make_install():
    assert_fails_with_fix(machine.check_virtualenv(LOCAL, prefix="/usr", base_prefix="/usr"), "make install")
    missing = machine.check_virtualenv(LOCAL, prefix="/v", base_prefix="/usr",
                                       find_spec=lambda name: None if name == "ipywidgets" else object())
    assert_fails_with_fix(missing, "make install")
    assert "ipywidgets" in missing.detail
    assert machine.check_virtualenv(LOCAL, prefix="/v", base_prefix="/usr", find_spec=lambda name: object()).status == OK


def test_no_free_port_fails_and_a_busy_default_port_warns():
    def no_port():
        raise OSError("no ports")

    assert_fails_with_fix(machine.check_ports(LOCAL, any_free_port=no_port), "ip_local_port_range")
    busy = machine.check_ports(LOCAL, port_is_free=lambda host, port: port != 8081, any_free_port=lambda: 40000)
    assert busy.status == WARNING and "8081" in busy.detail and "ss -ltnp 'sport = :8081'" in busy.fix


@pytest.mark.parametrize("free, status", [(0.5 * GIB, FAILED), (3 * GIB, WARNING), (50 * GIB, OK)])
def test_disk_space(tmp_path, free, status):
    class Usage:
        def __init__(self, path):
            self.free = free

    finding = machine.check_disk(LOCAL.with_(run_dir=tmp_path / "not" / "yet"), usage=Usage)
    assert finding.status == status and str(tmp_path) in finding.detail
    if status != OK:
        assert "make clean" in finding.fix and "cqrs-demo class reset" in finding.fix


def test_a_missing_kernel_fails_with_the_install_command():
    assert_fails_with_fix(machine.check_kernel(LOCAL, kernel_argv=lambda: None), "ipykernel install", "--name python3")


def test_a_kernel_that_cannot_import_the_workbench_fails_saying_why():
    def run(argv, **kwargs):
        assert argv[0] == "/usr/bin/python3.9"
        return subprocess.CompletedProcess(argv, 1, "", "Traceback...\nModuleNotFoundError: No module named 'cqrs_demo'")

    finding = machine.check_kernel(LOCAL, kernel_argv=lambda: ["/usr/bin/python3.9", "-m", "ipykernel_launcher"], run=run)
    assert_fails_with_fix(finding, "ipykernel install")
    assert "/usr/bin/python3.9" in finding.detail and "No module named 'cqrs_demo'" in finding.detail


def test_a_bare_python_kernel_runs_the_servers_own_interpreter():
    seen = []

    def run(argv, **kwargs):
        seen.append(argv[0])
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert machine.check_kernel(LOCAL, kernel_argv=lambda: ["python", "-m", "ipykernel_launcher"], run=run).status == OK
    assert seen == [machine.sys.executable]


def test_chromium_is_optional_a_warning_with_the_install_command():
    missing = machine.check_chromium(LOCAL, find=lambda explicit: None, explicit="")
    assert missing.status == WARNING and missing.fix == "apt-get install chromium"
    no_driver = machine.check_chromium(LOCAL, find=lambda explicit: "/usr/bin/chromium",
                                       find_spec=lambda name: None, explicit="")
    assert no_driver.status == WARNING and "Playwright" in no_driver.detail and "make install" in no_driver.fix


# -- the servers ------------------------------------------------------------------------------


def test_postgresql_down_here_fails_with_the_start_command():
    finding = servers.check_postgresql(LOCAL, probe=raising(Unreachable("connection refused")),
                                       start_command=lambda: "pg_ctlcluster 15 main start")
    assert_fails_with_fix(finding, "pg_ctlcluster 15 main start")
    assert "connection refused" in finding.detail


def test_postgresql_elsewhere_fails_with_what_to_check_and_no_password_shown():
    finding = servers.check_postgresql(REMOTE, probe=raising(Unreachable("timeout")))
    assert_fails_with_fix(finding, "CQRS_DATABASE_URL", "db.example")
    assert "secret" not in finding.text()


def test_postgresql_refusing_the_login_or_a_schema_fails_with_the_grant():
    assert_fails_with_fix(servers.check_postgresql(REMOTE, probe=raising(LoginRefused("password authentication failed"))),
                          "createuser --pwprompt teacher")
    assert_fails_with_fix(servers.check_postgresql(REMOTE, probe=raising(NotPermitted("cannot create a schema"))),
                          'GRANT CREATE ON DATABASE "course" TO "teacher"')


def test_rabbitmq_failures_each_with_their_fix():
    assert_fails_with_fix(servers.check_rabbitmq(LOCAL, probe=raising(Unreachable("refused"))), "rabbitmq-server -detached")
    assert_fails_with_fix(servers.check_rabbitmq(REMOTE, probe=raising(Unreachable("refused"))), "CQRS_AMQP_URL", "mq.example:5672")
    assert_fails_with_fix(servers.check_rabbitmq(REMOTE, probe=raising(LoginRefused("cannot log in"))),
                          "rabbitmqctl add_user teacher")
    refused = servers.check_rabbitmq(REMOTE, probe=raising(NotPermitted("cannot declare an exchange")))
    assert_fails_with_fix(refused, "rabbitmqctl set_permissions -p 'class' teacher '.*' '.*' '.*'")
    assert "secret" not in refused.text()


def test_mongodb_failures_each_with_their_fix():
    assert_fails_with_fix(servers.check_mongodb(REMOTE, probe=raising(Unreachable("timed out"))), "CQRS_MONGO_URL")
    assert_fails_with_fix(servers.check_mongodb(LOCAL, probe=raising(Unreachable("nx-27017 is not installed"))),
                          "make install")
    assert_fails_with_fix(servers.check_mongodb(REMOTE, probe=raising(NotPermitted("not authorized"))), "grantRolesToUser")


def test_servers_that_answer_are_ok():
    assert servers.check_postgresql(LOCAL, probe=lambda s: "15.2").status == OK
    assert servers.check_rabbitmq(LOCAL, probe=lambda s: None).status == OK
    assert servers.check_mongodb(LOCAL, probe=lambda s: None).status == OK


# -- the verdict ------------------------------------------------------------------------------


def test_any_failure_exits_non_zero_and_warnings_alone_do_not():
    said: list[str] = []
    checks = (lambda s: ok("a", "fine"), lambda s: warning("b", "meh", "do b"), lambda s: failed("c", "broken", "do c"))
    assert doctor.run_checks(LOCAL, said.append, checks) == 1
    text = "\n".join(said)
    assert "fix: do b" in text and "fix: do c" in text and "not ready: c failed" in text
    said.clear()
    assert doctor.run_checks(LOCAL, said.append, checks[:2]) == 0
    assert "ready for class (warnings: b)" in said[-1]


def test_every_check_is_run_in_order():
    names = [check.__name__ for check in doctor.CHECKS]
    assert names == ["check_python", "check_virtualenv", "check_postgresql", "check_rabbitmq", "check_mongodb",
                     "check_ports", "check_disk", "check_kernel", "check_chromium"]
