"""The whole chain from one config: generate → surrogate → unfold/compare → detect → evaluate.

>>> from simkit.pipeline import run_pipeline  # doctest: +SKIP
>>> summary = run_pipeline("examples/demo.toml", "runs/demo")  # doctest: +SKIP
>>> summary["report"]  # doctest: +SKIP
'runs/demo/report.html'

- :mod:`simkit.pipeline.config` — the TOML schema (:data:`~simkit.pipeline.config.SECTIONS`)
  and :func:`~simkit.pipeline.config.load_config`;
- :mod:`simkit.pipeline.chain` — the stages and :func:`run_pipeline`;
- :mod:`simkit.pipeline.stages` — content-keyed stages that skip and resume;
- :mod:`simkit.pipeline.report` and :mod:`simkit.pipeline.html` — the report.
"""

from simkit.pipeline.chain import run_pipeline, stage_names
from simkit.pipeline.config import SECTIONS, demo_config_path, load_config

__all__ = ["SECTIONS", "demo_config_path", "load_config", "run_pipeline", "stage_names"]
