"""The kernel's settings: traitlets, each also read from a TIMETRAVEL_* variable (kernel layer).

A trait set in a config file or on the kernel's command line wins over its environment
variable (traitlets asks a ``@default`` only for what was not configured). The kernel class
inherits them, so they are configured as ``c.TimeTravelKernel.<name>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from traitlets import Bool, Enum, Float, Int, List, TraitType, Unicode, default
from traitlets.config import Configurable

from timetravel_kernel.session.rebuild_policy import REBUILD_POLICIES
from timetravel_kernel.session.storage import default_store_dir

__all__ = ["TimeTravelSettings", "render_settings_page"]

_POLICIES = ("restore", "offer", "never")
_CHECKPOINT_MODES = ("auto", "background", "sync")


@dataclass(frozen=True, slots=True)
class _EnvDefault:
    """A trait's default read from its environment variable: the variable, its parser, its form.

    Called by traitlets as the trait's ``@default`` method, so only when the trait is not
    configured. ``parse(None)`` is the default without the variable, and a value the parser
    cannot read falls back to it; docs/configuration.md shows both, so they cannot drift.
    """

    variable: str
    parse: Callable[[str | None], object]
    accepts: str = ""

    def __call__(self, _settings: object) -> object:
        return self.parse(os.environ.get(self.variable))


def _text(variable: str, fallback: Callable[[], str] = str) -> _EnvDefault:
    return _EnvDefault(variable, lambda raw: raw or fallback())


def _flag(variable: str, fallback: bool) -> _EnvDefault:
    def parse(raw: str | None) -> bool:
        value = (raw or "").strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        return fallback
    return _EnvDefault(variable, parse, "1, true, yes, on / 0, false, no, off")


def _names(variable: str) -> _EnvDefault:
    return _EnvDefault(variable, lambda raw: [item.strip() for item in (raw or "").split(",")
                                              if item.strip()], "comma-separated")


def _count(variable: str, fallback: int = 0, low: int = 0) -> _EnvDefault:
    def parse(raw: str | None) -> int:
        try:
            value = int(raw or fallback)
        except ValueError:
            return fallback
        return value if value >= low else fallback
    return _EnvDefault(variable, parse, f"a whole number, at least {low}")


def _choice(variable: str, choices: tuple[str, ...], fallback: str) -> _EnvDefault:
    return _EnvDefault(variable, lambda raw: raw if raw in choices else fallback,
                       " / ".join(choices))


def _seconds(variable: str, fallback: float, low: float, high: float = float("inf")) -> _EnvDefault:
    def parse(raw: str | None) -> float:
        try:
            value = float(raw or fallback)
        except ValueError:
            return fallback
        return value if low <= value <= high else fallback
    upper = f" to {high:g}" if high != float("inf") else " or more"
    return _EnvDefault(variable, parse, f"seconds, {low:g}{upper}")


def _from_env(trait: str, reader: _EnvDefault) -> Any:
    """Make ``reader`` the trait's default; the class keeps it as ``_<trait>_env``."""
    return default(trait)(reader)


class TimeTravelSettings(Configurable):
    """Every setting of the time-travel kernel; docs/configuration.md is generated from them.

    Each trait's ``help`` says what it does; its environment variable and its default come from
    its ``_<trait>_env`` reader below, the one place they are written.
    """

    enabled = Bool(
        help="Checkpoint the namespace after every cell. Off, no store is opened, nothing is "
        "recorded and `%tt` says that time travel is off."
    ).tag(config=True)
    store_dir = Unicode(
        help="Folder holding one history store per notebook (created private to the user)."
    ).tag(config=True)
    store_path = Unicode(
        help="Use exactly this store folder instead of one derived from the notebook path."
    ).tag(config=True)
    notebook_path = Unicode(
        help="The notebook this kernel serves; its store is keyed by it. Jupyter Server sets "
        "its variable; in VS Code it is taken from `__vsc_ipynb_file__`, which VS Code's start-up "
        "code assigns. Without either, the kernel's connection file is the key."
    ).tag(config=True)
    skip_names = List(
        Unicode(), help="Top-level names never saved."
    ).tag(config=True)
    skip_types = List(
        Unicode(), help="Qualified type names (`module.Class`) whose values are never saved, "
        "e.g. `torch.utils.data.DataLoader`."
    ).tag(config=True)
    max_var_bytes = Int(
        help="Size budget: a group of variables larger than this many bytes is recorded as "
        "unsaved; 0 for no limit."
    ).tag(config=True)
    restore_after_crash = Enum(
        _POLICIES, help="After the previous kernel of this notebook died (crash, kill, OOM): "
        "`restore` its last state before running anything, `offer` it, or `never` mention it."
    ).tag(config=True)
    restore_after_restart = Enum(
        _POLICIES, help="After a deliberate shutdown or restart: `restore`, `offer` (start "
        "empty and announce that a restore is available) or `never`."
    ).tag(config=True)
    keep_newer_than = Unicode(
        help="Retention: states newer than this age (`90s`, `30m`, `12h`, `7d`, `2w`) are "
        "all kept; older ones are thinned in the background, keeping branch tips and one per "
        "`thin_every` cells; empty keeps everything."
    ).tag(config=True)
    keep_last = Int(
        help="Retention: the newest N states are always kept; set without `keep_newer_than`, "
        "the older ones are thinned as `keep_newer_than` describes; 0 for no such rule."
    ).tag(config=True)
    thin_every = Int(
        help="Retention: of the states older than `keep_newer_than` (or than the newest "
        "`keep_last`), keep one per N cells; 0 thins them all."
    ).tag(config=True)
    store_budget = Unicode(
        help="Retention: the most disk a notebook's store may use (`500MB`, `2GB`); the oldest "
        "states are thinned in the background when it is exceeded, HEAD's own past last; "
        "empty for no limit."
    ).tag(config=True)

    rebuild_unsaved = Enum(
        REBUILD_POLICIES, help="Values a restore cannot bring back (generators, sockets, "
        "threads, in-memory databases) can be rebuilt by running again the recorded cells "
        "that made them, on their recorded inputs: `ask` shows the cells first (`%tt rebuild` "
        "runs them), `auto` rebuilds at once, `never` leaves them. Open files, sqlite3 "
        "connections to a file, locks and events are reconnected under every policy: that "
        "runs no cell."
    ).tag(config=True)
    rebuild_budget = Float(
        help="Seconds a rebuild may run before it stops and reports what it could not make."
    ).tag(config=True)

    checkpoint_mode = Enum(
        _CHECKPOINT_MODES, help="Where a checkpoint's work runs: `auto` in a forked "
        "copy-on-write snapshot unless the changed values are few, plain and small or memory "
        "is short, so the kernel is idle at once; `background` always forked; `sync` in the "
        "kernel, which stays busy until the state is saved. Snapshots need Linux's `fork()`; "
        "elsewhere every mode is `sync`. Every cell gets a state of its own in every mode."
    ).tag(config=True)
    checkpoint_hang_seconds = Float(
        help="A background checkpoint that makes no progress for this long is stopped and "
        "reported; the next checkpoint saves what it could not."
    ).tag(config=True)
    checkpoint_max_pending = Int(
        help="Snapshots taken but not yet saved (cells run faster than their states are "
        "written, as in Run All); past this the next cell's snapshot waits for a free place."
    ).tag(config=True)

    remote = Unicode(
        help="Push this notebook's history to this remote after every checkpoint, in the "
        "background, and fetch it when the local store is missing or behind: a URL "
        "(`s3://bucket/prefix`, `file:///folder`) or a name from `timetravel remote add`. "
        "Credentials come from the AWS variables; needs the notebook path."
    ).tag(config=True)
    remote_trust = Bool(
        help="Restore histories from the remote even when they are not signed with this "
        "user's key (loading a state can run code: only for remotes you trust)."
    ).tag(config=True)
    remote_key_file = Unicode(
        help="A team signing key file, shared by everyone pushing to and pulling from the "
        "remote; empty for the user's own key, "
        "`<jupyter data dir>/timetravel/remote-signing.key` (made on first use)."
    ).tag(config=True)

    # Each setting's environment variable, read only when the trait is not configured.
    _enabled_env = _from_env("enabled", _flag("TIMETRAVEL_ENABLED", fallback=True))
    _store_dir_env = _from_env("store_dir", _text(
        "TIMETRAVEL_STORE_DIR", lambda: str(default_store_dir(jupyter_data_dir()))))
    _store_path_env = _from_env("store_path", _text("TIMETRAVEL_STORE"))
    _notebook_path_env = _from_env("notebook_path", _text("JPY_SESSION_NAME"))
    _skip_names_env = _from_env("skip_names", _names("TIMETRAVEL_SKIP_NAMES"))
    _skip_types_env = _from_env("skip_types", _names("TIMETRAVEL_SKIP_TYPES"))
    _max_var_bytes_env = _from_env("max_var_bytes", _count("TIMETRAVEL_MAX_VAR_BYTES"))
    _restore_after_crash_env = _from_env("restore_after_crash", _choice(
        "TIMETRAVEL_RESTORE_AFTER_CRASH", _POLICIES, "restore"))
    _restore_after_restart_env = _from_env("restore_after_restart", _choice(
        "TIMETRAVEL_RESTORE_AFTER_RESTART", _POLICIES, "offer"))
    _keep_newer_than_env = _from_env("keep_newer_than", _text("TIMETRAVEL_KEEP_NEWER_THAN"))
    _keep_last_env = _from_env("keep_last", _count("TIMETRAVEL_KEEP_LAST"))
    _thin_every_env = _from_env("thin_every", _count("TIMETRAVEL_THIN_EVERY"))
    _store_budget_env = _from_env("store_budget", _text("TIMETRAVEL_STORE_BUDGET"))
    _rebuild_unsaved_env = _from_env("rebuild_unsaved", _choice(
        "TIMETRAVEL_REBUILD_UNSAVED", REBUILD_POLICIES, "ask"))
    _rebuild_budget_env = _from_env("rebuild_budget", _seconds(
        "TIMETRAVEL_REBUILD_BUDGET", 60.0, low=0.1, high=86_400.0))
    _checkpoint_mode_env = _from_env("checkpoint_mode", _choice(
        "TIMETRAVEL_CHECKPOINT_MODE", _CHECKPOINT_MODES, "auto"))
    _checkpoint_hang_seconds_env = _from_env("checkpoint_hang_seconds", _seconds(
        "TIMETRAVEL_CHECKPOINT_HANG_SECONDS", 300.0, low=0.1))
    _checkpoint_max_pending_env = _from_env("checkpoint_max_pending", _count(
        "TIMETRAVEL_CHECKPOINT_MAX_PENDING", fallback=16, low=1))
    _remote_env = _from_env("remote", _text("TIMETRAVEL_REMOTE"))
    _remote_trust_env = _from_env("remote_trust", _flag("TIMETRAVEL_REMOTE_TRUST", fallback=False))
    _remote_key_file_env = _from_env("remote_key_file", _text("TIMETRAVEL_REMOTE_KEY_FILE"))


# -- the page docs/configuration.md, generated from the traits ---------------------------------

_PAGE_HEADER = """\
# Configuration

<!-- Generated from the traits of timetravel_kernel/kernel/settings.py by
`python -m timetravel_kernel.kernel.settings > docs/configuration.md`; a test fails when this
page differs from a fresh generation. Edit the traits' help, not this page. -->

Every setting of the kernel is a traitlet of `TimeTravelKernel`, so it can be set like any
IPython kernel setting, in `ipython_kernel_config.py` or on the kernel's command line, or
through its environment variable in the kernel's environment:

```python
# ~/.ipython/profile_default/ipython_kernel_config.py
c.TimeTravelKernel.skip_types = ["torch.utils.data.DataLoader"]
c.TimeTravelKernel.store_budget = "2GB"
```

```bash
TIMETRAVEL_STORE_BUDGET=2GB TIMETRAVEL_KEEP_NEWER_THAN=7d jupyter lab
```

A trait set in a config file or on the command line wins over its variable. A variable whose
value cannot be read (not a number, out of range, not one of the choices) is ignored: the
default stands. Defaults under the Jupyter data dir (`jupyter --data-dir`) are shown relative
to it. How retention, restores and remotes behave is in [usage.md](usage.md) and
[remotes.md](remotes.md).

| setting | environment variable | default | what it does |
|---|---|---|---|
"""


def _render_default(value: object) -> str:
    if value in ("", []):
        return "—"
    if isinstance(value, float):
        return f"`{value:g}`"
    text = str(value)
    data_dir = jupyter_data_dir()
    if isinstance(value, str) and text.startswith(data_dir):
        text = "<jupyter data dir>" + text[len(data_dir):]
    return f"`{text}`"


def render_settings_page() -> str:
    """Return docs/configuration.md: one row per trait, in the order the class defines them.

    The variable, what it accepts and the default come from the trait's reader, the meaning from
    its ``help``; nothing on the page is written twice.
    """
    rows = []
    members = vars(TimeTravelSettings)
    for name, trait in members.items():
        if not isinstance(trait, TraitType):
            continue
        reader: _EnvDefault = members[f"_{name}_env"].func
        variable = f"`{reader.variable}`" + (f" ({reader.accepts})" if reader.accepts else "")
        meaning = " ".join(trait.help.split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {variable} | {_render_default(reader.parse(None))} "
                    f"| {meaning} |\n")
    return _PAGE_HEADER + "".join(rows)


if __name__ == "__main__":
    print(render_settings_page(), end="")
