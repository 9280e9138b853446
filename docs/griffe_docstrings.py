"""A Griffe extension for the API reference: simkit's docstrings are reStructuredText
prose with doctest examples; mkdocstrings renders Markdown.

- doctest blocks (``>>>`` lines and their output) become fenced ``pycon`` code, so
  Markdown does not read ``>>>`` as nested quotes;
- roles such as :class:`~simkit.events.Sample` become code spans;
- ``::`` literal blocks keep their indentation as code.

Loaded by mkdocs.yml (``extensions``); excluded from the site itself.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|obj|exc|const):`~?([^`]+)`")


def _fence_doctests(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _literal_blocks(text: str) -> str:
    """``Paragraph::`` followed by an indented block: a code block in Markdown too."""
    return re.sub(r"::\n\n", ":\n\n", text)


class Docstrings(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        text = ROLE.sub(lambda m: f"`{m.group(1).split('.')[-1]}`", obj.docstring.value)
        obj.docstring.value = _literal_blocks(_fence_doctests(text))
