"""Damaged stores between sessions: every file kind flipped and truncated, then a real kernel.

Each case must end in one of three ways: the full state back; an older state back with a
message saying states were lost; or the store moved aside with a message. Never "in use",
never "unwritable", never silent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Six cells, each adding a small list and a 100 kB bytes value (a blob file); after each
# checkpoint a line with the fingerprints of the state. "kill" leaves it all in the log.
_WRITER = textwrap.dedent("""
    import hashlib, json, os, random, sys
    from timetravel_kernel.timeline import CellInfo, Timeline
    timeline = Timeline.open(sys.argv[1])
    ns = {"__name__": "__main__"}
    timeline.start(ns)
    for i in range(6):
        ns[f"v{i}"] = list(range(i * 100))
        ns[f"b{i}"] = random.Random(i).randbytes(100_000)  # incompressible: a blob file
        timeline.checkpoint(ns, CellInfo(code=f"cell {i}", execution_count=i + 1))
        print(json.dumps({n: hashlib.sha1(repr(v).encode()).hexdigest()
                          for n, v in ns.items() if n[0] in "vb"}), flush=True)
    if sys.argv[2] == "close":
        timeline.close()
    else:
        os._exit(0)
""")
_FINGERPRINTS = ("{n: __import__('hashlib').sha1(repr(v).encode()).hexdigest() "
                 "for n, v in globals().items() if n[:1] in 'vb' and n[1:].isdigit()}")
# (file pattern, where to flip bytes: a fraction of the size or bytes from the end)
_KINDS = {
    "sst-data": ("*.sst", 0.3),
    "sst-index": ("*.sst", -180),  # index, filter and properties blocks precede the footer
    "sst-footer": ("*.sst", -30),
    "blob": ("*.blob", 0.5),
    "wal": ("*.log", 0.6),
    "manifest": ("MANIFEST-*", 0.5),
    "current": ("CURRENT", 0.5),
    "options": ("OPTIONS-*", 0.5),
}


def _write_store(path: Path, mode: str) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, "-c", _WRITER, str(path), mode],
                          capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _damage(path: Path, kind: str, how: str) -> None:
    pattern, where = _KINDS[kind]
    target = max(path.glob(pattern), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    if how == "truncate":
        del data[len(data) * 2 // 3:]
    else:
        at = int(len(data) * where) if where > 0 else len(data) + int(where)
        for i in range(at, min(at + 8, len(data))):
            data[i] ^= 0xFF
    target.write_bytes(bytes(data))


def _outcome(kernel, store: Path, states: list[dict[str, str]]) -> str:
    """Run the first cell; return how the session began, checking it was said plainly."""
    _, outputs = kernel.execute("pass")
    said = "".join(o["content"].get("text", "") for o in outputs if o["msg_type"] == "stream")
    got = kernel.value(_FINGERPRINTS)
    assert "in use" not in said and "writable" not in said, said
    if got == states[-1]:
        assert "could not" not in said and "damaged" not in said, said
        return "full state"
    aside = [p for p in store.parent.iterdir() if ".unreadable-" in p.name]
    if aside:
        assert f"moved to {aside[0]}" in said and got == {}, said
        assert any(aside[0].glob("*.sst")) or any(aside[0].glob("*.log"))  # nothing deleted
        return "moved aside"
    # An older state, exactly as it was saved, and the loss said.
    assert got in states[:-1] or got == {}, got
    assert "could not be recovered (the store's log was damaged)" in said, said
    return "older state"


# OPTIONS is rewritten from the kernel's own settings; a damaged log loses only its tail;
# everything else is damage RocksDB reports (or, for a truncated MANIFEST, would hide).
_EXPECTED = {"options": "full state", "wal": "older state"}


@pytest.mark.parametrize("how", ["flip", "truncate"])
@pytest.mark.parametrize("kind", list(_KINDS))
def test_damage_is_named_never_disguised(start_kernel, tmp_path, kind, how):
    path = tmp_path / "s"
    # The log holds data only when the writer died; the tables only after a clean close.
    states = _write_store(path, "kill" if kind == "wal" else "close")
    _damage(path, kind, how)
    kernel = start_kernel(TIMETRAVEL_STORE=str(path),
                          TIMETRAVEL_RESTORE_AFTER_RESTART="restore")
    assert _outcome(kernel, path, states) == _EXPECTED.get(kind, "moved aside")
    # The kernel keeps working on whatever store it now has.
    kernel.execute("v9 = 9")
    assert kernel.op("status")["result"]["head"]["changed"] == ["v9"]
