"""simkit.shards: the same bytes whoever runs the shards; resume; clear failures."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from shard_testing import NoiseShard, mean_of_means

from simkit.errors import SimkitError
from simkit.io import read_sample
from simkit.shards import ShardPlan, local_cluster, parse_scheduler, run_shards

PROVENANCE = {"generator": "test"}


def plan(tmp_path, name="noise.h5", seed=3, sizes=(20, 20, 20, 7)):
    return ShardPlan(tmp_path / name, {"seed": seed, "kind": "noise"}, sizes=sizes)


def run(p, task, **kwargs):
    return run_shards(p, task, provenance=PROVENANCE, finish=mean_of_means, **kwargs)


@pytest.fixture(scope="module")
def dask_client():
    """Two one-thread worker processes, shared by this module's Dask tests."""
    distributed = pytest.importorskip("distributed")
    with local_cluster(2, silence_logs=50) as cluster, distributed.Client(cluster) as client:
        yield client


def test_merged_file_is_the_shards_in_order(tmp_path):
    out = run(plan(tmp_path), NoiseShard(seed=3))
    sample = read_sample(out)
    assert len(sample) == 67
    first = np.random.default_rng([3, 0]).normal(size=(20, 2)).astype(np.float32)
    np.testing.assert_array_equal(sample.reco.features[:20], first)
    assert sample.provenance["generator"] == "test" and "mean_x" in sample.provenance
    assert not (tmp_path / "noise.h5.shards").exists()  # removed after the merge


def test_same_bytes_in_process_local_workers_and_dask(tmp_path, dask_client):
    """In this process, two local worker processes and a Dask cluster of two workers
    write byte-identical files (shards finish in any order; the merge is in order)."""
    task = NoiseShard(seed=3)
    one = run(plan(tmp_path, "one.h5"), task).read_bytes()
    assert run(plan(tmp_path, "jobs.h5"), task, jobs=2).read_bytes() == one
    assert run(plan(tmp_path, "dask.h5"), task, scheduler=dask_client).read_bytes() == one


def test_failure_names_the_shard_and_keeps_the_finished_ones(tmp_path):
    p = plan(tmp_path)
    with pytest.raises(SimkitError) as error:
        run(p, NoiseShard(seed=3, fail_at=2))
    message = str(error.value)
    assert "shard 2 of 4 failed: RuntimeError: flaky disk" in message
    assert "2 of 4 shards finished and kept" in message and "--resume" in message
    assert p.complete() == [0, 1] and not p.output.exists()
    assert not list(tmp_path.glob(".noise.h5.*.tmp"))  # the merge begun is dropped
    # resuming runs shards 2 and 3 only, and gives the uninterrupted run's bytes
    resumed = run(p, NoiseShard(seed=3), resume=True).read_bytes()
    assert resumed == run(plan(tmp_path, "whole.h5"), NoiseShard(seed=3)).read_bytes()


def test_the_merge_runs_while_later_shards_do(tmp_path):
    """Shards 0 and 1 are in the output (its temporary file) before shard 2 is written;
    the bytes are those of the merge at the end (:func:`simkit.shards.merge`)."""
    from simkit.shards import merge

    seen = []

    def task(index, path):
        merging = list(tmp_path.glob(".streamed.h5.*.tmp"))
        seen.append((index, len(merging)))
        NoiseShard(seed=3)(index, path)

    streamed = run(plan(tmp_path, "streamed.h5"), task).read_bytes()
    assert seen == [(0, 0), (1, 1), (2, 1), (3, 1)]  # the output is open from shard 0 on
    p = plan(tmp_path, "at_end.h5")
    for i in p.prepare(resume=False):
        NoiseShard(seed=3)(i, p.path(i))
    at_end = merge(p, provenance=PROVENANCE, finish=mean_of_means).read_bytes()
    assert at_end == streamed


def test_a_local_cluster_starts_when_port_8787_is_taken():
    """Another cluster on the machine holds Dask's default HTTP port: ours starts without
    the "Port 8787 is already in use" warning (an error under this suite's settings)."""
    distributed = pytest.importorskip("distributed")
    with contextlib.ExitStack() as stack:
        holder = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):  # already taken by someone else: as good
            holder.bind(("0.0.0.0", 8787))
            holder.listen()
        cluster = stack.enter_context(local_cluster(1, processes=False, silence_logs=50))
        client = stack.enter_context(distributed.Client(cluster))
        assert client.submit(sum, [1, 2]).result() == 3
        assert cluster.scheduler.http_server.port != 8787


def test_local_workers_run_without_dask_malloc_trim():
    """Dask's MALLOC_TRIM_THRESHOLD_ (freed memory back to the system at once) is dropped
    for the workers simkit starts; its other settings (one OpenMP thread) stay."""
    pytest.importorskip("distributed")
    from simkit.shards import worker_environment

    environ = worker_environment()
    assert "MALLOC_TRIM_THRESHOLD_" not in environ
    assert environ.get("OMP_NUM_THREADS") in (1, "1")


def _malloc_trim_setting():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_a_local_clusters_workers_start_with_that_environment(dask_client):
    """local_cluster (what local:N starts) gives its worker processes worker_environment()."""
    assert set(dask_client.run(_malloc_trim_setting).values()) == {None}


def test_local_workers_exit_cleanly(tmp_path):
    """Workers that finished are not killed: a killed worker leaks what it holds (the
    resource tracker then warns at exit about leaked semaphores)."""
    import subprocess
    import sys

    code = (
        "import pathlib, sys; from shard_testing import BarShard; "
        "from simkit.shards import ShardPlan, run_shards; "
        "out = pathlib.Path(sys.argv[1]) / 'bar.h5'; "
        "run_shards(ShardPlan(out, {'seed': 3}, sizes=(20, 20, 20, 7)), BarShard(seed=3), "
        "provenance={}, jobs=2)"
    )
    tests = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": tests},
    )
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr, done.stderr
    assert (tmp_path / "bar.h5").exists()


def test_resume_skips_finished_shards_and_redoes_damaged_ones(tmp_path):
    p = plan(tmp_path)
    run(p, NoiseShard(seed=3), keep=True)
    p.path(1).write_bytes(b"half a file")  # damaged
    p.path(3).unlink()  # missing
    (p.folder / ".shard-00002.h5.x.tmp").write_bytes(b"")  # a killed writer's leftover
    assert p.prepare(resume=True) == [1, 3]
    assert not list(p.folder.glob(".*.tmp"))


def test_resume_with_another_seed_is_one_clear_line(tmp_path):
    run(plan(tmp_path, seed=3), NoiseShard(seed=3), keep=True)
    with pytest.raises(SimkitError, match=r"cannot resume: .* another run \(seed 3 \(now 4\)\)"):
        run(plan(tmp_path, seed=4), NoiseShard(seed=4), resume=True)
    # without --resume the old shards are replaced
    run(plan(tmp_path, seed=4), NoiseShard(seed=4))
    assert read_sample(tmp_path / "noise.h5").provenance["mean_x"] != 0


def test_a_run_that_finished_no_shard_leaves_nothing(tmp_path):
    with pytest.raises(SimkitError, match="shard 0 of 4"):
        run(plan(tmp_path), NoiseShard(seed=3, fail_at=0))
    assert list(tmp_path.iterdir()) == []


def test_plan_file_says_what_made_the_shards(tmp_path):
    p = plan(tmp_path)
    p.prepare(resume=False)
    document = json.loads((p.folder / "plan.json").read_text())
    assert document["fingerprint"] == {"seed": 3, "kind": "noise"}
    assert document["sizes"] == [20, 20, 20, 7] and document["digest"] == p.digest


@pytest.mark.parametrize(
    "text, message",
    [
        ("banana", "is not a Dask scheduler"),
        ("local:0", "local:N needs a whole number"),
        ("local:two", "local:N needs a whole number"),
        ("nowhere.json", "does not exist"),
        ("http://x:1", "is not a Dask scheduler"),
    ],
)
def test_nonsensical_scheduler_is_refused_before_any_work(tmp_path, text, message):
    with pytest.raises(SimkitError, match=message):
        run(plan(tmp_path), NoiseShard(seed=3), scheduler=text)
    assert list(tmp_path.iterdir()) == []


def test_scheduler_forms():
    assert str(parse_scheduler("tcp://10.0.0.1:8786")) == "tcp://10.0.0.1:8786"
    assert str(parse_scheduler("node7:8786")) == "tcp://node7:8786"
    assert parse_scheduler("local:3").workers == 3


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("simkit.shards.CONNECT_TIMEOUT", 1.0)
    with pytest.raises(
        SimkitError, match="could not reach the Dask scheduler at tcp://127.0.0.1:9"
    ):
        run(plan(tmp_path), NoiseShard(seed=3), scheduler="tcp://127.0.0.1:9")
    assert list(tmp_path.iterdir()) == []


def test_dask_retries_a_flaky_shard(tmp_path, dask_client):
    flaky = NoiseShard(seed=3, fail_at=1, fail_once=str(tmp_path))
    out = run(plan(tmp_path), flaky, scheduler=dask_client)
    assert (tmp_path / "attempted-1").exists()  # it failed once, then passed
    assert out.read_bytes() == run(plan(tmp_path, "ok.h5"), NoiseShard(seed=3)).read_bytes()


def test_dask_failure_after_the_retries_names_the_shard(tmp_path, dask_client):
    with pytest.raises(SimkitError, match="shard 3 of 4 failed after 2 attempts: RuntimeError"):
        run(plan(tmp_path), NoiseShard(seed=3, fail_at=3), scheduler=dask_client, retries=1)
    assert not (tmp_path / "noise.h5").exists()
