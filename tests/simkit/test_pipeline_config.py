"""The pipeline's config: the shipped configs parse, bad ones are one-line errors,
the documentation holds exactly the schema."""

import copy
import re
from pathlib import Path

import pytest

from simkit.cli import main
from simkit.errors import SimkitError
from simkit.pipeline import SECTIONS, demo_config_path, load_config, stage_names
from simkit.pipeline.chain import _check_stage_patterns, _matches
from simkit.pipeline.schema import markdown_table

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def test_demo_config_ships_with_the_package_and_matches_the_example():
    packaged = demo_config_path()
    assert packaged.read_bytes() == (ROOT / "examples" / "demo.toml").read_bytes()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    config, warnings = load_config(path)
    assert warnings == []
    assert stage_names(config)[0] == "sim" and stage_names(config)[-1] == "report"


def test_examples_hold_the_demo_and_a_larger_config():
    names = {p.name for p in EXAMPLES}
    assert "demo.toml" in names and len(names) >= 2
    demo = load_config(ROOT / "examples" / "demo.toml")[0]
    sizes = [load_config(p)[0]["generate"]["data_events"] for p in EXAMPLES]
    # the LHC-Olympics-scale config: ~1M data events, at least 50 times the demo's
    assert max(sizes) >= 50 * demo["generate"]["data_events"]


def test_the_docs_document_the_schema_exactly():
    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    block = re.search(r"<!-- schema:start -->\n(.*?)\n<!-- schema:end -->", page, re.S)
    assert block, "docs/reference/config.md lacks the generated schema table (simkit run --schema)"
    assert block.group(1).strip() == markdown_table(SECTIONS).strip()


def test_defaults_fill_in_every_key():
    config, _ = load_config({})
    assert config["generate"]["data_tune"] != config["generate"]["sim_tune"]
    assert config["detect"]["surrogate"] == "flow"  # the first kind
    assert config["surrogate"]["flow"]["epochs"] >= 1


def _document(**sections):
    base = {"generate": {}, "surrogate": {}, "detect": {}, "evaluate": {}}
    base.update(copy.deepcopy(sections))
    return base


@pytest.mark.parametrize(
    "document, message",
    [
        (
            _document(generate={"sim_event": 10}),
            "[generate] has an unknown key 'sim_event' (did you mean 'sim_events'?)",
        ),
        ({"generation": {}}, "unknown section [generation] (did you mean [generate]?)"),
        (_document(generate={"s_over_b": 1.5}), "s_over_b must be a number in [0.0, 1.0], got 1.5"),
        (_document(generate={"sim_events": 0}), "sim_events must be an integer ≥ 1, got 0"),
        (_document(generate={"sim_events": "many"}), "sim_events must be an integer"),
        (_document(generate={"data_tune": "pythia6"}), "data_tune is not a tune"),
        (_document(generate={"mx": 3000.0, "my": 600.0}), "mx + my = 3600 GeV must be below"),
        (
            _document(detect={"signal_region": [3700.0, 3300.0]}),
            "signal_region must be increasing",
        ),
        (_document(detect={"signal_region": [3300.0]}), "signal_region must have 2 items"),
        (_document(detect={"models": ["gan"]}), "models[0] must be one of 'ae', 'vae'"),
        (_document(detect={"labels": ["all", "all"]}), "labels must not repeat an entry"),
        (_document(detect={"surrogate": "gan"}), "surrogate = 'gan' is not among [surrogate]"),
        (_document(detect={"tag": "tau21 >> 0.5"}), "tag is not a tag selection"),
        (
            _document(detect={"sidebands": [3400.0, 4000.0]}),
            "sidebands [3400.0, 4000.0] must enclose the signal region",
        ),
        (_document(surrogate={"condition": ["pt_j1"]}), "condition must include 'mjj'"),
        (
            _document(unfold={"columns": ["pt_j1", "m_j1"]}),
            "blind = true needs 'mjj' among [unfold] columns",
        ),
        (_document(unfold={"blind": "yes"}), "blind"),
        (
            _document(surrogate={"columns": ["m_j1", "mjj"]}),
            "mjj is both a condition and a generated column",
        ),
        (
            _document(surrogate={"columns": ["m_j1", "m_j2"]}),
            "[detect] tag 'tau21>0.5' needs tau21_j1, which the surrogate does not model",
        ),
        (_document(surrogate={"kinds": []}), "kinds needs at least 1 item"),
        (
            _document(detect={"features": ["pt_j1"]}),
            "[detect] features pt_j1 are not modelled by the surrogate",
        ),
        (_document(compare={"alpha": 1.0}), "alpha must lie strictly between 0 and 1"),
        (
            _document(compare={"auc_tolerance": 0.5}),
            "auc_tolerance must be a number in [0.0, 0.49]",
        ),
        (_document(compare={"chi2_tolerance": -0.1}), "chi2_tolerance must be a number ≥ 0.0"),
        (_document(compare={"max_auc": 0.55}), "[compare] has an unknown key 'max_auc'"),
        (_document(compare={"pull": "yes"}), "pull must be true or false"),
        (_document(evaluate={"eps_b_targets": [0.01, 2.0]}), "must lie strictly between 0 and 1"),
        (_document(run={"device": "tpu"}), "device must be one of 'auto', 'cpu', 'cuda'"),
        (_document(run={"scheduler": "banana"}), "scheduler is not a Dask scheduler"),
        (_document(run={"scheduler": "local:0"}), "local:N needs a whole number"),
    ],
)
def test_bad_configs_are_one_line_errors(document, message):
    with pytest.raises(SimkitError) as exc:
        load_config(document, "bad.toml")
    text = str(exc.value)
    assert message in text
    assert text.startswith("bad.toml: ") and "\n" not in text


def test_same_tune_for_data_and_simulation_warns():
    _, warnings = load_config({"generate": {"data_tune": "monash", "data_jes": 1.0}})
    assert any("closure test" in w for w in warnings)


def test_too_few_signal_events_warn_before_generation():
    _, warnings = load_config({"generate": {"signal_events": 10, "s_over_b": 0.1}})
    assert any("signal_events = 10" in w for w in warnings)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[generate]\nsim_events = 10\nsim_events = 20\n", "not valid TOML"),
        ("[unfold]\niterations = 0\n", "[unfold] iterations must be an integer in [1, 50], got 0"),
        ("[unfold]\niteration = 3\n", "unknown key 'iteration' (did you mean 'iterations'?)"),
        ("[detect]\nepochs = 'ten'\n", "[detect] epochs must be an integer ≥ 1, got 'ten'"),
    ],
)
def test_cli_reports_a_bad_config_in_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    status = main(["run", str(path), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written for a refused config


def test_cli_missing_config_and_schema(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nowhere.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["run", "--schema"]) == 0
    assert capsys.readouterr().out.strip() == markdown_table(SECTIONS).strip()


def test_stage_patterns():
    config, _ = load_config({"detect": {"models": ["ae", "vae"]}})
    names = stage_names(config)
    assert "detect-ae-tag-and-probe" in names and "validated-flow" in names
    assert _matches("detect-vae-all", ["detect"]) and _matches("unfold", ["all"])
    assert not _matches("detect-vae-all", ["det"])
    with pytest.raises(SimkitError, match="--force 'unfolding' names no stage"):
        _check_stage_patterns(["unfolding"], names, "--force")


@pytest.mark.parametrize("page", ["README.md", "docs/reference/metrics.md"])
def test_readme_and_docs_document_the_headline_metrics_exactly(page):
    from simkit.pipeline.report import headline_table

    text = (ROOT / page).read_text()
    block = re.search(r"<!-- headline:start -->\n(.*?)\n<!-- headline:end -->", text, re.S)
    assert block, f"{page} lacks the generated headline table"
    assert block.group(1).strip() == headline_table().strip()
