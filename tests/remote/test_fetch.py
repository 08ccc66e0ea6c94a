"""Fetching by byte range: a new machine reads only what the latest state needs, verified."""

from __future__ import annotations

import time

import numpy as np
import pytest

from timetravel_kernel.errors import RemoteCorruptError
from timetravel_kernel.remote import FileTransport, MemoryTransport, Remote, open_transport
from timetravel_kernel.remote.packs import decode_index
from timetravel_kernel.remote.signing import split_signed_document
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.store.refs import REF_HEAD

from ..factories import open_timeline
from ..seaweed import BUCKET
from .test_s3 import options
from .test_sync import KEY, commits_of, restored, session

# Twelve states, each replacing a 1.6 MB array: the latest state needs one of them.
BIG_HISTORY = ["import numpy as np\nrng = np.random.default_rng(7)\nbig = rng.random(200_000)",
               *["big = rng.random(200_000)"] * 11]


@pytest.fixture(params=["memory", "file", "s3"])
def transport(request, tmp_path):
    if request.param == "memory":
        return MemoryTransport()
    if request.param == "file":
        (tmp_path / "remote").mkdir()
        return FileTransport(tmp_path / "remote")
    server = request.getfixturevalue("seaweed")
    return open_transport(f"s3://{BUCKET}/fetch-{time.time_ns()}", options(server))


def pack_bytes(transport, notebook: str) -> int:
    return sum(o.size for o in transport.list(f"{notebook}/packs/"))


def test_the_latest_state_alone_reads_a_fraction_of_the_packs(transport, tmp_path):
    timeline, ns = session(tmp_path / "a", BIG_HISTORY)
    Remote(transport, "nb", signer=KEY).push(timeline.object_store)
    all_commits = commits_of(timeline)
    timeline.close()
    held = pack_bytes(transport, "nb")
    assert held > 12_000_000  # twelve arrays, compressed

    other = open_timeline(tmp_path / "b")
    remote = Remote(transport, "nb", signer=KEY)
    first = remote.pull(other.object_store, only_head=True)
    assert first.head_moved and first.commits == 1
    # One array of twelve (plus the small records): a fraction of what the packs hold.
    assert first.bytes_received < held / 4, (first.bytes_received, held)
    other.close()
    assert np.array_equal(restored(tmp_path / "b")["big"], ns["big"])

    other = open_timeline(tmp_path / "b")
    rest = remote.pull(other.object_store)
    assert commits_of(other) >= all_commits
    # The rest reads only what the first part left, not the latest array a second time: both
    # parts read each pack byte once (but the 64 KiB blocks at the ends of the first part's
    # ranges), and the ref and indexes once each. Whole packs would read the latest array
    # (~8% of the packs) twice.
    metadata = sum(o.size for o in transport.list("nb/") if "/packs/" not in o.path)
    once = held + 2 * metadata
    assert once <= first.bytes_received + rest.bytes_received < once * 1.03
    assert rest.bytes_received < held
    other.close()


def test_a_tampered_range_is_refused_and_nothing_is_stored(tmp_path):
    (tmp_path / "remote").mkdir()
    transport = FileTransport(tmp_path / "remote")
    timeline, _ = session(tmp_path / "a", BIG_HISTORY[:4])
    Remote(transport, "nb", signer=KEY).push(timeline.object_store)
    timeline.close()
    [pack] = [o.path for o in transport.list("nb/packs/")]
    [index_path] = [o.path for o in transport.list("nb/indexes/")]
    body, _ = split_signed_document(transport.get(index_path).data, "index")
    index = decode_index(body, "test")
    chunk = encode_key("chunk", b"")[:1]
    offset, length = min(v for k, v in index.records.items() if k[:1] == chunk)
    data = bytearray(transport.get(pack).data)
    data[offset + length // 2] ^= 0xFF
    transport.delete(pack)
    transport.put_if_absent(pack, bytes(data))

    other = open_timeline(tmp_path / "b")
    received = transport.bytes_received
    with pytest.raises(RemoteCorruptError, match="do not match its signed index"):
        Remote(transport, "nb", signer=KEY).pull(other.object_store, only_head=True)
    assert transport.bytes_received - received < len(data) / 2  # it was a ranged read
    assert other.object_store.read_ref(REF_HEAD) is None
    assert not list(other.object_store.backend.scan_prefix(chunk))
    other.close()
