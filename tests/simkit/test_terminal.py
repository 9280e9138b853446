"""What a user sees around the numbers: progress bars in a terminal and in a log file,
SIGTERM from a batch system, ``--version``."""

import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from simkit import __version__
from simkit.cli import main
from simkit.progress import LineProgress, progress_bar, progress_mode

# a carriage return or an ANSI escape sequence: what a live bar writes
TERMINAL_CODES = re.compile(r"\r|\x1b")


def run(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse exits for --version and usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"simkit {__version__}"


def test_a_terminal_gets_a_live_bar():
    main_fd, terminal_fd = os.openpty()
    try:
        with os.fdopen(terminal_fd, "w", closefd=False) as terminal:
            assert progress_mode(True, terminal) == "bar"
            bar = progress_bar(total=3, desc="stage", file=terminal, leave=False)
            assert not isinstance(bar, LineProgress)
            for _ in range(3):
                bar.update(1)
            bar.close()
        ready, _, _ = select.select([main_fd], [], [], 5.0)
        written = os.read(main_fd, 65536).decode() if ready else ""

    finally:
        os.close(main_fd)
        os.close(terminal_fd)
    assert "stage" in written and "\r" in written  # redrawn in place


def test_a_log_file_gets_one_line_per_finished_stage(tmp_path):
    with open(tmp_path / "log", "w") as log:
        assert progress_mode(True, log) == "lines"
        outer = progress_bar(total=2, desc="outer", unit="shard", file=log)
        for _ in range(2):
            # an inner bar (epochs inside the stage) prints nothing
            for _ in progress_bar(range(5), desc="epochs", leave=False, file=log):
                pass
            outer.update(1)
        outer.close()
        unfinished = progress_bar(total=10, desc="unfinished", file=log)
        unfinished.update(3)
        unfinished.close()  # an error or an interrupt says what happened instead
        with progress_bar(total=1, desc="quiet", enabled=False, file=log) as bar:
            bar.update(1)
    lines = (tmp_path / "log").read_text().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"outer: 2 shard in \d+\.\d s.*", lines[0])


def test_nested_bars_write_no_terminal_codes_when_not_a_terminal(tmp_path, capsys):
    """OmniFold's iteration bar around its classifiers' epoch bars (and a bootstrap bar),
    with stdout and stderr captured (not terminals): no carriage returns, no escapes."""
    for name, extra in (("sim", []), ("data", ["--data"])):
        code, _, err = run(
            capsys, "generate", "gaussian", "-n", 1000, "--seed", 3, *extra,
            "-o", tmp_path / f"{name}.h5",
        )  # fmt: skip
        assert code == 0, err
    code, out, err = run(
        capsys, "unfold", "--sim", tmp_path / "sim.h5", "--data", tmp_path / "data.h5",
        "--iterations", 2, "--epochs", 3, "--device", "cpu", "-o", tmp_path / "unfold",
    )  # fmt: skip
    assert code == 0, err
    assert not TERMINAL_CODES.search(out + err), repr(err[:300])


@pytest.fixture
def start_generate(tmp_path):
    """Start ``simkit generate`` of many events in a subprocess; never leave it running."""
    started = []

    def start(*extra):
        process = subprocess.Popen(
            [sys.executable, "-m", "simkit", "generate", "qcd-dijet", "-n", "100000",
             *extra, "-o", str(tmp_path / "big.h5")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _wait_for_a_finished_shard(process, folder, timeout=60.0):
    """Wait until the first shard file is in place: events are being written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(folder.glob("big.h5.shards/shard-*.h5")):
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    pytest.fail("simkit generate finished no shard within a minute")


def _assert_terminated_cleanly(process, folder):
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert err.strip() == "simkit generate: terminated (SIGTERM)"  # one line, no traceback
    assert not list(folder.rglob(".*.tmp"))  # no half-written file under a hidden name
    assert not (folder / "big.h5").exists()
    # what stays is what --resume continues from: the plan and the finished shards
    kept = {p.name for p in (folder / "big.h5.shards").iterdir()}
    assert "plan.json" in kept and all(re.fullmatch(r"plan\.json|shard-\d+\.h5", k) for k in kept)


def test_sigterm_removes_temporary_files_and_exits_143(tmp_path, start_generate):
    """A batch system's SIGTERM (time-out, pre-emption) unwinds like Ctrl-C. Progress is
    on and stderr is a pipe: the unfinished bar adds nothing to the one line."""
    process = start_generate("--shard-size", "10")
    _wait_for_a_finished_shard(process, tmp_path)
    time.sleep(0.3)  # the next shard is being written
    process.send_signal(signal.SIGTERM)
    _assert_terminated_cleanly(process, tmp_path)


@pytest.mark.slow
def test_sigterm_stops_the_workers_too(tmp_path, start_generate):
    process = start_generate("--jobs", "2", "--shard-size", "200", "--quiet")
    _wait_for_a_finished_shard(process, tmp_path)
    process.send_signal(signal.SIGTERM)
    _assert_terminated_cleanly(process, tmp_path)


def test_a_sigterm_lost_in_a_callback_still_stops_the_next_step(capsys):
    """A signal's exception raised while Python runs a weakref callback is lost (Python
    would print "Exception ignored" and go on): the full suite saw a generation run on
    after its SIGTERM that way. The loops' :func:`simkit.interrupt.check` stops it at the
    next step, and only inside the block that installed the handler; nothing extra is
    printed."""
    import os
    import weakref

    from simkit.interrupt import Terminated, check, sigterm_raises

    class Thing:
        pass

    def callback(_):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(10_000))  # the handler runs here, inside the callback: swallowed

    with sigterm_raises():
        thing = Thing()
        ref = weakref.ref(thing, callback)
        del thing  # runs the callback; its Terminated is lost there, and not printed
        assert ref() is None
        assert capsys.readouterr().err == ""
        with pytest.raises(Terminated):
            check()
    check()  # outside the block: a former SIGTERM is forgotten
