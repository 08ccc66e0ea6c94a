"""Fixtures for the labextension's browser tests: a real `jupyter lab` on 127.0.0.1, Chromium.

The server runs with its own config, data and runtime dirs (no user settings leak in), the
time-travel kernelspec pinned to this interpreter, and the labextension as installed by
`pip install -e .` (or, in a checkout built by hand, labextension/prebuilt). Chromium is
Debian's, driven by the PyPI playwright package; nothing is downloaded. Without chromium or
the built extension the tests skip, except in CI (env CI set), where they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from timetravel_kernel.cli.kernelspec import KERNEL_NAME, write_kernel_spec

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = "timetravel-labextension"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SERVER_START_TIMEOUT = 90


def _missing(reason: str) -> None:
    """Skip on a developer machine; fail in CI, where the browser tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must run the browser tests; see .ci/run)")
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or ""):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _missing("chromium is not installed (apt-get install chromium)")
    raise AssertionError("unreachable")


def _installed_extension() -> Path | None:
    """Return the labextension folder Jupyter would load from this environment, if any."""
    from jupyter_core.paths import jupyter_path

    for folder in jupyter_path("labextensions"):
        if (Path(folder) / EXTENSION / "package.json").is_file():
            return Path(folder) / EXTENSION
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return _chromium()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots and server logs, kept after the run (tests/browser/artifacts)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for the server: isolated Jupyter dirs, the kernelspec, the extension."""
    base = tmp_path_factory.mktemp("jupyter")
    data = base / "data"
    write_kernel_spec(data / "kernels" / KERNEL_NAME, sys.executable)
    if _installed_extension() is None:
        prebuilt = ROOT / "labextension" / "prebuilt"
        if not (prebuilt / "package.json").is_file():
            _missing("the labextension is not built: `pip install -e .` or "
                     "`cd labextension && jlpm install && jlpm build`")
        target = data / "labextensions" / EXTENSION
        target.parent.mkdir(parents=True)
        shutil.copytree(prebuilt, target)
        shutil.copy(ROOT / "labextension" / "install.json", target / "install.json")
    # No "get notified about Jupyter news?" toast over the screenshots.
    settings = base / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_DATA_DIR": str(data),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_PATH": os.pathsep.join([str(data), env.get("JUPYTER_PATH", "")]).rstrip(
            os.pathsep),
        "JUPYTERLAB_SETTINGS_DIR": str(base / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "lab-workspaces"),
        "TIMETRAVEL_STORE_DIR": str(base / "stores"),
        "TIMETRAVEL_STORE_BUDGET": "2GB",  # far above what the tests store: shown, not felt
        "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep),
    })
    return env


class LabServer:
    """A `jupyter lab` process on 127.0.0.1 with a token, serving `root` (Lab and Notebook 7)."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
             "--ip=127.0.0.1", f"--port={self.port}", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_ready()

    def url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", body: object | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base}{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
        return json.loads(text) if text else None

    def kernel_pid(self, notebook: str) -> int:
        """Process id of the kernel the server runs for `notebook` (a path under root)."""
        import psutil

        sessions = self.api("/api/sessions")
        assert isinstance(sessions, list)
        ids = [s["kernel"]["id"] for s in sessions if s["path"] == notebook]
        assert len(ids) == 1, f"no single session for {notebook}: {sessions}"
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if f"kernel-{ids[0]}.json" in " ".join(child.cmdline()):
                    return int(child.pid)
        raise AssertionError(f"no kernel process for {notebook} (kernel {ids[0]})")

    def put_notebook(self, name: str, kernel_name: str, display_name: str,
                     sources: tuple[str, ...] = ("",)) -> None:
        """Create a notebook `name` bound to a kernelspec, as a saved file would be.

        ``sources``: its code cells (one empty cell by default).
        """
        cells = [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [],
                  "execution_count": None, "id": uuid.uuid4().hex[:8]} for source in sources]
        content = {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
            "kernelspec": {"name": kernel_name, "display_name": display_name,
                           "language": "python"}}}
        self.api(f"/api/contents/{name}", "PUT", {"type": "notebook", "content": content})

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {self.process.returncode}; "
                                   f"see {self._log.name}")
            with contextlib.suppress(urllib.error.URLError, ConnectionError, TimeoutError):
                self.api("/api/status")
                return
            time.sleep(0.3)
        raise RuntimeError(f"jupyter lab did not answer in {SERVER_START_TIMEOUT} s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, jupyter_env: dict[str, str],
        artifacts: Path) -> Iterator[LabServer]:
    root = tmp_path_factory.mktemp("notebooks")
    server = LabServer(root, jupyter_env, artifacts / "jupyter-lab.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, chromium_sandbox=False,
            args=["--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: object, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser page; on failure its screenshot goes to the artifacts."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(30_000)
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"))
        (artifacts / f"FAILED-{request.node.name}.console.txt").write_text("\n".join(console))
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
