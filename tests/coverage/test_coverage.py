"""Library coverage through real kernels: every class exact under undo, redo and restart.

Each batch of ``cases.py`` runs in one kernel: setup, the cell creating every case, the cell
changing them; then undo, undo past the definitions, redo twice, SIGKILL and a new kernel
restoring the session. Every name must be saved at checkpoint and come back exactly (by the
value probe, its identity relations to other names, and its case's observation), or be refused
at checkpoint time with the expected reason; undo and redo must always answer ok.

The rows measured here are the table of docs/coverage.md: ``TIMETRAVEL_WRITE_COVERAGE=1``
rewrites it; otherwise the last test checks that the document says what the run found.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from ..kernel.harness import Kernel, stderr
from ..kernel.test_workloads import PROBE_DIR, describe
from .cases import BATCHES, Batch
from .report import DOC, parse_outcomes, render

ROWS: dict[str, list[dict]] = {}


def evaluate(kernel: Kernel, expression: str) -> object:
    """Return the JSON an expression (evaluating to a JSON string) gives in the kernel."""
    reply, _ = kernel.execute("", silent=True, user_expressions={"e": expression})
    result = reply["user_expressions"]["e"]
    assert result["status"] == "ok", result
    return json.loads(ast.literal_eval(result["data"]["text/plain"]))


def probe(kernel: Kernel, function: str, names: set[str]) -> dict:
    return evaluate(kernel, f"__import__('tt_state_probe').{function}(globals(), "
                            f"{sorted(names)!r})")


def snapshot(kernel: Kernel, batch: Batch) -> dict[str, object]:
    """Return, per name, its description, whom it aliases and its case's observation."""
    described = describe(kernel)
    listed = ", ".join(f"{c.name!r}: ({c.observe}) if {set(c.names)!r} <= globals().keys() "
                       "else None" for c in batch.cases if c.observe)
    observed = evaluate(kernel, f"__import__('json').dumps({{{listed}}}, default=repr)")
    state = {}
    for case in batch.cases:
        for name in case.names:
            value = described["values"].get(name)
            if case.by_behaviour and value is not None:
                value = value[0]  # its class: the observation judges the rest
            state[name] = [value, described["aliases"].get(name), observed.get(case.name)]
    return state


def run(kernel: Kernel, code: str) -> str:
    reply, outputs = kernel.execute(code)
    assert reply["status"] == "ok", reply
    return stderr(outputs)


def matching(state: dict[str, object], expected: dict[str, object], names: set[str],
             differences: dict[str, str]) -> set[str]:
    """Return the names whose state is as expected; describe the first difference of others."""
    for name in names:
        if state.get(name) != expected[name]:
            got, want = json.dumps(state.get(name)), json.dumps(expected[name])
            at = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                      min(len(got), len(want)))
            at = max(at, 60)
            differences.setdefault(name, f"got ...{got[at - 60:at + 60]}... "
                                         f"expected ...{want[at - 60:at + 60]}...")
    return {n for n in names if state.get(n) == expected[n]}


def run_batch(batch: Batch, start_kernel, notebook: Path) -> list[dict]:
    """Run one batch through undo, redo and a restart; return its report rows."""
    env = {"PYTHONPATH": PROBE_DIR, **dict(batch.env)}
    k = start_kernel(notebook=str(notebook), **env)
    run(k, batch.setup)
    run(k, batch.create)
    created = probe(k, "describe_classes", batch.names)
    states = [snapshot(k, batch)]
    run(k, batch.modify)
    changed = probe(k, "describe_classes", batch.names)
    saving = probe(k, "describe_saving", batch.names)
    states.append(snapshot(k, batch))
    variables = {v["name"]: v for v in k.op("vars")["result"]["vars"]}
    saved = {n for n in batch.names if variables[n]["saved"]}

    undo = k.op("undo")
    assert undo["ok"], undo
    kept = {n: why for n, why in undo["result"]["unrestored"].items() if "kept as it is" in why}
    differences: dict[str, str] = {}
    after_undo = matching(snapshot(k, batch), states[0], saved, differences)
    assert k.op("undo")["ok"]  # past the cell that made them
    assert not batch.names & set(describe(k)["values"])
    for where in ("redo past the definitions", "redo"):
        redo = k.op("redo")
        assert redo["ok"], (where, redo)
    after_redo = matching(snapshot(k, batch), states[1], saved, differences)
    k.kill()
    restored = start_kernel(notebook=str(notebook), **env)
    after_restore = matching(snapshot(restored, batch), states[1], saved, differences)

    rows = []
    for case in batch.cases:
        for name in case.names:
            variable = variables[name]
            first, last = created[name], changed[name]
            if not case.modify or states[0][name] == states[1][name]:
                change = "none"
            elif first["id"] == last["id"]:
                change = "in place"
            else:
                change = "rebound"
            rows.append({
                "case": " ".join(case.names), "name": name, "class": last["class"],
                "library": last["distribution"][0], "version": last["distribution"][1],
                "change": change, "modified": bool(case.modify),
                "changed": states[0][name] != states[1][name],
                "saved": variable["saved"], "reason": variable.get("reason", ""),
                "how": saving[name], "covariable": variable["covariable"],
                "undo": name in after_undo, "redo": name in after_redo,
                "restore": name in after_restore, "expected_refusal": case.refused,
                "difference": differences.get(name, ""), "by_behaviour": case.by_behaviour,
                "kept": kept.get(name, ""), "expected_unloadable": case.unloadable,
            })
    return rows


@pytest.mark.parametrize("batch", BATCHES, ids=[b.title for b in BATCHES])
def test_batch_is_exact_under_undo_redo_and_restart_or_refused_at_checkpoint(
        batch: Batch, start_kernel, tmp_path: Path) -> None:
    rows = run_batch(batch, start_kernel, tmp_path / "coverage.ipynb")
    ROWS[batch.title] = rows
    refused = {r["name"]: r["reason"] for r in rows if not r["saved"]}
    unexpected = {n: why for n, why in refused.items()
                  if not any(r["expected_refusal"] and r["expected_refusal"] in why
                             for r in rows if r["name"] == n)}
    assert not unexpected, f"refused at checkpoint: {unexpected}"
    accepted = {r["case"] for r in rows if r["expected_refusal"]} - {
        r["case"] for r in rows if r["expected_refusal"] and not r["saved"]}
    assert not accepted, f"expected to be refused, but saved: {accepted}"
    unobserved = [r["name"] for r in rows if r["modified"] and r["saved"]
                  and not r["changed"] and r["name"] == r["case"].split()[0]]
    assert not unobserved, f"the change of these is invisible to the probe: {unobserved}"
    kept = {r["name"]: r["kept"] for r in rows if r["kept"]}
    unexpected = {n: why for n, why in kept.items()
                  if not any(r["expected_unloadable"] and r["expected_unloadable"] in why
                             for r in rows if r["name"] == n)}
    assert not unexpected, f"saved, but cannot be loaded back (undo kept them): {unexpected}"
    loaded = [r["name"] for r in rows if r["expected_unloadable"] and not r["kept"]]
    assert not loaded, f"expected not to load back, but undo loaded them: {loaded}"
    for step in ("undo", "redo", "restore"):
        # a name whose case has a refused part (an instance of a refused class) may be lost
        inexact = {r["name"]: r["difference"] for r in rows
                   if r["saved"] and not r["kept"] and not r["expected_refusal"]
                   and not r[step]}
        assert not inexact, f"{step}: not exact for {inexact}"


def test_coverage_document_is_the_table_the_suite_measured(start_kernel, tmp_path: Path) -> None:
    for batch in BATCHES:
        if batch.title not in ROWS:  # selected alone: run what the table needs
            ROWS[batch.title] = run_batch(batch, start_kernel, tmp_path / f"{len(ROWS)}.ipynb")
    rows = [row for batch in BATCHES for row in ROWS[batch.title]]
    exact = [r for r in rows if all(r[step] for step in ("saved", "undo", "redo", "restore"))]
    classes = {r["class"] for r in exact}
    libraries = {r["library"] for r in exact}
    assert len(classes) >= 150, len(classes)
    assert len(libraries) >= 25, sorted(libraries)
    document = render(rows)
    if os.environ.get("TIMETRAVEL_WRITE_COVERAGE"):
        DOC.write_text(document)
    assert parse_outcomes(DOC.read_text()) == parse_outcomes(document), (
        "docs/coverage.md is out of date: rerun this test with TIMETRAVEL_WRITE_COVERAGE=1")
