"""``tvb_inversion.utils``: ``run_local`` and ``run_dask`` (tvb-inversion's signatures, tvbinv_hpc's engine
and store) and ``data_path``, which finds tvb-inversion's demo data files (``data_input_files``) for its
notebooks."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tvbinv_hpc.compat.dask_run import run_dask
from tvbinv_hpc.compat.run import run_local, run_mpi
from tvbinv_hpc.errors import InputError

__all__ = ["DATA_ENV", "data_folders", "data_path", "run_dask", "run_local", "run_mpi"]

DATA_ENV = "TVB_INVERSION_DATA"  # a folder holding tvb-inversion's data_input_files (or stand-ins)


def data_folders() -> list[Path]:
    """Where ``data_path`` looks, in order: ``$TVB_INVERSION_DATA``, then the ``data_input_files`` of a
    tvb-inversion source checkout installed next to tvbinv_hpc (located without importing it)."""
    folders = []
    if os.environ.get(DATA_ENV):
        folders.append(Path(os.environ[DATA_ENV]).expanduser())
    spec = importlib.util.find_spec("tvb_inversion")
    if spec is not None and spec.origin:
        folders.append(Path(spec.origin).resolve().parents[1] / "data_input_files")
    return folders


def data_path(relp: str | os.PathLike) -> str:
    """The path of tvb-inversion's data file ``relp`` (e.g. ``'demo_connectivity.zip'``).  tvbinv_hpc does
    not ship tvb-inversion's data: set TVB_INVERSION_DATA to its ``data_input_files`` folder."""
    rel = os.path.normpath(os.fspath(relp))
    folders = data_folders()
    for folder in folders:
        if (folder / rel).exists():
            return str(folder / rel)
    where = ", ".join(str(f) for f in folders) or "nowhere yet"
    raise InputError(f"tvb-inversion data file {rel!r} not found (looked in: {where}); tvbinv_hpc does not ship "
                     f"tvb-inversion's data: set {DATA_ENV} to the data_input_files folder of a tvb-inversion "
                     "checkout (github.com/the-virtual-brain/tvb-inversion)")
