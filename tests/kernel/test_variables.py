"""One variable from the past through a real kernel: %tt history, %tt get, value diffs."""

from __future__ import annotations

from .harness import check_event, check_reply


def shown(outputs: list[dict]) -> str:
    """Return the plain text a magic displayed."""
    return outputs[-1]["content"]["data"]["text/plain"]


def test_get_brings_back_a_dropped_column_and_nothing_else(start_kernel):
    k = start_kernel()
    k.execute("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': [3, 4]})\nx = 1\n"
              "items = [1]")
    one = k.op("status")["result"]["head"]["id"]
    k.execute("df = df.drop(columns='b')")
    k.execute("x = 2")
    k.execute("items.append(2)")
    k.execute("y = x * 10\ndf['c'] = 5")
    five = k.op("status")["result"]["head"]["id"]

    history = k.op("history", name="df")
    check_reply(history)
    versions = history["result"]["versions"]
    assert [v["commit"]["execution_count"] for v in versions] == [5, 2, 1]
    assert versions[0]["current"] and versions[0]["type"] == "pandas.DataFrame"
    _, outputs = k.execute("%tt history df")
    assert "3 versions of df" in shown(outputs) and one[:10] in shown(outputs)

    _, outputs = k.execute(f"%tt get df@{one[:8]}")
    assert "loaded df" in shown(outputs)
    assert k.value("list(df.columns)") == ["a", "b"]
    assert k.value("[x, items, y]") == [2, [1, 2], 20]
    head = k.op("status")["result"]["head"]
    assert head["parent"] == five and head["changed"] == ["df"]
    gets = [e for e in k.events if e.get("event") == "checkout" and e.get("op") == "get"]
    assert len(gets) == 1
    check_event(gets[0])

    k.execute("%tt undo")
    assert k.value("list(df.columns)") == ["a", "c"]
    assert k.value("[x, items, y]") == [2, [1, 2], 20]
    assert k.op("status")["result"]["head"]["id"] == five


def test_get_as_a_new_name_over_the_comm_and_shared_objects(start_kernel):
    k = start_kernel()
    k.execute("shared = [1]\nholder = {'s': shared}\nn = 1")
    one = k.op("status")["result"]["head"]["id"]
    k.execute("shared.append(2)\nn = 2")
    refused = k.op("get", name="shared", commit=one)
    check_reply(refused)
    assert refused["error"]["code"] == "covariable"
    assert "shares objects with holder" in refused["error"]["message"]
    assert k.value("shared") == [1, 2]
    reply = k.op("get", name="shared", commit=one, together=True)
    check_reply(reply)
    assert reply["result"]["loaded"] == ["holder", "shared"]
    assert k.value("[shared, holder['s'] is shared, n]") == [[1], True, 2]
    reply = k.op("get", name="n", commit=one, **{"as": "n_before"})
    assert reply["ok"] and k.value("[n, n_before]") == [2, 1]
    missing = k.op("get", name="nope", commit=one)
    assert missing["error"]["code"] == "unknown-name"

    diff = k.op("diff", a=one, b=reply["result"]["head"]["id"], values=True)
    check_reply(diff)
    assert diff["result"]["added"] == ["n_before"]
    assert diff["result"]["values"] == {"n": "1 → 2"}
    _, outputs = k.execute(f"%tt diff {one[:8]} {reply['result']['head']['id'][:8]}")
    assert "1 → 2" in shown(outputs) and "n_before  added" in shown(outputs)
