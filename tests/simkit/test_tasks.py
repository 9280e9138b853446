"""The task layer: each default declared once, and every front-end agrees with it.

- every field of a task config is an option of its ``simkit`` command, with the same
  default and the same choices (the CLI takes them from the dataclass);
- every ``simkit run`` config key that sets a task option has the task's default;
- a config's command line (:meth:`Options.argv`) parses back into the same config.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from simkit.cli import build_parser
from simkit.tasks.compare import CompareConfig, CompareInputs
from simkit.tasks.detect import (
    EvaluateConfig,
    EvaluateInputs,
    ScoreConfig,
    ScoreInputs,
    TrainConfig,
    TrainInputs,
)
from simkit.tasks.generate import GenerateConfig
from simkit.tasks.search import SearchInputs, SearchTaskConfig, TemplateConfig, TemplateInputs
from simkit.tasks.surrogate import FitConfig, FitInputs, SampleConfig, SampleInputs
from simkit.tasks.unfold import UnfoldConfig, UnfoldInputs

COMMANDS = {
    ("unfold",): (UnfoldConfig, UnfoldInputs),
    ("compare",): (CompareConfig, CompareInputs),
    ("detect", "train"): (TrainConfig, TrainInputs),
    ("detect", "score"): (ScoreConfig, ScoreInputs),
    ("detect", "evaluate"): (EvaluateConfig, EvaluateInputs),
    ("surrogate", "fit"): (FitConfig, FitInputs),
    ("surrogate", "sample"): (SampleConfig, SampleInputs),
    ("template",): (TemplateConfig, TemplateInputs),
    ("search",): (SearchTaskConfig, SearchInputs),
}


def _subparser(words) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    parser.load_task_defaults()  # what parsing or --help does first
    return parser


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return a == b


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_every_option_has_the_configs_default_and_choices(words):
    parser = _subparser(words)
    actions = {a.dest: a for a in parser._actions}
    for cls in COMMANDS[words]:
        defaults = cls.defaults()
        for f in cls.option_fields():
            assert f.name in actions, f"{' '.join(words)}: no option for {cls.__name__}.{f.name}"
            action = actions[f.name]
            if f.name not in cls.POSITIONAL:
                assert cls.flag(f) in action.option_strings, (f.name, action.option_strings)
            if f.name in defaults and not action.required:
                assert _same(action.default, defaults[f.name]), (f.name, action.default)
            choices = f.metadata.get("choices")
            if choices is not None or action.choices is not None:
                assert tuple(choices or ()) == tuple(action.choices or ()), f.name


def _changed(cls):
    """A config of ``cls`` with every option moved off its default."""
    values = {}
    for f in cls.option_fields():
        default = cls.defaults().get(f.name)
        if f.metadata.get("choices"):
            values[f.name] = next(c for c in f.metadata["choices"] if c != default)
        elif isinstance(default, bool):
            values[f.name] = not default
        elif f.metadata.get("format") == "widths":
            values[f.name] = (7, 5)
        elif isinstance(default, float):
            values[f.name] = default / 2 if default else 0.25
        elif isinstance(default, int):
            values[f.name] = default + 1
    return values


def test_a_config_quoted_as_a_command_parses_back_to_itself():
    """The report's command lines: argv of a config parses to the same config."""
    config = UnfoldConfig(**_changed(UnfoldConfig), columns=("mjj", "m_j1"), blind="3300:3700")
    inputs = UnfoldInputs(sim="s.h5", data="d.h5", sim_weights="w.h5:x")
    argv = ["unfold", *inputs.argv(), *config.argv(), "-o", "out"]
    args = build_parser().parse_args(argv)
    assert UnfoldConfig.from_args(args, progress=config.progress) == config
    assert UnfoldInputs.from_args(args) == inputs

    search = SearchTaskConfig(
        **_changed(SearchTaskConfig), features=("m_j1", "n_j2"), efficiencies=(0.2, 0.02)
    )
    where = SearchInputs(data="d.h5", template="t.h5", signal="s.h5")
    args = build_parser().parse_args(["search", *where.argv(), *search.argv(), "-o", "x"])
    assert SearchTaskConfig.from_args(args, progress=search.progress) == search
    assert SearchInputs.from_args(args) == where

    train = TrainConfig(**_changed(TrainConfig), features=("m_j1", "tau21_j1"), tag="tau21>0.6")
    what = TrainInputs(input=("a.h5", "b.h5"), weights="w.h5:y")
    args = build_parser().parse_args(["detect", "train", *what.argv(), *train.argv(), "-o", "x"])
    assert TrainConfig.from_args(args, progress=train.progress) == train
    assert TrainInputs.from_args(args) == what


def test_the_cli_imports_a_task_only_for_the_command_that_runs():
    """``simkit --version`` or ``simkit info`` never import torch (seconds of start-up)."""
    import subprocess
    import sys

    code = (
        "import sys; from simkit.cli import build_parser; build_parser(); "
        "print(*(name in sys.modules for name in ('torch', 'simkit.tasks.detect', 'vector')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"] * 3, out.stdout + out.stderr


def test_generate_options_have_the_configs_defaults():
    """Every option of ``simkit generate qcd-dijet|wprime-xy`` has GenerateConfig's default,
    but the process options, whose defaults are the process's own (None in the config)."""
    from simkit.generators.pythia import PROCESSES

    for process in PROCESSES:
        actions = {a.dest: a for a in _subparser(("generate", process))._actions}
        for f in GenerateConfig.option_fields():
            if f.name == "process":
                continue
            if f.name in ("pthat_min", "mwprime", "mx", "my"):
                if f.name in actions:
                    assert actions[f.name].default == PROCESSES[process].defaults[f.name]
                continue
            default = GenerateConfig.defaults()[f.name]
            assert GenerateConfig.flag(f) in actions[f.name].option_strings, f.name
            if actions[f.name].default is not argparse.SUPPRESS:
                assert _same(actions[f.name].default, default), (process, f.name)
            else:
                assert default is None, f.name


def test_defaults_are_not_written():
    assert UnfoldConfig().argv() == []
    assert UnfoldConfig(warm_start=False).argv() == ["--no-warm-start"]
    assert dataclasses.replace(CompareConfig(), bins=20).argv() == ["--bins", "20"]


def _schema_keys(section_name: str, sub: str | None = None) -> dict:
    from simkit.pipeline.config import SECTIONS

    section = next(s for s in SECTIONS if s.name == section_name)
    if sub is not None:
        section = next(s for s in section.subsections if s.name == sub)
    return {k.name: k for k in section.keys}


#: ``simkit run`` keys that set a task option: (section, subsection) → config class.
#: Keys whose meaning differs (a list of detectors, the blinding switch, the dijet
#: columns the pipeline models) are not task options and are left out.
SCHEMA_TASKS = {
    ("unfold", None): (UnfoldConfig, ("blind",)),
    ("compare", None): (CompareConfig, ()),
    ("detect", None): (TrainConfig, ("labels", "signal_region")),
    ("evaluate", None): (EvaluateConfig, ()),
    ("surrogate", None): (FitConfig, ("condition", "columns")),
}


@pytest.mark.parametrize("where", list(SCHEMA_TASKS), ids=lambda w: w[0])
def test_every_config_key_has_the_tasks_default(where):
    cls, skip = SCHEMA_TASKS[where]
    defaults = cls.defaults()
    shared = [k for k in _schema_keys(*where).values() if k.name in defaults]
    assert shared, where
    for key in shared:
        if key.name not in skip:
            assert _same(key.default, defaults[key.name]), (where, key.name)
    # the signal region: the same window, written as a list in TOML
    if where == ("detect", None):
        low, high = _schema_keys("detect")["signal_region"].default
        assert f"{low:g}:{high:g}" == defaults["signal_region"]


@pytest.mark.parametrize("kind", ["flow", "gan"])
def test_the_surrogate_keys_have_the_models_defaults(kind):
    """[surrogate.flow] and [surrogate.gan]: the model classes' own defaults."""
    from simkit.surrogates import SURROGATES

    model = SURROGATES[kind]()
    keys = {name: k.default for name, k in _schema_keys("surrogate", kind).items()}
    assert keys["epochs"] == model.epochs
    assert keys["batch_size"] == model.batch_size
    assert keys["patience"] == model.patience
    if kind == "flow":
        assert (keys["layers"], keys["hidden"]) == (model.n_layers, model.hidden)
    else:
        assert model.hidden == (keys["hidden"],) * keys["layers"] == model.critic_hidden


def test_results_draw_display_style(tmp_path):
    """A result's ``plot(ax=None)`` draws on the axes it is given and returns them."""
    import numpy as np

    from detectors.evaluate import evaluate as evaluate_scores
    from simkit.plotting import pyplot
    from simkit.tasks.detect import EvaluateResult

    rng = np.random.default_rng(1)
    labels = (rng.random(3000) < 0.3).astype(np.int8)
    evaluation = evaluate_scores(rng.normal(size=3000) + labels, labels=labels)
    result = EvaluateResult({"score": "s"}, evaluation, evaluation)
    _, ax = pyplot().subplots()
    assert result.plot(ax) is ax and ax.lines
    assert result.plot() is not ax  # a new figure when none is given
