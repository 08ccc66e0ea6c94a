"""The comparison benchmark's state fingerprint: what it tells apart and what it ignores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.compare.fingerprint import clear_user_names, state_fingerprint, user_names
from benchmarks.compare.run import compare
from benchmarks.compare.session import probe_expression

ROOT = Path(__file__).resolve().parents[2]


def fingerprint_of(code: str) -> dict:
    ns = {"__name__": "__main__"}
    exec(compile(code, "<cell>", "exec"), ns)
    return json.loads(state_fingerprint(ns))


def test_equal_states_built_apart_have_equal_fingerprints():
    code = ("import numpy as np\nshared = [1, 2]\nholder = {'s': shared, 'k': 'key'}\n"
            "a = np.arange(1000.0)\nb = a[::2]\ndef f(x):\n    return x + len(shared)\n"
            "square = lambda v: v * v\n")
    assert fingerprint_of(code) == fingerprint_of(code)


def test_aliasing_between_names_counts():
    alias = fingerprint_of("a = [1]\nb = a\n")
    copy = fingerprint_of("a = [1]\nb = [1]\n")
    assert alias["names"] == copy["names"]  # each value alone is the same
    assert alias["digest"] != copy["digest"]
    assert compare(alias, copy) == (False, "aliasing between names differs")


def test_a_numpy_view_of_a_base_counts():
    view = fingerprint_of("import numpy as np\na = np.zeros(4)\nb = a[:2]\n")
    copy = fingerprint_of("import numpy as np\na = np.zeros(4)\nb = a[:2].copy()\n")
    assert view["digest"] != copy["digest"]


def test_compare_names_what_differs():
    before = fingerprint_of("x = 1\ny = [1]\nz = 3\n")
    after = fingerprint_of("x = 2\ny = [1]\nw = 4\n")
    exact, why = compare(before, after)
    assert not exact
    assert why == "missing z; extra w; different x"


def test_unsaveable_values_are_named_by_type_and_do_not_hide_the_rest():
    found = fingerprint_of("gen = (i for i in range(3))\ndef f():\n    return gen\nn = 1\n")
    assert found["unsaveable"] == {"gen": "builtins.generator"}
    # f's globals are the namespace, which holds the generator: f is still fingerprinted.
    assert set(found["names"]) == {"f", "n"}


def test_set_order_and_string_identity_do_not_count():
    # Two processes with different string hashing iterate a set of strings differently.
    code = ("import json, sys\nsys.path.insert(0, '.')\n"
            "from benchmarks.compare.fingerprint import state_fingerprint\n"
            "ns = {}\nexec(\"s = {'alpha', 'beta', 'gamma', 'delta', 'epsilon'}\\n"
            "t = ''.join(['ab', 'c'])\\nu = 'abc'\", ns)\n"
            "print(json.loads(state_fingerprint(ns))['digest'])\n")
    digests = {subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={"PYTHONHASHSEED": seed}).stdout
               for seed in ("1", "2", "3")}
    assert len(digests) == 1


def test_user_names_leave_out_ipython_and_kishu_names():
    ns = {"In": [], "Out": {}, "_": 1, "_i1": "", "get_ipython": print, "_kishu": 0,
          "kishu": 0, "init_kishu": 0, "x": 1}
    assert user_names(ns) == ["x"]
    clear_user_names(ns)
    assert "x" not in ns and "In" in ns


def test_probe_expression_binds_nothing_in_the_user_namespace():
    user_ns = {"__name__": "__main__", "__builtins__": __builtins__, "x": [1, 2]}

    class Shell:
        pass

    shell = Shell()
    shell.user_ns = user_ns  # type: ignore[attr-defined]
    user_ns["get_ipython"] = lambda: shell
    before = dict(user_ns)
    result = eval(probe_expression("state_fingerprint(ns)"), user_ns)
    assert set(json.loads(result)["names"]) == {"x"}
    assert user_ns.keys() == before.keys()


def test_dtype_objects_count_by_value_not_identity():
    # Unpickling an array makes it its own dtype object; the state is the same.
    shared = fingerprint_of("import numpy as np\na = np.zeros(3)\nb = np.ones(3)\n")
    own = fingerprint_of("import numpy as np\na = np.zeros(3)\n"
                         "b = np.ones(3, dtype=np.dtype('f8', False, True))\n")
    assert shared == own
