"""VS Code's kernel start replayed through jupyter_client: crash restore keyed by the notebook.

VS Code's Jupyter extension (read in microsoft/vscode-jupyter, kernel.ts and helpers.ts) starts
a kernel without ``JPY_SESSION_NAME``, then sends, each as an execute_request with
``silent: false, store_history: false, allow_stdin: true``: a probe of the ipywidgets version,
then one block of start-up code that assigns the notebook's path to ``__vsc_ipynb_file__``,
turns jedi off and sets matplotlib up; then a kernel_info_request. A restart after a crash is
a new kernel process with a new connection file, and the same sequence.
"""

from __future__ import annotations

from .harness import stderr


def _vscode_start(kernel, notebook: str) -> None:
    """Send what VS Code sends before the user's first cell (our own wording of it)."""
    probe = ("try:\n    import ipywidgets as _probe_widgets\n"
             "    print('ipywidgets version', _probe_widgets.__version__)\n"
             "    del _probe_widgets\nexcept ImportError:\n    pass")
    startup = (f"__vsc_ipynb_file__ = {notebook!r}\n"
               "get_ipython().run_line_magic('config', 'Completer.use_jedi = False')\n"
               "try:\n    import matplotlib\n    get_ipython().run_line_magic('matplotlib', "
               "'inline')\nexcept Exception:\n    print('matplotlib is not set up')")
    for code in (probe, startup):
        msg = kernel.kc.session.msg("execute_request", {
            "code": code, "silent": False, "store_history": False, "user_expressions": {},
            "allow_stdin": True, "stop_on_error": False})
        kernel.kc.shell_channel.send(msg)
        reply = kernel._shell_reply(msg["header"]["msg_id"])
        assert reply["content"]["status"] == "ok", reply["content"]
        kernel.collect_iopub(msg["header"]["msg_id"])
    kernel.kc.kernel_info()


def test_state_comes_back_after_a_crash_in_vscode(start_kernel, store_dir, tmp_path):
    notebook = str(tmp_path / "analysis.ipynb")
    first = start_kernel()
    _vscode_start(first, notebook)
    first.execute("x = 41")
    first.execute("x += 1\nitems = [x, 'a']")
    status = first.op("status")["result"]
    assert status["store"]["path"].split("/")[-1].startswith("analysis.ipynb-")
    # VS Code's own executions are not states the user would undo.
    assert [c["code"] for c in first.op("log")["result"]["commits"][:2]] == [
        "x += 1\nitems = [x, 'a']", "x = 41"]
    first.kill()

    second = start_kernel()  # a new process and a new connection file
    assert second.km.connection_file != first.km.connection_file
    _vscode_start(second, notebook)
    reply, outputs = second.execute("print(x, items)")
    assert reply["status"] == "ok"
    assert "42 [42, 'a']" in "".join(o["content"].get("text", "") for o in outputs)
    assert "the previous kernel crashed; restored its state after" in stderr(outputs)
    # The connection-keyed stores of both processes are gone: nothing could find them again.
    assert [p.name.split("-")[0] for p in store_dir.iterdir()] == ["analysis.ipynb"]


def test_a_kernel_outside_vscode_keeps_its_key(start_kernel, store_dir):
    k = start_kernel(notebook="/home/u/lab.ipynb")
    k.execute("__vsc_ipynb_file__ = '/elsewhere/other.ipynb'\ny = 1")
    assert k.op("status")["result"]["store"]["path"].split("/")[-1].startswith("lab.ipynb-")
