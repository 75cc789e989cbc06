"""Named priors over simulator attributes: scalars and per-region vectors, drawn from (seed, index).

``[prior."coupling.a"] dist = "uniform", low = 0.1, high = 1.2`` gives one theta column named ``coupling.a``;
``shape = "regions"`` gives N columns ``model.eta[0]`` ... ``model.eta[N-1]`` with the same marginal.
Row i of theta depends only on (seed, i): drawing rows 0..n at once or one at a time gives the same values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tvbinv_hpc.errors import ConfigError

# Which distributions exist and which parameters they take (all required).
DISTS: dict[str, tuple[str, ...]] = {
    "uniform": ("low", "high"),
    "normal": ("loc", "scale"),
    "loguniform": ("low", "high"),
    "truncnormal": ("loc", "scale", "low", "high"),
}
PRIOR_STREAM = 0x5052  # separates prior draws from the simulator's noise streams of the same (seed, i)


def _sim_parameters() -> dict[str, str]:
    from tvbinv_hpc.sim import PARAMETERS

    return PARAMETERS


def validate(section: dict[str, Any]) -> dict[str, Any]:
    """Check the [prior] table: known attribute names, known distributions, finite non-empty bounds."""
    if not isinstance(section, dict) or not section:
        raise ConfigError("prior", "at least one parameter to infer is required, e.g. "
                          '[prior."coupling.a"] dist = "uniform", low = 0.1, high = 1.2')
    known = _sim_parameters()
    out: dict[str, Any] = {}
    for name, spec in section.items():
        path = f"prior.{name}"
        if name not in known:
            raise ConfigError(path, f"unknown simulator attribute (known: {', '.join(known)})")
        if not isinstance(spec, dict):
            raise ConfigError(path, "expected a table with 'dist' and its parameters")
        dist = spec.get("dist")
        if dist not in DISTS:
            raise ConfigError(f"{path}.dist", f"{dist!r} is not one of {', '.join(DISTS)}")
        allowed = set(DISTS[dist]) | {"dist", "shape"}
        for k in spec:
            if k not in allowed:
                raise ConfigError(f"{path}.{k}", f"unknown key for dist '{dist}' (expected {', '.join(DISTS[dist])})")
        clean: dict[str, Any] = {"dist": dist, "shape": spec.get("shape", "scalar")}
        if clean["shape"] not in ("scalar", "regions"):
            raise ConfigError(f"{path}.shape", f"{clean['shape']!r} is not 'scalar' or 'regions'")
        for p in DISTS[dist]:
            v = spec.get(p)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{path}.{p}", f"required number, got {v!r}")
            if not math.isfinite(v):
                raise ConfigError(f"{path}.{p}", f"must be finite, got {v!r}")
            clean[p] = float(v)
        if "low" in clean and not clean["low"] < clean["high"]:
            raise ConfigError(f"{path}.high",
                              f"bounds are empty or inverted: low={clean['low']} >= high={clean['high']}")
        if dist == "loguniform" and clean["low"] <= 0:
            raise ConfigError(f"{path}.low", f"loguniform needs low > 0, got {clean['low']}")
        if "scale" in clean and clean["scale"] <= 0:
            raise ConfigError(f"{path}.scale", f"must be > 0, got {clean['scale']}")
        out[name] = clean
    return out


@dataclass(frozen=True)
class Marginal:
    dist: str
    params: dict[str, float]

    def ppf(self, u: np.ndarray) -> np.ndarray:
        from scipy import stats

        p = self.params
        if self.dist == "uniform":
            return p["low"] + u * (p["high"] - p["low"])
        if self.dist == "loguniform":
            return np.exp(np.log(p["low"]) + u * (np.log(p["high"]) - np.log(p["low"])))
        if self.dist == "normal":
            return stats.norm.ppf(u, p["loc"], p["scale"])
        a, b = (p["low"] - p["loc"]) / p["scale"], (p["high"] - p["loc"]) / p["scale"]
        return stats.truncnorm.ppf(u, a, b, loc=p["loc"], scale=p["scale"])

    def moments(self) -> tuple[float, float]:
        from scipy import stats

        p = self.params
        if self.dist == "uniform":
            d = stats.uniform(p["low"], p["high"] - p["low"])
        elif self.dist == "loguniform":
            d = stats.loguniform(p["low"], p["high"])
        elif self.dist == "normal":
            d = stats.norm(p["loc"], p["scale"])
        else:
            a, b = (p["low"] - p["loc"]) / p["scale"], (p["high"] - p["loc"]) / p["scale"]
            d = stats.truncnorm(a, b, loc=p["loc"], scale=p["scale"])
        return float(d.mean()), float(d.std())


class Prior:
    """Independent marginals over named theta columns; seeded draws and a torch twin for sbi."""

    def __init__(self, spec: dict[str, Any], n_regions: int):
        self.spec = spec
        self.n_regions = n_regions
        self.names: list[str] = []
        self.marginals: list[Marginal] = []
        self.groups: dict[str, slice] = {}  # simulator attribute -> its theta columns
        for attr, s in spec.items():
            width = n_regions if s["shape"] == "regions" else 1
            start = len(self.names)
            self.names += [f"{attr}[{i}]" for i in range(width)] if width > 1 else [attr]
            params = {k: v for k, v in s.items() if k not in ("dist", "shape")}
            self.marginals += [Marginal(s["dist"], params)] * width
            self.groups[attr] = slice(start, start + width)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], n_regions: int | None = None) -> Prior:
        """From ``to_spec()``'s output (or a [prior] table plus ``n_regions``)."""
        if n_regions is None:
            return cls(validate(spec["prior"]), int(spec["n_regions"]))
        return cls(validate(spec), n_regions)

    def to_spec(self) -> dict[str, Any]:
        """JSON-able description that ``from_spec`` rebuilds exactly (saved with the posterior)."""
        return {"prior": self.spec, "n_regions": self.n_regions, "names": self.names}

    @property
    def dim(self) -> int:
        return len(self.names)

    def uniforms(self, index: np.ndarray, seed: int) -> np.ndarray:
        """U(0,1) of shape (len(index), dim); row i from a Philox stream keyed by (seed, i) alone."""
        index = np.asarray(index, dtype=np.int64)
        u = np.empty((index.size, self.dim))
        # One Philox re-keyed per row: the same bits as Generator(Philox(SeedSequence(...))) (tested) at a
        # quarter of the cost, which is what creating a 10^6-row store spends its time on.
        bits = np.random.Philox()
        gen = np.random.Generator(bits)
        for row, i in enumerate(index):
            key = np.random.SeedSequence([seed, PRIOR_STREAM, int(i)]).generate_state(2, np.uint64)
            bits.state = {"bit_generator": "Philox", "state": {"counter": np.zeros(4, np.uint64), "key": key},
                          "buffer": np.zeros(4, np.uint64), "buffer_pos": 4, "has_uint32": 0, "uinteger": 0}
            u[row] = gen.random(self.dim)
        return u

    def sample(self, index: np.ndarray, seed: int) -> np.ndarray:
        """theta (len(index), dim) float64 for global simulation indices ``index``."""
        u = self.uniforms(index, seed)
        theta = np.empty_like(u)
        for j, m in enumerate(self.marginals):
            theta[:, j] = m.ppf(u[:, j])
        return theta

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        ms = np.array([m.moments() for m in self.marginals]).reshape(-1, 2)
        return ms[:, 0], ms[:, 1]

    def values(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """theta (B, dim) -> simulator overrides {attribute: (B,) or (B, N)} for ``Engine.simulate``."""
        theta = np.atleast_2d(theta)
        return {attr: (theta[:, sl] if sl.stop - sl.start > 1 else theta[:, sl.start]).copy()
                for attr, sl in self.groups.items()}

    def support(self) -> tuple[np.ndarray, np.ndarray]:
        lo = [m.params.get("low", -np.inf) for m in self.marginals]
        hi = [m.params.get("high", np.inf) for m in self.marginals]
        return np.array(lo), np.array(hi)

    def torch(self) -> Any:
        """The same prior as a torch distribution (what sbi trains against)."""
        from tvbinv_hpc.prior.torch_prior import build_torch_prior

        return build_torch_prior(self.marginals)
