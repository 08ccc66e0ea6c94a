"""TimeTravelKernel through real kernels: checkpoints, the comm, magics, timing, failures."""

from __future__ import annotations

import time

from .harness import check_event, check_reply, stderr

SLOW_CHECKPOINT = """
_k = get_ipython().kernel
_orig = _k.timeline.recorder.record
def _slow(*args, _tl=_k.timeline, _orig=_orig, **kwargs):
    import time
    _tl.recorder.record = _orig  # slow once
    time.sleep({seconds})
    return _orig(*args, **kwargs)
_k.timeline.recorder.record = _slow
del _k, _slow, _orig
"""


def test_shell_namespace_tracks_accesses_and_is_main(start_kernel):
    k = start_kernel()
    assert k.value("type(globals()).__name__") == "dict"
    assert k.value("__import__('sys').modules['__main__'].__dict__ is globals()") is True
    reply, _ = k.execute("class P:\n    pass\nimport pickle\nq = pickle.loads(pickle.dumps(P()))")
    assert reply["status"] == "ok"
    assert k.value("isinstance(q, P)") is True


def test_every_executed_cell_is_a_commit_with_its_status(start_kernel):
    k = start_kernel()
    k.execute("x = 1", cell_id="cell-a")
    reply, _ = k.execute("y = 2\n1/0", cell_id="cell-b")
    assert reply["status"] == "error"
    commits = k.op("log")["result"]["commits"]
    assert [(c["cell_id"], c["status"]) for c in commits[:2]] == [("cell-b", "error"),
                                                                   ("cell-a", "ok")]
    assert commits[0]["changed"] == ["y"]
    assert commits[0]["execution_count"] == 2
    assert commits[-1]["parent"] is None  # the root: the first cell can be undone too
    for event in k.events:
        check_event(event) if "event" in event else check_reply(event)


def test_interrupted_cell_is_recorded_as_it_left_the_state(start_kernel):
    k = start_kernel()
    msg_id = k.send_execute("x = 1\nimport time\nprint('sleeping', flush=True)\n"
                            "time.sleep(60)\nx = 2")
    while True:  # interrupt only once the cell is inside its sleep
        msg = k.kc.get_iopub_msg(timeout=60)
        if msg["msg_type"] == "stream" and "sleeping" in msg["content"]["text"]:
            break
    time.sleep(0.2)
    k.km.interrupt_kernel()
    reply = k._shell_reply(msg_id)
    k.collect_iopub(msg_id)
    assert reply["content"]["status"] == "error"
    head = k.op("status")["result"]["head"]
    assert head["status"] == "error"
    assert k.value("x") == 1
    assert "x" in head["changed"]


def test_silent_runs_and_user_expressions_add_no_commit(start_kernel):
    k = start_kernel()
    k.execute("x = 1")
    before = k.op("status")["result"]["commits"]
    k.execute("y = 5", silent=True)
    k.execute("", silent=True, user_expressions={"e": "x + 1"})
    assert k.op("status")["result"]["commits"] == before


def test_undo_reverts_an_in_place_change_made_by_a_silent_run(start_kernel):
    k = start_kernel()
    k.execute("d = []")
    k.execute("n = 1")
    k.execute("d.append(0)", silent=True)  # not recorded, but not trusted as unchanged either
    assert k.op("undo")["ok"]
    assert k.value("[d, 'n' in globals()]") == [[], False]


def test_ipython_bookkeeping_names_are_not_saved(start_kernel):
    k = start_kernel()
    k.execute("1 + 1")
    k.execute("_ + 1")
    k.execute("z = _2")
    names = {v["name"] for v in k.op("vars")["result"]["vars"]}
    assert names == {"z"}


def test_undo_and_redo_through_the_comm(start_kernel):
    k = start_kernel()
    k.execute("x = 1")
    k.execute("x = 2\ny = [x]")
    reply = k.op("undo")
    check_reply(reply)
    assert reply["ok"], reply
    assert k.value("[x, 'y' in globals()]") == [1, False]
    assert k.op("redo")["ok"]
    assert k.value("[x, y]") == [2, [2]]
    assert [e["op"] for e in k.events if e.get("event") == "checkout"] == ["undo", "redo"]
    # Executing after an undo starts a branch; the old future stays in the log.
    k.op("undo")
    k.execute("x = 10")
    assert len(k.op("log")["result"]["commits"]) == 4


def test_checkout_is_refused_while_a_cell_runs(start_kernel):
    k = start_kernel()
    k.execute("x = 1")
    k.open_comm()
    # An async cell yields to the event loop, where ipykernel 7 dispatches comm messages.
    msg_id = k.send_execute("import asyncio\nawait asyncio.sleep(2)\nx = 2")
    time.sleep(0.5)
    reply = k.request({"id": "u", "op": "undo"})
    assert reply["error"]["code"] == "busy"
    k._shell_reply(msg_id)
    k.collect_iopub(msg_id)
    assert k.value("x") == 2


def test_a_move_sent_during_a_synchronous_cell_is_refused_not_queued(start_kernel):
    k = start_kernel()
    k.execute("x = 1")
    k.open_comm()
    # A synchronous cell holds the shell channel: the undo waits in the queue until it ends.
    # Run after the cell, it would undo the cell the user saw running, not what they meant.
    msg_id = k.send_execute("import time\ntime.sleep(1.5)\nx = 2")
    time.sleep(0.5)
    k.send_comm({"id": "u", "op": "undo"})
    k._shell_reply(msg_id)
    k.collect_iopub(msg_id)
    # The refusal may come before the cell's idle status (ipykernel dispatches a comm message
    # at once while the shell is locked) or after it: both are kept in k.events.
    k.drain_iopub()
    replies = [e for e in k.events if e.get("id") == "u"]
    assert [r["ok"] for r in replies] == [False]
    assert replies[0]["error"]["code"] == "busy"
    assert "was running when this was sent" in replies[0]["error"]["message"]
    assert k.value("x") == 2
    # Sent once the cell has finished, the same request moves.
    assert k.op("undo")["ok"] and k.value("x") == 1


def test_reply_is_not_held_back_by_the_checkpoint(start_kernel):
    k = start_kernel()
    k.execute(SLOW_CHECKPOINT.format(seconds=1.5), silent=True)
    sent = time.monotonic()
    msg_id = k.send_execute("x = 1")
    k._shell_reply(msg_id)
    to_reply = time.monotonic() - sent
    k.collect_iopub(msg_id)
    to_idle = time.monotonic() - sent
    assert to_reply < 1.0 <= to_idle
    # The next request waited for the checkpoint: it sees the new commit.
    assert k.op("status")["result"]["head"]["code"] == "x = 1"


def test_a_failing_checkpoint_never_fails_the_cell_and_says_so_under_each(start_kernel):
    k = start_kernel()
    k.execute("_k = get_ipython().kernel\ndef _boom(*a, **k):\n    raise OSError('disk full')\n"
              "_k.timeline.recorder.record = _boom\ndel _k", silent=True)
    reply, outputs = k.execute("x = 1\nprint('ran')")
    assert reply["status"] == "ok"
    assert "could not be saved" in stderr(outputs) and "disk full" in stderr(outputs)
    reply, outputs = k.execute("x = 2")
    assert reply["status"] == "ok"
    assert "could not be saved either (OSError: disk full)" in stderr(outputs)



def test_write_errors_are_told_under_each_cell_and_saving_resumes_when_they_stop(start_kernel):
    # Inline checkpoints, so the warning is under the cell that failed (a background one's
    # outcome arrives after its cell: under the next, tested below).
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="sync")
    k.execute("x = 1")
    # A real I/O error inside RocksDB: files of the kernel process may not grow past 1 MiB
    # (EFBIG; a full disk gives ENOSPC the same way).
    k.execute("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "_limits = resource.getrlimit(resource.RLIMIT_FSIZE)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, _limits[1]))", silent=True)
    reply, outputs = k.execute("import numpy as np\na = np.random.default_rng(0).random(500_000)")
    assert reply["status"] == "ok"
    assert "could not be saved" in stderr(outputs) and "File too large" in stderr(outputs)
    reply, outputs = k.execute("y = 2")
    assert reply["status"] == "ok" and "could not be saved either" in stderr(outputs)
    k.execute("resource.setrlimit(resource.RLIMIT_FSIZE, _limits)", silent=True)
    _, outputs = k.execute("z = 3")
    assert "saving works again; this state also holds the 2 cells before it" in stderr(outputs)
    _, outputs = k.execute("z = 4")
    assert stderr(outputs) == ""
    assert k.op("undo")["ok"]
    assert k.op("status")["result"]["head"]["cells"] == 3
    assert k.value("[x, y, z, bool((a == np.random.default_rng(0).random(500_000)).all())]") == [
        1, 2, 3, True]
    assert k.op("undo")["ok"] and k.value("sorted(n for n in ('a', 'y', 'z') if n in dir())") == []


def test_a_failed_background_checkpoint_is_told_under_the_next_cell_and_caught_up(
        start_kernel):
    k = start_kernel(TIMETRAVEL_CHECKPOINT_MODE="background")
    k.open_comm()
    k.execute("import os, signal\nimport numpy as np\nx = 1")
    # The next snapshot taken dies (as if the OOM killer chose it); it is taken once the
    # cell's idle status is out.
    k.execute("_k = get_ipython().kernel\n_orig = _k.timeline.recorder.take_due_snapshot\n"
              "def _doomed(_tl=_k.timeline, _orig=_orig):\n"
              "    before = set(_tl.recorder.snapshot_pids)\n"
              "    _orig()\n"
              "    for pid in set(_tl.recorder.snapshot_pids) - before:\n"
              "        _tl.recorder.take_due_snapshot = _orig\n"
              "        os.kill(pid, signal.SIGKILL)\n"
              "_k.timeline.recorder.take_due_snapshot = _doomed\ndel _k, _doomed, _orig",
              silent=True)
    reply, _ = k.execute("a = np.arange(1_000_000)")
    assert reply["status"] == "ok"
    count = reply["execution_count"]
    time.sleep(1.0)  # a person's pace: the failure is known before the next cell
    _, outputs = k.execute("b = 2")
    assert f"the state after cell [{count}] could not be saved" in stderr(outputs)
    warnings = [e for e in k.events if e.get("event") == "warning"]
    assert warnings and warnings[-1]["execution_count"] == count
    time.sleep(1.0)
    _, outputs = k.execute("c = 3")
    assert "saving works again" in stderr(outputs)
    assert k.op("undo")["ok"]
    head = k.op("status")["result"]["head"]
    # the state after "b = 2" holds what the killed snapshot was to save, and says so
    assert head["code"] == "a = np.arange(1_000_000)\n\nb = 2" and head["cells"] == 2
    assert {"a", "b"} <= set(head["changed"])
    assert k.value("[int(a.sum()), b]") == [499999500000, 2]
    assert k.op("undo")["ok"] and k.value("'a' in dir()") is False


def test_unsaveable_values_are_named_once(start_kernel):
    k = start_kernel()
    _, outputs = k.execute("g = (i for i in range(3))")
    assert "not saved" in stderr(outputs) and "g" in stderr(outputs)
    _, outputs = k.execute("h = 1")
    assert stderr(outputs) == ""
    saved = {v["name"]: v["saved"] for v in k.op("vars")["result"]["vars"]}
    assert saved == {"g": False, "h": True}


def test_magics_show_and_move_the_history(start_kernel):
    k = start_kernel()
    k.execute("x = 1")
    k.execute("x = 2")
    _, outputs = k.execute("%tt log")
    text = outputs[-1]["content"]["data"]["text/plain"]
    assert "x = 2" in text and "text/html" in outputs[-1]["content"]["data"]
    _, outputs = k.execute("%timetravel undo")
    assert k.value("x") == 1
    k.execute("%tt undo")
    assert k.value("'x' in globals()") is False  # two magic cells went back two steps
    k.execute("%tt redo")
    assert k.value("x") == 1
    _, outputs = k.execute("%tt frobnicate")
    assert "%tt log" in outputs[-1]["content"]["data"]["text/plain"]
    _, outputs = k.execute("%tt checkout zzzz")
    assert "unknown-commit" in outputs[-1]["content"]["data"]["text/plain"]


def test_disabled_kernel_runs_cells_and_says_why(start_kernel):
    k = start_kernel(TIMETRAVEL_ENABLED="0")
    reply, _ = k.execute("x = 1")
    assert reply["status"] == "ok"
    status = k.op("status")["result"]
    assert status["enabled"] is False
    assert "off" in status["notice"]
    assert k.op("undo")["error"]["code"] == "disabled"


def test_a_hanging_checkpoint_can_be_interrupted_without_harm(start_kernel):
    k = start_kernel()
    k.execute(SLOW_CHECKPOINT.format(seconds=60), silent=True)
    msg_id = k.send_execute("x = 1")
    assert k._shell_reply(msg_id)["content"]["status"] == "ok"
    time.sleep(0.5)
    started = time.monotonic()
    k.km.interrupt_kernel()
    outputs = k.collect_iopub(msg_id)
    assert time.monotonic() - started < 10
    assert "could not be saved" in stderr(outputs) and "KeyboardInterrupt" in stderr(outputs)
    reply, _ = k.execute("y = x + 1")
    assert reply["status"] == "ok"
    assert k.value("y") == 2


def test_reset_magic_is_recorded_and_undoable(start_kernel):
    k = start_kernel()
    k.execute("x = 1\ny = 'kept?'")
    reply, _ = k.execute("%reset -f")
    assert reply["status"] == "ok"
    # %reset is a line magic but not ours: the cell is recorded, deleting both names.
    head = k.op("status")["result"]["head"]
    assert set(head["changed"]) == {"x", "y"}
    assert k.op("undo")["ok"]
    assert k.value("[x, y]") == [1, "kept?"]


def test_completion_inspection_and_debugger_work_as_in_the_stock_kernel(start_kernel):
    replies = {}
    for name in ("python3", "timetravel"):
        k = start_kernel(name)
        k.execute("my_variable = [1, 2]")
        complete = k.kc.complete("my_va", reply=True, timeout=30)["content"]
        inspect = k.kc.inspect("my_variable", reply=True, timeout=30)["content"]
        msg = k.kc.session.msg("debug_request", {
            "type": "request", "seq": 1, "command": "initialize",
            "arguments": {"clientID": "test", "adapterID": "python", "pathFormat": "path",
                          "linesStartAt1": True, "columnsStartAt1": True}})
        k.kc.control_channel.send(msg)
        debug = k.kc.control_channel.get_msg(timeout=30)["content"]
        replies[name] = (complete["matches"], inspect["found"], debug.get("success"),
                         sorted(debug.get("body", {})))
        k.shutdown()
    assert replies["timetravel"] == replies["python3"]
    assert "my_variable" in replies["timetravel"][0]


def test_names_types_and_size_budget_are_configurable(start_kernel):
    # Traits (config files, command line) and environment variables mix; a configured trait
    # wins over its environment variable.
    k = start_kernel(
        arguments=["--TimeTravelKernel.max_var_bytes=100000"],
        TIMETRAVEL_SKIP_NAMES="secret,token", TIMETRAVEL_SKIP_TYPES="fractions.Fraction",
        TIMETRAVEL_MAX_VAR_BYTES="1")
    k.execute("import fractions\nsecret = 's'\nf = fractions.Fraction(1, 3)\n"
              "big = bytes(1_000_000)\nsmall = b'x'")
    saved = {v["name"]: v["saved"] for v in k.op("vars")["result"]["vars"]}
    assert "secret" not in saved
    assert saved.get("f") in (None, False)  # a skipped type is never stored
    assert saved["big"] is False and saved["small"] is True


def test_the_stock_kernel_config_file_applies(start_kernel, tmp_path):
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_kernel_config.py").write_text(
        "c.InteractiveShellApp.exec_lines = ['preloaded = 1', 'from_config = 2']\n"
        "c.TimeTravelKernel.skip_names = ['mine']\n")
    k = start_kernel(IPYTHONDIR=str(tmp_path / "ipython"))
    assert k.value("[preloaded, from_config]") == [1, 2]
    k.execute("mine = 3\nours = 4")
    names = {v["name"] for v in k.op("vars")["result"]["vars"]}
    assert names == {"ours"}  # startup names are hidden like IPython's, `mine` is skipped


def test_subshell_executions_are_recorded_too(start_kernel):
    k = start_kernel()
    msg = k.kc.session.msg("create_subshell_request", {})
    k.kc.control_channel.send(msg)
    reply = k.kc.control_channel.get_msg(timeout=30)["content"]
    subshell_id = reply["subshell_id"]
    request = k.kc.session.msg("execute_request", {
        "code": "from_subshell = 5", "silent": False, "store_history": True,
        "user_expressions": {}, "allow_stdin": False})
    request["header"]["subshell_id"] = subshell_id
    k.kc.shell_channel.send(request)
    k._shell_reply(request["header"]["msg_id"])
    k.collect_iopub(request["header"]["msg_id"])
    assert k.value("from_subshell") == 5
    assert k.op("status")["result"]["head"]["code"] == "from_subshell = 5"


def test_cells_with_ipython_syntax_record_what_they_change_in_place(start_kernel):
    # The checkpoint reads the Python IPython ran (from its input history): a magic or a
    # shell escape hides the names it uses from the raw text.
    k = start_kernel()
    k.execute("lst = [1]\nother = [0]")
    k.execute("%time lst.append(2)")
    k.execute("!true\nother.append(1)")
    assert k.value("[lst, other]") == [[1, 2], [0, 1]]
    assert k.op("undo")["ok"] and k.value("[lst, other]") == [[1, 2], [0]]
    assert k.op("undo")["ok"] and k.value("[lst, other]") == [[1], [0]]
    assert k.op("redo")["ok"] and k.value("[lst, other]") == [[1, 2], [0]]
