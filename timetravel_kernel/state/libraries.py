"""Reductions for library classes whose own pickling loses state or identity (state layer).

Each applies only when its library is already imported (looked up in ``sys.modules``, never
imported here), and is exact where the library's own ``__reduce__`` is not:

* a PyTorch tensor keeps sharing its storage with the other tensors viewing it (torch's own
  reduction copies the storage once per tensor): the storage is pickled as itself (torch keeps
  one Python object per storage, so the names sharing it become one co-variable), its bytes out
  of band, chunked and compared like a numpy array's;
* a PyTorch optimizer keeps its hooks and flags (its ``__getstate__`` keeps three attributes),
  restored through its own ``__setstate__``;
* an ipywidgets widget is saved as its traits, not refused for the lock its comm holds.

The rebuild functions here are named in stored streams: their names and signatures are part of
the store format.
"""

from __future__ import annotations

import copyreg
import sys
from typing import Any

__all__ = [
    "LibraryReducer",
    "make_storage",
    "make_tensor",
    "make_widget",
]

# Traits of a widget that are its machinery (the channel to its frontend model), not its state.
_WIDGET_MACHINERY = frozenset({"comm", "keys", "log"})


def make_widget(cls: type, state: dict[str, object]) -> object:
    """Make a widget again from its traits: a new model, which the frontend shows afresh."""
    return cls(**state)


def make_storage(data: object) -> object:
    """Rebuild a PyTorch storage holding a copy of ``data`` (a uint8 numpy array)."""
    import torch

    tensor = torch.empty(len(data), dtype=torch.uint8)  # type: ignore[arg-type]
    tensor.numpy()[...] = data
    return tensor.untyped_storage()


def make_tensor(storage: object, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                dtype: object, requires_grad: bool, parameter: bool) -> object:
    """Rebuild a tensor (or parameter) viewing a storage shared with the others of the stream."""
    import torch

    tensor = torch.empty(0, dtype=dtype).set_(storage, offset, size, stride)  # type: ignore[arg-type]
    if parameter:
        return torch.nn.Parameter(tensor, requires_grad=requires_grad)
    return tensor.requires_grad_(requires_grad)


class LibraryReducer:
    """The library reductions of one pickling: which classes, and the storages met so far."""

    def __init__(self) -> None:
        torch = sys.modules.get("torch")
        widgets = sys.modules.get("ipywidgets")
        self._tensor = getattr(torch, "Tensor", None)
        self._storage = getattr(torch, "UntypedStorage", None)
        self._parameter = getattr(getattr(torch, "nn", None), "Parameter", None)
        self._optimizer = getattr(getattr(torch, "optim", None), "Optimizer", None)
        self._strided = getattr(torch, "strided", None)
        self._widget = getattr(widgets, "Widget", None)
        self.active = self._tensor is not None or self._widget is not None

    def reduce(self, obj: object) -> tuple[object, ...] | None:
        """Return the library reduction of ``obj``, or None when none applies."""
        cls = type(obj)
        if cls is self._tensor or cls is self._parameter:
            return self._reduce_tensor(obj)
        if cls is self._storage and obj.device.type == "cpu":  # type: ignore[attr-defined]
            return self._reduce_storage(obj)
        if self._optimizer is not None and isinstance(obj, self._optimizer):
            # An LR scheduler wraps the optimizer's ``step`` (holding a weak reference, which
            # cannot be saved); the class's own is put back, as torch's own pickling does.
            state = {k: v for k, v in vars(obj).items() if k != "step"}
            return (copyreg.__newobj__, (cls,), state)  # __setstate__ sets it all
        if self._widget is not None and isinstance(obj, self._widget):
            names = obj.trait_names()  # type: ignore[attr-defined]
            state = {
                name: getattr(obj, name)
                for name in names
                if (not name.startswith("_") or name == "_dom_classes")
                and name not in _WIDGET_MACHINERY
            }
            return (make_widget, (cls, state))
        return None

    def _reduce_tensor(self, tensor: Any) -> tuple[object, ...] | None:
        if (tensor.layout is not self._strided or tensor.device.type != "cpu"
                or not tensor.is_leaf or vars(tensor) or tensor.is_quantized
                or tensor.is_conj() or tensor.is_neg()):
            return None  # torch's own reduction (or its refusal) handles the rest
        return (make_tensor, (tensor.untyped_storage(), tensor.storage_offset(),
                              tuple(tensor.shape), tensor.stride(), tensor.dtype,
                              tensor.requires_grad, type(tensor) is self._parameter))

    @staticmethod
    def _reduce_storage(storage: Any) -> tuple[object, ...]:
        import torch

        nbytes = storage.nbytes()
        whole = torch.empty(0, dtype=torch.uint8).set_(storage, 0, (nbytes,), (1,))
        return (make_storage, (whole.numpy(),))
