"""The API fuzzer, schemathesis, with every check it has, against both live services.

Each service runs as its own process (the `stack` fixture, as `cqrs-demo up` starts it), and
`schemathesis run` reads its /openapi.json and sends what the document allows, and what it
does not, in the examples, coverage, fuzzing and stateful phases (the stateful phase follows
the document's links: a created product's id and ETag into PUT, PATCH and DELETE). Every answer
is checked (`--checks all`): no server error; a documented status, content type, headers and
body; schema-valid requests accepted and schema-invalid ones refused; a deleted resource gone,
a created one there; an unsupported method answered 405 with Allow.

The fuzzer's settings, and the only two answers excused (a stale If-Match's 412, a read model
behind's 503), are in schemathesis.toml beside this file; fuzzer_hooks.py tells it the one rule
of a valid order that JSON Schema cannot state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from cqrs_demo.polling import wait_until

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("fuzzer_hooks.py")
PHASES = ["examples", "coverage", "fuzzing", "stateful"]


def fuzz(service: str, base_url: str, report_dir: Path, cases) -> None:
    """Run `schemathesis run` against a live service; fail with its report on any finding."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "--no-color",
        "run", f"{base_url}/openapi.json", "--checks", "all", "--phases", ",".join(PHASES),
        "--report", "json", "--report-dir", str(report_dir),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=report_dir)
    output = result.stdout[-20000:] + result.stderr[-5000:]
    reports = list(report_dir.glob("*.json"))
    assert result.returncode == 0 and len(reports) == 1, f"schemathesis found mismatches:\n{output}"
    report = json.loads(reports[0].read_text())
    cases(f"schemathesis, {service} service", report["test_cases"]["generated"])
    # A pass means the phases ran on every operation: a document without links, or a run cut
    # short, would otherwise pass by testing less. (The examples phase runs where the document
    # has examples: the bodies of the command service.)
    phases = {name: phase["status"] for name, phase in report["phases"].items()}
    assert all(phases[name] == "success" for name in PHASES if name != "examples"), f"phases: {phases}\n{output}"
    assert phases["examples"] == ("success" if service == "command" else "skip"), f"phases: {phases}\n{output}"
    assert report["operations"]["tested"] == report["operations"]["total"], f"{report['operations']}\n{output}"


def test_fuzzer_finds_no_mismatch_in_the_command_service(stack, tmp_path, cases):
    fuzz("command", stack.urls()["command"], tmp_path, cases)


def test_fuzzer_finds_no_mismatch_in_the_query_service(stack, tmp_path, cases):
    """With a few products and an order in the read model, so that reads find documents too."""
    command, query = stack.urls()["command"], stack.urls()["query"]
    written = []
    for n in range(3):
        body = {"name": f"fuzz {n}", "price": 1 + n, "quantity": 50, "sku": f"FUZZ-{n}"}
        written.append(("products", requests.post(f"{command}/api/products", json=body, timeout=10).json()))
    order = {"customer": "fuzz", "lines": [{"sku": "FUZZ-0", "quantity": 2}, {"sku": "FUZZ-1", "quantity": 1}]}
    written.append(("orders", requests.post(f"{command}/api/orders", json=order, timeout=10).json()))
    for kind, document in written:
        url = f"{query}/api/{kind}/{document['id']}"
        wait_until(lambda: requests.get(url, timeout=10).status_code == 200, 30, what=f"{url} projected")
    fuzz("query", query, tmp_path, cases)
