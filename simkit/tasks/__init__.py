"""The task layer: every ``simkit`` command as a library function.

``run(config, inputs, output) -> Result``: ``config`` and ``inputs`` are frozen
dataclasses (:class:`simkit.tasks.base.Options`) that declare each default once; the
result is a typed object with ``to_dict()`` and ``save(folder)``. The command line
(:mod:`simkit.cli`) parses arguments into a config and calls the task; the pipeline
(:mod:`simkit.pipeline`) builds the config from its TOML file and calls the same task.

Layers, from the bottom up (held by the import-linter contract in ``pyproject.toml``):
the core (``simkit.events``, ``io``, ``nn``, ``stats``, ``errors``, ``regions``), the
estimators (``simkit.generators``, ``simkit.surrogates``, ``validation``, ``detectors``),
the tasks (this package), the front-ends (``simkit.cli``, ``simkit.pipeline``).
"""
