"""The parser class of every ``simkit`` (sub)command: defaults from the task layer,
loaded only for the command that runs.

A command's options take their defaults from its task config
(:meth:`simkit.tasks.base.Options.cli_defaults`), the one place they are declared. The
task modules import torch and the estimators, which takes seconds; so a parser names
its configs (``task_configs = ("simkit.tasks.unfold:UnfoldConfig",)``) and imports them
only when it parses or prints its help — ``simkit info`` or ``simkit --version`` never
pays for ``simkit unfold``'s imports.
"""

from __future__ import annotations

import argparse
import importlib


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose defaults come from task configs, loaded on first use."""

    task_configs: tuple[str, ...] = ()
    _loaded = False

    def load_task_defaults(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for path in self.task_configs:
            module, _, name = path.partition(":")
            getattr(importlib.import_module(module), name).cli_defaults(self)

    def parse_known_args(self, args=None, namespace=None):
        self.load_task_defaults()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self.load_task_defaults()
        return super().format_help()


def task_defaults(parser: argparse.ArgumentParser, *configs: str) -> None:
    """Give ``parser`` the defaults of the task configs ``"module:Class"`` (at once when
    it is not a :class:`Parser`)."""
    if isinstance(parser, Parser):
        parser.task_configs = (*parser.task_configs, *configs)
        return
    for path in configs:
        module, _, name = path.partition(":")
        getattr(importlib.import_module(module), name).cli_defaults(parser)
