"""Helpers shared by the surrogate tests."""


def interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    """Make training stop like a Ctrl-C right after the checkpoint of ``epoch`` (1-based)."""
    import simkit.nn

    save = simkit.nn._atomic_torch_save

    def save_then_stop(state, path):
        save(state, path)
        if len(state["history"]) == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(simkit.nn, "_atomic_torch_save", save_then_stop)
