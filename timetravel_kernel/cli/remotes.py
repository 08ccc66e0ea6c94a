"""``timetravel remote|push|pull|clone|export|import``: move histories between machines.

Pushing opens the store read-only, so it works beside the notebook's running kernel; pulling,
cloning and importing write the store, so the notebook's kernel must not be running (inside it,
``%tt pull`` does the same). Every history read is verified before anything is stored (frontend
layer).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.cli import _CliError, _resolve_store, _store_dir
from timetravel_kernel.errors import StoreLockedError

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from timetravel_kernel.remote import PullReport, PushReport, Remote, Signer
    from timetravel_kernel.timeline import Timeline

__all__ = ["add_remote_commands"]


def _data_dir() -> str:
    from jupyter_core.paths import jupyter_data_dir

    return str(jupyter_data_dir())


def _progress_bar(label: str) -> Callable[[int, int], None] | None:
    """Return a progress callback drawing a bar on stderr (None when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None

    def draw(done: int, total: int) -> None:
        filled = int(30 * done / total) if total else 30
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{done / 1e6:8.1f} / {total / 1e6:.1f} MB")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return draw


def _default_remote() -> str:
    from timetravel_kernel.session.remotes import load_remote_settings

    if os.environ.get("TIMETRAVEL_REMOTE"):
        return os.environ["TIMETRAVEL_REMOTE"]
    named = load_remote_settings(_data_dir())
    if "origin" in named or len(named) != 1:
        return "origin"
    return next(iter(named))


def _remote_for(args: argparse.Namespace, notebook: str) -> Remote:
    from timetravel_kernel.session.remotes import open_remote

    return open_remote(args.remote or _default_remote(), notebook, data_dir=_data_dir(),
                       env=os.environ, key_file=args.key_file, trust=getattr(args, "trust", False))


def _remote_name(args: argparse.Namespace, given: str) -> str:
    """Return the notebook's name on the remote: ``--as``, else its path under the home."""
    from timetravel_kernel.remote import notebook_remote_name

    if args.name:
        return str(args.name)
    if (Path(given) / "CURRENT").exists() or (_store_dir(args) / given / "CURRENT").exists():
        raise _CliError("a store folder does not say which notebook it belongs to: name the "
                        "notebook on the remote with --as NAME (its path under your home, "
                        "e.g. work/analysis.ipynb), or give the notebook's path instead")
    return notebook_remote_name(given, os.path.expanduser("~"))


def _open_writable(path: Path, purpose: str) -> Timeline:
    from timetravel_kernel.timeline import Timeline

    try:
        return Timeline.open(path, purpose=purpose)
    except StoreLockedError as exc:
        raise _CliError(f"{exc}. Inside the running notebook, `%tt pull` does this instead"
                        ) from None


def _report(args: argparse.Namespace, report: PushReport | PullReport, text: str) -> int:
    print(json.dumps(asdict(report), indent=1) if args.json else text)
    return 0


def _describe_pull(report: PullReport, where: str) -> str:
    moved = (f"; now at state {report.head[:12]}" if report.head_moved and report.head
             else "; the local state stays where it was (it is newer or on another branch)")
    return (f"fetched {report.records} records ({report.commits} states, "
            f"{report.bytes_received / 1e6:.1f} MB) from {where}{moved}")


def _cmd_push(args: argparse.Namespace) -> int:
    from timetravel_kernel.timeline import Timeline

    remote = _remote_for(args, _remote_name(args, args.store))
    path = _resolve_store(args)
    timeline = Timeline.open(path, read_only=True, purpose="timetravel push")
    try:
        report = remote.push(timeline.object_store, progress=_progress_bar("pushing"))
    finally:
        timeline.close()
    text = (f"pushed {report.records} records ({report.commits} states) in {report.packs} "
            f"packs, {report.bytes_sent / 1e6:.2f} MB, {report.requests} requests to "
            f"{remote.url}" if report.records or report.packs else
            f"{remote.url} is up to date")
    return _report(args, report, text)


def _cmd_pull(args: argparse.Namespace) -> int:
    remote = _remote_for(args, _remote_name(args, args.store))
    timeline = _open_writable(_resolve_store(args), "timetravel pull")
    try:
        report = remote.pull(timeline.object_store, progress=_progress_bar("fetching"))
    finally:
        timeline.close()
    return _report(args, report, _describe_pull(report, remote.url))


def _notebook_store(args: argparse.Namespace) -> Path:
    from timetravel_kernel.session.storage import store_path_for

    path = store_path_for(_store_dir(args), args.notebook)
    if (path / "CURRENT").exists():
        raise _CliError(f"the notebook {args.notebook} already has a history ({path}); use "
                        "`timetravel pull` to add a remote's states to it")
    return path


def _cmd_clone(args: argparse.Namespace) -> int:
    """Fetch what the latest state needs, then (unless ``--head-only``) the rest of the history.

    Each part prints its line when it is done; with ``--json`` one object holds both reports
    (``history`` is null with ``--head-only``). A failure in the first part removes the store;
    in the second it keeps the latest state, which the next pull completes.
    """
    import shutil

    from timetravel_kernel.errors import RemoteError

    args.remote = args.url
    remote = _remote_for(args, _remote_name(args, args.notebook))
    path = _notebook_store(args)
    timeline = _open_writable(path, f"kernel for {os.path.abspath(args.notebook)}")
    history: PullReport | None = None
    try:
        latest = remote.pull(timeline.object_store, only_head=True)
    except BaseException:
        timeline.close()
        shutil.rmtree(path, ignore_errors=True)  # nothing half-cloned stays behind
        raise
    if not args.json:
        print(f"latest state: {_describe_pull(latest, remote.url)}", flush=True)
    try:
        if not args.head_only:
            try:
                history = remote.pull(timeline.object_store, progress=_progress_bar("history"))
            except RemoteError as exc:
                raise _CliError(f"the latest state is here, but the rest of the history could "
                                f"not be fetched: {exc}; `timetravel pull {args.notebook}` "
                                "fetches it later") from None
    finally:
        timeline.close()
    if args.json:
        print(json.dumps({"latest_state": asdict(latest),
                          "history": asdict(history) if history else None}, indent=1))
        return 0
    print(f"history: {_describe_history(history)}" if history else
          "history: left on the remote (--head-only); the next `timetravel pull` or the "
          "notebook's kernel fetches it")
    print(f"open {args.notebook} with the Python 3 (time-travel) kernel to continue")
    return 0


def _describe_history(report: PullReport) -> str:
    return (f"fetched {report.records} more records ({report.commits} earlier states, "
            f"{report.bytes_received / 1e6:.1f} MB)")


def _signer(args: argparse.Namespace) -> Signer:
    from timetravel_kernel.session.remotes import open_signer

    return open_signer(None, data_dir=_data_dir(), env=os.environ, key_file=args.key_file)


def _cmd_export(args: argparse.Namespace) -> int:
    from timetravel_kernel.remote import export_history
    from timetravel_kernel.timeline import Timeline

    timeline = Timeline.open(_resolve_store(args), read_only=True, purpose="timetravel export")
    try:
        report = export_history(timeline.object_store, Path(args.output),
                                signer=_signer(args))
    finally:
        timeline.close()
    return _report(args, report, f"wrote {report.commits} states ({report.bytes_sent / 1e6:.2f}"
                   f" MB) to {args.output}")


def _cmd_import(args: argparse.Namespace) -> int:
    import shutil

    from timetravel_kernel.remote import import_history

    path = _notebook_store(args)
    timeline = _open_writable(path, f"kernel for {os.path.abspath(args.notebook)}")
    try:
        report = import_history(Path(args.file), timeline.object_store,
                                signer=_signer(args), trust=args.trust)
    except BaseException:
        timeline.close()
        shutil.rmtree(path, ignore_errors=True)
        raise
    timeline.close()
    return _report(args, report, _describe_pull(report, args.file))


def _cmd_remote_add(args: argparse.Namespace) -> int:
    from timetravel_kernel.session.remotes import (
        RemoteSettings,
        load_remote_settings,
        save_remote_settings,
    )

    remotes = load_remote_settings(_data_dir())
    remotes[args.name] = RemoteSettings(url=args.url, endpoint=args.endpoint,
                                        region=args.region, key_file=args.key_file)
    where = save_remote_settings(_data_dir(), remotes)
    print(f"added remote {args.name} -> {args.url} (in {where}; credentials come from the "
          "AWS environment variables or profile and are never stored)")
    return 0


def _cmd_remote_list(args: argparse.Namespace) -> int:
    from timetravel_kernel.session.remotes import load_remote_settings

    remotes = load_remote_settings(_data_dir())
    if args.json:
        print(json.dumps({n: asdict(s) for n, s in remotes.items()}, indent=1))
    elif not remotes:
        print("no remotes: add one with `timetravel remote add NAME URL`")
    for name, settings in sorted(remotes.items()) if not args.json else ():
        extra = "".join(f"  {k}={v}" for k, v in asdict(settings).items() if v and k != "url")
        print(f"{name:<16} {settings.url}{extra}")
    return 0


def _cmd_remote_remove(args: argparse.Namespace) -> int:
    from timetravel_kernel.session.remotes import load_remote_settings, save_remote_settings

    remotes = load_remote_settings(_data_dir())
    if remotes.pop(args.name, None) is None:
        raise _CliError(f"no remote named {args.name!r}; see `timetravel remote list`")
    save_remote_settings(_data_dir(), remotes)
    print(f"removed remote {args.name} (nothing on the remote was deleted)")
    return 0


def _cmd_remote_gc(args: argparse.Namespace) -> int:
    args.remote = args.name_or_url
    args.name = args.as_name
    remote = _remote_for(args, _remote_name(args, args.notebook))
    report = remote.collect_garbage(grace_seconds=args.grace_hours * 3600)
    print(f"deleted {report.deleted} unreferenced objects from {remote.url}; kept "
          f"{report.kept_in_grace} younger than {args.grace_hours:g} h (pushes in flight)")
    return 0


def add_remote_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the remote commands to the ``timetravel`` parser."""
    common = {"dir": {"help": "the stores folder (default: TIMETRAVEL_STORE_DIR or <jupyter "
                      "data dir>/timetravel/stores)"},
              "json": {"action": "store_true", "help": "print the report as JSON"}}
    naming = {"help": "the notebook's name on the remote (default: its path under your home)"}
    trusting = {"action": "store_true", "help": "load a history even if it is not signed with "
                "your key (loading a state can run code: only for remotes you trust)"}
    keying = {"help": "the signing key file shared by everyone pushing and pulling (default: "
              "TIMETRAVEL_REMOTE_KEY_FILE, else the named remote's, else your own key in the "
              "Jupyter data dir)"}

    def command(name: str, helptext: str, run: Callable[[argparse.Namespace], int],
                *arguments: tuple[tuple[str, ...], dict[str, object]]) -> None:
        parser = sub.add_parser(name, help=helptext)
        for flags, options in arguments:
            parser.add_argument(*flags, **options)  # type: ignore[arg-type]
        parser.add_argument("--dir", **common["dir"])  # type: ignore[arg-type]
        parser.add_argument("--json", **common["json"])  # type: ignore[arg-type]
        parser.add_argument("--key-file", **keying)  # type: ignore[arg-type]
        parser.set_defaults(run=run)

    store_arg = (("store",), {"help": "a notebook path, a store folder or a store name"})
    remote_arg = (("remote",), {"nargs": "?", "help": "a remote name or URL (default: "
                                "TIMETRAVEL_REMOTE, else 'origin' or the only remote)"})
    command("push", "send a notebook's history to a remote", _cmd_push, store_arg, remote_arg,
            (("--as",), {"dest": "name", **naming}))
    command("pull", "fetch a remote's states into a notebook's history (kernel not running)",
            _cmd_pull, store_arg, remote_arg, (("--as",), {"dest": "name", **naming}),
            (("--trust",), trusting))
    command("clone", "make a notebook's history from a remote, ready for its kernel to restore",
            _cmd_clone, (("url",), {"help": "a remote URL or name"}),
            (("--notebook",), {"required": True, "help": "the notebook's path here"}),
            (("--as",), {"dest": "name", **naming}), (("--trust",), trusting),
            (("--head-only",), {"action": "store_true", "help": "fetch only what the latest "
                                "state needs (the rest arrives with the next pull or through "
                                "the notebook's kernel)"}))
    command("export", "write a history to one verified file", _cmd_export, store_arg,
            (("-o", "--output"), {"required": True, "help": "the file to write"}))
    command("import", "make a notebook's history from an exported file", _cmd_import,
            (("file",), {"help": "the exported file"}),
            (("--notebook",), {"required": True, "help": "the notebook's path here"}),
            (("--trust",), trusting))

    remote = sub.add_parser("remote", help="named remotes: add, list, remove, gc")
    verbs = remote.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="name a remote URL (s3://bucket/prefix, file:///folder)")
    add.add_argument("name")
    add.add_argument("url")
    add.add_argument("--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL)")
    add.add_argument("--region", help="S3 region (default: AWS_REGION)")
    add.add_argument("--key-file", help="a team signing key file shared by everyone pushing "
                     "and pulling (default: your own key in the Jupyter data dir)")
    add.set_defaults(run=_cmd_remote_add)
    listing = verbs.add_parser("list", help="the named remotes")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=_cmd_remote_list)
    remove = verbs.add_parser("remove", help="forget a named remote (deletes nothing on it)")
    remove.add_argument("name")
    remove.set_defaults(run=_cmd_remote_remove)
    gc = verbs.add_parser("gc", help="delete a notebook's unreferenced packs from a remote")
    gc.add_argument("name_or_url")
    gc.add_argument("notebook", help="the notebook's path (or --as NAME)")
    gc.add_argument("--as", dest="as_name", help=naming["help"])
    gc.add_argument("--grace-hours", type=float, default=24.0,
                    help="keep unreferenced objects younger than this (default 24)")
    gc.add_argument("--dir", help=common["dir"]["help"])
    gc.add_argument("--key-file", **keying)  # type: ignore[arg-type]
    gc.set_defaults(run=_cmd_remote_gc)
