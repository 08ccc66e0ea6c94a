"""Every test here may start kernels by name (jupyter_kernel_test does), so the test
kernelspecs are on JUPYTER_PATH throughout."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _test_kernelspecs(jupyter_path):
    return jupyter_path
