"""The import contract of pyproject.toml (front-ends > tasks > estimators > core, no
cycles inside a package) holds: the same check as ``lint-imports`` in ``make lint``."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    run = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_the_pipeline_does_not_drive_the_cli():
    """Stages call tasks: no argv, no parser, no reading back the JSON they wrote."""
    for path in (ROOT / "simkit" / "pipeline").rglob("*.py"):
        if path.parent.name == "pipeline" and path.name in ("report.py", "stages.py"):
            continue  # the report draws the stages' files; stages.py reads its markers
        text = path.read_text()
        for banned in ("build_parser", "simkit.cli", "json.loads"):
            assert banned not in text, (path, banned)
