from __future__ import annotations

from timetravel_kernel.state import NameIdentities, names_read, touched_names

from ..workloads import fresh_namespace, run_cell

NOTEBOOK = """
data, log, other = [], [], []
def add(x):
    data.append(x)
def deco(f):
    def wrap(*args):
        return f(*args)
    return wrap
@deco
def logit(message):
    log.append(message)
class Model:
    def run(self):
        add(1)
    @property
    def size(self):
        return len(other)
model = Model()
handlers = {'log': logit}
"""


def read(source: str) -> set[str] | None:
    ns = fresh_namespace()
    run_cell(ns, NOTEBOOK)
    names = names_read(source, ns)
    return None if names is None else {n for n in names if n in ns}


def test_module_level_reads_and_writes() -> None:
    assert read("x = data[0] + len(log)") == {"data", "log"}


def test_functions_called_are_followed_to_the_globals_they_name() -> None:
    assert read("add(3)") == {"add", "data"}


def test_decorated_functions_are_followed_through_their_closure() -> None:
    assert read("logit('hi')") >= {"logit", "log"}


def test_methods_and_properties_of_notebook_classes_are_followed() -> None:
    assert read("model.run()") >= {"model", "add", "data"}
    assert "other" in read("model.size")


def test_functions_inside_named_containers_are_followed() -> None:
    assert read("handlers['log']('x')") >= {"handlers", "log"}


def test_comprehensions_and_nested_functions_count() -> None:
    assert read("[v for v in data]\ndef g():\n    return log") == {"data", "log"}


def test_dynamic_access_makes_every_name_a_candidate() -> None:
    for source in ["globals()['data'].append(1)", "exec(text)", "eval(text, {})",
                   "import __main__", "vars()", "import sys\nsys.modules['__main__']",
                   "get_ipython().run_line_magic('run', 'script.py')", "def broken(:"]:
        assert read(source) is None, source


def test_magics_that_run_code_are_read_and_others_ignored() -> None:
    assert read("get_ipython().run_line_magic('time', 'add(1)')") >= {"add", "data"}
    assert read("get_ipython().run_line_magic('matplotlib', 'inline')") == set()
    assert read("get_ipython().run_cell_magic('timeit', '', 'log.append(1)')") == {"log"}


def test_rebinding_behind_the_namespace_is_caught_by_identity() -> None:
    ns = fresh_namespace()
    run_cell(ns, "v = 1\nw = 2\ndef f():\n    global v\n    v = 100\n")
    identities = NameIdentities()
    identities.record(ns)
    source = "f()\nglobals().update(z=5)"
    run_cell(ns, source)
    assert identities.changed(ns) == {"v", "z"}
    assert touched_names(ns, identities, "f()") >= {"f", "v"}
    assert "w" not in touched_names(ns, identities, "f()")


def test_no_source_makes_every_name_a_candidate() -> None:
    ns = {"a": 1, "b": 2}
    identities = NameIdentities()
    identities.record(ns)
    assert touched_names(ns, identities) == {"a", "b"}


def test_partial_record_updates_only_named_entries() -> None:
    ns = {"a": [1], "b": [2]}
    identities = NameIdentities()
    identities.record(ns)
    ns["a"] = [3]
    ns["b"] = [4]
    identities.record(ns, ["a"])
    assert identities.changed(ns) == {"b"}
    del ns["a"]
    identities.record(ns, ["a"])
    assert identities.changed(ns) == {"b"}


def test_writes_through_globals_and_literal_exec_are_read_statically() -> None:
    assert read("globals()['fresh'] = 1\nglobals().update(more=2)\ndel globals()['fresh']") == set()
    assert read("exec('data.append(1)')") == {"data"}
    assert read("for i in range(3):\n    globals()[f'v{i}'] = -i") == set()
    assert read("g = globals()") is None
    assert read("globals()['data'].append(1)") is None
    assert read("exec(code_text)") is None
