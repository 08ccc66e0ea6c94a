"""examples/time_travel.ipynb runs as its text says: undo, redo, branch, crash restore."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .harness import stderr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "time_travel.ipynb"


def shown(outputs: list[dict]) -> str:
    return "\n".join(o["content"]["data"]["text/plain"] for o in outputs
                     if o["msg_type"] == "execute_result")


def _tells_its_story(seen: dict[str, tuple[dict, list[dict]]]) -> None:
    """What the notebook's comments say each cell shows."""
    assert shown(seen["mistake"][1]) == "2"
    assert shown(seen["undo"][1]).endswith("6")
    assert shown(seen["redo"][1]).endswith("2")
    assert "price_eur" in shown(seen["branch"][1])
    assert "restored" in stderr(seen["after-crash"][1])
    assert "(6, 3)" in shown(seen["after-crash"][1])


def test_example_notebook_tells_the_truth(start_kernel, tmp_path):
    notebook = json.loads(EXAMPLE.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "timetravel"
    path = str(tmp_path / "time_travel.ipynb")
    k = start_kernel(notebook=path)
    seen: dict[str, tuple[dict, list[dict]]] = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "".join(cell["source"])
        if "os._exit" in code:
            k.kill()  # what the cell does; the server would start a new kernel
            k = start_kernel(notebook=path)
            continue
        seen[cell["id"]] = k.execute(code, cell_id=cell["id"])
        if cell["id"] != "restore":
            assert seen[cell["id"]][0]["status"] == "ok", (cell["id"], seen[cell["id"]])
    _tells_its_story(seen)


def test_example_notebook_tells_the_truth_under_run_all(start_kernel, tmp_path):
    # "Run All" as JupyterLab does it: every cell sent at once. The crash cell really ends the
    # kernel (the requests after it are lost) and the user runs the cells after it again on
    # the next kernel. Cells that use %tt must see one state per cell before them (no cells
    # folded into one state), so the crash does not lose the cells run just before it either.
    notebook = json.loads(EXAMPLE.read_text())
    cells = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    crash = next(i for i, c in enumerate(cells) if "os._exit" in "".join(c["source"]))
    path = str(tmp_path / "time_travel.ipynb")
    k = start_kernel(notebook=path)
    sent = [(c["id"], k.send_execute("".join(c["source"]), cell_id=c["id"])) for c in cells]
    seen: dict[str, tuple[dict, list[dict]]] = {}
    # The last cell before the crash is not waited for: its messages may die with the kernel.
    for cell_id, msg_id in sent[:crash - 1]:
        reply = k._shell_reply(msg_id)["content"]
        seen[cell_id] = (reply, k.collect_iopub(msg_id))
        assert reply["status"] == "ok", (cell_id, seen[cell_id])
    deadline = time.monotonic() + 60
    while k.km.is_alive():  # the crash cell ends the process
        assert time.monotonic() < deadline
        time.sleep(0.05)
    k.kill(saved=False)
    k = start_kernel(notebook=path)
    for cell in cells[crash + 1:]:
        seen[cell["id"]] = k.execute("".join(cell["source"]), cell_id=cell["id"])
    _tells_its_story(seen)
