"""Real kernels through jupyter_client: start, execute like JupyterLab, talk on the comm."""

from __future__ import annotations

import ast
import functools
import json
import os
import queue
import signal
import sys
import time
import uuid
from importlib.resources import files
from pathlib import Path

import jsonschema
from jupyter_client.manager import KernelManager

from timetravel_kernel.cli.kernelspec import KERNEL_NAME, write_kernel_spec

TIMEOUT = 120


def stderr(outputs: list[dict]) -> str:
    """Return the stderr text among a cell's outputs."""
    return "".join(o["content"]["text"] for o in outputs
                   if o["msg_type"] == "stream" and o["content"]["name"] == "stderr")


def install_test_specs(root: Path) -> Path:
    """Write the time-travel spec (pinned to this interpreter) under ``root``; return root."""
    write_kernel_spec(root / "kernels" / KERNEL_NAME, sys.executable)
    stock = root / "kernels" / "python3"
    stock.mkdir(parents=True, exist_ok=True)
    (stock / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (stock, tests)", "language": "python",
        "metadata": {"debugger": True}}))
    return root


class Kernel:
    """One running kernel and a blocking client, with the calls the tests need."""

    def __init__(self, name: str = KERNEL_NAME, env: dict[str, str] | None = None,
                 cwd: str | None = None, extra_arguments: list[str] | None = None) -> None:
        self.km = KernelManager(kernel_name=name)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.km.start_kernel(env=full_env, cwd=cwd, extra_arguments=extra_arguments or [])
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=TIMEOUT)
        except RuntimeError:
            self.shutdown()  # it died while starting: leave no socket open
            raise
        self.comm_id: str | None = None
        self.events: list[dict] = []

    # -- execution --------------------------------------------------------------------------

    def send_execute(self, code: str, *, cell_id: str | None = None, silent: bool = False,
                     user_expressions: dict | None = None) -> str:
        content = {"code": code, "silent": silent, "store_history": not silent,
                   "user_expressions": user_expressions or {}, "allow_stdin": False,
                   "stop_on_error": False}
        metadata = {"cellId": cell_id} if cell_id else {}
        msg = self.kc.session.msg("execute_request", content, metadata=metadata)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def execute(self, code: str, **kwargs: object) -> tuple[dict, list[dict]]:
        """Run a cell; return the execute_reply content and the iopub outputs, after idle."""
        msg_id = self.send_execute(code, **kwargs)  # type: ignore[arg-type]
        reply = self._shell_reply(msg_id)
        outputs = self.collect_iopub(msg_id)
        return reply["content"], outputs

    def _shell_reply(self, msg_id: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            msg = self.kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def collect_iopub(self, msg_id: str, *, settle: float | None = None) -> list[dict]:
        """Return iopub messages of a request until its idle status (keeps comm events).

        With ``settle``, also stop once a comm reply came and nothing followed for that many
        seconds: comm messages handled while a cell runs get no busy/idle status.
        """
        outputs: list[dict] = []
        deadline = time.monotonic() + TIMEOUT
        while True:
            wait = max(0.1, deadline - time.monotonic())
            replied = any(o["msg_type"] == "comm_msg" for o in outputs)
            try:
                msg = self.kc.get_iopub_msg(timeout=settle if settle and replied else wait)
            except queue.Empty:
                if settle and replied:
                    return outputs
                raise
            if msg["msg_type"] == "comm_msg":
                self.events.append(msg["content"]["data"])
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return outputs
            if msg["msg_type"] not in ("status", "execute_input"):
                outputs.append(msg)

    def value(self, expression: str) -> object:
        """Return a JSON-able value evaluated in the kernel, without touching the history."""
        code = f"__import__('json').dumps({expression})"
        reply, _ = self.execute("", silent=True, user_expressions={"v": code})
        result = reply["user_expressions"]["v"]
        assert result["status"] == "ok", result
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))

    # -- the comm ---------------------------------------------------------------------------

    def open_comm(self) -> None:
        self.comm_id = uuid.uuid4().hex
        msg = self.kc.session.msg("comm_open", {"comm_id": self.comm_id,
                                                 "target_name": "timetravel", "data": {}})
        self.kc.shell_channel.send(msg)
        self.collect_iopub(msg["header"]["msg_id"])

    def send_comm(self, data: object) -> str:
        if self.comm_id is None:
            self.open_comm()
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def request(self, data: object) -> dict:
        """Send one comm request; return its single reply (events are kept in .events)."""
        msg_id = self.send_comm(data)
        replies = [m["content"]["data"] for m in self.collect_iopub(msg_id, settle=0.5)
                   if m["msg_type"] == "comm_msg" and "ok" in m["content"]["data"]]
        assert len(replies) == 1, replies
        return replies[0]

    def op(self, op: str, **params: object) -> dict:
        reply = self.request({"id": uuid.uuid4().hex[:8], "op": op, **params})
        return reply

    def drain_iopub(self) -> None:
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                return
            if msg["msg_type"] == "comm_msg":
                self.events.append(msg["content"]["data"])

    # -- ending -----------------------------------------------------------------------------

    def wait_saved(self) -> None:
        """Return once every cell run so far is committed (background checkpoints included)."""
        self.execute("get_ipython().kernel.save_now()", silent=True)

    def kill(self, *, saved: bool = True) -> None:
        """SIGKILL the kernel process, as a crash or the OOM killer would.

        ``saved``: first wait until the cells run so far are committed (a background
        checkpoint still in flight dies with the kernel: the crash tests of the timeline and
        ``saved=False`` cover that).
        """
        if saved and self.km.kernel_name == KERNEL_NAME:
            self.wait_saved()
        self.kc.stop_channels()
        self.km.signal_kernel(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.km.cleanup_resources()

    def shutdown(self) -> None:
        self.kc.stop_channels()
        if self.km.is_alive():
            self.km.shutdown_kernel(now=False)
        self.km.cleanup_resources()


@functools.cache
def _validator(definition: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(files("timetravel_kernel.protocol").joinpath("schema.json").read_text())
    schema.pop("oneOf")
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def check_reply(data: object) -> None:
    """Validate a reply against the protocol schema."""
    _validator("reply").validate(data)


def check_event(data: object) -> None:
    """Validate an event against the protocol schema."""
    _validator("event").validate(data)
