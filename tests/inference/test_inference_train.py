import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_problem import FEATURES, PARAMS, make_prior

from tvbinv_hpc.errors import InputError, TvbinvError
from tvbinv_hpc.inference import (
    is_trained,
    load_posterior,
    min_train_rows,
    resolve_threads,
    sample_posterior,
    save_posterior,
    train_posterior,
)

REPO = Path(__file__).resolve().parents[2]
TINY = {"hidden_features": 8, "num_transforms": 1, "max_epochs": 2, "threads": 1, "seed": 0}


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 1, (n, 3))
    return theta, np.column_stack([theta + 0.05 * rng.standard_normal(theta.shape), rng.standard_normal(n)])


def _train(theta, x, settings, **kw):
    return train_posterior(
        theta,
        x,
        make_prior(),
        settings,
        param_names=PARAMS,
        feature_names=FEATURES,
        prior_spec={"kind": "box"},
        meta={"config_hash": "h1"},
        log=lambda m: None,
        **kw,
    )


def test_invalid_rows_are_excluded_and_counted(trained):
    s = trained.summary
    assert s["n_rows"] == 2000
    assert s["n_excluded"] == 30 and s["n_excluded_x"] == 30
    assert s["n_train"] + s["n_validation"] == 1970
    assert s["epochs"] >= 1 and len(s["validation_loss"]) == s["epochs"]
    assert trained.meta["config_hash"] == "abc123"
    assert trained.meta["versions"]["sbi"].startswith("0.27")


def test_too_few_valid_rows_says_how_many():
    theta, x = _data(80)
    x[:40, 0] = np.nan
    with pytest.raises(TvbinvError, match=r"40 of 80 rows .* at least 50"):
        _train(theta, x, TINY)
    assert min_train_rows(3) == 50 and min_train_rows(12) == 65


def test_mismatched_names_are_rejected():
    theta, x = _data(60)
    with pytest.raises(InputError, match="feature names"):
        _train(theta, x[:, :3], TINY)


def test_training_leaves_the_cwd_empty(trained, clean_cwd):
    assert not (clean_cwd / "sbi-logs").exists()
    assert list(clean_cwd.iterdir()) == []


def test_tensorboard_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    theta, x = _data(100)
    _train(theta, x, {**TINY, "tensorboard": True}, tensorboard_dir=tmp_path / "out" / "tb")
    assert any((tmp_path / "out" / "tb").iterdir())
    assert not (tmp_path / "sbi-logs").exists()


def test_threads_setting():
    assert resolve_threads(3) == 3
    cores = len(os.sched_getaffinity(0))
    assert resolve_threads(0) == cores
    assert resolve_threads(0, ranks_on_node=cores * 4) == 1


@pytest.mark.parametrize("estimator", ["maf", "nsf", "zuko_nsf", "mdn"])
def test_save_load_rebuilds_the_same_network(estimator, tmp_path):
    theta, x = _data(120)
    trained = _train(theta, x, {**TINY, "density_estimator": estimator})
    save_posterior(tmp_path / "p.pt", trained)
    loaded = load_posterior(tmp_path / "p.pt", make_prior(), log=lambda m: None)
    assert loaded.param_names == PARAMS and loaded.feature_names == FEATURES
    # z-score statistics included: the rebuilt net is built from unrelated data, then loaded.
    th, xo = torch.as_tensor(theta[:5], dtype=torch.float32), torch.as_tensor(x[0:1], dtype=torch.float32)
    with torch.no_grad():
        lp0 = trained.posterior.log_prob(th, x=xo, norm_posterior=False)
        lp1 = loaded.posterior.log_prob(th, x=xo, norm_posterior=False)
    torch.testing.assert_close(lp0, lp1)


def test_is_trained(trained, tmp_path):
    path = tmp_path / "posterior.pt"
    assert not is_trained(path, "abc123")
    save_posterior(path, trained)
    assert is_trained(path, "abc123")
    assert not is_trained(path, "other-hash")
    (tmp_path / "foreign.pt").write_bytes(b"not a posterior")
    assert not is_trained(tmp_path / "foreign.pt", "abc123")


def test_load_errors(trained, tmp_path):
    with pytest.raises(InputError, match="no trained posterior"):
        load_posterior(tmp_path / "missing.pt", make_prior())
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a tvbinv-hpc-posterior"):
        load_posterior(tmp_path / "other.pt", make_prior())
    save_posterior(tmp_path / "p.pt", trained)
    from sbi.utils import BoxUniform

    with pytest.raises(InputError, match="3 parameters but the prior has 2"):
        load_posterior(tmp_path / "p.pt", BoxUniform(torch.zeros(2), torch.ones(2)))


def test_loading_in_a_new_process_gives_the_same_samples(trained, problem, tmp_path):
    path = tmp_path / "posterior.pt"
    save_posterior(path, trained)
    np.save(tmp_path / "x_obs.npy", problem["x_obs"])
    here = sample_posterior(trained.posterior, problem["x_obs"], 200, seed=11)
    script = textwrap.dedent(f"""
        import numpy as np, torch
        torch.set_num_threads(1)
        from sbi.utils import BoxUniform
        from tvbinv_hpc.inference import load_posterior, sample_posterior
        t = load_posterior({str(path)!r}, BoxUniform(torch.zeros(3), torch.ones(3)), log=lambda m: None)
        x = np.load({str(tmp_path / "x_obs.npy")!r})
        np.save({str(tmp_path / "there.npy")!r}, sample_posterior(t.posterior, x, 200, seed=11))
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, env=env, timeout=300)
    there = np.load(tmp_path / "there.npy")
    assert here.shape == (200, 3)
    np.testing.assert_array_equal(here, there)
    # A different seed gives different samples (the comparison above is not vacuous).
    assert not np.array_equal(here, sample_posterior(trained.posterior, problem["x_obs"], 200, seed=12))


def test_nonfinite_observation_is_refused(trained):
    with pytest.raises(InputError, match="NaN or Inf"):
        sample_posterior(trained.posterior, np.array([0.1, np.nan, 0.2, 0.0]), 10, seed=0)


def test_ensemble_is_a_mixture_of_its_members_and_round_trips(tmp_path):
    from tvbinv_hpc.inference.train import FlowEnsemble

    theta, x = _data(150)
    one = _train(theta, x, {**TINY, "max_epochs": 3})
    ens = _train(theta, x, {**TINY, "max_epochs": 3, "ensemble": 3})
    assert isinstance(ens.posterior, FlowEnsemble) and len(ens.posterior.posteriors) == 3
    assert ens.summary["ensemble"] == 3 and [m["seed"] for m in ens.summary["members"]] == [0, 1, 2]
    assert ens.summary["epochs"] == sum(m["epochs"] for m in ens.summary["members"])
    th, xo = torch.as_tensor(theta[:7], dtype=torch.float32), torch.as_tensor(x[0:1], dtype=torch.float32)
    with torch.no_grad():
        # member 0 has the single flow's seed: the same network
        torch.testing.assert_close(ens.posterior.posteriors[0].log_prob(th, x=xo, norm_posterior=False),
                                   one.posterior.log_prob(th, x=xo, norm_posterior=False))
        members = torch.stack([p.log_prob(th, x=xo, norm_posterior=False) for p in ens.posterior.posteriors])
        mix = ens.posterior.log_prob(th, x=xo, norm_posterior=False)
    torch.testing.assert_close(mix, torch.log(members.exp().mean(dim=0)))
    assert not torch.allclose(members[0], members[1])   # different seeds, different flows

    save_posterior(tmp_path / "e.pt", ens)
    assert torch.load(tmp_path / "e.pt", weights_only=True)["format_version"] == 2
    loaded = load_posterior(tmp_path / "e.pt", make_prior(), log=lambda m: None)
    assert isinstance(loaded.posterior, FlowEnsemble)
    with torch.no_grad():
        torch.testing.assert_close(loaded.posterior.log_prob(th, x=xo, norm_posterior=False), mix)
        xb = torch.as_tensor(x[:4], dtype=torch.float32)
        torch.testing.assert_close(loaded.posterior.log_prob_batched(th[:, None].expand(7, 4, 3), x=xb,
                                                                     norm_posterior=False)[:, 0], mix)
    # draws: reproducible and shaped like DirectPosterior's
    a = sample_posterior(loaded.posterior, x[0], 600, seed=5)
    b = sample_posterior(loaded.posterior, x[0], 600, seed=5)
    assert a.shape == (600, 3) and np.array_equal(a, b)
    torch.manual_seed(1)
    with torch.no_grad():
        batched = loaded.posterior.sample_batched((50,), x=xb, show_progress_bars=False)
    assert batched.shape == (50, 4, 3)


def test_single_flow_file_stays_version_1(trained, tmp_path):
    save_posterior(tmp_path / "p.pt", trained)
    payload = torch.load(tmp_path / "p.pt", weights_only=True)
    assert payload["format_version"] == 1 and "state_dict" in payload and "state_dicts" not in payload


class _Leaky:
    """A posterior whose flow puts a fixed share of its mass inside the unit box: sbi's sample API, with
    rejection as sbi does it (which never ends when nothing is inside)."""

    def __init__(self, inside: float):
        self.prior, self.inside = make_prior(), inside

    def sample(self, shape, x=None, reject_outside_prior=True, **kwargs):
        assert not reject_outside_prior or self.inside > 0.01, "rejection would not end"
        n = torch.Size(shape).numel()
        theta = 0.5 + 0.1 * torch.randn(n, len(PARAMS))
        out = torch.rand(n) >= self.inside
        theta[out, 0] += 3.0   # outside the box, on the side of the first parameter's upper face
        return theta if not reject_outside_prior else theta[~out][:n]


def test_sampling_an_observation_beyond_the_simulations_ends_and_says_so():
    from tvbinv_hpc.inference.report import sampling_warning

    info = {}
    ok = sample_posterior(_Leaky(1.0), np.zeros(4), 500, seed=0, info=info)
    assert ok.shape == (500, 3) and info["method"] == "rejection" and info["mass_inside_prior"] == 1.0
    assert sampling_warning(info) == ""

    info = {}   # 1 draw in 5,000 inside: rejection would take 10^7 proposals; the inside ones are kept
    few = sample_posterior(_Leaky(2e-4), np.zeros(4), 500, seed=0, info=info)
    assert info["method"] == "truncated" and info["mass_inside_prior"] < 1e-3
    assert 0 < len(few) < 500 and ((few >= 0) & (few <= 1)).all()
    assert "extrapolation" in sampling_warning(info) and "out of" in sampling_warning(info)

    info = {}   # nothing inside: the draws clipped onto the box show where the flow points
    edge = sample_posterior(_Leaky(0.0), np.zeros(4), 500, seed=0, info=info)
    assert info["method"] == "clipped" and info["mass_inside_prior"] == 0.0 and edge.shape == (500, 3)
    assert (edge[:, 0] == 1.0).all() and "clipped onto its faces" in sampling_warning(info)


def test_a_trained_posterior_at_its_own_observation_needs_no_fallback(trained, problem):
    info = {}
    sample_posterior(trained.posterior, problem["x_obs"], 300, seed=1, info=info)
    assert info["method"] == "rejection" and info["mass_inside_prior"] > 0.9
