"""The kernelspec "Python 3 (time-travel)": its kernel.json and installing it (kernel layer)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "DISPLAY_NAME",
    "KERNEL_NAME",
    "install_kernel_spec",
    "make_kernel_json",
    "write_kernel_spec",
]

KERNEL_NAME = "timetravel"
DISPLAY_NAME = "Python 3 (time-travel)"


def make_kernel_json(python: str = "python") -> dict[str, Any]:
    """Return the kernel.json contents.

    Args:
        python: the interpreter; ``python`` (the shipped spec) lets Jupyter substitute the
            interpreter it runs in, a full path pins another environment's.
    """
    return {
        "argv": [python, "-m", "timetravel_kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": True, "supported_encryption": ["curve"]},
        "kernel_protocol_version": "5.5",
    }


def write_kernel_spec(folder: str | Path, python: str = "python") -> Path:
    """Write kernel.json and ipykernel's logos into ``folder`` (created); return it."""
    from ipykernel.kernelspec import RESOURCES

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for logo in Path(RESOURCES).glob("logo-*"):
        shutil.copy(logo, folder / logo.name)
    (folder / "kernel.json").write_text(json.dumps(make_kernel_json(python), indent=1) + "\n")
    return folder


def install_kernel_spec(*, user: bool = False, prefix: str | None = None,
                        python: str | None = None) -> str:
    """Install the kernelspec where Jupyter finds it; return the installed folder.

    Args:
        user: into the user's Jupyter data dir.
        prefix: into ``<prefix>/share/jupyter/kernels`` (``sys.prefix`` for --sys-prefix).
        python: the interpreter to pin (default: this one, so the spec works from any
            environment's Jupyter).
    """
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_kernel_spec(Path(tmp) / KERNEL_NAME, python or sys.executable)
        return str(KernelSpecManager().install_kernel_spec(
            str(folder), KERNEL_NAME, user=user, prefix=prefix))
