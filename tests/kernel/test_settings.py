"""The kernel's settings: each read from its TIMETRAVEL_* variable unless configured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from traitlets.config import Config

from timetravel_kernel.kernel.settings import TimeTravelSettings, render_settings_page

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith("TIMETRAVEL_") or name == "JPY_SESSION_NAME":
            monkeypatch.delenv(name)


def test_defaults_without_variables():
    settings = TimeTravelSettings()
    assert settings.enabled is True and settings.checkpoint_mode == "auto"
    assert settings.checkpoint_max_pending == 16 and settings.rebuild_budget == 60.0
    assert settings.skip_names == [] and settings.remote_trust is False
    assert settings.store_dir.endswith("stores")


@pytest.mark.parametrize(("variable", "value", "trait", "expected"), [
    ("TIMETRAVEL_ENABLED", "off", "enabled", False),
    ("TIMETRAVEL_ENABLED", "maybe", "enabled", True),
    ("TIMETRAVEL_REMOTE_TRUST", "yes", "remote_trust", True),
    ("TIMETRAVEL_SKIP_NAMES", " a, ,b ", "skip_names", ["a", "b"]),
    ("TIMETRAVEL_KEEP_LAST", "7", "keep_last", 7),
    ("TIMETRAVEL_KEEP_LAST", "seven", "keep_last", 0),
    ("TIMETRAVEL_MAX_VAR_BYTES", "-5", "max_var_bytes", 0),
    ("TIMETRAVEL_CHECKPOINT_MODE", "sync", "checkpoint_mode", "sync"),
    ("TIMETRAVEL_CHECKPOINT_MODE", "fast", "checkpoint_mode", "auto"),
    ("TIMETRAVEL_RESTORE_AFTER_CRASH", "offer", "restore_after_crash", "offer"),
    ("TIMETRAVEL_CHECKPOINT_MAX_PENDING", "4", "checkpoint_max_pending", 4),
    ("TIMETRAVEL_CHECKPOINT_MAX_PENDING", "0", "checkpoint_max_pending", 16),
    ("TIMETRAVEL_CHECKPOINT_MAX_PENDING", "many", "checkpoint_max_pending", 16),
    ("TIMETRAVEL_CHECKPOINT_MAX_PENDING", "-3", "checkpoint_max_pending", 16),
    ("TIMETRAVEL_CHECKPOINT_HANG_SECONDS", "soon", "checkpoint_hang_seconds", 300.0),
    ("TIMETRAVEL_REBUILD_BUDGET", "0", "rebuild_budget", 60.0),
    ("TIMETRAVEL_REBUILD_BUDGET", "12.5", "rebuild_budget", 12.5),
    ("TIMETRAVEL_STORE_DIR", "/somewhere", "store_dir", "/somewhere"),
    ("JPY_SESSION_NAME", "nb.ipynb", "notebook_path", "nb.ipynb"),
])
def test_a_variable_sets_its_trait_and_nonsense_keeps_the_default(
        monkeypatch, variable, value, trait, expected):
    monkeypatch.setenv(variable, value)
    assert getattr(TimeTravelSettings(), trait) == expected


def test_configuration_wins_over_the_variable(monkeypatch):
    monkeypatch.setenv("TIMETRAVEL_CHECKPOINT_MODE", "sync")
    monkeypatch.setenv("TIMETRAVEL_KEEP_LAST", "3")
    config = Config()
    config.TimeTravelSettings.checkpoint_mode = "background"
    settings = TimeTravelSettings(config=config)
    assert settings.checkpoint_mode == "background" and settings.keep_last == 3


def test_every_setting_has_a_variable_reader():
    # A new trait without one would silently ignore its documented variable.
    readers = {name for name in vars(TimeTravelSettings) if name.endswith("_env")}
    traits = set(TimeTravelSettings.class_own_traits())
    assert readers == {f"_{trait}_env" for trait in traits}


def test_the_configuration_page_is_the_one_the_traits_generate():
    # docs/configuration.md is rendered from the traits' help and their readers' variables and
    # defaults; a changed trait must come with the page regenerated.
    assert PAGE.read_text() == render_settings_page(), (
        "docs/configuration.md is out of date: run "
        "`python -m timetravel_kernel.kernel.settings > docs/configuration.md`")


def test_the_page_names_every_setting_with_its_variable_and_default():
    page = render_settings_page()
    for trait in TimeTravelSettings.class_own_traits():
        assert f"| `{trait}` | `" in page
    assert "| `checkpoint_max_pending` | `TIMETRAVEL_CHECKPOINT_MAX_PENDING`" in page
    assert "| `16` |" in page and "| `<jupyter data dir>/timetravel/stores` |" in page
