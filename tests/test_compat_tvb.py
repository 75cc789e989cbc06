"""Templates the numba engine cannot simulate run through TVB's own simulator (sim.tvb_engine), through the
same run_local / run_mpi, store, restart and inference: ReducedWongWang on a 6-region toy connectome, a
tiny budget (1 s of BOLD at TR 50 ms, dt 2 ms: ~0.3 s per simulation)."""
from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tvbinv_support import assert_same_store

from tvbinv_hpc.errors import TvbinvError
from tvbinv_hpc.parallel import store

RUN = {"batch_size": 3, "ms_per_unit": 1.0, "bold_tr": 50.0, "progress": "none"}
N_SIMS = 12


def template(n: int = 6, length: float = 1000.0):
    """ReducedWongWang (time in ms, S in [0, 1]) + Linear + HeunStochastic on a toy symmetric connectome."""
    warnings.filterwarnings("ignore")
    logging.getLogger("tvb").setLevel(logging.ERROR)
    from tvb.simulator.lab import connectivity, coupling, integrators, models, monitors, noise, simulator

    rng = np.random.default_rng(3)
    w = rng.uniform(0, 1, (n, n))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    tl = rng.uniform(10, 60, (n, n))
    tl = (tl + tl.T) / 2
    np.fill_diagonal(tl, 0.0)
    conn = connectivity.Connectivity(weights=w, tract_lengths=tl, centres=np.zeros((n, 3)), speed=np.r_[3.0],
                                     region_labels=np.array([f"r{i}" for i in range(n)]))
    return simulator.Simulator(
        model=models.ReducedWongWang(), connectivity=conn, coupling=coupling.Linear(a=np.r_[0.2]),
        integrator=integrators.HeunStochastic(dt=2.0, noise=noise.Additive(nsig=np.r_[1e-3])),
        monitors=[monitors.TemporalAverage(period=10.0)], simulation_length=length)


def build(n: int = N_SIMS, seed: int = 42):
    """(sbi_model, seq, metrics) shared by the in-process tests and the mpiexec script."""
    from tvbinv_hpc import BoldFCDForSBI, Metric, PytorchPrior, sbiModel

    prior = PytorchPrior(["coupling.a", "model.w"],
                         torch.distributions.Uniform(torch.tensor([0.0, 0.4]), torch.tensor([1.0, 0.9])))
    model = sbiModel(template(), prior)
    return model, model.generate_sim_seq(n, seed=seed), [BoldFCDForSBI(win_len=5), Metric("fc_stats")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from tvbinv_hpc import run_local

    d = tmp_path_factory.mktemp("compat_tvb")
    model, seq, metrics = build()
    out = run_local(seq, metrics, filename=d / "ref.h5", save_bold=True, **RUN)
    assert out.pending == 0 and out.rows_done == len(seq)
    return out.path, model, seq, metrics


def test_store_names_the_engine_and_rows_equal_the_engine(reference):
    from tvbinv_hpc.sim.tvb_engine import TVBEngine

    path, _, seq, _ = reference
    view = store.read_header(path)["store_view"]
    assert '"simulator":"tvb"' in view.replace(" ", "") and "ReducedWongWang" in view
    assert '"model.J_N"' in view and '"bold_input":"S"' in view.replace(" ", "")
    assert store.sessions(path)[-1]["threads"] == [1]
    engine = TVBEngine(seq.template, seed=seq.seed, ms_per_unit=1.0, bold_tr=50.0)
    res = engine.simulate(seq.overrides([2, 5]), np.array([2, 5]))
    with h5py.File(path, "r") as f:
        assert (f["status"][[2, 5]] == 1).all() and f["bold"][[2, 5]].tobytes() == res.bold.tobytes()
        assert (f["status"][...] == 1).sum() >= len(seq) - 2


def test_batch_size_and_restart_do_not_change_a_bit(reference, tmp_path):
    from tvbinv_hpc import run_local

    path, _, seq, metrics = reference
    one = run_local(seq, metrics, filename=tmp_path / "b1.h5", save_bold=True, **{**RUN, "batch_size": 1})
    assert_same_store(path, one.path)
    copy = tmp_path / "resumed.h5"
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as f:  # as if killed before these rows were written
        for i in (0, 4, 11):
            f["status"][i] = store.PENDING
            f["x"][i] = np.nan
            f["bold"][i] = np.nan
    out = run_local(seq, metrics, filename=copy, save_bold=True, **RUN)
    assert out.rows_done == 3 and out.pending == 0
    assert_same_store(path, copy)
    with h5py.File(path, "r") as a, h5py.File(copy, "r") as b:
        assert a["bold"][...].tobytes() == b["bold"][...].tobytes()


def test_engine_switch_and_changed_template_are_refused_on_resume(reference):
    from test_compat import build as mpr_build

    from tvbinv_hpc import run_local

    path, model, seq, metrics = reference
    other = template()
    other.model.tau_s = np.r_[90.0]
    changed = model.prior.generate_sim_seq(other, len(seq), seed=seq.seed)
    with pytest.raises(TvbinvError, match=r"changed: .*simulator\.model\.tau_s"):
        run_local(changed, metrics, filename=path, save_bold=True, **RUN)
    _, mseq, _ = mpr_build(n=len(seq))   # a store of TVB's simulator is not resumed by the numba engine
    with pytest.raises(TvbinvError, match=r"made by a different run; changed: .*engine\.simulator"):
        run_local(mseq, metrics, filename=path, save_bold=True, **{**RUN, "ms_per_unit": 10.0})


def test_log_names_the_engine_and_its_speed(caplog, tmp_path):
    from tvbinv_hpc import run_local

    _, seq, metrics = build(n=2)
    with caplog.at_level(logging.WARNING, logger="tvbinv_hpc"):
        run_local(seq, metrics, filename=tmp_path / "log.h5", **RUN)
    msg = " ".join(r.getMessage() for r in caplog.records)
    assert "ReducedWongWang is simulated with TVB's own simulator" in msg and "s per simulation" in msg
    assert "'model' is not supported" in msg and "temporal average of S" in msg


def test_prior_names_are_checked_against_the_template():
    from tvbinv_hpc import PytorchPrior, sbiModel

    with pytest.raises(TvbinvError, match=r"'model.eta' is not a numeric attribute.*ReducedWongWang.*J_N"):
        sbiModel(template(), PytorchPrior(["model.eta"], torch.distributions.Uniform(0.0, 1.0)))
    with pytest.raises(TvbinvError, match="not simulator attributes"):
        PytorchPrior(["connectivity.weights"], torch.distributions.Uniform(0.0, 1.0))
    with pytest.raises(TvbinvError, match="takes 1 or 6"):   # one state variable: nsig has 1 or N columns
        sbiModel(template(), PytorchPrior(["integrator.noise.nsig"],
                                          torch.distributions.Uniform(torch.zeros(2), torch.ones(2))))


def test_end_to_end_inference(tmp_path):
    """sbiModel -> generate_sim_seq -> run_local -> load_summary_stats -> train -> sample (the fewest rows
    training accepts, and a few to spare)."""
    from tvbinv_hpc import EstimatorSBI, run_local

    model, seq, metrics = build(n=56)
    out = run_local(seq, metrics, filename=tmp_path / "e2e.h5", **{**RUN, "batch_size": 8})
    est = EstimatorSBI(stats_model=model, seq=seq, metrics=metrics,
                       train_settings={"max_epochs": 5, "hidden_features": 8, "num_transforms": 1})
    summ = est.load_summary_stats(out)
    assert summ.x.shape[0] == summ.counts["ok"] >= 50
    samples = est.train(summ).sample((20,), summ.x[0], seed=0)
    assert samples.shape == (20, 2) and torch.isfinite(samples).all()


MPI_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_compat_tvb import RUN, build
from tvbinv_hpc import run_mpi
_, seq, metrics = build()
out = run_mpi(seq, metrics, filename=sys.argv[1] + "/mpi.h5", save_bold=True, **RUN)
print("rows", out.rows_done, "pending", out.pending)
"""


@pytest.mark.mpi
def test_run_mpi_two_ranks_equals_run_local(reference, run_mpi, tmp_path):
    script = tmp_path / "compat_tvb_mpi.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    res = run_mpi(2, [str(script), str(tmp_path)], timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pending 0" in res.stdout
    assert_same_store(reference[0], tmp_path / "mpi.h5")
    with h5py.File(reference[0], "r") as a, h5py.File(tmp_path / "mpi.h5", "r") as b:
        assert a["bold"][...].tobytes() == b["bold"][...].tobytes()
    assert store.sessions(tmp_path / "mpi.h5")[-1]["ranks"] == 2
