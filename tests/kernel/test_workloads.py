"""The shared workload notebooks on real kernels: same outputs as stock, exact undo/redo/restore."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from ..workloads import WORKLOADS, load_notebook_cells
from .harness import Kernel

PROBE_DIR = str(Path(__file__).resolve().parent)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")


def visible_outputs(outputs: list[dict]) -> list[object]:
    """Return what a user sees of a cell's outputs, with memory addresses blanked."""
    seen: list[object] = []
    for msg in outputs:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            seen.append([content["name"], _ADDRESS.sub("0x?", content["text"])])
        elif msg["msg_type"] in ("execute_result", "display_data"):
            seen.append([msg["msg_type"], sorted(content["data"]),
                         _ADDRESS.sub("0x?", content["data"].get("text/plain", ""))])
        elif msg["msg_type"] == "error":
            seen.append(["error", content["ename"]])
    return seen


def describe(kernel: Kernel) -> dict:
    expression = "__import__('tt_state_probe').describe_namespace(globals())"
    reply, _ = kernel.execute("", silent=True, user_expressions={"d": expression})
    result = reply["user_expressions"]["d"]
    assert result["status"] == "ok", result
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def saved_names(kernel: Kernel) -> set[str]:
    return {v["name"] for v in kernel.op("vars")["result"]["vars"] if v["saved"]}


def assert_same_state(actual: dict, expected: dict, names: set[str], where: str) -> None:
    for key in ("values", "aliases"):
        got = {n: v for n, v in actual[key].items() if n in names}
        want = {n: v for n, v in expected[key].items() if n in names}
        assert got == want, f"{where}: {key} differ for {sorted(set(got) ^ set(want)) or ''}"
    assert names <= set(actual["values"]), f"{where}: missing {names - set(actual['values'])}"


@pytest.mark.parametrize("workload", WORKLOADS)
def test_workload_outputs_undo_redo_and_crash_restore(workload, start_kernel, tmp_path):
    cells = load_notebook_cells(workload)
    env = {"PYTHONPATH": PROBE_DIR}
    stock = start_kernel("python3", **env)
    stock_outputs = [visible_outputs(stock.execute(code, cell_id=cid)[1]) for cid, code in cells]
    stock.shutdown()

    notebook = str(tmp_path / f"{workload}.ipynb")
    k = start_kernel(notebook=notebook, **env)
    states = [describe(k)]
    saved = [saved_names(k)]
    for (cid, code), expected in zip(cells, stock_outputs, strict=True):
        reply, outputs = k.execute(code, cell_id=cid)
        visible = [o for o in visible_outputs(outputs)
                   if not (o[0] == "stderr" and "time travel" in str(o[1]))]
        assert visible == expected, f"cell {cid} shows different outputs"
        states.append(describe(k))
        saved.append(saved_names(k))

    for step in range(len(cells), 0, -1):
        reply = k.op("undo")
        assert reply["ok"], reply
        assert_same_state(describe(k), states[step - 1], saved[step - 1], f"undo to {step - 1}")
    assert k.op("undo")["error"]["code"] == "nothing-to-undo"
    for step in range(1, len(cells) + 1):
        assert k.op("redo")["ok"]
        assert_same_state(describe(k), states[step], saved[step], f"redo to {step}")

    k.kill()
    restored = start_kernel(notebook=notebook, **env)
    assert_same_state(describe(restored), states[-1], saved[-1], "after SIGKILL")
