"""Remote settings: named remotes on disk, S3 options from the AWS variables and profile."""

from __future__ import annotations

import json
import stat
import time

import pytest

from timetravel_kernel.errors import RemoteAccessError, RemoteError
from timetravel_kernel.remote import Signer, load_or_create_key
from timetravel_kernel.session.remotes import (
    RemoteSettings,
    load_remote_settings,
    open_remote,
    open_signer,
    resolve_remote,
    s3_options_from_env,
    save_remote_settings,
)
from timetravel_kernel.timeline import CellInfo, Timeline

from ..factories import open_timeline
from ..seaweed import ACCESS_KEY, BUCKET, SECRET_KEY


def test_aws_variables_fill_the_options_and_the_remote_overrides_them():
    env = {"AWS_ENDPOINT_URL": "http://10.0.0.5:8333", "AWS_REGION": "eu-west-1",
           "AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
    options = s3_options_from_env(env)
    assert options.endpoint == "http://10.0.0.5:8333" and options.allow_http
    assert options.access_key_id == "id" and options.secret_access_key == "secret"
    own = s3_options_from_env(env, RemoteSettings(url="s3://bkt/x", region="us-east-2",
                                                  endpoint="https://s3.example.com"))
    assert own.region == "us-east-2" and not own.allow_http


def test_named_remotes_are_saved_privately_without_credentials(tmp_path):
    path = save_remote_settings(tmp_path, {"origin": RemoteSettings(url="s3://bkt/team")})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["origin"]["url"] == "s3://bkt/team"
    assert resolve_remote("origin", tmp_path).url == "s3://bkt/team"
    assert resolve_remote("file:///srv/share", tmp_path).url == "file:///srv/share"
    with pytest.raises(RemoteError, match="known: origin"):
        resolve_remote("upstream", tmp_path)
    with pytest.raises(RemoteError, match="a remote name"):
        save_remote_settings(tmp_path, {"bad name": RemoteSettings(url="s3://bkt/x")})
    path.write_text("{not json")
    with pytest.raises(RemoteError, match="fix or delete it"):
        load_remote_settings(tmp_path)


def write_profiles(home, credentials: str, config: str = "") -> None:
    (home / ".aws").mkdir(parents=True, exist_ok=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text(config)


def test_the_aws_profile_files_fill_what_the_variables_leave_out(tmp_path):
    write_profiles(tmp_path, "[default]\naws_access_key_id = file-id\n"
                   "aws_secret_access_key = file%secret\n"
                   "[team]\naws_access_key_id = team-id\naws_secret_access_key = team-secret\n"
                   "aws_session_token = team-token\n",
                   "[default]\nregion = eu-north-1\n"
                   "[profile team]\nregion = ap-south-1\nendpoint_url = http://10.1.1.1:9000\n")
    home = {"HOME": str(tmp_path)}
    default = s3_options_from_env(home)
    assert (default.access_key_id, default.secret_access_key) == ("file-id", "file%secret")
    assert default.region == "eu-north-1" and default.endpoint is None
    team = s3_options_from_env({**home, "AWS_PROFILE": "team"})
    assert (team.access_key_id, team.session_token) == ("team-id", "team-token")
    assert team.endpoint == "http://10.1.1.1:9000" and team.allow_http
    assert team.region == "ap-south-1"
    # The variables win, and credentials are never mixed between variables and files.
    mixed = s3_options_from_env({**home, "AWS_PROFILE": "team", "AWS_ACCESS_KEY_ID": "env-id",
                                 "AWS_REGION": "us-west-2"})
    assert (mixed.access_key_id, mixed.secret_access_key, mixed.session_token) == \
        ("env-id", None, None)
    assert mixed.region == "us-west-2" and mixed.endpoint == "http://10.1.1.1:9000"
    assert s3_options_from_env({"HOME": str(tmp_path / "nowhere")}).access_key_id is None


def test_a_missing_profile_or_a_broken_file_is_named_without_its_secrets(tmp_path):
    write_profiles(tmp_path, "[default]\naws_access_key_id = id\n")
    with pytest.raises(RemoteError, match=r"'ghost' .*unset AWS_PROFILE"):
        s3_options_from_env({"HOME": str(tmp_path), "AWS_PROFILE": "ghost"})
    write_profiles(tmp_path, "aws_secret_access_key = leaked-secret\n[default]\n")
    with pytest.raises(RemoteError, match=r"credentials is not an INI file \(line 1\)") as caught:
        s3_options_from_env({"HOME": str(tmp_path)})
    assert "leaked-secret" not in str(caught.value)
    write_profiles(tmp_path, "[default]\nthis line has no equals sign leaked-secret\n")
    with pytest.raises(RemoteError, match=r"line 2") as caught:
        s3_options_from_env({"HOME": str(tmp_path)})
    assert "leaked-secret" not in str(caught.value)


def test_a_profile_alone_reaches_a_real_seaweedfs(tmp_path, seaweed):
    """Only HOME and AWS_PROFILE in the environment: key, secret, region and endpoint from
    ~/.aws; a wrong secret in the profile is refused as a credentials problem."""
    write_profiles(tmp_path, f"[tt]\naws_access_key_id = {ACCESS_KEY}\n"
                   f"aws_secret_access_key = {SECRET_KEY}\n",
                   f"[profile tt]\nregion = us-east-1\nendpoint_url = {seaweed.endpoint}\n")
    env = {"HOME": str(tmp_path), "AWS_PROFILE": "tt"}
    settings = RemoteSettings(url=f"s3://{BUCKET}/profile-{time.time_ns()}")
    source = open_timeline(tmp_path / "a")
    ns: dict = {"__name__": "__main__"}
    source.start(ns)
    ns["answer"] = 42
    source.checkpoint(ns, CellInfo(code="answer = 42", execution_count=1))
    remote = open_remote(settings, "nb.ipynb", data_dir=tmp_path / "data", env=env)
    assert remote.push(source.object_store).commits == 2
    source.close()
    landing = Timeline.open(tmp_path / "b")
    assert open_remote(settings, "nb.ipynb", data_dir=tmp_path / "data", env=env).pull(
        landing.object_store).commits == 2
    landing.close()
    landing = Timeline.open(tmp_path / "b")  # a new session finds the pulled state
    fresh: dict = {"__name__": "__main__"}
    landing.start(fresh)
    landing.restore(fresh)
    landing.close()
    assert fresh["answer"] == 42
    write_profiles(tmp_path, f"[tt]\naws_access_key_id = {ACCESS_KEY}\n"
                   "aws_secret_access_key = wrong-secret\n",
                   f"[profile tt]\nregion = us-east-1\nendpoint_url = {seaweed.endpoint}\n")
    again = Timeline.open(tmp_path / "b", read_only=True)
    try:
        with pytest.raises(RemoteAccessError, match="refused the credentials") as caught:
            open_remote(settings, "nb.ipynb", data_dir=tmp_path / "data", env=env).push(
                again.object_store)
    finally:
        again.close()
    assert "wrong-secret" not in str(caught.value)


def test_the_signing_key_is_the_option_then_the_variable_then_the_remote_then_the_users(
        tmp_path):
    keys = {name: load_or_create_key(tmp_path / f"{name}.key")
            for name in ("option", "variable", "remote")}
    env = {"TIMETRAVEL_REMOTE_KEY_FILE": str(tmp_path / "variable.key")}
    named = RemoteSettings(url="file:///srv/share", key_file=str(tmp_path / "remote.key"))
    data = tmp_path / "data"

    def signs_like(signer: Signer, name: str) -> bool:
        return signer.sign(b"state") == Signer(keys[name]).sign(b"state")

    assert signs_like(open_signer(named, data_dir=data, env=env,
                                  key_file=str(tmp_path / "option.key")), "option")
    assert signs_like(open_signer(named, data_dir=data, env=env), "variable")
    assert signs_like(open_signer(named, data_dir=data, env={}), "remote")
    own = open_signer(None, data_dir=data, env={})
    assert (data / "timetravel" / "remote-signing.key").exists()
    assert not any(signs_like(own, name) for name in keys)
    # The kernel and the command line open remotes through the same function: a URL, a
    # name or settings given whole, signed as above.
    save_remote_settings(data, {"team": named})
    remote = open_remote("team", "nb.ipynb", data_dir=data, env=env)
    assert remote.url == "file:///srv/share/nb.ipynb" and signs_like(remote.signer, "variable")
    remote = open_remote("team", "nb.ipynb", data_dir=data, env={})
    assert signs_like(remote.signer, "remote")
