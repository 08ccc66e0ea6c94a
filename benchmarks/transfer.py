"""Benchmark: push and clone throughput against the raw S3 client, same server, same run.

    python -m benchmarks.transfer [--mb 400] [--repeat 3]
        [--markdown benchmarks/results/transfer.md]

Starts its own SeaweedFS (the tests' server, on free 127.0.0.1 ports), builds a history of
about ``--mb`` MB of stored records (random floats, which compress little, in an array and a
frame made from it, then an in-place edit), and measures, in one run:

- the raw client: ``S3Transport`` puts of 8 MiB and 16 MiB objects one at a time and four at
  once, and gets of the same (the best of each is the baseline);
- ``Remote.push`` of the whole history to an empty prefix (MB sent / s);
- clone: ``Remote.pull(only_head=True)`` then the full ``pull`` into an empty store, as
  ``timetravel clone`` does (MB received / s);
- the local store's own write speed: the same bytes as 230 KB records in 16 MiB unlogged
  batches into a fresh RocksDB store, then its flush (a clone can go no faster than that, nor
  than the raw gets);

each the median of ``--repeat``. Targets: push >= 0.9 of the best raw put throughput, clone
>= 0.5 of the best raw get throughput. Results go to stdout (and to ``--markdown``'s file).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MB = 1e6
KEY = b"benchmark-signing-key-0123456789"


def make_history(path: Path, megabytes: float) -> float:
    """Write a history of about ``megabytes`` MB of records; return its store's size in MB."""
    import numpy as np
    import pandas as pd

    from timetravel_kernel.timeline import CellInfo, Timeline

    timeline = Timeline.open(path)
    ns: dict = {"__name__": "__main__"}
    timeline.start(ns)
    count = int(megabytes * MB / 8 / 1.25 / 0.88)  # the frame adds 1/4; shuffle+LZ4 saves ~12%
    cells = [
        ("a", lambda: np.random.default_rng(1).random(count)),
        ("df", lambda: pd.DataFrame(ns["a"][: count // 16 * 4].reshape(-1, 4),
                                    columns=list("wxyz"))),
    ]
    for name, make in cells:
        ns[name] = make()
        timeline.checkpoint(ns, CellInfo(code=f"{name} = ...", execution_count=len(ns)))
    ns["a"][: count // 100] = 0.5
    timeline.checkpoint(ns, CellInfo(code="a[:n] = 0.5"))
    size = timeline.store_bytes() / MB
    timeline.close()
    return size


def _transport(env: dict[str, str], url: str):
    from timetravel_kernel.remote import open_transport
    from timetravel_kernel.session.remotes import s3_options_from_env

    return open_transport(url, s3_options_from_env(env))


def raw_client(env: dict[str, str], url: str, total_mb: float) -> dict[str, float]:
    """Return MB/s of plain puts and gets of 8 and 16 MiB objects, sequential and 4 at once."""
    transport = _transport(env, url)
    rates: dict[str, float] = {}
    for size in (8 << 20, 16 << 20):
        count = max(4, int(total_mb * MB / size))
        bodies = [os.urandom(size) for _ in range(4)]
        for workers in (1, 4):
            prefix = f"raw-{size}-{workers}-{time.time_ns()}"
            paths = [f"{prefix}/{i}" for i in range(count)]
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(transport.put_if_absent, paths, itertools.cycle(bodies)))
            rates[f"put {size >> 20} MiB x{workers}"] = count * size / MB / (
                time.perf_counter() - started)
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(transport.get, paths))
            rates[f"get {size >> 20} MiB x{workers}"] = count * size / MB / (
                time.perf_counter() - started)
    transport.close()
    return rates


def store_write(path: Path, megabytes: float) -> float:
    """Return MB/s of writing ``megabytes`` of incompressible records into a fresh store."""
    from timetravel_kernel.store import RocksBackend

    records = [os.urandom(230_000) for _ in range(70)]  # 16 MB: one pack's worth
    backend = RocksBackend(path)
    started = time.perf_counter()
    written = 0
    while written < megabytes * MB:
        backend.write_batch([(os.urandom(17), value) for value in records], durable=False)
        written += sum(map(len, records))
    backend.flush()
    seconds = time.perf_counter() - started
    backend.close()
    shutil.rmtree(path, ignore_errors=True)
    return written / MB / seconds


def push_once(env: dict[str, str], url: str, store: Path) -> tuple[float, float]:
    """Push the whole history to an empty prefix; return (MB sent, seconds)."""
    from timetravel_kernel.remote import Remote, Signer
    from timetravel_kernel.timeline import Timeline

    remote = Remote(_transport(env, url), "bench.ipynb", signer=Signer(KEY))
    timeline = Timeline.open(store, read_only=True)
    started = time.perf_counter()
    report = remote.push(timeline.object_store)
    seconds = time.perf_counter() - started
    timeline.close()
    return report.bytes_sent / MB, seconds


def clone_once(env: dict[str, str], url: str, store: Path) -> tuple[float, float]:
    """Clone into an empty store as ``timetravel clone`` does; return (MB received, seconds)."""
    from timetravel_kernel.remote import Remote, Signer
    from timetravel_kernel.timeline import Timeline

    remote = Remote(_transport(env, url), "bench.ipynb", signer=Signer(KEY))
    started = time.perf_counter()
    timeline = Timeline.open(store)
    latest = remote.pull(timeline.object_store, only_head=True)
    rest = remote.pull(timeline.object_store)
    timeline.close()
    seconds = time.perf_counter() - started
    return (latest.bytes_received + rest.bytes_received) / MB, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=400.0, help="history size (MB stored)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()

    from tests.seaweed import SeaweedServer

    folder = Path(tempfile.mkdtemp(prefix="tt-transfer-"))
    server = SeaweedServer(folder / "server")
    server.start()
    env = server.env()
    try:
        stored = make_history(folder / "history", args.mb)
        raw: dict[str, list[float]] = {}
        pushes, clones, writes = [], [], []
        for attempt in range(args.repeat):
            base = f"s3://timetravel-tests/transfer-{time.time_ns()}"
            for name, rate in raw_client(env, base + "-raw", args.mb).items():
                raw.setdefault(name, []).append(rate)
            sent, seconds = push_once(env, base, folder / "history")
            pushes.append(sent / seconds)
            received, seconds = clone_once(env, base, folder / f"clone-{attempt}")
            clones.append(received / seconds)
            shutil.rmtree(folder / f"clone-{attempt}", ignore_errors=True)
            writes.append(store_write(folder / "write", stored))
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    medians = {name: statistics.median(rates) for name, rates in raw.items()}
    best_put = max(v for k, v in medians.items() if k.startswith("put"))
    best_get = max(v for k, v in medians.items() if k.startswith("get"))
    push, clone = statistics.median(pushes), statistics.median(clones)
    write = statistics.median(writes)
    lines = [f"History: {stored:.0f} MB on disk; median of {args.repeat}; loopback SeaweedFS.",
             "", "| what | MB/s | against the raw client's best | target |", "|---|---:|---:|---|"]
    lines += [f"| raw {name} | {rate:.0f} | | |" for name, rate in sorted(medians.items())]
    lines += [f"| local store: bulk write + flush | {write:.0f} | | |",
              f"| push (`Remote.push`) | {push:.0f} | {push / best_put:.2f} of puts | >= 0.9 |",
              f"| clone (latest state, then the rest) | {clone:.0f} | {clone / best_get:.2f} of "
              f"gets; {clone / min(best_get, write):.2f} of min(gets, store write) | >= 0.5 "
              "of gets |"]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text("# Push and clone against the raw S3 client: "
                                       f"`python -m benchmarks.transfer --mb {args.mb:g}`"
                                       f"\n\n{text}\n")


if __name__ == "__main__":
    main()
