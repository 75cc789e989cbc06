"""tvb-inversion's statistical model and simulation sequence: a TVB Simulator template plus prior draws.

A ``SimSeq`` is data (template, attribute names, theta, seed); iterating it yields configured copies of
the TVB simulator with the values set, as tvb-inversion's does.  ``run_local`` builds tvbinv_hpc's numba
engine from the template (``Engine.from_tvb``) and passes theta as overrides; a template it cannot
simulate (another model, coupling, integrator) runs through TVB's own simulator (sim.tvb_engine).
"""
from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tvbinv_hpc.compat.prior import Prior
from tvbinv_hpc.errors import TvbinvError

DEFAULT_SEED = 42  # fixed, so that re-running a script regenerates the same seq and its run can resume


def n_regions_of(sim: Any) -> int:
    conn = getattr(sim, "connectivity", None)
    if conn is None or getattr(conn, "weights", None) is None:
        raise TvbinvError("the TVB Simulator template needs a connectivity with weights")
    return int(np.asarray(conn.weights).shape[0])


def _set_attr(obj: Any, dotted: str, value: Any) -> None:
    *path, last = dotted.split(".")
    for p in path:
        obj = getattr(obj, p)
    setattr(obj, last, value)


def _flatten(params: list[str], values: Any) -> tuple[np.ndarray, list[int]]:
    """tvb-inversion's ``values`` (rows of per-name arrays) or an (n, d) array -> theta (n, d), widths."""
    if isinstance(values, np.ndarray) or hasattr(values, "detach"):
        theta = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values, float)
        theta = theta.reshape(len(theta), -1)
        if theta.shape[1] != len(params):
            raise TvbinvError(f"values have {theta.shape[1]} columns for {len(params)} params; pass rows of "
                              "per-name arrays ([[np.r_[a], eta_vector], ...]) for vector parameters")
        return theta, [1] * len(params)
    rows = [[np.atleast_1d(np.asarray(v, dtype=np.float64)).reshape(-1) for v in row] for row in values]
    if not rows or any(len(r) != len(params) for r in rows):
        raise TvbinvError(f"every row of values needs one entry per param ({len(params)})")
    sizes = [v.size for v in rows[0]]
    if any([v.size for v in r] != sizes for r in rows):
        raise TvbinvError("rows of values have different sizes")
    return np.array([np.concatenate(r) for r in rows]), sizes


class SimSeq:
    """A sequence of simulator configurations: ``template`` with ``params`` set to each row of ``values``.

    Parameters
    ----------
    template
        A configured TVB ``Simulator``; every simulation is a copy with ``params`` changed.
    params
        The attribute names, as the prior's (``'coupling.a'``, ``'model.eta'``, ...).
    values
        theta ``(n, d)`` (columns ``names``), or tvb-inversion's rows of per-name values.
    getters
        tvb-inversion's: one function (or None: as it is) per param that each value goes through first.
    seed
        Fixes the noise and initial history of simulation i (from (seed, i)) when run by ``run_local``.
    prior
        The prior the values were drawn from (``sbiModel.generate_sim_seq`` passes it).

    Notes
    -----
    ``seq[i]`` and iteration give TVB copies, as tvb-inversion's did.
    """

    def __init__(self, template: Any, params: Sequence[str], values: Any, getters: Sequence[Any] | None = None,
                 seed: int = DEFAULT_SEED, prior: Prior | None = None):
        self.template = template
        self.seed = int(seed)
        if getters is not None:
            if prior is not None or len(getters) != len(params):
                raise TvbinvError(f"getters needs one entry (a function or None) per param ({len(params)}) and "
                                  "explicit values")
            values = [[v if g is None else g(v) for g, v in zip(getters, row)] for row in values]
        if prior is None:
            theta, sizes = _flatten(list(params), values)
            prior = Prior(list(params), _Fixed(theta.shape[1]), sizes=sizes)
        else:
            theta = np.asarray(values, dtype=np.float64).reshape(-1, prior.dim)
        n_regions_of(template)
        prior.check_template(template)
        self.prior = prior
        self.params: list[str] = list(prior.params)
        self.names: list[str] = list(prior.names)
        self.values = theta
        if not np.isfinite(theta).all():
            raise TvbinvError("seq values contain NaN/Inf")

    def __repr__(self) -> str:
        return f"SimSeq({len(self)} simulations of {self.names[:4]}{'...' if len(self.names) > 4 else ''}, " \
               f"seed={self.seed})"

    def __len__(self) -> int:
        return len(self.values)

    def overrides(self, rows: Any = slice(None)) -> dict[str, np.ndarray]:
        """Engine overrides {attribute: (B,) or (B, width)} for the given rows."""
        return self.prior.values(self.values[rows])

    def theta_hash(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.values, np.float64).tobytes()).hexdigest()[:16]

    def __getitem__(self, i: int) -> Any:
        """A copy of the template with row i's values set (configure() and run() it with TVB if you want)."""
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        try:
            obj = copy.deepcopy(self.template)
        except Exception:  # noqa: BLE001 - TVB cannot deepcopy an unconfigured Simulator: configure first
            self.template.configure()
            obj = copy.deepcopy(self.template)
        for attr, v in self.overrides(slice(i, i + 1)).items():
            _set_attr(obj, attr, np.atleast_1d(np.asarray(v[0], dtype=np.float64)).copy())
        return obj

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))


class _Fixed:
    """Placeholder dist of a SimSeq built from explicit values (its draws are never used)."""

    def __init__(self, d: int):
        self.d = d

    def sample(self, shape: tuple[int, ...] = ()) -> np.ndarray:
        return np.zeros(tuple(shape) + (self.d,))

    def log_prob(self, value: Any) -> Any:
        raise TvbinvError("a SimSeq built from explicit values has no prior density")

    def __repr__(self) -> str:
        return f"explicit values ({self.d} columns)"


class sbiModel:  # noqa: N801 - tvb-inversion's spelling
    """Simulator template + prior: ``sbiModel(sim, PytorchPrior(['coupling.a'], Uniform(0.1, 1.2)))``.

    Parameters
    ----------
    sim
        A configured TVB ``Simulator`` (the template of every simulation).
    prior
        A ``PytorchPrior`` / ``tvbinv_hpc.compat.Prior`` whose names are attributes of ``sim``.

    Raises
    ------
    TvbinvError
        ``prior`` is not a Prior, or names attributes the template lacks or sizes that do not fit it.
    """

    def __init__(self, sim: Any, prior: Prior):
        if not isinstance(prior, Prior):
            raise TvbinvError("sbiModel(sim, prior): prior must be a PytorchPrior / tvbinv_hpc Prior")
        n_regions_of(sim)
        prior.check_template(sim)
        self.sim = sim
        self.prior = prior

    def __repr__(self) -> str:
        return f"sbiModel({type(self.sim).__name__}, {self.prior!r})"

    def generate_sim_seq(self, num_samples: int, seed: int = DEFAULT_SEED) -> SimSeq:
        """``num_samples`` prior draws (seeded: the same seed gives the same theta) as a SimSeq."""
        if int(num_samples) < 1:
            raise TvbinvError(f"num_samples must be >= 1, got {num_samples}")
        theta = self.prior.sample(int(num_samples), seed=seed)
        return SimSeq(self.sim, self.prior.params, theta, seed=seed, prior=self.prior)


SBIModel = sbiModel
