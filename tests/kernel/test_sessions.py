"""Stores across kernel processes: crash restore, restart offers, second kernels, bad stores."""

from __future__ import annotations

import json

import pytest

from timetravel_kernel.kernel.storage import store_path_for
from timetravel_kernel.store.rocks import RocksBackend

from .harness import check_event, stderr


@pytest.fixture
def notebook(tmp_path):
    return str(tmp_path / "analysis.ipynb")


def kernel_info_banner(k) -> str:
    return k.kc.kernel_info(reply=True, timeout=60)["content"]["banner"]


def test_sigkill_then_new_kernel_restores_the_last_state(start_kernel, notebook):
    k = start_kernel(notebook=notebook)
    k.execute("class P:\n    def __init__(self, v):\n        self.v = v")
    k.execute("data = [P(i) for i in range(3)]\ntotal = sum(p.v for p in data)")
    k.kill()
    k2 = start_kernel(notebook=notebook)
    # Restored before anything runs: a silent probe already sees the state.
    assert k2.value("[total, isinstance(data[0], P)]") == [3, True]
    k2.open_comm()
    restored = [e for e in k2.events if e.get("event") == "restored"]
    assert len(restored) == 1 and restored[0]["crashed"] is True
    check_event(restored[0])
    _, outputs = k2.execute("total += 1")
    assert "crashed" in stderr(outputs) and "restored" in stderr(outputs)
    assert "restored" in kernel_info_banner(k2)


def test_clean_restart_starts_empty_and_offers_the_restore(start_kernel, notebook):
    k = start_kernel(notebook=notebook)
    k.execute("x = 41")
    k.shutdown()
    k2 = start_kernel(notebook=notebook)
    assert k2.value("'x' in globals()") is False
    status = k2.op("status")["result"]
    assert status["restorable"]["code"] == "x = 41"
    offers = [e for e in k2.events if e.get("event") == "restore-available"]
    assert len(offers) == 1 and offers[0]["crashed"] is False
    assert "can be restored" in kernel_info_banner(k2)
    assert k2.op("restore")["ok"]
    assert k2.value("x") == 41
    # Once restored there is nothing more to offer.
    assert k2.op("status")["result"]["restorable"] is None


def test_restore_policies_are_configurable(start_kernel, notebook):
    k = start_kernel(notebook=notebook)
    k.execute("x = 1")
    k.kill()
    k2 = start_kernel(notebook=notebook, TIMETRAVEL_RESTORE_AFTER_CRASH="offer")
    assert k2.value("'x' in globals()") is False
    assert k2.op("status")["result"]["restorable"] is not None
    k2.shutdown()
    k3 = start_kernel(notebook=notebook, TIMETRAVEL_RESTORE_AFTER_RESTART="restore")
    assert k3.value("'x' in globals()") is True


def test_a_second_kernel_on_the_same_notebook_works_on_its_own_history(start_kernel, notebook):
    first = start_kernel(notebook=notebook)
    first.execute("x = 1")
    second = start_kernel(notebook=notebook)
    reply, outputs = second.execute("y = 2")
    assert reply["status"] == "ok"
    assert "in use by" in stderr(outputs) and "temporary" in stderr(outputs)
    status = second.op("status")["result"]
    assert "in use" in status["notice"]
    assert second.op("undo")["ok"]  # its own history works
    # The first kernel's history is untouched and still being written.
    first.execute("x = 3")
    codes = [c["code"] for c in first.op("log")["result"]["commits"]]
    assert codes[:2] == ["x = 3", "x = 1"]
    assert "y = 2" not in codes


def test_a_store_locked_by_another_process_is_reported_plainly(start_kernel, notebook,
                                                                store_dir):
    holder = RocksBackend(store_path_for(store_dir, notebook), purpose="a backup job")
    try:
        k = start_kernel(notebook=notebook)
        reply, outputs = k.execute("x = 1")
        assert reply["status"] == "ok"
        assert "a backup job" in stderr(outputs)
    finally:
        holder.close()


def test_a_corrupt_store_is_moved_aside_and_a_new_history_started(start_kernel, notebook,
                                                                  store_dir):
    path = store_path_for(store_dir, notebook)
    path.mkdir(parents=True)
    (path / "CURRENT").write_text("MANIFEST-000999\n")
    (path / "MANIFEST-000999").write_bytes(b"\x00garbage" * 100)
    k = start_kernel(notebook=notebook)
    reply, outputs = k.execute("x = 1")
    assert reply["status"] == "ok"
    assert "moved to" in stderr(outputs) or "temporary" in stderr(outputs)
    assert k.op("undo")["ok"]
    aside = [p for p in store_dir.iterdir() if ".unreadable-" in p.name]
    assert aside and (aside[0] / "MANIFEST-000999").exists()  # nothing lost


def test_an_unwritable_store_dir_falls_back_to_a_temporary_history(start_kernel, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store folder should be")
    k = start_kernel(TIMETRAVEL_STORE_DIR=str(blocker / "stores"))
    reply, outputs = k.execute("x = 1")
    assert reply["status"] == "ok"
    assert "cannot use the history store" in stderr(outputs)
    k.execute("x = 2")
    assert k.op("undo")["ok"]
    assert k.value("x") == 1
    json.dumps(k.op("status"))


def test_crash_restore_names_what_it_could_not_bring_back(start_kernel, notebook, tmp_path):
    modules = tmp_path / "mods"
    modules.mkdir()
    (modules / "vanishing_mod.py").write_text("class Thing:\n    pass\n")
    k = start_kernel(notebook=notebook, PYTHONPATH=str(modules))
    k.execute("import vanishing_mod\nobj = vanishing_mod.Thing()\nx = 7")
    k.kill()
    (modules / "vanishing_mod.py").unlink()
    k2 = start_kernel(notebook=notebook, PYTHONPATH=str(modules))
    reply, outputs = k2.execute("x")
    assert reply["status"] == "ok"
    text = stderr(outputs)
    assert "restored" in text and "obj" in text, text
    assert k2.value("x") == 7


def test_a_kernel_that_died_while_restoring_is_not_restored_again_unasked(start_kernel,
                                                                          notebook):
    # Loading `bomb` kills the kernel mid-restore, as the OOM killer kills one whose state no
    # longer fits: the next kernel must not try the same restore at every start.
    k = start_kernel(notebook=notebook)
    k.execute("class Bomb:\n"
              "    def __setstate__(self, state):\n"
              "        import os\n"
              "        if os.environ.get('TT_TEST_BOMB'):\n"
              "            os._exit(9)\n"
              "        self.__dict__.update(state)\n"
              "bomb = Bomb()\nbomb.armed = True\nx = 7")
    k.kill()
    with pytest.raises(RuntimeError, match="died"):
        start_kernel(notebook=notebook, TT_TEST_BOMB="1")
    k3 = start_kernel(notebook=notebook)  # the restore would work now: still not unasked
    assert k3.value("'x' in globals()") is False
    k3.open_comm()
    offers = [e for e in k3.events if e.get("event") == "restore-available"]
    assert len(offers) == 1 and "died while restoring" in offers[0]["message"]
    check_event(offers[0])
    _, outputs = k3.execute("%tt")
    assert "%tt get NAME@" in stderr(outputs) and "not restored again" in stderr(outputs)
    assert k3.op("restore")["ok"]  # asked for: it comes back
    assert k3.value("x") == 7
