"""Kernels with a remote (a real SeaweedFS): background pushes, a new machine coming back to
the last state, two machines at once, a server going away, untrusted histories."""

from __future__ import annotations

import time

import pytest

from timetravel_kernel.remote import load_or_create_key
from timetravel_kernel.session.remotes import RemoteSettings, open_remote
from timetravel_kernel.timeline import Timeline

from ..kernel.harness import stderr
from ..kernel.test_workloads import PROBE_DIR, assert_same_state, describe, saved_names
from ..seaweed import SeaweedServer
from ..workloads import load_notebook_cells

WORKLOADS = ["array_patch", "awkward_objects", "frame_edits", "many_small", "ml_sklearn"]


def machine(tmp_path, name, server, url, team_key):
    """The environment of one machine: its own home, data dir and stores; a shared team key."""
    home = tmp_path / name
    return home, {"HOME": str(home), "JUPYTER_DATA_DIR": str(home / "data"),
                  "TIMETRAVEL_STORE_DIR": str(home / "stores"), "TIMETRAVEL_REMOTE": url,
                  "TIMETRAVEL_REMOTE_KEY_FILE": str(team_key), "PYTHONPATH": PROBE_DIR,
                  **server.env()}


def remote_status(k) -> dict:
    return k.op("status")["result"]["remote"]


def wait_pushed(k, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = remote_status(k)
        if status["unpushed"] == 0 and status["error"] is None and status["last_push"]:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


@pytest.fixture
def team_key(tmp_path):
    path = tmp_path / "team.key"
    load_or_create_key(path)
    return path


def url_for(tmp_path) -> str:
    return f"s3://timetravel-tests/kernels-{time.time_ns()}"


@pytest.mark.parametrize("workload", WORKLOADS)
def test_a_new_machine_comes_back_to_the_last_state_of_every_workload(
        workload, start_kernel, tmp_path, seaweed, team_key):
    url = url_for(tmp_path)
    home_a, env_a = machine(tmp_path, "a", seaweed, url, team_key)
    k = start_kernel(notebook=str(home_a / "work" / f"{workload}.ipynb"), **env_a)
    for cid, code in load_notebook_cells(workload):
        k.execute(code, cell_id=cid)
    k.wait_saved()  # cells folded behind a background checkpoint are committed by now
    expected, names = describe(k), saved_names(k)
    wait_pushed(k, timeout=120)
    states = len(k.op("log")["result"]["commits"])
    k.kill()  # the pod is gone, its disk with it

    home_b, env_b = machine(tmp_path, "b", seaweed, url, team_key)
    k2 = start_kernel(notebook=str(home_b / "work" / f"{workload}.ipynb"), **env_b)
    assert_same_state(describe(k2), expected, names, f"{workload} on machine b")
    _, outputs = k2.execute("pass")
    assert "fetched from the remote" in stderr(outputs)
    # Only the latest state came before the first cell; the rest of the history follows.
    deadline = time.monotonic() + 120
    while len(k2.op("log")["result"]["commits"]) < states + 1:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert k2.op("undo")["ok"]


def test_pushes_never_wait_and_resume_after_the_server_returns(start_kernel, tmp_path,
                                                               team_key):
    server = SeaweedServer(tmp_path / "server")
    server.start()
    try:
        url = url_for(tmp_path)
        home, env = machine(tmp_path, "a", server, url, team_key)
        k = start_kernel(notebook=str(home / "nb.ipynb"), **env)
        k.execute("counter = 0")
        wait_pushed(k)
        server.stop(kill=True)
        for _ in range(3):
            reply, _ = k.execute("counter += 1")
            assert reply["status"] == "ok"
        status = remote_status(k)
        assert status["unpushed"] >= 1
        deadline = time.monotonic() + 30
        while remote_status(k)["error"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        _, outputs = k.execute("%tt")
        text = str(outputs)
        assert "not pushed yet" in text and server.env()["AWS_SECRET_ACCESS_KEY"] not in text
        server.start()
        wait_pushed(k, timeout=90)  # retried with backoff, no new cell needed
        _, outputs = k.execute("%tt push")
        assert "pushed 0 states" in str(outputs)
        remote = open_remote(RemoteSettings(url=url, key_file=str(team_key)), "nb.ipynb",
                             data_dir=tmp_path, env=server.env())
        store = Timeline.open(tmp_path / "check")
        remote.pull(store.object_store)
        store.close()
        again = Timeline.open(tmp_path / "check")
        ns: dict = {"__name__": "__main__"}
        again.start(ns)
        again.restore(ns)
        again.close()
        assert ns["counter"] == 3
    finally:
        server.stop()


def test_two_machines_pushing_one_notebook_lose_no_state(start_kernel, tmp_path, seaweed,
                                                         team_key):
    url = url_for(tmp_path)
    home_a, env_a = machine(tmp_path, "a", seaweed, url, team_key)
    home_b, env_b = machine(tmp_path, "b", seaweed, url, team_key)
    a = start_kernel(notebook=str(home_a / "nb.ipynb"), **env_a)
    b = start_kernel(notebook=str(home_b / "nb.ipynb"), **env_b)
    for i in range(3):
        a.execute(f"from_a_{i} = {i}")
        b.execute(f"from_b_{i} = {i}")
    wait_pushed(a)
    wait_pushed(b)
    remote = open_remote(RemoteSettings(url=url, key_file=str(team_key)), "nb.ipynb",
                         data_dir=tmp_path, env=seaweed.env())
    store = Timeline.open(tmp_path / "check")
    remote.pull(store.object_store)
    store.reload_history()
    codes = {c.code for c in store.log()}
    store.close()
    assert {f"from_a_{i} = {i}" for i in range(3)} <= codes
    assert {f"from_b_{i} = {i}" for i in range(3)} <= codes
    _, outputs = a.execute("%tt pull")
    assert "fetched" in str(outputs)


def test_a_history_signed_with_another_key_is_not_restored(start_kernel, tmp_path, seaweed,
                                                           team_key):
    url = url_for(tmp_path)
    home_a, env_a = machine(tmp_path, "a", seaweed, url, team_key)
    k = start_kernel(notebook=str(home_a / "nb.ipynb"), **env_a)
    k.execute("secret_state = 'would run code on load'")
    wait_pushed(k)
    k.kill()
    home_b, env_b = machine(tmp_path, "b", seaweed, url, tmp_path / "another.key")
    k2 = start_kernel(notebook=str(home_b / "nb.ipynb"), **env_b)
    assert k2.value("'secret_state' in globals()") is False
    reply, outputs = k2.execute("x = 1")
    assert reply["status"] == "ok"
    assert "not signed with this machine's key" in stderr(outputs)
