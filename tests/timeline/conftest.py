"""Fixtures of the timeline tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ..factories import open_timeline

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from timetravel_kernel.timeline import Timeline


@pytest.fixture
def timeline(tmp_path: Path) -> Iterator[Timeline]:
    """A timeline on a fresh RocksDB store, closed after the test."""
    timeline = open_timeline(tmp_path / "store")
    yield timeline
    timeline.close()
