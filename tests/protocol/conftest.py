"""A handler over a real in-memory timeline, and schema validation of what it answers."""

from __future__ import annotations

import functools
import json
from importlib.resources import files

import jsonschema
import pytest

from timetravel_kernel.protocol import ProtocolHandler, ServedTimeline


def load_schema() -> dict:
    return json.loads(files("timetravel_kernel.protocol").joinpath("schema.json").read_text())


SCHEMA = load_schema()


@functools.cache
def _validator(definition: str) -> jsonschema.Draft202012Validator:
    schema = {key: value for key, value in SCHEMA.items() if key != "oneOf"}
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})


def check_against(definition: str, data: object) -> None:
    """Validate ``data`` against ``#/$defs/<definition>`` of the protocol schema."""
    _validator(definition).validate(data)


class Session:
    """A namespace, its timeline and a handler, driven like the kernel drives them."""

    def __init__(self) -> None:
        from timetravel_kernel.timeline import CellInfo, Timeline

        self.ns: dict = {"__name__": "__main__"}
        self.timeline = Timeline.in_memory()
        self.timeline.start(self.ns)
        self.busy = False
        self.handler = ProtocolHandler(ServedTimeline(self.timeline), self.ns,
                                       is_busy=lambda: self.busy)
        self._cell = CellInfo
        self.count = 0

    def run(self, code: str) -> None:
        self.count += 1
        exec(code, self.ns)  # the test plays the user's cell
        self.timeline.checkpoint(self.ns, self._cell(code=code, execution_count=self.count),
                                 status="ok", duration=0.0)

    def ask(self, op: str, **params: object) -> dict:
        response = self.handler.handle({"id": f"r{op}", "op": op, **params})
        check_against("reply", response.reply)
        for event in response.events:
            check_against("event", event)
        return response.reply  # type: ignore[return-value]

    def user_state(self) -> dict:
        return {k: v for k, v in self.ns.items() if not k.startswith("__")}


@pytest.fixture
def session() -> Session:
    return Session()
