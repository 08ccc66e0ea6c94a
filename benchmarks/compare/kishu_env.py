"""Kishu 0.3.4 in its own virtual environment under a cache dir (never the project's venv).

Kishu pins nothing and pulls in Flask, ipylab, nbconvert and more; it must not change what the
time-travel kernel runs with. The environment gets the same versions of the packages the
workloads and the kernel use (ipykernel, numpy, pandas, scikit-learn, matplotlib, dill, xxhash)
as this interpreter, so Kishu's kernel differs from the stock one only by Kishu. It is built
once (about 3 minutes) and reused while the marker file lists the same requirements.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

KISHU = "kishu==0.3.4"
PINNED = ["ipykernel", "numpy", "pandas", "scikit-learn", "matplotlib", "dill", "xxhash"]


def default_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache / "timetravel-kernel" / f"kishu-0.3.4-{tag}"


def requirements() -> list[str]:
    pins = []
    for name in PINNED:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return [KISHU, *pins]


def python(folder: Path) -> Path:
    return folder / "bin" / "python"


def ensure(folder: Path, log: object = sys.stderr) -> Path:
    """Create (or reuse) the environment; return its interpreter.

    Raises:
        subprocess.CalledProcessError: pip could not install Kishu (the message has pip's
            output).
    """
    wanted = "\n".join(requirements()) + "\n"
    marker = folder / "benchmark-requirements.txt"
    if marker.exists() and marker.read_text() == wanted and python(folder).exists():
        return python(folder)
    print(f"creating Kishu's environment in {folder} (once, a few minutes) ...", file=log,
          flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    done = subprocess.run(
        [str(python(folder)), "-m", "pip", "install", "--quiet", *requirements()],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout,
                                            done.stderr)
    marker.write_text(wanted)
    return python(folder)


def installed_version(folder: Path, package: str) -> str:
    done = subprocess.run(
        [str(python(folder)), "-c",
         f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True, text=True, check=False)
    return done.stdout.strip() or "?"
