"""Fixtures shared across test folders."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .kernel.harness import Kernel, install_test_specs
from .seaweed import SeaweedServer


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """One real SeaweedFS server for the session's S3 tests (each test uses its own prefix)."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()

@pytest.fixture(scope="session")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Put the test kernelspecs first on JUPYTER_PATH and keep stores in a temporary dir."""
    root = install_test_specs(tmp_path_factory.mktemp("jupyter"))
    old = os.environ.get("JUPYTER_PATH")
    old_stores = os.environ.get("TIMETRAVEL_STORE_DIR")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    # Kernels started by other tools (jupyter_kernel_test) must not write to the user's
    # Jupyter data dir either.
    os.environ["TIMETRAVEL_STORE_DIR"] = str(tmp_path_factory.mktemp("stores"))
    yield root
    if old_stores is None:
        os.environ.pop("TIMETRAVEL_STORE_DIR", None)
    else:
        os.environ["TIMETRAVEL_STORE_DIR"] = old_stores
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "stores"


@pytest.fixture
def start_kernel(jupyter_path: Path, store_dir: Path) -> Iterator[Callable[..., Kernel]]:
    """Return a factory of kernels, each shut down (or killed) at the end of the test."""
    kernels: list[Kernel] = []

    def start(name: str = "timetravel", notebook: str | None = None,
              arguments: list[str] | None = None, **env: str) -> Kernel:
        full = {"TIMETRAVEL_STORE_DIR": str(store_dir), **env}
        if notebook is not None:
            full["JPY_SESSION_NAME"] = notebook
        kernel = Kernel(name, env=full, extra_arguments=arguments)
        kernels.append(kernel)
        return kernel

    yield start
    for kernel in kernels:
        # A killed kernel has nothing left to shut down.
        with contextlib.suppress(Exception):
            kernel.shutdown()
