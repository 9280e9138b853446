"""Plot plumbing shared by every package: a headless backend, the HEP style, saving.

Plot functions elsewhere draw onto an ``ax`` the caller may pass and return it; this
module only makes figures and writes them.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_STYLE_SET = False


def pyplot():
    """matplotlib.pyplot on a headless backend, in the CMS-like mplhep style when installed."""
    global _STYLE_SET
    import matplotlib

    if not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not _STYLE_SET:
        with contextlib.suppress(ImportError):
            import mplhep

            plt.style.use(mplhep.style.ROOT)
        plt.rcParams.update(
            {"figure.dpi": 100, "savefig.dpi": 110, "font.size": 11, "axes.titlesize": 11}
        )
        _STYLE_SET = True
    return plt


def savefig(fig, path: str | os.PathLike) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        fig.savefig(tmp, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
