"""Comparison: what changed inside a value, said in one line for people (state layer).

The history shows ``changed: df``; these functions say *what* changed: a number's old and new
value, a frame's dropped columns and changed cells, an array's changed elements. Each looks at
the two values only, runs in time linear in their size, and shows a few examples at most.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

from timetravel_kernel.state.unsaveable import type_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    import numpy as np
    import pandas as pd

__all__ = ["describe_arrays", "describe_change"]

# A repr longer than this is not shown in full: the line must stay readable.
_SHORT_REPR = 60
_SCALARS = (int, float, complex, bool, type(None), str, bytes)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHORT_REPR else text[: _SHORT_REPR - 3] + "..."


def _is_short_scalar(value: object) -> bool:
    return isinstance(value, _SCALARS) and len(repr(value)) <= _SHORT_REPR


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _listing(items: Sequence[str], limit: int) -> str:
    """Return up to ``limit`` items joined, saying how many more there are."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def _sizes(old: int, new: int, unit: str) -> str:
    return _plural(old, unit) if old == new else f"{old} → {new} {unit}s"


def _equal(a: object, b: object) -> bool:
    """Return whether two items are equal; NaN equals NaN, arrays compare element-wise."""
    if a is b:
        return True
    try:
        result = a == b
        if isinstance(result, bool):
            if not result and isinstance(a, float) and isinstance(b, float):
                return math.isnan(a) and math.isnan(b)
            return result
        equals = getattr(a, "equals", None)  # pandas objects
        if callable(equals):
            return bool(equals(b))
        return bool(result.all())  # type: ignore[attr-defined]
    except (TypeError, ValueError, AttributeError):
        return False


def _plain(value: object) -> object:
    """Return a numpy scalar as the Python number it holds (its repr is shorter)."""
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item) and getattr(value, "ndim", 1) == 0:
        return item()
    return value


def _change_of(old: object, new: object) -> str:
    """Return `` (old → new)`` for two short scalars, else nothing."""
    old, new = _plain(old), _plain(new)
    if _is_short_scalar(old) and _is_short_scalar(new):
        return f" ({_short(old)} → {_short(new)})"
    return ""


def describe_change(old: object, new: object, *, examples: int = 3) -> str | None:
    """Return what changed from ``old`` to ``new``, or None when no kind here applies.

    Args:
        old: the earlier value.
        new: the later value.
        examples: at most this many changed items are shown.
    """
    if _is_short_scalar(old) and _is_short_scalar(new):
        return f"{_short(old)} → {_short(new)}"
    if type(old) is not type(new) and type_name(old) != type_name(new):
        return f"type {type_name(old)} → {type_name(new)}"
    if isinstance(old, str) and isinstance(new, str):
        first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
        at = first if first is not None else min(len(old), len(new))
        return f"str of {_sizes(len(old), len(new), 'char')}, first difference at {at}"
    describer = _describer(old)
    return describer(old, new, examples) if describer is not None else None


def _describer(value: object) -> Callable[[object, object, int], str] | None:
    if isinstance(value, dict):
        return _describe_dict  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return _describe_sequence  # type: ignore[return-value]
    if isinstance(value, (set, frozenset)):
        return _describe_set  # type: ignore[return-value]
    numpy = sys.modules.get("numpy")
    if numpy is not None and type(value) is numpy.ndarray:
        return lambda old, new, limit: describe_arrays(old, new, examples=limit)  # type: ignore[arg-type]
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return _describe_frame  # type: ignore[return-value]
    if pandas is not None and isinstance(value, pandas.Series):
        return _describe_series  # type: ignore[return-value]
    return None


def _describe_dict(old: dict[object, object], new: dict[object, object], limit: int) -> str:
    added = [_short(k) for k in new if k not in old]
    removed = [_short(k) for k in old if k not in new]
    changed = [_short(k) + _change_of(old[k], new[k])
               for k in new if k in old and not _equal(old[k], new[k])]
    parts = [f"added {_listing(added, limit)}" if added else "",
             f"removed {_listing(removed, limit)}" if removed else "",
             f"changed {_listing(changed, limit)}" if changed else ""]
    return _joined(f"{type_name(old)} of {_sizes(len(old), len(new), 'key')}", parts)


def _describe_sequence(old: Sequence[object], new: Sequence[object], limit: int) -> str:
    common = min(len(old), len(new))
    changed = [f"[{i}]{_change_of(old[i], new[i])}"
               for i in range(common) if not _equal(old[i], new[i])]
    parts = [f"added {len(new) - common} at the end" if len(new) > common else "",
             f"removed {len(old) - common} from the end" if len(old) > common else "",
             f"changed {_listing(changed, limit)}" if changed else ""]
    return _joined(f"{type_name(old)} of {_sizes(len(old), len(new), 'item')}", parts)


def _describe_set(old: set[object], new: set[object], limit: int) -> str:
    added = sorted(_short(v) for v in new - old)
    removed = sorted(_short(v) for v in old - new)
    parts = [f"added {_listing(added, limit)}" if added else "",
             f"removed {_listing(removed, limit)}" if removed else ""]
    return _joined(f"{type_name(old)} of {_sizes(len(old), len(new), 'item')}", parts)


def _joined(head: str, parts: Iterable[str]) -> str:
    said = [p for p in parts if p]
    return f"{head}: {'; '.join(said)}" if said else f"{head}: equal (order or metadata changed)"


# -- numpy -----------------------------------------------------------------------------------


def describe_arrays(
    old: np.ndarray,
    new: np.ndarray,
    *,
    pieces: Iterable[tuple[int, np.ndarray, np.ndarray]] | None = None,
    examples: int = 3,
) -> str:
    """Return an array's shape, dtype and element changes.

    Args:
        old: the earlier array.
        new: the later array.
        pieces: (flat C-order start, old elements, new elements) of the parts that may
            differ; elsewhere the arrays are known equal, so a 400 MB array whose one chunk
            changed costs that chunk, and ``old``/``new`` only give shape and dtype. None:
            compare everything.
        examples: at most this many changed elements are shown.
    """
    import numpy as np

    dtypes = str(old.dtype) if old.dtype == new.dtype else f"{old.dtype} → {new.dtype}"
    if old.shape != new.shape:
        return f"ndarray shape {old.shape} → {new.shape}, dtype {dtypes}"
    head = f"ndarray {old.shape} {dtypes}"
    if pieces is None:
        pieces = [(0, old.reshape(-1), new.reshape(-1))]
    count, gap, shown = 0, 0.0, []
    numeric = old.dtype.kind in "iufc" and new.dtype.kind in "iufc"
    wide = np.complex128 if "c" in (old.dtype.kind, new.dtype.kind) else np.float64
    for start, a, b in pieces:
        try:
            where = np.flatnonzero(np.asarray(a != b))
        except (TypeError, ValueError):
            return f"{head}: values not comparable"
        if where.size and old.dtype.kind in "fc" and new.dtype.kind in "fc":
            where = where[~(np.isnan(a[where]) & np.isnan(b[where]))]  # NaN equals NaN
        if where.size == 0:
            continue
        count += where.size
        if numeric:
            gap = max(gap, float(np.abs(a[where].astype(wide) - b[where].astype(wide)).max()))
        for at in where[: max(0, examples - len(shown))]:
            index = ", ".join(str(int(i)) for i in np.unravel_index(start + int(at), old.shape))
            shown.append(f"[{index}] {_short(_plain(a[at]))} → {_short(_plain(b[at]))}")
    if count == 0:
        return f"{head}: values equal"
    text = f"{head}: {count} of {old.size} elements changed"
    if numeric:
        text += f", max abs diff {gap:.6g}"
    more = f" and {count - examples} more" if count > examples else ""
    return f"{text}; e.g. {', '.join(shown)}{more}"


# -- pandas ----------------------------------------------------------------------------------


def _changed_labels(old: pd.Series, new: pd.Series) -> list[object]:
    """Return the labels (of both, aligned) whose values differ; NaN equals NaN."""
    common = old.index.intersection(new.index, sort=False)
    a, b = old.loc[common], new.loc[common]
    try:
        same = (a == b) | (a.isna() & b.isna())
    except (TypeError, ValueError):
        return list(common)
    return list(common[~same.to_numpy(dtype=bool)])


def _rows(old: pd.Index, new: pd.Index, limit: int) -> list[str]:
    added = [_short(v) for v in new.difference(old, sort=False)]
    removed = [_short(v) for v in old.difference(new, sort=False)]
    return [f"added {_plural(len(added), 'row')}: {_listing(added, limit)}" if added else "",
            f"removed {_plural(len(removed), 'row')}: {_listing(removed, limit)}"
            if removed else ""]


def _unique(*indexes: pd.Index) -> bool:
    return all(index.is_unique for index in indexes)


def _describe_frame(old: pd.DataFrame, new: pd.DataFrame, limit: int) -> str:
    shape = str(old.shape) if old.shape == new.shape else f"{old.shape} → {new.shape}"
    head = f"DataFrame {shape}"
    if not _unique(old.columns, new.columns, old.index, new.index):
        return f"{head}: changed (labels are not unique, cells not compared)"
    added = [_short(c) for c in new.columns if c not in old.columns]
    dropped = [_short(c) for c in old.columns if c not in new.columns]
    common = [c for c in new.columns if c in old.columns]
    retyped = [f"{_short(c)} ({old[c].dtype} → {new[c].dtype})"
               for c in common if old[c].dtype != new[c].dtype]
    cells: list[str] = []
    count = 0
    for column in common:
        labels = _changed_labels(old[column], new[column])
        count += len(labels)
        cells += [f"[{_short(r)}, {_short(column)}]"
                  f"{_change_of(old.at[r, column], new.at[r, column])}"
                  for r in labels[: max(0, limit - len(cells))]]
    parts = [f"dropped {_plural(len(dropped), 'column')}: {_listing(dropped, limit)}"
             if dropped else "",
             f"added {_plural(len(added), 'column')}: {_listing(added, limit)}" if added else "",
             f"retyped {_listing(retyped, limit)}" if retyped else "",
             *_rows(old.index, new.index, limit),
             f"changed {_plural(count, 'cell')}, e.g. {', '.join(cells)}" if count else ""]
    return _joined(head, parts)


def _describe_series(old: pd.Series, new: pd.Series, limit: int) -> str:
    shape = str(old.shape) if old.shape == new.shape else f"{old.shape} → {new.shape}"
    dtype = str(old.dtype) if old.dtype == new.dtype else f"{old.dtype} → {new.dtype}"
    head = f"Series {shape} {dtype}"
    if not _unique(old.index, new.index):
        return f"{head}: changed (labels are not unique, values not compared)"
    labels = _changed_labels(old, new)
    values = [f"[{_short(r)}]{_change_of(old.at[r], new.at[r])}" for r in labels[:limit]]
    parts = [*_rows(old.index, new.index, limit),
             f"changed {_plural(len(labels), 'value')}, e.g. {', '.join(values)}"
             if labels else ""]
    return _joined(head, parts)
