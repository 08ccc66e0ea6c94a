"""Signing: an HMAC over every pack index and ref pushed, so only trusted histories load.

Loading a state unpickles it, which can run code: a history taken from a shared bucket is as
powerful as a notebook taken from it. As Jupyter signs trusted notebooks with a secret in the
user's data dir, each push is signed with a key only this user (or a team sharing a key file)
holds; a history whose signatures do not verify is refused unless the user says ``--trust``.
A pack is covered by the SHA-256 its signed index names (remote layer).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from timetravel_kernel.errors import RemoteCorruptError, RemoteError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Signer", "load_or_create_key", "sign_document", "split_signed_document"]

_SIGNATURE_LINE = b"\nsignature hmac-sha256 "
_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs and checks documents with one secret key.

    Args:
        key: the secret.
    """

    key: bytes

    def sign(self, body: bytes) -> str:
        """Return the hex HMAC-SHA256 of ``body``."""
        return hmac.new(self.key, body, hashlib.sha256).hexdigest()

    def is_valid(self, body: bytes, signature: str) -> bool:
        """Return whether ``signature`` is this key's signature of ``body``."""
        return hmac.compare_digest(self.sign(body), signature)


def load_or_create_key(path: Path) -> bytes:
    """Return the key stored at ``path``, creating a random one (mode 0600) when absent.

    Raises:
        RemoteError: the key file cannot be read or created (the message says where).
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_hex(_KEY_BYTES)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
        except FileExistsError:  # another process made it first: use theirs
            return load_or_create_key(path)
        except OSError as exc:
            raise RemoteError(f"cannot create the signing key {path}: {exc.strerror}") from exc
        return bytes.fromhex(key)
    except OSError as exc:
        raise RemoteError(f"cannot read the signing key {path}: {exc.strerror}") from exc
    try:
        key_bytes = bytes.fromhex(text)
    except ValueError:
        key_bytes = b""
    if len(key_bytes) < 16:
        raise RemoteError(f"the signing key {path} is not a hex key of at least 16 bytes; "
                          "delete it to make a new one (histories it signed stop verifying)")
    return key_bytes


def sign_document(body: bytes, signer: Signer) -> bytes:
    """Return ``body`` followed by its signature line."""
    return body + _SIGNATURE_LINE + signer.sign(body).encode() + b"\n"


def split_signed_document(data: bytes, what: str) -> tuple[bytes, str]:
    """Return the body and signature of a signed document.

    Raises:
        RemoteCorruptError: the document has no signature line.
    """
    body, found, signature = data.rpartition(_SIGNATURE_LINE)
    if not found:
        raise RemoteCorruptError(f"{what} has no signature: it was not written by timetravel "
                                 "or it was cut short")
    return body, signature.strip().decode("ascii", errors="replace")
