"""Reading shapes: keys in order with whether each is required, their Fields and docstrings."""

from __future__ import annotations

from typing import Annotated, TypedDict

from typing_extensions import NotRequired

from timetravel_kernel.protocol.shapes import Field, base_of, doc_of, members_of, unwrap


class Base(TypedDict):
    """A shape.

    Its ``second`` paragraph
    wraps.
    """

    kept: int
    maybe: NotRequired[Annotated[int, Field(minimum=0, description="may be absent")]]


class Child(Base):
    extra: str


Called = TypedDict("Called", {"as": NotRequired[str], "name": str})


def test_members_are_in_order_inherited_first_with_not_required_read_from_the_hint():
    # Under postponed annotations Python 3.11 counts NotRequired keys as required.
    members = members_of(Child)
    assert [(m.name, m.required) for m in members] == [
        ("kept", True), ("maybe", False), ("extra", True)]
    assert members[1].field == Field(minimum=0, description="may be absent")
    assert members[0].field == Field()
    assert [(m.name, m.required) for m in members_of(Called)] == [("as", False), ("name", True)]


def test_base_of_reads_the_class_statement():
    class Local(Child):  # indented source, a base that is itself derived
        more: int

    assert base_of(Child) is Base
    assert base_of(Local) is Child
    assert base_of(Base) is None  # TypedDict itself is no shape
    assert base_of(Called) is None  # no class statement


def test_unwrap_returns_the_bare_type_and_its_field():
    assert unwrap(Annotated[int, "other", Field(maximum=3)]) == (int, Field(maximum=3))
    assert unwrap(list[str]) == (list[str], Field())


def test_field_keywords_are_json_schemas_words():
    assert Field(exclusive_minimum=0, max_length=4, pattern="x").keywords() == {
        "exclusiveMinimum": 0, "maxLength": 4, "pattern": "x"}


def test_doc_of_gives_one_line_per_paragraph_and_markdown_backticks():
    assert doc_of(Base) == "A shape.\n\nIts `second` paragraph wraps."
    assert doc_of(Child) is None
    assert doc_of(int) is None
