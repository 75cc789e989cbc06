"""The prior's torch twin for sbi: independent marginals with one event of shape (d,).

One class for every marginal mix (uniform, normal, log-uniform, truncated normal) keeps ``support`` exact,
so sbi's rejection of posterior samples outside the prior works per dimension.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch.distributions import Distribution, constraints

_SQRT2 = math.sqrt(2.0)
_SCALAR = torch.Size()


def _ndtr(z: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(z / _SQRT2))


def _ndtri(p: torch.Tensor) -> torch.Tensor:
    return _SQRT2 * torch.erfinv(2 * p - 1)


class IndependentPrior(Distribution):
    """Product of univariate marginals; ``kinds`` 0 uniform, 1 normal, 2 log-uniform, 3 truncated normal."""

    arg_constraints: dict[str, Any] = {}
    has_rsample = False
    KINDS = {"uniform": 0, "normal": 1, "loguniform": 2, "truncnormal": 3}

    def __init__(self, marginals: list[Any]):
        d = len(marginals)
        self.kind = torch.tensor([self.KINDS[m.dist] for m in marginals])
        p = [m.params for m in marginals]
        f32 = torch.float32
        self.loc = torch.tensor([q.get("loc", 0.0) for q in p], dtype=f32)
        self.scale = torch.tensor([q.get("scale", 1.0) for q in p], dtype=f32)
        self.low = torch.tensor([q.get("low", -math.inf) for q in p], dtype=f32)
        self.high = torch.tensor([q.get("high", math.inf) for q in p], dtype=f32)
        # Truncated normal: the standardised bounds' CDF values, precomputed once.
        lo_z = (self.low - self.loc) / self.scale
        hi_z = (self.high - self.loc) / self.scale
        self.cdf_lo, self.cdf_hi = _ndtr(lo_z), _ndtr(hi_z)
        # Per-dimension support (interval or real) so that sbi's bijection to unconstrained space is exact.
        pieces = [constraints.real if math.isinf(lo) and math.isinf(hi) else constraints.interval(lo, hi)
                  for lo, hi in zip(self.low.tolist(), self.high.tolist())]
        base = constraints.cat(pieces, dim=-1, lengths=[1] * d) if d > 1 else pieces[0]
        self._support = constraints.independent(base, 1)
        super().__init__(batch_shape=torch.Size([]), event_shape=torch.Size([d]), validate_args=False)

    @property
    def support(self) -> Any:
        return self._support

    def icdf(self, u: torch.Tensor) -> torch.Tensor:
        k = self.kind
        uni = self.low + u * (self.high - self.low)
        logu = torch.exp(torch.log(self.low.clamp_min(1e-300)) +
                         u * (torch.log(self.high.clamp_min(1e-300)) - torch.log(self.low.clamp_min(1e-300))))
        nor = self.loc + self.scale * _ndtri(u.clamp(1e-7, 1 - 1e-7))
        tn_p = (self.cdf_lo + u * (self.cdf_hi - self.cdf_lo)).clamp(1e-7, 1 - 1e-7)
        tnor = (self.loc + self.scale * _ndtri(tn_p)).clamp(self.low, self.high)
        return torch.where(k == 0, uni, torch.where(k == 1, nor, torch.where(k == 2, logu, tnor)))

    def sample(self, sample_shape: torch.Size = _SCALAR) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.event_shape
        return self.icdf(torch.rand(shape, device=self.low.device))

    def to(self, device: Any) -> IndependentPrior:
        """A copy whose parameters live on ``device`` (sbi trains against a prior on its own device)."""
        out = copy.copy(self)
        for name in ("kind", "loc", "scale", "low", "high", "cdf_lo", "cdf_hi"):
            setattr(out, name, getattr(self, name).to(device))
        return out

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        v = value
        inside = (v >= self.low) & (v <= self.high)
        k = self.kind
        width = (self.high - self.low)
        lp_uni = -torch.log(torch.where(k == 0, width, torch.ones_like(width)))
        z = (v - self.loc) / self.scale
        lp_nor = -0.5 * z * z - torch.log(self.scale) - 0.5 * math.log(2 * math.pi)
        logw = torch.log(self.high.clamp_min(1e-300)) - torch.log(self.low.clamp_min(1e-300))
        lp_log = -torch.log(v.abs().clamp_min(1e-30)) - torch.log(torch.where(k == 2, logw, torch.ones_like(logw)))
        lp_tn = lp_nor - torch.log((self.cdf_hi - self.cdf_lo).clamp_min(1e-30))
        lp = torch.where(k == 0, lp_uni, torch.where(k == 1, lp_nor, torch.where(k == 2, lp_log, lp_tn)))
        lp = torch.where(inside, lp, torch.full_like(lp, -math.inf))
        return lp.sum(-1)

    @property
    def mean(self) -> torch.Tensor:
        return self.sample((20000,)).mean(0)

    @property
    def variance(self) -> torch.Tensor:
        return self.sample((20000,)).var(0)


def build_torch_prior(marginals: list[Any]) -> IndependentPrior:
    return IndependentPrior(marginals)
