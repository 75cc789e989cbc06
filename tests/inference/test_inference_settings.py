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
