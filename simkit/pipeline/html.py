"""A self-contained HTML report: one file, images embedded, no server, no scripts.

>>> doc = HtmlReport("demo")
>>> doc.heading("Summary"); doc.table(["a", "b"], [[1, 2.5]])
>>> "<table" in doc.render()
True
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from simkit.io import atomic_path

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1180px;margin:2em auto;
padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{border-bottom:3px solid #2b5797;padding-bottom:.3em}
h2{margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:.2em;color:#2b5797}
h3{margin-top:1.5em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #d0d0d0;padding:.3em .7em;text-align:left;vertical-align:top}
th{background:#eef2f8}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}
.note{color:#555;font-size:.9em}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:100%}
figure img{max-width:100%;border:1px solid #e3e3e3}
figcaption{font-size:.85em;color:#444;max-width:560px}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.82em}
details{margin:.5em 0}
"""


@dataclass(frozen=True)
class Verdict:
    """A cell that shows the validation gate's verdict, coloured."""

    validated: bool

    def __str__(self) -> str:
        return "VALIDATED" if self.validated else "NOT VALIDATED"


def fmt(value, digits: int = 4) -> str:
    """A number as a report shows it: 4 significant digits; booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "—"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}"
    return str(value)


class HtmlReport:
    """Accumulate headings, paragraphs, tables and figures; render one HTML file."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.parts: list[str] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str, css: str | None = None) -> None:
        cls = f' class="{css}"' if css else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def raw(self, markup: str) -> None:
        self.parts.append(markup)

    def table(self, header: Sequence[str], rows: Sequence[Sequence]) -> None:
        """A table; numbers right-aligned, :class:`Verdict` cells coloured."""
        out = ["<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
        for row in rows:
            cells = []
            for value in row:
                text = html.escape(fmt(value))
                if isinstance(value, Verdict):
                    css = "ok" if value.validated else "bad"
                    cells.append(f'<td class="{css}">{text}</td>')
                elif isinstance(value, (int, float)):
                    cells.append(f'<td class="num">{text}</td>')
                else:
                    cells.append(f"<td>{text}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.parts.append("".join(out))

    def metrics(self, values: Mapping, keys: Sequence[str] | None = None) -> None:
        """A two-column table of scalar metrics, in the order of ``keys`` when given
        (nested dicts and lists are left out)."""
        order = values if keys is None else [k for k in keys if k in values]
        rows = [(k, values[k]) for k in order if not isinstance(values[k], (dict, list))]
        if rows:
            self.table(["metric", "value"], rows)

    def preformatted(self, text: str) -> None:
        """Text shown as is (commands, logs)."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def figure(self, path: str | Path, caption: str = "") -> None:
        path = Path(path)
        if not path.exists():
            self.paragraph(f"(plot {path.name} was not produced)", "note")
            return
        data = base64.b64encode(path.read_bytes()).decode()
        self.parts.append(
            f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption or path.stem.replace('_', ' '))}</figcaption>"
            "</figure>"
        )

    def json_block(self, summary: str, document) -> None:
        text = html.escape(json.dumps(document, indent=2, sort_keys=True, default=str))
        self.parts.append(
            f"<details><summary>{html.escape(summary)}</summary><pre>{text}</pre></details>"
        )

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return Path(path)
