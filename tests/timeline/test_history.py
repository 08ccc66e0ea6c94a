"""History (timeline/history.py): the commit index, the versions of one name, tree diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from timetravel_kernel.errors import UnknownNameError
from timetravel_kernel.timeline import Timeline

from ..factories import checkpoint_cell, open_timeline
from ..workloads import fresh_namespace


def test_history_lists_the_versions_of_one_name_without_loading(timeline: Timeline) -> None:
    ns = fresh_namespace()
    timeline.start(ns)
    first = checkpoint_cell(timeline, ns, "df = [1, 2, 3]\nx = 1", 1)
    checkpoint_cell(timeline, ns, "x = 2", 2)
    third = checkpoint_cell(timeline, ns, "df.append(4)", 3)
    deleted = checkpoint_cell(timeline, ns, "del df", 4)
    versions = timeline.history("df")
    assert [v.commit.id for v in versions] == [deleted.id, third.id, first.id]
    assert versions[0].covariable is None and not versions[0].current
    assert versions[1].type == "list" and versions[1].saved and versions[1].members == ("df",)
    assert versions[1].covariable != versions[2].covariable
    assert [v.commit.execution_count for v in timeline.history("x")] == [2, 1]
    assert timeline.history("x")[0].current
    with pytest.raises(UnknownNameError, match="never saved"):
        timeline.history("nope")


def test_history_works_on_a_read_only_store(tmp_path: Path) -> None:
    writer = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    writer.start(ns)
    checkpoint_cell(writer, ns, "x = 1", 1)
    checkpoint_cell(writer, ns, "x = 2", 2)
    reader = Timeline.open(tmp_path / "store", read_only=True)
    assert [v.commit.execution_count for v in reader.history("x")] == [2, 1]
    reader.close()
    writer.close()
