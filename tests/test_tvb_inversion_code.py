"""tvb-inversion users' code runs with only its import lines changed.

The code cells of tvb-inversion's notebooks and the code blocks of its README
(github.com/the-virtual-brain/tvb-inversion, branch main at b3a4f77: README.md,
notebooks/01_config_and_sample.ipynb, notebooks/02_inference.ipynb) are transcribed below, each with the
cell or README section it comes from.  Sizes are reduced so that CI stays fast; every reduction is marked
``# reduced from ...``.  ``port`` makes the one change the README promises: ``tvb_inversion`` becomes
``tvbinv_hpc.compat.tvb_inversion`` on import lines, and it fails if any other line would change.  Not
transcribed: the IPython magics (``%load_ext autoreload``), which are not Python.

tvb-inversion's data files (``data_input_files``) are not ours to ship: the notebooks read them through
``utils.data_path``, so the tests put stand-ins in a folder named by TVB_INVERSION_DATA (see
``stand_in_data``).
"""
from __future__ import annotations

import ast
import re
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tvbinv_hpc.errors import InputError, TvbinvError
from tvbinv_hpc.parallel import store

SOURCE = "the-virtual-brain/tvb-inversion@b3a4f77"

NB01 = {  # notebooks/01_config_and_sample.ipynb, by cell index (cells 1: magics, 6/8/10/14/15/17/20: markdown)
    2: "import torch\nimport numpy as np\n",
    3: "from tvb.simulator.lab import *\n",
    4: "from tvb_inversion.sbi import Prior\nfrom tvb_inversion.sbi import EstimatorSBI\n",
    5: "from tvb_inversion.utils import data_path, run_local\n"
       "from tvb_inversion.parameters import SimSeq\n"
       "from tvb_inversion.sbi.demo import BoldFCDForSBI\n"
       "from tvb.simulator.backend.nb_mpr import NbMPRBackend\n",
    7: """conn = connectivity.Connectivity.from_file(data_path('demo_connectivity.zip'))

sim = simulator.Simulator(
    model=models.MontbrioPazoRoxin(
        eta=np.r_[-4.6],
        J=np.r_[14.5],
        Delta=np.r_[0.7],
        tau=np.r_[1],
    ),
    connectivity=conn,
    coupling=coupling.Linear(
        a=np.r_[2.45]
    ),
    conduction_speed=conn.speed.item(),
    integrator=integrators.HeunStochastic(
        dt=0.01,
        noise=noise.Additive(
            nsig=np.r_[0.035, 0.035 * 2],
            noise_seed=42
        )
    ),
    monitors=[monitors.TemporalAverage(period=0.1)],
    simulation_length=3e3 # decreased for demo purposes
)
""",
    9: "prior = Prior(['coupling.a'], torch.distributions.Uniform(0.1, 1.2))\nprior\n",
    11: "seq = prior.generate_sim_seq(sim, 4)\n",
    12: "import matplotlib.pylab as plt\n",
    13: "params = np.array(seq.values).squeeze()\nplt.hist(params);\n",
    16: "metrics = [BoldFCDForSBI(win_len=3)]\n"
        "run_local(seq, metrics, backend=NbMPRBackend, checkpoint_dir='test_run', filename='results.npy')\n",
    18: "estimator = EstimatorSBI(prior, seq=seq, metrics=metrics)\n",
    19: "summ_stats = estimator.load_summary_stats('results.npy')\nsumm_stats\n",
}

NB02 = {  # notebooks/02_inference.ipynb, by cell index (cell 1: magics; 0/9/13/15/19/21/24/28/33: markdown)
    2: "import matplotlib.pylab as plt\nimport numpy as np\n",
    3: "import torch\n",
    4: "from tvb_inversion import utils\n",
    5: "from tvb_inversion.sbi.inference import zscore, shrinkage\n",
    6: "from tvb_inversion.sbi import EstimatorSBI, Prior\n",
    7: "from sbi.utils import torchutils\n",
    8: "import pandas as pd\n",
    10: "x_all = pd.read_csv(utils.data_path('demo_prior_samples.csv.gz'))\n"
        "#x_all =  torch.load(utils.data_path('1/x_all.pt'))\n",
    11: "x_all\n",
    12: "x_fc = x_all.to_numpy()[:,[0]]\nx_fcd = x_all.to_numpy()[:,[1]]\n",
    14: """# prior =  torch.load(utils.data_path('prior.pt'))

prior_G_min, prior_G_max = [0.1], [1.2]

prior_dist = torchutils.BoxUniform(
    low=torch.as_tensor(prior_G_min),
    high=torch.as_tensor(prior_G_max))

prior = Prior(['coupling.a'], prior_dist)
""",
    16: "theta = pd.read_csv(utils.data_path('demo_theta.csv.gz'))\ntheta\n",
    17: "theta = torch.as_tensor(theta.values, dtype=torch.float32)\n",
    18: """fig, axs = plt.subplots(ncols=2, figsize=(8, 3))
ax = axs[0]
ax.plot(theta[:, 0], x_fc, "ko", ms=1, alpha=0.5)
ax.set(xlabel="G", ylabel=r"$\\sum FC$")

ax = axs[1]
ax.plot(theta[:, 0], x_fcd, "ko", ms=2, alpha=0.5)
ax.set(xlabel="G", ylabel=r"$\\sum FCD$")

fig.tight_layout()
""",
    20: """index_max = np.argmax(x_fcd)
true_param = theta[index_max]

print("index max is :", index_max, true_param, x_fcd[index_max])
obs_stats_fcd = x_fcd[index_max, :]
obs_stats_fcd = obs_stats_fcd[None, :]

obs_stats_fc = x_fc[index_max, :]
obs_stats_fc = obs_stats_fc[None, :]
""",
    22: "estimator = EstimatorSBI(prior, theta=theta)\n",
    23: "posterior = estimator.train(x_fcd)\n",
    25: "num_samples = 20_000\nposterior_samples = posterior.sample((num_samples,),obs_stats_fcd)\n",
    26: "from sbi.analysis import pairplot\n",
    27: "fig, axs = pairplot(posterior_samples, points=true_param, points_colors='r', samples_colors='k', "
        "figsize=(5,3), labels=['G']);\n",
    29: "post_std = torch.std(posterior_samples)\npost_mean = torch.mean(posterior_samples)\n",
    30: "prior_std = torch.std(theta)\n",
    31: "shr = shrinkage(prior_std, post_std)\nzsc = zscore(true_param, post_mean, post_std)\n",
    32: """fig, ax = plt.subplots(figsize=(5,3))
ax.plot(zsc, shr, 'r^')
ax.set(ylim=[0,1.1], xlabel='z-score', ylabel='shrinkage')
""",
}

README = {  # README.md, section "API", in order; the lines the README leaves out are added as marked
    "Simulation configuration and priors (1)": """from tvb.simulator.lab import *
import numpy as np  # the README uses it without importing it

conn = connectivity.Connectivity.from_file()

sim = simulator.Simulator(
    model=models.MontbrioPazoRoxin(),
    connectivity=conn,
    coupling=coupling.Linear(
        a=np.r_[2.45]
    ),
    conduction_speed=conn.speed.item(),
    integrator=integrators.HeunStochastic(
        dt=0.01,
        noise=noise.Additive(
            nsig=np.r_[0.035, 0.035 * 2],
            noise_seed=42
        )
    ),
    monitors=[monitors.TemporalAverage(period=0.1)],
    simulation_length=1.6e3  # reduced from 30e3
)
""",
    "Simulation configuration and priors (2)": """from tvb_inversion.sbi import Prior
import torch

prior = Prior(['coupling.a'], torch.distributions.Uniform(0.1, 1.2))
""",
    "Sampling, running simulations (1)": "seq = prior.generate_sim_seq(sim, 60) # reduced from 4000\n",
    "Sampling, running simulations (2)": """from tvb_inversion.parameters import SimSeq
from tvb_inversion.sbi.demo import BoldFCDForSBI  # the README uses it without importing it

metrics = [BoldFCDForSBI(win_len=3)]  # reduced from 15 (to fit 16 s of BOLD)
""",
    "Sampling, running simulations (3)": """import utils
from tvb.simulator.backend.nb_mpr import NbMPRBackend  # the README uses it without importing it

utils.run_local(seq, metrics, backend=NbMPRBackend, checkpoint_dir='test_run', filename='results.npy')
""",
    "Inference, diagnostics (1)": """from tvb_inversion.sbi import EstimatorSBI

estimator = EstimatorSBI(prior, seq=seq, metrics=metrics)
summ_stats = estimator.load_summary_stats('results.npy')
""",
    "Inference, diagnostics (2)": "posterior = estimator.train(summ_stats)\n",
    "Inference, diagnostics (3)": """num_samples = 20_000
posterior_samples = posterior.sample((num_samples,), obs_stats)
""",
    "Inference, diagnostics (4)": """from tvb_inversion.sbi.inference import shrinkage, zscore

post_std = torch.std(posterior_samples)
post_mean = torch.mean(posterior_samples)

shr = shrinkage(prior_std, post_std)
""",
    "Inference, diagnostics (5)": "zsc = zscore(true_param, post_mean, post_std)\n",
}


def port(src: str) -> str:
    """tvb-inversion code -> the same code on tvbinv_hpc: only import lines change."""
    out = []
    for line in src.splitlines():
        new = re.sub(r"\btvb_inversion\b", "tvbinv_hpc.compat.tvb_inversion", line)
        new = re.sub(r"^import utils$", "from tvbinv_hpc.compat.tvb_inversion import utils", new)
        assert new == line or new.startswith(("from ", "import ")), f"port would change a non-import line: {line}"
        out.append(new)
    return "\n".join(out) + "\n"


def run_cell(src: str, ns: dict, where: str) -> str | None:
    """Run one cell as a notebook does; returns the repr of a trailing expression (what the cell shows)."""
    tree = ast.parse(port(src))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, f"{SOURCE} {where}", "exec"), ns)
    if last is None:
        return None
    return repr(eval(compile(ast.Expression(last.value), f"{SOURCE} {where}", "eval"), ns))


@pytest.fixture
def notebook_env(tmp_path, monkeypatch):
    """A fresh working folder with matplotlib off-screen, as a notebook kernel would start."""
    import matplotlib

    matplotlib.use("Agg")
    warnings.filterwarnings("ignore")
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data_input_files"
    data.mkdir()
    monkeypatch.setenv("TVB_INVERSION_DATA", str(data))
    yield data
    import matplotlib.pyplot as plt

    plt.close("all")


def stand_in_data(data, n: int = 100) -> None:
    """Stand-ins for tvb-inversion's demo files: its 76-region demo connectome becomes TVB's
    connectivity_76.zip; its 7,660 precomputed (theta, FC_SUM, FCD_SUM) rows become ``n`` rows of a smooth
    made-up relation whose FCD_SUM peaks inside the prior (as the notebook's does), so that the posterior
    at the peak is narrow and centred on the truth."""
    import tvb_data

    shutil.copyfile(tvb_data.__path__[0] + "/connectivity/connectivity_76.zip", data / "demo_connectivity.zip")
    rng = np.random.default_rng(0)
    a = rng.uniform(0.1, 1.2, n)
    fc = 1500.0 + 1000.0 * a + rng.normal(0.0, 20.0, n)
    fcd = 16000.0 * np.exp(-(((a - 0.73) / 0.15) ** 2)) + rng.normal(0.0, 200.0, n)
    pd.DataFrame({"FC_SUM": fc, "FCD_SUM": fcd}).to_csv(data / "demo_prior_samples.csv.gz", index=False)
    pd.DataFrame({"coupling.a": a}).to_csv(data / "demo_theta.csv.gz", index=False)


def test_port_changes_only_import_lines():
    assert port("from tvb_inversion.sbi import Prior\nx = 1\n") == \
        "from tvbinv_hpc.compat.tvb_inversion.sbi import Prior\nx = 1\n"
    assert port("import utils\n") == "from tvbinv_hpc.compat.tvb_inversion import utils\n"
    with pytest.raises(AssertionError, match="non-import line"):
        port("tvb_inversion.utils.run_local(seq, metrics)\n")


def test_notebook_01_config_and_sample(notebook_env, tmp_path):
    stand_in_data(notebook_env)
    ns: dict = {}
    shown = {i: run_cell(src, ns, f"notebooks/01_config_and_sample.ipynb cell {i}") for i, src in NB01.items()}
    assert shown[9].startswith("Prior(['coupling.a'], Uniform(")
    seq, summ = ns["seq"], ns["summ_stats"]
    assert len(seq) == 4 and np.array(seq.values).squeeze().shape == (4,)
    assert ((seq.values >= 0.1) & (seq.values <= 1.2)).all()
    # the results land where the user said (the working folder), as np.save put them; the store is HDF5
    assert store.read_header(tmp_path / "results.npy")["n_rows"] == 4
    assert not (tmp_path / "test_run" / "results.npy").exists()
    assert sum(summ.counts.values()) == 4 and summ.counts["pending"] == 0
    assert summ.feature_names == ["HOMO_FC", "FCD_STACK_STD_INTER_TENS", "FCD_SUBJ_DIFF_VAR_OV_TENS", "FC_SUM",
                                  "FCD_SUM"]
    assert summ.x.shape == (summ.counts["ok"], 5) and np.isfinite(summ.x).all()
    assert np.array_equal(summ.theta, seq.values[summ.index])
    # running the cell again (a restarted kernel) resumes the same file: nothing to redo
    again = ns["run_local"](seq, ns["metrics"], backend=ns["NbMPRBackend"], checkpoint_dir="test_run",
                            filename="results.npy")
    assert again.rows_done == 0 and len(store.sessions(again.path)) == 2


def test_notebook_02_inference(notebook_env):
    stand_in_data(notebook_env)
    torch.manual_seed(0)  # the notebook samples with torch's global RNG
    ns: dict = {}
    shown = {i: run_cell(src, ns, f"notebooks/02_inference.ipynb cell {i}") for i, src in NB02.items()}
    assert "FCD_SUM" in shown[11] and "coupling.a" in shown[16]
    samples = ns["posterior_samples"]
    assert isinstance(samples, torch.Tensor) and samples.shape == (20_000, 1)
    assert ((samples >= 0.1) & (samples <= 1.2)).all()
    assert ns["estimator"].theta.shape == (100, 1)
    assert float(ns["shr"]) > 0.5 and float(ns["zsc"]) < 3.0  # the peak of FCD_SUM pins coupling.a near 0.73


def test_readme_api(notebook_env, tmp_path):
    ns: dict = {}
    steps = iter(README.items())
    for where, src in steps:
        run_cell(src, ns, f"README.md '{where}'")
        if where == "Inference, diagnostics (2)":
            break
    # what the README leaves to the user: the observed statistics (here a simulation) and the truth
    summ, seq = ns["summ_stats"], ns["seq"]
    ns["obs_stats"], ns["true_param"] = summ.x[0], torch.as_tensor(seq.values[summ.index[0]], dtype=torch.float32)
    ns["prior_std"] = ns["prior"].std
    for where, src in steps:
        run_cell(src, ns, f"README.md '{where}'")
    assert (tmp_path / "results.npy").is_file() and summ.counts["ok"] >= 50
    assert ns["posterior_samples"].shape == (20_000, 1)
    assert np.isfinite(float(ns["shr"])) and np.isfinite(float(ns["zsc"]))


def test_run_local_file_semantics_and_reduction(tmp_path, monkeypatch):
    """tvb-inversion's defaults and positional order: filename (no suffix -> .npy, as np.save), reduction,
    backend, checkpoint_dir (unused: the store is its own checkpoint), n_jobs."""
    from test_compat import RUN, build

    from tvbinv_hpc.compat.tvb_inversion.sbi import EstimatorSBI
    from tvbinv_hpc.compat.tvb_inversion.utils import run_local

    monkeypatch.chdir(tmp_path)
    _, seq, metrics = build(n=6)
    got = []
    out = run_local(seq, metrics, "results", got.append, "NbMPRBackend", "ckpt", 1, **RUN)
    assert out.path.name == "results.npy" and (tmp_path / "results.npy").is_file()
    assert not (tmp_path / "ckpt").exists()
    (x,) = got
    summ = store.read_rows(out.path)
    assert x.shape == (6, len(summ["feature_names"]))
    assert np.array_equal(x[summ["index"]], summ["x"]) and np.isnan(np.delete(x, summ["index"], axis=0)).all()
    again = run_local(seq, metrics, "results.npy", got.append, **RUN)  # resumed: nothing redone, same matrix
    assert again.rows_done == 0 and np.array_equal(got[1], x, equal_nan=True)
    with pytest.raises(TvbinvError, match="reduction must be callable"):
        run_local(seq, metrics, "r2.h5", "not callable", **RUN)
    with pytest.raises(TvbinvError, match="filename must name a file"):
        run_local(seq, metrics, "", **RUN)
    old = np.array([[np.arange(3), 0.5]], dtype=object)  # tvb-inversion's results: kept, and named as such
    np.save("old.npy", old, allow_pickle=True)
    with pytest.raises(InputError, match="numpy .npy file"):
        run_local(seq, metrics, "old.npy", **RUN)
    with pytest.raises(InputError, match="numpy .npy file"):
        EstimatorSBI(seq.prior, seq=seq).load_summary_stats("old.npy")
    assert np.load("old.npy", allow_pickle=True)[0, 1] == 0.5


def test_estimator_takes_a_prior_or_an_sbi_model(tmp_path):
    from test_compat import template

    from tvbinv_hpc import sbiModel
    from tvbinv_hpc.compat.tvb_inversion.sbi import EstimatorSBI, Prior
    from tvbinv_hpc.compat.tvb_inversion.utils import data_path

    prior = Prior(["coupling.a"], torch.distributions.Uniform(0.1, 1.2))
    assert prior.param == ["coupling.a"]
    seq = prior.generate_sim_seq(template(), 5)
    assert np.array_equal(seq.values, sbiModel(template(), prior).generate_sim_seq(5).values)  # same seed
    assert EstimatorSBI(prior, seq=seq).theta is seq.values
    assert EstimatorSBI(prior, seq, None, None, "SNPE").seq is seq  # tvb-inversion's positional order
    with pytest.raises(TvbinvError, match="only 'SNPE'"):
        EstimatorSBI(prior, seq, None, None, "SNLE")
    assert EstimatorSBI(prior=prior, theta=torch.ones(3, 1)).theta.shape == (3, 1)
    assert EstimatorSBI(sbiModel(template(), prior), num_samples=3).seq.values.shape == (3, 1)
    with pytest.raises(TvbinvError, match="needs a prior"):
        EstimatorSBI(object())
    with pytest.raises(TvbinvError, match="not both"):
        EstimatorSBI(prior, prior=prior)
    with pytest.raises(TvbinvError, match="sbiModel"):
        EstimatorSBI(prior, num_samples=3)
    with pytest.raises(InputError, match="TVB_INVERSION_DATA"):
        data_path("no_such_file.zip")


def test_data_path_finds_a_checkout_without_importing_it(tmp_path, monkeypatch):
    import sys

    from tvbinv_hpc.compat.tvb_inversion.utils import data_path

    (tmp_path / "tvb_inversion").mkdir()
    (tmp_path / "tvb_inversion" / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (tmp_path / "data_input_files").mkdir()
    (tmp_path / "data_input_files" / "demo_theta.csv.gz").write_bytes(b"")
    monkeypatch.delenv("TVB_INVERSION_DATA", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert data_path("demo_theta.csv.gz") == str(tmp_path / "data_input_files" / "demo_theta.csv.gz")
    assert "tvb_inversion" not in sys.modules
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "demo_theta.csv.gz").write_bytes(b"")
    monkeypatch.setenv("TVB_INVERSION_DATA", str(other))  # the variable comes first
    assert data_path("demo_theta.csv.gz") == str(other / "demo_theta.csv.gz")


def test_sim_seq_as_tvb_inversion_builds_it():
    """tvb-inversion's SimSeq(template, params, values, getters): rows of per-name values, optional getters."""
    from test_compat import template

    from tvbinv_hpc.compat.tvb_inversion.parameters import SimSeq

    sim = template()
    seq = SimSeq(sim, ["coupling.a", "model.eta"], [[np.r_[0.2], np.r_[-4.6]], [np.r_[0.3], np.r_[-4.0]]],
                 [None, lambda v: v - 1.0])
    assert seq.names == ["coupling.a", "model.eta"] and np.array_equal(seq.values, [[0.2, -5.6], [0.3, -5.0]])
    assert seq[1].model.eta[0] == -5.0 and seq[1].coupling.a[0] == 0.3
    assert seq.seed == SimSeq(sim, ["coupling.a"], [[np.r_[0.2]]]).seed  # the fixed default seed
    with pytest.raises(TvbinvError, match="getters"):
        SimSeq(sim, ["coupling.a"], [[np.r_[0.2]]], [None, None])
