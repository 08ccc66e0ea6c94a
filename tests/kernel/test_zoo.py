"""The value and construct zoos through real kernels: saved, exact under undo, redo and restart."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from ..zoo import CONSTRUCTS, DTYPES, Zoo, assert_same
from .harness import Kernel, stderr
from .test_workloads import PROBE_DIR, describe


def observe(kernel: Kernel, zoo: Zoo) -> object:
    if not zoo.observe:
        return None
    expression = f"__import__('json').dumps({zoo.observe}, default=repr)"
    reply, _ = kernel.execute("", silent=True, user_expressions={"o": expression})
    result = reply["user_expressions"]["o"]
    assert result["status"] == "ok", result
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def snapshot(kernel: Kernel, zoo: Zoo) -> tuple[dict, object]:
    described = describe(kernel)
    state = {key: {n: v for n, v in described[key].items() if n in zoo.names}
             for key in ("values", "aliases")}
    return state, observe(kernel, zoo)


def run(kernel: Kernel, code: str) -> None:
    reply, outputs = kernel.execute(code)
    assert reply["status"] == "ok", reply
    assert "time travel" not in stderr(outputs), stderr(outputs)  # nothing refused


@pytest.mark.parametrize("zoo", [DTYPES, CONSTRUCTS], ids=["dtypes", "constructs"])
def test_zoo_in_a_kernel_undo_past_definitions_redo_and_crash_restore(
        zoo: Zoo, start_kernel, tmp_path: Path) -> None:
    notebook = str(tmp_path / "zoo.ipynb")
    k = start_kernel(notebook=notebook, PYTHONPATH=PROBE_DIR)
    run(k, zoo.setup)
    imported = set(describe(k)["values"])
    states = []
    for code in (zoo.create, zoo.modify):
        run(k, code)
        states.append(snapshot(k, zoo))
    variables = {v["name"]: v for v in k.op("vars")["result"]["vars"]}
    refused = {n: variables[n].get("reason") for n in zoo.names if not variables[n]["saved"]}
    assert not refused, refused

    assert k.op("undo")["ok"]
    assert_same(snapshot(k, zoo), states[0], "undo")
    assert k.op("undo")["ok"]  # past the cell that defined everything
    assert not (zoo.names - imported) & set(describe(k)["values"])
    assert k.op("redo")["ok"]
    assert_same(snapshot(k, zoo), states[0], "redo past the definitions")
    assert k.op("redo")["ok"]
    assert_same(snapshot(k, zoo), states[1], "redo")

    k.kill()
    restored = start_kernel(notebook=notebook, PYTHONPATH=PROBE_DIR)
    assert_same(snapshot(restored, zoo), states[1], "after SIGKILL and a new kernel")
