"""A small declarative schema for TOML configs: types, ranges, defaults, clear errors.

Every key a config may hold is declared once, with its type, default, allowed range
and a help line; the documentation table (docs/reference/config.md) is generated from the same
declarations (``simkit run --schema``). Unknown keys and bad values are one-line
errors naming the file and the key, with a suggestion for a misspelt key.

>>> spec = Section("unfold", [Key("iterations", int, 3, low=1, help="OmniFold iterations")])
>>> spec.parse({"iterations": 4}, "cfg.toml")
{'iterations': 4}
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simkit.errors import SimkitError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}


@dataclass(frozen=True)
class Key:
    """One config key: ``kind`` is int, float, str, bool, or ``list`` with ``item`` type."""

    name: str
    kind: type
    default: Any
    help: str = ""
    low: float | None = None  # inclusive bounds for numbers (list: for each item)
    high: float | None = None
    choices: Sequence[Any] | None = None
    item: type | None = None  # element type of a list
    length: int | None = None  # exact list length (e.g. 2 for a window)
    min_items: int = 0
    optional: bool = False  # None allowed (written as absent in TOML)
    check: Callable[[Any], str | None] | None = None  # extra rule: message when wrong

    def describe(self, item: bool = False) -> str:
        """What a valid value looks like (``item``: one element of a list key)."""
        if self.kind is list and not item:
            plural = _PLURALS.get(self.item, "values")
            what = f"a list of {self.length} {plural}" if self.length else f"a list of {plural}"
        else:
            what = _TYPE_NAMES.get(self.item if self.kind is list else self.kind, "a value")
        if self.choices:
            options = ", ".join(repr(c) for c in self.choices)
            what = f"a list of {options}" if self.kind is list and not item else f"one of {options}"
        if self.low is not None and self.high is not None:
            what += f" in [{self.low}, {self.high}]"
        elif self.low is not None:
            what += f" ≥ {self.low}"
        elif self.high is not None:
            what += f" ≤ {self.high}"
        return what

    def _scalar(self, value: Any, kind: type, where: str) -> Any:
        expected = self.describe(item=self.kind is list)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind in (int, float):
            ok = isinstance(value, kind) and not isinstance(value, bool)
        else:
            ok = isinstance(value, kind)
        if not ok:
            raise SimkitError(f"{where} must be {expected}, got {value!r}")
        if kind is float and value != value:
            raise SimkitError(f"{where} must be a number, got nan")
        if self.choices is not None and value not in self.choices:
            raise SimkitError(f"{where} must be {expected}, got {value!r}")
        if kind in (int, float):
            if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high
            ):
                raise SimkitError(f"{where} must be {expected}, got {value!r}")
        return value

    def parse(self, value: Any, where: str) -> Any:
        if value is None:
            if self.optional:
                return None
            raise SimkitError(f"{where} is required")
        if self.kind is list:
            if not isinstance(value, list):
                raise SimkitError(f"{where} must be {self.describe()}, got {value!r}")
            if self.length is not None and len(value) != self.length:
                raise SimkitError(f"{where} must have {self.length} items, got {len(value)}")
            if len(value) < self.min_items:
                raise SimkitError(f"{where} needs at least {self.min_items} item(s)")
            value = [
                self._scalar(v, self.item or str, f"{where}[{i}]") for i, v in enumerate(value)
            ]
        else:
            value = self._scalar(value, self.kind, where)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise SimkitError(f"{where} {problem}, got {value!r}")
        return value


@dataclass(frozen=True)
class Section:
    """A ``[table]`` of keys; ``required`` sections must be present in the file."""

    name: str
    keys: Sequence[Key]
    help: str = ""
    required: bool = False
    subsections: Sequence[Section] = field(default_factory=tuple)

    def key_names(self) -> list[str]:
        return [k.name for k in self.keys] + [s.name for s in self.subsections]

    def parse(self, table: Mapping[str, Any] | None, source: str) -> dict:
        table = dict(table or {})
        prefix = f"{source}: [{self.name}]"
        known = self.key_names()
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise SimkitError(
                    f"{prefix} has an unknown key {key!r}{suggestion}; "
                    f"known keys: {', '.join(known)}"
                )
        out: dict[str, Any] = {}
        for k in self.keys:
            value = table.get(k.name, k.default)
            out[k.name] = k.parse(value, f"{prefix} {k.name}")
        for sub in self.subsections:
            if sub.name in table and not isinstance(table[sub.name], Mapping):
                raise SimkitError(f"{prefix} {sub.name} must be a table")
            out[sub.name] = Section(
                f"{self.name}.{sub.name}", sub.keys, sub.help, subsections=sub.subsections
            ).parse(table.get(sub.name), source)
        return out


def parse_document(
    document: Mapping[str, Any], sections: Sequence[Section], source: str
) -> dict[str, dict]:
    """Validate a whole TOML document against its sections."""
    known = [s.name for s in sections]
    for name, value in document.items():
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            suggestion = f" (did you mean [{hint[0]}]?)" if hint else ""
            raise SimkitError(
                f"{source}: unknown section [{name}]{suggestion}; sections: "
                + ", ".join(f"[{k}]" for k in known)
            )
        if not isinstance(value, Mapping):
            raise SimkitError(f"{source}: {name} must be a [{name}] table")
    out = {}
    for section in sections:
        if section.required and section.name not in document:
            raise SimkitError(f"{source}: the [{section.name}] section is required")
        out[section.name] = section.parse(document.get(section.name), source)
    return out


def markdown_table(sections: Sequence[Section]) -> str:
    """The schema as a Markdown table (for docs/reference/config.md)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def walk(section: Section, prefix: str) -> None:
        for k in section.keys:
            default = "—" if k.default is None else f"`{json.dumps(k.default, ensure_ascii=False)}`"
            lines.append(f"| `{prefix}{k.name}` | {k.describe()} | {default} | {k.help} |")
        for sub in section.subsections:
            walk(sub, f"{prefix}{sub.name}.")

    for section in sections:
        lines.append(f"| **[{section.name}]** | | | {section.help} |")
        walk(section, "")
    return "\n".join(lines)
