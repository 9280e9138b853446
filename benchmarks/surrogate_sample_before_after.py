"""`simkit surrogate sample` before and after a change, interleaved, as a user runs it.

Issue 17's "done when" is a ratio: the command 10× faster than before the work began.
The 2-core VM's speed drifts by ±25 % within the hour, so the two versions are timed in
alternation, round by round. ``--before`` names a commit (03c8b28: the code when issue
17 was taken up); it is checked out as a git worktree in the work folder and run from
there with this environment's packages (``PYTHONPATH``). "After" is the installed
simkit (this checkout).

Each version fits its own default flow (``simkit surrogate fit --kind flow`` with its
own defaults; one epoch, since sampling cost does not depend on training) to the same
event file, unconditional (``plain``) and conditioned on ``mjj`` (``cond``, sampled
with ``--condition-from`` the same file). Then, per round and model, each version runs
``simkit surrogate sample MODEL -n EVENTS -o out.h5`` (gzip, the default) as a fresh
process. Recorded: the wall time of the process (start-up included: importing torch
is 2.4 s of CPU here) and the rate the command itself reports (sampling and writing).

    python benchmarks/surrogate_sample_before_after.py --before 03c8b28 \
        --sim runs/bench-surrogates-17/qcd.h5 -o runs/sample-ab --rounds 3

Results in ``-o``/results.jsonl (one line per run) and a summary printed at the end.

``--avx2-class`` runs both versions as on a CPU without AVX-512 (most laptops): numpy's
OpenBLAS with its Haswell kernels (``OPENBLAS_CORETYPE``), torch's own kernels, MKL and
oneDNN capped at AVX2 (``ATEN_CPU_CAPABILITY``, ``MKL_ENABLE_INSTRUCTIONS``,
``ONEDNN_MAX_CPU_ISA``) and simkit's compiled stage on its AVX2 + FMA build
(``_spline.use``). It caps instruction sets only; caches and clocks stay this CPU's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu  # this folder, on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
RATE = re.compile(r"\(([\d,]+) events/s")


#: --avx2-class: the environment that caps numpy's, torch's, MKL's and oneDNN's kernels
AVX2_CLASS = {
    "OPENBLAS_CORETYPE": "Haswell",
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}
#: ... and what the "after" process runs first (an older version has no compiled stage)
AVX2_STAGE = (
    "from simkit.surrogates import _spline\n"
    "if 'avx2+fma' in _spline.instruction_sets: _spline.use('avx2+fma')\n"
)


def simkit_command(version: str, before: Path, avx2_class: bool = False) -> tuple[list[str], dict]:
    """The command line that runs one version's CLI, and its environment. Run it from
    ``before.parent``: ``python -c`` puts the working directory first on sys.path, so
    from this checkout it would import this checkout whatever PYTHONPATH says."""
    env = dict(os.environ) | (AVX2_CLASS if avx2_class else {})
    code = "import sys; from simkit.cli import main; sys.exit(main())"
    if avx2_class and version == "after":
        code = AVX2_STAGE + code.replace("; ", "\n")
    if version == "before":
        env["PYTHONPATH"] = str(before)  # ahead of the installed (editable) simkit
    else:
        env.pop("PYTHONPATH", None)
    return [sys.executable, "-c", code], env


def checkout(commit: str, folder: Path) -> Path:
    if not folder.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), commit],
            check=True,
        )
    return folder


def run(
    version: str, before: Path, args: list[str], *, avx2_class: bool = False
) -> tuple[float, str]:
    command, env = simkit_command(version, before, avx2_class)
    start = time.perf_counter()
    done = subprocess.run(
        [*command, *args], env=env, capture_output=True, text=True, cwd=before.parent
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{version}: {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="commit of the 'before' code")
    parser.add_argument("--sim", required=True, type=Path, help="event file to fit")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["plain", "cond"])
    parser.add_argument("-o", "--output", required=True, type=Path, help="work folder")
    parser.add_argument(
        "--avx2-class", action="store_true", help="cap both versions' kernels at AVX2"
    )
    args = parser.parse_args(argv)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)
    before = checkout(args.before, out / "before-code")
    for version, home in (("before", before), ("after", ROOT)):
        _, env = simkit_command(version, before)
        where = subprocess.run(
            [sys.executable, "-c", "import simkit; print(simkit.__file__)"],
            env=env, capture_output=True, text=True, cwd=before.parent, check=True,
        ).stdout.strip()  # fmt: skip
        if not Path(where).is_relative_to(home):
            raise SystemExit(f"{version}: imports simkit from {where}, not from {home}")
    sim = str(args.sim.resolve())

    for version in ("before", "after"):
        for model in args.models:
            folder = out / f"{version}-{model}"
            if not folder.exists():
                extra = ["--condition", "mjj"] if model == "cond" else []
                fit = ["surrogate", "fit", "--kind", "flow", "--input", sim, *extra, "--epochs=1"]
                run(version, before, [*fit, "--seed", "1", "-q", "-o", str(folder)])

    log = out / "results.jsonl"
    for round_ in range(1, args.rounds + 1):
        for model in args.models:
            extra = ["--condition-from", sim] if model == "cond" else []
            for version in ("before", "after"):
                target = out / "out.h5"
                target.unlink(missing_ok=True)
                sample = ["surrogate", "sample", str(out / f"{version}-{model}"), *extra]
                seed = ["--seed", str(round_)]
                wall, line = run(
                    version,
                    before,
                    [*sample, "-n", str(args.events), *seed, "-o", str(target)],
                    avx2_class=args.avx2_class,
                )
                found = RATE.search(line)
                entry = {
                    "round": round_,
                    "model": model,
                    "version": version,
                    "wall_s": round(wall, 3),
                    "reported_rate": int(found.group(1).replace(",", "")) if found else None,
                    "summary": line,
                    "load": Path("/proc/loadavg").read_text().split()[0],
                    "avx2_class": args.avx2_class,
                    "cpu": cpu(),
                }
                print(json.dumps(entry), flush=True)
                with log.open("a") as stream:
                    stream.write(json.dumps(entry) + "\n")
                target.unlink(missing_ok=True)

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    print("\n| model | round | wall before / after | ratio ", end="")
    print("| reported rate before / after | ratio |")
    print("|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {"wall": [], "rate": []}
    for model in args.models:
        for round_ in sorted({e["round"] for e in entries if e["model"] == model}):
            pair = {e["version"]: e for e in entries if (e["model"], e["round"]) == (model, round_)}
            if set(pair) != {"before", "after"}:
                continue
            b, a = pair["before"], pair["after"]
            wall = b["wall_s"] / a["wall_s"]
            rate = a["reported_rate"] / b["reported_rate"]
            ratios["wall"].append(wall)
            ratios["rate"].append(rate)
            print(
                f"| {model} | {round_} | {b['wall_s']:.1f} s / {a['wall_s']:.1f} s | {wall:.1f}× "
                f"| {b['reported_rate'] / 1e3:.1f} k/s / {a['reported_rate'] / 1e3:.1f} k/s "
                f"| {rate:.1f}× |"
            )
    for key, values in ratios.items():
        if values:
            print(f"median {key} ratio {statistics.median(values):.2f}× over {len(values)} pairs")


if __name__ == "__main__":
    main()
