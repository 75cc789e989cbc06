import pytest

from tvbinv_hpc.errors import ConfigError
from tvbinv_hpc.inference import DIAGNOSE_DEFAULTS, TRAIN_DEFAULTS, validate_diagnose, validate_train


def test_defaults_fill_in_and_are_documented():
    train = validate_train({})
    assert set(train) == set(TRAIN_DEFAULTS)
    assert train["density_estimator"] == "maf" and train["seed"] is None and train["threads"] == 0
    assert train["tensorboard"] is False
    diag = validate_diagnose(None)
    assert set(diag) == set(DIAGNOSE_DEFAULTS)
    for table in (TRAIN_DEFAULTS, DIAGNOSE_DEFAULTS):
        assert all(isinstance(doc, str) and doc for _default, doc in table.values())


def test_given_values_are_kept():
    out = validate_train({"density_estimator": "zuko_nsf", "learning_rate": 1e-3, "seed": 7, "threads": 2})
    assert (out["density_estimator"], out["learning_rate"], out["seed"], out["threads"]) == (
        "zuko_nsf",
        1e-3,
        7,
        2,
    )


@pytest.mark.parametrize(
    "section, key",
    [
        ({"learning_rate": -1.0}, "train.learning_rate"),
        ({"learning_rate": "fast"}, "train.learning_rate"),
        ({"density_estimator": "flowy"}, "train.density_estimator"),
        ({"hidden_features": 0}, "train.hidden_features"),
        ({"batch_size": 2.5}, "train.batch_size"),
        ({"validation_fraction": 0.0}, "train.validation_fraction"),
        ({"tensorboard": 1}, "train.tensorboard"),
        ({"seed": -3}, "train.seed"),
        ({"threads": True}, "train.threads"),
        ({"z_score_x": "global"}, "train.z_score_x"),
        ({"epochs": 10}, "train.epochs"),
    ],
)
def test_bad_train_values_name_their_key(section, key):
    with pytest.raises(ConfigError) as err:
        validate_train(section)
    assert err.value.key == key
    assert key in str(err.value)


@pytest.mark.parametrize(
    "section, key",
    [
        ({"coverage": "maybe"}, "diagnose.coverage"),
        ({"ppc_draws": 1}, "diagnose.ppc_draws"),
        ({"ppc_draws": 500, "num_samples": 100}, "diagnose.ppc_draws"),
        ({"num_samples": 0}, "diagnose.num_samples"),
        ({"sbc_rows": 1}, "diagnose.sbc_rows"),
        ({"plots": "yes"}, "diagnose.plots"),
        ({"max_sampling_time": -1}, "diagnose.max_sampling_time"),
        ({"samples": 10}, "diagnose.samples"),
    ],
)
def test_bad_diagnose_values_name_their_key(section, key):
    with pytest.raises(ConfigError) as err:
        validate_diagnose(section)
    assert err.value.key == key


def test_train_device_is_decided_before_compute(monkeypatch):
    import torch

    assert validate_train({})["device"] == "cpu"
    for bad in ("gpu", "cuda:x", 0):
        with pytest.raises(ConfigError, match="train.device"):
            validate_train({"device": bad})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert validate_train({"device": "auto"})["device"] == "cpu"
    with pytest.raises(ConfigError, match="sees 0 CUDA device"):
        validate_train({"device": "cuda"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert validate_train({"device": "auto"})["device"] == "cuda"
    assert validate_train({"device": "cuda:1"})["device"] == "cuda:1"
    with pytest.raises(ConfigError, match="'cuda:2' requested"):
        validate_train({"device": "cuda:2"})


def test_prior_moves_to_the_training_device():
    from tvbinv_hpc.inference.train import _prior_on
    from tvbinv_hpc.prior import Prior

    prior = Prior({"coupling.a": {"dist": "uniform", "low": 0.0, "high": 1.0, "shape": "scalar"},
                   "model.eta": {"dist": "truncnormal", "loc": -4.6, "scale": 0.3, "low": -5.0, "high": -4.0,
                                 "shape": "scalar"}}, 1).torch()
    assert _prior_on(prior, "cpu") is prior
    moved = _prior_on(prior, "meta")   # a device every torch build has, standing in for a GPU here
    assert moved.low.device.type == "meta" and moved.sample((3,)).device.type == "meta"
    assert prior.low.device.type == "cpu"  # the original stays where it was
