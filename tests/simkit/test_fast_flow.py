"""The fast sampling path of the spline flow: the same function as normflows' evaluation,
to float32 precision, in both directions; batches and threads change nothing.

On a CPU the sampling direction runs through the compiled spline stage (``_spline.c``)
where it was built, and through torch operations otherwise (or with ``compiled = False``);
the tests below run both where both exist.

"To float32 precision" is measured, not guessed: normflows' own float32 evaluation is
compared with the same flow in float64, and the fast path must stay within a few times
that rounding error of the float64 answer (a spline inverse amplifies rounding where its
bins are steep, so a fixed tolerance would be either loose or flaky).
"""

import copy
import json
import pickle

import numpy as np
import pytest
import torch

from simkit.surrogates import FlowSurrogate, fast_flow, load_surrogate
from simkit.surrogates.fast_flow import (
    EXP_SAFE,
    FastSplineFlow,
    UnsupportedFlow,
    compiled_spline_available,
)
from simkit.surrogates.flow import build_spline_flow

TINY = {"n_layers": 2, "hidden": 16, "n_blocks": 1, "batch_size": 256, "lr": 3e-3, "device": "cpu"}


def _random_flow(n_features, n_context, *, scale=0.15, **options):
    """A flow with random, non-trivial splines (normflows initializes near the identity)."""
    flow = build_spline_flow(n_features, n_context, **options).eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow


def _assert_float32_equivalent(fast, normflows32, normflows64, what):
    """|fast − exact| within 4× normflows' own float32 error (and 1e-6 absolute)."""
    own = (normflows32.double() - normflows64).abs().max().item()
    ours = (fast.double() - normflows64).abs().max().item()
    assert torch.isfinite(fast).all(), what
    assert ours <= 4 * own + 1e-6, f"{what}: fast error {ours:.3g}, normflows' own {own:.3g}"


#: the two evaluations of the sampling direction on a CPU
PATHS = [
    pytest.param(
        True,
        id="compiled",
        marks=pytest.mark.skipif(
            not compiled_spline_available(), reason="the compiled spline stage is not built"
        ),
    ),
    pytest.param(False, id="torch"),
]


def _fast(flow, compiled: bool) -> FastSplineFlow:
    fast = FastSplineFlow.from_normflows(flow)
    fast.compiled = compiled
    return fast


CASES = [
    pytest.param(16, 1, {"n_layers": 6, "hidden": 32}, id="16 columns, 1 condition"),
    pytest.param(5, 0, {"n_layers": 3, "hidden": 16}, id="odd columns, unconditional"),
    pytest.param(2, 3, {"n_layers": 4, "hidden": 8, "n_blocks": 1}, id="2 columns, 3 conditions"),
    pytest.param(4, 2, {"n_layers": 2, "hidden": 8, "permutation": "none"}, id="no permutation"),
    pytest.param(6, 1, {"n_layers": 3, "hidden": 16, "n_bins": 5}, id="5 bins"),
    pytest.param(6, 0, {"n_layers": 2, "hidden": 16, "n_bins": 16}, id="16 bins"),
]


@pytest.mark.parametrize("compiled", PATHS)
@pytest.mark.parametrize(("n_features", "n_context", "options"), CASES)
def test_samples_and_densities_equal_normflows(n_features, n_context, options, compiled):
    flow = _random_flow(n_features, n_context, **options)
    flow64 = copy.deepcopy(flow).double()
    fast = _fast(flow, compiled)
    n = 4000
    # 2.5σ noise: a few values beyond the tail bound after some layers, the linear tails
    u = 2.5 * torch.randn(n, n_features)
    c = torch.randn(n, n_context) if n_context else None
    c64 = None if c is None else c.double()
    with torch.inference_mode():
        x32, ld32 = flow.forward_and_log_det(u, c)
        x64, ld64 = flow64.forward_and_log_det(u.double(), c64)
        x, ld = fast.forward_and_log_det(u, c)
        _assert_float32_equivalent(x, x32, x64, "samples")
        _assert_float32_equivalent(ld, ld32, ld64, "sampling log-det")
        torch.testing.assert_close(fast.forward(u, c), x, rtol=0, atol=0)
        # densities at the float64 samples, through the inverse direction
        events = x64.float()
        lp32 = flow.log_prob(events, c)
        lp64 = flow64.log_prob(events.double(), c64)
        _assert_float32_equivalent(fast.log_prob(events, c), lp32, lp64, "log-density")


def test_fast_path_is_a_bijection_with_consistent_log_dets():
    fast = FastSplineFlow.from_normflows(_random_flow(6, 2, n_layers=4, hidden=16))
    u, c = torch.randn(2000, 6), torch.randn(2000, 2)
    with torch.inference_mode():
        x, ld_forward = fast.forward_and_log_det(u, c)
        back, ld_inverse = fast.inverse_and_log_det(x, c)
    torch.testing.assert_close(back, u, atol=2e-4, rtol=1e-4)
    torch.testing.assert_close(ld_inverse, -ld_forward, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("compiled", PATHS)
def test_batches_and_threads_give_identical_events(compiled):
    fast = _fast(_random_flow(7, 1, n_layers=3, hidden=16), compiled)
    u, c = torch.randn(1000, 7), torch.randn(1000, 1)
    with torch.inference_mode():
        one = fast.forward(u, c, batch_size=128, threads=1)
        pooled = fast.forward(u, c, batch_size=128, threads=3)
        lp_one = fast.log_prob(one, c, batch_size=300, threads=1)
        lp_pooled = fast.log_prob(one, c, batch_size=300, threads=2)
    assert torch.equal(one, pooled)
    assert torch.equal(lp_one, lp_pooled)
    assert torch.get_num_threads() >= 1  # restored


@pytest.mark.parametrize("compiled", PATHS)
def test_extreme_bin_logits_take_the_stable_softmax(compiled):
    flow = _random_flow(4, 1, n_layers=2, hidden=8)
    with torch.no_grad():  # width/height logits far beyond exp's safe range
        for layer in flow.flows[::2]:
            layer.prqct.transform_net.final_layer.bias.mul_(EXP_SAFE * 40)
    flow64 = copy.deepcopy(flow).double()
    fast = _fast(flow, compiled)
    u, c = torch.randn(500, 4), torch.randn(500, 1)
    with torch.inference_mode():
        _assert_float32_equivalent(
            fast.forward(u, c), flow.forward(u, c), flow64.forward(u.double(), c.double()), "x"
        )


@pytest.mark.skipif(not compiled_spline_available(), reason="compiled stage not built")
def test_every_build_of_the_compiled_stage_gives_the_same_bits():
    """The compiled stage is built for plain x86-64, AVX2 + FMA and AVX-512 and takes the
    best this CPU runs; the arithmetic is the same in each (no contraction), so samples,
    log-dets, the stable-softmax branch, non-finite noise and the sampler's network
    epilogues (one-column context gates included) come out bit for bit alike (a NaN
    is a NaN in each, its sign bit aside)."""
    from simkit.events import EventTable
    from simkit.surrogates import _spline
    from simkit.surrogates.sampler import FlowSampler

    flow = _random_flow(7, 1, n_layers=3, hidden=16)
    with torch.no_grad():  # one coupling's bins beyond exp's safe range
        flow.flows[0].prqct.transform_net.final_layer.bias.mul_(EXP_SAFE * 40)
    fast = FastSplineFlow.from_normflows(flow)
    model = FlowSurrogate(condition=["c"], n_layers=2, hidden=16, epochs=1, device="cpu")
    rng = np.random.default_rng(3)
    table = {"c": rng.normal(5, 1, 600), "x": rng.normal(0, 1, 600), "y": rng.gamma(2, 1, 600)}
    sampler = FlowSampler.from_surrogate(model.fit(EventTable.from_columns(table)))
    u, c = torch.randn(3000, 7), torch.randn(3000, 1)
    u[5, 1], u[9, 3] = float("nan"), float("inf")
    u_s = rng.standard_normal((3000, 2), dtype=np.float32)
    c_s = rng.normal(0, 2, (3000, 1)).astype(np.float32)
    results = {}
    before = _spline.instruction_set
    try:
        for build in _spline.instruction_sets:
            _spline.use(build)
            with torch.inference_mode():
                x, log_det = fast.forward_and_log_det(u, c)
            results[build] = (x.numpy().copy(), log_det.numpy().copy(), sampler.flow(u_s, c_s))
    finally:
        _spline.use(before)
    assert len(results) >= 1
    first = next(iter(results.values()))
    for build, arrays in results.items():
        for got, want in zip(arrays, first, strict=True):
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=build)
            number = ~np.isnan(want)  # a NaN's sign bit may differ between builds
            assert got[number].tobytes() == want[number].tobytes(), build
    with pytest.raises(ValueError, match="no build named"):
        _spline.use("not-a-build")


@pytest.mark.skipif(not compiled_spline_available(), reason="compiled stage not built")
def test_compiled_and_torch_paths_treat_non_finite_noise_alike():
    fast = FastSplineFlow.from_normflows(_random_flow(6, 1, n_layers=4, hidden=16))
    u, c = torch.randn(300, 6), torch.randn(300, 1)
    u[7, 2], u[11, 0], u[19, 5] = float("nan"), float("inf"), -float("inf")
    c[23, 0] = float("nan")
    with torch.inference_mode():
        compiled = fast.forward(u, c)
        fast.compiled = False
        reference = fast.forward(u, c)
    bad = ~torch.isfinite(reference).all(dim=1)
    assert bad.sum() >= 2  # the NaN noise and the NaN context at least
    # the same events are non-finite (which columns may differ: the compiled path reads
    # the whole table in each network's first layer, 0 × inf is NaN), the rest agree
    torch.testing.assert_close(~torch.isfinite(compiled).all(dim=1), bad)
    torch.testing.assert_close(compiled[~bad], reference[~bad], atol=1e-5, rtol=1e-5)


def test_without_the_compiled_stage_sampling_takes_the_torch_path(monkeypatch):
    flow = _random_flow(5, 1, n_layers=2, hidden=8)
    u, c = torch.randn(200, 5), torch.randn(200, 1)
    with torch.inference_mode():
        expected = _fast(flow, False).forward(u, c)
        monkeypatch.setattr(fast_flow, "_compiled", None)
        fast = FastSplineFlow.from_normflows(flow)
        assert not compiled_spline_available() and not fast.compiled
        assert torch.equal(fast.forward(u, c), expected)


@pytest.mark.skipif(not compiled_spline_available(), reason="compiled stage not built")
def test_compiled_stage_checks_the_arrays_it_is_given():
    with pytest.raises(ValueError, match="contiguous float32 on the CPU with 4 × 3"):
        fast_flow._float32_rows(torch.zeros(4, 3, dtype=torch.float64), 4, 3, "values")
    with pytest.raises(ValueError, match="bin logits"):
        fast_flow._float32_rows(torch.zeros(3, 4).t(), 4, 3, "bin logits")
    with pytest.raises(ValueError, match="bins must be in"):
        fast_flow._compiled.shared_inverse(0, 1, 0, 1, 0, 0, 0, 0, 1, 4.0)


@pytest.mark.parametrize(
    ("n_features", "options"),
    [(1, {}), (3, {"permutation": "lu"})],
    ids=["one column (autoregressive spline)", "LU permutation"],
)
def test_unsupported_architectures_are_refused(n_features, options):
    flow = build_spline_flow(n_features, 1, n_layers=2, hidden=8, **options)
    with pytest.raises(UnsupportedFlow):
        FastSplineFlow.from_normflows(flow)


# --------------------------------------------------------------------------- the surrogate


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    r = np.random.default_rng(5)
    n = 3000
    mjj = r.uniform(2000, 4000, n)
    data = np.column_stack([mjj, mjj / 20 + r.normal(0, 5, n), r.uniform(0.1, 0.9, n)])
    torch.manual_seed(0)
    flow = FlowSurrogate(condition=["mjj"], epochs=2, seed=3, **TINY)
    return flow.fit(data, names=["mjj", "m_j1", "tau21_j1"])


def test_surrogate_samples_and_densities_match_normflows_path(fitted):
    context = np.linspace(2100, 3900, 3000)[:, None]
    fitted.sampler = "auto"
    fast = fitted.sample(context=context, seed=11)
    fitted.sampler = "normflows"
    try:
        slow = fitted.sample(context=context, seed=11)
        lp_slow = fitted.log_prob(slow)
    finally:
        fitted.sampler = "auto"
    np.testing.assert_allclose(fast.features, slow.features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fitted.log_prob(slow), lp_slow, rtol=1e-5, atol=1e-4)


def test_sampler_torch_skips_the_compiled_stage_and_says_so(fitted):
    context = np.linspace(2100, 3900, 500)[:, None]
    try:
        fitted.sampler = "torch"
        assert fitted.sampling_path("cpu") == "fast path (torch) on cpu"
        torch_path = fitted.sample(context=context, seed=4).features
        fitted.sampler = "normflows"
        assert fitted.sampling_path("cpu") == "normflows on cpu"
    finally:
        fitted.sampler = "auto"
    if compiled_spline_available():
        assert fitted.sampling_path("cpu").startswith("fast path, compiled spline stage (")
    np.testing.assert_allclose(
        fitted.sample(context=context, seed=4).features, torch_path, rtol=1e-4, atol=1e-4
    )


def test_a_sampled_surrogate_copies_and_pickles(fitted):
    context = [[3000.0]] * 300
    events = fitted.sample(context=context, seed=6).features  # fills the per-thread buffers
    for twin in (copy.deepcopy(fitted), pickle.loads(pickle.dumps(fitted))):
        np.testing.assert_array_equal(twin.sample(context=context, seed=6).features, events)


def test_sampler_is_a_runtime_setting(fitted, tmp_path):
    fitted.save(tmp_path / "model")
    params = json.loads((tmp_path / "model" / "config.json").read_text())["config"]["params"]
    assert "sampler" not in params
    loaded = load_surrogate(tmp_path / "model", device="cpu")
    assert loaded.sampler == "auto"
    np.testing.assert_array_equal(
        loaded.sample(context=[[3000.0]] * 50, seed=2).features,
        fitted.sample(context=[[3000.0]] * 50, seed=2).features,
    )


def test_one_generated_column_falls_back_to_normflows():
    r = np.random.default_rng(0)
    flow = FlowSurrogate(epochs=1, **TINY).fit(r.normal(size=(500, 1)), names=["x"])
    assert flow._fast_flow(torch.device("cpu")) is None
    assert flow.sample(20, seed=0).features.shape == (20, 1)


def test_unknown_sampler_is_a_clear_error(fitted):
    fitted.sampler = "fastest"
    try:
        with pytest.raises(Exception, match="unknown sampler"):
            fitted.sample(context=[[3000.0]], seed=0)
    finally:
        fitted.sampler = "auto"
