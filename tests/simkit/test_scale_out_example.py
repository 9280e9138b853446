"""The Slurm example of docs/howto/scale-out.md: its code runs against a LocalCluster."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from simkit.generators.pythia import generate
from simkit.shards import local_cluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "slurm_dask.py"


@pytest.fixture(scope="module")
def example():
    pytest.importorskip("dask_jobqueue")
    spec = importlib.util.spec_from_file_location("slurm_dask", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_show_the_tested_example():
    page = (ROOT / "docs" / "howto" / "scale-out.md").read_text()
    block = re.search(r"<!-- example: examples/slurm_dask.py -->\n```python\n(.*?)```", page, re.S)
    assert block, "docs/howto/scale-out.md lacks the example block"
    assert block.group(1) == EXAMPLE.read_text()


def test_generate_on_a_cluster_writes_the_laptops_file(example, tmp_path, monkeypatch):
    """generate_on() with a LocalCluster of two workers in place of the SLURMCluster."""
    pytest.importorskip("distributed")

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    with local_cluster(2, silence_logs=50) as cluster:
        path = example.generate_on(cluster, tmp_path / "sim.h5", 40, 1, shard_size=20)
    laptop = generate("qcd-dijet", 40, 1, shard_size=20, output=tmp_path / "laptop.h5")
    assert path.read_bytes() == laptop.read_bytes()


def test_the_slurm_job_script(example):
    """The Slurm part, short of a Slurm cluster: one core per job, requeued on pre-emption."""
    cluster = example.slurm_cluster(
        0, queue="short", account="hep", walltime="01:00:00",
        scheduler_options={"dashboard_address": "127.0.0.1:0"},  # 8787 may be taken here
    )  # fmt: skip
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A hep", "#SBATCH --cpus-per-task=1",
                 "#SBATCH -t 01:00:00", "#SBATCH --requeue", "--nthreads 1"):  # fmt: skip
        assert line in script
