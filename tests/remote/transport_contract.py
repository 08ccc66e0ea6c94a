"""TransportContract: what every transport must do, run against each (as BackendContract is)."""

from __future__ import annotations

import threading

import pytest

from timetravel_kernel.errors import RemoteConflictError
from timetravel_kernel.remote import Transport


class TransportContract:
    """Subclasses supply a ``transport`` fixture on an empty root."""

    def test_get_of_an_absent_object_is_none(self, transport: Transport) -> None:
        assert transport.get("nothing/here") is None

    def test_create_if_absent_never_overwrites(self, transport: Transport) -> None:
        assert transport.put_if_absent("a/b.pack", b"first")
        assert not transport.put_if_absent("a/b.pack", b"second")
        found = transport.get("a/b.pack")
        assert found is not None and found.data == b"first"

    def test_compare_and_swap_refuses_a_stale_tag(self, transport: Transport) -> None:
        tag = transport.put_if_tag("refs/main", b"one", None)
        with pytest.raises(RemoteConflictError):
            transport.put_if_tag("refs/main", b"again", None)
        newer = transport.put_if_tag("refs/main", b"two", tag)
        with pytest.raises(RemoteConflictError):
            transport.put_if_tag("refs/main", b"three", tag)
        found = transport.get("refs/main")
        assert found is not None and found.data == b"two" and found.tag == newer

    def test_only_one_of_many_racing_swaps_wins(self, transport: Transport) -> None:
        tag = transport.put_if_tag("refs/main", b"start", None)
        wins: list[bytes] = []
        losses: list[bytes] = []

        def attempt(data: bytes) -> None:
            try:
                transport.put_if_tag("refs/main", data, tag)
                wins.append(data)
            except RemoteConflictError:
                losses.append(data)

        threads = [threading.Thread(target=attempt, args=(b"w%d" % i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1 and len(losses) == 5
        found = transport.get("refs/main")
        assert found is not None and found.data == wins[0]

    def test_list_and_delete(self, transport: Transport) -> None:
        transport.put_if_absent("nb/packs/1.pack", b"x" * 10)
        transport.put_if_absent("nb/packs/2.pack", b"y")
        transport.put_if_absent("nb/indexes/1.idx", b"z")
        listed = sorted(transport.list("nb/packs/"), key=lambda o: o.path)
        assert [(o.path, o.size) for o in listed] == [("nb/packs/1.pack", 10),
                                                       ("nb/packs/2.pack", 1)]
        assert all(o.modified > 0 for o in listed)
        transport.delete("nb/packs/1.pack")
        transport.delete("nb/packs/1.pack")  # absent is fine
        assert [o.path for o in transport.list("nb/packs/")] == ["nb/packs/2.pack"]

    def test_byte_ranges_are_read_and_counted(self, transport: Transport) -> None:
        transport.put_if_absent("nb/packs/r.pack", bytes(range(100)))
        requests, received = transport.requests, transport.bytes_received
        parts = transport.get_ranges("nb/packs/r.pack", [(0, 3), (10, 12), (97, 100)])
        assert parts == [b"\x00\x01\x02", b"\x0a\x0b", b"\x61\x62\x63"]
        assert transport.bytes_received - received == 8
        assert transport.requests - requests == 3
        assert transport.get_ranges("nb/packs/absent.pack", [(0, 1)]) is None
        # Past the end (a damaged pack): short, never an error of the storage.
        assert transport.get_ranges("nb/packs/r.pack", [(95, 110)]) == [bytes(range(95, 100))]
        assert transport.get_ranges("nb/packs/r.pack", [(200, 210)]) == [b""]
