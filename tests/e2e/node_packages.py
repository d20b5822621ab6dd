"""The Node packages some tests need, fetched by npm into build/node/ exactly as `make node` does.

`make test` fetches them before pytest starts; a test run on its own (`pytest tests/e2e/...`)
gets them here, through the same make target, so there is one definition of what is fetched
(node/package.json and its lock). No npm is a failure with the command that fixes it, not a skip:
CI must not pass a test it could not run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO / "build" / "node" / "node_modules"


def node_modules() -> Path:
    """build/node/node_modules, fetched first if node/package-lock.json changed or it is missing."""
    if shutil.which("npm") is None:
        raise AssertionError("npm is missing: apt-get install npm (Node.js 18 or newer), then `make node`")
    result = subprocess.run(["make", "-s", "node"], cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise AssertionError(f"`make node` failed:\n{result.stdout}\n{result.stderr}")
    return NODE_MODULES
