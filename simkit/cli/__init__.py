"""The ``simkit`` command line: one console script, subcommands in the order data flows.

Each subcommand lives in its own module of this package with two functions:
``register(subparsers, common)`` adds its parser, and the parser's ``func``
default runs it. Errors caused by input are one line on stderr and a non-zero
exit; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
import traceback

from simkit.errors import SimkitError
from simkit.interrupt import Terminated, sigterm_raises

#: Subcommand modules, in the order data flows (module ``importer`` is ``simkit import``).
COMMANDS = (
    "generate",
    "importer",
    "info",
    "surrogate",
    "unfold",
    "compare",
    "detect",
    "search",
    "export",
    "run",
    "demo",
)


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep hand-made line breaks in descriptions; show defaults where they say something
    (not for flags, absent values, or help that already states its default)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default is None
            or action.default is False  # 0 == False: compare identities
            or action.default is argparse.SUPPRESS
            or "default" in text.lower()
            or action.option_strings == []
        ):
            return text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (accepts 1e6 and 1_000_000)."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return int(value)


def seed_int(text: str) -> int:
    """argparse type: a seed in 0..2**63-1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be non-negative, got {value}")
    return value


def _float_in(text: str, ok, wanted: str) -> float:
    """Parse a float, or tell argparse what was ``wanted``; NaN never passes."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or not ok(value):
        raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    return _float_in(text, lambda v: 0.0 <= v <= 1.0, "between 0 and 1")


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    return _float_in(text, lambda v: 0.0 < v < float("inf"), "a positive finite number")


def non_negative_float(text: str) -> float:
    """argparse type: a finite float ≥ 0."""
    return _float_in(text, lambda v: 0.0 <= v < float("inf"), "a finite number ≥ 0")


def widths(text: str) -> tuple[int, ...]:
    """argparse type: layer widths such as ``64,64``."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 64,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return values


def common_parser() -> argparse.ArgumentParser:
    """Options every subcommand takes: --quiet and --debug."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars or chatter; errors still go to stderr",
    )
    group.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    return common


def add_seed(parser: argparse.ArgumentParser, default: int | None = 0) -> None:
    parser.add_argument(
        "--seed",
        type=seed_int,
        default=default,
        help="random seed: the same seed gives the same result",
    )


def add_output(
    parser: argparse.ArgumentParser, what: str, required: bool = True, default: str | None = None
) -> None:
    parser.add_argument(
        "-o", "--output", required=required, default=default, metavar="PATH", help=what
    )


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="where torch runs: auto takes a CUDA GPU when there is one "
        "(with bf16 mixed precision)",
    )


def add_blind(parser: argparse.ArgumentParser, what: str) -> None:
    """``--blind LOW:HIGH`` and ``--blind-column``: a window (a signal region) to keep out."""
    parser.add_argument("--blind", metavar="LOW:HIGH", help=what)
    parser.add_argument(
        "--blind-column", default="mjj", metavar="COL", help="column --blind is a window of"
    )


def blind_window(args: argparse.Namespace) -> tuple[str, float, float] | None:
    """``(column, low, high)`` of ``--blind``, or None; a bad window is a clear error."""
    if args.blind is None:
        return None
    from simkit.regions import SignalRegion

    region = SignalRegion.parse(args.blind, column=args.blind_column, what="--blind")
    return region.column, region.low, region.high


def build_parser() -> argparse.ArgumentParser:
    from simkit import __version__
    from simkit.cli.parser import Parser

    parser = Parser(
        prog="simkit",
        formatter_class=_Formatter,
        description=(
            "Simulate Standard-Model background, validate it against data with OmniFold,\n"
            "and train anomaly detectors on what was validated.\n\n"
            "Run `simkit COMMAND --help` for the options of each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"simkit {__version__}")
    common = common_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"simkit.cli.{name}")
        module.register(sub, common)
    return parser


def subparser(sub, name: str, common, help: str, description: str | None = None):
    """Add a subcommand parser with simkit's formatter and common options."""
    return sub.add_parser(
        name,
        parents=[common],
        help=help,
        description=description or help,
        formatter_class=_Formatter,
    )


def say(args: argparse.Namespace, *parts) -> None:
    """Print to stdout unless --quiet."""
    if not getattr(args, "quiet", False):
        print(*parts, flush=True)


@contextlib.contextmanager
def torchrun_rank_outputs(args: argparse.Namespace):
    """Under ``torchrun`` every rank runs the command (training is data-parallel, see
    :mod:`simkit.distributed`), but rank 0 alone writes the output and talks: the other
    ranks run quietly into a scratch folder that is removed at the end."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:  # before any tensor: "cuda" means this rank's GPU everywhere
        from simkit.distributed import pin_local_gpu

        pin_local_gpu()
    try:
        if world > 1 and rank > 0 and getattr(args, "output", None) is not None:
            import tempfile

            with (
                tempfile.TemporaryDirectory(prefix=f"simkit-rank{rank}-") as scratch,
                open(os.devnull, "w") as silence,
                contextlib.redirect_stdout(silence),  # even what --quiet prints
            ):
                args.quiet = True
                args.output = os.path.join(scratch, os.path.basename(str(args.output)))
                yield
        else:
            yield
    finally:
        if "simkit.distributed" in sys.modules:  # torch was loaded: leave the group
            sys.modules["simkit.distributed"].shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``simkit`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get("SIMKIT_DEBUG") == "1"
    try:
        # a batch system's SIGTERM cleans up like Ctrl-C; under torchrun rank 0 writes
        with sigterm_raises(), torchrun_rank_outputs(args):
            result = args.func(args)
        return int(result or 0)
    except SimkitError as exc:
        if debug:
            traceback.print_exc()
        print(f"simkit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print(f"simkit {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"simkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `simkit info FILE | head` closed the pipe: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit would fail again
        return 141
    except Exception as exc:  # a bug, not bad input: say so, and how to see more
        if debug:
            traceback.print_exc()
        else:
            print(
                f"simkit {args.command}: internal error: {type(exc).__name__}: {exc} "
                "(run again with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1


def console() -> int:
    """The ``simkit`` console script and ``python -m simkit``: :func:`main`, then freeze
    the garbage collector's objects before the interpreter exits.

    A process that imported torch spends 0.35-0.55 s at exit in the interpreter's final
    collection over torch's module objects, which live until exit anyway (measured on the
    2-core machine: 2.05-2.65 s against 1.70-2.10 s for ``import simkit.surrogates.flow``
    then exit; BENCHMARKS.md, "`simkit surrogate sample` without torch, and a faster
    write"). Everything the command wrote is closed and reported by then. In-process
    callers (tests, scripts) call :func:`main` and keep their collector as it was.
    """
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console())
