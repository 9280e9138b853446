"""The run's report: ``report.html`` (self-contained) and ``metrics.json`` (flat headline).

The summary comes first — the surrogates' speed-up over the Pythia chain measured in
this run, the validation gate before and after, each detector's AUC and max SIC —
then every stage's numbers and plots, then the provenance of every sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from simkit.pipeline.html import HtmlReport, Verdict, fmt

#: ``metrics.json`` of a run: key pattern → meaning (also in README.md and
#: docs/reference/metrics.md).
HEADLINE_KEYS = {
    "sim_events": "QCD events simulated",
    "pythia_events_per_second": "Pythia chain end to end in this run (generation, "
    "detector, jets, writing; all events), with `pythia_jobs` worker processes",
    "pythia_passing_events_per_second": "the same, counting only events that pass the "
    "selection (what a surrogate event stands for)",
    "pythia_jobs": "worker processes of that measurement",
    "surrogate_<kind>_events_per_second": "surrogate sampling into an event file (gzip), "
    "on `surrogate_<kind>_device`",
    "surrogate_<kind>_device": "where the surrogate was sampled (cpu, cuda)",
    "surrogate_<kind>_speed_up": "surrogate events/s ÷ Pythia passing events/s",
    "surrogate_<kind>_fidelity_auc": "two-sample AUC of held-out simulation against the "
    "surrogate (0.5 = indistinguishable)",
    "data_events": "events in the pseudo-data",
    "data_s_over_b": "injected signal per background event in the data",
    "data_sr_s_over_b": "the same inside the signal region",
    "gate_<comparison>_auc": "two-sample AUC (comparisons against the data: sim_before, "
    "sim_push, sim_pull, <kind>_before, <kind>_validated; against the simulation × push: "
    "<kind>_target)",
    "gate_<comparison>_max_chi2_ndf": "largest χ²/ndf of any column",
    "gate_<comparison>_min_p_value": "smallest p-value of the gate's tests (AUC, χ² per "
    "column, with their tolerances); validated when ≥ alpha / number of tests",
    "gate_<comparison>_validated": "the gate's verdict",
    "detector_<model>_<labels>_auc": "ROC AUC in the signal region (labels with - as _)",
    "detector_<model>_<labels>_max_sic": "maximum ε_S/√ε_B over cuts keeping ≥ "
    "min_background background events",
    "detector_<model>_<labels>_max_sic_error": "its binomial error",
    "detector_<model>_<labels>_eps_s_at_<target>": "ε_S of the loosest cut with ε_B ≤ target",
    "detector_<model>_<labels>_bump_z_local": "local significance of the bump hunt after the cut",
    "search_template": "the search's background template",
    "search_z_before": "the search: local Z of the uncut bump hunt in the signal region",
    "search_z_after": "the search: local Z of the count after the cut against the template's "
    "estimate — the most significant of the cuts, with the trials factor for their number "
    "(or the one fixed by primary_efficiency); `search_efficiency` of the data kept",
    "search_efficiency": "the fraction of the data the search's cut keeps",
    "search_observed": "data events passing the cut in the signal region",
    "search_expected": "the template's estimate of that count (background only)",
    "search_expected_error": "its uncertainty (sideband fit, template statistics, folds)",
    "search_window": "the best window [low, high] (GeV): the signal region, or with "
    "[search] scan the window of largest local Z",
    "search_n_windows": "windows searched",
    "search_z_global": "with [search] scan: the global significance of the best window "
    "(look-elsewhere effect by Gross–Vitells upcrossings); null without a scan",
    "search_trustworthy": "whether the template passed its gate (data against the template "
    "in the sidebands)",
    "search_auc": "ROC AUC of the search's classifier in the signal region (labels judge only)",
    "search_max_sic": "its maximum ε_S/√ε_B",
    "roc_background_events": "data background events in the signal region (the ROC's ε_B)",
    "roc_signal_events": "signal events in the signal region (the ROC's ε_S)",
    "seconds_stages": "seconds of every stage, each as it last ran",
}


def headline_table() -> str:
    """:data:`HEADLINE_KEYS` as a Markdown table (for README.md and docs/reference/metrics.md)."""
    rows = [f"| `{key}` | {meaning} |" for key, meaning in HEADLINE_KEYS.items()]
    return "\n".join(["| key | meaning |", "|---|---|", *rows])


def _key(name: str) -> str:
    return name.replace("-", "_")


def headline(results: Mapping, config: Mapping) -> dict:
    """The flat ``metrics.json`` of a run from its stages' summaries."""
    sim = results["sim"].summary
    data = results["data"].summary
    out: dict = {
        "sim_events": sim["events"],
        "pythia_events_per_second": sim["events_per_second"],
        "pythia_passing_events_per_second": sim["passing_events_per_second"],
        "pythia_jobs": sim["jobs"],
    }
    for kind in config["surrogate"]["kinds"]:
        fit = results[f"surrogate-{kind}"].summary
        rate = fit["surrogate_events_per_second"]
        out[f"surrogate_{kind}_events_per_second"] = rate
        out[f"surrogate_{kind}_device"] = fit["device"]
        out[f"surrogate_{kind}_speed_up"] = rate / sim["passing_events_per_second"]
        out[f"surrogate_{kind}_fidelity_auc"] = fit["fit_two_sample_auc"]
    out["data_events"] = data["data_events"]
    out["data_s_over_b"] = data["s_over_b"]
    out["data_sr_s_over_b"] = data["sr_s_over_b"]
    for name, gate in results["compare"].summary["comparisons"].items():
        for key in ("auc", "max_chi2_ndf", "min_p_value", "validated"):
            out[f"gate_{_key(name)}_{key}"] = gate[key]
    detectors = results["evaluate"].summary["detectors"]
    for name, det in detectors.items():
        prefix = f"detector_{_key(name)}"
        out[f"{prefix}_auc"] = det["auc"]
        out[f"{prefix}_max_sic"] = det["max_sic"]
        out[f"{prefix}_max_sic_error"] = det["max_sic_error"]
        for target, value in (det["eps_s_at_eps_b"] or {}).items():
            out[f"{prefix}_eps_s_at_{target}"] = value
        out[f"{prefix}_bump_z_local"] = det["bump_z_local"]
    if "search" in results:
        found = results["search"].summary
        for key in ("template", "z_before", "z_after", "efficiency", "observed", "expected"):
            out[f"search_{key}"] = found[key]
        out["search_expected_error"] = found["expected_error"]
        out["search_trustworthy"] = found["trustworthy"]
        out["search_window"] = found["window"]
        out["search_n_windows"] = found["n_windows"]
        out["search_z_global"] = found["z_global"]
        out["search_auc"] = found["auc"]
        out["search_max_sic"] = found["max_sic"]
    if detectors:
        first = next(iter(detectors.values()))
        out["roc_background_events"] = first["background_events"]
        out["roc_signal_events"] = first["signal_events"]
    out["seconds_stages"] = sum(r.seconds for r in results.values())
    return out


# --------------------------------------------------------------------------- summary


def _interval(low, high) -> str:
    return "—" if low is None else f"[{low:.3f}, {high:.3f}]"


def _summary(doc: HtmlReport, ctx, results: Mapping, top: dict, warnings: Sequence[str]) -> None:
    config = ctx.config
    gate = config["compare"]
    sim = results["sim"].summary
    doc.heading("Summary")

    doc.heading("Surrogates: speed-up over the Pythia chain", 3)
    rows = []
    for kind in config["surrogate"]["kinds"]:
        fit = results[f"surrogate-{kind}"].summary
        rows.append(
            [
                kind,
                f"{top[f'surrogate_{kind}_events_per_second']:,.0f} ({fit['device']})",
                f"{sim['passing_events_per_second']:,.1f} ({sim['jobs']} jobs)",
                f"{top[f'surrogate_{kind}_speed_up']:,.0f}×",
                f"{fit['fit_two_sample_auc']:.3f} "
                + _interval(fit.get("fit_two_sample_auc_low"), fit.get("fit_two_sample_auc_high")),
            ]
        )
    doc.table(
        [
            "surrogate",
            "sampling, events/s",
            "Pythia chain, passing events/s",
            "speed-up",
            "fidelity AUC vs held-out sim [95 %]",
        ],
        rows,
    )
    doc.paragraph(
        f"The Pythia chain (generation, detector, FastJet, writing) made {sim['events']:,} "
        f"events in {sim['seconds']:.1f} s in this run ({sim['events_per_second']:,.1f} "
        f"events/s, {sim['passing_reco']:,} passing the selection); a surrogate event stands "
        "for a passing event, so the speed-up divides by the passing rate. The rates share "
        "this machine with whatever else ran on it.",
        "note",
    )

    doc.heading(
        f"Validation gate: every p-value ≥ α / tests (α = {gate['alpha']:g}; tolerances: "
        f"AUC 0.5 + {gate['auc_tolerance']:g}, {100 * gate['chi2_tolerance']:g} % per bin)",
        3,
    )
    rows = []
    for comparison in results["compare"].summary["comparisons"].values():
        rows.append(
            [
                comparison["title"],
                comparison["reference"],
                "after" if comparison["after"] else "before",
                f"{comparison['auc']:.4f} "
                + _interval(comparison["auc_low"], comparison["auc_high"]),
                f"{comparison['max_chi2_ndf']:.2f} ({comparison['worst_column']})",
                f"{comparison['min_p_value']:.2g}",
                Verdict(comparison["validated"]),
            ]
        )
    doc.table(["candidate", "against", "", "AUC [95 %]", "worst χ²/ndf", "min p", "verdict"], rows)
    doc.paragraph(_gate_story(config, results["compare"].summary["comparisons"]), "note")

    doc.heading("Detectors (trained on the validated surrogate background)", 3)
    detectors = results["evaluate"].summary["detectors"]
    targets = [f"{t:.0e}" for t in config["evaluate"]["eps_b_targets"]]
    rows = []
    for name, det in detectors.items():
        trained = results[f"detect-{name}"].summary
        sic = "—"
        if det["max_sic"] is not None:
            sic = f"{det['max_sic']:.2f} ± {det['max_sic_error']:.2f}"
        eps = [(det["eps_s_at_eps_b"] or {}).get(t) for t in targets]
        rows.append(
            [
                trained["model"],
                trained["labels"],
                trained["training_examples"],
                det["auc"],
                sic,
                *eps,
                det["bump_z_local"],
            ]
        )
    doc.table(
        [
            "model",
            "labels",
            "training examples",
            "AUC",
            "max SIC",
            *[f"ε_S @ ε_B = {t}" for t in targets],
            "bump-hunt Z",
        ],
        rows,
    )
    _statistics_note(doc, ctx, results)
    if "search" in results:
        _search_summary(doc, ctx, results["search"].summary)
    for warning in warnings:
        doc.paragraph(f"Warning: {warning}", "bad")


def _search_summary(doc: HtmlReport, ctx, found: Mapping) -> None:
    search = ctx.config["search"]
    low, high = found["window"]
    where = f"{low:.0f}–{high:.0f} GeV"
    if found["z_global"] is not None:
        where = f"{found['n_windows']} windows scanned across mjj; best {where}"
    doc.heading(f"The search: data against the {found['template']} template ({where})", 3)
    sic = "—"
    if found["max_sic"] is not None:
        sic = f"{found['max_sic']:.2f} ± {found['max_sic_error']:.2f}"
    trust = found["trustworthy"]
    doc.table(
        [
            "window (GeV)",
            "Z before the cut",
            f"Z after the cut ({found['efficiency']:.1%} of the data kept)",
            "global Z",
            "observed",
            "expected (template)",
            "template gate",
            "AUC",
            "max SIC",
        ],
        [
            [
                f"{low:.0f}–{high:.0f}",
                f"{found['z_before']:.2f}",
                f"{found['z_after']:.2f}",
                "—" if found["z_global"] is None else f"{found['z_global']:.2f}",
                f"{found['observed']:.0f}",
                f"{found['expected']:.1f} ± {found['expected_error']:.1f}",
                "no gate" if trust is None else Verdict(trust),
                found["auc"],
                sic,
            ]
        ],
    )
    doc.paragraph(
        f"A {search['classifier']} classifier ({search['folds']} folds × {search['ensemble']} "
        "models) learns the data against the background template inside the signal region; "
        "each data event is scored by models that never saw it. The cut keeps a fixed "
        "fraction of the data; the expected count is the template's efficiency for the same "
        "cut × the background that the sideband fit of the uncut spectrum puts in the "
        "signal region. With a scan every window is its own signal region (OmniFold "
        "blinded to it, its own template and classifier), and the global Z counts the "
        "look-elsewhere effect (Gross & Vitells, EPJC 70 (2010) 525)"
        + (
            f"; the ensembles are reduced to {search['ensemble']} model(s) per fold here "
            "to keep the run short"
            if search["ensemble"] < 5
            else ""
        )
        + ". A template that fails its gate (data against the template in the "
        "sidebands) makes the result untrustworthy. AUC and SIC use the truth labels, "
        "which nothing else reads.",
        "note" if trust is not False else "bad",
    )


def _word(validated: bool) -> str:
    return "passes" if validated else "fails"


def _window(config: Mapping) -> str:
    low, high = config["detect"]["signal_region"]
    return f"{low:g} ≤ mjj < {high:g} GeV"


def _blind_text(config: Mapping) -> str:
    """What blinding means for the weights, in one or two sentences."""
    if not config["unfold"]["blind"]:
        return (
            " Not blinded: step 1 also learns from the signal region, so part of a signal "
            "in the data can be absorbed into the weights."
        )
    return (
        f" Blinded: step 1 learns from the data outside {_window(config)} only, and the "
        "weights inside it are the classifier's interpolation in mjj, so a signal there "
        "is not absorbed into the background model; the gate looks outside it too."
    )


def _gate_story(config: Mapping, comparisons: Mapping) -> str:
    """The verdicts in words: what was corrected, what the detectors trained on."""
    sim, push = comparisons["sim-before"], comparisons["sim-push"]
    parts = [
        ("Outside the blinded signal region, the" if config["unfold"]["blind"] else "The")
        + f" simulation {_word(sim['validated'])} the gate against the data before "
        f"reweighting (AUC {sim['auc']:.3f}, worst χ²/ndf {sim['max_chi2_ndf']:.2f}) and "
        f"{_word(push['validated'])} it with OmniFold's push weights (AUC {push['auc']:.3f}, "
        f"worst χ²/ndf {push['max_chi2_ndf']:.2f})."
    ]
    for kind in config["surrogate"]["kinds"]:
        before, after = comparisons[f"{kind}-before"], comparisons[f"{kind}-validated"]
        text = (
            f"The {kind} refitted to the simulation × push moves from AUC {before['auc']:.3f} "
            f"and worst χ²/ndf {before['max_chi2_ndf']:.2f} to {after['auc']:.3f} and "
            f"{after['max_chi2_ndf']:.2f}, and {_word(after['validated'])} the gate."
        )
        target = comparisons.get(f"{kind}-target")
        if target is not None:
            text += (
                f" Against its own target, the simulation × push, it has AUC "
                f"{target['auc']:.3f} and worst χ²/ndf {target['max_chi2_ndf']:.2f} "
                f"({target['worst_column']}): it {_word(target['validated'])} the gate"
            )
            if target["validated"] and after["validated"]:
                text += "."
            elif target["validated"]:
                text += (
                    "; the simulation × push is within the gate against the data "
                    f"(worst χ²/ndf {push['max_chi2_ndf']:.2f}), but the two residuals "
                    "add up to more than the gate allows."
                    if push["validated"]
                    else "; what fails against the data is the simulation × push itself."
                )
            else:
                text += (
                    ", so part of what the gate sees against the data is what the "
                    "surrogate did not learn from the simulation."
                )
        if kind == config["detect"]["surrogate"]:
            text += " The detectors train on its events" + (
                "."
                if after["validated"]
                else " all the same: read their background "
                "model as the approximation the gate describes."
            )
        parts.append(text)
    return " ".join(parts)


def _statistics_note(doc: HtmlReport, ctx, results: Mapping) -> None:
    detectors = results["evaluate"].summary["detectors"]
    if not detectors:
        return
    det = next(iter(detectors.values()))
    data = results["data"].summary
    ev = ctx.config["evaluate"]
    n_b, n_s = det["background_events"] or 0, det["signal_events"] or 0
    floor = ev["min_background"] / n_b if n_b else math.inf
    text = (
        f"The detector figures rest on {n_b:,} background events and {n_s:,} signal "
        f"events in the signal region ({det['roc_signal_injected']:,} injected into the "
        f"data, {det['roc_signal_test']:,} from the signal-only sample, which no detector "
        f"trained on). A SIC point needs ≥ {ev['min_background']} background events passing "
        f"its cut, so ε_B is resolved only down to {floor:.1e} and max SIC cannot exceed "
        f"about {1 / math.sqrt(floor):.1f} ε_S; ε_S at ε_B = 10⁻ᵏ is reported only where "
        f"the background holds ≥ 10ᵏ events. The data hold {data['signal_injected']:,} "
        f"injected signal events among {data['background_passing']:,} background events "
        f"(S/B {fmt(data['s_over_b'])}; {fmt(data['sr_s_over_b'])} in the signal region)."
    )
    thin = [t for t in ev["eps_b_targets"] if 1 <= n_b * t < ev["min_background"]]
    if thin:
        text += (
            " Here "
            + "; ".join(
                f"ε_S at ε_B = {t:g} rests on ≈ {n_b * t:.0f} background events" for t in thin
            )
            + "."
        )
    if n_b < 20000:
        text += (
            " At these sizes the detector figures are statistically weak: read them as "
            "a test that the chain works, not as a measurement. The LHC-Olympics-scale "
            "config (examples/lhco.toml) has about a hundred times more background in "
            "the signal region."
        )
    doc.paragraph(text, "note")


# --------------------------------------------------------------------------- stages


def _commands(doc: HtmlReport, summary: Mapping) -> None:
    commands = summary.get("commands") or []
    if commands:
        doc.paragraph("The same by hand:", "note")
        doc.preformatted("\n".join(commands))


def _metrics_file(doc: HtmlReport, path: Path, keys: Sequence[str] | None = None) -> dict:
    if not path.exists():
        doc.paragraph(f"({path.name} missing)", "note")
        return {}
    metrics = json.loads(path.read_text())
    doc.metrics(metrics, keys)
    return metrics


def _stages(doc: HtmlReport, ctx, results: Mapping) -> None:
    config = ctx.config
    run = ctx.path

    doc.heading("1. Simulation (sim)")
    sim = results["sim"].summary
    doc.paragraph(
        f"Pythia 8 QCD dijets (HardQCD:all, pT-hat > {config['generate']['pthat_min']:g} GeV, "
        f"tune {config['generate']['sim_tune']}) through the parametric detector and FastJet, "
        "at generator and detector level, row-aligned."
    )
    doc.metrics({k: v for k, v in sim.items() if k != "commands"})
    _commands(doc, sim)

    doc.heading("2. Pseudo-data (data)")
    data = results["data"].summary
    gen = config["generate"]
    doc.paragraph(
        f"QCD dijets with tune {gen['data_tune']} seen by a detector whose jet-energy scale "
        f"is {gen['data_jes']:g}, plus W'({gen['mwprime']:g}) → X({gen['mx']:g}) "
        f"Y({gen['my']:g}) events injected at S/B = {gen['s_over_b']:g} among passing "
        "events. Only passing reco events are kept, the generator level is dropped (data "
        "have no truth), and the rows are shuffled. Labels stay in the file for the "
        "evaluation only; no training reads them. The W' events not injected form a "
        "signal-only sample (signal.h5) that enlarges the signal side of the ROC."
    )
    doc.metrics({k: v for k, v in data.items() if k != "commands"})

    for kind in config["surrogate"]["kinds"]:
        name = f"surrogate-{kind}"
        doc.heading(f"3. Surrogate before validation ({name})")
        summary = results[name].summary
        doc.paragraph(
            f"A conditional {kind} fitted to the simulation's passing reco events: it "
            f"generates {', '.join(config['surrogate']['columns'])} given "
            f"{', '.join(config['surrogate']['condition'])}. 20 % of the events are held "
            "out; the fidelity plot compares them with events generated for the same "
            "contexts. surrogate.h5 takes its contexts from the simulation."
        )
        doc.metrics({k: v for k, v in summary.items() if k != "commands"})
        doc.figure(run(name, "model", "fidelity.png"), "held-out simulation vs surrogate")
        doc.figure(run(name, "model", "training.png"), "training")
        _commands(doc, summary)

    doc.heading("4. OmniFold (unfold)")
    doc.paragraph(
        f"At most {config['unfold']['iterations']} iterations of OmniFold, stopped when "
        f"converged (step-1 AUC within {config['unfold']['tolerance']:g}σ of 0.5 and push "
        f"weights moving by ≤ {config['unfold']['push_tolerance']:g} of the first "
        "iteration's move): step 1 reweights the "
        "simulation at reco level to the data (pull weights), step 2 turns that into a "
        "function of the generator-level event (push weights: the unfolded answer). "
        f"Simulated events failing reco: '{config['unfold']['failed_reco']}'." + _blind_text(config)
    )
    _metrics_file(
        doc,
        run("unfold", "metrics.json"),
        [
            "n_sim",
            "n_sim_pass_reco",
            "n_data_pass_reco",
            "before_auc",
            "before_max_chi2_ndf",
            "before_min_p_value",
            "before_validated",
            "after_auc",
            "after_max_chi2_ndf",
            "after_min_p_value",
            "after_validated",
            "iterations",
            "converged",
            "stop_reason",
            "ess_final",
            "seconds_unfold",
        ],
    )
    for plot, caption in (
        ("reco.png", "reco level: data, simulation, simulation × push"),
        ("gen.png", "generator level: prior and unfolded"),
        ("iterations.png", "classifier AUC, ESS and clipping per iteration"),
        ("weights.png", "weights"),
    ):
        doc.figure(run("unfold", plot), caption)
    _commands(doc, results["unfold"].summary)

    for kind in config["surrogate"]["kinds"]:
        name = f"validated-{kind}"
        doc.heading(f"5. Validated surrogate ({name})")
        doc.paragraph(
            f"The {kind} refitted to the simulation's reco events weighted with MC × push "
            "(weighted maximum likelihood). Why a refit and not the Reweighter: the "
            "Reweighter is a function of generator-level features, and a surrogate "
            "event has only reco-level ones; refitting carries the unfolded correction "
            "into the surrogate itself, so its events need no weights. Its contexts "
            "(mjj) are drawn from the simulation × push, over the whole spectrum "
            "(surrogate.h5) and inside the signal region (surrogate_sr.h5)."
        )
        summary = results[name].summary
        doc.metrics({k: v for k, v in summary.items() if k != "commands"})
        doc.figure(run(name, "model", "fidelity.png"), "held-out weighted simulation vs surrogate")
        _commands(doc, summary)

    doc.heading("6. Validation gate (compare)")
    doc.paragraph(
        "Every candidate against the data at reco level: a classifier two-sample AUC "
        "(with a 95 % bootstrap interval) and per-column χ²/ndf. Validated when every "
        "test's p-value is at least α divided by the number of tests (Bonferroni; α = "
        f"{config['compare']['alpha']:g}): the AUC against its null spread for AUC ≤ 0.5 + "
        f"{config['compare']['auc_tolerance']:g}, and each column's χ² with a "
        f"{100 * config['compare']['chi2_tolerance']:g} % relative mis-modelling allowed "
        "per bin. A candidate drawn from the data's own distribution passes at any "
        "sample size with probability ≥ 1 − α. Push weights are the unfolded answer "
        "(functions of the generator-level event); pull weights are step 1's reco-level "
        "weights, close to the data by construction, so they test the classifier more "
        "than the unfolding."
        + (
            f" Comparisons with the data leave out {_window(config)}, the blinded signal "
            "region; the comparison with the surrogate's own target covers everything."
            if config["unfold"]["blind"]
            else ""
        )
    )
    compare = results["compare"].summary
    for name, comparison in compare["comparisons"].items():
        doc.heading(f"{comparison['title']} vs {comparison['reference']}", 3)
        doc.metrics({k: v for k, v in comparison.items() if k not in ("title", "reference")})
        doc.figure(
            run("compare", name, "columns.png"),
            f"{comparison['title']} (candidate) vs {comparison['reference']} (reference)",
        )
    _commands(doc, compare)

    doc.heading("7. Detectors (detect)")
    for name, det in results["evaluate"].summary["detectors"].items():
        trained = results[f"detect-{name}"].summary
        doc.heading(f"{trained['model']}, labels = {trained['labels']}", 3)
        doc.paragraph(
            f"Trained on {trained['training_examples']:,} examples chosen by "
            f"'{trained['labels']}' from {trained['training_file']} (features "
            f"{', '.join(trained['features'])}); score {trained['score']}."
        )
        folder = run("evaluate", name)
        _metrics_file(
            doc,
            folder / "metrics.json",
            [
                "auc",
                "max_sic",
                "max_sic_error",
                "max_sic_eps_s",
                "max_sic_eps_b",
                "auc_injected_only",
                "signal_events",
                "background_events",
                "threshold",
                "cut_pass_fraction",
                "bump_observed_sr",
                "bump_expected_sr",
                "bump_expected_sr_error",
                "bump_z_local",
                "bump_z_local_before_cut",
                "bump_fit_p_value",
            ],
        )
        for note in det.get("notes") or []:
            doc.paragraph(f"note: {note}", "note")
        for plot in ("roc.png", "sic.png", "scores.png", "bump_hunt.png"):
            doc.figure(folder / plot)
        doc.figure(run(f"detect-{name}", "model", "training.png"), "training")
        _commands(doc, trained)


def _search_section(doc: HtmlReport, ctx, results: Mapping) -> None:
    if "search" not in results:
        return
    folder = ctx.path("search")
    found = results["search"].summary
    doc.heading("8. The search (search)")
    doc.paragraph(found["line"])
    _metrics_file(doc, folder / "metrics.json", ["template", "trustworthy", "auc", "max_sic"])
    for plot, caption in (
        ("scan.png", "local Z before and after the cut across the scanned windows"),
        ("features.png", "data against the template in the (best) window"),
        ("scores.png", "the classifier's out-of-fold scores"),
        ("spectrum.png", "mjj after the cut, with the template's estimate"),
        ("bump_hunt.png", "cross-check: the sideband-fit bump hunt after the cut"),
        ("roc.png", "ROC (truth labels)"),
        ("sic.png", "SIC (truth labels)"),
    ):
        doc.figure(folder / plot, caption)
    _commands(doc, found)


def _provenance(doc: HtmlReport, ctx, results: Mapping) -> None:
    from simkit.io import inspect
    from simkit.pipeline.config import detector_names

    doc.heading("Provenance")
    doc.paragraph(
        "Where every sample came from: generator, settings, seeds, package versions "
        "(each file's /provenance)."
    )
    files = [ctx.path("sim", "sim.h5"), ctx.path("data", "data.h5"), ctx.path("data", "signal.h5")]
    for kind in ctx.config["surrogate"]["kinds"]:
        files.append(ctx.path(f"surrogate-{kind}", "surrogate.h5"))
        for name in ("contexts.h5", "contexts_sr.h5", "surrogate.h5", "surrogate_sr.h5"):
            files.append(ctx.path(f"validated-{kind}", name))
    for model, labels in detector_names(ctx.config):
        files.append(ctx.path(f"detect-{model}-{labels}", "scores_data.h5"))
    for path in files:
        if path.exists():
            info = inspect(path)
            doc.json_block(f"{path} ({info.n_events:,} events)", info.provenance)
    doc.json_block("the run's config (defaults filled in)", ctx.config)
    doc.table(
        ["stage", "seconds (as last run)", "skipped in this run"],
        [[name, round(r.seconds, 1), r.skipped] for name, r in results.items()],
    )


def write_report(ctx, warnings: Sequence[str]) -> dict:
    """Write ``report.html`` and ``metrics.json`` into the run folder; return the headline."""
    from simkit import __version__
    from simkit.io import creation_time, write_json

    results = ctx.results
    top = headline(results, ctx.config)
    write_json(ctx.path("metrics.json"), top)
    doc = HtmlReport(f"simkit run: {ctx.run_dir.name}")
    doc.paragraph(
        f"simkit {__version__}, written {creation_time()}; run folder {ctx.run_dir}; "
        f"seed {ctx.config['run']['seed']}, device {ctx.device}. Simulate → surrogate → "
        "unfold and validate → detect → evaluate, on one config.",
        "note",
    )
    _summary(doc, ctx, results, top, warnings)
    _stages(doc, ctx, results)
    _search_section(doc, ctx, results)
    _provenance(doc, ctx, results)
    doc.write(ctx.path("report.html"))
    return top
