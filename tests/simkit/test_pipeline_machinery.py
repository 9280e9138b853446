"""Config schema validation, stage skipping by content hash, the HTML report."""

import json

import pytest

from simkit.errors import SimkitError
from simkit.pipeline.html import HtmlReport
from simkit.pipeline.schema import Key, Section, markdown_table, parse_document
from simkit.pipeline.stages import Stage, run_stage

SECTIONS = [
    Section(
        "run",
        [Key("seed", int, 1, low=0), Key("device", str, "auto", choices=("auto", "cpu", "cuda"))],
    ),
    Section(
        "unfold",
        [
            Key("iterations", int, 3, low=1, high=50),
            Key("columns", list, None, item=str, optional=True),
            Key(
                "window",
                list,
                [3300.0, 3700.0],
                item=float,
                length=2,
                check=lambda w: None if w[0] < w[1] else "must be increasing",
            ),
        ],
    ),
]


def test_defaults_fill_in():
    cfg = parse_document({"unfold": {"iterations": 5}}, SECTIONS, "c.toml")
    assert cfg["unfold"] == {"iterations": 5, "columns": None, "window": [3300.0, 3700.0]}
    assert cfg["run"] == {"seed": 1, "device": "auto"}


@pytest.mark.parametrize(
    "document, message",
    [
        ({"unfold": {"iteration": 2}}, "unknown key 'iteration' (did you mean 'iterations'?)"),
        ({"unfolds": {}}, "unknown section [unfolds] (did you mean [unfold]?)"),
        ({"unfold": {"iterations": 0}}, "iterations must be an integer in [1, 50], got 0"),
        ({"unfold": {"iterations": 2.5}}, "iterations must be an integer"),
        ({"unfold": {"iterations": True}}, "iterations must be an integer"),
        ({"run": {"device": "tpu"}}, "device must be one of 'auto', 'cpu', 'cuda'"),
        ({"unfold": {"window": [4000, 3000]}}, "window must be increasing"),
        ({"unfold": {"window": [1.0]}}, "window must have 2 items"),
        ({"unfold": {"columns": ["mjj", 3]}}, "columns[1] must be a string"),
        ({"unfold": 3}, "unfold must be a [unfold] table"),
    ],
)
def test_bad_configs_are_one_line_errors(document, message):
    with pytest.raises(SimkitError) as exc:
        parse_document(document, SECTIONS, "c.toml")
    assert message in str(exc.value)
    assert str(exc.value).startswith("c.toml: ")
    assert "\n" not in str(exc.value)


def test_markdown_table_lists_every_key():
    table = markdown_table(SECTIONS)
    for key in ("seed", "device", "iterations", "columns", "window"):
        assert f"`{key}`" in table


def test_stage_skips_when_unchanged_and_reruns_on_change(tmp_path):
    source = tmp_path / "input.txt"
    source.write_text("one")
    calls = []

    def action(folder):
        calls.append(1)
        (folder / "out.txt").write_text(source.read_text().upper())
        return {"n": len(calls)}

    def stage(settings):
        return Stage("upper", action, settings=settings, inputs=[source], outputs=["out.txt"])

    run_dir = tmp_path / "run"
    quiet = lambda _: None  # noqa: E731
    first = run_stage(stage({"a": 1}), run_dir, log=quiet)
    assert not first.skipped and calls == [1]
    again = run_stage(stage({"a": 1}), run_dir, log=quiet)
    assert again.skipped and again.summary == {"n": 1} and calls == [1]
    run_stage(stage({"a": 2}), run_dir, log=quiet)  # settings changed
    assert len(calls) == 2
    source.write_text("two")  # input content changed
    run_stage(stage({"a": 2}), run_dir, log=quiet)
    assert len(calls) == 3 and (run_dir / "upper" / "out.txt").read_text() == "TWO"
    (run_dir / "upper" / "out.txt").unlink()  # an output went missing
    run_stage(stage({"a": 2}), run_dir, log=quiet)
    assert len(calls) == 4


def test_interrupted_stage_runs_again(tmp_path):
    calls = []

    def crashing(folder):
        calls.append(1)
        (folder / "partial.txt").write_text("half")
        if len(calls) == 1:
            raise KeyboardInterrupt

    stage = Stage("s", crashing, outputs=["partial.txt"])
    with pytest.raises(KeyboardInterrupt):
        run_stage(stage, tmp_path, log=lambda _: None)
    assert not (tmp_path / "s" / "stage.json").exists()
    result = run_stage(stage, tmp_path, log=lambda _: None)
    assert not result.skipped and len(calls) == 2
    assert json.loads((tmp_path / "s" / "stage.json").read_text())["stage"] == "s"


def test_html_report_is_self_contained(tmp_path):
    from simkit.plotting import pyplot, savefig

    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    png = savefig(fig, tmp_path / "line.png")
    doc = HtmlReport("Run <1>")
    doc.heading("Summary")
    doc.table(["stage", "validated", "auc"], [["unfold", True, 0.5123456]])
    doc.figure(png, "a line")
    doc.figure(tmp_path / "missing.png")
    path = doc.write(tmp_path / "report.html")
    text = path.read_text()
    assert "data:image/png;base64," in text
    assert "Run &lt;1&gt;" in text and "0.5123" in text and "validated" in text
    assert "missing.png was not produced" in text
    assert 'src="http' not in text and "<script" not in text


def _verdict(ok: bool, chi2: float) -> dict:
    return {
        "auc": 0.51 if ok else 0.6,
        "max_chi2_ndf": chi2,
        "worst_column": "m_j2",
        "validated": ok,
    }


@pytest.mark.parametrize(
    "push_ok, after_ok, target_ok, expected",
    [
        (True, True, True, "it passes the gate. The detectors train on its events."),
        (True, False, True, "the two residuals add up to more than the gate allows"),
        (False, False, True, "what fails against the data is the simulation × push itself"),
        (True, False, False, "what the surrogate did not learn from the simulation"),
    ],
)
def test_gate_story_tells_which_part_fails(push_ok, after_ok, target_ok, expected):
    from simkit.pipeline.report import _gate_story

    config = {
        "surrogate": {"kinds": ["flow"]},
        "detect": {"surrogate": "flow"},
        "unfold": {"blind": push_ok},  # both wordings
    }
    comparisons = {
        "sim-before": _verdict(False, 8.0),
        "sim-push": _verdict(push_ok, 1.5 if push_ok else 3.0),
        "flow-before": _verdict(False, 11.0),
        "flow-validated": _verdict(after_ok, 1.8 if after_ok else 2.5),
        "flow-target": _verdict(target_ok, 1.2 if target_ok else 19.9),
    }
    story = _gate_story(config, comparisons)
    assert expected in story
    assert story.count("did not learn") <= 1
    assert ("all the same" in story) == (not after_ok)
    assert story.startswith(
        "Outside the blinded signal region, the simulation" if push_ok else "The simulation"
    )
