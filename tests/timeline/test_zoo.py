"""The value and construct zoos through the engine: all saved, exact under undo, redo, restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

from ..kernel.tt_state_probe import describe_namespace
from ..workloads import fresh_namespace, run_cell
from ..zoo import CONSTRUCTS, DTYPES, Zoo, assert_same

# as the kernel configures it: IPython's ``_`` (the last result) is not state
OPTIONS = TimelineOptions(skip_names=frozenset({"_"}), skip_pattern=r"__.*__|_i\d+|_\d+")


def observe(zoo: Zoo, ns: dict) -> object:
    if not zoo.observe:
        return None
    return json.loads(json.dumps(eval(zoo.observe, ns), default=repr))


def snapshot(zoo: Zoo, ns: dict) -> tuple[dict, object]:
    described = json.loads(describe_namespace(ns))
    values = {n: v for n, v in described["values"].items() if n in zoo.names}
    aliases = {n: v for n, v in described["aliases"].items() if n in zoo.names}
    return {"values": values, "aliases": aliases}, observe(zoo, ns)


@pytest.mark.parametrize("zoo", [DTYPES, CONSTRUCTS], ids=["dtypes", "constructs"])
def test_zoo_is_saved_and_exact_under_undo_redo_and_restart(zoo: Zoo, tmp_path: Path) -> None:
    timeline = Timeline.open(tmp_path / "store", options=OPTIONS)
    ns = fresh_namespace()
    timeline.start(ns)
    run_cell(ns, zoo.setup)
    timeline.checkpoint(ns, CellInfo(code=zoo.setup))
    imported = set(ns)
    states = []
    for code in (zoo.create, zoo.modify):
        run_cell(ns, code)
        result = timeline.checkpoint(ns, CellInfo(code=code))
        assert not result.unsaved, f"refused: {dict(result.unsaved)}"
        states.append(snapshot(zoo, ns))
    assert zoo.names <= set(ns), sorted(zoo.names - set(ns))
    unsaved = {v.name: v.reason for v in timeline.variables() if not v.saved}
    assert not unsaved, unsaved

    timeline.undo(ns)
    assert_same(snapshot(zoo, ns), states[0], "undo")
    timeline.undo(ns)  # past the cell that defined everything
    assert not (zoo.names - imported) & set(ns)
    timeline.redo(ns)
    assert_same(snapshot(zoo, ns), states[0], "redo past the definitions")
    timeline.redo(ns)
    assert_same(snapshot(zoo, ns), states[1], "redo")
    timeline.close()

    reopened = Timeline.open(tmp_path / "store", options=OPTIONS)
    fresh = fresh_namespace()
    reopened.start(fresh)
    result = reopened.restore(fresh)
    assert not result.unrestored, dict(result.unrestored)
    assert_same(snapshot(zoo, fresh), states[1], "restore in a new timeline")
    reopened.close()


def test_one_row_edit_of_a_date_column_writes_one_chunk(tmp_path: Path) -> None:
    """Dates are chunked like numbers: a one-row edit costs a chunk, not the column."""
    timeline = Timeline.open(tmp_path / "store", options=OPTIONS)
    ns = fresh_namespace()
    timeline.start(ns)
    run_cell(ns, "import pandas as pd, numpy as np\nrng = np.random.default_rng(0)\n"
                 "df = pd.DataFrame({'ds': pd.to_datetime(rng.integers(0, 2**60, 400_000)), "
                 "'y': rng.random(400_000)})")
    first = timeline.checkpoint(ns, CellInfo(code="create"))
    assert not first.unsaved
    assert first.commit.bytes_written > 16 * OPTIONS.chunk_size  # both columns, 6.4 MB raw
    for edit in ("df.loc[123_456, 'ds'] = pd.Timestamp('2030-01-01')",
                 "df.loc[7, 'ds'] = df.loc[8, 'ds']", "df.loc[399_999, 'y'] = -1.0"):
        run_cell(ns, edit)
        result = timeline.checkpoint(ns, CellInfo(code=edit))
        assert result.commit.changed == ("df",) and not result.unsaved
        assert result.commit.bytes_written <= OPTIONS.chunk_size + 16 * 1024, edit
    timeline.undo(ns)
    timeline.undo(ns)
    timeline.undo(ns)
    rng = ns["np"].random.default_rng(0)
    assert (ns["df"]["ds"].to_numpy().view("i8") == rng.integers(0, 2**60, 400_000)).all()
    timeline.close()
