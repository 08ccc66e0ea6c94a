"""``timetravel``: install the kernelspec and inspect history stores offline (frontend layer).

Queries go through the ProtocolHandler (so the CLI prints exactly what the comm would answer)
and stores are opened read-only, which works beside a running kernel. Only ``gc``,
``prune``, ``pull``, ``clone`` and ``import`` write. The remote commands are in
``cli/remotes.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import TimeTravelError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from types import TracebackType

    from timetravel_kernel.timeline import RetentionPolicy, Timeline

__all__ = ["main"]


class _Progress:
    """A spinner with elapsed seconds on stderr while long work runs (only on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)

    def _spin(self) -> None:
        started = time.monotonic()
        frames = "|/-\\"
        i = 0
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - started
            sys.stderr.write(f"\r{frames[i % 4]} {self.label} {elapsed:5.1f}s")
            sys.stderr.flush()
            i += 1
        sys.stderr.write("\r" + " " * (len(self.label) + 12) + "\r")

    def __enter__(self) -> _Progress:
        if sys.stderr.isatty():
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _store_dir(args: argparse.Namespace) -> Path:
    if args.dir:
        return Path(args.dir)
    if os.environ.get("TIMETRAVEL_STORE_DIR"):
        return Path(os.environ["TIMETRAVEL_STORE_DIR"])
    from jupyter_core.paths import jupyter_data_dir

    from timetravel_kernel.session.storage import default_store_dir

    return default_store_dir(jupyter_data_dir())


def _resolve_store(args: argparse.Namespace) -> Path:
    """Return the store named by STORE: a store folder, a notebook path or a store's name."""
    from timetravel_kernel.session.storage import store_path_for

    given = Path(args.store)
    if (given / "CURRENT").exists():
        return given
    by_name = _store_dir(args) / args.store
    if (by_name / "CURRENT").exists():
        return by_name
    by_notebook = store_path_for(_store_dir(args), args.store)
    if (by_notebook / "CURRENT").exists():
        return by_notebook
    raise _CliError(f"no time-travel store for {args.store!r} (looked for a store folder, a "
                    f"store name in {_store_dir(args)} and a notebook path); see `timetravel list`")


class _CliError(Exception):
    """A user error: printed as one line, exit status 1."""


def _open(args: argparse.Namespace, *, read_only: bool = True) -> Timeline:
    from timetravel_kernel.timeline import Timeline

    path = _resolve_store(args)
    with _Progress(f"opening {path.name}"):
        return Timeline.open(path, read_only=read_only, purpose="timetravel command line")


def _ask(timeline: Timeline, request: Mapping[str, object]) -> Mapping[str, object]:
    from timetravel_kernel.protocol import ProtocolHandler, ServedTimeline

    handler = ProtocolHandler(ServedTimeline(timeline), {}, read_only=True)
    reply = handler.handle({"id": "cli", **request}).reply
    if not reply["ok"]:
        error = reply["error"]  # type: ignore[typeddict-item]
        raise _CliError(f"{error['code']}: {error['message']}")
    return reply["result"]  # type: ignore[typeddict-item,no-any-return]


def _print(args: argparse.Namespace, op: str, result: Mapping[str, object]) -> None:
    if args.json:
        print(json.dumps(result, indent=1))
        return
    from timetravel_kernel.session.reports import format_result

    print(repr(format_result(op, result)))


def _cmd_install(args: argparse.Namespace) -> int:
    from timetravel_kernel.cli.kernelspec import DISPLAY_NAME, install_kernel_spec

    prefix = sys.prefix if args.sys_prefix else args.prefix
    where = install_kernel_spec(user=args.user, prefix=prefix, python=args.python)
    print(f"installed the kernel {DISPLAY_NAME!r} in {where}")
    return 0


def _stores(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if (p / "CURRENT").exists())


def _size(store: Path) -> int:
    return sum(f.stat().st_size for f in store.iterdir() if f.is_file())


def _cmd_list(args: argparse.Namespace) -> int:
    from timetravel_kernel.store.folder import is_orphan_store, read_owner

    folder = _store_dir(args)
    stores = list(_stores(folder))
    if not stores:
        print(f"no stores in {folder}")
        return 0
    orphans = 0
    for store in stores:
        owner = read_owner(store)
        purpose = owner.purpose if owner is not None else ""
        orphan = is_orphan_store(store)
        orphans += orphan
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(store.stat().st_mtime))
        mark = "  [orphan: its notebook no longer exists]" if orphan else ""
        print(f"{store.name:<50} {_size(store) / 1e6:9.1f} MB  {when}  {purpose}{mark}")
    if orphans:
        print(f"{orphans} orphan store(s); `timetravel prune --orphans` deletes them")
    return 0


def _cmd_prune(args: argparse.Namespace) -> int:
    import shutil

    from timetravel_kernel.store.folder import is_orphan_store

    if not args.orphans:
        raise _CliError("say what to prune: --orphans (stores whose notebook no longer exists)")
    orphans = [s for s in _stores(_store_dir(args)) if is_orphan_store(s)]
    freed = sum(_size(s) for s in orphans)
    verb = "would delete" if args.dry_run else "deleted"
    for store in orphans:
        if not args.dry_run:
            shutil.rmtree(store)
        print(f"{verb} {store.name}")
    print(f"{verb} {len(orphans)} orphan store(s), {freed / 1e6:.1f} MB")
    return 0


def _with_timeline(run: Callable[[Timeline], int], args: argparse.Namespace, *,
                   read_only: bool = True) -> int:
    timeline = _open(args, read_only=read_only)
    try:
        return run(timeline)
    finally:
        timeline.close()


def _cmd_log(args: argparse.Namespace) -> int:
    def run(timeline: Timeline) -> int:
        request: dict[str, object] = {"op": "log"}
        if args.limit:
            request["limit"] = args.limit
        _print(args, "log", _ask(timeline, request))
        return 0

    return _with_timeline(run, args)


def _cmd_show(args: argparse.Namespace) -> int:
    def run(timeline: Timeline) -> int:
        from timetravel_kernel.ids import id_to_hex
        from timetravel_kernel.protocol.messages import format_commit

        commit_id = timeline.resolve(args.commit)
        commit = format_commit(timeline.commit(commit_id))
        variables = _ask(timeline, {"op": "vars", "commit": id_to_hex(commit_id)})
        if args.json:
            print(json.dumps({"commit": commit, **variables}, indent=1))
            return 0
        print(f"state {commit['id']}  parent {commit['parent']}  status {commit['status']}")
        print(f"cell [{commit['execution_count']}] {commit['cell_id'] or ''}  "
              f"{time.ctime(commit['time'])}  {commit['duration']:.3f}s  "
              f"{commit['bytes_written']} bytes written")
        print("changed: " + (", ".join(commit["changed"]) or "-"))
        print("code:\n    " + commit["code"].replace("\n", "\n    "))
        _print(args, "vars", variables)
        return 0

    return _with_timeline(run, args)


def _cmd_diff(args: argparse.Namespace) -> int:
    def run(timeline: Timeline) -> int:
        request = {"op": "diff", "a": args.a, "b": args.b, "values": not args.names_only}
        with _Progress("comparing"):
            result = _ask(timeline, request)
        _print(args, "diff", result)
        return 0

    return _with_timeline(run, args)


def _cmd_history(args: argparse.Namespace) -> int:
    def run(timeline: Timeline) -> int:
        _print(args, "history", _ask(timeline, {"op": "history", "name": args.name}))
        return 0

    return _with_timeline(run, args)


def _retention_policy(args: argparse.Namespace) -> RetentionPolicy:
    from timetravel_kernel.timeline import RetentionPolicy
    from timetravel_kernel.timeline.retention import parse_age, parse_size

    try:
        older = parse_age(args.older_than) if args.older_than else None
        budget = parse_size(args.budget) if args.budget else None
    except ValueError as exc:
        raise _CliError(str(exc)) from None
    keep_last = args.keep_last
    if args.every is not None and keep_last is None and older is None:
        raise _CliError("--every thins among old states: give --keep-last or --older-than too")
    if older is not None and keep_last is None:
        keep_last = 0
    if keep_last is not None and older is None:
        older = 0.0
    return RetentionPolicy(keep_last=keep_last, older_than=older, every=args.every,
                           budget=budget)


def _cmd_gc(args: argparse.Namespace) -> int:
    policy = _retention_policy(args)

    def run(timeline: Timeline) -> int:
        with _Progress("thinning and collecting garbage"):
            report = timeline.apply_retention(policy, dry_run=args.dry_run)
        if policy.is_active:
            cells = ", ".join(f"[{c.execution_count}]" if c.execution_count else c.id.hex()[:8]
                              for c in report.thinned)
            verb = "would thin" if args.dry_run else "thinned"
            print(f"{verb} {len(report.thinned)} state(s){': ' + cells if cells else ''}")
        garbage = report.garbage
        if garbage is not None:
            print(f"removed {garbage.objects} unreachable objects ({garbage.bytes / 1e6:.1f} MB "
                  f"of records); store on disk {garbage.disk_before / 1e6:.1f} MB -> "
                  f"{garbage.disk_after / 1e6:.1f} MB")
        return 0

    return _with_timeline(run, args, read_only=args.dry_run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timetravel", description="The Python 3 (time-travel) kernel: install it and "
        "inspect the history stores it keeps (one per notebook).")
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="install the kernelspec for Jupyter")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data dir")
    where.add_argument("--sys-prefix", action="store_true",
                       help="into this environment (sys.prefix), e.g. a virtualenv")
    where.add_argument("--prefix", help="into PREFIX/share/jupyter/kernels")
    install.add_argument("--python", help="interpreter to run the kernel (default: this one)")
    install.set_defaults(run=_cmd_install)

    def store_command(name: str, helptext: str, run: Callable[[argparse.Namespace], int],
                      extra: Sequence[tuple[str, dict[str, object]]] = ()) -> None:
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("store", help="a store folder, a store name (see list) or a notebook path")
        for flag, options in extra:
            cmd.add_argument(flag, **options)  # type: ignore[arg-type]
        cmd.add_argument("--dir", help="the stores folder (default: TIMETRAVEL_STORE_DIR or "
                         "<jupyter data dir>/timetravel/stores)")
        cmd.add_argument("--json", action="store_true", help="print JSON (protocol v1 shapes)")
        cmd.set_defaults(run=run)

    listing = sub.add_parser("list", help="list the stores with their size and notebook")
    listing.add_argument("--dir", help="the stores folder")
    listing.set_defaults(run=_cmd_list)
    store_command("log", "the states of a store, newest first", _cmd_log,
                  [("-n", {"dest": "limit", "type": int, "help": "at most N states"})])
    store_command("show", "one state: its cell and variables", _cmd_show,
                  [("commit", {"help": "state id or unique prefix (>= 4 hex digits)"})])
    store_command("diff", "names added, deleted and changed between two states, and what "
                  "changed inside each changed value", _cmd_diff,
                  [("a", {"help": "state id or prefix"}), ("b", {"help": "state id or prefix"}),
                   ("--names-only", {"action": "store_true",
                                     "help": "list the names only (do not load values)"})])
    store_command("history", "the versions one variable had, newest first (all branches)",
                  _cmd_history, [("name", {"help": "the variable"})])
    store_command("gc", "thin old states, delete data no kept state refers to and give the "
                  "space back (the store must not be in use)", _cmd_gc, [
        ("--keep-last", {"type": int, "metavar": "N", "help": "always keep the newest N states"}),
        ("--older-than", {"metavar": "AGE", "help": "thin states older than AGE (90s, 30m, "
                          "12h, 7d, 2w); branch tips and HEAD are always kept"}),
        ("--every", {"type": int, "metavar": "N", "help": "of the states to thin, keep one "
                     "per N cells"}),
        ("--budget", {"metavar": "SIZE", "help": "thin the oldest states until the store is "
                      "under SIZE on disk (500MB, 2GB); HEAD's own past goes last"}),
        ("--dry-run", {"action": "store_true", "help": "say what would be thinned, change "
                       "nothing"}),
    ])
    prune = sub.add_parser("prune", help="delete stores nobody can reach any more")
    prune.add_argument("--orphans", action="store_true",
                       help="stores whose notebook no longer exists (see `list`)")
    prune.add_argument("--dry-run", action="store_true", help="list them, delete nothing")
    prune.add_argument("--dir", help="the stores folder")
    prune.set_defaults(run=_cmd_prune)
    from timetravel_kernel.cli.remotes import add_remote_commands

    add_remote_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (_CliError, TimeTravelError) as exc:
        print(f"timetravel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("timetravel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
