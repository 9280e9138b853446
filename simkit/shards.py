"""Work in shards, each an ordinary event file: run anywhere, resume, merge in order.

A long job (Pythia generation, scoring a large file) is cut into *shards* whose events
depend only on the job's settings and the shard's index, never on who runs them. Each
shard is written atomically as an ordinary event file into a shard folder beside the
output (``sim.h5.shards/shard-00007.h5``); when every shard is there they are merged, in
index order, into the output, and the folder is removed. Hence:

- the output is the same bytes whether the shards ran in this process, in local worker
  processes (``jobs``) or on a ``dask.distributed`` cluster (``scheduler``), in whatever
  order they finished;
- an interrupted or pre-empted run keeps its finished shards: ``resume=True`` runs only
  the missing ones, so a kill loses at most the shards in flight, and the merged file is
  the one an uninterrupted run writes;
- the shard folder remembers what made it (``plan.json``): resuming with another seed or
  config is refused with one line that names the difference.

Dask workers write their shards themselves, so they must see the output's folder (a
shared filesystem, as on any Slurm or HTCondor cluster). A shard that raises on a worker
is retried up to :data:`RETRIES` more times; a worker that dies while running one is
replaced and the shard re-run, up to the scheduler's
``distributed.scheduler.allowed-failures`` (3 by default). Then the run fails, naming the
shard, and keeps the others.

A job is a :class:`ShardPlan` (what fixes the events, the events of each shard) and a
picklable ``task(index, path)`` that writes shard ``index`` as an event file at ``path``
(any :mod:`simkit.io` writer writes atomically) and returns nothing. :func:`run_shards`
runs the shards and merges them; :func:`execute` only runs them, for shards that are
not events (a search scan's windows, each a result file that ``ShardPlan.validate``
recognizes):

>>> import tempfile, pathlib, numpy as np
>>> from simkit.events import EventTable, Sample
>>> from simkit.io import read_sample, write_sample
>>> def ramp(index, path):  # shard i holds the numbers 10 i .. 10 i + 9
...     x = np.arange(10 * index, 10 * index + 10, dtype=float)
...     write_sample(path, Sample(reco=EventTable.from_columns({"x": x})))
>>> folder = tempfile.TemporaryDirectory()
>>> out = pathlib.Path(folder.name) / "ramp.h5"
>>> plan = ShardPlan(out, {"what": "ramp"}, sizes=(10, 10, 10))
>>> path = run_shards(plan, ramp, provenance={"generator": "doc"})
>>> read_sample(path).reco.column("x")[[0, 15, 29]]
array([ 0., 15., 29.], dtype=float32)
>>> folder.cleanup()
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simkit.errors import SimkitError
from simkit.interrupt import check

__all__ = [
    "PLAN_FILE",
    "RETRIES",
    "ShardError",
    "ShardPlan",
    "connect",
    "execute",
    "local_cluster",
    "parse_scheduler",
    "run_shards",
]

#: The file in a shard folder that says what made its shards.
PLAN_FILE = "plan.json"
#: Extra attempts of a shard that raised on a Dask worker (3 attempts in all).
RETRIES = 2
#: Seconds to wait for a Dask scheduler to answer before giving up.
CONNECT_TIMEOUT = 10.0

TaskFn = Callable[[int, Path], Any]


class ShardError(SimkitError):
    """A shard failed; the message names it and where the finished shards are kept."""


# --------------------------------------------------------------------------- the plan


def _canonical(document: Mapping) -> str:
    return json.dumps(document, sort_keys=True, default=str, separators=(",", ":"))


@dataclass(frozen=True)
class ShardPlan:
    """What a sharded job writes: ``output``, what fixes its events, each shard's events.

    ``fingerprint`` is a JSON-able mapping of everything that fixes the shards' content
    (seed, process, settings, inputs, shard size, …) and nothing that does not (worker
    count, scheduler). ``names`` optionally describes each shard for error messages
    (e.g. ``"events 1000–1999"``). ``sizes`` are the events of each shard, or with
    ``exact=False`` only its work for the progress bar (entries read before a
    selection): a shard's file then counts as complete when it is valid and says it is
    that shard. ``validate(path, index)``, for shards that are not event files, says
    whether the file at ``path`` is shard ``index`` complete (it replaces both checks).
    """

    output: Path
    fingerprint: Mapping
    sizes: tuple[int, ...]
    names: tuple[str, ...] = ()
    folder: Path = field(default=None)  # type: ignore[assignment]
    exact: bool = True
    validate: Callable[[Path, int], bool] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        if self.folder is None:
            folder = self.output.with_name(self.output.name + ".shards")
            object.__setattr__(self, "folder", folder)
        if not self.sizes:
            raise SimkitError(f"{self.output}: a sharded job needs at least one shard")
        if self.names and len(self.names) != len(self.sizes):
            raise SimkitError("a shard plan needs one name per shard")

    @property
    def digest(self) -> str:
        """A short hash of the fingerprint and the shard sizes."""
        plan = {"fingerprint": self.fingerprint, "sizes": self.sizes}
        text = _canonical(plan if self.exact else {**plan, "exact": False})
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.sizes)

    def path(self, index: int) -> Path:
        """The event file of shard ``index``."""
        return self.folder / f"shard-{index:05d}.h5"

    def describe(self, index: int) -> str:
        """``shard 7 of 40 (events 7000–7999)``: how errors name a shard."""
        text = f"shard {index} of {len(self)}"
        return f"{text} ({self.names[index]})" if self.names else text

    def is_complete(self, index: int) -> bool:
        """The shard's file is in place, valid, and holds the shard's events."""
        from simkit.io import inspect

        path = self.path(index)
        if not path.is_file():
            return False
        if self.validate is not None:
            return bool(self.validate(path, index))
        try:
            info = inspect(path)
        except SimkitError:  # damaged: run it again
            return False
        if self.exact:
            return info.n_events == self.sizes[index]
        return info.provenance.get("shard") == index

    def complete(self) -> list[int]:
        """Indices of the shards already written."""
        return [i for i in range(len(self)) if self.is_complete(i)]

    def document(self) -> dict:
        return {
            "format": "simkit-shards",
            "output": self.output.name,
            "digest": self.digest,
            "shards": len(self),
            "sizes": list(self.sizes),
            "fingerprint": json.loads(_canonical(self.fingerprint)),
        }

    def prepare(self, resume: bool, *, replace_other: bool = False) -> list[int]:
        """Make the shard folder ready; returns the shards still to run.

        Without ``resume`` an old shard folder is replaced (as an old output is
        overwritten). With ``resume`` its ``plan.json`` must describe this job, else a
        :class:`SimkitError` names what differs; with ``replace_other`` too, a folder of
        another job is replaced instead (a pipeline stage that reruns because its
        settings or inputs changed: what the old shards hold is stale by construction).
        """
        plan_file = self.folder / PLAN_FILE
        if self.folder.exists() and not self.folder.is_dir():
            raise SimkitError(f"{self.folder}: exists and is not a shard folder")
        if resume and replace_other and plan_file.exists() and not self._same_plan(plan_file):
            resume = False
        if self.folder.exists() and resume and plan_file.exists():
            self._check_resumable(plan_file)
            for leftover in self.folder.glob(".*.tmp"):  # a writer killed mid-shard
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            done = set(self.complete())
            return [i for i in range(len(self)) if i not in done]
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        tmp = plan_file.with_name(".plan.json.tmp")
        tmp.write_text(json.dumps(self.document(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, plan_file)
        return list(range(len(self)))

    def _same_plan(self, plan_file: Path) -> bool:
        try:
            return json.loads(plan_file.read_text()).get("digest") == self.digest
        except (OSError, json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            return False

    def _check_resumable(self, plan_file: Path) -> None:
        try:
            old = json.loads(plan_file.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            raise SimkitError(f"{plan_file}: damaged; remove {self.folder} to start over") from None
        if old.get("digest") == self.digest:
            return
        new = self.document()
        before, after = old.get("fingerprint", {}), new["fingerprint"]
        keys = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if old.get("sizes") != new["sizes"]:
            keys.append("shard sizes")
        shown = [
            f"{k} {_short(before.get(k))} (now {_short(after.get(k))})"
            for k in keys[:3]
            if k != "shard sizes"
        ]
        what = "; ".join(shown) if shown else ", ".join(keys) or "its plan"
        raise SimkitError(
            f"cannot resume: {self.folder} holds shards of another run ({what}); "
            "run without --resume (resume=False) to start over"
        )

    def shard_provenance(self) -> list[dict]:
        """The provenance of every shard file, in shard order."""
        from simkit.io import inspect

        return [inspect(self.path(i)).provenance for i in range(len(self))]


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- schedulers


_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class Scheduler:
    """A parsed ``--scheduler``: ``kind`` is ``local`` (``workers`` processes),
    ``address`` or ``file`` (a scheduler file, as ``dask scheduler --scheduler-file``
    writes)."""

    kind: str
    target: str = ""
    workers: int = 0

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.kind == "local" else self.target


def parse_scheduler(text: str) -> Scheduler:
    """Read ``local:N``, ``tcp://HOST:PORT`` (or ``HOST:PORT``), or ``FILE.json``.

    >>> parse_scheduler("local:2")
    Scheduler(kind='local', target='', workers=2)
    >>> str(parse_scheduler("10.1.2.3:8786"))
    'tcp://10.1.2.3:8786'
    """
    text = str(text).strip()
    if text.startswith("local"):
        _, _, count = text.partition(":")
        if not count and text == "local":
            return Scheduler("local", workers=os.cpu_count() or 1)
        if count.isdigit() and int(count) >= 1:
            return Scheduler("local", workers=int(count))
        raise SimkitError(
            f"scheduler {text!r}: local:N needs a whole number of worker processes ≥ 1"
        )
    if text.endswith(".json"):
        if not Path(text).is_file():
            raise SimkitError(f"scheduler file {text} does not exist")
        return Scheduler("file", target=text)
    if _ADDRESS.match(text):
        return Scheduler("address", target=text)
    if _HOST_PORT.match(text) and 0 < int(text.rsplit(":", 1)[1]) < 65536:
        return Scheduler("address", target=f"tcp://{text}")
    raise SimkitError(
        f"scheduler {text!r} is not a Dask scheduler: give its address (tcp://HOST:PORT), "
        "a scheduler file (FILE.json) or local:N for N local worker processes"
    )


def _require_distributed():
    try:
        import distributed
    except ImportError:
        raise SimkitError(
            "a Dask scheduler needs dask.distributed: pip install 'simkit[dask]'"
        ) from None
    return distributed


def worker_environment() -> dict:
    """The environment for the Dask workers simkit starts (``local:N``): Dask's own
    (``distributed.nanny.pre-spawn-environ``) less ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets that threshold to 64 KiB so that a worker hands freed memory back to the
    system at once; then every large array a shard allocates is fresh pages that fault
    in again. Scoring ran with 30 % more CPU in such a worker than in a process without
    it (``benchmarks/scaling.py``, BENCHMARKS.md "Scaling"). A site's workers keep their
    own setting: the scale-out how-to shows how to drop it there.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def local_cluster(workers: int, **options: Any):
    """The ``distributed.LocalCluster`` that ``local:N`` starts: ``workers`` one-thread
    worker processes with :func:`worker_environment`, no dashboard, and the scheduler's
    HTTP endpoint on a free loopback port.

    ``dashboard_address=None`` alone turns the dashboard off but still binds the
    scheduler's HTTP server to port 8787, and a second cluster on the machine (another
    user's, or a parallel test) then gets a "Port 8787 is already in use" warning.
    ``options`` go to ``LocalCluster`` (e.g. ``silence_logs``).
    """
    distributed = _require_distributed()
    import dask

    options.setdefault("threads_per_worker", 1)  # Pythia and torch: one shard per process
    options.setdefault("processes", True)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
        return distributed.LocalCluster(
            n_workers=workers,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
            **options,
        )


@contextlib.contextmanager
def connect(scheduler, timeout: float | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler`` (a string as :func:`parse_scheduler`
    reads, a :class:`Scheduler`, a ``Client`` or a cluster object), closed on exit when
    made here. ``local:N`` starts a ``LocalCluster`` of N one-thread worker processes.
    An unreachable scheduler is one :class:`SimkitError` line.
    """
    distributed = _require_distributed()
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if not isinstance(scheduler, (str, Scheduler)):  # a cluster (LocalCluster, SLURMCluster…)
        with distributed.Client(scheduler) as client:
            yield client
        return
    spec = parse_scheduler(scheduler) if isinstance(scheduler, str) else scheduler
    if spec.kind == "local":
        import logging

        cluster = local_cluster(spec.workers, silence_logs=logging.ERROR)
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        if spec.kind == "file":
            client = distributed.Client(scheduler_file=spec.target, timeout=timeout)
        else:
            client = distributed.Client(spec.target, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise SimkitError(
            f"could not reach the Dask scheduler at {spec} within {timeout:g} s ({reason})"
        ) from None
    with client:
        yield client


# --------------------------------------------------------------------------- runners


def _ignore_interrupt() -> None:
    # Ctrl-C reaches the whole process group: the parent alone handles it (terminating
    # the workers), so that the user sees one line instead of one traceback per worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start_method() -> str:
    # Pythia and torch are not fork-safe once threads exist: start workers from a clean
    # fork server (POSIX) or by spawning
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


def _failed(plan: ShardPlan, index: int, exc: BaseException, attempts: int = 1) -> ShardError:
    """The error of a failed shard: names it; a user error keeps its line and exit code."""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(exc, SimkitError):
        error = ShardError(f"{plan.describe(index)} failed{tries}: {exc}")
        error.exit_code = exc.exit_code
        return error
    return ShardError(f"{plan.describe(index)} failed{tries}: {_reason(exc)}")


def _in_process(task: TaskFn, plan: ShardPlan, todo: Sequence[int]) -> Iterator[int]:
    for index in todo:
        check()  # a SIGTERM whose exception was lost still stops before the next shard
        try:
            task(index, plan.path(index))
        except Exception as exc:
            raise _failed(plan, index, exc) from exc
        yield index


def _local_pool(
    task: TaskFn, plan: ShardPlan, todo: Sequence[int], jobs: int, preload: Sequence[str]
) -> Iterator[int]:
    context = multiprocessing.get_context(_start_method())
    if context.get_start_method() == "forkserver" and preload:
        # workers fork from a server that has imported the heavy modules once
        context.set_forkserver_preload(list(preload))
    executor = concurrent.futures.ProcessPoolExecutor(
        max_workers=min(jobs, len(todo)), mp_context=context, initializer=_ignore_interrupt
    )
    futures = {executor.submit(task, i, plan.path(i)): i for i in todo}
    try:
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            exc = future.exception()
            if exc is not None:
                if isinstance(exc, concurrent.futures.process.BrokenProcessPool):
                    raise ShardError(
                        f"{plan.describe(index)}: a worker process died (killed for memory?)"
                    )
                raise _failed(plan, index, exc)
            yield index
    finally:
        for future in futures:
            future.cancel()
        if not all(future.done() for future in futures):
            # running shards are abandoned (their writers' temporary files are swept on
            # resume); workers that finished are left to exit on their own, so that what
            # they hold (a progress bar's lock: a semaphore) is released, not leaked
            for process in list((executor._processes or {}).values()):
                with contextlib.suppress(Exception):
                    process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def _dask(
    task: TaskFn, plan: ShardPlan, todo: Sequence[int], client, retries: int
) -> Iterator[int]:
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]  # keys unique per run: a long-lived scheduler caches
    futures = {
        client.submit(
            task,
            i,
            plan.path(i),
            key=f"simkit-{plan.output.name}-{run_id}-shard-{i}",
            retries=retries,
            pure=False,
        ): i
        for i in todo
    }
    try:
        for future in as_completed(futures):
            index = futures[future]
            if future.status != "finished":
                exc = future.exception()
                if type(exc).__name__ == "KilledWorker":
                    raise ShardError(
                        f"{plan.describe(index)}: the workers running it died too often "
                        f"(the scheduler's allowed-failures limit): {_reason(exc)}"
                    )
                raise _failed(plan, index, exc, attempts=retries + 1)
            if not plan.path(index).is_file():
                raise ShardError(
                    f"{plan.describe(index)} finished on a Dask worker, but "
                    f"{plan.path(index)} is not visible here: the workers must write to a "
                    "filesystem this machine shares"
                )
            yield index
    finally:
        client.cancel(list(futures))


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


# --------------------------------------------------------------------------- run + merge


def run_shards(
    plan: ShardPlan,
    task: TaskFn,
    *,
    provenance: Mapping,
    finish: Callable[[list[dict]], Mapping] | None = None,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    retries: int = RETRIES,
    progress: bool = False,
    desc: str = "shards",
    unit: str = "ev",
    keep: bool = False,
    preload: Sequence[str] = (),
    replace_other: bool = False,
) -> Path:
    """Run ``task`` for every shard of ``plan`` not yet written, then merge into
    ``plan.output``; returns its path.

    Shards run in this process (``jobs=1``), in ``jobs`` local worker processes, or on
    the Dask ``scheduler`` (a string as :func:`parse_scheduler` reads, or a
    ``distributed.Client``/cluster; it takes precedence over ``jobs``). The merged file's
    provenance is ``provenance`` plus what ``finish`` returns from the shards' own
    provenance records (e.g. a cross-section averaged over shards); nothing about who
    ran the shards enters it, so the bytes are the same whatever ran them. On failure
    the finished shards stay in ``plan.folder`` for ``resume=True``; a run that finished
    no shard leaves nothing behind. ``keep`` keeps the shard folder after the merge;
    ``replace_other``: see :meth:`ShardPlan.prepare`.

    The merge runs while the shards do: this process appends each shard as soon as it
    and every shard before it are complete (it waits for the workers otherwise), so at
    the end only the shards that finished last are left to merge. The bytes do not
    depend on when that happens: the appends are the same, in the same order.
    """
    merger = _Merger(plan, provenance, finish)
    try:
        execute(
            plan,
            task,
            jobs=jobs,
            scheduler=scheduler,
            resume=resume,
            replace_other=replace_other,
            retries=retries,
            progress=progress,
            desc=desc,
            unit=unit,
            preload=preload,
            on_shard=merger.ready,
        )
        return merger.close(keep=keep)
    except BaseException:
        merger.abort()
        raise


def execute(
    plan: ShardPlan,
    task: TaskFn,
    *,
    jobs: int = 1,
    scheduler=None,
    resume: bool = False,
    replace_other: bool = False,
    retries: int = RETRIES,
    progress: bool = False,
    desc: str = "shards",
    unit: str = "ev",
    preload: Sequence[str] = (),
    on_shard: Callable[[int], None] | None = None,
) -> list[int]:
    """Run ``task`` for every shard of ``plan`` not yet written (as :func:`run_shards`,
    without the merge); returns the indices of the shards run now. ``on_shard(index)``
    is called in this process for every shard complete already (resumed) and then for
    each as it completes.

    Every shard's file is in ``plan.folder`` afterwards, for the caller to read (and
    remove). Failures, resuming (``replace_other``: see :meth:`ShardPlan.prepare`) and
    the runners are :func:`run_shards`'s. The progress bar counts ``plan.sizes`` in
    ``unit``.
    """
    from simkit.progress import progress_bar

    if retries < 0:
        raise SimkitError(f"retries must be ≥ 0, got {retries}")
    if isinstance(scheduler, str):
        parse_scheduler(scheduler)  # a nonsensical scheduler fails before any work
    todo = plan.prepare(resume, replace_other=replace_other)
    done_events = sum(plan.sizes) - sum(plan.sizes[i] for i in todo)
    notify = on_shard or (lambda index: None)
    bar = progress_bar(
        total=sum(plan.sizes),
        initial=done_events,
        desc=desc,
        unit=unit,
        unit_scale=True,
        enabled=progress,
    )
    try:
        with bar:
            for index in sorted(set(range(len(plan))) - set(todo)):
                notify(index)
            if todo:
                with contextlib.ExitStack() as stack:
                    if scheduler is not None:
                        client = stack.enter_context(connect(scheduler))
                        finished = _dask(task, plan, todo, client, retries)
                    elif jobs > 1 and len(todo) > 1:
                        finished = _local_pool(task, plan, todo, jobs, preload)
                    else:
                        finished = _in_process(task, plan, todo)
                    stack.callback(getattr(finished, "close", lambda: None))
                    for index in finished:
                        bar.update(plan.sizes[index])
                        notify(index)
                        check()
    except BaseException as exc:
        _after_failure(plan, exc)
        raise
    return list(todo)


def _after_failure(plan: ShardPlan, exc: BaseException) -> None:
    kept = plan.complete() if plan.folder.is_dir() else []
    if not kept:
        shutil.rmtree(plan.folder, ignore_errors=True)
        return
    note = (
        f" ({len(kept)} of {len(plan)} shards finished and kept in {plan.folder}: "
        "rerun with --resume to continue)"
    )
    if isinstance(exc, SimkitError) and exc.args and note not in str(exc.args[0]):
        exc.args = (f"{exc.args[0]}{note}", *exc.args[1:])


def merge(
    plan: ShardPlan,
    *,
    provenance: Mapping,
    finish: Callable[[list[dict]], Mapping] | None = None,
    keep: bool = False,
) -> Path:
    """Concatenate the shards of ``plan``, in index order, into ``plan.output``.

    The output is written atomically with the shards' levels, columns, units, weights,
    labels and scores, and ``provenance`` (plus ``finish(shard provenances)``).
    """
    missing = [i for i in range(len(plan)) if not plan.is_complete(i)]
    if missing:
        raise ShardError(
            f"{plan.output}: cannot merge, {len(missing)} shard(s) missing or incomplete "
            f"(first: {plan.describe(missing[0])})"
        )
    merger = _Merger(plan, provenance, finish)
    try:
        for index in range(len(plan)):
            merger.ready(index)
        return merger.close(keep=keep)
    except BaseException:
        merger.abort()
        raise


class _Merger:
    """Appends shards to the output in index order as they become ready (:func:`merge`
    all at once, :func:`run_shards` while the others still run)."""

    def __init__(self, plan: ShardPlan, provenance: Mapping, finish) -> None:
        self.plan, self.provenance, self.finish = plan, dict(provenance), finish
        self.writer = None
        self.first = None  # shard 0's FileInfo: what every shard must be shaped like
        self.infos: list = []  # of the shards appended, in order
        self.ready_shards: set[int] = set()

    def ready(self, index: int) -> None:
        """Shard ``index`` is complete: append it and any complete shards after it."""
        self.ready_shards.add(index)
        while len(self.infos) in self.ready_shards:
            self._append(len(self.infos))

    def _append(self, index: int) -> None:
        from simkit.io import SampleWriter, inspect, iter_samples

        info = inspect(self.plan.path(index))
        if self.writer is None:
            self.first = info
            self.writer = SampleWriter(
                self.plan.output,
                levels={lv: info.levels[lv].columns for lv in info.levels},
                units={lv: info.levels[lv].units for lv in info.levels},
                weights=info.has_weights,
                labels=info.has_labels,
                scores=info.scores,
                provenance=self.provenance,
            )
        first = self.first
        same = (
            {k: v.columns for k, v in info.levels.items()}
            == {k: v.columns for k, v in first.levels.items()}
            and info.has_weights == first.has_weights
            and info.has_labels == first.has_labels
            and info.scores == first.scores
        )
        if not same:
            raise ShardError(
                f"{self.plan.describe(index)} is not shaped like shard 0: cannot merge"
            )
        rows = max(1, self.plan.sizes[index])
        for chunk in iter_samples(self.plan.path(index), rows, levels=tuple(first.levels)):
            self.writer.append(chunk)
        self.infos.append(info)

    def close(self, keep: bool = False) -> Path:
        if len(self.infos) < len(self.plan):  # execute returned: every shard was complete
            raise ShardError(
                f"{self.plan.output}: cannot merge, {self.plan.describe(len(self.infos))} "
                "is missing"
            )
        if self.finish is not None:
            self.writer.update_provenance(**self.finish([i.provenance for i in self.infos]))
        path = self.writer.close()
        if not keep:
            shutil.rmtree(self.plan.folder, ignore_errors=True)
        return path

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()


def shard_ranges(n_rows: int, rows_per_shard: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard of ``n_rows`` rows, ``rows_per_shard`` each.

    >>> shard_ranges(25, 10)
    [(0, 10), (10, 20), (20, 25)]
    """
    if rows_per_shard < 1:
        raise SimkitError(f"rows per shard must be ≥ 1, got {rows_per_shard}")
    return [
        (start, min(start + rows_per_shard, n_rows)) for start in range(0, n_rows, rows_per_shard)
    ] or [(0, 0)]


def events_name(start: int, stop: int) -> str:
    """``events 1000–1999``: a shard's rows for messages."""
    return f"events {start}–{stop - 1}" if stop > start else "no events"
