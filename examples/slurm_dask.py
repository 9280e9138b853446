"""Generate a large simulation on a Slurm cluster: dask-jobqueue starts the Dask workers.

    python examples/slurm_dask.py --events 1250000 --workers 64 -o /shared/lhco/sim.h5

Each Slurm job is one Dask worker with one core (Pythia runs one shard per process).
Workers write their shards into OUTPUT.shards/ beside the output, so the output's
folder must be on a filesystem the compute nodes share. A job pre-empted or timed out
loses only the shards it was simulating: its shards are retried on the other workers
(`--requeue` brings the job back), and if the whole run stops, the same command again
resumes from the finished shards. The file is byte for byte what `simkit generate`
writes on a laptop with the same seed (with SOURCE_DATE_EPOCH set) when both pick the
same code of ISA-L's deflate, which compresses the chunks and chooses its code for the
CPU: across CPU families (an arm64 laptop against an x86-64 cluster) the compressed bytes
may differ. The events themselves are the same everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def slurm_cluster(
    workers: int,
    *,
    queue: str | None = None,
    account: str | None = None,
    walltime: str = "04:00:00",
    memory: str = "4GB",
    **options,
):
    """A dask-jobqueue SLURMCluster of ``workers`` one-core jobs (submitted now).

    ``options`` go to ``SLURMCluster``, e.g. ``scheduler_options={"dashboard_address":
    ":0"}`` for the dashboard on a free port where 8787 is taken (a shared login node).
    """
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        cores=1,
        processes=1,
        memory=memory,
        walltime=walltime,
        queue=queue,
        account=account,
        job_extra_directives=["--requeue"],  # a pre-empted job comes back
        **options,
    )
    cluster.scale(jobs=workers)
    return cluster


def generate_on(cluster, output: str | Path, events: int, seed: int, **options) -> Path:
    """``simkit generate qcd-dijet`` with its shards run by ``cluster``'s workers."""
    from dask.distributed import Client

    from simkit.generators.pythia import generate

    with Client(cluster) as client:
        return generate(
            "qcd-dijet",
            events,
            seed,
            output=output,
            scheduler=client,
            resume=True,  # rerunning after a stop keeps the finished shards
            progress=True,
            **options,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_250_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=32, help="Slurm jobs, one core each")
    parser.add_argument("--queue", help="Slurm partition")
    parser.add_argument("--account", help="Slurm account")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    cluster = slurm_cluster(args.workers, queue=args.queue, account=args.account)
    try:
        path = generate_on(cluster, args.output, args.events, args.seed)
    finally:
        cluster.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
