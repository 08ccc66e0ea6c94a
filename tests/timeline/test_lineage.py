"""Lineage (timeline/lineage.py): which recorded cells rebuild an unsaveable value, in order."""

from __future__ import annotations

from timetravel_kernel.store import Commit, Covar, MemoryBackend, NamespaceTree, ObjectStore
from timetravel_kernel.store.keys import encode_key
from timetravel_kernel.timeline.lineage import RebuildPlan, plan_rebuild

from ..factories import commit_covars, make_covar

SAVED = make_covar(members=("k",), types=("int",), refs=())
READING = {"kind": "file", "path": "data.csv", "mode": "r"}
WRITING = {"kind": "file", "path": "out.txt", "mode": "w"}


def unsaved(*members: str, revival: tuple[dict, ...] | None = None) -> Covar:
    """Return an unsaveable version of ``members`` (its token tells it from the others)."""
    return make_covar(members=members, serializer="unsaved", types=("generator",) * len(members),
                      nbytes=0, buffers=(), refs=(), reason="it cannot be pickled",
                      token="-".join(members), revival=revival)


class History:
    """Recorded cells on one branch, after a session start that may hold values already."""

    def __init__(self, start: dict[str, Covar] | None = None) -> None:
        self.store = ObjectStore(MemoryBackend())
        self.tree = NamespaceTree.empty()
        self.commits: list[Commit] = []
        start = start or {}
        self.cell("", start, made=tuple(start))

    def cell(self, code: str, covars: dict[str, Covar], *, made: tuple[str, ...] = (),
             used: tuple[str, ...] = ()) -> Commit:
        """Record a cell (its execution count is its position) and what it made and used."""
        commit, self.tree = commit_covars(
            self.store, self.commits[-1] if self.commits else None, self.tree, covars,
            code=code, execution_count=len(self.commits), duration=0.5, unsaved_made=made,
            unsaved_used=used)
        self.commits.append(commit)
        return commit

    def plan(self, *names: str) -> RebuildPlan:
        """Plan the rebuild of ``names`` as they were after the last cell."""
        return plan_rebuild(self.store, self.store.load_commit, self.commits[-1], names)


def test_the_cells_from_the_one_that_made_a_value_to_the_last_that_used_it_run_in_order():
    history = History()
    made = history.cell("gen = iter(data)", {"gen": unsaved("gen")}, made=("gen",))
    advanced = history.cell("next(gen)", {}, used=("gen",))
    history.cell("k = 1", {"k": SAVED})
    last = history.cell("next(gen)", {}, used=("gen",))
    plan = history.plan("gen")
    assert [step.commit for step in plan.steps] == [made, advanced, last]
    assert [step.code for step in plan.steps] == ["gen = iter(data)", "next(gen)", "next(gen)"]
    assert plan.names == ("gen",) and plan.needs == {"gen": frozenset({0, 1, 2})}
    assert plan.versions == {"gen": history.tree.get("gen")} and plan.seconds == 1.5
    assert plan.impossible == {}


def test_an_unsaveable_input_is_first_brought_to_where_the_cell_used_it():
    history = History()
    source = history.cell("src = iter(range(9))", {"src": unsaved("src")}, made=("src",))
    taking = history.cell("taken = (x for x in islice(src, 2))", {"taken": unsaved("taken")},
                          made=("taken",), used=("src",))
    later = history.cell("next(src)", {}, used=("src",))
    assert [step.commit for step in history.plan("taken").steps] == [source, taking]
    both = history.plan("src", "taken")
    assert [step.commit for step in both.steps] == [source, taking, later]
    assert both.needs == {"taken": frozenset({0, 1}), "src": frozenset({0, 1, 2})}
    assert both.steps[1].names == ("src", "taken")  # one run moves both forward


def test_names_sharing_an_unsaveable_version_are_rebuilt_together():
    history = History()
    cell = history.cell("a = b = iter(data)", {"a": unsaved("a", "b"), "b": unsaved("a", "b")},
                        made=("a", "b"))
    plan = history.plan("a")
    assert plan.names == ("a", "b") and [step.commit for step in plan.steps] == [cell]
    assert plan.steps[0].names == ("a", "b") and plan.versions["a"] == plan.versions["b"]


def test_a_value_that_describes_itself_is_reconnected_unless_an_input_open_for_writing():
    history = History()
    history.cell("log = open('out.txt', 'w')", {"log": unsaved("log", revival=(WRITING,))},
                 made=("log",))
    history.cell("src = open('data.csv')", {"src": unsaved("src", revival=(READING,))},
                 made=("src",))
    history.cell("rows = (log.write(r) for r in src)", {"rows": unsaved("rows")},
                 made=("rows",), used=("log", "src"))
    plan = history.plan("log", "rows", "src")
    assert [(step.names, step.commit, step.revival) for step in plan.steps] == [
        (("log",), None, (WRITING,)), (("src",), None, (READING,))]
    assert plan.names == ("log", "src") and plan.seconds == 0
    assert plan.impossible["rows"] == (
        "cell [3] uses log, which cannot be rebuilt: it needs the file out.txt as it was open "
        "for writing earlier: running those cells again would write to it twice")


def test_names_that_cannot_be_rebuilt_are_listed_with_the_reason():
    history = History(start={"early": unsaved("early")})
    history.cell("k = 1", {"k": SAVED, "orphan": unsaved("orphan")})  # its lineage unrecorded
    plan = history.plan("k", "nope", "early", "orphan")
    assert plan.steps == () and plan.names == () and plan.versions == {}
    assert plan.impossible == {
        "k": "it is not an unsaved value of that state",
        "nope": "it is not an unsaved value of that state",
        "early": "early was made before the first recorded cell",
        "orphan": "no recorded cell made orphan",
    }


def test_a_value_whose_record_is_missing_is_named_not_raised():
    history = History()
    history.cell("gen = iter(data)", {"gen": unsaved("gen")}, made=("gen",))
    history.store.backend.write_batch([], [encode_key("covar", history.tree.get("gen"))])
    plan = history.plan("gen")
    assert plan.steps == () and "missing from the store" in plan.impossible["gen"]
