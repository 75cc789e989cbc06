"""Moved to ``tvbinv_hpc.cli.inspect``; this name stays only for ``bench_store.py`` until the benchmarks
move into their own package (issue 15, item 4), then goes."""
from tvbinv_hpc.cli.inspect import inspect_text, status_text

__all__ = ["inspect_text", "status_text"]
