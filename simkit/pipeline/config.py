"""The pipeline's TOML config: every key declared once, checked on the way in.

:data:`SECTIONS` is the schema (types, defaults, ranges, one help line per key); the
table of docs/reference/config.md is generated from it (``simkit run --schema``).
:func:`load_config` reads a file (or takes an already-parsed document), fills in the
defaults, checks every value and the rules that tie keys together, and returns the
resolved config with the warnings it has for the user.

>>> config, warnings = load_config({"generate": {"sim_events": 500}})
>>> config["generate"]["sim_events"], config["unfold"]["iterations"]
(500, 10)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from detectors.labels import DEFAULT_TAG
from detectors.scan import SCAN_MIN_COUNT, SCAN_WIDTH_FACTOR
from detectors.search import SearchConfig
from detectors.template import CLASSIFIERS, TemplateClassifierConfig
from detectors.templates import TEMPLATE_KINDS
from simkit.errors import SimkitError
from simkit.generators.pythia import DEFAULT_TUNE, TUNES
from simkit.pipeline.schema import Key, Section, parse_document
from validation.gate import DEFAULT_ALPHA, DEFAULT_AUC_TOLERANCE, DEFAULT_CHI2_TOLERANCE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The jet-substructure columns of both jets: what the detectors read by default, and
#: so what the surrogates model by default (with ``mjj`` as their condition).
SUBSTRUCTURE = (
    "m_j1",
    "tau21_j1",
    "tau32_j1",
    "n_j1",
    "m_j2",
    "tau21_j2",
    "tau32_j2",
    "n_j2",
)
SURROGATE_KINDS = ("flow", "gan")
DETECTOR_MODELS = ("ae", "vae")
LABEL_OPTIONS = ("all", "sideband", "tag-and-probe")
from simkit.regions import SR_COLUMN  # noqa: E402  (re-exported for the pipeline)

# the search's defaults are its dataclasses' (declared once, there)
_CLASSIFIER = TemplateClassifierConfig()
_SEARCH = SearchConfig()


def _increasing(window: list[float]) -> str | None:
    return None if window[0] < window[1] else "must be increasing (low, high)"


def _unique(values: list) -> str | None:
    return None if len(set(values)) == len(values) else "must not repeat an entry"


def _tag(text: str) -> str | None:
    from detectors.labels import TagSelection

    try:
        TagSelection.parse(text)
    except SimkitError as exc:
        return f"is not a tag selection ({exc})"
    return None


def _eps_targets(values: list[float]) -> str | None:
    if any(not 0.0 < v < 1.0 for v in values):
        return "must lie strictly between 0 and 1"
    return _unique(values)


def _probability(value: float) -> str | None:
    return None if 0.0 < value < 1.0 else "must lie strictly between 0 and 1"


def _scheduler(text: str) -> str | None:
    from simkit.shards import parse_scheduler

    try:
        parse_scheduler(text)
    except SimkitError as exc:
        return f"is not a Dask scheduler ({exc})"
    return None


def _tune(name: str) -> str | None:
    return None if name in TUNES else f"is not a tune (tunes: {', '.join(TUNES)})"


SECTIONS: tuple[Section, ...] = (
    Section(
        "run",
        [
            Key("seed", int, 1, "seed of the whole run; each stage derives its own", low=0),
            Key(
                "device",
                str,
                "auto",
                "where torch runs: auto takes a CUDA GPU when there is one",
                choices=("auto", "cpu", "cuda"),
            ),
            Key(
                "jobs",
                int,
                2,
                "worker processes of the sharded stages without a scheduler: the Pythia "
                "chain's shards and the scan's windows",
                low=1,
            ),
            Key(
                "threads",
                int,
                1,
                "torch CPU threads of the surrogates (unfolding, gate and detectors use one): "
                "on a shared machine more threads can be many times slower",
                low=1,
            ),
            Key(
                "scheduler",
                str,
                None,
                "Dask scheduler of the sharded stages (Pythia samples, detector scores, "
                "the search scan's windows): tcp://HOST:PORT, a scheduler file (.json) or "
                "local:N (absent: jobs local processes, the scan's windows one after "
                "another); the results are the same either way",
                optional=True,
                check=_scheduler,
            ),
        ],
        help="the run as a whole",
    ),
    Section(
        "generate",
        [
            Key("sim_events", int, 30000, "QCD dijet events simulated (gen + reco)", low=1),
            Key("data_events", int, 15000, "QCD dijet events of the pseudo-data", low=1),
            Key(
                "signal_events",
                int,
                2000,
                "W' → XY events generated: injected into the data, the rest kept for the ROC",
                low=1,
            ),
            Key(
                "sim_tune",
                str,
                DEFAULT_TUNE,
                "Pythia tune of the simulation (a name from `simkit generate qcd-dijet --help`)",
                check=_tune,
            ),
            Key(
                "data_tune",
                str,
                "a14",
                "Pythia tune of the pseudo-data (the same as sim_tune only warns: a closure test)",
                check=_tune,
            ),
            Key(
                "data_jes",
                float,
                1.03,
                "jet-energy scale of the pseudo-data's detector (the simulation's is 1)",
                low=0.5,
                high=2.0,
            ),
            Key(
                "s_over_b",
                float,
                0.02,
                "signal events injected per background event, among data events passing "
                "the selection",
                low=0.0,
                high=1.0,
            ),
            Key("mwprime", float, 3500.0, "W' mass (GeV)", low=1.0),
            Key("mx", float, 500.0, "X mass (GeV), X → qq̄", low=1.0),
            Key("my", float, 100.0, "Y mass (GeV), Y → qq̄", low=1.0),
            Key(
                "min_pt", float, 1200.0, "leading-jet pT threshold of the selection (GeV)", low=1.0
            ),
            Key(
                "pthat_min", float, 1100.0, "QCD: minimum pT of the hard scattering (GeV)", low=1.0
            ),
        ],
        help="Pythia 8 → detector → FastJet samples",
    ),
    Section(
        "surrogate",
        [
            Key(
                "kinds",
                list,
                ["flow"],
                "surrogates to fit: flow, gan or both",
                item=str,
                choices=SURROGATE_KINDS,
                min_items=1,
                check=_unique,
            ),
            Key(
                "condition",
                list,
                [SR_COLUMN],
                "columns the surrogates are conditioned on (must include mjj)",
                item=str,
                min_items=1,
                check=_unique,
            ),
            Key(
                "columns",
                list,
                list(SUBSTRUCTURE),
                "reco columns the surrogates generate (default: the detectors' inputs)",
                item=str,
                min_items=1,
                check=_unique,
            ),
            Key(
                "events",
                int,
                50000,
                "events sampled from each surrogate over the whole mjj spectrum",
                low=1,
            ),
            Key(
                "sr_events",
                int,
                50000,
                "validated-surrogate events sampled inside the signal region (labels = all)",
                low=1,
            ),
            Key(
                "bootstrap",
                int,
                100,
                "bootstrap replicas of the fidelity AUC interval",
                low=0,
            ),
            Key(
                "azimuth_frame",
                bool,
                True,
                "model the second jet's azimuth relative to the first (exact; false: "
                "absolute angles, for a detector that breaks the azimuthal symmetry)",
            ),
        ],
        help="conditional surrogates fitted to the simulation at reco level",
        subsections=(
            Section(
                "flow",
                [
                    Key("epochs", int, 80, "most training epochs", low=1),
                    Key("batch_size", int, 256, "events per step", low=1),
                    Key("layers", int, 6, "coupling layers", low=1),
                    Key("hidden", int, 64, "width of each coupling's network", low=1),
                    Key(
                        "patience",
                        int,
                        8,
                        "early stopping (epochs; 0 = off: under the cosine learning-rate "
                        "decay the loss can fall again late; the best epoch is kept anyway)",
                        low=0,
                    ),
                ],
                help="the normalizing flow (normflows neural-spline couplings)",
            ),
            Section(
                "gan",
                [
                    Key("epochs", int, 50, "most training epochs", low=1),
                    Key("batch_size", int, 256, "events per step", low=1),
                    Key("layers", int, 3, "hidden layers of generator and critic", low=1),
                    Key("hidden", int, 256, "width of those layers", low=1),
                    Key("patience", int, 15, "early stopping (epochs; 0 = off)", low=0),
                ],
                help="the WGAN-GP",
            ),
        ),
    ),
    Section(
        "unfold",
        [
            Key(
                "iterations",
                int,
                10,
                "most OmniFold iterations (fewer when the convergence rule stops it)",
                low=1,
                high=50,
            ),
            Key(
                "columns",
                list,
                None,
                "observables unfolded (absent: every column)",
                item=str,
                min_items=1,
                optional=True,
                check=_unique,
            ),
            Key(
                "failed_reco",
                str,
                "learn",
                "sim events failing reco: learn their weight from gen (step 1b) or keep it "
                "(OmniFold's original rule)",
                choices=("keep", "learn"),
            ),
            Key(
                "tolerance",
                float,
                2.0,
                "convergence: stop once the step-1 AUC is < tolerance σ above 0.5 and the push "
                "weights stopped moving (0 = run all iterations)",
                low=0.0,
            ),
            Key(
                "push_tolerance",
                float,
                0.05,
                "convergence: RMS change of log push ≤ this × the first iteration's (or no "
                "longer shrinking: the classifiers' noise floor)",
                low=0.0,
            ),
            Key(
                "blind",
                bool,
                True,
                "keep the signal region out of OmniFold's step 1 and out of every "
                "comparison with the data (weights there are interpolated in mjj)",
            ),
            Key("ensemble", int, 1, "classifiers averaged per step", low=1),
            Key("epochs", int, 40, "most epochs per classifier", low=1),
            Key("batch_size", int, 4096, "classifier batch size", low=1),
        ],
        help="OmniFold: simulation → data",
    ),
    Section(
        "compare",
        [
            Key(
                "alpha",
                float,
                DEFAULT_ALPHA,
                "gate: significance level, 0 < alpha < 1; every p-value must be ≥ alpha / "
                "(number of tests: the AUC and one per column, Bonferroni)",
                check=_probability,
            ),
            Key(
                "auc_tolerance",
                float,
                DEFAULT_AUC_TOLERANCE,
                "gate: the AUC test is one-sided, of AUC ≤ 0.5 + auc_tolerance",
                low=0.0,
                high=0.49,
            ),
            Key(
                "chi2_tolerance",
                float,
                DEFAULT_CHI2_TOLERANCE,
                "gate: relative mis-modelling allowed per bin, added in quadrature to the χ² "
                "test's variance",
                low=0.0,
            ),
            Key("bins", int, 40, "histogram bins per column", low=2),
            Key("bootstrap", int, 100, "bootstrap replicas of the AUC interval", low=0),
            Key("pull", bool, True, "also compare the simulation × pull weights with the data"),
        ],
        help="the validation gate: validated when no test rejects agreement within the "
        "tolerances at significance alpha (AUC against its null; χ² per column)",
    ),
    Section(
        "detect",
        [
            Key(
                "models",
                list,
                ["vae"],
                "detectors: vae, ae or both",
                item=str,
                choices=DETECTOR_MODELS,
                min_items=1,
                check=_unique,
            ),
            Key(
                "labels",
                list,
                list(LABEL_OPTIONS),
                "label options, one detector each: all, sideband, tag-and-probe",
                item=str,
                choices=LABEL_OPTIONS,
                min_items=1,
                check=_unique,
            ),
            Key(
                "surrogate",
                str,
                None,
                "whose validated events train the detectors (absent: the first kind)",
                choices=SURROGATE_KINDS,
                optional=True,
            ),
            Key(
                "features",
                list,
                None,
                "detector inputs (absent: m, tau21, tau32, n of both jets)",
                item=str,
                min_items=1,
                optional=True,
                check=_unique,
            ),
            Key(
                "signal_region",
                list,
                [3300.0, 3700.0],
                "mjj window (GeV) of the signal region",
                item=float,
                length=2,
                low=0.0,
                check=_increasing,
            ),
            Key(
                "sidebands",
                list,
                None,
                "outer bounds (GeV) of the sidebands (absent: unbounded)",
                item=float,
                length=2,
                low=0.0,
                optional=True,
                check=_increasing,
            ),
            Key("tag", str, DEFAULT_TAG, "tag-and-probe: the tag jet's selection", check=_tag),
            Key("epochs", int, 200, "most training epochs", low=1),
            Key(
                "latent",
                int,
                None,
                "latent dimensions (absent: the model's default, 1)",
                low=1,
                optional=True,
            ),
            Key("beta", float, 1.0, "weight of the VAE's KL term", low=0.0),
            Key("patience", int, 10, "early stopping (epochs; 0 = off)", low=0),
        ],
        help="AE/VAE detectors trained on the validated surrogate background",
    ),
    Section(
        "evaluate",
        [
            Key(
                "eps_b_targets",
                list,
                [1e-2, 1e-3, 1e-4],
                "background efficiencies at which ε_S is reported",
                item=float,
                min_items=1,
                check=_eps_targets,
            ),
            Key(
                "target_eps_b",
                float,
                0.01,
                "background efficiency of the bump-hunt cut",
                low=1e-6,
                high=0.5,
            ),
            Key(
                "min_background",
                int,
                25,
                "SIC points need at least this many background events passing",
                low=1,
            ),
            Key("bin_width", float, 100.0, "bump hunt: mjj bin width (GeV)", low=1.0),
            Key(
                "mjj_range",
                list,
                None,
                "bump hunt: fit range (GeV) (absent: from the spectrum's peak)",
                item=float,
                length=2,
                low=0.0,
                optional=True,
                check=_increasing,
            ),
        ],
        help="ROC, SIC, ε_S at ε_B and the bump hunt",
    ),
    Section(
        "search",
        [
            Key("enabled", bool, True, "run the template search in the signal region"),
            Key(
                "template",
                str,
                "validated-flow",
                "background template: validated-flow (the flow × the reco-level "
                "reweighting of the blinded OmniFold weights), sideband-flow (CATHODE), "
                "reweighted-sim (SALAD)",
                choices=TEMPLATE_KINDS,
            ),
            Key(
                "template_events",
                int,
                200_000,
                "events sampled by the flow templates (window and sidebands)",
                low=1,
            ),
            Key(
                "classifier",
                str,
                _CLASSIFIER.classifier,
                "data-vs-template classifier: hgb (HistGradientBoosting) or mlp (3 × 64)",
                choices=CLASSIFIERS,
            ),
            Key("folds", int, _CLASSIFIER.folds, "k-folding over the data", low=2),
            Key("ensemble", int, _CLASSIFIER.ensemble, "classifiers averaged per fold", low=1),
            Key(
                "oversample",
                float,
                _CLASSIFIER.oversample,
                "template events per data event in training",
                low=0.01,
            ),
            Key(
                "efficiencies",
                list,
                list(_SEARCH.efficiencies),
                "data efficiencies of the cuts",
                item=float,
                min_items=1,
                check=_eps_targets,
            ),
            Key(
                "primary_efficiency",
                float,
                _SEARCH.primary_efficiency,
                "the one cut whose local Z is a window's (one of efficiencies, chosen "
                "before looking; absent: the most significant cut, with the trials "
                "factor for the number of cuts)",
                low=1e-9,
                high=0.999,
                optional=True,
            ),
            Key(
                "features",
                list,
                None,
                "classifier inputs (absent: the detectors' features)",
                item=str,
                min_items=1,
                optional=True,
                check=_unique,
            ),
            Key(
                "sideband_width",
                float,
                None,
                "width (GeV) of the template gate's sidebands on each side of the signal "
                "region (absent: the signal region's width)",
                low=1.0,
                optional=True,
            ),
            Key(
                "sideband_correction",
                str,
                _SEARCH.sideband_correction,
                "scale the template's efficiency by data/template of the same cut in the "
                "sidebands: auto (when the template fails its gate), always, never",
                choices=("auto", "always", "never"),
            ),
            Key(
                "scan",
                bool,
                False,
                "scan windows across mjj (each its own signal region: OmniFold blinded to "
                "it, its own template and classifier) and report a global significance; "
                "false: the [detect] signal region alone",
            ),
            Key(
                "scan_width",
                float,
                SCAN_WIDTH_FACTOR,
                "scan: window width in units of the dijet mass resolution σ(m)·m measured "
                "on the simulation (the step is half a width)",
                low=0.5,
            ),
            Key(
                "scan_min_count",
                int,
                SCAN_MIN_COUNT,
                "scan: the highest window still holds this many data events",
                low=10,
            ),
        ],
        help="the search: a k-folded classifier of the data against a background template "
        "inside the signal region, a cut, and the count against the template's estimate",
    ),
)

#: The built-in demo config (package data; ``examples/demo.toml`` is a copy).
DEMO_CONFIG = "demo.toml"


def demo_config_path() -> Path:
    """Where the built-in demo config lies (inside the installed package)."""
    return Path(str(resources.files("simkit.pipeline").joinpath(DEMO_CONFIG)))


def read_toml(path: str | os.PathLike) -> dict:
    """A TOML file as a dict; a syntax error is one line naming the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SimkitError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise SimkitError(f"{path}: is a folder, not a config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SimkitError(f"{path}: not valid TOML: {exc}") from None


def load_config(
    config: str | os.PathLike | Mapping[str, Any], source: str | None = None
) -> tuple[dict, list[str]]:
    """Validate a config (a TOML path or a parsed document): ``(resolved, warnings)``.

    Missing keys take their defaults; an unknown key, a value of the wrong type or
    out of range, or keys that contradict each other raise a one-line
    :class:`~simkit.errors.SimkitError` naming the file and the key.
    """
    if isinstance(config, Mapping):
        document, where = dict(config), source or "<config>"
    else:
        document, where = read_toml(config), source or str(config)
    resolved = parse_document(document, SECTIONS, where)
    return resolved, _cross_check(resolved, where)


def _cross_check(cfg: dict, where: str) -> list[str]:
    """Rules between keys: errors for contradictions, warnings for odd but legal choices."""
    warnings: list[str] = []
    gen, sur, det, ev = cfg["generate"], cfg["surrogate"], cfg["detect"], cfg["evaluate"]
    if gen["mx"] + gen["my"] >= gen["mwprime"]:
        raise SimkitError(
            f"{where}: [generate] mx + my = {gen['mx'] + gen['my']:g} GeV must be below "
            f"mwprime = {gen['mwprime']:g} GeV for W' → XY to be open"
        )
    if gen["data_tune"] == gen["sim_tune"]:
        what = "the JES shift only" if gen["data_jes"] != 1.0 else "nothing: a closure test"
        warnings.append(
            f"[generate] data_tune = sim_tune = {gen['sim_tune']!r}: the pseudo-data differ "
            f"from the simulation by {what}"
        )
    if SR_COLUMN not in sur["condition"]:
        raise SimkitError(
            f"{where}: [surrogate] condition must include {SR_COLUMN!r}: the validated "
            "surrogate is sampled inside the signal region through it"
        )
    overlap = sorted(set(sur["condition"]) & set(sur["columns"]))
    if overlap:
        raise SimkitError(
            f"{where}: [surrogate] {', '.join(overlap)} is both a condition and a "
            "generated column; list it in one of condition or columns"
        )
    kind = det["surrogate"] or sur["kinds"][0]
    if kind not in sur["kinds"]:
        raise SimkitError(
            f"{where}: [detect] surrogate = {kind!r} is not among [surrogate] kinds "
            f"({', '.join(sur['kinds'])})"
        )
    det["surrogate"] = kind
    modelled = set(sur["condition"]) | set(sur["columns"])
    features = det["features"] or [c for c in SUBSTRUCTURE if c in modelled]
    missing = sorted(set(features) - modelled)
    if missing or not features:
        raise SimkitError(
            f"{where}: [detect] features {', '.join(missing) or '(default)'} are not "
            "modelled by the surrogate; add them to [surrogate] columns"
        )
    if "tag-and-probe" in det["labels"]:
        from detectors.labels import TagSelection

        for quantity in TagSelection.parse(det["tag"]).quantities:
            for jet in ("j1", "j2"):
                if f"{quantity}_{jet}" not in modelled:
                    raise SimkitError(
                        f"{where}: [detect] tag {det['tag']!r} needs {quantity}_{jet}, "
                        "which the surrogate does not model"
                    )
    unfolded = cfg["unfold"]["columns"]
    if cfg["unfold"]["blind"] and unfolded and SR_COLUMN not in unfolded:
        raise SimkitError(
            f"{where}: [unfold] blind = true needs {SR_COLUMN!r} among [unfold] columns "
            "(the weights are interpolated across the signal region in it)"
        )
    low, high = det["signal_region"]
    if det["sidebands"] is not None:
        side_low, side_high = det["sidebands"]
        if not (side_low < low and side_high > high):
            raise SimkitError(
                f"{where}: [detect] sidebands {det['sidebands']} must enclose the signal "
                f"region {det['signal_region']}"
            )
    if ev["mjj_range"] is not None:
        fit_low, fit_high = ev["mjj_range"]
        if not (fit_low < low and fit_high > high):
            raise SimkitError(
                f"{where}: [evaluate] mjj_range {ev['mjj_range']} must enclose the signal "
                f"region {det['signal_region']}"
            )
    if ev["target_eps_b"] * 0.6 * gen["data_events"] < 10:
        warnings.append(
            f"[evaluate] target_eps_b = {ev['target_eps_b']:g} keeps about "
            f"{ev['target_eps_b'] * 0.6 * gen['data_events']:.0f} data events: too few "
            "for a bump hunt"
        )
    search = cfg["search"]
    if (
        search["primary_efficiency"] is not None
        and search["primary_efficiency"] not in search["efficiencies"]
    ):
        raise SimkitError(
            f"{where}: [search] primary_efficiency = {search['primary_efficiency']:g} must be "
            f"one of efficiencies {search['efficiencies']}"
        )
    search_features = search["features"] or features
    missing = sorted(set(search_features) - modelled)
    if search["enabled"] and search["template"] != "sideband-flow" and missing:
        raise SimkitError(
            f"{where}: [search] features {', '.join(missing)} are not modelled by the "
            "surrogate; add them to [surrogate] columns"
        )
    # W' events pass the selection ~65 % of the time (measured, 2000 events), QCD at
    # most ~80 % (with a JES shift of +3 %): warn before minutes of generation are spent
    needed = gen["s_over_b"] * 0.8 * gen["data_events"]
    if 0.65 * gen["signal_events"] < 1.2 * needed:
        warnings.append(
            f"[generate] signal_events = {gen['signal_events']} may give fewer passing W' "
            f"events than the ≈{needed:.0f} that s_over_b = {gen['s_over_b']:g} asks for "
            "(the data stage stops if so)"
        )
    return warnings


def detector_names(config: Mapping) -> list[tuple[str, str]]:
    """(model, label option) of every detector of a resolved config, in config order."""
    return [(m, lab) for m in config["detect"]["models"] for lab in config["detect"]["labels"]]
