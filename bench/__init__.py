"""Benchmarks: ``make bench`` (bench.run) and ``make soak`` (bench.soak)."""
