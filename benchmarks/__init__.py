"""Benchmarks: each prints a table comparing the product against a baseline in one run."""
