"""Background retention in a kernel: bounded stores, and never beside a checkout."""

from __future__ import annotations

import threading
import time

import numpy as np

from timetravel_kernel.session.thinning import BackgroundThinner
from timetravel_kernel.timeline import CellInfo, RetentionPolicy

from ..factories import open_timeline
from ..workloads import fresh_namespace


def test_thinning_waits_for_a_checkout_holding_the_lock(tmp_path):
    timeline = open_timeline(tmp_path / "store")
    ns = fresh_namespace()
    timeline.start(ns)
    for i in range(6):
        ns["a"] = np.random.default_rng(i).random(50_000)
        timeline.checkpoint(ns, CellInfo(code=f"cell {i}"))
    lock = threading.RLock()
    thinner = BackgroundThinner(RetentionPolicy(budget=1), lock)
    with lock:  # what a checkout holds while it reads
        thinner.after_checkpoint(timeline)
        assert thinner.is_running()
        time.sleep(0.3)
        assert timeline.commit_count() == 7 and thinner.runs == 0
        timeline.checkout(ns, timeline.log()[-2].id)  # reads every chunk of that state
    thinner.join()
    assert thinner.runs == 1 and timeline.commit_count() < 7
    timeline.close()


def test_a_long_session_stays_under_its_budget(start_kernel):
    k = start_kernel(TIMETRAVEL_STORE_BUDGET="3MB")
    sums = {}
    for i in range(30):
        k.execute(f"import numpy as np\na = np.random.default_rng({i}).random(60_000)")
        sums[f"import numpy as np\na = np.random.default_rng({i}).random(60_000)"] = k.value(
            "float(a.sum())")
    deadline = time.monotonic() + 90
    while True:
        # A run in progress (three rounds of compaction on a loaded machine) is waited for:
        # a "pass" meanwhile would only push the cells above deeper into the past.
        k.execute("get_ipython().kernel.notebook.thinner.join()", silent=True)
        status = k.op("status")["result"]
        if status["store"]["bytes"] <= 3_000_000 or time.monotonic() > deadline:
            break
        # Retention runs after checkpoints: on a loaded machine the last one may have been
        # estimated before its compaction ended; the user's next cell looks again.
        k.execute("pass")
        time.sleep(0.5)
    assert status["store"]["budget"] == 3_000_000
    assert status["store"]["bytes"] <= 3_000_000, status
    _, outputs = k.execute("%tt")
    assert "of a 3.0 MB budget" in "".join(str(o["content"]) for o in outputs)
    commits = k.op("log")["result"]["commits"]
    cells = [c for c in commits if c["code"] != "pass"]
    assert 2 <= len(cells) < 31 and cells[0]["code"].endswith("random(60_000)")
    # Every state kept checks out exactly.
    for commit in commits:
        if commit["code"] in sums:
            assert k.op("checkout", commit=commit["id"])["ok"]
            assert k.value("float(a.sum())") == sums[commit["code"]]
