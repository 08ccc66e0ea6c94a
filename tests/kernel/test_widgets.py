"""ipywidgets through real kernels: undo and redo update the widget on screen."""

from __future__ import annotations


def state_updates(kernel) -> list[dict]:
    """Return the widget state updates the kernel sent to the frontend (one widget here)."""
    kernel.drain_iopub()
    return [e["state"] for e in kernel.events if e.get("method") == "update" and "state" in e]


def drag(kernel, model_id: str, value: int) -> None:
    """Move the slider as the frontend does: an update on the widget's own comm."""
    msg = kernel.kc.session.msg("comm_msg", {"comm_id": model_id, "data": {
        "method": "update", "state": {"value": value}, "buffer_paths": []}})
    kernel.kc.shell_channel.send(msg)
    kernel.collect_iopub(msg["header"]["msg_id"])


def test_undo_and_redo_drive_the_widget_on_screen(start_kernel, tmp_path):
    """The frontend's model keeps its id and receives the restored value, so the slider on
    screen shows it, and dragging it still moves the variable."""
    k = start_kernel(notebook=str(tmp_path / "widgets.ipynb"))
    k.execute("import ipywidgets as w\nslider = w.IntSlider(value=7, max=20)")
    model_id = k.value("slider.model_id")
    k.execute("slider.value = 9")
    k.open_comm()
    k.events.clear()
    assert k.op("undo")["ok"]
    assert k.value("[slider.model_id, slider.value]") == [model_id, 7]
    assert {"value": 7} in state_updates(k)
    k.events.clear()
    assert k.op("redo")["ok"]
    assert k.value("[slider.model_id, slider.value]") == [model_id, 9]
    assert {"value": 9} in state_updates(k)
    drag(k, model_id, 4)
    assert k.value("slider.value") == 4
