"""Speed benchmarks for Tentacle Manager; each is measured against a baseline in the same run.

Run them all with `scripts/run-benchmarks` (add `--quick` for smaller sizes), or one at a time
with e.g. `.venv/bin/python -m benchmarks.bench_output`.
"""
