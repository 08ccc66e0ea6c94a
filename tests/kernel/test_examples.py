"""examples/time_travel.ipynb runs as its text says: undo, redo, branch, crash restore."""

from __future__ import annotations

import json
from pathlib import Path

from .harness import stderr

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "time_travel.ipynb"


def shown(outputs: list[dict]) -> str:
    return "\n".join(o["content"]["data"]["text/plain"] for o in outputs
                     if o["msg_type"] == "execute_result")


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
    assert shown(seen["mistake"][1]) == "2"
    assert shown(seen["undo"][1]).endswith("6")
    assert shown(seen["redo"][1]).endswith("2")
    assert "price_eur" in shown(seen["branch"][1])
    assert "restored" in stderr(seen["after-crash"][1])
    assert "(6, 3)" in shown(seen["after-crash"][1])
