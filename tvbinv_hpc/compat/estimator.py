"""tvb-inversion's ``EstimatorSBI``: summary statistics from a run_local store -> an sbi NPE posterior.

Training is ``tvbinv_hpc.inference.train_posterior`` (float32, rows with NaN features excluded and counted,
no ./sbi-logs), saving and loading are ``save_posterior`` / ``load_posterior``: the same files as
``tvbinv-hpc train``.  ``Posterior.sample((n,), x)`` takes x as numpy or torch, shape (k,) or (1, k).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tvbinv_hpc.compat.metrics import MetricFeatures
from tvbinv_hpc.compat.model import SimSeq, sbiModel
from tvbinv_hpc.compat.prior import Prior
from tvbinv_hpc.errors import InputError, TvbinvError

log = logging.getLogger("tvbinv_hpc")
# Small-data defaults (a few hundred simulations): full-size flows, smaller batches, bounded epochs.
TRAIN_SETTINGS: dict[str, Any] = {"batch_size": 50, "max_epochs": 500, "stop_after_epochs": 20}


def _numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    if hasattr(a, "to_numpy"):  # a pandas DataFrame, as tvb-inversion's load_summary_stats returned
        a = a.to_numpy()
    return np.asarray(a, dtype=np.float64)


@dataclass
class SummaryStats:
    """The ok rows of a store: ``theta (n, d)``, ``x (n, k)``, their row ``index``; ``np.asarray`` gives x."""

    theta: np.ndarray
    x: np.ndarray
    index: np.ndarray
    param_names: list[str]
    feature_names: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    path: str = ""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.x if dtype is None else self.x.astype(dtype)

    def __len__(self) -> int:
        return len(self.x)


class Posterior:
    """An sbi DirectPosterior with the parameter names; ``sample((n,), x)`` -> torch (n, d).

    Parameters
    ----------
    trained
        A ``TrainedPosterior`` (``EstimatorSBI.train`` or ``load_posterior``); its sbi object stays
        reachable as ``.posterior`` for anything not wrapped here.
    """

    def __init__(self, trained: Any):
        self.trained = trained
        self.posterior = trained.posterior  # the sbi object, for anything not wrapped here
        self.names: list[str] = trained.param_names
        self.feature_names: list[str] = trained.feature_names
        self.default_x: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Posterior(over {self.names}, from {len(self.feature_names)} features)"

    @property
    def summary(self) -> dict[str, Any]:
        return self.trained.summary

    def _x(self, x: Any) -> Any:
        import torch

        if x is None:
            if self.default_x is None:
                raise TvbinvError("give the observed summary statistics x (or set_default_x(x) first)")
            x = self.default_x
        a = _numpy(x)
        k = len(self.feature_names)
        if a.size != k or a.ndim > 2 or (a.ndim == 2 and a.shape[0] != 1):
            raise InputError(f"x must be one observation of {k} summary statistics, shape ({k},) or (1, {k}); "
                             f"got shape {a.shape}")
        if not np.isfinite(a.astype(np.float32)).all():
            raise InputError("the observed summary statistics contain NaN or Inf")
        return torch.as_tensor(a.reshape(1, k), dtype=torch.float32)

    def set_default_x(self, x: Any) -> Posterior:
        self.default_x = _numpy(self._x(x))
        return self

    def sample(self, sample_shape: Any = (1000,), x: Any = None, *, seed: int | None = None,
               show_progress_bars: bool = False, **kwargs: Any) -> Any:
        """Posterior draws at x as a float32 torch tensor ``(*sample_shape, d)``; ``seed`` makes them
        reproducible (else torch's global RNG is used, as in sbi)."""
        import torch

        shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        xt = self._x(x)
        if seed is not None:
            torch.manual_seed(int(seed))
        if kwargs.get("reject_outside_prior", True) and hasattr(self.posterior, "prior"):
            from tvbinv_hpc.inference.posterior import MIN_ACCEPTANCE, mass_inside_prior

            # sbi's rejection loop never ends when the flow puts (almost) nothing inside the prior at x.
            mass = mass_inside_prior(self.posterior, xt)
            if mass < MIN_ACCEPTANCE:
                raise TvbinvError(
                    f"at this x only {100 * mass:.3g} % of the posterior's mass lies inside the prior, so "
                    "rejection sampling would not end: x lies beyond what the simulations cover. Widen the "
                    "prior or change the model; reject_outside_prior=False draws from the flow anyway.")
        with torch.no_grad():
            return self.posterior.sample(shape, x=xt, show_progress_bars=show_progress_bars, **kwargs)

    def log_prob(self, theta: Any, x: Any = None) -> Any:
        import torch

        th = torch.as_tensor(_numpy(theta).reshape(-1, len(self.names)), dtype=torch.float32)
        with torch.no_grad():
            return self.posterior.log_prob(th, x=self._x(x))

    def save(self, path: str | os.PathLike) -> None:
        from tvbinv_hpc.inference import save_posterior

        save_posterior(path, self.trained)


class EstimatorSBI:
    """``EstimatorSBI(prior, seq=seq, metrics=metrics)`` (tvb-inversion's notebooks) or
    ``EstimatorSBI(stats_model=sbi_model, ...)``: load_summary_stats, train, save/load.

    Parameters
    ----------
    stats_model
        The prior (a ``PytorchPrior``), or an ``sbiModel`` whose prior is used (then ``num_samples`` can
        draw the seq). The positional order is tvb-inversion's (prior, seq, theta, metrics, method).
    seq
        The simulations whose rows ``train(x)`` and ``load_summary_stats`` are checked against.
    theta
        ``(n, d)``: replaces the seq's draws as the parameters that ``train(x)`` pairs with the rows of x.
    metrics
        The metrics the summary statistics were computed with (kept for tvb-inversion's scripts).
    method
        Only 'SNPE' (also 'NPE', 'SNPE_C'): neural posterior estimation.
    num_samples
        With an sbiModel and no seq: draw a seq of this many simulations.
    train_settings
        Overrides TRAIN_SETTINGS and then tvbinv_hpc's [train] defaults (see the config reference:
        density_estimator, hidden_features, max_epochs, seed, ...).
    prior
        The prior by keyword, instead of ``stats_model``.

    Raises
    ------
    TvbinvError
        Both or neither of prior and sbiModel, an unknown method, or num_samples without a template.
    """

    def __init__(self, stats_model: sbiModel | Prior | None = None, seq: SimSeq | None = None, theta: Any = None,
                 metrics: Any = None, method: str = "SNPE", num_samples: int = 0,
                 train_settings: dict[str, Any] | None = None, *, prior: Prior | None = None):
        if stats_model is not None and prior is not None:
            raise TvbinvError("EstimatorSBI: give the prior or the sbiModel, not both")
        model = stats_model if stats_model is not None else prior
        if isinstance(model, sbiModel):
            self.stats_model, self.prior = model, model.prior
        elif isinstance(model, Prior):
            self.stats_model, self.prior = None, model
        else:
            raise TvbinvError("EstimatorSBI needs a prior, EstimatorSBI(prior, seq=seq, metrics=metrics), or an "
                              f"sbiModel(sim, prior); got {type(model).__name__}")
        if method.upper() not in ("SNPE", "NPE", "SNPE_C"):
            raise TvbinvError(f"method {method!r}: only 'SNPE' (neural posterior estimation) is provided")
        if seq is None and theta is None and num_samples > 0:
            if self.stats_model is None:
                raise TvbinvError("num_samples draws a seq from a simulator template: pass an sbiModel(sim, prior), "
                                  "or seq=prior.generate_sim_seq(sim, n)")
            seq = self.stats_model.generate_sim_seq(num_samples)
        self.seq, self.metrics = seq, metrics
        self.theta = _numpy(theta).reshape(-1, self.prior.dim) if theta is not None else \
            (seq.values if seq is not None else None)
        self.train_settings = dict(train_settings or {})
        self.trained: Any = None
        self.posterior: Posterior | None = None

    def load_summary_stats(self, path: str | os.PathLike, split: int | None = None) -> SummaryStats:
        """theta and x of the rows whose simulation and features are ok (``split``: 0 train, 1 test, None
        all), checked against this estimator's prior, seq and metrics."""
        from tvbinv_hpc.compat.run import refuse_numpy_file
        from tvbinv_hpc.parallel import store

        path = os.fspath(path)
        refuse_numpy_file(path)
        head = store.read_header(path, read_only=True)
        rows = store.read_rows(path, split=split, ok_only=True)
        if rows["param_names"] != self.prior.names:
            raise InputError(f"{path} holds parameters {rows['param_names']}, the prior has {self.prior.names}")
        if self.seq is not None:
            th = self.seq.values
            if len(th) != len(rows["status"]) or not np.array_equal(th[rows["index"]], rows["theta"]):
                raise InputError(f"{path} was not made from this seq (different theta); pass the seq it was "
                                 "run with, or seq=None")
        if self.metrics is not None:
            n_bold = int(head["n_bold"])
            names = MetricFeatures(self.metrics, int(head["n_regions"]), float(head["tr_ms"]),
                                   np.arange(n_bold) * float(head["tr_ms"])).names
            if names != rows["feature_names"]:
                raise InputError(f"{path} holds features {rows['feature_names'][:5]}..., these metrics give "
                                 f"{names[:5]}...")
        st = rows["status"]
        counts = {name.split(" ")[0]: int(np.sum(st == c)) for c, name in store.STATUS_NAMES.items()}
        if counts["pending"]:
            log.warning("%s: %d rows are still pending (run_local again to finish them)", path, counts["pending"])
        return SummaryStats(rows["theta"], rows["x"], rows["index"], rows["param_names"], rows["feature_names"],
                            counts, path)

    def train(self, summary_stats: Any, train_settings: dict[str, Any] | None = None) -> Posterior:
        """Train NPE; ``summary_stats`` is a SummaryStats, or x ``(n, k)`` row-aligned with the seq's theta."""
        from tvbinv_hpc.inference import train_posterior

        if isinstance(summary_stats, SummaryStats):
            theta, x, fnames = summary_stats.theta, summary_stats.x, summary_stats.feature_names
        else:
            x = _numpy(summary_stats)
            if self.theta is None or x.ndim != 2 or len(x) != len(self.theta):
                raise InputError(f"summary statistics of shape {x.shape} need theta with as many rows: pass the "
                                 "seq to EstimatorSBI, or use load_summary_stats(path)")
            theta, fnames = self.theta, [f"x{i}" for i in range(x.shape[1])]
        seed = self.seq.seed if self.seq is not None else 0
        settings = {**TRAIN_SETTINGS, "seed": seed, **self.train_settings, **(train_settings or {})}
        self.trained = train_posterior(
            theta, x, self.prior.torch(), settings, param_names=self.prior.names, feature_names=list(fnames),
            prior_spec={"compat": self.prior.describe()}, meta={"seed": seed, "api": "tvbinv_hpc.compat"},
            log=log.info)
        self.posterior = Posterior(self.trained)
        return self.posterior

    def save(self, path: str | os.PathLike) -> None:
        """The trained posterior, as ``tvbinv-hpc train`` writes it (weights and settings, no pickles)."""
        if self.posterior is None:
            raise TvbinvError("nothing to save: train() first")
        self.posterior.save(path)

    @classmethod
    def load(cls, path: str | os.PathLike, stats_model: sbiModel | Prior, **kwargs: Any) -> EstimatorSBI:
        """An estimator with the posterior saved at ``path``; its prior is ``stats_model``'s (a Prior or an
        sbiModel)."""
        from tvbinv_hpc.inference import load_posterior

        est = cls(stats_model, **kwargs)
        trained = load_posterior(path, est.prior.torch(), log=log.info)
        if trained.param_names != est.prior.names:
            raise InputError(f"{path} is a posterior over {trained.param_names}, the prior is over "
                             f"{est.prior.names}")
        est.trained, est.posterior = trained, Posterior(trained)
        return est
