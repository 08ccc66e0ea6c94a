"""Library reductions: PyTorch tensors share storages, optimizers keep hooks, widgets save."""

from __future__ import annotations

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
