"""Benchmarks: `python -m bench.run [--quick] [--only inference|e2e|footprint] [--out DIR]`.

Results (JSON, markdown, PNG) go to `bench/results/`; see `bench/README.md`.
"""
