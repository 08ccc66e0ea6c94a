"""Remote settings: named remotes on disk, S3 options from the AWS variables."""

from __future__ import annotations

import json
import stat

import pytest

from timetravel_kernel.errors import RemoteError
from timetravel_kernel.kernel.remotes import (
    RemoteSettings,
    load_remote_settings,
    resolve_remote,
    s3_options_from_env,
    save_remote_settings,
)


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
