"""Library reductions: PyTorch tensors share storages, optimizers keep hooks, widgets save."""

from __future__ import annotations

import pytest
import torch

from timetravel_kernel.state import dump_values, load_values

from ..workloads import fresh_namespace, run_cell
from .test_reductions import Resolver


def round_trip(ns: dict, *names: str) -> tuple:
    serialized = dump_values(tuple(ns[n] for n in names), ns, names)
    buffers = [bytearray(b) for b in serialized.buffers]
    return load_values(serialized.serializer, serialized.stream, buffers, Resolver(ns))


def test_tensor_and_its_views_share_one_storage_out_of_band() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import torch\nt = torch.arange(12.0).reshape(3, 4)\ncolumn = t[:, 1]\n"
                 "halves = torch.ones(5, dtype=torch.bfloat16)")
    serialized = dump_values((ns["t"], ns["column"]), ns, ("t", "column"))
    assert [len(b) for b in serialized.buffers] == [48]  # one storage, once
    t, column, halves = round_trip(ns, "t", "column", "halves")
    t[0, 1] = -5.0
    assert column[0].item() == -5.0  # still a view of the restored tensor
    assert column.stride() == (4,) and column.storage_offset() == 1
    assert torch.equal(t[1:], ns["t"][1:])
    assert halves.dtype == torch.bfloat16 and torch.equal(halves, ns["halves"])


def test_parameters_keep_their_identity_in_modules_and_optimizers() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import torch\nnet = torch.nn.Linear(3, 2)\n"
                 "opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)\n"
                 "net(torch.ones(1, 3)).sum().backward()\nopt.step()\n"
                 "calls = []\nopt.register_step_post_hook(lambda *a: calls.append(1))")
    net, opt = round_trip(ns, "net", "opt")
    assert isinstance(net.weight, torch.nn.Parameter) and net.weight.requires_grad
    assert opt.param_groups[0]["params"][0] is net.weight
    assert torch.equal(opt.state[net.weight]["momentum_buffer"],
                       ns["opt"].state[ns["net"].weight]["momentum_buffer"])
    assert len(opt._optimizer_step_post_hooks) == 1  # torch's own pickling drops hooks
    net(torch.ones(1, 3)).sum().backward()
    opt.step()  # still works


def test_widget_is_saved_as_its_traits_children_included() -> None:
    ns = fresh_namespace()
    run_cell(ns, "import ipywidgets as w\nslider = w.IntSlider(value=7, max=20, "
                 "description='n')\nbox = w.VBox([slider, w.Dropdown(options=['a', 'b'], "
                 "value='b')])")
    slider, box = round_trip(ns, "slider", "box")
    assert (slider.value, slider.max, slider.description) == (7, 20, "n")
    assert box.children[0] is slider
    assert box.children[1].value == "b" and list(box.children[1].options) == ["a", "b"]
    assert slider.model_id != ns["slider"].model_id  # a new frontend model


PATSY_CELL = """
import numpy as np, pandas as pd, patsy
rng = np.random.default_rng(3)
data = pd.DataFrame({'x': rng.normal(size=12), 'w': rng.uniform(1, 2, size=12),
                     'g': list('abc') * 4})
data['y'] = 2 * data.x - np.log(data.w) + rng.normal(size=12)
y, X = patsy.dmatrices('y ~ x + center(w) + np.log(w) + C(g)', data)
coef, resid, _, _ = np.linalg.lstsq(X, y, rcond=None)
coef = pd.Series(coef.squeeze(), index=X.design_info.column_names)
new = pd.DataFrame({'x': [0.5, -1.0], 'w': [1.5, 1.2], 'g': ['b', 'c']})
new_X = patsy.build_design_matrices([X.design_info], new)
parts = [X[:, 1], np.asarray(X), X[2:5]]
owned = X.copy()
owned_view = np.asarray(owned)[:, :2]
"""
PATSY_NAMES = ("y", "X", "coef", "new_X", "parts", "owned", "owned_view")


def test_patsy_design_matrices_are_saved_by_value_and_build_the_same_matrices_again() -> None:
    """patsy refuses pickling; its objects are plain state, saved by value: the matrices come
    back as DesignMatrix with their DesignInfo (terms, stateful transforms, contrasts), views
    stay views, and the restored DesignInfo builds the same matrix for new data."""
    import numpy as np
    import pandas as pd
    import patsy

    ns = fresh_namespace()
    run_cell(ns, PATSY_CELL)
    serialized = dump_values(tuple(ns[n] for n in PATSY_NAMES), ns, PATSY_NAMES)
    assert serialized.serializer == "pickle"
    fresh = fresh_namespace()
    run_cell(fresh, "import numpy as np, pandas as pd, patsy")
    values = load_values(serialized.serializer, serialized.stream,
                         [bytearray(b) for b in serialized.buffers], Resolver(fresh))
    got = dict(zip(PATSY_NAMES, values, strict=True))
    X = got["X"]
    assert type(X) is patsy.DesignMatrix and np.array_equal(X, ns["X"])
    assert X.design_info.column_names == ns["X"].design_info.column_names
    assert list(X.design_info.term_name_slices) == list(ns["X"].design_info.term_name_slices)
    assert got["new_X"][0].design_info is X.design_info  # one DesignInfo, as before
    pd.testing.assert_series_equal(got["coef"], ns["coef"])
    # The stateful transform (center) and the contrasts were restored with their state.
    again = patsy.build_design_matrices([X.design_info], ns["new"])[0]
    assert np.array_equal(again, ns["new_X"][0])
    # What a factor's code looks up (patsy copies those names at fit time) is the very
    # module or function again, not a copy: np.log, the center transform.
    envs = {factor.name(): info.state["eval_env"]._namespaces[0]
            for factor, info in X.design_info.factor_infos.items()}
    assert envs["np.log(w)"]["np"] is np and envs["center(w)"]["center"] is patsy.center
    # Views stay views of the restored matrices, owned memory included.
    parts = got["parts"]
    for view in (*parts, X):
        assert np.shares_memory(view, parts[1])
    assert np.shares_memory(got["owned_view"], got["owned"])
    assert type(got["owned"]) is patsy.DesignMatrix
    X[0, 1] = 99.0
    assert parts[0][0] == 99.0 and parts[1][0, 1] == 99.0
    assert np.array_equal(got["y"], ns["y"]) and got["y"].design_info.column_names == ["y"]


def test_statsmodels_fits_on_design_matrices_are_saved_and_predict_the_same() -> None:
    ns = fresh_namespace()
    run_cell(ns, PATSY_CELL + "import statsmodels.api as sm\nfit = sm.OLS(y, X).fit()\n"
                              "formula = __import__('statsmodels.formula.api').formula.api"
                              ".ols('y ~ x + np.log(w) + C(g)', data).fit()\n")
    fit, formula = round_trip(ns, "fit", "formula")
    assert fit.params.tolist() == ns["fit"].params.tolist()
    assert fit.predict(ns["new_X"][0]).tolist() == ns["fit"].predict(ns["new_X"][0]).tolist()
    assert formula.predict(ns["new"]).tolist() == ns["formula"].predict(ns["new"]).tolist()


def test_a_load_can_put_the_traits_back_on_the_live_widgets() -> None:
    """Stored widgets know their place in the stream; a load given the live widgets returns
    them (same model ids) and sets the stored traits only when applied."""
    from timetravel_kernel.state.libraries import LiveWidgets

    ns = fresh_namespace()
    run_cell(ns, "import ipywidgets as w\nslider = w.IntSlider(value=7, max=20)\n"
                 "box = w.VBox([slider, w.Text(value='a')])")
    stored = dump_values((ns["box"], ns["slider"]), ns, ("box", "slider"))
    box, slider = ns["box"], ns["slider"]
    ids = (box.model_id, slider.model_id, box.children[1].model_id)
    run_cell(ns, "slider.value = 3\nbox.children[1].value = 'b'\nbox.layout.width = '50%'")
    live = dump_values((box, slider), ns, ("box", "slider"))
    assert len(live.widgets) >= 3 and live.widgets[0] is box
    widgets = LiveWidgets(live.widgets)
    loaded = load_values(stored.serializer, stored.stream,
                         [bytearray(b) for b in stored.buffers], Resolver(ns), widgets=widgets)
    assert loaded == (box, slider) and slider.value == 3  # nothing changed before apply
    widgets.apply()
    assert (slider.value, box.children[1].value, box.layout.width) == (7, "a", None)
    assert (box.model_id, slider.model_id, box.children[1].model_id) == ids
    assert box.children[0] is slider
    # Without live widgets, a load makes new ones, as after a restart.
    (fresh,) = load_values(stored.serializer, stored.stream, [], Resolver(ns))[:1]
    assert fresh is not box and fresh.model_id != box.model_id


PATSY_OBJECTS = {
    # name: (expression, what it does, compared before and after)
    "desc": ("patsy.ModelDesc.from_formula('y ~ a + b:c - 1')", "desc.describe()"),
    "factor": ("patsy.EvalFactor('np.log(w)')", "[factor.name(), hash(factor) == hash("
               "patsy.EvalFactor('np.log(w)'))]"),
    "constraint": ("patsy.DesignInfo(['a', 'b', 'c']).linear_constraint('a = 2 * b')",
                   "[constraint.coefs.tolist(), constraint.constants.tolist()]"),
    "contrast": ("patsy.Poly().code_with_intercept(['lo', 'mid', 'hi'])",
                 "[contrast.matrix.round(9).tolist(), contrast.column_suffixes]"),
    "splines": ("patsy.dmatrix('bs(x, df=4) + cr(w, df=3) + standardize(x)', data)",
                "patsy.build_design_matrices([splines.design_info], new)[0].round(9).tolist()"),
    "coded": ("patsy.dmatrix('C(g, Sum) + C(g, Helmert):x + C(g, levels=[\"c\", \"b\", \"a\"])',"
              " data)", "patsy.build_design_matrices([coded.design_info], new)[0].tolist()"),
    "na": ("patsy.NAAction(NA_types=['None'])", "[na.NA_types, na.on_NA]"),
    "from_array": ("patsy.DesignInfo.from_array(np.ones((2, 3)), default_column_prefix='v')",
                   "from_array.column_names"),
}


@pytest.mark.parametrize("name", sorted(PATSY_OBJECTS))
def test_every_patsy_object_is_saved_by_value_and_behaves_the_same(name: str) -> None:
    ns = fresh_namespace()
    run_cell(ns, PATSY_CELL)
    expression, behaviour = PATSY_OBJECTS[name]
    run_cell(ns, f"{name} = {expression}")
    before = eval(behaviour, ns)
    serialized = dump_values((ns[name],), ns, (name,))
    fresh = fresh_namespace()
    run_cell(fresh, "import numpy as np, pandas as pd, patsy")
    fresh.update(data=ns["data"], new=ns["new"])
    (fresh[name],) = load_values(serialized.serializer, serialized.stream,
                                 [bytearray(b) for b in serialized.buffers], Resolver(fresh))
    assert type(fresh[name]) is type(ns[name])
    assert eval(behaviour, fresh) == before
