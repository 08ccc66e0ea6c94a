"""`timetravel remote|push|pull|clone|export|import` on real stores, a folder and SeaweedFS."""

from __future__ import annotations

import json

import pytest

from timetravel_kernel.cli import main
from timetravel_kernel.remote import load_or_create_key
from timetravel_kernel.session.storage import store_path_for
from timetravel_kernel.timeline import CellInfo, Timeline

from ..seaweed import SECRET_KEY


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """Machine A: a home with a notebook whose store has two cells; returns the notebook path."""
    home = tmp_path / "home-a"
    set_machine(monkeypatch, home)
    notebook = home / "work" / "nb.ipynb"
    path = store_path_for(home / "stores", str(notebook))
    timeline = Timeline.open(path, purpose="kernel for nb.ipynb")
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    for count, code in enumerate(["x = 1", "y = [x] * 3"], start=1):
        exec(code, ns)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count))
    timeline.close()
    return notebook


def set_machine(monkeypatch, home):
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("TIMETRAVEL_STORE_DIR", str(home / "stores"))
    monkeypatch.delenv("TIMETRAVEL_REMOTE", raising=False)
    monkeypatch.delenv("TIMETRAVEL_REMOTE_KEY_FILE", raising=False)


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def restore(notebook, home):
    timeline = Timeline.open(store_path_for(home / "stores", str(notebook)))
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    timeline.restore(ns)
    timeline.close()
    return ns


def test_push_on_one_machine_and_clone_on_another_through_a_folder(machine, capsys, tmp_path,
                                                                   monkeypatch):
    share = tmp_path / "share"
    share.mkdir()
    assert run(capsys, "remote", "add", "origin", share.as_uri())[0] == 0
    status, out, _ = run(capsys, "remote", "list", "--json")
    assert json.loads(out) == {"origin": {"url": share.as_uri(), "endpoint": None,
                                          "region": None, "key_file": None}}
    status, out, err = run(capsys, "push", machine, "--json")
    assert status == 0, err
    assert json.loads(out)["commits"] == 3
    status, out, _ = run(capsys, "push", machine)
    assert "up to date" in out

    # Machine B shares the key (a team key file), not the home.
    key = tmp_path / "home-a" / "data" / "timetravel" / "remote-signing.key"
    home_b = tmp_path / "home-b"
    set_machine(monkeypatch, home_b)
    notebook_b = home_b / "work" / "nb.ipynb"
    status, _, err = run(capsys, "clone", share.as_uri(), "--notebook", notebook_b)
    assert status == 1 and "not signed with this machine's key" in err
    assert not store_path_for(home_b / "stores", str(notebook_b)).exists()  # nothing half-made
    run(capsys, "remote", "add", "team", share.as_uri(), "--key-file", key)
    status, out, err = run(capsys, "clone", "team", "--notebook", notebook_b)
    assert status == 0, err
    assert "1 states" in out.splitlines()[0] and "2 earlier states" in out.splitlines()[1]
    assert restore(notebook_b, home_b)["y"] == [1, 1, 1]
    status, _, err = run(capsys, "clone", "team", "--notebook", notebook_b)
    assert status == 1 and "already has a history" in err
    status, out, _ = run(capsys, "pull", notebook_b, "team")
    assert status == 0 and "fetched 0 records" in out
    assert run(capsys, "remote", "remove", "team")[0] == 0
    status, _, err = run(capsys, "remote", "remove", "team")
    assert status == 1 and "no remote named" in err


def test_export_and_import_one_file(machine, capsys, tmp_path, monkeypatch):
    status, _, err = run(capsys, "export", machine, "-o", tmp_path / "nb.tthist")
    assert status == 0, err
    home_b = tmp_path / "home-b"
    set_machine(monkeypatch, home_b)
    status, _, err = run(capsys, "import", tmp_path / "nb.tthist", "--notebook",
                         home_b / "nb.ipynb")
    assert status == 1 and "--trust" in err
    status, _, err = run(capsys, "import", tmp_path / "nb.tthist", "--notebook",
                           home_b / "nb.ipynb", "--trust")
    assert status == 0, err
    assert restore(home_b / "nb.ipynb", home_b)["x"] == 1


def test_clear_errors_for_remote_commands(machine, capsys, tmp_path):
    status, _, err = run(capsys, "push", machine, "nowhere")
    assert status == 1 and "no remote named 'nowhere'" in err
    status, _, err = run(capsys, "remote", "add", "bad", "s3://AKIA:pw@bucket/x")
    assert status == 1 and "never in the remote URL" in err and "pw@" not in err
    store = store_path_for(tmp_path / "home-a" / "stores", str(machine))
    status, _, err = run(capsys, "push", store, (tmp_path).as_uri())
    assert status == 1 and "--as NAME" in err
    holder = Timeline.open(store, purpose="a running kernel")
    try:
        status, _, err = run(capsys, "pull", machine, tmp_path.as_uri())
        assert status == 1 and "%tt pull" in err
    finally:
        holder.close()


def test_push_and_clone_through_seaweedfs_with_aws_variables(machine, capsys, tmp_path,
                                                             monkeypatch, seaweed):
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    url = "s3://timetravel-tests/cli"
    status, out, err = run(capsys, "push", machine, url)
    assert status == 0, err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    status, _, err = run(capsys, "push", machine, url)
    assert status == 1 and "refused the credentials" in err and "not-the-secret" not in err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    home_b = tmp_path / "home-b"
    key = tmp_path / "home-a" / "data" / "timetravel" / "remote-signing.key"
    set_machine(monkeypatch, home_b)
    (home_b / "data" / "timetravel").mkdir(parents=True)
    (home_b / "data" / "timetravel" / "remote-signing.key").write_bytes(key.read_bytes())
    monkeypatch.setenv("TIMETRAVEL_REMOTE", url)
    status, out, err = run(capsys, "clone", url, "--notebook", home_b / "work" / "nb.ipynb")
    assert status == 0, err
    assert SECRET_KEY not in out + err
    assert restore(home_b / "work" / "nb.ipynb", home_b)["y"] == [1, 1, 1]


def history_of(notebook, home) -> list[str]:
    timeline = Timeline.open(store_path_for(home / "stores", str(notebook)), read_only=True)
    try:
        return [c.code for c in timeline.log()]
    finally:
        timeline.close()


def test_clone_fetches_the_latest_state_first_then_the_rest(tmp_path, capsys, monkeypatch):
    """Two pushes; a clone prints the latest state's line, then the history's. With
    --head-only the store holds just the latest state (it restores); a pull adds the rest.
    A damaged older pack fails only the second part, and the latest state stays."""
    home = tmp_path / "home"
    set_machine(monkeypatch, home)
    share = tmp_path / "share"
    share.mkdir()
    notebook = home / "work" / "nb.ipynb"
    timeline = Timeline.open(store_path_for(home / "stores", str(notebook)))
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    cells = ["old = 'gone soon'", "del old\nx = 1", "y = [x] * 3"]
    for count, code in enumerate(cells, start=1):
        exec(code, ns)
        timeline.checkpoint(ns, CellInfo(code=code, execution_count=count))
        if count == 1:  # push opens the store read-only, beside the open timeline
            assert run(capsys, "push", notebook, share.as_uri())[0] == 0
            first_pack = next((share / "work" / "nb.ipynb" / "packs").iterdir())
    assert run(capsys, "push", notebook, share.as_uri())[0] == 0
    timeline.close()

    copy = home / "copy" / "nb.ipynb"
    status, out, err = run(capsys, "clone", share.as_uri(), "--notebook", copy,
                           "--as", "work/nb.ipynb", "--head-only", "--json")
    assert status == 0, err
    reports = json.loads(out)
    assert reports["latest_state"]["commits"] == 1 and reports["history"] is None
    assert reports["latest_state"]["head_moved"]
    assert history_of(copy, home) == ["y = [x] * 3"]
    assert restore(copy, home)["y"] == [1, 1, 1]
    status, out, err = run(capsys, "pull", copy, share.as_uri(), "--as", "work/nb.ipynb")
    assert status == 0, err
    assert history_of(copy, home) == history_of(notebook, home)

    both = home / "both" / "nb.ipynb"
    status, out, err = run(capsys, "clone", share.as_uri(), "--notebook", both,
                           "--as", "work/nb.ipynb")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("latest state: fetched") and "1 states" in lines[0]
    assert lines[1].startswith("history: fetched") and "3 earlier states" in lines[1]
    assert history_of(both, home) == history_of(notebook, home)

    first_pack.unlink()
    damaged = home / "damaged" / "nb.ipynb"
    status, out, err = run(capsys, "clone", share.as_uri(), "--notebook", damaged,
                           "--as", "work/nb.ipynb")
    assert status == 1 and out.startswith("latest state: fetched")
    assert "the latest state is here" in err and "is missing" in err
    assert restore(damaged, home)["y"] == [1, 1, 1]


def own_key(home):
    return home / "data" / "timetravel" / "remote-signing.key"


def test_two_homes_sharing_only_a_key_file_from_the_environment_push_and_clone(
        machine, capsys, tmp_path, monkeypatch, seaweed):
    """Through the real S3 server: nothing is shared but the bucket and TIMETRAVEL_REMOTE_KEY_FILE
    (no named remote, no copied home); the variable signs the push and verifies the clone,
    as the kernel does, and --key-file does the same for pull, export and import."""
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    team_key = tmp_path / "secrets" / "team.key"
    load_or_create_key(team_key)
    url = f"s3://timetravel-tests/key-file-{tmp_path.name}"
    home_a, home_b = tmp_path / "home-a", tmp_path / "home-b"
    monkeypatch.setenv("TIMETRAVEL_REMOTE_KEY_FILE", str(team_key))
    status, _, err = run(capsys, "push", machine, url)
    assert status == 0, err
    status, _, err = run(capsys, "export", machine, "-o", tmp_path / "nb.tthist")
    assert status == 0, err
    assert not own_key(home_a).exists()  # signed with the team key, never the user's own

    set_machine(monkeypatch, home_b)  # the variable is unset here: home B's own key is refused
    notebook_b = home_b / "work" / "nb.ipynb"
    status, _, err = run(capsys, "clone", url, "--notebook", notebook_b)
    assert status == 1 and "not signed with this machine's key" in err
    status, _, err = run(capsys, "import", tmp_path / "nb.tthist", "--notebook", notebook_b)
    assert status == 1 and "--trust" in err
    monkeypatch.setenv("TIMETRAVEL_REMOTE_KEY_FILE", str(team_key))
    status, out, err = run(capsys, "clone", url, "--notebook", notebook_b)
    assert status == 0, err
    assert restore(notebook_b, home_b)["y"] == [1, 1, 1]

    monkeypatch.delenv("TIMETRAVEL_REMOTE_KEY_FILE")  # the option does what the variable does
    status, out, err = run(capsys, "pull", notebook_b, url, "--key-file", team_key)
    assert status == 0 and "fetched 0 records" in out, err
    imported = home_b / "imported" / "nb.ipynb"
    status, _, err = run(capsys, "import", tmp_path / "nb.tthist", "--notebook", imported,
                         "--key-file", team_key)
    assert status == 0, err
    assert restore(imported, home_b)["y"] == [1, 1, 1]
    assert own_key(home_b).exists()  # made by the refused clone above, and not used since
    status, _, err = run(capsys, "push", notebook_b, url, "--key-file",
                         tmp_path / "secrets" / "other.key")
    assert status == 1 and "not signed" in err  # another key cannot read the ref to push
