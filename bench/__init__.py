"""Benchmarks, run from the checkout as modules: python -m bench.images, bench.deploy, bench.prepull
(docs/PERFORMANCE.md has their figures)."""
