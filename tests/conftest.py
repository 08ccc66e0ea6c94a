"""Fixtures shared across test folders."""

from __future__ import annotations

import pytest

from .seaweed import SeaweedServer


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """One real SeaweedFS server for the session's S3 tests (each test uses its own prefix)."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()
