"""What a person does in JupyterLab and Notebook 7, as playwright steps the tests share.

Selectors are JupyterLab 4.6's own classes plus the extension's (`jp-TimeTravel-*`). Every
wait is on something visible, never a sleep, so a slow machine only makes the tests slower.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

KERNEL_DISPLAY_NAME = "Python 3 (time-travel)"
UNDO_KEYS = "Control+Alt+z"
REDO_KEYS = "Control+Alt+Shift+z"
RUN_TIMEOUT = 90_000


def open_lab(page: Page, url: str) -> None:
    """Open JupyterLab with a fresh layout (`reset`) and wait for the launcher."""
    page.goto(url + ("&" if "?" in url else "?") + "reset")
    page.locator(".jp-LauncherCard").first.wait_for(timeout=90_000)


def new_notebook(page: Page, kernel: str = KERNEL_DISPLAY_NAME) -> None:
    """Pick `kernel` in the launcher's Notebook section and wait until it runs and is idle."""
    page.locator(f'.jp-LauncherCard[data-category="Notebook"][title="{kernel}"]').click()
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for()
    # The kernel starts after the notebook opens: a cell run before it would not execute.
    page.locator("#jp-main-statusbar").filter(has_text=f"{kernel} | Idle").wait_for(
        timeout=RUN_TIMEOUT)
    wait_kernel_idle(page)


def wait_time_travel_ready(page: Page) -> None:
    """Wait until the extension has talked to the kernel: its toolbar undo button is enabled."""
    page.locator('.jp-NotebookPanel:visible [data-jp-item-name="timetravel-undo"] '
                 'jp-button[aria-disabled="false"]').wait_for(timeout=RUN_TIMEOUT)


def current_notebook_name(page: Page) -> str:
    """The file name on the active JupyterLab tab."""
    return page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current "
                        ".lm-TabBar-tabLabel").inner_text().strip()


def wait_kernel_idle(page: Page, timeout: float = RUN_TIMEOUT) -> None:
    """Wait until the notebook toolbar's kernel indicator says idle."""
    page.locator(".jp-NotebookPanel:visible .jp-Notebook-ExecutionIndicator"
                 "[data-status='idle']").wait_for(timeout=timeout)


def cells(page: Page) -> Locator:
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell")


def run_in_new_cell(page: Page, code: str) -> str:
    """Type `code` into the last cell (a new one if it is not empty), run it, return its output."""
    all_cells = cells(page)
    last = all_cells.last
    if last.locator(".cm-content").inner_text().strip():
        page.keyboard.press("Escape")
        last.click(position={"x": 5, "y": 5})
        page.keyboard.press("b")
        last = cells(page).last
    editor = last.locator(".cm-content")
    editor.click()
    page.keyboard.type(code)
    count_before = all_cells.count()
    page.keyboard.press("Shift+Enter")
    # Shift+Enter on the last cell adds a new one; the ran cell is then second to last.
    ran = cells(page).nth(count_before - 1)
    prompt = ran.locator(".jp-InputPrompt")
    prompt.filter(has_text=re.compile(r"\[\d+\]")).wait_for(timeout=RUN_TIMEOUT)
    wait_kernel_idle(page)
    return output_of(ran)


def output_of(cell: Locator) -> str:
    outputs = cell.locator(".jp-OutputArea-output")
    return "\n".join(outputs.all_inner_texts()).strip()


def press(page: Page, keys: str) -> None:
    """Press a shortcut with the focus in the notebook (command mode)."""
    page.keyboard.press("Escape")
    page.keyboard.press(keys)


def status_text(page: Page) -> str:
    return page.locator(".jp-TimeTravel-status").inner_text()


def wait_head(page: Page, execution_count: int | str) -> None:
    """Wait until the status bar shows HEAD at the cell with that execution count."""
    page.locator(".jp-TimeTravel-status").filter(
        has_text=re.compile(rf"HEAD \[{execution_count}\]")).wait_for()


def open_history(page: Page) -> Locator:
    """Open the History side panel (its tab in the left sidebar) and return it."""
    panel = page.locator("#timetravel-history")
    if not panel.is_visible():
        page.locator('.jp-SideBar .lm-TabBar-tab[data-id="timetravel-history"]').click()
    panel.wait_for()
    return panel


def history_row(page: Page, execution_count: int) -> Locator:
    return page.locator(
        f'#timetravel-history .jp-TimeTravel-commit[data-execution-count="{execution_count}"]')


def toast(page: Page, text: str | re.Pattern[str]) -> Locator:
    """A notification toast containing `text`."""
    return page.locator(".Toastify__toast").filter(has_text=text)


def settle_toasts(page: Page) -> None:
    """Wait until no toast is sliding in, so a screenshot shows them whole."""
    page.wait_for_function(
        "!document.querySelector('.Toastify__toast[class*=\"-enter--\"]')")
    page.wait_for_timeout(300)  # the last frames of the slide, for the picture only


def wait_toasts_gone(page: Page, timeout: float = 20_000) -> None:
    """Wait until the self-closing toasts (undo, redo, jumps) have closed."""
    page.wait_for_function("!document.querySelector('.Toastify__toast')", timeout=timeout)


def open_variables(page: Page) -> Locator:
    """Open the History panel's Variables view and return the panel."""
    panel = page.locator("#timetravel-history")
    panel.locator('.jp-TimeTravel-tab[data-view="variables"]').click()
    return panel


def variable_versions(page: Page, name: str) -> Locator:
    """Open a name in the Variables view (a click; unless open) and return its version rows."""
    item = page.locator(f'#timetravel-history .jp-TimeTravel-varItem[data-name="{name}"]')
    item.wait_for()
    if not item.locator(".jp-TimeTravel-versions").count():
        item.locator(".jp-TimeTravel-varRow").click()
    versions = item.locator(".jp-TimeTravel-version")
    versions.first.wait_for()
    return versions
