"""CheckoutLoader: bring the co-variables of a checkout plan into memory (timeline layer).

Each differing co-variable comes, in order of preference, from the live cache (the very
objects, if they still exist unchanged), from the live objects patched in place (when only
buffer chunks differ), or from the store. An unsaveable one that is not in the cache (after a
restart) is reconnected when it described itself (a file, a sqlite3 database file, a lock, an
event): that runs none of the notebook's code, so it happens on every route and under every
rebuild policy, which only governs running cells again. Nothing touches the namespace here:
the timeline applies the result all at once, so a failure leaves the namespace as it was.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from timetravel_kernel.errors import SerializationError, StoreError
from timetravel_kernel.state import (
    UnrestoredValue,
    dump_values,
    fingerprint,
    is_live_memory,
    load_stored,
)
from timetravel_kernel.state.libraries import LiveWidgets
from timetravel_kernel.state.revival import revive_value
from timetravel_kernel.timeline.memory import estimated_bytes
from timetravel_kernel.timeline.patching import BufferPatch, plan_in_place
from timetravel_kernel.timeline.plan import load_order

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from timetravel_kernel.ids import CovarId
    from timetravel_kernel.state import Serialized, TimelineOptions
    from timetravel_kernel.store import Covar, NamespaceTree, ObjectStore
    from timetravel_kernel.timeline.livecache import LiveCache
    from timetravel_kernel.timeline.plan import CheckoutPlan

__all__ = ["CheckoutLoader", "Loaded"]

Namespace = dict[str, object]
_WIDGET_SCAN_BYTES = 16 << 20


@dataclass
class Loaded:
    """What a checkout loaded, before it is applied to the namespace.

    ``fresh`` are versions read from the store, to cache once applied. ``kept`` are the
    unrestored names whose stored value was read but cannot be rebuilt here: their live value
    stays (a checkout never fails, nor deletes a value, for a class that does not load back).
    ``reconnected`` are unsaveable versions made again from their descriptions, to adopt as
    those versions once applied; ``unreconnected`` the names whose reconnection failed.
    """

    staged: Namespace = field(default_factory=dict)
    unrestored: dict[str, str] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)
    patches: list[BufferPatch | LiveWidgets] = field(default_factory=list)
    fresh: list[tuple[CovarId, Covar, tuple[object, ...]]] = field(default_factory=list)
    reconnected: list[tuple[CovarId, Covar, tuple[object, ...]]] = field(default_factory=list)
    unreconnected: set[str] = field(default_factory=set)


class _UnloadableError(SerializationError):
    """A stored value was read but cannot be rebuilt (its class changed, or does not load)."""


class _Resolver:
    """Resolves by-name references of loading streams against the target state."""

    def __init__(self, namespace: Namespace, staged: Namespace, kept: set[str]) -> None:
        self._namespace = namespace
        self._staged = staged
        self._kept = kept

    def value(self, name: str) -> object:
        if name in self._staged:
            return self._staged[name]
        if name in self._kept:
            return dict.__getitem__(self._namespace, name)
        raise SerializationError(
            name, "", f"it refers to {name!r}, which the restored state does not have"
        )

    def namespace(self) -> Namespace:
        return self._namespace


def _holes_match(serialized: Serialized, resolver: _Resolver) -> bool:
    """Return whether the live objects a stream refers to by name are the target's values.

    The stream names another name's unsaveable value, not the object: live values holding
    one object stand for the target version only where the target has that very object.
    """
    for name, held in serialized.holes.items():
        try:
            if resolver.value(name) is not held:
                return False
        except SerializationError:
            return False
    return True


def _reconnect(covar: Covar, loaded: Loaded) -> tuple[object, ...] | None:
    """Return an unsaveable version made again from its descriptions, or None (unrestored)."""
    if covar.revival is None:
        loaded.unrestored.update(dict.fromkeys(covar.members, covar.reason or "not saved"))
        return None
    try:
        return tuple(revive_value(description) for description in covar.revival)
    except (SerializationError, OSError) as exc:
        why = exc.reason if isinstance(exc, SerializationError) else str(exc)
        loaded.unrestored.update(dict.fromkeys(covar.members,
                                               f"it could not be reconnected: {why}"))
        loaded.unreconnected.update(covar.members)
        return None


class CheckoutLoader:
    """Loads the covars of one checkout plan.

    Args:
        store: where versions are read from.
        options: the options the live versions were fingerprinted with.
        cache: live objects of recent versions.
        live_tree: the tree the namespace equals.
        live_members: members of every covar in the live tree.
        namespace: the live namespace (read, never written).
        reserve: called with the names and the bytes about to be read from the store (a
            covar loaded whole, or the chunks patched in place): the memory check; what it
            raises stops the load.
    """

    def __init__(
        self,
        store: ObjectStore,
        options: TimelineOptions,
        cache: LiveCache,
        live_tree: NamespaceTree,
        live_members: Mapping[CovarId, tuple[str, ...]],
        namespace: Namespace,
        *,
        reserve: Callable[[tuple[str, ...], int], None] | None = None,
    ) -> None:
        self._store = store
        self._options = options
        self._cache = cache
        self._tree = live_tree
        self._members = live_members
        self._namespace = namespace
        self._reserve = reserve

    def load(
        self, plan: CheckoutPlan, covars: Mapping[CovarId, Covar], *, strict: bool
    ) -> Loaded:
        """Load every covar of the plan, a covar referring to a name after that name's.

        Raises:
            SerializationError: with ``strict``, a covar could not be loaded (corrupt or
                missing data, a module that is gone); otherwise it is listed as unrestored.
        """
        loaded = Loaded()
        resolver = _Resolver(self._namespace, loaded.staged, set(plan.keep))
        refs = {c: covar.refs for c, covar in covars.items()}
        for covar_of in load_order(plan.load, refs):
            covar = covars[covar_of]
            earlier = self._cache.get(covar_of)  # objects of this version, maybe changed since
            values = self._cached(covar_of, covar, resolver)
            if values is None and covar.serializer == "unsaved":
                values = _reconnect(covar, loaded)
                if values is None:
                    continue
                loaded.reconnected.append((covar_of, covar, values))
            if values is None:
                try:
                    values = self._patch_or_read(covar, resolver, loaded, earlier)
                except _UnloadableError as exc:
                    live = {m for m in covar.members if m in self._namespace}
                    loaded.kept |= live
                    loaded.unrestored.update(
                        {m: f"kept as it is: {exc.reason}" if m in live else exc.reason
                         for m in covar.members})
                    continue
                except (SerializationError, StoreError) as exc:
                    if isinstance(exc, StoreError) and not strict:
                        raise  # damaged store, not an unloadable value: the caller decides
                    if strict:
                        raise SerializationError(
                            ", ".join(covar.members), "", f"cannot be restored: {exc}"
                        ) from exc
                    loaded.unrestored.update(dict.fromkeys(covar.members, str(exc)))
                    continue
                loaded.fresh.append((covar_of, covar, values))
            loaded.staged.update(zip(covar.members, values, strict=True))
        return loaded

    def _cached(self, covar_of: CovarId, covar: Covar,
                resolver: _Resolver) -> tuple[object, ...] | None:
        """Return cached live values of a covar if they are still exactly that version."""
        values = self._cache.get(covar_of)
        if values is None or covar.serializer == "unsaved":
            return values
        for name, value in zip(covar.members, values, strict=True):
            if dict.get(self._namespace, name) is value and self._tree.get(name) != covar_of:
                # The same object was committed since as another version: it has changed.
                self._cache.discard(covar_of)
                return None
        found = fingerprint(values, self._namespace, covar.members, self._options)
        if found is None or found[0] != covar_of or not _holes_match(found[1], resolver):
            self._cache.discard(covar_of)
            return None
        return values

    def _patch_or_read(
        self, covar: Covar, resolver: _Resolver, loaded: Loaded,
        earlier: tuple[object, ...] | None,
    ) -> tuple[object, ...]:
        """Return the target values: the live objects patched in place when they allow it.

        Widgets read from the store are the live ones (``earlier``: this version's objects,
        else the members' live values), their traits set back when the checkout applies.
        """
        in_place = self._plan_in_place(covar, resolver)
        if in_place is not None:
            values, patches = in_place
            loaded.patches += patches
            return values
        return self._read(covar, resolver, loaded, earlier)

    def _live_widgets(self, covar: Covar,
                      earlier: tuple[object, ...] | None) -> LiveWidgets | None:
        """Return the live widgets a load of ``covar`` (which makes widgets) may hand back."""
        values = earlier
        if values is None and all(m in self._namespace for m in covar.members):
            values = tuple(dict.__getitem__(self._namespace, m) for m in covar.members)
        if values is None:
            return None
        try:
            serialized = dump_values(values, self._namespace, covar.members,
                                     is_tracked=self._options.is_tracked)
        except SerializationError:
            return None
        return LiveWidgets(serialized.widgets) if serialized.widgets else None

    def _plan_in_place(
        self, covar: Covar, resolver: _Resolver
    ) -> tuple[tuple[object, ...], list[BufferPatch]] | None:
        members = covar.members
        live_ids = {self._tree.get(m) for m in members}
        # Names changed since the checkpoint qualify too: the fingerprint proves they are not.
        if len(live_ids) != 1 or any(m not in self._namespace for m in members):
            return None
        (live_id,) = live_ids
        if live_id is None or self._members.get(live_id) != members:
            return None
        values = tuple(dict.__getitem__(self._namespace, m) for m in members)
        found = fingerprint(values, self._namespace, members, self._options)
        if found is None or found[0] != live_id or not _holes_match(found[1], resolver):
            return None  # the live objects are not exactly their recorded version
        live = self._store.load_covar(live_id)
        reserve = None if self._reserve is None else functools.partial(self._reserve, members)
        patches = plan_in_place(self._store, live, covar, found[1], reserve=reserve)
        if patches is None:
            return None
        if patches and not is_live_memory(values, self._namespace, members, self._options,
                                          found[1]):
            return None  # the buffers are copies a __getstate__ made: load the target whole
        return values, patches

    def refill(self, names: set[str],
               covar_refs: Mapping[CovarId, tuple[str, ...]]) -> list[tuple[CovarId, Covar,
                                                                          tuple[object, ...]]]:
        """Return the live saved versions that hold placeholders for ``names``, loaded again.

        A saved value restored while another name's unsaveable value was missing holds an
        ``UnrestoredValue`` where that value was; once it is back (rebuilt), loading the very
        same version again puts it there, so ``cache['conn'] is conn`` holds as it did. A
        version whose live values changed since (its fingerprint differs) is left as it is.
        """
        resolver = _Resolver(self._namespace, {}, set(self._namespace))
        filled = []
        for covar_of, refs in covar_refs.items():
            members = self._members.get(covar_of, ())
            if names.isdisjoint(refs) or not members or any(
                    self._tree.get(m) != covar_of or m not in self._namespace for m in members):
                continue
            values = tuple(dict.__getitem__(self._namespace, m) for m in members)
            found = fingerprint(values, self._namespace, members, self._options)
            if found is None or found[0] != covar_of or not any(
                    isinstance(found[1].holes.get(n), UnrestoredValue) for n in names):
                continue
            covar = self._store.load_covar(covar_of)
            try:
                filled.append((covar_of, covar, self._read(covar, resolver)))
            except SerializationError:
                continue  # it loaded once: keep the placeholder rather than fail the rebuild
        return filled

    def _read(self, covar: Covar, resolver: _Resolver, loaded: Loaded | None = None,
              earlier: tuple[object, ...] | None = None) -> tuple[object, ...]:
        """Load a version from the store (its memory reserved first, when a guard is set).

        With ``loaded``, its widgets are the live ones, their traits set back when it applies.
        """
        if self._reserve is not None:
            self._reserve(covar.members, estimated_bytes(covar))
        widgets = None
        if loaded is not None and "ipywidgets" in sys.modules and self._makes_widgets(covar):
            widgets = self._live_widgets(covar, earlier)
            if widgets is not None:
                loaded.patches.append(widgets)
        try:
            return load_stored(self._store, covar, resolver, widgets=widgets)
        except SerializationError as exc:
            raise _UnloadableError(exc.name, exc.type_name, exc.reason) from exc

    def _makes_widgets(self, covar: Covar) -> bool:
        """Whether a version's stream makes ipywidgets widgets (looked for in small streams).

        Only a stream read whole can be searched before it is unpickled; a stream over
        ``_WIDGET_SCAN_BYTES`` (no widget state is that big) is streamed and makes new widgets.
        """
        ref = covar.buffers[0]
        if ref.size > _WIDGET_SCAN_BYTES:
            return False
        with self._store.open_stream(ref) as stream:
            return b"make_widget" in stream.read()
