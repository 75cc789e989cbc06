"""Train sbi's NPE on the simulated (theta, x) rows: the flow (or an ensemble of flows), its robust
feature embedding, and what is saved with it (``inference.posterior`` writes, reads and samples it)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tvbinv_hpc.errors import InputError, TvbinvError
from tvbinv_hpc.inference.settings import validate_train


def min_train_rows(n_params: int) -> int:
    """Fewest valid rows we train on: max(50, 5 * (d + 1)).

    Below this a flow with a 10 % validation split has a handful of validation rows and early
    stopping is noise; the bound is deliberately low (it catches broken runs, not small budgets).
    """
    return max(50, 5 * (n_params + 1))


def resolve_threads(threads: int, ranks_on_node: int = 1) -> int:
    """``threads`` if > 0, else the cores this process may use divided by the ranks on its node."""
    if threads > 0:
        return int(threads)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, int(ranks_on_node)))


class NullTracker:
    """sbi tracker that records nothing: without one sbi writes ./sbi-logs into the cwd."""

    log_dir = ""

    def log_metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_params(self, *args: Any, **kwargs: Any) -> None:
        pass

    def add_figure(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self) -> None:
        pass


@dataclass
class TrainedPosterior:
    """An sbi DirectPosterior plus what is needed to save it and explain where it came from."""

    posterior: Any
    summary: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def param_names(self) -> list[str]:
        return list(self.meta["param_names"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.meta["feature_names"])

    @property
    def prior(self) -> Any:
        return self.posterior.prior


class RobustFeatures(torch.nn.Module):
    """The robust feature scaling, as the posterior's (fixed) embedding net: asinh((x - median) / IQR).

    sbi's z-scoring divides by the standard deviation, which a few extreme rows of a heavy-tailed feature
    (FCD fluidity, kurtosis) inflate until the bulk of the rows become indistinguishable. Median and IQR
    ignore those rows, and asinh keeps their order but compresses their tails (linear near the centre,
    logarithmic beyond a few IQR). Frozen parameters (sbi wants an embedding with parameters): saved with
    the weights, never trained.
    """

    def __init__(self, n_features: int):
        super().__init__()
        self.center = torch.nn.Parameter(torch.zeros(n_features), requires_grad=False)
        self.scale = torch.nn.Parameter(torch.ones(n_features), requires_grad=False)

    @classmethod
    def fit(cls, x: torch.Tensor) -> RobustFeatures:
        net = cls(x.shape[1])
        q = torch.quantile(x.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64), dim=0)
        iqr = q[2] - q[0]
        spread = x.double().std(dim=0)
        # a feature with IQR 0 (mostly constant) falls back to its std, a constant one to 1
        scale = torch.where(iqr > 0, iqr / 1.349, torch.where(spread > 0, spread, torch.ones_like(spread)))
        with torch.no_grad():
            net.center.copy_(q[1].float())
            net.scale.copy_(scale.float())
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.asinh((x - self.center) / self.scale)


class FlowEnsemble:
    """Equal-weight mixture of K DirectPosteriors trained on the same rows with different seeds.

    A single flow trained on ~10^3 simulations is over-confident where the data constrain a parameter
    weakly; the members disagree exactly there, so their mixture is wider where it should be. The
    methods mirror DirectPosterior's (sample, sample_batched, log_prob, log_prob_batched); each draw
    picks its member at random (torch's generator: reproducible under torch.manual_seed), and draws are
    returned in random order so that the first draw of a batch is a draw of the mixture.
    """

    def __init__(self, posteriors: list[Any]):
        self.posteriors = list(posteriors)
        self.prior = self.posteriors[0].prior

    def _mix(self, n: int, draw: Callable[[Any, int], torch.Tensor]) -> torch.Tensor:
        counts = torch.bincount(torch.randint(len(self.posteriors), (n,)), minlength=len(self.posteriors))
        parts = [draw(p, int(c)) for p, c in zip(self.posteriors, counts) if c > 0]
        out = torch.cat(parts, dim=0)
        return out[torch.randperm(n)]

    def sample(self, sample_shape: Any = (), x: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        out = self._mix(shape.numel(), lambda p, c: p.sample((c,), x=x, **kwargs))
        return out.reshape(*shape, out.shape[-1])

    def sample_batched(self, sample_shape: Any, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        out = self._mix(shape.numel(), lambda p, c: p.sample_batched((c,), x=x, **kwargs))
        return out.reshape(*shape, *out.shape[1:])

    def _mean_density(self, lps: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.stack(lps), dim=0) - np.log(len(lps))

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        return self._mean_density([p.log_prob(theta, x=x, **kwargs) for p in self.posteriors])

    def log_prob_batched(self, theta: torch.Tensor, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return self._mean_density([p.log_prob_batched(theta, x=x, **kwargs) for p in self.posteriors])


def _builder_spec(settings: dict) -> dict:
    robust = settings["z_score_x"] == "robust"
    kwargs = {
        "z_score_theta": settings["z_score_theta"],
        "z_score_x": "none" if robust else settings["z_score_x"],
        "hidden_features": settings["hidden_features"],
        "num_transforms": settings["num_transforms"],
        "num_bins": settings["num_bins"],
        "num_components": settings["num_components"],
    }
    return {"model": settings["density_estimator"], "kwargs": kwargs, "robust_x": robust}


def _build_fn(spec: dict) -> Callable:
    """sbi's density-estimator builder (theta, x) -> net; with robust_x its embedding is RobustFeatures
    fitted to the x it is built on (the training rows; on reload the saved buffers replace them)."""
    from sbi.neural_nets import posterior_nn

    if not spec.get("robust_x"):
        return posterior_nn(model=spec["model"], **spec["kwargs"])

    def build(theta: torch.Tensor, x: torch.Tensor) -> Any:
        return posterior_nn(model=spec["model"], embedding_net=RobustFeatures.fit(x), **spec["kwargs"])(theta, x)

    return build


def _versions() -> dict:
    import sbi

    from tvbinv_hpc import __version__

    return {"sbi": sbi.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "tvbinv_hpc": __version__}


def _jsonable(obj: Any) -> Any:
    """Round-trip through JSON so meta holds only plain types (weights_only loading accepts them)."""
    return json.loads(json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def _check_arrays(theta: np.ndarray, x: np.ndarray, param_names: list, feature_names: list) -> None:
    if theta.ndim != 2 or x.ndim != 2 or len(theta) != len(x):
        raise InputError(f"theta and x must be 2-d with the same rows, got {theta.shape} and {x.shape}")
    if theta.shape[1] != len(param_names):
        raise InputError(f"theta has {theta.shape[1]} columns but {len(param_names)} parameter names")
    if x.shape[1] != len(feature_names):
        raise InputError(f"x has {x.shape[1]} columns but {len(feature_names)} feature names")


def _fit_member(theta: np.ndarray, x: np.ndarray, prior: Any, settings: dict, spec: dict, seed: int,
                tracker: Any) -> tuple[Any, dict]:
    """One flow trained with ``seed`` (initialisation, validation split, batches): (posterior, summary)."""
    from sbi.inference import NPE

    torch.manual_seed(seed)
    device = settings["device"]
    inference = NPE(prior=_prior_on(prior, device), density_estimator=_build_fn(spec), device=device,
                    tracker=tracker, show_progress_bars=False)
    # sbi checks the raw x for its own z-scoring, which robust_x replaces; and it prints "converged
    # after N epochs" with a carriage return into the middle of our log lines (we log the epochs later)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        if spec["robust_x"]:
            warnings.filterwarnings("ignore", message="Data has (extreme outliers|constant values)")
        inference.append_simulations(torch.from_numpy(theta), torch.from_numpy(x))
        estimator = inference.train(
            training_batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            validation_fraction=settings["validation_fraction"],
            stop_after_epochs=settings["stop_after_epochs"],
            max_num_epochs=settings["max_epochs"] or 2**31 - 1,
            clip_max_norm=settings["clip_max_norm"] or None,
            show_train_summary=False,
        )
    estimator.eval()
    s = inference.summary
    if device == "cpu":
        posterior = inference.build_posterior(estimator)
    else:  # saving, sampling and diagnostics run on the CPU, whatever trained the flow
        from sbi.inference.posteriors import DirectPosterior

        posterior = DirectPosterior(posterior_estimator=estimator.to("cpu"), prior=prior, device="cpu")
    return posterior, {
        "epochs": int(s["epochs_trained"][-1]),
        "best_validation_loss": float(s["best_validation_loss"][-1]),
        "training_loss": [float(v) for v in s["training_loss"]],
        "validation_loss": [float(v) for v in s["validation_loss"]],
        "n_train": int(len(inference.train_indices)),
        "n_validation": int(len(inference.val_indices)),
    }


def _prior_on(prior: Any, device: str) -> Any:
    """sbi requires the prior on the training device."""
    if device == "cpu":
        return prior
    if not hasattr(prior, "to"):
        raise TvbinvError(f"train.device = {device!r}: the prior ({type(prior).__name__}) cannot be moved to "
                          "the GPU; build it on that device or train on the cpu")
    return prior.to(device)


def train_posterior(theta: np.ndarray, x: np.ndarray, prior: Any, settings: dict, *,
                    param_names: list[str], feature_names: list[str], prior_spec: dict, meta: dict,
                    log: Callable[[str], Any] = print,
                    tensorboard_dir: str | Path | None = None) -> TrainedPosterior:
    """Train NPE on the rows whose theta and x are finite (the others are counted and logged).

    Parameters
    ----------
    theta, x
        ``(n, d)`` parameters and ``(n, k)`` summary statistics, row-aligned (float32 rows are used without
        a copy).
    prior
        The torch prior (``Prior.torch()``); posterior samples outside its support are rejected.
    settings
        The [train] section; a plain dict is validated here, a ``TrainSettings`` is used as it is.
        With ``ensemble`` = K > 1, K flows are trained (seeds seed .. seed + K - 1) and the posterior is
        their equal-weight mixture, a :class:`FlowEnsemble`.
    param_names, feature_names, prior_spec
        Stored with the weights, so that a loaded posterior names its columns and rebuilds its prior.
    meta
        Copied into the saved file; its ``config_hash`` is what ``is_trained`` compares, ``seed`` is used
        when ``settings["seed"]`` is None and ``ranks_on_node`` when ``threads`` is 0.
    log
        Where progress lines go.
    tensorboard_dir
        TensorBoard logs (default ./tensorboard), written only when ``settings["tensorboard"]``.

    Returns
    -------
    TrainedPosterior
        The posterior, the training summary (epochs, losses, excluded rows) and the meta to save.

    Raises
    ------
    InputError
        theta and x of mismatched shapes or names.
    TvbinvError
        Fewer valid rows than ``min_train_rows(d)``.
    """
    settings = validate_train(settings)   # a no-op for the config's section, checked when it was read
    theta32, x32, excluded = _valid_rows(theta, x, param_names, feature_names, log)
    seed = settings["seed"] if settings["seed"] is not None else int(meta.get("seed", 0))
    threads = resolve_threads(settings["threads"], int(meta.get("ranks_on_node", 1)))
    spec = _builder_spec(settings)
    tracker = _tracker(settings["tensorboard"], tensorboard_dir)
    t0 = time.perf_counter()
    members = _fit_members(theta32, x32, prior, settings, spec, seed, threads, tracker)
    seconds = time.perf_counter() - t0
    posterior = members[0][0] if len(members) == 1 else FlowEnsemble([m[0] for m in members])
    summary = _training_summary(members, excluded, seconds, threads, seed)
    what = spec["model"] if len(members) == 1 else f"ensemble of {len(members)} {spec['model']} flows"
    log(f"train: {what} trained {summary['epochs']} epochs in {seconds:.1f} s on {threads} "
        f"thread(s), best validation loss {summary['best_validation_loss']:.4f}")
    full_meta = _jsonable({
        **meta,
        "param_names": list(param_names),
        "feature_names": list(feature_names),
        "prior_spec": prior_spec,
        "config_hash": meta.get("config_hash"),
        "builder": spec,
        "train_settings": {**settings, "seed": seed},   # the seed used, whoever chose it
        "theta_dim": theta32.shape[1],
        "x_dim": x32.shape[1],
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    return TrainedPosterior(posterior=posterior, summary=summary, meta=full_meta)


def _valid_rows(theta: np.ndarray, x: np.ndarray, param_names: list[str], feature_names: list[str],
                log: Callable[[str], Any]) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """The rows to train on as float32 (finite theta and x), the excluded counts; raises when too few."""
    # sbi trains in float32: float32 rows (store.read_rows(dtype=np.float32)) are used without a copy, so
    # 10^6 rows x 100 features cost 400 MB once, not three times that.
    theta32, x32 = np.asarray(theta, dtype=np.float32), np.asarray(x, dtype=np.float32)
    _check_arrays(theta32, x32, param_names, feature_names)
    # sbi silently drops non-finite x: decide (and count) here instead.
    bad_x = ~np.isfinite(x32).all(axis=1)
    bad_theta = ~np.isfinite(theta32).all(axis=1) & ~bad_x
    ok = ~(bad_x | bad_theta)
    n_rows, n_ok, d = len(x32), int(ok.sum()), theta32.shape[1]
    if n_ok < n_rows:  # the valid rows, once; all valid (the usual case): the arrays themselves
        theta32, x32 = theta32[ok], x32[ok]
    need = min_train_rows(d)
    log(f"train: {n_rows} rows, {n_ok} valid, {int(bad_x.sum())} excluded for NaN/Inf x"
        + (f", {int(bad_theta.sum())} for NaN/Inf theta" if bad_theta.any() else ""))
    if n_ok < need:
        raise TvbinvError(
            f"too few valid simulations to train: {n_ok} of {n_rows} rows have finite x and theta "
            f"({int((~ok).sum())} excluded); at least {need} are needed for {d} parameters "
            f"(max(50, 5*(d+1)))")
    flat = np.ptp(x32, axis=0) == 0
    if flat.any():
        log("train: warning: constant features (carry no information): "
            + ", ".join(np.asarray(feature_names)[flat][:10]))
    return theta32, x32, {"n_rows": n_rows, "n_excluded": int((~ok).sum()), "n_excluded_x": int(bad_x.sum()),
                          "n_excluded_theta": int(bad_theta.sum())}


def _tracker(tensorboard: bool, tensorboard_dir: str | Path | None) -> Any:
    """sbi's tracker: TensorBoard when asked for, else one that records nothing."""
    if not tensorboard:
        return NullTracker()
    from sbi.utils.tracking import TensorBoardTracker
    from torch.utils.tensorboard.writer import SummaryWriter

    tb_dir = Path(tensorboard_dir) if tensorboard_dir is not None else Path.cwd() / "tensorboard"
    return TensorBoardTracker(SummaryWriter(str(tb_dir)))


def _fit_members(theta: np.ndarray, x: np.ndarray, prior: Any, settings: dict, spec: dict, seed: int,
                 threads: int, tracker: Any) -> list[tuple[Any, dict]]:
    """Every member of the ensemble (one flow without one) on ``threads`` torch threads, restored after."""
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return [_fit_member(theta, x, prior, settings, spec, seed + j, tracker) for j in range(settings["ensemble"])]
    finally:
        torch.set_num_threads(prev_threads)
        tracker.flush()


def _training_summary(members: list[tuple[Any, dict]], excluded: dict[str, int], seconds: float, threads: int,
                      seed: int) -> dict[str, Any]:
    """The first member's curves and counts; for an ensemble the totals and each member's end point."""
    summary = {**members[0][1], **excluded, "seconds": round(seconds, 3), "threads": threads, "seed": seed}
    if len(members) > 1:
        # the loss curves stay the first member's; the totals and each member's end point are kept
        summary["ensemble"] = len(members)
        summary["epochs"] = sum(m[1]["epochs"] for m in members)
        summary["best_validation_loss"] = float(np.mean([m[1]["best_validation_loss"] for m in members]))
        summary["members"] = [{"seed": seed + j, "epochs": m[1]["epochs"],
                               "best_validation_loss": m[1]["best_validation_loss"]}
                              for j, m in enumerate(members)]
    return summary
