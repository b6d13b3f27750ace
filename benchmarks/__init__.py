"""Benchmark scripts, outside the test run; run from the repository root as modules, e.g.
``python -m benchmarks.bench_features --help``."""
