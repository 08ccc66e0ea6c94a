"""schema.json, the JSON Schema of protocol v1, generated from the message shapes (protocol layer).

``python -m timetravel_kernel.protocol.schema > timetravel_kernel/protocol/schema.json`` writes
it after a shape in messages.py or requests.py changed; tests/protocol/test_schema.py fails
while the committed file differs from what this module renders. A Python union becomes
``anyOf`` (JSON Schema's "any of these"), except a union of plain JSON types such as
``int | None``, which becomes one ``type`` list.
"""

from __future__ import annotations

import json
import sys
from typing import get_args, get_origin

from timetravel_kernel.protocol.messages import (
    CommitHex,
    CommitJSON,
    ErrorReply,
    KernelEvent,
    OkReply,
    RebuildStepJSON,
    Reply,
)
from timetravel_kernel.protocol.requests import OP_SHAPES, RequestId
from timetravel_kernel.protocol.shapes import (
    doc_of,
    is_literal,
    is_shape,
    is_union,
    members_of,
    unwrap,
)

__all__ = ["build_schema", "main", "render_schema"]

_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", float: "number",
                                  bool: "boolean", type(None): "null"}
# A reply has exactly its three keys: a result or an error, never both.
_CLOSED = frozenset({OkReply, ErrorReply})


def build_schema() -> dict[str, object]:
    """Return the schema of every request, reply and event, as a JSON object."""
    names = _definition_names()
    defs = {name: _define(hint, names) for hint, name in names.items()}
    defs["request"] = {"anyOf": [_request(op, shape.params, names)
                                 for op, shape in OP_SHAPES.items()]}
    defs["reply"] = _define(Reply, names)
    defs["event"] = _define(KernelEvent, names)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://timetravel-kernel.invalid/protocol/v1/schema.json",
        "title": "timetravel-kernel comm protocol v1 (comm target 'timetravel')",
        "description": "Requests sent by a frontend, the one reply the kernel sends to each, and "
                       "events the kernel sends unasked. Generated from "
                       "timetravel_kernel/protocol/messages.py and requests.py; see "
                       "docs/protocol.md.",
        "oneOf": [{"$ref": "#/$defs/request"}, {"$ref": "#/$defs/reply"},
                  {"$ref": "#/$defs/event"}],
        "$defs": defs,
    }


def render_schema() -> str:
    """Return schema.json's text: the schema, indented, one trailing newline."""
    return json.dumps(build_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Print schema.json (``python -m timetravel_kernel.protocol.schema``)."""
    sys.stdout.write(render_schema())


def _definition_names() -> dict[object, str]:
    # The shapes written once under $defs and referred to by $ref, under the names schema.json
    # has always had (tests and other frontends validate against them): each op's result is
    # "result_<first op that returns it>".
    names: dict[object, str] = {CommitHex: "commit_id", CommitJSON: "commit",
                                RebuildStepJSON: "rebuild_step", OkReply: "ok_reply",
                                ErrorReply: "error_reply"}
    for op, shape in OP_SHAPES.items():
        names.setdefault(shape.result, "result_" + op.replace("-", "_"))
    return names


def _schema(hint: object, names: dict[object, str]) -> dict[str, object]:
    if hint in names:
        return {"$ref": f"#/$defs/{names[hint]}"}
    return _define(hint, names)


def _define(hint: object, names: dict[object, str]) -> dict[str, object]:
    base, field = unwrap(hint)
    return {**_bare(base, names), **field.keywords()}


def _bare(base: object, names: dict[object, str]) -> dict[str, object]:
    if base in _JSON_TYPES:
        return {"type": _JSON_TYPES[base]}
    if is_literal(base):
        values = list(get_args(base))
        return {"const": values[0]} if len(values) == 1 else {"enum": values}
    if is_union(base):
        return _union([_schema(arg, names) for arg in get_args(base)])
    if is_shape(base):
        return _object(base, names)  # type: ignore[arg-type]
    origin, args = get_origin(base), get_args(base)
    if origin is list:
        return {"type": "array", "items": _schema(args[0], names)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _schema(args[1], names)}
    raise TypeError(f"no JSON Schema for {base!r}: use JSON types, Literals and TypedDicts")


def _union(alternatives: list[dict[str, object]]) -> dict[str, object]:
    # Alternatives of distinct plain types whose other keywords do not overlap merge into one
    # type list: a keyword such as "minimum" applies only to its own type, so nothing changes.
    others = [key for alt in alternatives for key in alt if key != "type"]
    if all(isinstance(alt.get("type"), str) for alt in alternatives) and (
            len(others) == len(set(others))):
        merged: dict[str, object] = {"type": [alt["type"] for alt in alternatives]}
        for alt in alternatives:
            merged.update((key, value) for key, value in alt.items() if key != "type")
        return merged
    return {"anyOf": alternatives}


def _object(shape: type, names: dict[object, str]) -> dict[str, object]:
    schema: dict[str, object] = {"type": "object"}
    doc = doc_of(shape)
    if doc is not None:
        schema["description"] = doc
    members = members_of(shape)
    schema["required"] = [member.name for member in members if member.required]
    schema["properties"] = {member.name: _schema(member.hint, names) for member in members}
    if shape in _CLOSED:
        schema["additionalProperties"] = False
    return schema


def _request(op: str, params: type, names: dict[object, str]) -> dict[str, object]:
    members = members_of(params)
    return {
        "type": "object",
        "required": ["id", "op", *(member.name for member in members if member.required)],
        "properties": {"id": _schema(RequestId, names), "op": {"const": op},
                       **{member.name: _schema(member.hint, names) for member in members}},
    }


if __name__ == "__main__":
    main()
