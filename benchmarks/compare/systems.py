"""The four compared systems: how each starts, what it stores, how it moves and restores.

Every system runs the same cells through a :class:`Session`. A *ref* is whatever a system
needs to go back to the state after a given cell: a time-travel commit id, a Kishu commit id,
a dill file. Moves are timed from the client, request to reply, the same way for all.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .session import KernelCallError, Session

if TYPE_CHECKING:
    from collections.abc import Callable

REPO = Path(__file__).resolve().parents[2]

__all__ = ["DillSystem", "KishuSystem", "StockSystem", "System", "TimeTravelSystem"]


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    """Return the apparent size of the files under ``folder`` matching ``pattern``."""
    return sum(f.stat().st_size for f in folder.rglob(pattern) if f.is_file())


class System:
    """A way of running a notebook. The stock kernel is the base: nothing to store or move."""

    name = "stock"
    label = "stock ipykernel"
    kernel_name = "python3"
    restorable = False

    def __init__(self, work: Path, notebook: Path) -> None:
        self.work = work
        self.notebook = notebook

    def env(self) -> dict[str, str]:
        return {}

    def start(self) -> Session:
        return Session(self.kernel_name, self.env(), cwd=str(self.work))

    def after_cell(self, session: Session, index: int, code: str) -> None:
        """Note what is needed to come back to the state after cell ``index``."""

    def refs(self, session: Session, codes: list[str]) -> list[str]:
        """Return one ref per cell, in order."""
        return []

    def storage_bytes(self) -> int:
        return 0

    def undo(self, session: Session, refs: list[str]) -> float:
        """Go one cell back from the last; return the seconds it took."""
        raise NotImplementedError

    def checkout(self, session: Session, ref: str) -> float:
        raise NotImplementedError

    def restore(self, refs: list[str]) -> Session:
        """Start a fresh kernel and bring back the last state (after a SIGKILL)."""
        raise NotImplementedError

    def _started_then(self, load: Callable[[Session], object]) -> Session:
        """Start a kernel and run ``load`` in it; kill the kernel if that fails."""
        session = self.start()
        try:
            load(session)
        except BaseException:
            session.kill()
            raise
        return session


class StockSystem(System):
    """The stock python3 ipykernel of this environment: the baseline of latency and start."""


class TimeTravelSystem(System):
    """The time-travel kernel: checkpoints itself; moves through its comm protocol."""

    name = "timetravel"
    label = "time-travel"
    kernel_name = "timetravel"
    restorable = True

    def __init__(self, work: Path, notebook: Path) -> None:
        super().__init__(work, notebook)
        self._heads: list[str] = []

    def env(self) -> dict[str, str]:
        # The kernel runs this checkout's code, installed or not (kernels start in ``work``).
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        return {"TIMETRAVEL_STORE": str(self.work / "store"),
                "JPY_SESSION_NAME": str(self.notebook), "PYTHONPATH": path}

    def after_cell(self, session: Session, index: int, code: str) -> None:
        _, status = session.comm("status")
        self._heads.append(status["head"]["id"])

    def refs(self, session: Session, codes: list[str]) -> list[str]:
        return list(self._heads)

    def storage_bytes(self) -> int:
        return folder_bytes(self.work / "store")

    def undo(self, session: Session, refs: list[str]) -> float:
        return session.comm("undo")[0]

    def checkout(self, session: Session, ref: str) -> float:
        return session.comm("checkout", commit=ref)[0]

    def restore(self, refs: list[str]) -> Session:
        # The kernel restores the last state before it answers anything (restore_after_crash).
        return self._started_then(lambda s: s.evaluate("0"))


class KishuSystem(System):
    """Kishu 0.3.4 attached to a stock ipykernel of its own venv with ``init_kishu()``.

    Test mode: ``TEST_NOTEBOOK_PATH`` names the notebook (without it Kishu asks a Jupyter server
    for the notebook of its kernel) and ``ENV_KISHU_TEST_MODE`` skips saving the notebook
    through the browser (otherwise ``init_kishu`` and every checkout wait for a frontend that
    is not there). Moves call ``_kishu.checkout`` inside the kernel, exactly the command that
    ``kishu checkout`` / ``kishu undo`` send to the kernel (Kishu's CLI finds the kernel through
    a Jupyter server, which this benchmark does not run).
    """

    name = "kishu"
    label = "Kishu 0.3.4"
    kernel_name = "kishu"
    restorable = True
    ATTACH = "from kishu import init_kishu; init_kishu()"

    def env(self) -> dict[str, str]:
        return {"TEST_NOTEBOOK_PATH": str(self.notebook), "ENV_KISHU_TEST_MODE": "1",
                "KISHU_PATH_ROOT": str(self.work)}

    def start(self) -> Session:
        session = super().start()
        _, _, status = session.run_cell(self.ATTACH, "kishu-init")
        if status != "ok":
            raise KernelCallError("init_kishu() failed")
        return session

    def refs(self, session: Session, codes: list[str]) -> list[str]:
        log = json.loads(str(session.evaluate(
            "__import__('json').dumps([[c.commit_id, c.raw_cell] for c in "
            "__import__('kishu.commands', fromlist=['KishuCommand']).KishuCommand.log_all("
            f"__import__('pathlib').Path({str(self.notebook)!r})).commit_graph])")))
        refs, commits = [], iter(log)
        for number, code in enumerate(codes, start=1):
            # The commit of each cell, in order (init_kishu's cell has none).
            found = next((commit_id for commit_id, raw in commits if raw == code), None)
            if found is None:
                raise KernelCallError(f"Kishu's log has no commit for cell {number}")
            refs.append(found)
        return refs

    def storage_bytes(self) -> int:
        return folder_bytes(self.work, f"{self.notebook.stem}.kishudb*")

    def _checkout(self, session: Session, ref: str, skip_notebook: bool) -> float:
        with session.rss:
            started = time.perf_counter()
            session.evaluate(f"str(_kishu.checkout({ref!r}, skip_notebook={skip_notebook}))")
            return time.perf_counter() - started

    def undo(self, session: Session, refs: list[str]) -> float:
        return self._checkout(session, refs[-2], skip_notebook=True)  # as `kishu undo`

    def checkout(self, session: Session, ref: str) -> float:
        return self._checkout(session, ref, skip_notebook=False)  # as `kishu checkout`

    def restore(self, refs: list[str]) -> Session:
        return self._started_then(lambda s: self._checkout(s, refs[-1], skip_notebook=False))


_DILL_HOOK = """
import os, dill
from IPython import get_ipython
def dump_after_cell(result, folder={folder!r}):
    path = os.path.join(folder, "cell-%d.pkl" % result.execution_count)
    try:
        dill.dump_session(path)
    except Exception as exc:
        if os.path.exists(path):
            os.remove(path)
        with open(path + ".error", "w") as out:
            out.write(f"{{type(exc).__name__}}: {{exc}}")
get_ipython().events.register("post_run_cell", dump_after_cell)
"""


class DillSystem(System):
    """A stock kernel with a post_run_cell hook calling ``dill.dump_session`` (one file per cell).

    A move clears the user's names and loads the target cell's file with
    ``dill.load_session`` (which alone would leave names the target lacks).
    """

    name = "dill"
    label = "dill.dump_session"
    restorable = True

    def start(self) -> Session:
        session = super().start()
        (self.work / "dumps").mkdir(exist_ok=True)
        hook = _DILL_HOOK.format(folder=str(self.work / "dumps"))
        session.evaluate(f"exec({hook!r}, {{}})")
        return session

    def refs(self, session: Session, codes: list[str]) -> list[str]:
        return [str(self.work / "dumps" / f"cell-{i}.pkl") for i in range(1, len(codes) + 1)]

    def storage_bytes(self) -> int:
        return folder_bytes(self.work / "dumps", "*.pkl")

    def _load(self, session: Session, ref: str) -> float:
        if not os.path.exists(ref):
            error = Path(ref + ".error")
            raise KernelCallError(error.read_text() if error.exists() else f"no {ref}")
        seconds, _ = session.timed_call(
            f"clear_user_names(ns) or __import__('dill').load_session({ref!r}) or 0")
        return seconds

    def undo(self, session: Session, refs: list[str]) -> float:
        return self._load(session, refs[-2])

    def checkout(self, session: Session, ref: str) -> float:
        return self._load(session, ref)

    def restore(self, refs: list[str]) -> Session:
        return self._started_then(lambda s: self._load(s, refs[-1]))
