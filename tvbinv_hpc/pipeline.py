"""The phases of a run — simulate, train, diagnose — and ``run`` chaining them, resumable at every phase.

Each phase validates its inputs on rank 0 and broadcasts the verdict (``mpi.decide``) before any collective
work; rank 0 trains and diagnoses while the other ranks sleep, and they join again for the posterior
predictive simulations, which go through the same driver and store code as the main simulations.
"""
from __future__ import annotations

import json
import logging
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from tvbinv_hpc import config as config_mod
from tvbinv_hpc.errors import ConfigError, TvbinvError
from tvbinv_hpc.inference.observation import (  # noqa: F401  (observe, synthetic_theta: re-exported, the phase API tests and scripts use)
    Observation,
    cohort_sources,
    fcd_values,
    fcd_window,
    is_cohort,
    observation_configured,
    observe,
    observe_all,
    synthetic_theta,
)
from tvbinv_hpc.inference.ppc import PPC_OFFSET, ppc_service
from tvbinv_hpc.parallel import driver, job, mpi, store
from tvbinv_hpc.parallel.job import Job

log = logging.getLogger("tvbinv_hpc")
_fcd_values = fcd_values   # the name tests and older callers use


def quickstart_path() -> Path:
    return Path(str(resources.files("tvbinv_hpc") / "configs" / "quickstart.toml"))


def load_config(arg: str) -> dict[str, Any]:
    """'quickstart' -> the built-in example (outputs under the current folder), else a TOML file."""
    if arg == "quickstart":
        raw = config_mod.tomllib.loads(quickstart_path().read_text())
        return config_mod.validate(raw, base_dir=Path.cwd())
    return config_mod.load(arg)


def build_setup(cfg: dict[str, Any]) -> Job:
    """The Job of a validated config: engine, features (whose defaults are written back into ``cfg``) and
    prior. Raises ConfigError when the simulations are too short for the features."""
    from tvbinv_hpc.prior import Prior
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.stats import DEFAULT_FEATURES, build_features

    engine = Engine.from_config(cfg, seed=cfg["run"]["seed"])
    engine.threads = cfg["budget"]["threads"]
    specs = cfg["stats"]["features"] if cfg["stats"]["features"] is not None else DEFAULT_FEATURES
    try:
        st = cfg["stats"]
        features = build_features(specs, n_regions=engine.n_regions, tr_ms=engine.tr_ms, burn_in=st["burn_in"],
                                  regions=engine.connectome.regions,
                                  preprocess={k: st[k] for k in ("detrend", "bandpass", "gsr", "zscore")})
    except ConfigError as exc:  # the stats package names keys relative to the feature list
        raise ConfigError(f"stats.{exc.key}", str(exc).split(": ", 1)[-1]) from None
    if cfg["stats"]["features"] is None:
        cfg["stats"]["features"] = features.describe()
    if engine.n_bold < features.min_samples:
        raise ConfigError("stats.features", f"the features need at least {features.min_samples} BOLD samples "
                          f"(burn-in and window lengths) but each simulation gives {engine.n_bold} "
                          "(simulation.length, bold.tr, bold.transient)")
    for msg in features.warnings(engine.n_bold):
        log.warning("stats.features: %s", msg)
    prior = Prior(cfg["prior"], engine.n_regions)
    return Job(cfg, engine, features, prior, cfg["budget"]["batch_size"], seed=int(cfg["run"]["seed"]),
               output=Path(cfg["run"]["output"]))


def prepare(config_arg: str) -> Job:
    """Validate on rank 0 (config, connectome, features), broadcast the verdict, then build on every rank."""
    built: dict[str, Job] = {}

    def check() -> dict[str, Any]:
        s = build_setup(load_config(config_arg))
        built["setup"] = s
        if is_cohort(s.cfg):
            log.info("cohort: %d subjects (%s)", len(cohort_sources(s.cfg)),
                     ", ".join(n for n, _ in cohort_sources(s.cfg)))
        e = s.engine
        log.info("simulator: %s scheme, conduction speed %.3g m/s (delays up to %.0f ms), BOLD from %.1f s "
                 "(Balloon start %s)", e.scheme, e.speed_m_per_s, e.max_delay_ms, e.bold_transient_ms / 1000,
                 e.bold_start)
        log.info("connectome: %s", e.connectome.describe())
        f = s.features
        if f.hemispheres is not None:
            log.info("homotopic pairs: %d, from %s", f.hemispheres.left.size, f.hemispheres.how)
        log.info("BOLD preprocessing (observed and simulated alike): burn-in %d samples, then %s",
                 f.burn_in_samples, f.preprocess.describe())
        for w in e.physiology_warnings():   # legal but probably not meant: said once, before any compute
            log.warning("config: %s", w)
        return s.cfg

    cfg = mpi.decide(check)
    return built.get("setup") or build_setup(cfg)


def ensure_store(s: Job) -> Path:
    """Create the store (all theta drawn from (seed, i) now) or check that it belongs to this config."""
    path = Path(s.cfg["store"]["path"])
    chash, view = config_mod.config_hash(s.cfg), config_mod.store_view(s.cfg)

    def layout() -> store.Layout:
        n = s.cfg["budget"]["n_sims"]
        split = job.held_out_split(n, s.cfg["budget"]["test_fraction"])
        log.info("creating %s: %d rows (%d held out for diagnostics), %d parameters, %d features",
                 path, n, int(np.sum(split == store.TEST)), s.prior.dim, len(s.features.names))
        return s.layout(lambda a, b: s.prior.sample(np.arange(a, b), s.seed), split,
                        save_bold=s.cfg["store"]["save_bold"], config_text=config_mod.dumps(s.cfg),
                        config_hash=chash, store_view=view)

    mpi.decide(lambda: job.ensure_store(path, layout, config_hash=chash, store_view=view))
    return path


def simulate(args: Any) -> int:
    """The simulate phase alone. A configured observation (``[observation]`` not at its defaults), which
    diagnose will need, is checked first as in ``run``: a simulate-only job on many nodes must not spend
    its allocation before a bad observation shows. Without one, simulate needs none."""
    s = prepare(args.config)
    if observation_configured(s.cfg):
        mpi.decide(lambda: observe_all(s))
    return _simulate(s)


def _simulate(s: Job) -> int:
    path = ensure_store(s)
    r = s.cfg["run"]
    out = driver.run_rows(s, path, progress=r["progress"], interval=r["progress_interval"],
                          writer=s.cfg["store"]["writer"])
    if mpi.rank() == 0:
        log.info("simulate: %d rows this session in %.1f s; store counts %s", out.rows_done, out.wall, out.counts)
    if out.pending:
        if out.stopped:
            log.warning("stopped by signal with %d rows pending: exit %d (requeue and run again to finish)",
                        out.pending, driver.REQUEUE_EXIT)
            return driver.REQUEUE_EXIT
        raise TvbinvError(f"{out.pending} rows still pending after the session")  # pragma: no cover
    return 0


def posterior_path(s: Job) -> Path:
    return s.output / "posterior.pt"


def _train(s: Job, force: bool, obs: list[Observation] | None = None) -> None:
    """Train on rank 0. ``obs``: the observations when the caller has them (``run``); otherwise configured
    ones are computed here, once, for the prior predictive check before training (each cohort subject)."""
    from tvbinv_hpc import inference

    path, chash = posterior_path(s), config_mod.config_hash(s.cfg) + "-" + _train_hash(s)

    def task() -> None:
        if not force and inference.is_trained(path, chash):
            log.info("train: %s is up to date, skipping (use --force to retrain)", path)
            return
        # the ok train rows only, as float32 (what sbi trains on): no second copy of a 10^6-row split
        rows = store.read_rows(s.cfg["store"]["path"], split=store.TRAIN, ok_only=True, dtype=np.float32)
        status = rows["status"][rows["split"] == store.TRAIN]
        if (status == store.PENDING).any():
            raise TvbinvError(f"{int((status == store.PENDING).sum())} training rows are still pending: "
                              "run `tvbinv-hpc simulate` first")
        n_ok = rows["index"].size
        log.info("train: %d train rows, %d ok, %d diverged, %d with non-finite features (excluded)",
                 status.size, n_ok, (status == store.DIVERGED).sum(), (status == store.ERROR).sum())
        observed = obs if obs is not None else observe_all(s) if observation_configured(s.cfg) else []
        for o in observed if n_ok else []:
            _prior_check(s, rows["x"], o.x, o.name)
        settings = s.cfg["train"]   # validated with the config: passed on as it is
        seed = settings["seed"] if settings["seed"] is not None else s.seed
        trained = inference.train_posterior(
            rows["theta"], rows["x"], s.prior.torch(), settings, param_names=s.prior.names,
            feature_names=s.features.names, prior_spec=s.prior.to_spec(),
            meta={"config_hash": chash, "store": str(s.cfg["store"]["path"]), "seed": seed,
                  "ranks_on_node": 1},  # the other ranks sleep while rank 0 trains: it owns the node
            log=log.info, tensorboard_dir=s.output / "tensorboard" if settings["tensorboard"] else None)
        inference.save_posterior(path, trained)
        log.info("train: saved %s", path)

    _lead_on_node(task, {})


def _train_hash(s: Job) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(s.cfg["train"], sort_keys=True, default=str).encode()).hexdigest()[:8]


def train(args: Any) -> int:
    s = prepare(args.config)
    _train(s, args.force)
    return 0


def _prior_check(s: Job, x_train: np.ndarray, x_obs: np.ndarray, name: str = "") -> dict[str, Any]:
    """Rank 0, before training: do the simulations reach the observation? Loud when they do not."""
    from tvbinv_hpc.inference.priorcheck import prior_predictive_check

    check = prior_predictive_check(x_train, x_obs, s.features.names)
    who = f" ({name})" if name else ""
    if check["verdict"] == "inside":
        log.info("prior predictive check%s: %s", who, check["message"])
    else:
        log.warning("PRIOR PREDICTIVE CHECK%s %s: %s", who, check["verdict"].upper(), check["message"])
    return check


def _diagnose(s: Job, obs: list[Observation] | None, force: bool) -> dict[str, Any] | None:
    outdir = s.output / "diagnostics"
    services = ppc_service(s)
    key = {"posterior": config_mod.config_hash(s.cfg) + "-" + _train_hash(s),
           "diagnose": s.cfg["diagnose"], "observation": s.cfg["observation"]}

    def task() -> dict[str, Any] | None:
        done = outdir / "summary.json"
        if not force and done.exists() and json.loads(done.read_text()).get("run_key") == key:
            log.info("diagnose: %s is up to date, skipping (use --force to redo)", outdir)
            return None
        observed = obs or observe_all(s)
        summary = (_diagnose_cohort(s, observed, outdir, services) if is_cohort(s.cfg)
                   else _diagnose_one(s, observed[0], outdir, services))
        summary["run_key"] = key
        done.write_text(json.dumps(summary, indent=2, default=_json_default))
        (outdir / "config.toml").write_text(config_mod.dumps(s.cfg))
        log.info("diagnose: wrote %s", outdir)
        return summary

    return _lead_on_node(task, services)


def _lead_on_node(task: Any, services: dict[str, Any]) -> Any:
    """``mpi.lead`` with rank 0 allowed on every core the job's ranks own on its node (they sleep while it
    trains or samples; torch's ``threads = 0`` then counts those cores)."""
    allowed = mpi.node_cpus()

    def on_node() -> Any:
        with mpi.cpus(allowed):
            return task()

    return mpi.lead(on_node, services)


def _diagnose_inputs(s: Job) -> dict[str, Any]:
    """What every observation's diagnosis shares: the posterior, the held-out rows, the prior, health."""
    from tvbinv_hpc import inference

    trained = inference.load_posterior(posterior_path(s), s.prior.torch(), log=log.info)
    test = store.read_rows(s.cfg["store"]["path"], split=store.TEST, ok_only=True)
    rows = store.read_rows(s.cfg["store"]["path"], split=None, ok_only=False)
    trained_on = (rows["split"] == store.TRAIN) & (rows["status"] == store.OK)
    rng_index = np.arange(PPC_OFFSET * 2, PPC_OFFSET * 2 + 4000)
    return {"trained": trained, "theta_test": test["theta"], "x_test": test["x"],
            "prior_samples": s.prior.sample(rng_index, s.seed), "prior_std": s.prior.mean_std()[1],
            "health": _health(s, rows), "x_prior": rows["x"][trained_on]}


def _diagnose_one(s: Job, o: Observation, outdir: Path, services: dict[str, Any],
                  shared: dict[str, Any] | None = None, calibration: dict | None = None) -> dict[str, Any]:
    from tvbinv_hpc import inference

    shared = shared or _diagnose_inputs(s)
    fcd_obs = None if o.bold is None else fcd_values(s, o.bold[None])
    ppc = (lambda th: mpi.call_all(services, "ppc", th, o.name)) if s.cfg["diagnose"]["ppc_draws"] else None
    summary = inference.diagnose(
        shared["trained"], x_obs=o.x, theta_true=o.theta_true, theta_test=shared["theta_test"],
        x_test=shared["x_test"], prior_samples=shared["prior_samples"], prior_std=shared["prior_std"],
        settings=s.cfg["diagnose"], outdir=outdir, fc_obs=o.fc, seed=s.seed, log=log.info,
        health=shared["health"], ppc_simulate=ppc, x_prior=shared["x_prior"], sc=s.engine.connectome.baseline_sc,
        fcd_obs=fcd_obs[0] if fcd_obs else None, fcd_window=fcd_window(s), calibration=calibration,
        title=o.name, notes=o.notes)
    summary["observation_source"] = o.source
    return summary


def _diagnose_cohort(s: Job, observed: list[Observation], outdir: Path,
                     services: dict[str, Any]) -> dict[str, Any]:
    """Calibrate once, then each subject in its own folder, then the cohort table."""
    from tvbinv_hpc import inference
    from tvbinv_hpc.inference.cohort import write_cohort

    shared = _diagnose_inputs(s)
    calibration = inference.calibrate(
        shared["trained"], theta_test=shared["theta_test"], x_test=shared["x_test"],
        prior_samples=shared["prior_samples"], prior_std=shared["prior_std"], settings=s.cfg["diagnose"],
        seed=s.seed, log=log.info)
    entries = []
    for i, o in enumerate(observed):
        log.info("diagnose: subject %d of %d: %s (%s)", i + 1, len(observed), o.name, o.source)
        summ = _diagnose_one(s, o, outdir / "subjects" / o.name, services, shared, calibration)
        (outdir / "subjects" / o.name / "summary.json").write_text(
            json.dumps(summ, indent=2, default=_json_default))
        entries.append((o.name, o.source, summ))
    outdir.mkdir(parents=True, exist_ok=True)
    return write_cohort(outdir, entries, list(s.prior.names),
                        {"config_hash": config_mod.config_hash(s.cfg)})


def _health(s: Job, rows: dict[str, Any] | None = None) -> dict[str, Any]:
    """Divergence per prior region and start-up-artefact counts of the store's simulations (``rows``: all
    of them, ``store.read_rows(split=None, ok_only=False)``, when the caller has read them already)."""
    from tvbinv_hpc.inference.health import simulation_health

    path = s.cfg["store"]["path"]
    rows = rows if rows is not None else store.read_rows(path, split=None, ok_only=False)
    return simulation_health(rows["theta"], rows["status"], s.prior.names, diverged_code=store.DIVERGED,
                             done_codes=(store.OK, store.DIVERGED, store.ERROR), sessions=store.sessions(path))


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def diagnose(args: Any) -> int:
    s = prepare(args.config)
    if not mpi.decide(lambda: posterior_path(s).exists()):
        raise TvbinvError(f"no trained posterior at {posterior_path(s)}: run `tvbinv-hpc train` first")
    _diagnose(s, None, args.force)
    return 0


def run(args: Any) -> int:
    """simulate -> train -> diagnose; the observation is checked before any simulation starts."""
    s = prepare(args.config or "quickstart")
    obs = mpi.decide(lambda: observe_all(s))
    code = _simulate(s)
    if code:
        return code
    _train(s, args.force, obs)  # the observation computed above: not simulated again for the prior check
    if mpi.agree(mpi.stop_request().received is not None):
        log.warning("stop signal received during training: exit %d before diagnostics (requeue to finish)",
                    driver.REQUEUE_EXIT)
        return driver.REQUEUE_EXIT
    _diagnose(s, obs, args.force)
    if mpi.rank() == 0:
        report = s.output / "diagnostics" / "report.md"
        if report.exists():
            print(report.read_text(), flush=True)  # the posterior table, calibration and warnings
        log.info("run complete: outputs in %s (report: %s)", s.output, report)
    return 0


def write_example(path: str | Path, force: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not force:
        raise TvbinvError(f"{path} exists (use --force to overwrite)")
    shutil.copyfile(quickstart_path(), path)
    return path
