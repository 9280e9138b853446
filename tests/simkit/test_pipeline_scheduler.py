"""simkit run with [run] scheduler: the sharded stages on Dask write the same files."""

import pytest

from simkit.pipeline import run_pipeline

TINY = {
    "run": {"seed": 3, "jobs": 1, "device": "cpu"},
    "generate": {"sim_events": 300, "data_events": 300, "signal_events": 200, "s_over_b": 0.05},
}


@pytest.mark.slow
def test_simulation_and_data_stages_on_a_dask_cluster(tmp_path, monkeypatch):
    """The sim and data stages with [run] scheduler = "local:2" write the bytes that
    [run] jobs = 1 writes."""
    pytest.importorskip("distributed")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    on_dask = {**TINY, "run": {**TINY["run"], "scheduler": "local:2"}}
    for config, folder in ((TINY, "alone"), (on_dask, "dask")):
        run_pipeline(config, tmp_path / folder, quiet=True, until="data")
    for name in ("sim/sim.h5", "data/data.h5", "data/signal.h5"):
        assert (tmp_path / "alone" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
