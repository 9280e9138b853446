"""The surrogates' fitted preprocessing: kinds chosen from data, exact bijection, log|det|."""

import json

import numpy as np
import pytest
import torch

from simkit.errors import SimkitError
from simkit.surrogates.transforms import ColumnTransform, parse_kind, parse_overrides

COLUMNS = ("mjj", "tau21_j1", "eta_j1", "n_j1")


def _jet_like(n=2000, seed=0):
    r = np.random.default_rng(seed)
    return np.column_stack(
        [
            r.lognormal(np.log(3000), 0.2, n),  # positive → log
            r.beta(4, 3, n),  # in (0, 1) → logit
            r.normal(0, 1.2, n),  # any sign → identity
            r.poisson(40, n) + 1.0,  # integer counts → dequantized, then log
        ]
    )


def test_kinds_are_chosen_from_the_data():
    t = ColumnTransform(COLUMNS).fit(_jet_like())
    assert t.kinds_ == ("log", "logit", "identity", "log")
    assert t.discrete_ == (False, False, False, True)
    assert t.describe()["n_j1"] == "log dequantized"


def test_overrides_win():
    x = _jet_like()
    x[:, 2] = np.clip(x[:, 2], -2.4, 2.4)
    t = ColumnTransform(COLUMNS).fit(x, overrides={"mjj": "identity", "eta_j1": "logit:-2.5:2.5"})
    assert t.kinds_[:3] == ("identity", "logit", "logit")
    assert float(t.low[2]) == -2.5 and float(t.high[2]) == 2.5


def test_round_trip_is_exact_in_float64():
    x = _jet_like()
    t = ColumnTransform(COLUMNS).fit(x)
    xd = torch.as_tensor(t.dequantize(x, np.random.default_rng(1)))
    z, _ = t.forward(xd)
    back = t.inverse(z.clone())
    # continuous columns come back to rounding error; the count comes back to its integer
    np.testing.assert_allclose(back[:, :3].numpy(), x[:, :3], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back[:, 3].numpy(), x[:, 3])


def test_standardized_with_weights():
    x = _jet_like()
    w = np.random.default_rng(2).uniform(0.2, 3.0, len(x))
    t = ColumnTransform(COLUMNS[:3]).fit(x[:, :3], w)
    z = t.forward(torch.as_tensor(x[:, :3]))[0].numpy()
    mean = (w[:, None] * z).sum(0) / w.sum()
    var = (w[:, None] * (z - mean) ** 2).sum(0) / w.sum()
    np.testing.assert_allclose(mean, 0, atol=1e-10)
    np.testing.assert_allclose(var, 1, atol=1e-10)


def test_log_det_equals_the_autograd_jacobian():
    x = _jet_like(50)
    t = ColumnTransform(COLUMNS).fit(x)
    xd = torch.as_tensor(t.dequantize(x, np.random.default_rng(3)))
    _, logdet = t.forward(xd)
    for i in range(10):
        jac = torch.autograd.functional.jacobian(lambda row: t.forward(row[None])[0][0], xd[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        assert float(logdet[i]) == pytest.approx(float(expected), abs=1e-10)


def test_log_det_matches_finite_differences():
    # an independent check of the same quantity: central differences per column
    x = _jet_like(20)[:, :3]
    t = ColumnTransform(COLUMNS[:3]).fit(x)
    xt = torch.as_tensor(x)
    _, logdet = t.forward(xt)
    h = 1e-6 * np.maximum(np.abs(x), 1e-3)
    slopes = []
    for j in range(3):
        step = torch.zeros_like(xt)
        step[:, j] = torch.as_tensor(h[:, j])
        diff = t.forward(xt + step)[0][:, j] - t.forward(xt - step)[0][:, j]
        slopes.append(np.log(np.abs(diff.numpy() / (2 * h[:, j]))))
    # the transform is elementwise, so log|det| is the sum of log slopes (1e-6: FD error)
    np.testing.assert_allclose(logdet.numpy(), np.sum(slopes, axis=0), atol=1e-6)


def test_saved_config_and_buffers_rebuild_it():
    x = _jet_like()
    t = ColumnTransform(COLUMNS).fit(x)
    u = ColumnTransform.from_config(t.config())
    u.load_state_dict(t.state_dict())
    xd = torch.as_tensor(t.dequantize(x, np.random.default_rng(4)))
    assert torch.equal(t.forward(xd)[0], u.forward(xd)[0])
    assert u.describe() == t.describe()


def test_out_of_domain_values_are_refused_with_the_column_and_row():
    t = ColumnTransform(COLUMNS).fit(_jet_like())
    bad = _jet_like(5)
    bad[3, 1] = 1.0
    with pytest.raises(SimkitError, match=r"'tau21_j1' is 1.0 at row 3: the logit"):
        t.check(bad)
    with pytest.raises(SimkitError, match=r"'mjj' is -1.0 at row 0: the log transform"):
        ColumnTransform(COLUMNS).fit(_jet_like(), overrides={"mjj": "log"}).check(
            np.array([[-1.0, 0.5, 0.0, 3.0]])
        )


@pytest.mark.parametrize(
    "spec, message",
    [
        ("sqrt", "unknown transform"),
        ("logit:1", "LO:HI"),
        ("log:0:1", "only logit"),
        ("logit:2:1", "LO < HI"),
        ("logit:a:b", "numbers"),
    ],
)
def test_bad_kinds_are_clear_errors(spec, message):
    with pytest.raises(SimkitError, match=message):
        parse_kind(spec)


def test_overrides_parse_and_name_unknown_columns():
    assert parse_overrides(["m_j1=log", "eta=logit:-3:3"]) == {"m_j1": "log", "eta": "logit:-3:3"}
    with pytest.raises(SimkitError, match="COLUMN=KIND"):
        parse_overrides(["m_j1"])
    with pytest.raises(SimkitError, match="unknown column"):
        ColumnTransform(COLUMNS).fit(_jet_like(), overrides={"pt": "log"})


def test_a_ratio_touching_zero_gets_a_logit_with_a_margin():
    x = np.random.default_rng(5).beta(2, 3, (500, 1))
    x[7, 0] = 0.0
    t = ColumnTransform(("tau21_j2",)).fit(x)
    assert t.kinds_ == ("logit",)
    assert t.describe() == {"tau21_j2": "logit(-0.001,1.001)"}
    back = t.inverse(t.forward(torch.as_tensor(x))[0])
    np.testing.assert_allclose(back.numpy(), x, atol=1e-12)


def test_azimuthal_angles_get_a_logit_on_minus_pi_to_pi():
    phi = np.random.default_rng(6).uniform(-np.pi, np.pi, (1000, 1)).astype(np.float32)
    phi[0, 0] = np.float32(np.pi)  # float32's π is above π: the bound must still hold it
    t = ColumnTransform(("phi_j1",)).fit(phi)
    assert t.describe() == {"phi_j1": "logit(-3.1416,3.1416)"}
    z = t.forward(torch.as_tensor(phi, dtype=torch.float64))[0]
    np.testing.assert_allclose(t.inverse(z).numpy(), phi, atol=1e-6)


def test_non_negative_column_touching_zero_gets_a_shifted_log():
    # the mass of a one-particle jet is 0: one such event must not turn the whole mass
    # column into `identity` (a flow could then generate negative masses)
    r = np.random.default_rng(3)
    mass = r.lognormal(np.log(80.0), 0.5, 3000)
    mass[7] = 0.0
    t = ColumnTransform(("m_j2",)).fit(mass[:, None])
    assert t.kinds_ == ("log",)
    shift = -float(t.low[0])
    assert shift == pytest.approx(1e-3 * np.median(mass), rel=1e-5)
    assert t.describe()["m_j2"] == f"log(x+{shift:g})"
    x = torch.as_tensor(mass[:, None])
    z, logdet = t.forward(x)
    np.testing.assert_allclose(t.inverse(z.clone()).numpy(), mass[:, None], rtol=1e-12, atol=1e-9)
    # log|dz/dx| equals the autograd derivative, the zero included
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(t.forward(xg)[0].sum(), xg)
    np.testing.assert_allclose(logdet.numpy(), np.log(grad.numpy()[:, 0]), rtol=1e-10)
    # anything the model generates maps back above −shift (−0.08 GeV here), however far
    # into the tail: no mass of −200 GeV as with `identity`
    assert -shift < float(t.inverse(torch.full((1, 1), -50.0, dtype=torch.float64))[0, 0]) < 0
    with pytest.raises(SimkitError, match="needs values above"):
        t.check(np.array([[-1.0]]))


def test_log_shift_spec():
    assert parse_kind("log") == ("log", 0.0, 1.0)
    assert parse_kind("log:-0.5") == ("log", -0.5, 1.0)
    for bad in ("log:x", "log:1:2", "identity:3"):
        with pytest.raises(SimkitError):
            parse_kind(bad)


@pytest.mark.parametrize("lowest, kind", [(-3e-5, "log"), (-5.0, "identity")])
def test_negative_masses_of_rounding_size_still_get_the_shifted_log(lowest, kind):
    # float32 rounding of m² made one jet mass −3e-5 GeV in a 150k-event Pythia sample:
    # that must not cost the whole column its log (a flow with `identity` generated
    # m_j2 down to −215 GeV and missed its tail by 35 %); a genuinely signed column
    # (−5 GeV) stays `identity`
    r = np.random.default_rng(4)
    mass = r.lognormal(np.log(80.0), 0.5, 3000)
    mass[11] = lowest
    t = ColumnTransform(("m_j2",)).fit(mass[:, None])
    assert t.kinds_ == (kind,)


# --------------------------------------------------------------------------- azimuthal frame

DIJET = ("phi_j1", "pt_j1", "phi_j2", "eta_j2")


def _back_to_back(n=2000, seed=7):
    """Dijet-like angles: φ₁ uniform, φ₂ = φ₁ + π + a narrow recoil, wrapped; φ₁ near ±π
    included, where the absolute φ₂ jumps from one edge to the other."""
    r = np.random.default_rng(seed)
    phi1 = r.uniform(-np.pi, np.pi, n)
    phi2 = np.angle(np.exp(1j * (phi1 + np.pi + r.laplace(0, 0.1, n))))
    return np.column_stack([phi1, r.lognormal(7, 0.1, n), phi2, r.normal(0, 1, n)])


def test_azimuth_frame_takes_the_first_angle_as_reference():
    x = _back_to_back()
    t = ColumnTransform(DIJET).fit(x, azimuth_frame=True)
    assert t.azimuth_ == {"reference": "phi_j1", "relative": ["phi_j2"], "offset": np.pi}
    assert t.kinds_ == ("logit", "log", "logit", "identity")
    assert t.describe()["phi_j2"].endswith("of phi_j2 − phi_j1 − π (mod 2π)")
    # the relative angle is the recoil: δφ = wrap(φ₂ − φ₁ − π), centred on 0
    delta = t.to_frame(x)[:, 2]
    np.testing.assert_allclose(delta, np.angle(np.exp(1j * (x[:, 2] - x[:, 0] - np.pi))))
    assert abs(np.median(delta)) < 0.02 and np.percentile(np.abs(delta), 90) < 0.3
    # off by default, with one angle, or when an angle's kind is given by hand
    assert ColumnTransform(DIJET).fit(x).azimuth_ is None
    assert ColumnTransform(DIJET[:2]).fit(x[:, :2], azimuth_frame=True).azimuth_ is None
    overridden = ColumnTransform(DIJET).fit(
        x, azimuth_frame=True, overrides={"phi_j2": "logit:-3.2:3.2"}
    )
    assert overridden.azimuth_ is None


def test_azimuth_frame_is_an_exact_bijection():
    x = _back_to_back()
    t = ColumnTransform(DIJET).fit(x, azimuth_frame=True)
    xt = torch.as_tensor(x)
    z, _ = t.forward(xt)
    np.testing.assert_allclose(t.inverse(z.clone()).numpy(), x, rtol=1e-12, atol=1e-12)
    # any point of the model space maps to a relative angle in [−π, π) and back to itself
    z_any = torch.as_tensor(np.random.default_rng(8).normal(0, 2, (500, 4)))
    back = t.inverse(z_any.clone())
    assert float(back[:, 2].abs().max()) <= np.pi
    np.testing.assert_allclose(t.forward(back)[0].numpy(), z_any.numpy(), atol=1e-7)
    # angles are defined modulo 2π: φ₂ and φ₂ ± 2π are the same event
    shifted = xt.clone()
    shifted[:, 2] += 2 * np.pi * torch.sign(-shifted[:, 2])
    np.testing.assert_allclose(t.forward(shifted)[0].numpy(), z.numpy(), atol=1e-9)


def test_azimuth_frame_has_a_unit_jacobian():
    x = _back_to_back(40)
    framed = ColumnTransform(DIJET).fit(x, azimuth_frame=True)
    xt = torch.as_tensor(x)
    _, logdet = framed.forward(xt)
    # log|det| of the whole map equals autograd's (the frame mixes φ₁ into δφ: a full,
    # triangular Jacobian, not a diagonal one) ...
    for i in range(10):
        jac = torch.autograd.functional.jacobian(lambda row: framed.forward(row[None])[0][0], xt[i])
        assert float(logdet[i]) == pytest.approx(
            float(torch.linalg.slogdet(jac).logabsdet), abs=1e-10
        )
    # ... and is that of the same per-column maps applied to (φ₁, δφ): the frame adds 0
    plain = ColumnTransform.from_config({**framed.config(), "azimuth": None})
    plain.load_state_dict(framed.state_dict())
    z_plain, logdet_plain = plain.forward(torch.as_tensor(framed.to_frame(x)))
    np.testing.assert_array_equal(logdet.numpy(), logdet_plain.numpy())
    np.testing.assert_array_equal(framed.forward(xt)[0].numpy(), z_plain.numpy())


def test_azimuth_frame_is_saved_as_json_and_old_descriptions_load():
    x = _back_to_back()
    t = ColumnTransform(DIJET).fit(x, azimuth_frame=True)
    config = json.loads(json.dumps(t.config()))
    u = ColumnTransform.from_config(config)
    u.load_state_dict(t.state_dict())
    z = t.forward(torch.as_tensor(x))[0]
    assert torch.equal(u.forward(torch.as_tensor(x))[0], z)
    assert torch.equal(u.inverse(z.clone()), t.inverse(z.clone()))
    # a description written before the frame existed has no "azimuth": absolute angles
    old = ColumnTransform(DIJET).fit(x)
    description = old.config()
    del description["azimuth"]
    rebuilt = ColumnTransform.from_config(description)
    rebuilt.load_state_dict(old.state_dict())
    assert rebuilt.azimuth_ is None
    assert torch.equal(rebuilt.forward(torch.as_tensor(x))[0], old.forward(torch.as_tensor(x))[0])
    with pytest.raises(SimkitError, match="azimuthal frame"):
        ColumnTransform.from_config({**config, "azimuth": {**config["azimuth"], "reference": "x"}})


def test_a_relative_angle_is_checked_in_the_frame():
    x = _back_to_back()
    t = ColumnTransform(DIJET).fit(x, azimuth_frame=True)
    t.check(x)
    bad = x[:5].copy()
    bad[2, 0] = 4.0  # the reference keeps its own range
    with pytest.raises(SimkitError, match=r"'phi_j1' is 4.0 at row 2"):
        t.check(bad)
