"""`cqrs-demo doctor`: is this machine ready for a class? Every check, and the command that fixes each failure.

Checks run in order (`CHECKS`); each returns a `Finding`: ok, a warning (something optional is
missing: the browser test's Chromium, a busy default port) or failed (something a class needs).
The doctor exits 1 when any required check failed. A check never leaves anything behind: the
schema, exchange and database it creates to test permissions are removed again.
"""

from __future__ import annotations

from typing import Callable

from cqrs_demo.config import Settings
from cqrs_demo.runtime.doctor import machine, servers
from cqrs_demo.runtime.doctor.finding import FAILED, WARNING, Finding

CHECKS: tuple[Callable[[Settings], Finding], ...] = (
    machine.check_python,
    machine.check_virtualenv,
    servers.check_postgresql,
    servers.check_rabbitmq,
    servers.check_mongodb,
    machine.check_ports,
    machine.check_disk,
    machine.check_kernel,
    machine.check_chromium,
)


def run_checks(settings: Settings, say: Callable[[str], None] = print,
               checks: tuple[Callable[[Settings], Finding], ...] = CHECKS) -> int:
    """Run every check, print each finding as it comes; 0 when nothing required failed, else 1."""
    findings = []
    for check in checks:
        finding = check(settings)
        findings.append(finding)
        say(finding.text())
    failed = [f.check for f in findings if f.status == FAILED]
    warned = [f.check for f in findings if f.status == WARNING]
    if failed:
        say(f"\nnot ready: {', '.join(failed)} failed. Run the fix shown under each, then `cqrs-demo doctor` again.")
        return 1
    say("\nready for class" + (f" (warnings: {', '.join(warned)})" if warned else "") + ".")
    return 0
