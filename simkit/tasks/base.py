"""What every task shares: a frozen config whose fields are the command's options.

A task is a library function ``run(config, inputs, output) -> Result``. Its config and
inputs are frozen dataclasses deriving from :class:`Options`; each field is one option of
the matching ``simkit`` command, named as the option's ``dest`` (``--push-tolerance`` is
``push_tolerance``), and its default is declared here once:

- the CLI takes its defaults from the dataclass (:meth:`Options.cli_defaults`), and builds
  the config from the parsed arguments (:meth:`Options.from_args`);
- the pipeline builds the config directly and quotes the command a user would type by
  hand from the same object (:meth:`Options.argv`), so the two cannot drift;
- ``tests/simkit/test_tasks.py`` checks that every field has its option, with the same
  default and choices.

Field metadata: ``flag`` (the option when it is not ``--`` + the name with dashes; a
boolean that defaults to True is switched off by its flag), ``cli=False`` (not an
option: set from Python only), ``parser_default=True`` (None here means "the parser's
own default", e.g. a process's generation cut), ``format="widths"`` or ``"names"`` (a
tuple written as one comma-separated word, ``64,64`` or ``m_j1,tau21_j1``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar


@dataclasses.dataclass(frozen=True)
class Options:
    """Base of task configs and inputs (see the module)."""

    #: positional fields (in order) written before the options by :meth:`argv`
    POSITIONAL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    @classmethod
    def flag(cls, field: dataclasses.Field) -> str:
        return field.metadata.get("flag") or "--" + field.name.replace("_", "-")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        out = {}
        for f in cls.option_fields():
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
        return out

    @classmethod
    def cli_defaults(cls, parser: argparse.ArgumentParser) -> None:
        """Give ``parser``'s options their defaults from this dataclass (the one place
        they are declared)."""
        actions = {a.dest: a for a in parser._actions}
        keep = {f.name for f in cls.option_fields() if f.metadata.get("parser_default")}
        values = {k: v for k, v in cls.defaults().items() if k in actions and k not in keep}
        for name, value in values.items():  # argparse appends to a list default
            if isinstance(actions[name], argparse._AppendAction) and value is not None:
                values[name] = list(value)
        parser.set_defaults(**values)

    @classmethod
    def from_args(cls, args: argparse.Namespace | Mapping, **overrides) -> Options:
        """The config from parsed arguments (or a mapping): the fields it names."""
        values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        return cls(**{**kwargs, **overrides})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def argv(self, *, all_options: bool = False) -> list[str]:
        """The command-line words that give this config: positionals, then each option
        whose value differs from its default (every option with ``all_options``)."""
        words: list[str] = [str(getattr(self, name)) for name in self.POSITIONAL]
        defaults = self.defaults()
        for f in self.option_fields():
            if f.name in self.POSITIONAL:
                continue
            value = getattr(self, f.name)
            default = defaults.get(f.name, dataclasses.MISSING)
            if value is None or (not all_options and _same(value, default)):
                continue
            flag = self.flag(f)
            if isinstance(value, bool):
                if value != (default is True):
                    words.append(flag)
                continue
            if f.metadata.get("format") in ("widths", "names"):  # one comma-separated word
                words += [flag, ",".join(_word(v) for v in value)]
            elif isinstance(value, (list, tuple)):
                words += [flag, *(_word(v) for v in value)]
            else:
                words += [flag, _word(value)]
        return words


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return value == default


def _word(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def option(default: Any = dataclasses.MISSING, **metadata) -> Any:
    """A dataclass field with option metadata (see the module)."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults: use a tuple")
    return dataclasses.field(default=default, metadata=metadata)


def command_line(command: str, *parts: Options, output=None) -> str:
    """The ``simkit`` command a user would type for these configs and inputs, as a
    shell line (only options that differ from their defaults are written)."""
    import shlex

    words = ["simkit", *command.split()]
    for part in parts:
        words += part.argv()
    if output is not None:
        words += ["-o", str(output)]
    return shlex.join(words)
