"""The labextension in a real JupyterLab and Notebook 7, driven like a person drives them.

One `jupyter lab` server and one Chromium serve the whole module; each test opens its own
notebook. Screenshots go to tests/browser/artifacts/; with TIMETRAVEL_UPDATE_DOCS=1 the ones
docs/extension.md shows are copied into docs/images/ as well.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from . import pages

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from .conftest import LabServer

DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


def _screenshot(page: Page, artifacts: Path, name: str) -> Path:
    path = artifacts / name
    page.screenshot(path=str(path))
    if os.environ.get("TIMETRAVEL_UPDATE_DOCS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_IMAGES / name)
    return path


def _new_time_travel_notebook(page: Page, lab: LabServer) -> str:
    pages.open_lab(page, lab.url("/lab"))
    pages.new_notebook(page, pages.KERNEL_DISPLAY_NAME)
    pages.wait_time_travel_ready(page)
    return pages.current_notebook_name(page)


def test_undo_redo_shortcuts_and_history_panel(page: Page, lab: LabServer,
                                               artifacts: Path) -> None:
    _new_time_travel_notebook(page, lab)
    pages.run_in_new_cell(page, "x = 1")
    pages.run_in_new_cell(page, "x = 2")
    pages.wait_head(page, 2)
    assert "of 1.9 GB stored" in pages.status_text(page)  # the store's budget, 2e9 bytes

    # Undo (focus still in the new cell's editor: edit mode) then redo (command mode).
    page.keyboard.press(pages.UNDO_KEYS)
    pages.wait_head(page, 1)
    pages.toast(page, "Now at [1] x = 1").wait_for()
    pages.press(page, pages.REDO_KEYS)
    pages.wait_head(page, 2)
    assert pages.run_in_new_cell(page, "print(x)") == "2"  # [3]

    # Undo the print and the assignment: a new cell sees the earlier value.
    pages.press(page, pages.UNDO_KEYS)
    pages.wait_head(page, 2)
    pages.press(page, pages.UNDO_KEYS)
    pages.wait_head(page, 1)
    assert pages.run_in_new_cell(page, "print(x)") == "1"  # [4], a new branch from [1]

    # The History panel lists the tree; a click on [2] jumps there.
    panel = pages.open_history(page)
    head = panel.locator(".jp-TimeTravel-commit.jp-mod-head")
    assert head.get_attribute("data-execution-count") == "4"
    assert panel.locator(".jp-TimeTravel-commit").count() == 5  # start, [1], [2], [3], [4]
    assert "x" in pages.history_row(page, 1).locator(".jp-TimeTravel-changed").inner_text()
    pages.history_row(page, 2).click()
    pages.wait_head(page, 2)
    assert pages.run_in_new_cell(page, "print(x)") == "2"  # [5]
    # The open panel follows checkpoints live: [5] is there and is HEAD, nothing clicked.
    panel.locator('.jp-TimeTravel-commit.jp-mod-head[data-execution-count="5"]').wait_for()

    # Tick [1] and [2]: the diff says x changed.
    pages.history_row(page, 1).locator(".jp-TimeTravel-compare").check()
    pages.history_row(page, 2).locator(".jp-TimeTravel-compare").check()
    diff = panel.locator(".jp-TimeTravel-diff")
    diff.locator(".jp-TimeTravel-diff-changed").filter(has_text="x").wait_for()
    assert "From [1] x = 1 to [2] x = 2" in diff.inner_text()
    pages.wait_toasts_gone(page)
    _screenshot(page, artifacts, "history-panel.png")

    # The toolbar button does what the shortcut does: from [5] back to its parent [2].
    page.locator('.jp-NotebookPanel:visible [data-jp-item-name="timetravel-undo"] '
                 "jp-button").click()
    pages.wait_head(page, 2)


RUN_ALL_CELLS = (
    "import numpy as np\nbig = np.zeros(20_000_000)",  # 160 MB: each state is a snapshot
    "x = 1\nbig[1] = 1", "x = 2\nbig[2] = 2", "x = 3\nbig[3] = 3", "x = 4\nbig[4] = 4")


def test_run_all_then_one_undo_takes_back_exactly_the_last_cell(page: Page,
                                                                 lab: LabServer) -> None:
    lab.put_notebook("run-all.ipynb", "timetravel", pages.KERNEL_DISPLAY_NAME, RUN_ALL_CELLS)
    page.goto(lab.url("/lab/tree/run-all.ipynb?reset"))
    pages.cells(page).nth(4).wait_for(timeout=pages.RUN_TIMEOUT)
    pages.wait_time_travel_ready(page)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type("Run All Cells")
    page.keyboard.press("Enter")
    pages.cells(page).nth(4).locator(".jp-InputPrompt").filter(
        has_text="[5]").wait_for(timeout=pages.RUN_TIMEOUT)
    pages.wait_kernel_idle(page)
    pages.wait_head(page, 5)  # every state saved; the status bar no longer says "saving"
    pages.press(page, pages.UNDO_KEYS)
    pages.toast(page, "Now at [4] x = 3").wait_for()
    assert pages.run_in_new_cell(page, "print(x, big[1:5].tolist())") == "3 [1.0, 2.0, 3.0, 0.0]"
    panel = pages.open_history(page)
    assert panel.locator(".jp-TimeTravel-commit").count() == 7  # start, [1]-[5], [6]


def test_crash_restores_state_with_a_notification(page: Page, lab: LabServer,
                                                   artifacts: Path) -> None:
    name = _new_time_travel_notebook(page, lab)
    pages.run_in_new_cell(page, "x = 41; y = [1, 2]")
    pages.run_in_new_cell(page, "x += 1")
    pages.wait_head(page, 2)

    os.kill(lab.kernel_pid(name), signal.SIGKILL)

    toast = pages.toast(page, "crashed and restarted")
    toast.wait_for(timeout=pages.RUN_TIMEOUT)
    assert "the state after [2] x += 1 is back" in toast.inner_text()
    # JupyterLab's own "Kernel Restarting" dialog comes too.
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.locator(".jp-mod-accept").click()
    pages.wait_time_travel_ready(page)
    output = pages.run_in_new_cell(page, "print(x, y)")
    assert output.splitlines()[-1] == "42 [1, 2]"
    pages.settle_toasts(page)
    _screenshot(page, artifacts, "restore-after-crash.png")


def test_crash_offers_a_rebuild_of_the_generator_with_a_button(page: Page, lab: LabServer,
                                                               artifacts: Path) -> None:
    name = _new_time_travel_notebook(page, lab)
    pages.run_in_new_cell(page, "squares = (i * i for i in range(10))")
    pages.run_in_new_cell(page, "next(squares); next(squares)")
    pages.wait_head(page, 2)

    os.kill(lab.kernel_pid(name), signal.SIGKILL)

    toast = pages.toast(page, "can be rebuilt")
    toast.wait_for(timeout=pages.RUN_TIMEOUT)
    assert "squares can be rebuilt by running cells [1], [2] again" in toast.inner_text()
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        dialog.locator(".jp-mod-accept").click()
    pages.wait_time_travel_ready(page)
    pages.settle_toasts(page)
    _screenshot(page, artifacts, "rebuild-offer.png")
    toast.get_by_role("button", name="Rebuild").click()
    pages.toast(page, "Rebuilt squares").wait_for(timeout=pages.RUN_TIMEOUT)
    assert pages.run_in_new_cell(page, "print(next(squares))").splitlines()[-1] == "4"


def test_restart_offers_restore_button(page: Page, lab: LabServer, artifacts: Path) -> None:
    _new_time_travel_notebook(page, lab)
    pages.run_in_new_cell(page, "z = {'a': 1}")
    pages.wait_head(page, 1)

    # Kernel > Restart Kernel..., confirmed: the kernel starts empty and offers the old state.
    page.keyboard.press("Escape")
    page.keyboard.press("0")
    page.keyboard.press("0")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    toast = pages.toast(page, "can be restored")
    toast.wait_for(timeout=pages.RUN_TIMEOUT)
    pages.settle_toasts(page)
    _screenshot(page, artifacts, "restore-offer.png")
    toast.get_by_role("button", name="Restore").click()
    pages.toast(page, re.compile(r"Now at \[1\]")).wait_for()
    assert pages.run_in_new_cell(page, "print(z)").splitlines()[-1] == "{'a': 1}"


def test_stock_kernel_gets_a_hint_not_commands(page: Page, lab: LabServer) -> None:
    pages.open_lab(page, lab.url("/lab"))
    stock = page.locator('.jp-LauncherCard[data-category="Notebook"]').filter(
        has_not_text="time-travel").first
    display = stock.get_attribute("title") or ""
    pages.new_notebook(page, display)
    undo = page.locator('.jp-NotebookPanel:visible [data-jp-item-name="timetravel-undo"] '
                        "jp-button")
    assert undo.get_attribute("aria-disabled") == "true"
    assert "Python 3 (time-travel)" in (undo.get_attribute("title") or "")
    panel = pages.open_history(page)
    hint = panel.locator(".jp-TimeTravel-hint")
    assert "time-travel" in hint.inner_text()
    assert panel.locator(".jp-TimeTravel-commit").count() == 0
    assert pages.status_text(page) == "Time travel: off"
    # The shortcut does nothing, and cells still run.
    pages.run_in_new_cell(page, "v = 1")
    pages.press(page, pages.UNDO_KEYS)
    assert pages.run_in_new_cell(page, "print(v)") == "1"


def test_notebook7_undo_shortcut(page: Page, lab: LabServer) -> None:
    lab.put_notebook("nb7.ipynb", "timetravel", pages.KERNEL_DISPLAY_NAME)
    page.goto(lab.url("/notebooks/nb7.ipynb"))
    pages.cells(page).first.wait_for(timeout=pages.RUN_TIMEOUT)
    pages.wait_time_travel_ready(page)
    pages.run_in_new_cell(page, "x = 1")
    pages.run_in_new_cell(page, "x = 2")
    pages.press(page, pages.UNDO_KEYS)
    pages.toast(page, "Now at [1] x = 1").wait_for()
    assert pages.run_in_new_cell(page, "print(x)") == "1"
    # The History panel opens from the command palette in Notebook 7's left sidebar too.
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type("Show cell-state history")
    page.keyboard.press("Enter")
    head = page.locator("#timetravel-history .jp-TimeTravel-commit.jp-mod-head")
    head.wait_for()
    assert head.get_attribute("data-execution-count") == "3"


def _restore_one_variable(page: Page, panel: Locator) -> None:
    """Cells [1]-[3] made x [1] then [1, 2] and y; restore x from [1], then [2] as x_two."""
    pages.open_variables(page)
    versions = pages.variable_versions(page, "x")
    assert versions.count() == 2
    assert versions.first.locator(".jp-TimeTravel-headBadge").count() == 1
    versions.filter(has=page.locator(".jp-TimeTravel-count", has_text="[1]")).locator(
        ".jp-TimeTravel-restoreVersion").click()
    panel.locator(".jp-TimeTravel-message").filter(has_text="Restored x from [1]").wait_for()
    assert pages.run_in_new_cell(page, "print(x, y)") == "[1] 5"

    # Restore as…: the version of [2] beside the current one, under the name typed.
    versions = pages.variable_versions(page, "x")
    # The restore is a new state: the list shows it, current, above [2] and [1].
    versions.filter(has=page.locator(".jp-TimeTravel-count", has_text="restore")).locator(
        ".jp-TimeTravel-headBadge").wait_for()
    assert versions.count() == 3
    versions.filter(has=page.locator(".jp-TimeTravel-count", has_text="[2]")).locator(
        ".jp-TimeTravel-restoreAs").click()
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill("x_two")
    dialog.locator(".jp-mod-accept").click()
    panel.locator(".jp-TimeTravel-message").filter(has_text="Restored x as x_two").wait_for()
    assert pages.run_in_new_cell(page, "print(x, x_two)") == "[1] [1, 2]"


def _compare_values(page: Page, panel: Locator) -> None:
    """Tick [1] and [2] in the States view: the diff says what changed inside x."""
    panel.locator('.jp-TimeTravel-tab[data-view="states"]').click()
    pages.history_row(page, 1).locator(".jp-TimeTravel-compare").check()
    pages.history_row(page, 2).locator(".jp-TimeTravel-compare").check()
    value = panel.locator('.jp-TimeTravel-diff-value[data-name="x"]')
    value.wait_for()
    assert value.inner_text() == "x: list of 1 → 2 items: added 1 at the end"


def test_variables_view_restores_one_version_and_compare_shows_values(
        page: Page, lab: LabServer, artifacts: Path) -> None:
    _new_time_travel_notebook(page, lab)
    pages.run_in_new_cell(page, "x = [1]")
    pages.run_in_new_cell(page, "x.append(2)")
    pages.run_in_new_cell(page, "y = 5")
    pages.wait_head(page, 3)
    panel = pages.open_history(page)
    _restore_one_variable(page, panel)
    pages.wait_toasts_gone(page)
    _screenshot(page, artifacts, "history-variables.png")
    _compare_values(page, panel)
    _screenshot(page, artifacts, "history-value-diff.png")


def test_notebook7_variables_view(page: Page, lab: LabServer) -> None:
    lab.put_notebook("nb7-vars.ipynb", "timetravel", pages.KERNEL_DISPLAY_NAME)
    page.goto(lab.url("/notebooks/nb7-vars.ipynb"))
    pages.cells(page).first.wait_for(timeout=pages.RUN_TIMEOUT)
    pages.wait_time_travel_ready(page)
    pages.run_in_new_cell(page, "x = [1]")
    pages.run_in_new_cell(page, "x.append(2)")
    pages.run_in_new_cell(page, "y = 5")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+c")
    page.keyboard.type("Show cell-state history")
    page.keyboard.press("Enter")
    panel = page.locator("#timetravel-history")
    panel.locator('.jp-TimeTravel-commit.jp-mod-head[data-execution-count="3"]').wait_for()
    _restore_one_variable(page, panel)
    _compare_values(page, panel)
