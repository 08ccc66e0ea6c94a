"""Results of timeline operations (timeline/results.py): how a recorded cell is named to users."""

from __future__ import annotations

import pytest

from timetravel_kernel.timeline import CellInfo, describe_cell

from ..factories import make_commit


@pytest.mark.parametrize(("cell", "said"), [
    (CellInfo(code="x = 1", execution_count=5), "cell [5]"),
    (CellInfo(code="x = 1", execution_count=7, cells=3), "one of the 3 cells up to [7]"),
    (CellInfo(code="\n  import numpy as np\nx = 1"), "the cell `import numpy as np`"),
    (CellInfo(code="y = '" + "a" * 100 + "'"), "the cell `y = '" + "a" * 55 + "`"),
    (CellInfo(code="  \n"), "the session's start"),
])
def test_a_cell_is_named_by_its_count_else_its_first_line(cell, said) -> None:
    assert describe_cell(cell) == said


def test_a_commit_is_named_as_the_cell_it_recorded() -> None:
    assert describe_cell(make_commit(execution_count=4)) == "cell [4]"
    assert describe_cell(make_commit(execution_count=None, code="df.plot()")) == (
        "the cell `df.plot()`")
