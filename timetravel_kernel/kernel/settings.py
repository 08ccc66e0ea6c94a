"""The kernel's settings: traitlets, each also read from a TIMETRAVEL_* variable (kernel layer).

A trait set in a config file or on the kernel's command line wins over its environment
variable (traitlets asks a ``@default`` only for what was not configured). The kernel class
inherits them, so they are configured as ``c.TimeTravelKernel.<name>``.
"""

from __future__ import annotations

import os

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Enum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from timetravel_kernel.kernel.rebuilding import REBUILD_POLICIES
from timetravel_kernel.kernel.storage import default_store_dir

__all__ = ["TimeTravelSettings"]

_POLICIES = ("restore", "offer", "never")
_CHECKPOINT_MODES = ("auto", "background", "sync")


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_int(name: str) -> int:
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:
        return 0


def _env_choice(name: str, choices: tuple[str, ...], fallback: str) -> str:
    value = os.environ.get(name, fallback)
    return value if value in choices else fallback


def _env_seconds(name: str, fallback: float, minimum: float = 0.1) -> float:
    try:
        return max(minimum, float(os.environ.get(name, fallback)))
    except ValueError:
        return fallback


class TimeTravelSettings(Configurable):
    """Every setting of the time-travel kernel (documented in the README's settings table)."""

    enabled = Bool(
        help="Checkpoint the namespace after every cell (env TIMETRAVEL_ENABLED=0 turns it off)."
    ).tag(config=True)
    store_dir = Unicode(
        help="Folder holding one history store per notebook (env TIMETRAVEL_STORE_DIR); "
        "defaults to <jupyter data dir>/timetravel/stores."
    ).tag(config=True)
    store_path = Unicode(
        help="Use exactly this store directory instead of one derived from the notebook path "
        "(env TIMETRAVEL_STORE)."
    ).tag(config=True)
    notebook_path = Unicode(
        help="The notebook this kernel serves; its store is keyed by it. Defaults to "
        "JPY_SESSION_NAME, which Jupyter Server sets; without it the connection file is the key."
    ).tag(config=True)
    skip_names = List(
        Unicode(), help="Top-level names never saved (env TIMETRAVEL_SKIP_NAMES, comma-separated)."
    ).tag(config=True)
    skip_types = List(
        Unicode(), help="Qualified type names (module.Class) whose values are never saved "
        "(env TIMETRAVEL_SKIP_TYPES, comma-separated)."
    ).tag(config=True)
    max_var_bytes = Int(
        help="Size budget: a group of variables larger than this many bytes is recorded as "
        "unsaved; 0 for no limit (env TIMETRAVEL_MAX_VAR_BYTES)."
    ).tag(config=True)
    restore_after_crash = Enum(
        _POLICIES, help="After the previous kernel of this notebook died (crash, kill, OOM): "
        "'restore' its last state before running anything, 'offer' it, or 'never' mention it "
        "(env TIMETRAVEL_RESTORE_AFTER_CRASH)."
    ).tag(config=True)
    restore_after_restart = Enum(
        _POLICIES, help="After a deliberate shutdown or restart: 'restore', 'offer' (start "
        "empty and announce that a restore is available) or 'never' "
        "(env TIMETRAVEL_RESTORE_AFTER_RESTART)."
    ).tag(config=True)
    keep_newer_than = Unicode(
        help="Retention: states newer than this age (90s, 30m, 12h, 7d, 2w) are all kept; "
        "older ones are thinned in the background, keeping branch tips and one per "
        "thin_every cells; empty keeps everything (env TIMETRAVEL_KEEP_NEWER_THAN)."
    ).tag(config=True)
    keep_last = Int(
        help="Retention: the newest N states are always kept (env TIMETRAVEL_KEEP_LAST)."
    ).tag(config=True)
    thin_every = Int(
        help="Retention: of the states older than keep_newer_than, keep one per N cells; 0 "
        "thins them all (env TIMETRAVEL_THIN_EVERY)."
    ).tag(config=True)
    store_budget = Unicode(
        help="Retention: the most disk a notebook's store may use (500MB, 2GB); the oldest "
        "states are thinned in the background when it is exceeded, HEAD's own past last; "
        "empty for no limit (env TIMETRAVEL_STORE_BUDGET)."
    ).tag(config=True)

    rebuild_unsaved = Enum(
        REBUILD_POLICIES, help="Values a restore cannot bring back (generators, connections, "
        "sockets, locks, open files) can be rebuilt by running again the recorded cells that "
        "made them, on their recorded inputs: 'ask' shows the cells first (%tt rebuild runs "
        "them), 'auto' rebuilds at once, 'never' leaves them (env TIMETRAVEL_REBUILD_UNSAVED)."
    ).tag(config=True)
    rebuild_budget = Float(
        help="Seconds a rebuild may run before it stops and reports what it could not make "
        "(env TIMETRAVEL_REBUILD_BUDGET)."
    ).tag(config=True)

    checkpoint_mode = Enum(
        _CHECKPOINT_MODES, help="Where a checkpoint's work runs: 'auto' in a forked copy-on-write "
        "snapshot unless the changed values are few, plain and small (Linux), so the kernel is "
        "idle at once; 'background' always forked; 'sync' in the kernel, which stays busy until "
        "the state is saved. Cells that end while a snapshot is still saving are recorded "
        "together with the next checkpoint (env TIMETRAVEL_CHECKPOINT_MODE)."
    ).tag(config=True)
    checkpoint_hang_seconds = Float(
        help="A background checkpoint that makes no progress for this long is stopped and "
        "reported; the next checkpoint saves what it could not "
        "(env TIMETRAVEL_CHECKPOINT_HANG_SECONDS)."
    ).tag(config=True)

    checkpoint_burst_seconds = Float(
        help="While more requests wait (Run All), cells that ran for less than this together "
        "are recorded as one state with the next cell's checkpoint instead of one each: "
        "checkpoints then cost a bounded share of a burst of quick cells. 0 records every "
        "cell; so does checkpoint_mode 'sync' (env TIMETRAVEL_CHECKPOINT_BURST_SECONDS)."
    ).tag(config=True)

    @default("checkpoint_burst_seconds")
    def _default_checkpoint_burst_seconds(self) -> float:
        return _env_seconds("TIMETRAVEL_CHECKPOINT_BURST_SECONDS", 0.5, minimum=0.0)

    @default("checkpoint_mode")
    def _default_checkpoint_mode(self) -> str:
        return _env_choice("TIMETRAVEL_CHECKPOINT_MODE", _CHECKPOINT_MODES, "auto")

    @default("checkpoint_hang_seconds")
    def _default_checkpoint_hang_seconds(self) -> float:
        return _env_seconds("TIMETRAVEL_CHECKPOINT_HANG_SECONDS", 300.0)

    @default("rebuild_unsaved")
    def _default_rebuild_unsaved(self) -> str:
        return _env_choice("TIMETRAVEL_REBUILD_UNSAVED", REBUILD_POLICIES, "ask")

    @default("rebuild_budget")
    def _default_rebuild_budget(self) -> float:
        try:
            budget = float(os.environ.get("TIMETRAVEL_REBUILD_BUDGET", "60"))
        except ValueError:
            return 60.0
        return budget if 0 < budget <= 86_400 else 60.0

    remote = Unicode(
        help="Push this notebook's history to this remote after every checkpoint, in the "
        "background, and fetch it when the local store is missing or behind: a URL "
        "(s3://bucket/prefix, file:///folder) or a name from `timetravel remote add` (env "
        "TIMETRAVEL_REMOTE). Credentials come from the AWS variables; needs the notebook path."
    ).tag(config=True)
    remote_trust = Bool(
        help="Restore histories from the remote even when they are not signed with this "
        "user's key (loading a state can run code: only for remotes you trust) "
        "(env TIMETRAVEL_REMOTE_TRUST=1)."
    ).tag(config=True)
    remote_key_file = Unicode(
        help="A team signing key file, shared by everyone pushing to and pulling from the "
        "remote (env TIMETRAVEL_REMOTE_KEY_FILE); default: the user's own key in the Jupyter "
        "data dir."
    ).tag(config=True)

    @default("remote")
    def _default_remote(self) -> str:
        return os.environ.get("TIMETRAVEL_REMOTE", "")

    @default("remote_trust")
    def _default_remote_trust(self) -> bool:
        return os.environ.get("TIMETRAVEL_REMOTE_TRUST", "").lower() in ("1", "true", "yes", "on")

    @default("remote_key_file")
    def _default_remote_key_file(self) -> str:
        return os.environ.get("TIMETRAVEL_REMOTE_KEY_FILE", "")

    @default("enabled")
    def _default_enabled(self) -> bool:
        return os.environ.get("TIMETRAVEL_ENABLED", "1").lower() not in ("0", "false", "no", "off")

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return os.environ.get("TIMETRAVEL_STORE_DIR") or str(default_store_dir(jupyter_data_dir()))

    @default("store_path")
    def _default_store_path(self) -> str:
        return os.environ.get("TIMETRAVEL_STORE", "")

    @default("notebook_path")
    def _default_notebook_path(self) -> str:
        return os.environ.get("JPY_SESSION_NAME", "")

    @default("skip_names")
    def _default_skip_names(self) -> list[str]:
        return _env_list("TIMETRAVEL_SKIP_NAMES")

    @default("skip_types")
    def _default_skip_types(self) -> list[str]:
        return _env_list("TIMETRAVEL_SKIP_TYPES")

    @default("max_var_bytes")
    def _default_max_var_bytes(self) -> int:
        return _env_int("TIMETRAVEL_MAX_VAR_BYTES")

    @default("restore_after_crash")
    def _default_restore_after_crash(self) -> str:
        return _env_choice("TIMETRAVEL_RESTORE_AFTER_CRASH", _POLICIES, "restore")

    @default("restore_after_restart")
    def _default_restore_after_restart(self) -> str:
        return _env_choice("TIMETRAVEL_RESTORE_AFTER_RESTART", _POLICIES, "offer")

    @default("keep_newer_than")
    def _default_keep_newer_than(self) -> str:
        return os.environ.get("TIMETRAVEL_KEEP_NEWER_THAN", "")

    @default("keep_last")
    def _default_keep_last(self) -> int:
        return _env_int("TIMETRAVEL_KEEP_LAST")

    @default("thin_every")
    def _default_thin_every(self) -> int:
        return _env_int("TIMETRAVEL_THIN_EVERY")

    @default("store_budget")
    def _default_store_budget(self) -> str:
        return os.environ.get("TIMETRAVEL_STORE_BUDGET", "")
