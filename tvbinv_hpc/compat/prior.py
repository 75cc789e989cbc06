"""tvb-inversion's prior: simulator attribute names plus any distribution with ``.sample`` and ``.log_prob``.

Sample columns map to names in order.  Each name takes ``sizes[i]`` consecutive columns: 1 for a scalar
attribute, N for a per-region vector (columns ``model.eta[0]`` ... ``model.eta[N-1]``), and 2 for
``integrator.noise.nsig`` given per state variable (``[0]`` r, ``[1]`` V).  When ``sizes`` is omitted it is
inferred: one column per name when the sample has as many entries as there are names, else all columns to
a single name.  The column names are exactly those of a ``[prior]`` table in a config (tvbinv_hpc.prior),
so stores and posteriors read the same either way.

Names are the numba engine's parameters (``tvbinv_hpc.sim.PARAMETERS``) or any other numeric attribute of
the template's model, coupling or noise (``model.w``, ``coupling.midpoint``, ``integrator.noise.nsig``):
``check_template`` checks them against the Simulator, and run_local simulates a seq that varies one of the
latter with TVB's own simulator (tvbinv_hpc.sim.tvb_engine).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from tvbinv_hpc.errors import TvbinvError

# model.X, coupling.X, integrator.noise.X: attributes a TVB template may have (checked by check_template)
_TEMPLATE_ATTR = re.compile(r"(model|coupling|integrator\.noise)\.[A-Za-z_][A-Za-z0-9_]*")


def _known() -> dict[str, str]:
    from tvbinv_hpc.sim import PARAMETERS

    return PARAMETERS


def _as_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


class Prior:
    """A joint prior over named simulator attributes (tvb-inversion's ``PytorchPrior``).

    Parameters
    ----------
    names
        Simulator attributes, one per group of theta columns: ``'coupling.a'``, ``'model.eta'``,
        ``'integrator.noise.nsig'``, or another numeric ``model.*`` / ``coupling.*`` /
        ``integrator.noise.*`` attribute of the TVB template.
    dist
        Any object with ``sample(shape)`` and ``log_prob(theta)`` (a torch distribution, an sbi
        ``BoxUniform``, ...); one draw has ``sum(sizes)`` values.
    sizes
        Columns per name (1: a scalar; N: one per region; nsig: also one per state variable). Default:
        inferred from one draw of ``dist``: one column per name when it has as many values as names, else
        every column to a single name.

    Raises
    ------
    TvbinvError
        An unknown or repeated name, a ``dist`` without sample/log_prob, or sizes that do not fit a draw.
    """

    def __init__(self, names: Sequence[str] | str, dist: Any, sizes: Sequence[int] | None = None):
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise TvbinvError("a prior needs at least one simulator attribute name, e.g. ['coupling.a']")
        known = _known()
        bad = [n for n in names if n not in known and not _TEMPLATE_ATTR.fullmatch(str(n))]
        if bad:
            raise TvbinvError(f"prior names {bad} are not simulator attributes tvbinv_hpc can vary; "
                              f"known: {', '.join(known)}, or another model.*, coupling.* or "
                              "integrator.noise.* attribute of the TVB template")
        if len(set(names)) != len(names):
            raise TvbinvError(f"prior names must be unique, got {names}")
        if not (callable(getattr(dist, "sample", None)) and callable(getattr(dist, "log_prob", None))):
            raise TvbinvError(f"the prior's dist must have .sample and .log_prob, got {type(dist).__name__}")
        self.dist = dist
        self.params = names  # the simulator attributes, one per group of columns
        width = self._draw(1, seed=0).shape[1]
        if sizes is None:
            if width == len(names):
                sizes = [1] * len(names)
            elif len(names) == 1:
                sizes = [width]
            else:
                raise TvbinvError(f"the dist draws {width} values for {len(names)} names; say which columns "
                                  "belong to which name with sizes=[...]")
        sizes = [int(s) for s in sizes]
        if len(sizes) != len(names) or min(sizes) < 1 or sum(sizes) != width:
            raise TvbinvError(f"sizes {sizes} must give each of the {len(names)} names >= 1 columns and sum "
                              f"to the {width} values the dist draws")
        self.sizes = sizes
        self.groups: dict[str, slice] = {}
        self.names: list[str] = []
        for attr, k in zip(names, sizes):
            self.groups[attr] = slice(len(self.names), len(self.names) + k)
            self.names += [f"{attr}[{i}]" for i in range(k)] if k > 1 else [attr]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params}, {self.dist})"

    @property
    def dim(self) -> int:
        return len(self.names)

    def check_template(self, sim: Any) -> None:
        """Every name is a numeric attribute of the TVB Simulator ``sim``, of a width it takes."""
        for attr in self.params:
            *path, last = attr.split(".")
            obj = sim
            for p in path:
                obj = getattr(obj, p, None)
            value = getattr(obj, last, None)
            # noise_seed is set per simulation from (seed, i): not a parameter
            if value is None or last == "noise_seed" or not np.issubdtype(np.asarray(value).dtype, np.number):
                where = ".".join(path) + (f" ({type(obj).__name__})" if obj is not None else "")
                raise TvbinvError(f"prior name '{attr}' is not a numeric attribute of the template's {where}"
                                  f"{_numeric_attrs(obj)}")
        n_svar = len(getattr(getattr(sim, "model", None), "state_variables", ()) or ()) or 2
        self.check_regions(int(np.asarray(sim.connectivity.weights).shape[0]), n_svar)

    def check_regions(self, n_regions: int, n_svar: int = 2) -> None:
        """Each attribute's width must be 1 or N (nsig: also one per state variable)."""
        for attr, sl in self.groups.items():
            k = sl.stop - sl.start
            ok = (1, n_regions) + ((n_svar,) if attr == "integrator.noise.nsig" else ())
            if k not in ok:
                raise TvbinvError(f"prior name '{attr}' gets {k} columns; the simulator has {n_regions} "
                                  f"regions, so it takes {' or '.join(map(str, ok))}")

    def _draw(self, n: int, seed: int) -> np.ndarray:
        import torch

        # Seeded draws that leave the caller's RNG states as they were (numpy's too, for custom dists).
        np_state = np.random.get_state()  # noqa: NPY002 - the global RNG is what custom dists use
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                np.random.seed(int(seed) % 2**32)  # noqa: NPY002
                s = _as_numpy(self.dist.sample((n,)))
        finally:
            np.random.set_state(np_state)  # noqa: NPY002
        return s.reshape(n, -1)

    def sample(self, num_samples: int, seed: int = 42) -> np.ndarray:
        """Draw theta from the prior, reproducibly.

        Parameters
        ----------
        num_samples
            Rows to draw.
        seed
            Seeds torch's and numpy's global RNGs for the draw; both are restored after it.

        Returns
        -------
        numpy.ndarray
            theta ``(num_samples, dim)`` float64.
        """
        theta = self._draw(int(num_samples), seed)
        if not np.isfinite(theta).all():
            raise TvbinvError("the prior drew NaN/Inf values")
        return theta

    sample_to_numpy = sample

    def values(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """theta (B, dim) -> simulator overrides {attribute: (B,) or (B, width)} for ``Engine.simulate``."""
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        return {attr: (theta[:, sl] if sl.stop - sl.start > 1 else theta[:, sl.start]).copy()
                for attr, sl in self.groups.items()}

    def torch(self) -> Any:
        """The dist with event shape (dim,), as sbi wants it (scalar and batched torch dists are wrapped)."""
        from torch.distributions import Distribution, Independent

        d = self.dist
        if isinstance(d, Distribution):
            if d.event_shape == () and d.batch_shape == ():
                d = Independent(d.expand((1,)), 1)
            elif d.event_shape == () and len(d.batch_shape) == 1:
                d = Independent(d, 1)
        return d

    def mean_std(self, n: int = 20000) -> tuple[np.ndarray, np.ndarray]:
        """Prior mean and std per column: exact where torch knows them, else from ``n`` seeded draws."""
        try:
            d = self.torch()
            mean, std = _as_numpy(d.mean).reshape(-1), _as_numpy(d.stddev).reshape(-1)
            if mean.size == self.dim and np.isfinite(mean).all() and np.isfinite(std).all():
                return mean, std
        except (AttributeError, NotImplementedError, TypeError):
            pass
        s = self._draw(n, seed=0)
        return s.mean(axis=0), s.std(axis=0, ddof=1)

    @property
    def mean(self) -> Any:
        import torch

        return torch.as_tensor(self.mean_std()[0], dtype=torch.float32)

    @property
    def std(self) -> Any:
        import torch

        return torch.as_tensor(self.mean_std()[1], dtype=torch.float32)

    @property
    def param(self) -> list[str]:
        """tvb-inversion's name for the simulator attributes (``params``)."""
        return list(self.params)

    def generate_sim_seq(self, sim: Any, num_samples: int, seed: int | None = None) -> Any:
        """tvb-inversion's ``prior.generate_sim_seq(sim, n)``: ``n`` seeded draws as a SimSeq over the
        TVB Simulator template ``sim`` (``sbiModel(sim, prior).generate_sim_seq(n, seed)``)."""
        from tvbinv_hpc.compat.model import DEFAULT_SEED, sbiModel

        return sbiModel(sim, self).generate_sim_seq(num_samples, DEFAULT_SEED if seed is None else seed)

    def describe(self) -> dict[str, Any]:
        """What identifies this prior in a store or posterior file (names, widths, the dist's repr)."""
        return {"params": list(self.params), "sizes": list(self.sizes), "names": list(self.names),
                "dist": repr(self.dist)}


def _numeric_attrs(obj: Any) -> str:
    """'; its parameters: a, b' for a TVB object (its numeric declarative attributes), else ''."""
    names = [n for n in getattr(type(obj), "declarative_attrs", ())
             if n != "noise_seed" and np.issubdtype(np.asarray(getattr(obj, n, None)).dtype, np.number)]
    return f"; its parameters: {', '.join(names)}" if names else ""


class PytorchPrior(Prior):
    """tvb-inversion's name: ``PytorchPrior(names=['coupling.a'], dist=torch.distributions.Uniform(0.1, 1.2))``."""
