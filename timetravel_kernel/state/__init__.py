"""State layer: what changed in a namespace and how values become bytes and back."""

from timetravel_kernel.state.capture import (
    CapturedCovar,
    build_covar,
    capture,
    fingerprint,
    is_live_memory,
)
from timetravel_kernel.state.covariables import partition
from timetravel_kernel.state.options import TimelineOptions
from timetravel_kernel.state.serializers import Serialized, dump_values
from timetravel_kernel.state.tracking import NameIdentities, names_read, touched_names
from timetravel_kernel.state.unpickling import (
    NameResolver,
    UnrestoredValue,
    load_stored,
    load_values,
)
from timetravel_kernel.state.unsaveable import type_name

__all__ = [
    "CapturedCovar",
    "NameIdentities",
    "NameResolver",
    "Serialized",
    "TimelineOptions",
    "UnrestoredValue",
    "build_covar",
    "capture",
    "dump_values",
    "fingerprint",
    "is_live_memory",
    "load_stored",
    "load_values",
    "names_read",
    "partition",
    "touched_names",
    "type_name",
]
