"""Remote URLs and notebook names: which transport a URL means, where a notebook goes on it.

``s3://bucket/prefix`` is object storage, ``file:///path`` (or a plain path) a folder. A
notebook's name on the remote is its path relative to the user's home, so the same notebook
opened on another machine (another home, the same layout, as on JupyterHub) finds its history
(remote layer).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from timetravel_kernel.errors import RemoteError
from timetravel_kernel.remote.files import FileTransport
from timetravel_kernel.remote.s3 import S3Options, S3Transport
from timetravel_kernel.remote.transport import Transport

__all__ = ["check_remote_url", "notebook_remote_name", "open_transport"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_remote_url(url: str) -> str:
    """Return the URL's scheme ('s3' or 'file') after checking it is one we can use.

    Raises:
        RemoteError: the URL is not a remote URL, or carries credentials.
    """
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if parsed.username or parsed.password:
            raise RemoteError("put credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                              "(or the AWS profile), never in the remote URL")
        if not _BUCKET.match(parsed.hostname or ""):
            raise RemoteError(f"{url!r}: an S3 bucket name has 3-63 lowercase letters, digits, "
                              "dots and hyphens (s3://bucket/prefix)")
        return "s3"
    if parsed.scheme == "file" or (not parsed.scheme and url.startswith("/")):
        return "file"
    raise RemoteError(f"{url!r} is not a remote this version can use: give s3://bucket/prefix "
                      "or file:///absolute/folder")


def open_transport(url: str, s3: S3Options | None = None) -> Transport:
    """Return the transport a remote URL names.

    Raises:
        RemoteError: the URL is unusable (see ``check_remote_url``) or the extra is missing.
    """
    scheme = check_remote_url(url)
    parsed = urlparse(url)
    if scheme == "s3":
        return S3Transport(parsed.hostname or "", parsed.path, s3 or S3Options())
    return FileTransport(unquote(parsed.path) if parsed.scheme else url)


def notebook_remote_name(notebook_path: str | os.PathLike[str], home: str | None) -> str:
    """Return where a notebook's history lives on a remote: its path under ``home``.

    A notebook outside ``home`` is named by its absolute path. Each part is made safe for
    object keys; ``..`` and ``.`` are dropped.
    """
    absolute = Path(os.path.abspath(notebook_path))
    if home:
        with contextlib.suppress(ValueError):
            absolute = absolute.relative_to(os.path.abspath(home))
    parts = [_UNSAFE.sub("_", p) for p in absolute.parts if p not in ("/", ".", "..")]
    return "/".join(p for p in parts if p) or "notebook"
