"""The labextension's own unit tests (node's test runner): the comm client and the tree layout.

They need the extension's node_modules, which `pip install -e .` leaves in labextension/ (the
build hook runs `jlpm install` there). Without them the test skips, except in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def test_labextension_unit_tests_pass() -> None:
    jlpm = shutil.which("jlpm", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                      os.environ.get("PATH", "")]))
    missing = None
    if jlpm is None or shutil.which("node") is None:
        missing = "jlpm or node is not installed"
    elif not (LABEXTENSION / "node_modules" / "typescript").is_dir():
        missing = "labextension/node_modules is missing: run `jlpm install` in labextension/"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    result = subprocess.run([jlpm, "test"], cwd=LABEXTENSION, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
