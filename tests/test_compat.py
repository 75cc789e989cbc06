"""The tvb-inversion style API: the README walkthrough as written, run_local against the engine, restart
and refusal, prior names and column mapping, metrics against FeatureSet, run_mpi under mpiexec."""
from __future__ import annotations

import re
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tvbinv_support import assert_same_store
from tvbinv_support import store_rows as rows

from tvbinv_hpc.errors import InputError, TvbinvError
from tvbinv_hpc.parallel import store
from tvbinv_hpc.stats.hemispheres import RegionInfo

HALVES = RegionInfo(stated="halves")   # index halves, as these synthetic regions are laid out

ROOT = Path(__file__).resolve().parents[1]
RUN = {"batch_size": 3, "ms_per_unit": 10.0, "bold_tr": 100.0, "progress": "none"}


def template(length: float = 200.0):
    """MPR on connectivity_76, 2 s of BOLD at TR 100 ms: small enough for tests."""
    warnings.filterwarnings("ignore")
    from tvb.simulator.lab import connectivity, coupling, integrators, models, monitors, noise, simulator

    conn = connectivity.Connectivity.from_file("connectivity_76.zip")
    conn.weights = conn.weights / np.abs(conn.weights).max()
    conn.speed = np.r_[3.0]
    return simulator.Simulator(
        model=models.MontbrioPazoRoxin(), connectivity=conn, coupling=coupling.Linear(a=np.r_[0.2]),
        integrator=integrators.HeunStochastic(dt=0.01, noise=noise.Additive(nsig=np.r_[0.035, 0.07])),
        monitors=[monitors.TemporalAverage(period=0.1)], simulation_length=length)


def build(n: int = 16, seed: int = 42):
    """(sbi_model, seq, metrics) shared by the in-process tests and the mpiexec script."""
    from tvbinv_hpc import BoldFCDForSBI, Metric, PytorchPrior, sbiModel

    prior = PytorchPrior(["coupling.a"], torch.distributions.Uniform(0.1, 0.3))
    model = sbiModel(template(), prior)
    return model, model.generate_sim_seq(n, seed=seed), [BoldFCDForSBI(win_len=5), Metric("fc_stats")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from tvbinv_hpc import run_local

    d = tmp_path_factory.mktemp("compat")
    model, seq, metrics = build()
    out = run_local(seq, metrics, filename=d / "ref.h5", save_bold=True, **RUN)
    assert out.pending == 0 and out.rows_done == len(seq)
    return out.path, model, seq, metrics


def test_walkthrough_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    text = readme.split("## Python API for tvb-inversion users", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md walkthrough block {i}", "exec"), ns)
    assert ns["result"].counts["pending"] == 0 and ns["result"].counts["ok"] >= 50
    samples = ns["posterior_samples"]
    assert samples.shape == (2000, 1) and ((samples >= 0.1) & (samples <= 0.3)).all()
    # x as (k,), (1, k), numpy or torch: the same draws for the same seed; a saved posterior samples alike
    post, obs = ns["posterior"], ns["obs_stats"]
    a = post.sample((50,), obs, seed=3)
    assert torch.equal(a, post.sample((50,), torch.as_tensor(obs[None]), seed=3))
    assert torch.equal(a, ns["again"].posterior.sample((50,), obs, seed=3))
    with pytest.raises(InputError, match="one observation"):
        post.sample((5,), np.vstack([obs, obs]))
    assert (tmp_path / "test_run" / "results.h5").is_file() and not (tmp_path / "sbi-logs").exists()


def test_run_local_equals_engine_and_features(reference):
    from tvbinv_hpc.sim import Engine
    from tvbinv_hpc.stats import build_features

    path, _, seq, metrics = reference
    engine = Engine.from_tvb(seq.template, seed=seq.seed, ms_per_unit=10.0, bold_tr=100.0)
    res = engine.simulate(seq.overrides(), np.arange(len(seq)))
    fs = build_features([m.spec for m in metrics], regions=HALVES, n_regions=76, tr_ms=100.0)
    r = rows(path)
    assert np.array_equal(r["theta"], seq.values)
    ok = res.status == 1
    assert np.array_equal(r["status"] == 1, ok) and ok.sum() >= len(seq) // 2
    np.testing.assert_array_equal(r["x"][ok], fs.compute(res.bold[ok]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["bold"][...][ok], res.bold[ok])


def test_restart_completes_pending_rows_identically(reference, tmp_path):
    from tvbinv_hpc import run_local

    path, _, seq, metrics = reference
    copy = tmp_path / "ref.h5"
    shutil.copyfile(path, copy)
    reset = [0, 4, 5, 11]
    with h5py.File(copy, "r+") as f:  # as if killed before these rows were written
        for i in reset:
            f["status"][i] = 0
            f["x"][i] = np.nan
            f["bold"][i] = np.nan
    out = run_local(seq, metrics, filename=copy, save_bold=True, **RUN)
    assert out.rows_done == len(reset) and out.pending == 0
    assert_same_store(path, copy)
    hook = sys.excepthook
    again = run_local(seq, metrics, filename=copy, save_bold=True, **RUN)
    assert again.rows_done == 0 and len(store.sessions(copy)) == 3
    assert sys.excepthook is hook  # a notebook keeps its own hook (mpi installs an abort hook)


def test_n_jobs_are_threads_and_change_nothing(reference, tmp_path, monkeypatch):
    """joblib's n_jobs maps onto engine threads (default and -1: every local core); the rows stay the same."""
    from tvbinv_hpc import run_local
    from tvbinv_hpc.parallel import mpi

    path, _, seq, metrics = reference
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    for n_jobs, want in ((None, mpi.available_cores()), (3, 3), (-1, mpi.available_cores())):
        out = run_local(seq, metrics, filename=tmp_path / f"jobs{n_jobs}.h5", save_bold=True,
                        n_jobs=n_jobs, **RUN)
        assert store.sessions(out.path)[-1]["threads"] == [want]
        assert_same_store(path, out.path)
    with pytest.raises(TvbinvError, match="n_jobs"):
        run_local(seq, metrics, filename=tmp_path / "bad.h5", n_jobs=0, **RUN)


def test_mismatched_restart_and_foreign_file_are_refused(reference, tmp_path):
    from tvbinv_hpc import BoldFCDForSBI, run_local

    path, model, seq, metrics = reference
    kw = dict(filename=path, save_bold=True, **RUN)
    with pytest.raises(TvbinvError, match=r"changed: .*seq\.theta_sha256"):
        run_local(model.generate_sim_seq(len(seq), seed=7), metrics, **kw)
    with pytest.raises(TvbinvError, match=r"changed: .*metrics"):
        run_local(seq, [BoldFCDForSBI(win_len=6)], **kw)
    with pytest.raises(TvbinvError, match=r"changed: .*engine\.bold_transient"):
        run_local(seq, metrics, **{**kw, "bold_transient": 100.0})
    (tmp_path / "notes.h5").write_text("not a store")
    with pytest.raises(InputError, match="refusing"):
        run_local(seq, metrics, filename=tmp_path / "notes.h5", **RUN)
    with pytest.raises(TvbinvError, match="bold_tr"):
        run_local(seq, metrics, filename=tmp_path / "x.h5", **{**RUN, "bold_tr": 150.5})
    with pytest.raises(TvbinvError, match="BOLD samples"):
        run_local(seq, [BoldFCDForSBI(win_len=40)], filename=tmp_path / "y.h5", **RUN)
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_estimator_checks_store_against_seq_and_metrics(reference):
    from tvbinv_hpc import EstimatorSBI, Metric

    path, model, seq, metrics = reference
    ss = EstimatorSBI(stats_model=model, seq=seq, metrics=metrics).load_summary_stats(path)
    assert ss.x.shape == (ss.counts["ok"], 5 + len(metrics[1].names)) and np.asarray(ss).shape == ss.x.shape
    assert np.array_equal(ss.theta, seq.values[ss.index])
    with pytest.raises(InputError, match="not made from this seq"):
        EstimatorSBI(model, seq=model.generate_sim_seq(len(seq), seed=1)).load_summary_stats(path)
    with pytest.raises(InputError, match="features"):
        EstimatorSBI(model, metrics=[Metric("fc_eigenvalues")]).load_summary_stats(path)


def test_prior_names_and_columns():
    from torch.distributions import Independent, Normal, Uniform

    from tvbinv_hpc import PytorchPrior, sbiModel

    with pytest.raises(TvbinvError, match="not simulator attributes.*coupling.a"):
        PytorchPrior(["coupling_a"], Uniform(0.1, 1.2))
    with pytest.raises(TvbinvError, match=r"'coupling.G' is not a numeric attribute.*Linear.*a, b"):
        sbiModel(template(), PytorchPrior(["coupling.G"], Uniform(0.1, 1.2)))  # checked against the template
    with pytest.raises(TvbinvError, match=r"\.sample and \.log_prob"):
        PytorchPrior(["coupling.a"], object())
    with pytest.raises(TvbinvError, match="sizes"):
        PytorchPrior(["coupling.a", "model.eta"], Uniform(torch.zeros(3), torch.ones(3)))
    p = PytorchPrior("coupling.a", Uniform(0.1, 1.2))
    assert p.names == ["coupling.a"] and p.torch().event_shape == (1,)
    assert p.sample(5, seed=1).shape == (5, 1) and np.array_equal(p.sample(5, seed=1), p.sample(5, seed=1))
    two = PytorchPrior(["coupling.a", "model.J"], Uniform(torch.tensor([0.1, 10.0]), torch.tensor([1.2, 20.0])))
    assert two.names == ["coupling.a", "model.J"] and two.torch().event_shape == (2,)
    mixed = PytorchPrior(["coupling.a", "model.eta"],
                         Independent(Normal(torch.zeros(77), torch.ones(77)), 1), sizes=[1, 76])
    assert mixed.names[:3] == ["coupling.a", "model.eta[0]", "model.eta[1]"] and mixed.dim == 77
    theta = mixed.sample(2)
    v = mixed.values(theta)
    assert v["coupling.a"].shape == (2,) and np.array_equal(v["model.eta"], theta[:, 1:])
    sim = template()
    seq = sbiModel(sim, mixed).generate_sim_seq(2)
    tvb_copy = seq[1]
    assert np.array_equal(tvb_copy.model.eta, seq.values[1, 1:]) and tvb_copy.coupling.a[0] == seq.values[1, 0]
    with pytest.raises(TvbinvError, match="76 regions"):
        sbiModel(sim, PytorchPrior(["model.eta"], Independent(Normal(torch.zeros(10), 1.0), 1)))
    std = PytorchPrior(["coupling.a"], Uniform(0.1, 1.2)).std
    assert torch.allclose(std, torch.tensor([1.1 / 12 ** 0.5]))


def test_metric_call_equals_compute_empirical_and_store(reference):
    from tvbinv_hpc import Metric
    from tvbinv_hpc.stats import build_features

    path, _, _, metrics = reference
    with h5py.File(path, "r") as f:
        i = int(np.flatnonzero(f["status"][...] == 1)[0])
        bold, x = f["bold"][i].astype(np.float64), f["x"][i]
    t = np.arange(bold.shape[0]) * 100.0
    for m in metrics:
        fs = build_features([m.spec], regions=HALVES, n_regions=76, tr_ms=100.0)
        assert m(t, bold) == list(fs.compute_empirical(bold))
        assert m(t, bold[:, None, :, None]) == m(t, bold)
    assert np.array_equal(np.concatenate([m(t, bold) for m in metrics]), x)
    assert metrics[0].names == ["HOMO_FC", "FCD_STACK_STD_INTER_TENS", "FCD_SUBJ_DIFF_VAR_OV_TENS", "FC_SUM",
                                "FCD_SUM"]
    with pytest.raises(TvbinvError, match="unknown feature"):
        Metric("no_such_feature")
    with pytest.raises(InputError, match="uniformly"):
        metrics[0](t[::-1], bold)


MPI_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_compat import RUN, build
from tvbinv_hpc import run_mpi
_, seq, metrics = build()
out = run_mpi(seq, metrics, filename=sys.argv[1] + "/mpi.h5", save_bold=True, **RUN)
print("rows", out.rows_done, "pending", out.pending)
"""


@pytest.mark.mpi
def test_run_mpi_two_ranks_equals_run_local(reference, run_mpi, tmp_path):
    script = tmp_path / "compat_mpi.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    res = run_mpi(2, [str(script), str(tmp_path)], timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pending 0" in res.stdout
    assert_same_store(reference[0], tmp_path / "mpi.h5")
    with h5py.File(reference[0], "r") as a, h5py.File(tmp_path / "mpi.h5", "r") as b:
        assert a["bold"][...].tobytes() == b["bold"][...].tobytes()
        assert a.attrs["config_hash"] == b.attrs["config_hash"]
    assert store.sessions(tmp_path / "mpi.h5")[-1]["ranks"] == 2


class MeanBold:
    """A tvb-inversion style custom metric: plain Python, called once per simulation."""

    names = ["bold_mean", "bold_last_t"]

    def __call__(self, t, y):
        assert y.shape == (20, 1, 76, 1)  # TVB's layout, as tvb-inversion's metrics expect
        return [float(np.mean(y[:, 0, :, 0])), float(t[-1])]


def test_custom_metric_and_explicit_seq(reference, tmp_path):
    from tvbinv_hpc import SimSeq, run_local

    path, _, seq, metrics = reference
    # tvb-inversion's SimSeq(template, params, values): rows of per-name arrays
    own = SimSeq(seq.template, ["coupling.a"], [[np.r_[v]] for v in seq.values[:6, 0]], seed=seq.seed)
    assert own.names == ["coupling.a"] and np.array_equal(own.values, seq.values[:6])
    out = run_local(own, [*metrics, MeanBold()], filename=tmp_path / "c.h5", save_bold=True,
                    **RUN)
    r, ref = rows(out), rows(path)
    ok = r["status"] == 1
    assert np.array_equal(ok, ref["status"][:6] == 1)
    np.testing.assert_array_equal(r["x"][ok, :-2], ref["x"][:6][ok])
    with h5py.File(path, "r") as f:
        bold = f["bold"][:6][ok].astype(np.float64)
    np.testing.assert_allclose(r["x"][ok, -2], bold.mean(axis=(1, 2)))
    assert (r["x"][ok, -1] == 100.0 * 19).all()  # BOLD times in ms: 20 samples at TR 100 ms


def test_posterior_sample_refuses_an_x_beyond_the_simulations_instead_of_hanging():
    """sbi's rejection loop never ends when the flow puts nothing inside the prior at x; the compat
    Posterior says why at once, and draws as before (same RNG stream) where the mass is inside."""
    from types import SimpleNamespace

    import torch
    from sbi.utils import BoxUniform

    from tvbinv_hpc.compat.estimator import Posterior

    class Flow:   # sbi's sample API; `outside` shifts every unrejected draw out of the unit box
        prior = BoxUniform(torch.zeros(2), torch.ones(2))

        def __init__(self, outside):
            self.outside = outside

        def sample(self, shape, x=None, reject_outside_prior=True, **kw):
            theta = 0.5 + 0.1 * torch.randn(torch.Size(shape).numel(), 2)
            if not reject_outside_prior:
                theta[:, 0] += 3.0 * self.outside
            return theta

    def post(outside):
        return Posterior(SimpleNamespace(posterior=Flow(outside), param_names=["a", "b"], feature_names=["f"]))

    with pytest.raises(TvbinvError, match="rejection sampling would not end"):
        post(True).sample((10,), x=[0.0], seed=1)
    assert post(True).sample((10,), x=[0.0], seed=1, reject_outside_prior=False).shape == (10, 2)
    torch.manual_seed(1)
    expected = 0.5 + 0.1 * torch.randn(10, 2)
    torch.testing.assert_close(post(False).sample((10,), x=[0.0], seed=1), expected)
