"""The S3 transport and whole histories against a real SeaweedFS server (tests/seaweed.py)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from timetravel_kernel.errors import (
    RemoteAccessError,
    RemoteError,
    RemoteNotFoundError,
    RemoteUnavailableError,
)
from timetravel_kernel.remote import Remote, S3Options, Signer, open_transport
from timetravel_kernel.store.refs import REF_HEAD
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import open_timeline
from ..seaweed import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedServer
from ..workloads import (
    WORKLOADS,
    close_resources,
    fresh_namespace,
    load_cells,
    run_cell,
    state_digest,
)
from .transport_contract import TransportContract

KEY = Signer(b"s" * 32)
_prefixes = itertools.count()


def options(server: SeaweedServer, **overrides: object) -> S3Options:
    fields: dict[str, object] = {"endpoint": server.endpoint, "region": "us-east-1",
                                 "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
                                 "allow_http": True, "timeout_seconds": 5.0}
    fields.update(overrides)
    return S3Options(**fields)  # type: ignore[arg-type]


# A prefix that quotes what S3 errors say: errors are read from the server's answer, never
# from the path the message also quotes (a run id holding "403" was once taken for a refusal).
MISLEADING = "403-401-416-NoSuchBucket-AccessDenied-InvalidAccessKeyId-SignatureDoesNotMatch"


def fresh_url(bucket: str = BUCKET, tag: str = "") -> str:
    return f"s3://{bucket}/run-{time.time_ns()}-{next(_prefixes)}{tag}"


class TestS3Transport(TransportContract):
    @pytest.fixture
    def transport(self, seaweed):
        return open_transport(fresh_url(), options(seaweed))


class TestS3TransportUnderAMisleadingPrefix(TransportContract):
    @pytest.fixture
    def transport(self, seaweed):
        return open_transport(fresh_url(tag=MISLEADING), options(seaweed))


@pytest.mark.parametrize("tag", ["", MISLEADING])
def test_errors_are_told_by_the_servers_answer_not_the_path(seaweed, tmp_path, tag):
    timeline = open_timeline(tmp_path / "a")
    timeline.start(fresh_namespace())
    missing = open_transport(fresh_url("no-such-bucket", tag), options(seaweed))
    with pytest.raises(RemoteNotFoundError, match="bucket does not exist"):
        Remote(missing, "nb", signer=KEY).push(timeline.object_store)
    refused = open_transport(fresh_url(tag=tag), options(seaweed, secret_access_key="wrong"))
    with pytest.raises(RemoteAccessError, match="refused the credentials"):
        Remote(refused, "nb", signer=KEY).push(timeline.object_store)
    fine = Remote(open_transport(fresh_url(tag=tag), options(seaweed)), "nb", signer=KEY)
    fine.push(timeline.object_store)
    assert fine.read_ref()[0] is not None
    timeline.close()


@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_workload_comes_back_exactly_from_the_bucket(workload, seaweed, tmp_path):
    url = fresh_url()
    timeline = Timeline.open(tmp_path / "machine-a")
    ns = fresh_namespace()
    timeline.start(ns)
    for number, code in enumerate(load_cells(workload), start=1):
        run_cell(ns, code, f"<{workload} cell {number}>")
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=number))
    Remote(open_transport(url, options(seaweed)), workload, signer=KEY).push(
        timeline.object_store)
    timeline.close()

    landing = Timeline.open(tmp_path / "machine-b")
    Remote(open_transport(url, options(seaweed)), workload, signer=KEY).pull(
        landing.object_store)
    landing.close()
    again = Timeline.open(tmp_path / "machine-b")
    fresh = fresh_namespace()
    again.start(fresh)
    result = again.restore(fresh)
    again.close()
    # Reconnected values are new objects for the same files, locks and events.
    assert {n: type(fresh[n]) for n in result.reconnected} == {
        n: type(ns[n]) for n in result.reconnected}
    close_resources(ns)
    close_resources(fresh)
    for name in (*result.unrestored, *result.reconnected):
        ns.pop(name)
        fresh.pop(name, None)
    assert state_digest(fresh) == state_digest(ns)


def test_wrong_credentials_are_one_clear_message_without_the_secret(seaweed, tmp_path):
    timeline = open_timeline(tmp_path / "a")
    timeline.start(fresh_namespace())
    bad = open_transport(fresh_url(), options(seaweed, secret_access_key="wrong-secret-xyz"))
    with pytest.raises(RemoteAccessError, match="refused the credentials") as info:
        Remote(bad, "nb", signer=KEY).push(timeline.object_store)
    assert "wrong-secret-xyz" not in str(info.value) and ACCESS_KEY not in str(info.value)
    timeline.close()


def test_a_missing_bucket_and_an_unreachable_endpoint_say_so(seaweed, tmp_path):
    timeline = open_timeline(tmp_path / "a")
    timeline.start(fresh_namespace())
    missing = open_transport(fresh_url("no-such-bucket"), options(seaweed))
    with pytest.raises(RemoteNotFoundError, match="bucket does not exist"):
        Remote(missing, "nb", signer=KEY).push(timeline.object_store)
    started = time.monotonic()
    nowhere = open_transport(fresh_url(), options(seaweed, endpoint="http://127.0.0.1:9",
                                                  timeout_seconds=2.0))
    with pytest.raises(RemoteUnavailableError, match="stays local") as info:
        Remote(nowhere, "nb", signer=KEY).push(timeline.object_store)
    assert time.monotonic() - started < 15
    assert SECRET_KEY not in str(info.value)
    timeline.close()


def test_a_server_killed_during_a_push_leaves_nothing_half_visible(tmp_path):
    server = SeaweedServer(tmp_path / "server")
    server.start()
    try:
        url = fresh_url()
        timeline = open_timeline(tmp_path / "a", chunk_size=1 << 20)
        ns = fresh_namespace()
        timeline.start(ns)
        run_cell(ns, "small = 1")
        timeline.checkpoint(ns, CellInfo(code="small = 1"))
        remote = Remote(open_transport(url, options(server)), "nb", signer=KEY)
        remote.push(timeline.object_store)
        first = timeline.object_store.read_ref(REF_HEAD)
        ns["big"] = np.random.default_rng(0).random(5_000_000)  # 40 MB: three packs
        timeline.checkpoint(ns, CellInfo(code="big = ..."))

        def kill_after_first_pack(done: int, total: int) -> None:
            if done < total and server.process is not None:
                server.stop(kill=True)

        with pytest.raises(RemoteUnavailableError):
            remote.push(timeline.object_store, progress=kill_after_first_pack)
        # Cells go on checkpointing locally meanwhile.
        run_cell(ns, "small = 2")
        timeline.checkpoint(ns, CellInfo(code="small = 2"))
        server.start()
        reader = Remote(open_transport(url, options(server)), "nb", signer=KEY)
        assert reader.read_ref()[0].head == first.hex()  # the cut push is invisible
        report = remote.push(timeline.object_store)
        assert report.head == timeline.object_store.read_ref(REF_HEAD).hex()
        timeline.close()
        other = open_timeline(tmp_path / "b")
        reader.pull(other.object_store)
        other.close()
        back = open_timeline(tmp_path / "b")
        fresh = fresh_namespace()
        back.start(fresh)
        back.restore(fresh)
        back.close()
        assert fresh["small"] == 2 and (fresh["big"] == ns["big"]).all()
    finally:
        server.stop()


@pytest.mark.parametrize("endpoint", ["::bad::", "ftp://host", "http://", "http://h:99999",
                                      "http://a b"])
def test_a_malformed_endpoint_is_refused_before_any_request(endpoint):
    with pytest.raises(RemoteError, match="not an http"):
        open_transport(fresh_url(), S3Options(endpoint=endpoint, secret_access_key="s3cr3t"))
