"""The test suite; a package so that its helpers (tests.helpers) import under one name from the
tests and from the benchmarks (python -m bench.NAME)."""
