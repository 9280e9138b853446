"""Every example in the library's docstrings runs and prints what it says it prints.

One test per docstring that holds examples, in the three packages. The examples are
also what the API reference of the documentation shows (``make docs``), so a wrong one
fails here before a reader copies it.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

from simkit.nn import cpu_threads

PACKAGES = ("simkit", "detectors", "validation")

#: Examples that train for longer than a fast test may: they run with the slow tests
#: (``make test-all``), with the reason.
SLOW = {
    "detectors.search.search_window": (
        "fits 3 folds of gradient-boosted classifiers to 60 k toy events (~10 s on 2 cores)"
    ),
}

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        for info in pkgutil.walk_packages(path, prefix=f"{package}."):
            if not info.name.endswith("__main__"):  # `python -m simkit` runs the CLI
                names.append(info.name)
    return names


def _examples() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    params = []
    for name in _module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples and test.name.split(".")[0] in PACKAGES:
                marks = [pytest.mark.slow] if test.name in SLOW else []
                params.append(pytest.param(test, id=test.name, marks=marks))
    return params


EXAMPLES = _examples()


def test_the_library_has_examples():
    lines = sum(len(p.values[0].examples) for p in EXAMPLES)
    assert len(EXAMPLES) >= 40 and lines >= 100, (len(EXAMPLES), lines)


@pytest.mark.parametrize("test", EXAMPLES)
def test_docstring_examples(test):
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    # the examples' networks are tiny: one torch thread (two were 10x slower on a busy
    # 2-core machine, as simkit.nn.cpu_threads says)
    with cpu_threads(1):
        result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)
