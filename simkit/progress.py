"""Progress bars that suit where the output goes.

Every long loop of simkit, validation and detectors asks :func:`progress_bar` for its
bar, so one function decides how progress is shown:

- to a terminal (or a Jupyter notebook): a live tqdm bar; nested bars (an epoch bar
  inside a stage) stack and the inner ones vanish when done;
- to anything else (a log file, a pipe, a batch system's output): no bar at all — tqdm
  writes carriage returns and cursor-movement escape codes that fill a log file — but
  one plain line when a top-level bar (``leave=True``) completes, e.g.
  ``qcd-dijet: 30,000 ev in 42.1 s (712 ev/s)``; inner bars (``leave=False``) and bars
  left unfinished (an error or an interrupt says what happened) print nothing;
- nowhere when ``enabled`` is false (``--quiet``, or ``progress=False`` in the API).

>>> with progress_bar(total=3, desc="toy", enabled=False) as bar:
...     for _ in range(3):
...         bar.update(1)
>>> list(progress_bar(range(3), enabled=False))
[0, 1, 2]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

__all__ = ["LineProgress", "progress_bar", "progress_mode"]


def _in_notebook() -> bool:
    """True inside a Jupyter kernel, where tqdm draws a widget instead of text."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    try:
        return shell.get_ipython() is not None
    except AttributeError:  # pragma: no cover - an IPython without get_ipython
        return False


def progress_mode(enabled: bool = True, stream: IO[str] | None = None) -> str:
    """How progress is shown on ``stream`` (default stderr): ``"bar"``, ``"lines"`` or
    ``"off"``.

    >>> import io
    >>> progress_mode(True, io.StringIO())
    'lines'
    >>> progress_mode(False, io.StringIO())
    'off'
    """
    if not enabled:
        return "off"
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return "bar" if tty or _in_notebook() else "lines"


class LineProgress:
    """The stand-in for a tqdm bar when the output is not a terminal: counts silently
    and writes one line when a top-level bar completes.

    It has the part of tqdm's interface simkit uses (``update``, ``close``,
    ``set_postfix``, ``set_description``, iteration, ``with``).

    >>> import io
    >>> out = io.StringIO()
    >>> bar = LineProgress(total=2, desc="toy", unit="ev", file=out, clock=iter([0, 4]).__next__)
    >>> bar.update(2)
    >>> bar.close()
    >>> out.getvalue()
    'toy: 2 ev in 4.0 s (0.5 ev/s)\\n'
    """

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: float | None = None,
        desc: str | None = None,
        unit: str = "it",
        leave: bool = True,
        initial: float = 0,
        file: IO[str] | None = None,
        clock=time.perf_counter,
    ) -> None:
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.unit = unit
        self.leave = leave
        self.n = initial
        self._initial = initial
        self._file = file
        self._clock = clock
        self._start = clock()
        self._closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable or ():
            yield item
            self.n += 1
        self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        """Ignored: a line per completed stage has no room for a running loss."""

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        finished = self.total is None or self.n >= self.total
        if not (self.leave and finished):
            return
        seconds = self._clock() - self._start
        done = self.n - self._initial
        count = f"{self.n:,.0f}" if float(self.n).is_integer() else f"{self.n:,.4g}"
        line = f"{self.desc or 'done'}: {count} {self.unit} in {seconds:.1f} s"
        if seconds > 0 and done > 0:
            line += f" ({done / seconds:,.3g} {self.unit}/s)"
        stream = sys.stderr if self._file is None else self._file
        print(line, file=stream, flush=True)


def progress_bar(
    iterable: Iterable | None = None,
    *,
    enabled: bool = True,
    total: float | None = None,
    desc: str | None = None,
    unit: str = "it",
    unit_scale: bool = False,
    leave: bool = True,
    initial: float = 0,
    file: IO[str] | None = None,
):
    """A progress bar over ``iterable`` (or updated by hand up to ``total``), shown the
    way :func:`progress_mode` decides for ``file`` (default stderr).

    ``leave=False`` marks an inner bar (epochs inside a stage): it vanishes when done in
    a terminal and prints nothing elsewhere. Returns a tqdm bar, or a
    :class:`LineProgress` with the same interface.
    """
    mode = progress_mode(enabled, file)
    if mode == "lines":
        return LineProgress(
            iterable, total=total, desc=desc, unit=unit, leave=leave, initial=initial, file=file
        )
    from tqdm.auto import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        leave=leave,
        initial=initial,
        file=file,
        disable=mode == "off",
    )
