"""The options of every sharded command: ``--jobs``, ``--scheduler``, ``--resume``.

Generation, import, scoring and a search's scan run in shards (:mod:`simkit.shards`);
these flags choose who runs them and whether an interrupted run continues. The library
checks the values (a nonsensical or unreachable scheduler is one clear line).
"""

from __future__ import annotations

import argparse

from simkit.shards import RETRIES


def add_sharding(
    parser: argparse.ArgumentParser,
    *,
    folder: str = "OUTPUT.shards/",
    shard: str = "one event file per shard",
    title: str = "shards",
) -> None:
    """Add ``--jobs``, ``--scheduler``, ``--resume`` and ``--keep-shards`` to ``parser``;
    ``folder`` names where the shards go and ``shard`` what each is, in the help."""
    from simkit.cli import positive_int

    group = parser.add_argument_group(f"{title} (see docs/howto/scale-out.md)")
    group.add_argument(
        "--jobs", type=positive_int, default=1, help="local worker processes (one per core)"
    )
    group.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the shards on a Dask scheduler instead: tcp://HOST:PORT, a scheduler "
        "file (.json), or local:N for a local cluster of N processes; workers must see "
        f"the output's folder. A failing shard is retried {RETRIES} times",
    )
    group.add_argument(
        "--resume",
        action="store_true",
        help=f"continue an interrupted run: shards already in {folder} are kept "
        "(refused if they were made with other settings)",
    )
    group.add_argument(
        "--keep-shards",
        action="store_true",
        help=f"keep {folder} ({shard}) at the end",
    )
