"""labextension/src/wire.ts is generated from the shapes; the rest of the extension imports it."""

from __future__ import annotations

import re
from pathlib import Path

from timetravel_kernel.protocol import messages, requests
from timetravel_kernel.protocol.requests import OP_SHAPES
from timetravel_kernel.protocol.shapes import is_shape, members_of
from timetravel_kernel.protocol.typescript import render_typescript

SRC = Path(__file__).resolve().parents[2] / "labextension" / "src"


def test_committed_wire_ts_is_the_one_generated_from_the_shapes():
    assert (SRC / "wire.ts").read_text() == render_typescript(), (
        "labextension/src/wire.ts differs from the shapes in protocol/messages.py and "
        "requests.py: run python -m timetravel_kernel.protocol.typescript > "
        "labextension/src/wire.ts")


def test_wire_ts_types_each_op_by_its_shapes():
    ops = re.search(r"export interface Ops \{\n(.*?)\n\}", render_typescript(), re.S)
    assert ops is not None
    for op, shape in OP_SHAPES.items():
        key = op if op.isidentifier() else f"'{op}'"
        line = f"  {key}: {{ params: {shape.params.__name__}; result: {shape.result.__name__} }};"
        assert line in ops.group(1).split("\n")


def test_no_other_extension_module_redeclares_a_wire_shape():
    # An interface elsewhere in src/ that has every required key of a shape is a hand-written
    # copy of it: import the generated one (through protocol.ts) instead.
    shapes = {name: {m.name for m in members_of(value) if m.required}
              for module in (messages, requests) for name, value in vars(module).items()
              if name in module.__all__ and is_shape(value)}
    for path in SRC.glob("*.ts"):
        if path.name == "wire.ts":
            continue
        for name, body in re.findall(r"^export interface (\w+)[^{]*\{\n(.*?)^\}", path.read_text(),
                                     re.M | re.S):
            declared = set(re.findall(r"^  (?:readonly )?'?([\w-]+)'?\??:", body, re.M))
            copies = [shape for shape, required in shapes.items()
                      if len(required) > 1 and required <= declared]
            assert not copies, f"{path.name}: {name} repeats the shape of {copies}"
