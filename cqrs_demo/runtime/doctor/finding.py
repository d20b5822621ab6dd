"""What one check of `cqrs-demo doctor` found: a status, what it saw, and the command that fixes it."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARNING, FAILED = "ok", "warning", "FAILED"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    detail: str
    fix: str = ""

    def text(self) -> str:
        line = f"{self.status:<8} {self.check:<12} {self.detail}"
        return line + (f"\n{'':<8} {'':<12} fix: {self.fix}" if self.fix else "")


def ok(check: str, detail: str) -> Finding:
    return Finding(check, OK, detail)


def warning(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, WARNING, detail, fix)


def failed(check: str, detail: str, fix: str) -> Finding:
    return Finding(check, FAILED, detail, fix)
