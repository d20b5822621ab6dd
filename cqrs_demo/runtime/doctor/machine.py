"""The doctor's checks of this machine: Python, the venv, ports, disk space, the Jupyter kernel, Chromium.

Each check takes the settings, and what it looks at as keyword arguments defaulting to the real
thing (the interpreter, the file system, the kernelspecs), so its tests can hand it a fake.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cqrs_demo.config import Settings
from cqrs_demo.runtime.chromium import INSTALL as INSTALL_CHROMIUM
from cqrs_demo.runtime.chromium import find_chromium
from cqrs_demo.runtime.doctor.finding import Finding, failed, ok, warning
from cqrs_demo.runtime.ports import free_port, is_free

MIN_PYTHON = (3, 11)
# What the notebooks import, beyond the package itself: installed by `make install` (the lab extra).
LAB_MODULES = ("cqrs_demo", "jupyterlab", "ipykernel", "ipywidgets", "pandas", "matplotlib", "nbconvert")
GIB = 1024**3
MIN_FREE_DISK = 1 * GIB  # the venv's updates, a class's logs and stand-in files
LOW_FREE_DISK = 5 * GIB
REINSTALL = "rm -f .venv/.installed && make install"


def check_python(settings: Settings, version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Finding:
    shown = ".".join(map(str, version))
    if tuple(version[:2]) < MIN_PYTHON:
        return failed("Python", f"{shown} is older than {'.'.join(map(str, MIN_PYTHON))}",
                      "install Python 3.11 or newer (apt-get install python3.11 python3.11-venv), "
                      "then: make clean install PYTHON=python3.11")
    return ok("Python", f"{shown} ({sys.executable})")


def check_virtualenv(settings: Settings, prefix: str = sys.prefix, base_prefix: str = sys.base_prefix,
                     find_spec=importlib.util.find_spec) -> Finding:
    if prefix == base_prefix:
        return failed("venv", f"not running in a virtual environment ({prefix})",
                      "make install, then run the doctor from it: make doctor")
    missing = [name for name in LAB_MODULES if find_spec(name) is None]
    if missing:
        return failed("venv", f"{prefix} lacks {', '.join(missing)}", REINSTALL)
    return ok("venv", f"{prefix}, with {', '.join(LAB_MODULES)}")


def check_ports(settings: Settings, port_is_free=is_free, any_free_port=free_port) -> Finding:
    """Notebook stacks take free ports from the system; `make run` wants the configured two."""
    try:
        any_free_port()
    except OSError as exc:
        return failed("ports", f"the system gives no free local port: {exc}",
                      "sysctl net.ipv4.ip_local_port_range (and stop what holds the ports)")
    busy = [port for port in (settings.command_port, settings.query_port) if not port_is_free(settings.host, port)]
    if busy:
        return warning("ports", f"{', '.join(map(str, busy))} on {settings.host} in use: notebooks are fine "
                       "(they take free ports), `make run` is not",
                       f"ss -ltnp 'sport = :{busy[0]}' shows who holds it; stop it, or set CQRS_COMMAND_PORT / CQRS_QUERY_PORT")
    return ok("ports", f"free ports available; {settings.command_port} and {settings.query_port} free for `make run`")


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def check_disk(settings: Settings, usage=shutil.disk_usage) -> Finding:
    where = _existing(Path(settings.run_dir))
    free = usage(where).free
    shown = f"{free / GIB:.1f} GiB free at {where}"
    fix = f"free space on that disk: make clean (venv, run folders, build), cqrs-demo class reset (a class's leftovers), df -h {where}"
    if free < MIN_FREE_DISK:
        return failed("disk", f"{shown}; a class needs {MIN_FREE_DISK // GIB} GiB", fix)
    if free < LOW_FREE_DISK:
        return warning("disk", f"{shown}; under {LOW_FREE_DISK // GIB} GiB, a long class may fill it", fix)
    return ok("disk", shown)


def _kernel_argv(name: str = "python3") -> list[str] | None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(name).argv
    except NoSuchKernel:
        return None


def _kernel_python(argv0: str) -> str:
    # Jupyter runs a kernelspec whose command is a bare "python" with the server's own interpreter.
    if argv0 in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.executable
    return shutil.which(argv0) or argv0


def check_kernel(settings: Settings, kernel_argv=_kernel_argv, run=subprocess.run) -> Finding:
    """The notebooks' kernel (`python3`) must be a Python that imports this package."""
    fix = f"{sys.executable} -m ipykernel install --user --name python3 --display-name 'Python 3 (ipykernel)'"
    argv = kernel_argv()
    if not argv:
        return failed("kernel", "Jupyter has no python3 kernel", fix)
    python = _kernel_python(argv[0])
    try:
        result = run([python, "-c", "import ipykernel, cqrs_demo"], capture_output=True, text=True, timeout=120)
        problem = (result.stderr or "").strip().splitlines()[-1:] if result.returncode else None
    except (OSError, subprocess.TimeoutExpired) as exc:
        problem = [str(exc)]
    if problem is not None:
        return failed("kernel", f"the python3 kernel runs {python}, which cannot import the workbench: "
                      f"{problem[0] if problem else 'exit status ' + str(result.returncode)}", fix)
    return ok("kernel", f"python3 runs {python}")


def check_chromium(settings: Settings, find=find_chromium, find_spec=importlib.util.find_spec,
                   explicit: str | None = None) -> Finding:
    """Optional: only the browser test (`tests/e2e/test_notebook_in_browser.py`) needs it."""
    # CHROMIUM_PATH is the browser test's variable, not a setting of the stack: read where it is used.
    binary = find(explicit if explicit is not None else os.environ.get("CHROMIUM_PATH"))
    if binary is None:
        return warning("Chromium", "not found; only the browser test needs it", INSTALL_CHROMIUM)
    if find_spec("playwright") is None:
        return warning("Chromium", f"{binary}, but Playwright (which drives it) is not installed", REINSTALL)
    return ok("Chromium", f"{binary}, with Playwright")
