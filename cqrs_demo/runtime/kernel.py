"""A Jupyter kernel of this interpreter, for code that runs notebooks itself (the tour, the benchmarks).

Whatever kernelspecs the machine has (a `python3` in ~/.local/share/jupyter pointing at another
Python, say), the kernel started here runs this interpreter, so it imports this package at the
version being run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL_NAME = "python3"


def this_interpreter(kernel_dir: Path) -> KernelManager:
    """A kernel manager whose only kernel, written into `kernel_dir`, is this interpreter's ipykernel."""
    spec = Path(kernel_dir) / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python"}))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
    return KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
