"""The torch-free sampler of a saved flow (simkit/surrogates/sampler.py): the same flow
and column maps as the torch path to float32 rounding, its own noise, reproducible on any
thread count, and ``simkit surrogate sample`` through it without importing torch."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import stats

from simkit.cli import main
from simkit.errors import SimkitError
from simkit.events import EventTable
from simkit.io import read_sample
from simkit.surrogates import FlowSurrogate, GANSurrogate, columns
from simkit.surrogates.contexts import contexts_from
from simkit.surrogates.fast_flow import FastSplineFlow, compiled_spline_available
from simkit.surrogates.sampler import SAMPLER_FILE, FlowSampler, NoSampler

pytestmark = pytest.mark.skipif(
    not compiled_spline_available(), reason="the compiled spline stage was not built"
)

SMALL = {"n_layers": 2, "hidden": 16, "batch_size": 256, "lr": 3e-3, "device": "cpu"}


def _events(n: int, seed: int = 0) -> EventTable:
    """Dijet-like columns of every kind the transforms take: log (masses, a count that
    is dequantized), logit (τ ratios), identity (η) and two azimuths (the frame)."""
    rng = np.random.default_rng(seed)
    mjj = rng.lognormal(8.0, 0.2, n)
    phi1 = rng.uniform(-np.pi, np.pi, n)
    phi2 = np.angle(np.exp(1j * (phi1 + np.pi + rng.normal(0, 0.3, n))))
    return EventTable.from_columns(
        {
            "mjj": mjj,
            "m_j1": rng.lognormal(4.5, 0.4, n) * (mjj / 3000) ** 0.5,
            "tau21_j1": rng.beta(4, 3, n),
            "n_j1": rng.poisson(30, n).astype(float) + 1,
            "eta_j1": rng.normal(0, 1.2, n),
            "phi_j1": phi1,
            "phi_j2": phi2,
        }
    )


@pytest.fixture(scope="module")
def flows(tmp_path_factory):
    """A conditional (on mjj) and an unconditional flow, fitted briefly and saved."""
    table = _events(3000)
    out = {}
    for name, condition in (("cond", ["mjj"]), ("plain", [])):
        model = FlowSurrogate(condition=condition, epochs=2, **SMALL).fit(table)
        folder = model.save(tmp_path_factory.mktemp(name) / "model")
        out[name] = (model, folder)
    return out


@pytest.mark.parametrize("name", ["cond", "plain"])
def test_the_same_flow_and_column_maps_as_the_torch_path(flows, name):
    """Given the same noise and contexts, the numpy networks with the compiled stages
    give the torch path's flow output, and numpy's column maps torch's, to float32
    rounding (a few 10⁻⁶ of values of order 1; 2·10⁻⁵ allowed)."""
    model, folder = flows[name]
    sampler = FlowSampler.load(folder)
    rng = np.random.default_rng(1)
    u = rng.standard_normal((5000, len(model.feature_columns_)), dtype=np.float32)
    c = rng.normal(0, 1.5, (5000, 1)).astype(np.float32) if model.condition_ else None
    fast = FastSplineFlow.from_normflows(model.net_)
    with torch.inference_mode():
        expected = fast.forward(torch.from_numpy(u), None if c is None else torch.from_numpy(c))
        physical = model.transform_.inverse(expected.clone()).numpy()
    got = sampler.flow(u, c)
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=2e-5)
    # the maps: continuous columns to float32 rounding (relative, or absolute for angles
    # near 0 that the frame's ±π rounded: float32's spacing at π is 2.4e-7); a dequantized
    # count floors, so it may differ by 1 where the two libraries' exp round across an
    # integer
    mapped = columns.inverse(expected.numpy().copy(), sampler.maps, columns.NUMPY)
    discrete = [model.feature_columns_.index("n_j1")]
    continuous = [j for j in range(mapped.shape[1]) if j not in discrete]
    np.testing.assert_allclose(mapped[:, continuous], physical[:, continuous], rtol=1e-5, atol=4e-6)
    assert np.abs(mapped[:, discrete] - physical[:, discrete]).max() <= 1
    assert (mapped[:, discrete] != physical[:, discrete]).mean() < 1e-3


def test_the_saved_sampler_is_the_one_in_memory_and_any_thread_count_gives_the_same_events(
    flows,
):
    model, folder = flows["cond"]
    context = contexts_from(_events(500, seed=9).column("mjj"))
    saved = FlowSampler.load(folder)
    fresh = FlowSampler.from_surrogate(model)
    one = saved.sample(9000, context, seed=4, chunk_size=5000, threads=1).features
    two = fresh.sample(9000, context, seed=4, chunk_size=5000, threads=2).features
    np.testing.assert_array_equal(one, two)
    other = saved.sample(9000, context, seed=5, chunk_size=5000).features
    assert not np.array_equal(one, other)


def test_its_events_follow_the_torch_paths_distribution(flows):
    """Other noise, same distribution: per column, a two-sample KS test of 20 k events
    from each path passes at p > 10⁻³ (7 columns: a false alarm once in ~140 seeds; the
    seeds are fixed). The contexts are drawn from the same stream, hence identical."""
    model, folder = flows["cond"]
    context = contexts_from(_events(2000, seed=3).column("mjj"))
    a = FlowSampler.load(folder).sample(20_000, context, seed=2)
    b = model.sample(20_000, context, seed=2)
    np.testing.assert_array_equal(a.column("mjj"), b.column("mjj"))
    for name in model.feature_columns_:
        assert stats.ks_2samp(a.column(name), b.column(name)).pvalue > 1e-3, name


def test_bad_contexts_are_refused_as_on_the_torch_path(flows):
    _, folder = flows["cond"]
    sampler = FlowSampler.load(folder)
    with pytest.raises(SimkitError, match="context values must be finite"):
        sampler.sample(3, np.array([3000.0, np.nan, 2000.0]))
    with pytest.raises(SimkitError, match="column 'mjj' is -5.0 at row 1: the log"):
        sampler.sample(2, np.array([3000.0, -5.0]))
    with pytest.raises(SimkitError, match="give contexts"):
        sampler.sample(10)


def test_folders_without_a_current_sampler_take_the_torch_path(flows, tmp_path):
    """No sampler file, one written for other weights, or a GAN: ``auto`` samples through
    torch and says so; ``--sampler torch-free`` refuses in one line."""
    (_, cond), (_, plain) = flows["cond"], flows["plain"]
    stale = tmp_path / "stale"
    shutil.copytree(cond, stale)
    shutil.copy(plain / SAMPLER_FILE, stale / SAMPLER_FILE)
    missing = tmp_path / "missing"
    shutil.copytree(cond, missing)
    (missing / SAMPLER_FILE).unlink()
    damaged = tmp_path / "damaged"
    shutil.copytree(cond, damaged)
    (damaged / SAMPLER_FILE).write_bytes((cond / SAMPLER_FILE).read_bytes()[:100])
    gan = GANSurrogate(
        epochs=1, hidden=(16,), critic_hidden=(16,), batch_size=256, device="cpu"
    ).fit(_events(600))
    gan_folder = gan.save(tmp_path / "gan")
    for folder, reason in (
        (stale, "written for other weights"),
        (missing, "no sampler.safetensors"),
        (damaged, "damaged"),
        (gan_folder, "a GAN"),
    ):
        with pytest.raises(NoSampler, match=reason):
            FlowSampler.load(folder)
    extra = ["--condition-range", "2500:3500"]
    for folder, flags in ((stale, extra), (missing, extra), (damaged, extra), (gan_folder, [])):
        out = tmp_path / f"{folder.name}.h5"
        assert main(["surrogate", "sample", str(folder), "-n", "50", "-o", str(out), *flags]) == 0
        assert "torch-free" not in read_sample(out).provenance["settings"]["sampler"]
        bad = ["--sampler", "torch-free", "--device", "cpu"]
        assert main(["surrogate", "sample", str(folder), "-n", "5", "-o", str(out), *flags, *bad])
    out = tmp_path / "fresh.h5"
    assert main(["surrogate", "sample", str(cond), "-n", "50", "-o", str(out), *extra]) == 0
    assert read_sample(out).provenance["settings"]["sampler"].startswith("torch-free")


def test_a_flow_the_fast_path_does_not_implement_saves_no_sampler(tmp_path):
    model = FlowSurrogate(epochs=1, permutation="lu", **SMALL).fit(_events(600))
    folder = tmp_path / "lu"
    (folder).mkdir()
    (folder / SAMPLER_FILE).write_bytes(b"left from an earlier model")
    model.save(folder)
    assert not (folder / SAMPLER_FILE).exists()


def test_surrogate_sample_runs_without_importing_torch(flows, tmp_path):
    """The command, in a fresh interpreter: it writes the events and never imports torch
    (nor normflows)."""
    _, folder = flows["cond"]
    out = tmp_path / "events.h5"
    script = (
        "import sys\n"
        "from simkit.cli import main\n"
        f"code = main(['surrogate', 'sample', {str(folder)!r}, '-n', '20000', '-o', "
        f"{str(out)!r}, '--condition-range', '2500:3500', '--device', 'cpu', '-q'])\n"
        "print(code, 'torch' in sys.modules, 'normflows' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "False", "False"]
    assert len(read_sample(out)) == 20000
