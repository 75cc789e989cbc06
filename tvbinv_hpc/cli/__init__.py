"""The command line, ``tvbinv-hpc VERB`` (also ``python -m tvbinv_hpc``): the parser and dispatch in
``main``, and one module per verb that is more than a call into a phase (info, inspect/status, launch) plus
``docs``, which writes the README's references from the parser and the config schema."""
from __future__ import annotations

from tvbinv_hpc.cli.main import EXIT_ERROR, build_parser, main

__all__ = ["EXIT_ERROR", "build_parser", "main"]
