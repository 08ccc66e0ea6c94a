"""Side by side, in one run: stock ipykernel, time-travel, Kishu 0.3.4, dill after every cell.

    python -m benchmarks.compare [--quick] [--only frame_edits,...] [--out benchmarks/results]

See ``run.py`` for what is measured and how.
"""
