"""The trained posterior on disk and in use: save, reload, and sample it inside the prior's support.

The saved file is a ``torch.save`` of plain dicts and tensors (loadable with ``weights_only=True``):
the network's state_dict (one per member for an ensemble), the builder name and kwargs to rebuild it,
and meta (parameter and feature names, prior spec, config hash, versions). Pickled posteriors break across sbi versions,
so they are never written.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tvbinv_hpc.errors import InputError, TvbinvError
from tvbinv_hpc.inference.train import FlowEnsemble, TrainedPosterior, _build_fn, _jsonable, _versions

FORMAT = "tvbinv-hpc-posterior"
FORMAT_VERSION = 2   # 2 adds ensembles (state_dicts); single flows are still written as version 1


def save_posterior(path: str | Path, trained: TrainedPosterior) -> None:
    """Write weights + rebuild settings + meta atomically (a crash never leaves a half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "format_version": 1, "meta": trained.meta,
               "summary": _jsonable(trained.summary)}
    if isinstance(trained.posterior, FlowEnsemble):
        # version 2: one state_dict per member (a version-1 file, one flow, stays readable by older code)
        payload["format_version"] = FORMAT_VERSION
        payload["state_dicts"] = [p.posterior_estimator.state_dict() for p in trained.posterior.posteriors]
    else:
        payload["state_dict"] = trained.posterior.posterior_estimator.state_dict()
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise InputError(f"no trained posterior at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for foreign/corrupt files
        raise InputError(f"{path} is not a readable posterior file: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path} is not a {FORMAT} file")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(f"{path} has format version {payload['format_version']}, "
                         f"this package reads up to {FORMAT_VERSION}")
    return payload


def is_trained(path: str | Path, config_hash: str | None) -> bool:
    """True when ``path`` holds a posterior trained under ``config_hash``."""
    try:
        payload = _read(Path(path))
    except InputError:
        return False
    return payload["meta"].get("config_hash") == config_hash


def load_posterior(path: str | Path, prior: Any = None,
                   log: Callable[[str], Any] = print) -> TrainedPosterior:
    """Rebuild the posterior saved by ``save_posterior`` (works in a fresh process).

    ``prior`` is the torch prior; when None it is rebuilt from the saved spec with
    ``tvbinv_hpc.prior.Prior.from_spec(spec).torch()``.
    """
    from sbi.inference import DirectPosterior

    path = Path(path)
    payload = _read(path)
    meta = payload["meta"]
    if prior is None:
        try:
            from tvbinv_hpc.prior import Prior
        except ImportError as exc:
            raise TvbinvError(f"cannot rebuild the prior of {path} ({exc}); "
                              f"pass it to load_posterior") from exc
        prior = Prior.from_spec(meta["prior_spec"]).torch()
    d, k = int(meta["theta_dim"]), int(meta["x_dim"])
    prior_dim = int(prior.sample((1,)).reshape(1, -1).shape[1])
    if prior_dim != d:
        raise InputError(f"{path} was trained for {d} parameters but the prior has {prior_dim}")
    saved_sbi = meta.get("versions", {}).get("sbi")
    if saved_sbi and saved_sbi != _versions()["sbi"]:
        log(f"load: warning: {path} was trained with sbi {saved_sbi}, running {_versions()['sbi']}")
    # Any well-conditioned batch of the right shapes builds the net; the z-score statistics it
    # computes are buffers and are overwritten by the saved state_dict.
    g = torch.Generator().manual_seed(0)
    theta_b = torch.randn(200, d, generator=g)
    x_b = torch.randn(200, k, generator=g)
    members = []
    for state in payload["state_dicts"] if "state_dicts" in payload else [payload["state_dict"]]:
        estimator = _build_fn(meta["builder"])(theta_b, x_b)
        try:
            estimator.load_state_dict(state)
        except RuntimeError as exc:
            raise InputError(f"{path}: saved weights do not fit the rebuilt network: {exc}") from exc
        estimator.eval()
        members.append(DirectPosterior(posterior_estimator=estimator, prior=prior, device="cpu"))
    posterior = members[0] if len(members) == 1 else FlowEnsemble(members)
    return TrainedPosterior(posterior=posterior, summary=payload.get("summary", {}), meta=meta)


@contextlib.contextmanager
def quiet_sampling() -> Iterator[None]:
    """Inside: no deprecation notice from nflows' LU transform (it calls torch.triangular_solve; a user
    cannot act on it) and no notice of sbi's memory cap on the sampling batch size."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.triangular_solve is deprecated")
        warnings.filterwarnings("ignore", message="Capping max_sampling_batch_size")
        warnings.filterwarnings("ignore", message=r".* of samples drawn with reject_outside_prior=False")
        yield


PROBE_DRAWS = 4_000          # flow draws that estimate how much of its mass lies inside the prior box
MIN_ACCEPTANCE = 1e-3        # below: rejection would need over 1,000 proposals per kept draw
MAX_PROPOSALS = 1_000_000    # proposals drawn at most when that little mass is inside the box


def _inside(prior: Any, theta: torch.Tensor) -> torch.Tensor:
    from sbi.utils import within_support

    return within_support(prior, theta)


def _box(prior: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The prior's bounds: tvbinv_hpc's IndependentPrior has them, sbi's BoxUniform in its support."""
    if hasattr(prior, "low") and hasattr(prior, "high"):
        return prior.low, prior.high
    base = getattr(getattr(prior, "support", None), "base_constraint", None)
    if hasattr(base, "lower_bound") and hasattr(base, "upper_bound"):
        return base.lower_bound, base.upper_bound
    return None


def _draw(posterior: Any, n: int, x: torch.Tensor) -> torch.Tensor:
    return posterior.sample((n,), x=x, show_progress_bars=False, reject_outside_prior=False)


def mass_inside_prior(posterior: Any, x: torch.Tensor) -> float:
    """Share of the flow's mass at ``x`` inside the prior's support, from PROBE_DRAWS unrejected draws made
    on a forked RNG (the caller's draws stay what they would have been)."""
    with quiet_sampling(), torch.random.fork_rng():
        return float(_inside(posterior.prior, _draw(posterior, PROBE_DRAWS, x)).float().mean())


def sample_posterior(posterior: Any, x: np.ndarray, num_samples: int, seed: int,
                     max_sampling_time: float | None = None, info: dict | None = None) -> np.ndarray:
    """``num_samples`` posterior draws at one x as float64 (n, d); reproducible for a given seed.

    sbi rejects draws outside the prior box until it has enough; at an observation beyond the simulations
    the flow can put nearly all its mass outside the box and that loop never ends (seen on a real subject:
    0.000 % accepted, diagnose hung). So the mass inside the box is estimated first. Below MIN_ACCEPTANCE,
    the draws inside the box are collected from at most MAX_PROPOSALS proposals ("truncated"); with none
    inside, the proposals are clipped onto the box ("clipped": where the flow points, piled on the box's
    faces). ``info`` receives ``mass_inside_prior``, ``proposals`` and ``method`` for the report.
    """
    x = np.asarray(x, dtype=np.float64).reshape(1, -1)
    if not np.isfinite(x.astype(np.float32)).all():
        raise InputError("the observed features contain NaN or Inf; cannot condition the posterior on them")
    torch.manual_seed(seed)
    xt = torch.as_tensor(x, dtype=torch.float32)
    kwargs = {"max_sampling_time": max_sampling_time} if max_sampling_time else {}
    with quiet_sampling():
        probe = _draw(posterior, PROBE_DRAWS, xt)
        inside = _inside(posterior.prior, probe)
        mass = float(inside.float().mean())
        method, proposals = "rejection", PROBE_DRAWS
        if mass >= MIN_ACCEPTANCE:
            samples = posterior.sample((num_samples,), x=xt, show_progress_bars=False, **kwargs)
        else:
            kept, n_kept = [probe[inside]], int(inside.sum())
            while n_kept < num_samples and proposals < MAX_PROPOSALS:
                chunk = _draw(posterior, 100_000, xt)
                proposals += chunk.shape[0]
                kept.append(chunk[_inside(posterior.prior, chunk)])
                n_kept += kept[-1].shape[0]
            samples, method = torch.cat(kept)[:num_samples], "truncated"
            box = _box(posterior.prior)
            if n_kept == 0 and box is not None:
                samples = torch.maximum(torch.minimum(probe, box[1]), box[0])[:num_samples]
                method = "clipped"
            if samples.shape[0] == 0:
                raise TvbinvError(f"the posterior puts none of {proposals} draws inside the prior's support "
                                  "at this observation; it lies far beyond the simulations")
    if info is not None:
        info.update(mass_inside_prior=mass, proposals=proposals, method=method)
    return samples.numpy().astype(np.float64)
