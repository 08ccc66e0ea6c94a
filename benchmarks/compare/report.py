"""The comparison's markdown table, its targets on frame_edits, and its PNG plots."""

from __future__ import annotations

import math
import statistics
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .rows import Row

MB = 1e6
LABELS = {"stock": "stock ipykernel", "timetravel": "time-travel", "kishu": "Kishu 0.3.4",
          "dill": "dill.dump_session"}
TARGET_NOTEBOOK = "frame_edits"
# (metric, competitor, minimum ratio competitor / time-travel)
TARGETS = [("storage_bytes", "kishu", 4), ("added_reply_ms", "kishu", 10),
           ("added_idle_ms", "kishu", 10), ("undo_s", "kishu", 10), ("restore_s", "kishu", 5),
           ("storage_bytes", "dill", 5)]
TARGET_NAMES = {"storage_bytes": "storage", "added_reply_ms": "added latency per cell (to reply)",
                "added_idle_ms": "added latency per cell (to idle)",
                "undo_s": "undo", "restore_s": "state back after SIGKILL"}


def added_ms(row: Row, stock: Row | None, attribute: str) -> float | None:
    """Return the median over cells of (row - stock) milliseconds, cell by cell."""
    if stock is None or not getattr(row, attribute) or not getattr(stock, attribute):
        return None
    pairs = zip(getattr(row, attribute), getattr(stock, attribute), strict=False)
    return 1e3 * statistics.median(mine - base for mine, base in pairs)


def summary(rows: list[Row]) -> dict[tuple[str, str], dict[str, float | None]]:
    """Return per (notebook, system) the numbers of the table."""
    stock = {r.notebook: r for r in rows if r.system == "stock"}
    out = {}
    for row in rows:
        base = stock.get(row.notebook)
        out[row.notebook, row.system] = {
            "reply_ms": 1e3 * statistics.median(row.reply_s) if row.reply_s else None,
            "added_reply_ms": added_ms(row, base, "reply_s") if row.system != "stock" else 0.0,
            "added_idle_ms": added_ms(row, base, "idle_s") if row.system != "stock" else 0.0,
            "idle_total_s": sum(row.idle_s) if row.idle_s else None,
            "storage_bytes": row.storage_bytes, "undo_s": row.undo_s, "first_s": row.first_s,
            "last_s": row.last_s, "restore_s": row.restore_s, "start_s": row.start_s,
            "peak_rss": row.peak_rss,
        }
    return out


def _num(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value / scale:.{digits}f}"


def _exact(row: Row) -> str:
    if not row.exact:
        return "-"
    marks = [f"{what} {'✓' if ok else '✗'}" for what, ok in row.exact.items()]
    return " ".join(marks)


def table(rows: list[Row], numbers: dict) -> list[str]:
    lines = ["| notebook | system | added ms to reply | added ms to idle | storage MB | "
             "undo s | first s | last s | back after SIGKILL s | kernel start s | "
             "peak RSS MB | exact |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        n = numbers[row.notebook, row.system]
        lines.append(
            f"| {row.notebook} ({row.cells} cells) | {LABELS[row.system]} | "
            f"{_num(n['added_reply_ms'], digits=1)} | {_num(n['added_idle_ms'], digits=1)} | "
            f"{_num(n['storage_bytes'], MB, 1)} | {_num(n['undo_s'], digits=3)} | "
            f"{_num(n['first_s'], digits=3)} | {_num(n['last_s'], digits=3)} | "
            f"{_num(n['restore_s'])} | {_num(n['start_s'])} | "
            f"{_num(n['peak_rss'], MB, 0)} | {_exact(row)} |")
    return lines


def compact(rows: list[Row], numbers: dict) -> list[str]:
    """Return one line per notebook: time-travel / Kishu / dill side by side."""
    shown = ("timetravel", "kishu", "dill")
    exact = {(r.notebook, r.system): r.exact for r in rows}

    def three(book: str, metric: str, scale: float, digits: int) -> str:
        return " / ".join(_num(numbers.get((book, s), {}).get(metric), scale, digits)
                          for s in shown)

    def passed(book: str) -> str:
        marks = [exact.get((book, s)) or {} for s in shown]
        # A move that failed reached no state: it counts as not exact.
        return " / ".join(f"{sum(m.values())} of 4" if m else "-" for m in marks)

    lines = ["| notebook | storage MB | added ms per cell (to idle) | undo ms | "
             "back after SIGKILL s | states exact |", "|---|---:|---:|---:|---:|---:|"]
    for book in dict.fromkeys(r.notebook for r in rows):
        lines.append(f"| {book} | {three(book, 'storage_bytes', MB, 1)} | "
                     f"{three(book, 'added_idle_ms', 1.0, 0)} | {three(book, 'undo_s', 1e-3, 0)}"
                     f" | {three(book, 'restore_s', 1.0, 1)} | {passed(book)} |")
    return [*lines, "", "Each cell: time-travel / Kishu 0.3.4 / dill.dump_session after every "
            "cell. States exact: of undo, first, last and after SIGKILL (a move that failed "
            "counts as not exact)."]


def targets(rows: list[Row], numbers: dict) -> list[str]:
    lines = [f"## Targets on {TARGET_NOTEBOOK} (ratios from this run)", "",
             "| target | time-travel | other | ratio | needed | met |",
             "|---|---:|---:|---:|---:|---|"]
    tt = numbers.get((TARGET_NOTEBOOK, "timetravel"))
    if tt is None:
        return [*lines, f"| {TARGET_NOTEBOOK} was not run | | | | | |"]
    for metric, other, needed in TARGETS:
        theirs = numbers.get((TARGET_NOTEBOOK, other), {}).get(metric)
        mine = tt.get(metric)
        unit, scale = ("MB", MB) if metric == "storage_bytes" else (
            ("ms", 1.0) if metric.endswith("_ms") else ("s", 1.0))
        if theirs is None or mine is None:
            ratio, met = None, "n/a"
        else:
            ratio = theirs / mine if mine > 0 else math.inf
            met = "yes" if ratio >= needed else "**no**"
        digits = 3 if unit == "s" else 1
        # Time-travel's added time to the reply can be at or below the noise (<= 0 ms).
        shown = "unbounded (<= 0 added)" if ratio == math.inf else f"{_num(ratio, digits=1)}x"
        lines.append(f"| {TARGET_NAMES[metric]} vs {LABELS[other]} | "
                     f"{_num(mine, scale, digits)} {unit} | {_num(theirs, scale, digits)} {unit} "
                     f"| {shown} | {needed}x | {met} |")
    beyond = {s: numbers.get((TARGET_NOTEBOOK, s), {}) for s in ("timetravel", "kishu")}
    if all(b.get("restore_s") is not None and b.get("start_s") for b in beyond.values()):
        mine, theirs = (b["restore_s"] - b["start_s"] for b in beyond.values())
        lines.append(f"| (reference, not a target) state back after SIGKILL beyond the "
                     f"system's own kernel start | {_num(mine)} s | {_num(theirs)} s | "
                     f"{_num(theirs / mine if mine > 0 else math.inf, digits=1)}x | | |")
    exact = [r for r in rows if r.notebook == TARGET_NOTEBOOK and r.system == "timetravel"]
    every = bool(exact) and bool(exact[0].exact) and all(exact[0].exact.values())
    marks = _exact(exact[0]) if exact else "-"
    lines.append(f"| every restored state exact (time-travel) | {marks} | | | | "
                 f"{'yes' if every else '**no**'} |")
    return lines


def markdown(info: dict[str, str], rows: list[Row]) -> str:
    numbers = summary(rows)
    lines = ["# Time-travel vs Kishu vs dill after every cell (one run)", "",
             "`python -m benchmarks.compare` — " + "; ".join(f"{k} {v}" for k, v in info.items()),
             "", *compact(rows, numbers), "", "## All measurements", "",
             *table(rows, numbers), "",
             "Added ms: median over cells of (system - stock), cell by cell, in the same run. "
             "Moves (undo: last state to the one before; first; last) are timed from the "
             "client, request to reply. Back after SIGKILL: a fresh kernel started until the "
             "last state is back, kernel start included; kernel start: the system's first "
             "start in this run, with nothing to restore (Kishu's without init_kishu). exact: the "
             "state reached has the fingerprint recorded after that cell "
             "(undo, first, last, restore).", "", *targets(rows, numbers), ""]
    notes = [f"- {r.notebook} / {LABELS[r.system]}: {note}" for r in rows for note in r.notes]
    if notes:
        lines += ["## Notes from the run", "", *notes, ""]
    return "\n".join(lines)


def plot(path: Path, rows: list[Row]) -> None:
    """Write four grouped bar charts (log scale) over notebooks and systems."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = summary(rows)
    books = list(dict.fromkeys(r.notebook for r in rows))
    systems = [s for s in LABELS if any(r.system == s for r in rows)]
    panels = [("storage_bytes", "storage after the last cell (MB)", MB, systems[1:]),
              ("added_idle_ms", "added time per cell, to idle (ms, median)", 1.0, systems[1:]),
              ("undo_s", "undo one cell (s)", 1.0, systems[1:]),
              ("restore_s", "state back after SIGKILL (s, with kernel start)", 1.0, systems[1:])]
    figure, axes = plt.subplots(2, 2, figsize=(13, 8))
    width = 0.8 / max(1, len(systems) - 1)
    for ax, (metric, title, scale, shown) in zip(axes.flat, panels, strict=True):
        for k, system in enumerate(shown):
            values = [numbers.get((b, system), {}).get(metric) for b in books]
            heights = [max(v / scale, 1e-3) if v is not None else 0 for v in values]
            ax.bar([i + k * width for i in range(len(books))], heights, width,
                   label=LABELS[system])
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xticks([i + width * (len(shown) - 1) / 2 for i in range(len(books))], books,
                      rotation=20)
    axes.flat[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def write(folder: Path, info: dict[str, str], rows: list[Row]) -> str:
    text = markdown(info, rows)
    (folder / "compare.md").write_text(text)
    plot(folder / "compare.png", rows)
    return text
