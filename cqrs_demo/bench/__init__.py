"""Benchmarks: each scenario runs against a freshly started stack and writes its numbers as JSON.

Timings live here, never in tests. `cqrs-demo bench` (or `make bench`) runs them all and writes
`benchmarks/results/<scenario>.json` and a chart beside it; `--quick` runs short versions.
"""
