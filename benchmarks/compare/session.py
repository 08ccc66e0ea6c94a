"""One kernel as the benchmark drives it: timed cells, silent probes, comm requests, RSS peaks."""

from __future__ import annotations

import ast
import json
import threading
import time
import uuid
from pathlib import Path

import psutil

from tests.kernel.harness import TIMEOUT, Kernel

FINGERPRINT_SOURCE = (Path(__file__).parent / "fingerprint.py").read_text()


def probe_expression(call: str) -> str:
    """Return a user expression evaluating ``call`` with fingerprint.py's functions in scope.

    ``ns`` is the user namespace; the module's source runs in a fresh dict, so nothing is bound
    in the user's namespace.
    """
    return (f"(lambda d: exec({FINGERPRINT_SOURCE!r}, d) or eval({call!r}, d, "
            "{'ns': get_ipython().user_ns}))({})")


class KernelCallError(RuntimeError):
    """A probe or a move failed inside the kernel; the message is the kernel's error."""


class PeakRss:
    """Samples a process's resident memory every 5 ms while active; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRss:
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:  # the kernel died (a crash is measured elsewhere)
                return
            if self._stop.wait(0.005):
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class Session:
    """A kernel started through jupyter_client (tests/kernel/harness.py) and timed from here."""

    def __init__(self, kernel_name: str, env: dict[str, str], cwd: str | None = None) -> None:
        started = time.perf_counter()
        self.kernel = Kernel(kernel_name, env=env, cwd=cwd)
        self.start_seconds = time.perf_counter() - started
        self.rss = PeakRss(self.kernel.km.provisioner.pid)  # type: ignore[union-attr]

    def run_cell(self, code: str, cell_id: str) -> tuple[float, float, str]:
        """Run a cell as JupyterLab does; return seconds to execute_reply, to idle, status."""
        with self.rss:
            started = time.perf_counter()
            msg_id = self.kernel.send_execute(code, cell_id=cell_id)
            reply = self._reply(msg_id)
            to_reply = time.perf_counter() - started
            self.kernel.collect_iopub(msg_id)
            return to_reply, time.perf_counter() - started, reply["content"]["status"]

    def _reply(self, msg_id: str) -> dict:
        while True:
            msg = self.kernel.kc.get_shell_msg(timeout=TIMEOUT)
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def evaluate(self, expression: str) -> object:
        """Return the value of a literal-valued expression, evaluated by a silent execution."""
        reply, _ = self.kernel.execute("", silent=True, user_expressions={"v": expression})
        result = reply["user_expressions"]["v"]
        if result["status"] != "ok":
            raise KernelCallError(f"{result['ename']}: {result['evalue']}")
        return ast.literal_eval(result["data"]["text/plain"])

    def call(self, call: str) -> object:
        """Evaluate ``call`` in the kernel (see probe_expression) by a silent execution.

        A silent execution is not checkpointed by time-travel nor committed by Kishu.
        """
        return self.evaluate(probe_expression(call))

    def timed_call(self, call: str) -> tuple[float, object]:
        with self.rss:
            started = time.perf_counter()
            value = self.call(call)
            return time.perf_counter() - started, value

    def fingerprint(self) -> dict:
        return json.loads(str(self.call("state_fingerprint(ns)")))

    def comm(self, op: str, **params: object) -> tuple[float, dict]:
        """Send one time-travel comm request; return seconds until its reply, and the reply."""
        if self.kernel.comm_id is None:
            self.kernel.open_comm()
        request_id = uuid.uuid4().hex[:8]
        with self.rss:
            started = time.perf_counter()
            msg_id = self.kernel.send_comm({"id": request_id, "op": op, **params})
            while True:
                msg = self.kernel.kc.get_iopub_msg(timeout=TIMEOUT)
                data = msg["content"].get("data", {}) if msg["msg_type"] == "comm_msg" else {}
                if data.get("id") == request_id:
                    seconds = time.perf_counter() - started
                    break
        self.kernel.collect_iopub(msg_id)
        if not data["ok"]:
            raise KernelCallError(f"{data['error']['code']}: {data['error']['message']}")
        return seconds, data["result"]

    def kill(self) -> None:
        self.kernel.kill()

    def shutdown(self) -> None:
        self.kernel.shutdown()
