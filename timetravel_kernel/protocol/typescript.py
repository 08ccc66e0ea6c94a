"""labextension/src/wire.ts: the TypeScript types of the protocol, generated (protocol layer).

``python -m timetravel_kernel.protocol.typescript > labextension/src/wire.ts`` writes it after a
shape in messages.py or requests.py changed; tests/protocol/test_typescript.py fails while the
committed file differs from what this module renders. Every public constant, Literal, union and
TypedDict of the two modules gets the same name in TypeScript, so a name found in one language
is found in the other; the extension's protocol.ts re-exports them.
"""

from __future__ import annotations

import re
import sys
import textwrap
from typing import TYPE_CHECKING, Annotated, get_args, get_origin

from timetravel_kernel.protocol import messages, requests
from timetravel_kernel.protocol.requests import OP_SHAPES
from timetravel_kernel.protocol.shapes import (
    base_of,
    doc_of,
    is_literal,
    is_shape,
    is_union,
    members_of,
    unwrap,
)

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["main", "render_typescript"]

_HEADER = """\
// Generated from timetravel_kernel/protocol/messages.py and requests.py by
// `python -m timetravel_kernel.protocol.typescript > labextension/src/wire.ts`: do not edit.
// tests/protocol/test_typescript.py fails while this file differs from a fresh generation.
"""
_TS_TYPES: dict[object, str] = {str: "string", int: "number", float: "number", bool: "boolean",
                                type(None): "null"}
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_WIDTH = 100


def render_typescript() -> str:
    """Return wire.ts's text: constants, type aliases, one interface per shape, then ``Ops``."""
    public = [(name, value) for module in (messages, requests)
              for name, value in _public(module)]
    names = {value: name for name, value in public if _is_type(value)}
    blocks = [_HEADER.rstrip("\n")]
    for name, value in public:
        if isinstance(value, (str, int)):
            blocks.append(f"export const {name} = {_literal(value)};")
        elif is_shape(value):
            blocks.append(_interface(name, value, names))  # type: ignore[arg-type]
        elif _is_type(value):
            blocks.append(_alias(name, value, names))
    blocks.append(_ops(names))
    return "\n\n".join(blocks) + "\n"


def main() -> None:
    """Print wire.ts (``python -m timetravel_kernel.protocol.typescript``)."""
    sys.stdout.write(render_typescript())


def _public(module: ModuleType) -> list[tuple[str, object]]:
    # In the order of definition, so the file reads like the module.
    exported = set(module.__all__)
    return [(name, value) for name, value in vars(module).items() if name in exported]


def _is_type(value: object) -> bool:
    return (is_shape(value) or is_literal(value) or is_union(value)
            or get_origin(value) is Annotated)


def _ts(hint: object, names: dict[object, str]) -> str:
    if hint in names:
        return names[hint]
    base = unwrap(hint)[0]
    if base in names:
        return names[base]
    if base in _TS_TYPES:
        return _TS_TYPES[base]
    if is_literal(base):
        return " | ".join(_literal(value) for value in get_args(base))
    if is_union(base):
        return " | ".join(_ts(arg, names) for arg in get_args(base))
    origin, args = get_origin(base), get_args(base)
    if origin is list:
        item = _ts(args[0], names)
        return f"({item})[]" if " " in item else f"{item}[]"
    if origin is dict:
        return f"{{ [name: string]: {_ts(args[1], names)} }}"
    raise TypeError(f"no TypeScript for {base!r}: use JSON types, Literals and public shapes")


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _comment(text: str | None, indent: str = "") -> list[str]:
    if text is None:
        return []
    text = text.replace("*/", "*\\/")
    if len(indent) + len(text) + 7 <= _WIDTH and "\n" not in text:
        return [f"{indent}/** {text} */"]
    lines = [line for paragraph in text.split("\n\n")
             for line in [*textwrap.wrap(paragraph, _WIDTH - len(indent) - 3), ""]][:-1]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def _alias(name: str, hint: object, names: dict[object, str]) -> str:
    # Write the alias's own definition, not its name.
    text = _ts(hint, {key: value for key, value in names.items() if value != name})
    parts = text.split(" | ")
    head = f"export type {name} ="
    if len(head) + len(text) + 2 > _WIDTH and len(parts) > 1:
        body = "".join(f"\n  | {part}" for part in parts) + ";"
    else:
        body = f" {text};"
    return "\n".join([*_comment(unwrap(hint)[1].description), head + body])


def _interface(name: str, shape: type, names: dict[object, str]) -> str:
    members = members_of(shape)
    doc = _comment(doc_of(shape))
    if not members:
        return "\n".join([*doc, f"export type {name} = Record<string, never>;"])
    base = base_of(shape)
    inherited = {member.name for member in members_of(base)} if base is not None else set()
    extends = f" extends {names[base]}" if base is not None else ""
    lines = [*doc, f"export interface {name}{extends} {{"]
    for member in (member for member in members if member.name not in inherited):
        if member.hint not in names:  # a named alias is described where it is defined
            lines += _comment(member.field.description, "  ")
        key = member.name if _IDENTIFIER.match(member.name) else _literal(member.name)
        optional = "" if member.required else "?"
        lines.append(f"  {key}{optional}: {_ts(member.hint, names)};")
    return "\n".join([*lines, "}"])


def _ops(names: dict[object, str]) -> str:
    lines = ["/** Each op's parameters (beside `id` and `op`) and the result of its ok reply. */",
             "export interface Ops {"]
    for op, shape in OP_SHAPES.items():
        key = op if _IDENTIFIER.match(op) else _literal(op)
        lines.append(f"  {key}: {{ params: {names[shape.params]}; "
                     f"result: {names[shape.result]} }};")
    return "\n".join([*lines, "}"])


if __name__ == "__main__":
    main()
