"""Config validation: every mistake gives its own message naming the key, and nothing is created."""
import pytest

from tvbinv_hpc import config, pipeline
from tvbinv_hpc.errors import ConfigError, TvbinvError

# (what to change in the small config, the key path the error must name, a word of the message)
MISTAKES = [
    ("[modle]\ntau = 1.0\n", "modle", "unknown section"),
    ("[simulation]\nlenght = 10.0\n", "simulation.lenght", "unknown key"),
    ('[prior."coupling.b"]\ndist = "uniform"\nlow = 1.0\nhigh = 0.5\n', "prior.coupling.b.high", "inverted"),
    ('[prior."model.foo"]\ndist = "uniform"\nlow = 0.0\nhigh = 1.0\n', "prior.model.foo",
     "unknown simulator attribute"),
    ('[prior."model.J"]\ndist = "beta"\nlow = 0.0\nhigh = 1.0\n', "prior.model.J.dist", "not one of"),
    ('[prior."model.J"]\ndist = "loguniform"\nlow = 0.0\nhigh = 1.0\n', "prior.model.J.low", "low > 0"),
    ('[prior."model.J"]\ndist = "normal"\nloc = 1.0\n', "prior.model.J.scale", "required number"),
    ("[observation]\nindex = 1.5\n", "observation.index", "integer"),
    ("[store]\nsave_bold = 1\n", "store.save_bold", "true/false"),
    ("[store]\nwriter = 'fast'\n", "store.writer", "not one of"),
    ("[observation]\nsource = 3\n", "observation.source", "a string"),
    ("[train]\nlearning_rate = -1.0\n", "train.learning_rate", ""),
    ("[diagnose]\nnum_samples = 'many'\n", "diagnose.num_samples", ""),
    ("[bold]\nstart = 'cold'\n", "bold.start", "not one of"),
    ("[integrator]\nscheme = 'rk4'\n", "integrator.scheme", "not one of"),
    ("[stats]\ndetrend = 'cubic'\n", "stats.detrend", "not one of"),
    ("[stats]\nbandpass = [0.01, 1.5]\n", "stats.bandpass", "Nyquist"),
    ("[stats]\ngsr = 'yes'\n", "stats.gsr", "true/false"),
    ("[observation]\nlayout = 'wide'\n", "observation.layout", "not one of"),
    ("[observation]\nsource = []\n", "observation.source", "non-empty list"),
    ("[observation]\ntr = -2.0\n", "observation.tr", ">= 0"),
    ("[observation]\nsource = 'nowhere/sub-*.mat'\n", "observation.source", "matches no file"),
    ("[observation]\nsource = ['a.npy', 'b.npy']\nsubjects = ['only-one']\n", "observation.subjects",
     "2 files"),
]


def _with(small_config, text: str):
    path = small_config()
    body = path.read_text()
    # Append the mistake; for sections already present, merge by replacing the header.
    header = text.splitlines()[0]
    if header in body:
        body = body.replace(header, text.rstrip("\n"), 1)
    else:
        body += "\n" + text
    path.write_text(body)
    return path


@pytest.mark.parametrize("text,key,word", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_each_mistake_names_its_key(small_config, text, key, word, tmp_path):
    path = _with(small_config, text)
    with pytest.raises(ConfigError) as err:
        pipeline.prepare(str(path))
    assert err.value.key == key, str(err.value)
    assert word in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("replace,key", [
    (("n_sims = 24", 'n_sims = "many"'), "budget.n_sims"),
    (("test_fraction = 0.2", "test_fraction = 1.5"), "budget.test_fraction"),
    (("dt = 0.02", "dt = -0.02"), "integrator.dt"),
    (("speed = 3.0", "speed = true"), "connectome.speed"),
    (("hemispheres = \"halves\"", "hemispheres = \"sideways\""), "connectome.hemispheres"),
    (("hemispheres = \"halves\"", "hemispheres = \"auto\""), "stats.features[2].hemispheres"),
    (("hemispheres = \"halves\"", "drop = [1.5]"), "connectome.drop"),
    (("hemispheres = \"halves\"", "threshold = 1.0"), "connectome.threshold"),
    (("hemispheres = \"halves\"", "hemispheres = \"halves\"\nhomotopic = -0.5"), "connectome.homotopic"),
    (("hemispheres = \"halves\"", "normalize = \"rank\""), "connectome.normalize"),
    (("hemispheres = \"halves\"", "symmetrize = \"min\""), "connectome.symmetrize"),
    (('{ name = "fc_stats" }', '{ name = "fc_nope" }'), "stats.features[0].name"),
    (("win_len = 5", "win_len = 500"), "stats.features"),
    (("transient = 500.0", "transient = 'later'"), "bold.transient"),
    (("warmup = 500.0", "warmup = -1.0"), "bold.warmup"),
    (("warmup = 500.0", "warmup = 800.0"), "bold.transient"),          # BOLD before the Balloon starts
    (("batch_size = 3", "batch_size = 3\nthreads = 0"), "budget.threads"),
    (("batch_size = 3", "batch_size = 3\nthreads = 'all'"), "budget.threads"),
    (("batch_size = 3", "batch_size = 3\nthreads = 1.5"), "budget.threads"),
])
def test_value_mistakes(small_config, replace, key, tmp_path):
    path = small_config()
    path.write_text(path.read_text().replace(*replace))
    with pytest.raises(ConfigError) as err:
        pipeline.prepare(str(path))
    assert err.value.key == key, str(err.value)
    assert not (tmp_path / "out").exists()


def test_missing_connectome_names_the_file(small_config, tmp_path):
    path = small_config()
    path.write_text(path.read_text().replace(str(tmp_path / "conn8.npz"), str(tmp_path / "nope.npz")))
    with pytest.raises(TvbinvError, match="nope.npz"):
        pipeline.prepare(str(path))


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[run\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "absent.toml")


def test_defaults_filled_and_hash_stable(small_config):
    cfg = pipeline.load_config(str(small_config()))
    assert cfg["model"]["J"] == 14.5 and cfg["train"]["density_estimator"] == "maf"
    h = config.config_hash(cfg)
    cfg2 = pipeline.load_config(str(small_config()))
    cfg2["budget"]["batch_size"] = 17  # harmless by design
    cfg2["budget"]["threads"] = 3
    cfg2["train"]["max_epochs"] = 3
    assert config.config_hash(cfg2) == h
    cfg2["coupling"]["a"] = 0.3
    assert config.config_hash(cfg2) != h
    assert config.changed_keys(config.store_view(cfg), config.store_view(cfg2)) == ["coupling.a"]


def test_threads_reach_the_engine(small_config):
    path = small_config()
    assert pipeline.prepare(str(path)).engine.threads >= 1             # 'auto'
    path.write_text(path.read_text().replace("batch_size = 3", "batch_size = 3\nthreads = 3"))
    s = pipeline.prepare(str(path))
    assert s.engine.threads == 3 and s.engine.rows_per_batch(s.batch_size) == 12


def test_quickstart_is_valid():
    cfg = pipeline.load_config("quickstart")
    assert set(cfg["prior"]) == {"coupling.a", "model.eta", "integrator.noise.nsig"}
    text = config.dumps(cfg)
    assert "[prior.\"coupling.a\"]" in text or "coupling.a" in text


def test_unphysiological_speed_is_warned_before_compute(small_config, caplog):
    import logging

    path = small_config()
    path.write_text(path.read_text().replace("speed = 3.0", "speed = 0.2"))
    with caplog.at_level(logging.INFO, logger="tvbinv_hpc"):
        pipeline.prepare(str(path))
    text = caplog.text
    assert "conduction speed 0.2 m/s" in text and "outside the physiological 1-20 m/s" in text


def test_input_paths_resolve_against_the_config_file(tmp_path):
    """connectome, lengths, labels and observation files are found from the config's folder, wherever the
    job starts; a tvb-data name stays a name."""
    import numpy as np

    d = tmp_path / "study"
    (d / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(d / "data" / "w.npy", rng.uniform(size=(6, 6)))
    np.save(d / "data" / "l.npy", rng.uniform(10, 50, (6, 6)))
    (d / "data" / "labels.txt").write_text("\n".join(f"R{i}_{s}" for i in range(3) for s in "LR"))
    np.save(d / "data" / "bold.npy", rng.standard_normal((40, 6)))
    (d / "cfg.toml").write_text(
        '[connectome]\nsource = "data/w.npy"\nlengths = "data/l.npy"\nlabels = "data/labels.txt"\n'
        '[observation]\nsource = "data/bold.npy"\n'
        '[prior."coupling.a"]\ndist = "uniform"\nlow = 0.0\nhigh = 1.0\n')
    cfg = config.load(d / "cfg.toml")
    assert cfg["connectome"]["source"] == str(d / "data" / "w.npy")
    assert cfg["connectome"]["lengths"] == str(d / "data" / "l.npy")
    assert cfg["observation"]["source"] == str(d / "data" / "bold.npy")
    assert config.validate({"prior": {"coupling.a": {"dist": "uniform", "low": 0.0, "high": 1.0}}},
                           base_dir=d)["connectome"]["source"] == "connectivity_76"
    s = pipeline.build_setup(cfg)
    assert s.features.hemispheres.how.startswith("region labels")   # R0_L / R0_R pair up
    assert "preprocess" not in cfg and cfg["stats"]["bandpass"] == []


def test_a_store_of_other_numerics_is_refused(small_config):
    """A store made by an engine whose numerics differ (an older release) is not resumed: its rows would
    differ from new ones in their last bits."""
    import json

    import h5py

    s = pipeline.prepare(str(small_config()))
    path = pipeline.ensure_store(s)
    with h5py.File(path, "r+") as f:
        view = json.loads(f.attrs["store_view"])
        assert view.pop("engine.numerics") >= 2
        f.attrs["store_view"] = json.dumps(view)
        f.attrs["config_hash"] = "older"
    with pytest.raises(TvbinvError, match="another version of the simulator"):
        pipeline.ensure_store(s)
