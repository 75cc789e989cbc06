"""The simulate phase's one typed input, ``Job``, and ``ensure_store``, the one way a run's store is made or
verified.

Two fronts build a Job: the pipeline from a TOML config (``pipeline.build_setup``) and the tvb-inversion API
from a SimSeq (``compat.run.build``); the driver reads nothing else. Both then call ``ensure_store``, so the
rows of a store are laid out the same way whichever front made it, and a restart is checked the same way.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from tvbinv_hpc import provenance
from tvbinv_hpc.parallel import store
from tvbinv_hpc.schema import Key, config_key

# The [budget] and [store] sections of the config (validated by config.py): what a Job is built from.
BUDGET_SCHEMA: dict[str, Key] = {
    "n_sims": config_key(int, 1000, "Number of simulations (rows of the store).", positive=True),
    "test_fraction": config_key(float, 0.1, "Fraction of rows held out from training for diagnostics (the last rows)."),
    "batch_size": config_key(int, 4, "Simulations per batch taken from the shared counter (at least one lane group "
                            "of 4 per thread); changing it never changes results.", positive=True),
    "threads": config_key((int, str), "auto", "Simulation threads per rank, each running its own lane groups; "
                         "'auto': NUMBA_NUM_THREADS if set, else the cores this rank owns (all of them without a "
                         "launcher; under srun --cpus-per-task; under mpiexec the CPU affinity / ranks on the "
                         "node). Never changes results."),
}

STORE_SCHEMA: dict[str, Key] = {
    "path": config_key(str, "{output}/store.h5", "HDF5 store path; '{output}' is run.output."),
    "save_bold": config_key(bool, False, "Also store every simulation's BOLD (float32, n x T x N)."),
    "writer": config_key(str, "auto", "auto (parallel HDF5 when h5py has MPI), mpio, or root (rank 0 gathers "
                         "and writes).", choices=("auto", "mpio", "root")),
}



class Simulator(Protocol):
    """What the driver asks of an engine (``sim.Engine`` and ``sim.tvb_engine.TVBEngine`` both have it)."""

    threads: Any                 # an integer, or 'auto' until resolved on the rank
    n_regions: int
    n_bold: int
    tr_ms: float

    def rows_per_batch(self, batch_size: int) -> int: ...

    def simulate(self, values: dict[str, np.ndarray], index: np.ndarray) -> Any: ...


class FeatureMap(Protocol):
    """BOLD -> summary statistics (``stats.FeatureSet``, ``compat.metrics.MetricFeatures``)."""

    names: list[str]
    min_samples: int

    def compute(self, bold: np.ndarray) -> np.ndarray: ...


class ParameterMap(Protocol):
    """theta columns -> simulator attributes (``prior.Prior``, ``compat.prior.Prior``)."""

    names: list[str]

    def values(self, theta: np.ndarray) -> dict[str, np.ndarray]: ...


@dataclass
class Job:
    """Everything the simulate phase needs, built once on every rank.

    Attributes
    ----------
    cfg
        The validated config (pipeline), or the store view that identifies the run (compat).
    engine, features, prior
        The simulator, the summary statistics, and the map from theta columns to simulator attributes.
    batch_size
        Rows asked of the shared counter at a time (rounded up to whole lane groups by the engine).
    seed
        The run's root seed.
    output
        The folder the run's outputs go to.
    """

    cfg: dict[str, Any]
    engine: Simulator
    features: FeatureMap
    prior: ParameterMap
    batch_size: int
    seed: int
    output: Path

    def layout(self, theta: np.ndarray | Callable[[int, int], np.ndarray], split: np.ndarray, *,
               save_bold: bool, config_text: str, config_hash: str, store_view: dict[str, Any],
               kind: str = "simulations") -> store.Layout:
        """The store layout of this job's rows: names and BOLD shape from the job, provenance of now."""
        return store.Layout(
            theta=theta, split=split, param_names=list(self.prior.names), feature_names=list(self.features.names),
            n_regions=self.engine.n_regions, n_bold=self.engine.n_bold, tr_ms=self.engine.tr_ms,
            save_bold=save_bold, config_text=config_text, config_hash=config_hash, store_view=store_view,
            meta=provenance.created(), kind=kind)


def held_out_split(n: int, test_fraction: float) -> np.ndarray:
    """The split column: the last ``ceil(n * test_fraction)`` rows held out for diagnostics."""
    split = np.zeros(n, np.int8)
    split[n - int(np.ceil(n * test_fraction)):] = store.TEST
    return split


def ensure_store(path: Path, layout: Callable[[], store.Layout], *, config_hash: str,
                 store_view: dict[str, Any], refusal: store.Refusal = store.CONFIG_REFUSAL,
                 replace: bool = False) -> bool:
    """Create the store at ``path``, or check that the file there belongs to this run.

    Parameters
    ----------
    path
        Where the store is.
    layout
        Called only when the store is created (drawing theta may be expensive).
    config_hash, store_view
        What identifies the run; a store of another run is refused, naming the keys that differ.
    refusal
        How a refusal reads to this front (the pipeline speaks of config keys, compat of arguments).
    replace
        A store of another run is deleted and made again instead of refused (derived files only: the
        posterior predictive simulations of other draws).

    Returns
    -------
    bool
        True when the store was created now.
    """
    if path.exists():
        if not replace:
            store.check(path, config_hash, store_view, refusal)
            return False
        if store.read_header(path)["config_hash"] == config_hash:  # refuses a foreign file
            return False
        path.unlink()
    store.create(path, layout())
    return True
