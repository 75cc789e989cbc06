"""Posterior predictive simulations: the posterior's draws simulated again on all ranks, through the same
driver and store code as the prior's rows, into a store of their own per observation.

The diagnose phase hands ``ppc_service(job)`` to ``mpi.lead``: rank 0 calls ``ppc`` through
``mpi.call_all`` while the other ranks wait in the service loop, so every rank runs the collective parts.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from tvbinv_hpc import config as config_mod
from tvbinv_hpc.inference.observation import draws_fc, fcd_values
from tvbinv_hpc.parallel import driver, job, mpi, store
from tvbinv_hpc.parallel.job import Job

PPC_OFFSET = 1 << 40  # simulation indices of predictive draws never collide with the prior's rows


def ppc_service(s: Job) -> dict[str, Any]:
    """The services of the diagnose phase: ``ppc(theta, subject)`` simulates the rows ``theta`` on every rank
    (collective) and returns on rank 0 their features, and the FC (one per valid draw) and FCD of their BOLD
    (None where no row is ok); the other ranks get empty values."""

    def ppc(theta: np.ndarray, subject: str = "") -> tuple[np.ndarray, np.ndarray | None, Any]:
        path = s.output / (f"ppc_{subject}.h5" if subject else "ppc.h5")
        chash = config_mod.config_hash(s.cfg) + "-ppc-" + _array_hash(theta)

        def layout() -> store.Layout:
            return s.layout(theta, np.full(len(theta), store.TEST, np.int8), save_bold=True,
                            config_text=config_mod.dumps(s.cfg), config_hash=chash,
                            store_view={"ppc_of": config_mod.config_hash(s.cfg)}, kind="posterior_predictive")

        # our own derived file: one made for other draws is replaced, not refused
        mpi.decide(lambda: job.ensure_store(path, layout, config_hash=chash, store_view={}, replace=True))
        driver.run_rows(s, path, offset=PPC_OFFSET, progress="log", interval=s.cfg["run"]["progress_interval"],
                        writer=s.cfg["store"]["writer"], what="ppc sims")
        if mpi.rank() != 0:
            return np.empty(0), None, None
        x, status, bold = store.read_predictive(path)
        if not len(bold):
            return x, None, None
        return x, draws_fc(s, bold), fcd_values(s, bold)

    return {"ppc": ppc}


def _array_hash(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()[:12]
