"""Helpers for the browser tests: a private JupyterLab server and a headless Chromium to drive it.

`JupyterLab` starts `python -m jupyter lab` as a subprocess on a free port, with a token of its
own, and with every Jupyter and IPython directory inside a temporary directory, so that nothing
global (~/.jupyter, ~/.local/share/jupyter, ~/.ipython) is read or written. Its only kernel is
this interpreter (the venv's python). `stop()` shuts the kernels down through the REST API, stops
the server, and kills by pid whatever of its process tree is still alive after that.

`find_chromium()` finds Debian's (or any) Chromium; `launch_chromium()` starts it headless
through Playwright, never through a browser that Playwright downloads.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.runtime import chromium

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    """The Chromium binary to use: $CHROMIUM_PATH, /usr/bin/chromium, or one on PATH."""
    return chromium.find_chromium(os.environ.get("CHROMIUM_PATH"))


def launch_chromium(playwright, executable: str, user_data_dir: Path):
    """A headless Chromium with a fresh profile in `user_data_dir`; returns a browser context."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=executable,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1400, "height": 1800},
        timeout=60_000,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


class JupyterLab:
    """A JupyterLab server of its own: `start()`, then `url(path)`, `sessions()`, `stop()`."""

    def __init__(self, root_dir: Path, home: Path, python: str = sys.executable) -> None:
        self.root_dir = Path(root_dir)
        self.home = Path(home)
        self.python = python
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = self.home / "jupyterlab.log"
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    # -- set-up --------------------------------------------------------------------------------

    def _directories(self) -> dict[str, str]:
        dirs = {
            "JUPYTER_CONFIG_DIR": self.home / "config",
            "JUPYTER_DATA_DIR": self.home / "data",
            "JUPYTER_RUNTIME_DIR": self.home / "runtime",
            "IPYTHONDIR": self.home / "ipython",
            "MPLCONFIGDIR": self.home / "matplotlib",
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        return {name: str(path) for name, path in dirs.items()}

    def _configure(self) -> None:
        data = self.home / "data"
        # The one kernel: this interpreter, whatever other kernelspecs the machine has.
        _write_json(
            data / "kernels" / "python3" / "kernel.json",
            {
                "argv": [self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "metadata": {"debugger": False},
            },
        )
        settings = self.home / "config" / "lab" / "user-settings" / "@jupyterlab"
        # Every cell in the DOM (the default windowing leaves off-screen cells out), no news toast.
        _write_json(settings / "notebook-extension" / "tracker.jupyterlab-settings", {"windowingMode": "none"})
        _write_json(
            settings / "apputils-extension" / "notification.jupyterlab-settings",
            {"fetchNews": "false", "checkForUpdates": False},
        )

    def start(self, timeout: float = 90.0) -> "JupyterLab":
        env = {**os.environ, **self._directories(), "PYTHONUNBUFFERED": "1"}
        env.pop("JUPYTER_PATH", None)
        env.pop("JUPYTER_TOKEN", None)
        self._configure()
        command = [
            self.python, "-m", "jupyter", "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--LabApp.user_settings_dir={self.home / 'config' / 'lab' / 'user-settings'}",
            f"--LabApp.workspaces_dir={self.home / 'config' / 'lab' / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI and containers run as root
            command.append("--allow-root")
        log = open(self.log_path, "ab")
        try:
            self.process = subprocess.Popen(
                command, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {self.process.returncode} during start-up:\n{self.log()}")
        try:
            status = self.http.get(f"{self.base}/api/status", timeout=2)
            lab = self.http.get(f"{self.base}/lab", timeout=5)
        except requests.RequestException:
            return False
        return status.status_code == 200 and lab.status_code == 200

    def _wait_ready(self, timeout: float) -> None:
        try:
            wait_until(self._answers, timeout, interval=0.25, what=f"JupyterLab on {self.base}")
        except WaitTimeout as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None

    # -- use -----------------------------------------------------------------------------------

    def url(self, path: str = "lab") -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def sessions(self) -> list[dict]:
        response = self.http.get(f"{self.base}/api/sessions", timeout=5)
        response.raise_for_status()
        return response.json()

    def kernel_states(self) -> list[str]:
        return [session["kernel"]["execution_state"] for session in self.sessions() if session.get("kernel")]

    def log(self, last: int = 60) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-last:])

    # -- tear-down -----------------------------------------------------------------------------

    def _descendants(self) -> list:
        try:
            import psutil

            return psutil.Process(self.process.pid).children(recursive=True)
        except Exception:  # psutil missing or the server already gone
            return []

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        descendants = self._descendants()  # kernels and what they started, known while they live
        if self.process.poll() is None:
            try:
                for session in self.sessions():
                    self.http.delete(f"{self.base}/api/sessions/{session['id']}", timeout=15)
                for kernel in self.http.get(f"{self.base}/api/kernels", timeout=5).json():
                    self.http.delete(f"{self.base}/api/kernels/{kernel['id']}", timeout=15)
            except requests.RequestException:
                pass
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        deadline = time.monotonic() + 10
        for child in descendants:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except Exception:
                try:
                    child.kill()
                except Exception:
                    pass
        self.http.close()
