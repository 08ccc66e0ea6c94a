"""A hypothesis state machine: random cells, undo, redo, jumps and single-variable restores
against a model of snapshots."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from timetravel_kernel.errors import SharedObjectsError, UnknownNameError
from timetravel_kernel.timeline import CellInfo, Timeline, TimelineOptions

from ..workloads import fresh_namespace

NAMES = st.sampled_from(["a", "b", "c", "d"])
VALUES = st.one_of(
    st.integers(-5, 5),
    st.lists(st.integers(0, 9), max_size=4),
    st.dictionaries(st.sampled_from("xyz"), st.integers(0, 3), max_size=2),
)


def snapshot(ns: dict) -> tuple[dict, list[tuple[str, str]]]:
    """Values (deep-copied together, so aliasing inside the copy mirrors the original) and the
    pairs of names bound to the very same object."""
    names = sorted(n for n in ns if n not in ("__name__", "__builtins__"))
    values = copy.deepcopy({n: ns[n] for n in names})
    aliases = [(x, y) for x in names for y in names if x < y and ns[x] is ns[y]
               and not isinstance(ns[x], int)]
    return values, aliases


class TimelineMachine(RuleBasedStateMachine):
    @initialize()
    def open(self) -> None:
        self.dir = tempfile.mkdtemp()
        self.timeline = Timeline.open(self.dir, options=TimelineOptions(chunk_size=64))
        self.ns = fresh_namespace()
        root = self.timeline.start(self.ns)
        self.model = {root.id: snapshot(self.ns)}
        self.dirty = False

    def teardown(self) -> None:
        self.timeline.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(name=NAMES, value=VALUES)
    def assign(self, name: str, value: object) -> None:
        self.ns[name] = value
        self.dirty = True

    @rule(name=NAMES, other=NAMES)
    def alias(self, name: str, other: str) -> None:
        if other in self.ns:
            self.ns[name] = self.ns[other]
            self.dirty = True

    @rule(name=NAMES, item=st.integers(0, 9))
    def mutate(self, name: str, item: int) -> None:
        value = self.ns.get(name)
        if isinstance(value, list):
            value.append(item)
        elif isinstance(value, dict):
            value["new"] = item
        # As the kernel does for a silent execution: say which code ran unrecorded.
        self.timeline.recorder.note_unrecorded(self.ns, f"{name}.append({item})")
        self.dirty = True

    @rule(name=NAMES)
    def delete(self, name: str) -> None:
        if name in self.ns:
            del self.ns[name]
            self.dirty = True

    @rule()
    def checkpoint(self) -> None:
        commit = self.timeline.checkpoint(self.ns, CellInfo(code="cell")).commit
        self.model[commit.id] = snapshot(self.ns)
        self.dirty = False

    # Undo, redo and jumps also discard changes made since the last checkpoint.
    @rule()
    def undo(self) -> None:
        if self.timeline.head.parent is not None:
            self.timeline.undo(self.ns)
            self.dirty = False

    @precondition(lambda self: not self.dirty)
    @rule()
    def redo(self) -> None:
        if self.timeline._live.redo:
            self.timeline.redo(self.ns)

    @rule(data=st.data())
    def jump(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(list(self.model)))
        self.timeline.checkout(self.ns, target)
        self.dirty = False

    @precondition(lambda self: not self.dirty and any(v for v, _ in self.model.values()))
    @rule(data=st.data(), together=st.booleans())
    def restore_one(self, data: st.DataObject, together: bool) -> None:
        target = data.draw(st.sampled_from([c for c, (v, _) in self.model.items() if v]))
        values, aliases = self.model[target]
        before, _ = snapshot(self.ns)
        name = data.draw(st.sampled_from(sorted(values)) | NAMES)
        if name not in values:
            with pytest.raises(UnknownNameError):
                self.timeline.restore_variable(self.ns, name, target)
            return
        if not together and any(name in pair for pair in aliases):
            with pytest.raises(SharedObjectsError):
                self.timeline.restore_variable(self.ns, name, target)
            assert snapshot(self.ns)[0] == before
            return
        result = self.timeline.restore_variable(self.ns, name, target, together=together)
        after, _ = snapshot(self.ns)
        assert {n: after[n] for n in result.loaded} == {n: values[n] for n in result.loaded}
        assert {n: v for n, v in after.items() if n not in result.loaded} == {
            n: v for n, v in before.items() if n not in result.loaded}
        self.model[result.head.id] = snapshot(self.ns)

    @invariant()
    def namespace_matches_head(self) -> None:
        if not self.dirty:
            assert snapshot(self.ns) == self.model[self.timeline.head.id]


TestTimelineMachine = TimelineMachine.TestCase
TestTimelineMachine.settings = settings(
    max_examples=int(os.environ.get("TIMETRAVEL_FUZZ_EXAMPLES", "60")),
    stateful_step_count=30, deadline=None)
