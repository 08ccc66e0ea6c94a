"""A really full disk: the store on a small tmpfs, filled while the kernel works.

Every cell whose state does not fit is told (under itself, or under the very next cell naming
it), saving resumes by itself on the first cell after space is freed, that state is exact and
holds the cells that could not be saved, and a crash after the recovery brings back the last
finished cell's state.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import stderr


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs (needs root, as CI has; elsewhere the test is skipped, never in CI)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs in CI: {done.stderr.strip()}")
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): run as root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Take all the disk's free space but ``leave`` bytes with one file."""
    stat = os.statvfs(disk)
    filler = disk / "filler"
    size = stat.f_bavail * stat.f_frsize - leave
    with open(filler, "wb") as out:
        os.posix_fallocate(out.fileno(), 0, max(size, 0))
    return filler


def test_a_full_disk_is_told_under_each_cell_and_saving_resumes_exactly(
        start_kernel, small_disk, tmp_path):
    notebook = str(tmp_path / "nb.ipynb")
    stores = str(small_disk / "stores")
    k = start_kernel(notebook=notebook, TIMETRAVEL_STORE_DIR=stores)
    k.open_comm()
    k.execute("import numpy as np\nx = 0")
    filler = _fill(small_disk, leave=256 * 1024)
    # 16 MB cannot fit: its snapshot fails after the cell ended
    reply, outputs = k.execute("a = np.random.default_rng(0).random(2_000_000)")
    assert reply["status"] == "ok"
    big = reply["execution_count"]
    k.op("log")  # the snapshot's outcome is known now
    _, outputs = k.execute("x = 1")
    told = stderr(outputs)
    assert f"the state after cell [{big}] could not be saved" in told, told
    assert "No space left" in told or "ENOSPC" in told or "space" in told, told
    warnings = [e for e in k.events if e.get("event") == "warning"]
    assert warnings and warnings[-1]["execution_count"] == big
    k.op("log")
    _, outputs = k.execute("y = 2")  # still full: told again, for the cell before
    assert "could not be saved either" in stderr(outputs), stderr(outputs)
    filler.unlink()  # space again
    k.op("log")  # y's state is saved now, with the two cells before it
    _, outputs = k.execute("z = 3")
    assert "saving works again; this state also holds the 2 cells before it" in stderr(outputs)
    head = k.op("status")["result"]["head"]
    assert head["code"] == "z = 3" and head["cells"] == 1
    commits = k.op("log")["result"]["commits"]
    assert commits[1]["cells"] == 3 and {"a", "x", "y"} <= set(commits[1]["changed"])
    # the state after the recovery is exact, and undo steps over the three cells at once
    assert k.op("undo")["ok"] and k.value("[x, y, 'z' in dir(), float(a.sum()) > 0]") == [
        1, 2, False, True]
    assert k.op("redo")["ok"]
    k.kill()  # after the recovery, a crash: the last finished cell's state comes back
    again = start_kernel(notebook=notebook, TIMETRAVEL_STORE_DIR=stores)
    assert again.value("[x, y, z, a.shape[0]]") == [1, 2, 3, 2_000_000]
