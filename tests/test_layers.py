"""The package's folders are layers: imports point downwards only (checked by an ast walk)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "timetravel_kernel"
LAYERS = ["store", "state", "timeline", "protocol", "session", "kernel"]
# remote/ sits beside store/: it may import only store (and the base modules), and only the
# session (the application) and the CLI may import it, so no checkpoint can wait on a network.
REMOTE = "remote"
REMOTE_USERS = {"remote", "session", "cli"}
# The CLI stands beside the kernel, on the session: it never imports the Jupyter glue.
CLI_MAY_USE = {"session", "protocol", "timeline", "state", "store", "remote", "cli"}
BASE = {"errors", "ids"}
JUPYTER = {"ipykernel", "IPython", "comm", "zmq", "jupyter_client", "traitlets", "tornado"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    layer = layer_of(path)
    for name in imports(path):
        top, _, rest = name.partition(".")
        if top == "timetravel_kernel" and rest:
            target = rest.split(".")[0]
            if layer in LAYERS and target in LAYERS:
                assert LAYERS.index(target) <= LAYERS.index(layer), (
                    f"{path.name} in layer {layer!r} imports {name}: a layer may import only "
                    f"itself and the layers below it ({' < '.join(LAYERS)})"
                )
            if layer in BASE:
                assert target in BASE, f"{path.name} is a base module and imports {name}"
            if target == REMOTE:
                assert layer in REMOTE_USERS, (
                    f"{path.name} in layer {layer!r} imports {name}: only session/ and the CLI "
                    "may use the remote layer (it talks to a network)"
                )
            if layer == "cli":
                assert target in CLI_MAY_USE | BASE, (
                    f"{path.name} in the CLI imports {name}: the CLI uses the session layer "
                    "and below, never kernel/ (the Jupyter glue)"
                )
            if layer == REMOTE:
                assert target in BASE | {"store", REMOTE}, (
                    f"{path.name} in the remote layer imports {name}: remote/ may import only "
                    "store/ and the base modules"
                )
        if top in JUPYTER:
            assert layer in ("kernel", "cli", "__main__"), (
                f"{path.name} in layer {layer!r} imports {name}: only kernel/ (and the CLI) "
                "may depend on Jupyter"
            )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_kernel_and_cli_read_the_environment(path: Path) -> None:
    if layer_of(path) in ("kernel", "cli", "__main__"):
        return
    source = path.read_text()
    assert "os.environ" not in source and "getenv" not in source, (
        f"{path.name}: lower layers take explicit arguments; only kernel/ and the CLI read "
        "the environment"
    )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_has_a_docstring_and_all(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path} needs a one-line docstring naming its concept"
    if path.name in ("__init__.py", "__main__.py"):
        return
    names = [
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    ]
    assert "__all__" in names, f"{path} needs a sorted __all__"
