"""The shipped kernelspec and `timetravel install`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from timetravel_kernel.cli import main
from timetravel_kernel.cli.kernelspec import DISPLAY_NAME, KERNEL_NAME, make_kernel_json

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_kernel_json_is_the_generated_one():
    shipped = json.loads((ROOT / "kernelspec" / "kernel.json").read_text())
    assert shipped == make_kernel_json()
    assert shipped["display_name"] == DISPLAY_NAME == "Python 3 (time-travel)"
    assert shipped["argv"][0] == "python"  # Jupyter substitutes its own interpreter


def test_wheel_puts_the_kernelspec_where_jupyter_looks():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shared = project["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    assert shared["kernelspec"] == f"share/jupyter/kernels/{KERNEL_NAME}"
    assert project["project"]["scripts"]["timetravel"] == "timetravel_kernel.cli:main"


def test_install_into_a_prefix_pins_this_interpreter(tmp_path, capsys, monkeypatch):
    assert main(["install", "--prefix", str(tmp_path)]) == 0
    assert "installed" in capsys.readouterr().out
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    assert spec.argv[:3] == [sys.executable, "-m", "timetravel_kernel"]
    assert spec.display_name == DISPLAY_NAME
    assert spec.interrupt_mode == "signal"
