"""Remote settings: named remotes, the signing key and S3 options from the environment.

Shared by the kernel and the ``timetravel`` command, which read the environment and hand
it here (STYLE.md): both build their remote with ``open_remote`` and their signer with
``open_signer``, so a setting read by one is read by the other. Named remotes live in
``<jupyter data dir>/timetravel/remotes.json`` with their URL and non-secret options only;
credentials come from the standard AWS variables or the AWS profile files
(``~/.aws/credentials``, ``~/.aws/config``) and are never written anywhere (session layer).
"""

from __future__ import annotations

import configparser
import json
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

from timetravel_kernel.errors import RemoteError
from timetravel_kernel.remote import (
    Remote,
    S3Options,
    Signer,
    check_remote_url,
    load_or_create_key,
    open_transport,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "KEY_FILE",
    "KEY_FILE_VARIABLE",
    "REMOTES_FILE",
    "RemoteSettings",
    "aws_profile",
    "load_remote_settings",
    "open_remote",
    "open_signer",
    "resolve_remote",
    "s3_options_from_env",
    "save_remote_settings",
]

REMOTES_FILE = "timetravel/remotes.json"
KEY_FILE = "timetravel/remote-signing.key"
KEY_FILE_VARIABLE = "TIMETRAVEL_REMOTE_KEY_FILE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteSettings:
    """A remote's URL and its non-secret options (None: from the environment)."""

    url: str
    endpoint: str | None = None
    region: str | None = None
    key_file: str | None = None


_PROFILE_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "region",
                 "endpoint_url")


def _read_profile_file(path: Path, section: str) -> dict[str, str]:
    """Return one section of an AWS profile file ({} when the file or section is absent).

    Raises:
        RemoteError: the file cannot be read or parsed (the message names the file and line,
            never its contents, which hold secrets).
    """
    parser = configparser.RawConfigParser()  # raw: a secret may contain '%'
    try:
        parser.read_string(path.read_text(), source=str(path))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise RemoteError(f"cannot read the AWS profile file {path}: "
                          f"{type(exc).__name__}; fix its permissions or delete it") from None
    except configparser.Error as exc:
        line = getattr(exc, "lineno", None) or next(
            (n for n, _ in getattr(exc, "errors", [])), "?")
        raise RemoteError(f"the AWS profile file {path} is not an INI file (line {line}); "
                          "fix it (see the AWS CLI's configuration docs)") from None
    if not parser.has_section(section):
        return {}
    return {key: value.strip() for key, value in parser.items(section)
            if key in _PROFILE_KEYS and value.strip()}


def aws_profile(env: Mapping[str, str]) -> dict[str, str]:
    """Return the AWS profile's settings from the credentials and config files.

    The profile is ``AWS_PROFILE`` (else ``AWS_DEFAULT_PROFILE``, else 'default'); the files
    are ``AWS_SHARED_CREDENTIALS_FILE`` / ``AWS_CONFIG_FILE`` or ``~/.aws/credentials`` /
    ``~/.aws/config`` under ``HOME``. The credentials file wins over the config file, as in
    the AWS CLI.

    Raises:
        RemoteError: a file is unreadable, or a profile named explicitly is in neither file.
    """
    explicit = env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE")
    profile = explicit or "default"
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    credentials_file = Path(env.get("AWS_SHARED_CREDENTIALS_FILE") or
                            home / ".aws" / "credentials").expanduser()
    config_file = Path(env.get("AWS_CONFIG_FILE") or home / ".aws" / "config").expanduser()
    config = _read_profile_file(
        config_file, "default" if profile == "default" else f"profile {profile}")
    credentials = _read_profile_file(credentials_file, profile)
    if explicit and not config and not credentials:
        raise RemoteError(f"the AWS profile {profile!r} (AWS_PROFILE) is in neither "
                          f"{credentials_file} nor {config_file}; add it or unset AWS_PROFILE")
    return {**config, **credentials}


def s3_options_from_env(env: Mapping[str, str], settings: RemoteSettings | None = None
                        ) -> S3Options:
    """Return S3 options: the remote's own options, else the AWS variables, else the profile.

    Credentials are taken as a whole from the variables when ``AWS_ACCESS_KEY_ID`` is set,
    else from the profile files (never a key id from one and a secret from the other). A
    plain-http endpoint is allowed as given (S3-compatible servers on a private network).

    Raises:
        RemoteError: a profile file is unreadable or the named profile is missing.
    """
    profile = aws_profile(env)
    endpoint = (settings.endpoint if settings and settings.endpoint else None) or \
        env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or \
        profile.get("endpoint_url") or None
    region = (settings.region if settings and settings.region else None) or \
        env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or profile.get("region") or None
    allow_http = env.get("AWS_ALLOW_HTTP", "").lower() in _TRUE or bool(
        endpoint and endpoint.startswith("http://"))
    if env.get("AWS_ACCESS_KEY_ID"):
        key_id, secret, token = (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY"),
                                 env.get("AWS_SESSION_TOKEN"))
    else:
        key_id, secret, token = (profile.get("aws_access_key_id"),
                                 profile.get("aws_secret_access_key"),
                                 profile.get("aws_session_token"))
    return S3Options(endpoint=endpoint, region=region, access_key_id=key_id or None,
                     secret_access_key=secret or None, session_token=token or None,
                     allow_http=allow_http)


def _settings_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / REMOTES_FILE


def load_remote_settings(data_dir: str | os.PathLike[str]) -> dict[str, RemoteSettings]:
    """Return the named remotes (empty when none was added).

    Raises:
        RemoteError: the file is unreadable (the message names it).
    """
    path = _settings_path(data_dir)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise RemoteError(f"cannot read the remotes file {path}: {exc}; fix or delete it") from exc
    known = {f.name for f in fields(RemoteSettings)}
    try:
        return {name: RemoteSettings(**{k: v for k, v in value.items() if k in known})
                for name, value in record.items()}
    except (AttributeError, TypeError) as exc:
        raise RemoteError(f"the remotes file {path} is not as `timetravel remote add` writes "
                          "it; fix or delete it") from exc


def save_remote_settings(data_dir: str | os.PathLike[str],
                         remotes: Mapping[str, RemoteSettings]) -> Path:
    """Write the named remotes (private to the user); return the file's path.

    Raises:
        RemoteError: a name or URL is invalid.
    """
    for name, settings in remotes.items():
        if not _NAME.match(name):
            raise RemoteError(f"{name!r}: a remote name has letters, digits, '.', '_', '-'")
        check_remote_url(settings.url)
    path = _settings_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    temp.write_text(json.dumps({n: asdict(s) for n, s in sorted(remotes.items())}, indent=1))
    os.chmod(temp, 0o600)
    temp.replace(path)
    return path


def resolve_remote(name_or_url: str, data_dir: str | os.PathLike[str]) -> RemoteSettings:
    """Return the settings of a named remote, or of a URL given directly.

    Raises:
        RemoteError: neither a known name nor a usable URL.
    """
    named = load_remote_settings(data_dir)
    if name_or_url in named:
        return named[name_or_url]
    if "://" in name_or_url or name_or_url.startswith("/"):
        check_remote_url(name_or_url)
        return RemoteSettings(url=name_or_url)
    known = ", ".join(sorted(named)) or "none yet: `timetravel remote add NAME URL`"
    raise RemoteError(f"no remote named {name_or_url!r} (known: {known})")


def open_signer(settings: RemoteSettings | None, *, data_dir: str | os.PathLike[str],
                env: Mapping[str, str], key_file: str | None = None) -> Signer:
    """Return the signer of histories pushed, pulled, exported or imported.

    Its key is the file given (``--key-file``, the kernel's ``remote_key_file``), else
    ``TIMETRAVEL_REMOTE_KEY_FILE``, else the named remote's own, else the user's key in the
    Jupyter data dir (made on first use, as a team key file named but not there yet is).

    Raises:
        RemoteError: the key file cannot be read or created (the message says where).
    """
    chosen = key_file or env.get(KEY_FILE_VARIABLE) or (settings.key_file if settings else None)
    path = Path(chosen).expanduser() if chosen else Path(data_dir) / KEY_FILE
    return Signer(load_or_create_key(path))


def open_remote(remote: str | RemoteSettings, notebook: str, *,
                data_dir: str | os.PathLike[str], env: Mapping[str, str],
                key_file: str | None = None, trust: bool = False) -> Remote:
    """Return the remote for one notebook: a remote's name, a URL or settings given whole.

    The one place the kernel and the command line make a remote, so both read the same
    settings (the signing key as ``open_signer`` chooses it, S3 options from the environment).

    Raises:
        RemoteError: the name, URL, key or client library is unusable.
    """
    settings = remote if isinstance(remote, RemoteSettings) else resolve_remote(remote, data_dir)
    signer = open_signer(settings, data_dir=data_dir, env=env, key_file=key_file)
    transport = open_transport(settings.url, s3_options_from_env(env, settings))
    return Remote(transport, notebook, signer=signer, trust=trust)
