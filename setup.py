"""The one compiled piece of simkit; everything else is declared in pyproject.toml.

``simkit/surrogates/_spline.c`` is the sampling direction of the flow's spline couplings
(BENCHMARKS.md, "A compiled spline stage") and the elementwise steps of the torch-free
sampler's networks (``simkit/surrogates/sampler.py``). It is optional: where no C compiler is
found the build warns and goes on, and simkit samples through its torch path
(``simkit surrogate sample`` reports which one it used).
"""

import sys

from setuptools import Extension, setup

# -fno-math-errno / -fno-trapping-math let the exp loop vectorize; no -ffast-math: the
# kernel keeps IEEE NaN and infinity semantics (a NaN logit gives a NaN event, which
# sampling reports, as on the torch path).
FLAGS = (
    []
    if sys.platform == "win32"
    else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off"]
)

setup(
    ext_modules=[
        Extension(
            "simkit.surrogates._spline",
            ["simkit/surrogates/_spline.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    ]
)
