"""The kernel's settings: traitlets, each also read from a TIMETRAVEL_* variable (kernel layer).

A trait set in a config file or on the kernel's command line wins over its environment
variable (traitlets asks a ``@default`` only for what was not configured). The kernel class
inherits them, so they are configured as ``c.TimeTravelKernel.<name>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Enum, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from timetravel_kernel.session.rebuild_policy import REBUILD_POLICIES
from timetravel_kernel.session.storage import default_store_dir

__all__ = ["TimeTravelSettings"]

_POLICIES = ("restore", "offer", "never")
_CHECKPOINT_MODES = ("auto", "background", "sync")


def _text(name: str, fallback: str = "") -> str:
    return os.environ.get(name, fallback)


def _flag(name: str, fallback: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return fallback


def _names(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _count(name: str) -> int:
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:
        return 0


def _choice(name: str, choices: tuple[str, ...], fallback: str) -> str:
    value = os.environ.get(name, fallback)
    return value if value in choices else fallback


def _seconds(name: str, fallback: float, low: float, high: float = float("inf")) -> float:
    """Read a number of seconds; one that is not a number or out of [low, high] is ignored."""
    try:
        value = float(os.environ.get(name, fallback))
    except ValueError:
        return fallback
    return value if low <= value <= high else fallback


def _from_env(trait: str, read: Callable[[], object]) -> Any:
    """A trait's default read from its environment variable when it is not configured."""
    return default(trait)(lambda _settings: read())


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
        REBUILD_POLICIES, help="Values a restore cannot bring back (generators, sockets, "
        "threads, in-memory databases) can be rebuilt by running again the recorded cells "
        "that made them, on their recorded inputs: 'ask' shows the cells first (%tt rebuild "
        "runs them), 'auto' rebuilds at once, 'never' leaves them. Open files, sqlite3 "
        "connections to a file, locks and events are reconnected under every policy: that "
        "runs no cell (env TIMETRAVEL_REBUILD_UNSAVED)."
    ).tag(config=True)
    rebuild_budget = Float(
        help="Seconds a rebuild may run before it stops and reports what it could not make "
        "(env TIMETRAVEL_REBUILD_BUDGET)."
    ).tag(config=True)

    checkpoint_mode = Enum(
        _CHECKPOINT_MODES, help="Where a checkpoint's work runs: 'auto' in a forked copy-on-write "
        "snapshot unless the changed values are few, plain and small (Linux), so the kernel is "
        "idle at once; 'background' always forked; 'sync' in the kernel, which stays busy until "
        "the state is saved. Every cell gets a state of its own in every mode "
        "(env TIMETRAVEL_CHECKPOINT_MODE)."
    ).tag(config=True)
    checkpoint_hang_seconds = Float(
        help="A background checkpoint that makes no progress for this long is stopped and "
        "reported; the next checkpoint saves what it could not "
        "(env TIMETRAVEL_CHECKPOINT_HANG_SECONDS)."
    ).tag(config=True)

    checkpoint_max_pending = Int(
        help="Snapshots taken but not yet saved (cells run faster than their states are "
        "written, as in Run All); past this the next cell's snapshot waits for a free place "
        "(env TIMETRAVEL_CHECKPOINT_MAX_PENDING, at least 1)."
    ).tag(config=True)






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

    # Each setting's environment variable, read only when the trait is not configured.
    _enabled_env = _from_env("enabled", lambda: _flag("TIMETRAVEL_ENABLED", True))
    _store_dir_env = _from_env("store_dir", lambda: _text("TIMETRAVEL_STORE_DIR")
                               or str(default_store_dir(jupyter_data_dir())))
    _store_path_env = _from_env("store_path", lambda: _text("TIMETRAVEL_STORE"))
    _notebook_path_env = _from_env("notebook_path", lambda: _text("JPY_SESSION_NAME"))
    _skip_names_env = _from_env("skip_names", lambda: _names("TIMETRAVEL_SKIP_NAMES"))
    _skip_types_env = _from_env("skip_types", lambda: _names("TIMETRAVEL_SKIP_TYPES"))
    _max_var_bytes_env = _from_env("max_var_bytes", lambda: _count("TIMETRAVEL_MAX_VAR_BYTES"))
    _restore_after_crash_env = _from_env("restore_after_crash", lambda: _choice(
        "TIMETRAVEL_RESTORE_AFTER_CRASH", _POLICIES, "restore"))
    _restore_after_restart_env = _from_env("restore_after_restart", lambda: _choice(
        "TIMETRAVEL_RESTORE_AFTER_RESTART", _POLICIES, "offer"))
    _keep_newer_than_env = _from_env("keep_newer_than",
                                     lambda: _text("TIMETRAVEL_KEEP_NEWER_THAN"))
    _keep_last_env = _from_env("keep_last", lambda: _count("TIMETRAVEL_KEEP_LAST"))
    _thin_every_env = _from_env("thin_every", lambda: _count("TIMETRAVEL_THIN_EVERY"))
    _store_budget_env = _from_env("store_budget", lambda: _text("TIMETRAVEL_STORE_BUDGET"))
    _rebuild_unsaved_env = _from_env("rebuild_unsaved", lambda: _choice(
        "TIMETRAVEL_REBUILD_UNSAVED", REBUILD_POLICIES, "ask"))
    _rebuild_budget_env = _from_env("rebuild_budget", lambda: _seconds(
        "TIMETRAVEL_REBUILD_BUDGET", 60.0, low=0.1, high=86_400.0))
    _checkpoint_mode_env = _from_env("checkpoint_mode", lambda: _choice(
        "TIMETRAVEL_CHECKPOINT_MODE", _CHECKPOINT_MODES, "auto"))
    _checkpoint_hang_seconds_env = _from_env("checkpoint_hang_seconds", lambda: _seconds(
        "TIMETRAVEL_CHECKPOINT_HANG_SECONDS", 300.0, low=0.1))
    _checkpoint_max_pending_env = _from_env("checkpoint_max_pending", lambda: max(
        1, _count("TIMETRAVEL_CHECKPOINT_MAX_PENDING") or 16))
    _remote_env = _from_env("remote", lambda: _text("TIMETRAVEL_REMOTE"))
    _remote_trust_env = _from_env("remote_trust", lambda: _flag("TIMETRAVEL_REMOTE_TRUST", False))
    _remote_key_file_env = _from_env("remote_key_file",
                                     lambda: _text("TIMETRAVEL_REMOTE_KEY_FILE"))
