"""Reading message shapes: the keys of a TypedDict, their types and constraints (protocol layer).

messages.py writes each wire shape once, as a TypedDict whose keys may carry a ``Field`` through
``Annotated``; the request checks (requests.py), schema.json (schema.py) and the lab extension's
types (typescript.py) all read the shapes through this module, so none of them restates one.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import textwrap
import types
from dataclasses import dataclass
from typing import Annotated, Literal, Union, get_args, get_origin

from typing_extensions import NotRequired, get_type_hints, is_typeddict

__all__ = ["Field", "Member", "base_of", "doc_of", "is_literal", "is_shape", "is_union",
           "members_of", "unwrap"]

# JSON Schema's spelling of each Field attribute that is a keyword.
_KEYWORDS = {"description": "description", "minimum": "minimum",
             "exclusive_minimum": "exclusiveMinimum", "maximum": "maximum",
             "max_length": "maxLength", "pattern": "pattern"}


@dataclass(frozen=True, slots=True)
class Field:
    """What a key's type alone cannot say, in JSON Schema's terms: bounds, a pattern, a meaning.

    Attached as ``Annotated[int, Field(minimum=0)]``. Request parameters are checked against the
    numeric bounds; every attribute goes into schema.json, and ``description`` into the
    TypeScript comments.
    """

    description: str | None = None
    minimum: int | None = None
    exclusive_minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    pattern: str | None = None

    def keywords(self) -> dict[str, object]:
        """Return the JSON Schema keywords this field adds to its type's schema."""
        return {word: getattr(self, name) for name, word in _KEYWORDS.items()
                if getattr(self, name) is not None}


@dataclass(frozen=True, slots=True)
class Member:
    """One key of a shape.

    Args:
        name: the key as sent on the wire.
        hint: its type as written, ``NotRequired`` taken off (``Annotated`` kept, so a named
            alias such as ``CommitHex`` is still recognisable).
        required: whether every message of the shape has the key.
    """

    name: str
    hint: object
    required: bool

    @property
    def field(self) -> Field:
        """The key's constraints (empty when it has none)."""
        return unwrap(self.hint)[1]


@functools.cache
def members_of(shape: type) -> tuple[Member, ...]:
    """Return a TypedDict's keys in order, inherited ones first.

    Whether a key is required is read from its hint: under ``from __future__ import
    annotations`` Python 3.11's ``__required_keys__`` counts ``NotRequired`` keys as required.
    Cached: requests are checked against the same few shapes all session long.
    """
    members = []
    for name, hint in get_type_hints(shape, include_extras=True).items():
        required = get_origin(hint) is not NotRequired
        members.append(Member(name, hint if required else get_args(hint)[0], required))
    return tuple(members)


def base_of(shape: type) -> type | None:
    """Return the shape a TypedDict extends (None if it extends none).

    Read from its class statement: before Python 3.12 a TypedDict keeps no trace of its bases.
    """
    try:
        (statement,) = ast.parse(textwrap.dedent(inspect.getsource(shape))).body
    except (OSError, TypeError):  # written as a call, not a class statement
        return None
    bases = statement.bases if isinstance(statement, ast.ClassDef) else []
    base = vars(inspect.getmodule(shape)).get(ast.unparse(bases[0])) if bases else None
    return base if is_shape(base) else None


def unwrap(hint: object) -> tuple[object, Field]:
    """Return a type without its ``Annotated`` layer, and the ``Field`` it carried."""
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        fields = [extra for extra in extras if isinstance(extra, Field)]
        return base, fields[0] if fields else Field()
    return hint, Field()


def is_shape(hint: object) -> bool:
    """Return whether a type is a message shape (a TypedDict)."""
    return is_typeddict(hint)


def is_literal(hint: object) -> bool:
    """Return whether a type is a ``Literal`` (a closed set of JSON values)."""
    return get_origin(hint) is Literal


def is_union(hint: object) -> bool:
    """Return whether a type is a union, written ``X | Y`` or ``Union[X, Y]``."""
    return get_origin(hint) in (Union, types.UnionType)


def doc_of(shape: object) -> str | None:
    """Return a shape's docstring as plain text for JSON and TypeScript (None if it has none).

    Each paragraph becomes one line, and reStructuredText's double backticks single ones, as
    Markdown and TSDoc write code.
    """
    doc = shape.__doc__ if is_shape(shape) else None
    if not doc:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return re.sub(r"``([^`]+)``", r"`\1`", "\n\n".join(" ".join(p.split()) for p in paragraphs))
