"""TimelineOptions (state/options.py): which names belong to the saved state."""

from __future__ import annotations

import pytest

from timetravel_kernel.state import TimelineOptions


@pytest.mark.parametrize(("name", "tracked"), [
    ("x", True), ("__name__", False), ("__builtins__", False), ("_private", True),
    ("__half", True), ("half__", True),
])
def test_dunder_names_are_left_out_by_default(name, tracked) -> None:
    assert TimelineOptions().is_tracked(name) is tracked


def test_skipped_names_and_a_pattern_matching_in_full_are_left_out() -> None:
    options = TimelineOptions(skip_names=frozenset({"In", "Out"}), skip_pattern=r"_\d+")
    assert not options.is_tracked("In") and not options.is_tracked("_12")
    assert options.is_tracked("__name__")  # the pattern replaces the default one
    assert options.is_tracked("_12a") and options.is_tracked("x_12")  # not a full match

