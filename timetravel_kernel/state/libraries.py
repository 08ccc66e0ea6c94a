"""Reductions for library classes whose own pickling loses state or identity (state layer).

Each applies only when its library is already imported (looked up in ``sys.modules``, never
imported here), and is exact where the library's own ``__reduce__`` is not:

* a PyTorch tensor keeps sharing its storage with the other tensors viewing it (torch's own
  reduction copies the storage once per tensor): the storage is pickled as itself (torch keeps
  one Python object per storage, so the names sharing it become one co-variable), its bytes out
  of band, chunked and compared like a numpy array's;
* a PyTorch optimizer keeps its hooks and flags (its ``__getstate__`` keeps three attributes),
  restored through its own ``__setstate__``;
* an ipywidgets widget is saved as its traits, not refused for the lock its comm holds, with
  its place among the stream's widgets, so a load within the process can put the traits back
  on the live widget (``LiveWidgets``): its model id, and so the views on screen, stay;
* patsy's objects (a ``DesignMatrix``, the ``DesignInfo`` it carries, its terms, factors,
  contrasts, stateful transforms and evaluation environment) by value: patsy refuses pickling
  only because it does not promise a format across its versions ("Sorry, pickling not yet
  supported"), while each object is plain Python state in its ``__dict__``, saved here for
  the same session's restore. A ``DesignMatrix`` keeps its memory out of band and shared with
  the other arrays viewing it; the environment's namespace is the notebook's (by reference),
  so formulas evaluate against the restored names as they did against the live ones.

The rebuild functions here are named in stored streams: their names and signatures are part of
the store format.
"""

from __future__ import annotations

import copyreg
import sys
import types
from typing import Any

from timetravel_kernel.state.reductions import array_buffer, import_attribute

__all__ = [
    "LibraryReducer",
    "LiveWidgets",
    "make_array_subclass",
    "make_storage",
    "make_tensor",
    "make_widget",
]

# Traits of a widget that are its machinery (the channel to its frontend model), not its state.
_WIDGET_MACHINERY = frozenset({"comm", "keys", "log"})


def make_widget(cls: type, state: dict[str, object], ordinal: int | None = None) -> object:
    """Make a widget again from its traits: a new model, which the frontend shows afresh.

    ``ordinal`` is its place among the widgets of its stream (``LiveWidgets`` reads it).
    """
    return cls(**state)


class LiveWidgets:
    """Live widgets a load hands back, traits updated, instead of making new ones.

    Within one process the widgets of a version usually still exist (on screen): the load
    matches each stored widget to the live one at the same place among the stream's widgets
    (of the same class), returns it, and ``apply`` sets the stored traits on it once the whole
    checkout has loaded (so a failed checkout changes no widget). A widget without a live
    match is made anew.

    Args:
        widgets: the live widgets, in the order pickling met them (``Serialized.widgets``).
    """

    def __init__(self, widgets: tuple[object, ...]) -> None:
        self._widgets = widgets
        self._updates: list[tuple[Any, dict[str, object]]] = []

    def make(self, cls: type, state: dict[str, object], ordinal: int | None = None) -> object:
        """``make_widget`` for a load: the live widget at ``ordinal``, if it is one of ``cls``."""
        live = self._widgets[ordinal] if ordinal is not None and ordinal < len(
            self._widgets) else None
        if type(live) is not cls:
            return make_widget(cls, state)
        self._updates.append((live, state))
        return live

    def apply(self) -> None:
        """Set the loaded traits on the live widgets (the frontend gets one update each)."""
        # traitlets is there whenever a widget is (looked up, never imported here)
        refused: type[Exception] = sys.modules["traitlets"].TraitError
        for widget, state in self._updates:
            try:
                with widget.hold_sync(), widget.hold_trait_notifications():
                    for name, value in state.items():
                        try:
                            setattr(widget, name, value)
                        except refused:
                            continue  # read-only here: the widget keeps its own
            except refused:
                # Cross-validation at the end refused the set (traitlets rolled it back): the
                # checkout is applied already, so the widget keeps what it shows.
                continue


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


def make_array_subclass(cls: type, source: object, offset: int, shape: tuple[int, ...],
                        strides: tuple[int, ...], dtype: object,
                        state: dict[str, object]) -> object:
    """Rebuild an array subclass (a patsy ``DesignMatrix``) with its attributes.

    ``source`` is the array whose memory it views (restored first, so views stay views), or
    the out-of-band buffer of the memory it owned.
    """
    import numpy as np

    buffer = source
    if isinstance(source, np.ndarray) and not source.flags.c_contiguous:
        buffer = source.ravel(order="K").view(np.uint8)  # the same memory, byte-addressed
    array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset,  # type: ignore[call-overload]
                       strides=strides).view(cls)
    vars(array).update(state)
    return array


# The library reduction each class takes ("" for none), decided once per class: a class of a
# library exists only once that library is imported, so a decision never goes stale.
_KINDS: dict[type, str] = {}


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
        patsy = sys.modules.get("patsy")
        self._no_pickling = getattr(getattr(patsy, "util", None), "no_pickling", None)
        # what formulas see besides the notebook's names (I, C, center, bs, ...)
        self._patsy_builtins = getattr(getattr(patsy, "eval", None), "_builtins_dict", None)
        self._ndarray = getattr(sys.modules.get("numpy"), "ndarray", None)
        self.active = (self._tensor is not None or self._widget is not None
                       or self._no_pickling is not None)
        self.widgets: list[object] = []  # in the order met: a widget's place in the stream

    def reduce(self, obj: object) -> tuple[object, ...] | None:
        """Return the library reduction of ``obj``, or None when none applies."""
        cls = type(obj)
        if cls is types.FunctionType:
            return self._reduce_patsy_function(obj) if self._patsy_builtins else None
        kind = _KINDS.get(cls)
        if kind is None:
            kind = _KINDS[cls] = self._kind(cls)
        if not kind:
            return None
        if kind == "tensor":
            return self._reduce_tensor(obj)
        if kind == "storage":
            return self._reduce_storage(obj) if obj.device.type == "cpu" else None  # type: ignore[attr-defined]
        if kind == "optimizer":
            # An LR scheduler wraps the optimizer's ``step`` (holding a weak reference, which
            # cannot be saved); the class's own is put back, as torch's own pickling does.
            state = {k: v for k, v in vars(obj).items() if k != "step"}
            return (copyreg.__newobj__, (cls,), state)  # __setstate__ sets it all
        if kind == "widget":
            names = obj.trait_names()  # type: ignore[attr-defined]
            state = {
                name: getattr(obj, name)
                for name in names
                if (not name.startswith("_") or name == "_dom_classes")
                and name not in _WIDGET_MACHINERY
            }
            self.widgets.append(obj)
            return (make_widget, (cls, state, len(self.widgets) - 1))
        if kind == "patsy-array":
            return _reduce_array_subclass(obj, self._ndarray)  # type: ignore[arg-type]
        return (copyreg.__newobj__, (cls,), dict(vars(obj)))  # patsy: restored into __dict__

    def reduces_arrays_of(self, cls: type) -> bool:
        """Return whether arrays of ``cls`` (a subclass) are saved here with their memory.

        Views of such an array can then be saved as views of it, as views of a plain array are.
        """
        kind = _KINDS.get(cls)
        if kind is None:
            kind = _KINDS[cls] = self._kind(cls)
        return kind == "patsy-array"

    def _kind(self, cls: type) -> str:
        if cls is self._tensor or cls is self._parameter:
            return "tensor"
        if cls is self._storage:
            return "storage"
        if self._optimizer is not None and issubclass(cls, self._optimizer):
            return "optimizer"
        if self._widget is not None and issubclass(cls, self._widget):
            return "widget"
        if self._no_pickling is not None and self._refused_by_patsy(cls):
            ndarray = self._ndarray
            return "patsy-array" if ndarray is not None and issubclass(cls, ndarray) else "patsy"
        return ""

    def _refused_by_patsy(self, cls: type) -> bool:
        """Return whether patsy refuses to pickle ``cls``.

        patsy's refusal is ``patsy.util.no_pickling`` as ``__getstate__`` (``__reduce__`` for
        the ndarray subclass), or a ``__getstate__`` of its own that raises (``Origin``, which
        cannot import ``no_pickling``): no patsy class defines a ``__getstate__`` that works.
        """
        getstate = getattr(cls, "__getstate__", None)
        return _is_patsy(cls) and (getattr(cls, "__reduce__", None) is self._no_pickling
                                   or (_is_patsy(getstate) and hasattr(cls, "__dict__")))

    def _reduce_patsy_function(self, function: object) -> tuple[object, ...] | None:
        """Refer to a formula function (center, standardize, bs) by its name in patsy.

        A stateful transform is a wrapper named after its class, so pickle's own reference
        would find the class instead.
        """
        for name, value in self._patsy_builtins.items():  # type: ignore[union-attr]
            if value is function:
                return (import_attribute, ("patsy.builtins", name))
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


def _is_patsy(thing: object) -> bool:
    return str(getattr(thing, "__module__", None)).startswith("patsy.")


def _reduce_array_subclass(array: Any, ndarray: type) -> tuple[object, ...]:
    """Reduce an array subclass to its memory and attributes (``make_array_subclass``).

    Its memory is a view of its root array when it has one, else its own buffer, out of band.
    """
    root = array
    while isinstance(root.base, ndarray):
        root = root.base
    state = dict(vars(array))
    layout = (array.shape, array.strides, array.dtype, state)
    if root is not array:
        offset = array.__array_interface__["data"][0] - root.__array_interface__["data"][0]
        return (make_array_subclass, (type(array), root, offset, *layout))
    buffer = array_buffer(array)
    if buffer is None or not (array.flags.c_contiguous or array.flags.f_contiguous):
        raise TypeError(f"cannot save a {type(array).__name__} of objects or strided memory")
    return (make_array_subclass, (type(array), buffer, 0, *layout))
