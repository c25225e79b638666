"""Benchmarks: run as modules (``python -m lockengine.bench.decode``); never asserted in tests."""
