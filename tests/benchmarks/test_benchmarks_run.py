"""Every benchmark runs to its table on a small case.

The benchmarks are not timed tests, but they must keep working as the code under them moves:
big_state.py once broke on a changed helper and nobody knew until a measurement was due. Each
one is run the way a person runs it (``python -m benchmarks.NAME``) on the smallest input its
options allow, and its table must come out; the figures themselves are not checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SMALL_RUNS = {
    "big_state": ["--sizes", "0.05", "--pace", "0.1"],
    "kernel_latency": ["--only", "awkward_objects", "--reps", "1", "--pace", "0.1"],
    "background": ["--workloads", "awkward_objects"],
    "state_engine": ["--workloads", "many_small", "--repeat", "1"],
    "value_diff": ["--mb", "8"],
    "rebuild": ["--reps", "1"],
    "transfer": ["--mb", "5", "--repeat", "1"],  # these two start their own SeaweedFS
    "migrate": ["--workloads", "awkward_objects", "--repeat", "1"],
    "compare": ["--quick", "--no-kishu", "--only", "awkward_objects", "--out", "{tmp}"],
}
"""Benchmark module -> arguments for a run of seconds (``{tmp}``: the test's folder; Kishu's
own environment is built by ``make compare`` only)."""


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL_RUNS))
def test_the_benchmark_prints_its_table(name: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}",
         *(arg.format(tmp=tmp_path) for arg in SMALL_RUNS[name])],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines()
             if line.startswith("|") or line.startswith("---")]
    assert table, result.stdout[-3000:]
