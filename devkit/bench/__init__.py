"""Benchmarks: run as modules (``python -m devkit.bench.decode``); never asserted in tests."""
