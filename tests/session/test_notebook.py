"""Stores across kernel processes: crash restore, restart offers, second kernels, bad stores."""

from __future__ import annotations

import json

import pytest

from timetravel_kernel.session.storage import store_path_for
from timetravel_kernel.store.rocks import RocksBackend

from ..kernel.harness import check_event, stderr


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


REGRESSION_CELLS = [
    "import numpy as np, pandas as pd, patsy\n"
    "import statsmodels.api as sm, statsmodels.formula.api as smf",
    "rng = np.random.default_rng(7)\n"
    "data = pd.DataFrame({'x0': rng.normal(size=40), 'x1': rng.uniform(1, 3, size=40),\n"
    "                     'g': ['a', 'b', 'c', 'd'] * 10})\n"
    "data['y'] = 1.5 * data.x0 - np.log(data.x1) + rng.normal(scale=0.1, size=40)",
    # the formula interface fits on patsy design matrices
    "fit = smf.ols('y ~ x0 + np.log(x1) + C(g)', data=data).fit()\n"
    "y, X = patsy.dmatrices('y ~ x0 + np.log(x1) + C(g)', data)\n"
    "ols = sm.OLS(y, X).fit()",
    # coefficients in a Series by the matrix's column names; a list sharing the matrix
    "coef, resid, _, _ = np.linalg.lstsq(X, y, rcond=None)\n"
    "coef = pd.Series(coef.squeeze(), index=X.design_info.column_names)\n"
    "new_data = pd.DataFrame({'x0': [0.5, -1.0], 'x1': [1.5, 2.5], 'g': ['b', 'd']})\n"
    "new_X = patsy.build_design_matrices([X.design_info], new_data)\n"
    "arrays = [X[:, 1], np.asarray(X), new_X[0]]",
]
REGRESSION_NAMES = {"coef", "new_X", "arrays", "X", "y", "fit", "ols", "resid", "data"}


def test_a_statsmodels_formula_fit_and_its_design_matrices_are_exact_after_sigkill(
        start_kernel, notebook):
    from ..kernel.test_workloads import PROBE_DIR, assert_same_state, describe

    k = start_kernel(notebook=notebook, PYTHONPATH=PROBE_DIR)
    for code in REGRESSION_CELLS:
        reply, outputs = k.execute(code)
        assert reply["status"] == "ok", outputs
        assert "could not be saved" not in stderr(outputs), stderr(outputs)
    k.wait_saved()
    saved = {v["name"]: v["saved"] for v in k.op("vars")["result"]["vars"]}
    assert all(saved[n] for n in REGRESSION_NAMES), saved
    before = describe(k)
    predicted = k.value("fit.predict(new_data).round(12).tolist()")
    k.kill()
    k2 = start_kernel(notebook=notebook, PYTHONPATH=PROBE_DIR)
    assert_same_state(describe(k2), before, REGRESSION_NAMES, "after SIGKILL")
    assert k2.value(
        "[type(coef).__name__, list(coef.index) == X.design_info.column_names, "
        "type(new_X[0]).__name__, new_X[0].design_info is X.design_info, "
        "np.shares_memory(arrays[0], X), np.shares_memory(arrays[1], X), "
        "arrays[2] is new_X[0]]") == ["Series", True, "DesignMatrix", True, True, True, True]
    # What the restored objects do: predict, and build the matrix for new data again.
    assert k2.value("fit.predict(new_data).round(12).tolist()") == predicted
    assert k2.value("np.array_equal(patsy.build_design_matrices([X.design_info], new_data)[0], "
                    "new_X[0]) and np.allclose(ols.predict(new_X[0]), "
                    "new_X[0] @ coef.to_numpy())") is True


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
