"""Every workload notebook: checkpoint each cell, then check out every commit and compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.state.revival import describe_value
from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

from ..workloads import (
    WORKLOADS,
    close_resources,
    fresh_namespace,
    load_cells,
    run_cell,
    state_digest,
)


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_commit_checks_out_exactly(workload: str, tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store")
    ns = fresh_namespace()
    commits = [timeline.start(ns).id]
    digests = [state_digest(ns)]
    for number, code in enumerate(load_cells(workload), start=1):
        run_cell(ns, code, f"<{workload} cell {number}>")
        result = timeline.checkpoint(ns, CellInfo(code=code, execution_count=number))
        commits.append(result.commit.id)
        digests.append(state_digest(ns))

    for index in [*reversed(range(len(commits) - 1)), *range(1, len(commits))]:
        timeline.checkout(ns, commits[index])
        assert state_digest(ns) == digests[index], f"{workload}: commit {index}"
    timeline.close()

    # A new process (here: a new timeline on the same store) gets the last state back, what
    # describes itself reconnected, and names what cannot be saved.
    reopened = Timeline.open(tmp_path / "store")
    assert not reopened.previous_session_crashed
    fresh = fresh_namespace()
    reopened.start(fresh)
    result = reopened.restore(fresh)
    unsaveable = {n for n, v in digests[-1][1].items() if isinstance(v, int)}
    described = {n for n in unsaveable if describe_value(ns[n]) is not None}
    assert set(result.reconnected) == described
    assert set(result.unrestored) == unsaveable - described

    def described_as(values: dict) -> dict:  # a file open with 'w' is reopened with 'r+'
        return {n: {k: v for k, v in describe_value(values[n]).items() if k != "mode"}
                for n in described}

    assert described_as(fresh) == described_as(ns)
    close_resources(ns)
    close_resources(fresh)
    for name in unsaveable:
        ns.pop(name)
        fresh.pop(name, None)
    assert state_digest(fresh) == state_digest(ns)
    if "tmpdir" in fresh:  # awkward_objects: the log file open for writing was not truncated
        assert Path(fresh["tmpdir"], "log.txt").read_text() == "hello\n"
    reopened.close()


def test_undo_redo_walks_each_workload_cell_by_cell(tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store", options=TimelineOptions())
    ns = fresh_namespace()
    timeline.start(ns)
    digests = [state_digest(ns)]
    for code in load_cells("awkward_objects"):
        run_cell(ns, code)
        timeline.checkpoint(ns, CellInfo(code=code))
        digests.append(state_digest(ns))
    for index in reversed(range(len(digests) - 1)):
        timeline.undo(ns)
        assert state_digest(ns) == digests[index]
    for index in range(1, len(digests)):
        timeline.redo(ns)
        assert state_digest(ns) == digests[index]
    close_resources(ns)
    timeline.close()
