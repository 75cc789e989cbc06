import numpy as np
import pytest
import torch
from scipy import stats

from tvbinv_hpc.prior import Prior

SPEC = {
    "coupling.a": {"dist": "uniform", "low": 0.1, "high": 1.2},
    "model.eta": {"dist": "normal", "loc": -4.6, "scale": 0.3, "shape": "regions"},
    "integrator.noise.nsig": {"dist": "loguniform", "low": 1e-3, "high": 0.1},
    "model.J": {"dist": "truncnormal", "loc": 14.5, "scale": 1.0, "low": 13.0, "high": 15.0},
}


@pytest.fixture
def prior():
    return Prior.from_spec(SPEC, n_regions=4)


def test_names_and_groups(prior):
    assert prior.names == ["coupling.a", "model.eta[0]", "model.eta[1]", "model.eta[2]", "model.eta[3]",
                           "integrator.noise.nsig", "model.J"]
    v = prior.values(prior.sample(np.arange(5), 1))
    assert v["coupling.a"].shape == (5,) and v["model.eta"].shape == (5, 4)


def test_rows_depend_only_on_seed_and_index(prior):
    all_rows = prior.sample(np.arange(50), 11)
    assert np.array_equal(all_rows[[7, 3, 40]], prior.sample(np.array([7, 3, 40]), 11))
    assert not np.array_equal(all_rows, prior.sample(np.arange(50), 12))


def test_uniforms_are_a_philox_stream_per_seed_and_index(prior):
    """The stored theta of existing stores: row i is Generator(Philox(SeedSequence([seed, stream, i])))."""
    from tvbinv_hpc.prior import PRIOR_STREAM

    index = np.array([0, 5, 123456, 2**40])
    want = [np.random.Generator(np.random.Philox(np.random.SeedSequence([3, PRIOR_STREAM, int(i)]))).random(prior.dim)
            for i in index]
    assert np.array_equal(prior.uniforms(index, 3), np.array(want))


def test_marginals_match_their_distributions(prior):
    th = prior.sample(np.arange(4000), 3)
    assert stats.kstest(th[:, 0], stats.uniform(0.1, 1.1).cdf).pvalue > 1e-3
    assert stats.kstest(th[:, 1], stats.norm(-4.6, 0.3).cdf).pvalue > 1e-3
    assert stats.kstest(th[:, 5], stats.loguniform(1e-3, 0.1).cdf).pvalue > 1e-3
    assert th[:, 6].min() >= 13.0 and th[:, 6].max() <= 15.0
    mean, std = prior.mean_std()
    assert np.allclose(th.mean(0), mean, atol=4 * std / np.sqrt(4000))


def test_torch_twin_agrees(prior):
    tp = prior.torch()
    th = prior.sample(np.arange(3), 5)
    lp = tp.log_prob(torch.as_tensor(th, dtype=torch.float32)).numpy()
    ref = (stats.uniform(0.1, 1.1).logpdf(th[:, 0]) + stats.norm(-4.6, 0.3).logpdf(th[:, 1:5]).sum(1)
           + stats.loguniform(1e-3, 0.1).logpdf(th[:, 5])
           + stats.truncnorm(-1.5, 0.5, loc=14.5, scale=1.0).logpdf(th[:, 6]))
    assert np.allclose(lp, ref, rtol=1e-4)
    s = tp.sample((20000,)).numpy()
    assert np.allclose(s.mean(0), prior.mean_std()[0], atol=0.05 * np.abs(prior.mean_std()[0]) + 0.02)
    out = torch.tensor([[2.0, -4.6, -4.6, -4.6, -4.6, 0.01, 14.0]])
    assert torch.isinf(tp.log_prob(out)).all()


def test_spec_round_trip(prior):
    again = Prior.from_spec(prior.to_spec())
    assert again.names == prior.names
    assert np.array_equal(again.sample(np.arange(4), 2), prior.sample(np.arange(4), 2))
