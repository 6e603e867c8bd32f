"""Predict many slides on ``dask.distributed``: one task per input, one model per worker.

The library side of ``stardist-hier predict --workers N`` / ``--scheduler ADDRESS``
(``pip install 'stardist-hier[distributed]'``). No scheduler or process pool of our
own: Dask schedules the inputs, and

* a :class:`ModelPlugin` (a ``distributed.WorkerPlugin``) loads the model **once per
  worker process**, after limiting TensorFlow's threads (and OpenMP/MKL's) to the
  worker's share of the cores; it runs before TensorFlow initialises in that process.
  ``OMP_NUM_THREADS`` is read by an OpenMP runtime only when it is first loaded, and
  ``omp_set_num_threads`` holds for the calling thread only, so StarDist's NMS threads
  are not set here but by the pipeline itself, around every block's NMS in the task
  thread that runs it (``nms_threads`` of :func:`~stardist_hier.predict.predict_nuclei`,
  read back into :attr:`InputResult.nms_threads`);
* every input is one task, :func:`predict_one`, which is
  :func:`~stardist_hier.predict.runner.predict_to_folder` on that input alone with the
  worker's model: its outputs are written under temporary names and renamed when
  complete; a failing input leaves none of its outputs behind and is reported (path
  and error) in the returned :class:`DistributedSummary` without stopping the others.
  The task fits the model's input normalisation on its input as the serial path does
  (:func:`~stardist_hier.predict.pipeline.plan_prediction`: once per image or slide), so
  a worker finds the nuclei the command line finds without Dask.

Every option, the model folder, the label sets and the output folder are validated
in the client (the runner's own checks) before a cluster is started or anything is
written; what can only be known by reading an input (a corrupt slide, a slide
without pixel size) fails that input's task only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .options import PredictOptions
from .pipeline import PredictStats, list_inputs, load_model
from .runner import (OutputFolder, _writer_classes, check_out_folder, check_slide_formats, check_targets,
                     output_record, output_targets, plural, predict_to_folder, resolve_label_sets)

__all__ = ["DistributedSummary", "InputResult", "ModelPlugin", "predict_distributed", "predict_one",
           "import_distributed", "DISTRIBUTED_EXTRA"]

DISTRIBUTED_EXTRA = "pip install 'stardist-hier[distributed]'"

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def import_distributed():
    """``distributed``, or an :class:`InputError` telling how to install it."""
    try:
        import distributed
    except ImportError as e:  # also a broken install (a missing dependency of dask)
        raise InputError(f"--workers/--scheduler need Dask's distributed scheduler ({e}); "
                         f"install it with: {DISTRIBUTED_EXTRA}") from None
    return distributed


# ------------------------------------------------------------------------ results
@dataclass
class InputResult:
    """The outcome of one input.

    Attributes
    ----------
    path : Path
    status : {"done", "skipped", "failed"}
        ``skipped``: its outputs were all there (``resume``).
    error : str
        ``"ErrorType: message"`` when failed.
    outputs : list of Path
    n_nuclei, n_tiles, n_blank : int
    seconds : float
        Wall time of its task.
    worker : str
        Address of the worker that ran it.
    model_loads : int
        Times the model had been loaded in that worker process when the task ran (1:
        loaded once, by the worker plugin).
    tf_threads : int
        TensorFlow intra-op threads of that worker process (0: not set by the plugin).
    nms_threads : int or None
        StarDist's OpenMP threads as read back (``threadpoolctl``) in the worker thread
        that ran NMS, during the input's first block (``None``: no block predicted).
    """

    path: Path
    status: str
    error: str = ""
    outputs: list = field(default_factory=list)
    n_nuclei: int = 0
    n_tiles: int = 0
    n_blank: int = 0
    seconds: float = 0.0
    worker: str = ""
    model_loads: int = 0
    tf_threads: int = 0
    nms_threads: int | None = None


@dataclass
class DistributedSummary:
    """What :func:`predict_distributed` did: one :class:`InputResult` per input, in input order."""

    out: Path
    formats: list
    results: list = field(default_factory=list)
    seconds: float = 0.0
    n_workers: int = 0
    dashboard_link: str | None = None

    def _count(self, status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def n_inputs(self) -> int:
        return len(self.results)

    @property
    def n_predicted(self) -> int:
        """Inputs predicted in this run."""
        return self._count("done")

    @property
    def n_skipped(self) -> int:
        """Inputs whose outputs were all there already (``resume``)."""
        return self._count("skipped")

    @property
    def n_failed(self) -> int:
        return self._count("failed")

    @property
    def failures(self) -> list:
        return [r for r in self.results if r.status == "failed"]

    @property
    def outputs(self) -> list:
        return [p for r in self.results if r.status == "done" for p in r.outputs]

    @property
    def stats(self) -> PredictStats:
        done = [r for r in self.results if r.status == "done"]
        return PredictStats(n_blocks=sum(r.n_tiles + r.n_blank for r in done), n_predicted=sum(r.n_tiles for r in done),
                            n_skipped=sum(r.n_blank for r in done), n_nuclei=sum(r.n_nuclei for r in done),
                            seconds=self.seconds)

    def table(self) -> str:
        """Per-input table (input, status, nuclei, seconds, worker, error), plain text."""
        rows = [("input", "status", "nuclei", "seconds", "worker", "error")]
        for r in self.results:
            rows.append((str(r.path), r.status, str(r.n_nuclei) if r.status == "done" else "",
                         f"{r.seconds:.1f}" if r.status != "skipped" else "", r.worker, r.error))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row[:-1], widths)) + "  " + row[-1] for row in rows)

    def line(self) -> str:
        """One-line summary for the command line."""
        s = self.stats
        failed = f", {self.n_failed} FAILED" if self.n_failed else ""
        return (f"predicted {plural(s.n_nuclei, 'nucleus', 'nuclei')} on {plural(self.n_predicted, 'input')} "
                f"({plural(s.n_predicted, 'tile')}, {plural(s.n_skipped, 'blank tile')} skipped), "
                f"{self.n_skipped} already complete{failed}, on {plural(self.n_workers, 'Dask worker')} in "
                f"{self.seconds:.1f} s; wrote {plural(len(self.outputs), 'file')} ({', '.join(self.formats)}) "
                f"to {self.out}")


# ------------------------------------------------------------------------ worker side
def _plugin_name(model_dir) -> str:
    return f"stardist-hier-model:{Path(model_dir).resolve()}"


class ModelPlugin:
    """Load the model once per worker process, with TensorFlow limited to the worker's share of the cores.

    Registered with ``client.register_plugin``; a ``distributed.WorkerPlugin`` (the base
    class is added when ``distributed`` is imported, see :func:`_plugin_class`).

    Parameters
    ----------
    model_dir : path
        The model folder, readable from every worker.
    tf_threads : int, optional
        TensorFlow intra-op threads (and OpenMP/MKL threads); default the host's cores
        divided by the number of worker processes on that host (``host_workers``).
    host_workers : dict, optional
        ``{host: number of worker processes}`` when the plugin was registered.
    """

    def __init__(self, model_dir, *, tf_threads: int | None = None, host_workers: dict | None = None):
        self.model_dir = str(Path(model_dir).resolve())
        self.name = _plugin_name(model_dir)
        self.tf_threads = tf_threads
        self.host_workers = dict(host_workers or {})
        self.model = None
        self.threads_used = None
        self.tf_configured = None

    def _threads(self, worker) -> int:
        if self.tf_threads:
            return max(1, int(self.tf_threads))
        from dask.system import CPU_COUNT

        host = getattr(worker, "ip", None) or ""
        n = self.host_workers.get(host) or 1
        return max(1, int(CPU_COUNT) // int(n))

    def setup(self, worker):
        n = self._threads(worker)
        for k in _THREAD_ENV:
            os.environ[k] = str(n)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        try:  # only possible before TensorFlow's runtime is initialised in this process
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(1 if n == 1 else 2)
            self.tf_configured = True
        except RuntimeError:
            self.tf_configured = False
        self.threads_used = n
        self.lock = threading.Lock()  # one input at a time per model and process
        self.model = _load_counted(self.model_dir)

    def teardown(self, worker):
        self.model = None

    def __getstate__(self):  # the loaded model never travels
        d = dict(self.__dict__)
        d.pop("lock", None)
        d["model"] = None
        return d


def _plugin_class():
    """:class:`ModelPlugin` as a ``distributed.WorkerPlugin`` subclass (created once)."""
    global _WorkerModelPlugin
    if _WorkerModelPlugin is None:
        from distributed import WorkerPlugin

        _WorkerModelPlugin = type("WorkerModelPlugin", (ModelPlugin, WorkerPlugin), {"__module__": __name__})
    return _WorkerModelPlugin


_WorkerModelPlugin = None


def __getattr__(name):  # pickled plugins refer to stardist_hier.predict.distributed.WorkerModelPlugin
    if name == "WorkerModelPlugin":
        return _plugin_class()
    raise AttributeError(name)


_local_cache: dict = {}
_local_lock = threading.Lock()
_model_loads: dict = {}  # model folder -> times loaded in this process


def _load_counted(model_dir):
    model = load_model(model_dir)
    _model_loads[str(model_dir)] = _model_loads.get(str(model_dir), 0) + 1
    return model


def _worker_model(model_dir):
    """The model of this worker (from its plugin; loaded once and cached if the plugin is missing)."""
    name = _plugin_name(model_dir)
    try:
        from distributed import get_worker

        plugin = get_worker().plugins.get(name)
    except (ImportError, ValueError):
        plugin = None
    if plugin is not None and plugin.model is not None:
        return plugin.model, plugin.lock, plugin.threads_used or 0
    with _local_lock:
        if name not in _local_cache:
            _local_cache[name] = (_load_counted(str(Path(model_dir).resolve())), threading.Lock(), 0)
        return _local_cache[name]


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


def predict_one(path, *, model_dir, out, options: PredictOptions, writers=None) -> InputResult:
    """One input through :func:`~stardist_hier.predict.runner.predict_to_folder`, with the worker's model.

    Never raises for a bad input: the error is returned in the :class:`InputResult`,
    and outputs of this input that did not exist before are removed.
    """
    path, out = Path(path), Path(out)
    t0 = time.perf_counter()
    worker = _worker_address()
    model, lock, tf_threads = _worker_model(model_dir)
    loads = _model_loads.get(str(Path(model_dir).resolve()), 0)
    formats, classes = _writer_classes(options.formats, writers)
    targets = output_targets(out, path, formats, classes, extras=True)
    before = {t for t in targets if t.exists()}
    try:
        with lock:  # the client holds the output folder's lock and recorded the options
            s = predict_to_folder([path], model=model, out=out, options=options, resume=False, progress=False,
                                  guard=False, writers=writers)
    except Exception as e:  # noqa: BLE001 - reported per input, the others go on
        for t in targets:
            if t not in before:
                with contextlib.suppress(OSError):
                    t.unlink()
        msg = " ".join(str(e).split()) or traceback.format_exception_only(type(e), e)[-1].strip()
        return InputResult(path, "failed", error=f"{type(e).__name__}: {msg}", seconds=time.perf_counter() - t0,
                           worker=worker, model_loads=loads, tf_threads=tf_threads)
    return InputResult(path, "done", outputs=list(s.outputs), n_nuclei=s.stats.n_nuclei,
                       n_tiles=s.stats.n_predicted, n_blank=s.stats.n_skipped, seconds=time.perf_counter() - t0,
                       worker=worker, model_loads=loads, tf_threads=tf_threads, nms_threads=s.stats.nms_threads)


# ------------------------------------------------------------------------ client side
def _validate(inputs, *, model, out, options: PredictOptions, writers=None):
    """The runner's checks, without reading the inputs' pixels; returns (files, formats, classes, out, folder)."""
    from ..slides import is_slide_path

    formats, classes = _writer_classes(options.formats, writers)
    out = check_out_folder(out)
    files = list_inputs(inputs)
    check_targets(files, out, formats, classes)
    m = load_model(model)
    sets = resolve_label_sets(m, options.label_sets, taxonomy=options.taxonomy)
    options.check_model(m)
    folder = OutputFolder(out, output_record(m, sets, **options.recorded()))
    folder.check()
    for f in files:
        if is_slide_path(f):
            check_slide_formats(f, formats, classes)
    return files, formats, classes, out, folder


@contextlib.contextmanager
def _client(distributed, *, workers, scheduler, threads_per_worker):
    """A client on an existing scheduler, or on a LocalCluster started (and closed) here."""
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as e:
            raise InputError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
        try:
            yield client, None
        finally:
            client.close()
        return
    import dask

    env = {k: str(max(1, _cores() // workers)) for k in _THREAD_ENV}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    cluster = client = None
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker,
                                               processes=True, host="127.0.0.1", dashboard_address=":0",
                                               silence_logs=40, env=env)
        client = distributed.Client(cluster)
        yield client, cluster
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _cores() -> int:
    from dask.system import CPU_COUNT

    return int(CPU_COUNT)


def predict_distributed(inputs, *, model, out, workers: int | None = None, scheduler: str | None = None,
                        options: PredictOptions | None = None, resume: bool = False, progress: bool = False,
                        tf_threads: int | None = None, log=None, writers=None, **keywords) -> DistributedSummary:
    """Predict every input on Dask, one task per input; see :func:`~stardist_hier.predict.runner.predict_to_folder`.

    Parameters
    ----------
    inputs, model, out, options, resume, writers, **keywords
        As for :func:`~stardist_hier.predict.runner.predict_to_folder` (the options as one
        :class:`~stardist_hier.predict.options.PredictOptions` or as its fields); ``model``
        must be a folder that every worker can read, ``out`` a folder every worker can write.
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes (one thread each, bound to
        127.0.0.1, dashboard on a random port), closed at the end.
    scheduler : str, optional
        Address of a running Dask scheduler (e.g. ``tcp://10.0.0.5:8786``, from
        dask-jobqueue's ``SLURMCluster`` or dask-kubernetes) instead; exactly one of
        ``workers`` and ``scheduler``.
    progress : bool
        One tqdm bar over inputs, advanced as tasks complete.
    tf_threads : int, optional
        TensorFlow threads per worker; default the worker host's cores divided by its
        number of worker processes.
    log : callable, optional
        ``log(str)`` for the dashboard link and the cluster's size.

    Returns
    -------
    DistributedSummary
        Per input: done, skipped (``resume``) or failed with its error.

    Raises
    ------
    InputError, ModelFolderError, RunFolderError
        Before a cluster is started or anything is written: ``distributed`` missing,
        bad options, model folder, label sets, inputs (missing, same stem) or output folder.
    """
    distributed = import_distributed()
    if (workers is None) == (scheduler is None):
        raise InputError("--workers/--scheduler: give exactly one of them")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"--workers {workers}: must be a whole number of processes, at least 1")
    if scheduler is not None and not str(scheduler).strip():
        raise InputError("--scheduler: give the scheduler's address, e.g. tcp://HOST:8786")
    if tf_threads is not None and (not isinstance(tf_threads, int) or tf_threads < 1):
        raise InputError(f"tf_threads {tf_threads}: must be at least 1")
    options = PredictOptions.of(options, **keywords)
    model_dir = Path(model).resolve()
    files, formats, classes, out, folder = _validate(inputs, model=model_dir, out=out, options=options,
                                                     writers=writers)
    out = out.resolve()

    def complete(f):
        return all(t.is_file() for t in output_targets(out, f, formats, classes))

    results = {f: InputResult(f, "skipped") for f in files if resume and complete(f)}
    pending = [f for f in files if f not in results]
    summary = DistributedSummary(out, formats)
    t0 = time.perf_counter()
    if pending:
        from ..console import progress as progress_bar

        with folder, _client(distributed, workers=workers, scheduler=scheduler,
                             threads_per_worker=1) as (client, cluster):
            info = client.scheduler_info(n_workers=-1)["workers"] if scheduler is None else _wait_workers(client)
            summary.n_workers = len(info)
            host_workers = {}
            for w in info.values():
                h = w.get("host") or ""
                host_workers[h] = host_workers.get(h, 0) + 1
            summary.dashboard_link = client.dashboard_link
            if cluster is not None:
                tf_threads = tf_threads or max(1, _cores() // workers)
                if importlib.util.find_spec("bokeh") is None:  # the scheduler serves no dashboard without bokeh
                    summary.dashboard_link = None
            if log:
                where = f"started a local Dask cluster of {workers} worker(s)" if cluster is not None else \
                    f"connected to the Dask scheduler {scheduler} ({len(info)} worker(s))"
                link = summary.dashboard_link or "not available (pip install bokeh)"
                log(f"{where}; dashboard: {link}")
            plugin = _plugin_class()(model_dir, tf_threads=tf_threads, host_workers=host_workers)
            client.register_plugin(plugin, name=plugin.name)
            futures = {client.submit(predict_one, str(f.resolve()), model_dir=str(model_dir), out=str(out),
                                     options=options, writers=writers, key=f"stardist-hier-predict-{i}-{f.stem}-{os.getpid()}-"
                                                          f"{time.time_ns()}", pure=False, retries=0): f
                       for i, f in enumerate(pending)}
            bar = progress_bar(total=len(pending), verbose=int(bool(progress)), unit="input", desc="inputs")
            try:
                for fut in distributed.as_completed(futures):
                    f = futures[fut]
                    try:
                        r = fut.result()
                        r.path = f
                    except Exception as e:  # noqa: BLE001 - a worker died on it (KilledWorker), ...
                        msg = " ".join(str(e).split())
                        r = InputResult(f, "failed", error=f"{type(e).__name__}: {msg}")
                    results[f] = r
                    bar.update(1)
                    if r.status == "failed" and log:
                        log(f"failed: {f}: {r.error}")
            finally:
                bar.close()
                for fut in futures:
                    if not fut.done():
                        fut.cancel()
    summary.results = [results[f] for f in files]
    summary.seconds = time.perf_counter() - t0
    return summary


def _wait_workers(client, timeout: float = 60.0) -> dict:
    """The workers of a remote scheduler, waiting (up to ``timeout`` s) for the first one."""
    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception as e:  # noqa: BLE001 - dask raises TimeoutError
        raise InputError(f"--scheduler: no worker joined the scheduler within {timeout:.0f} s ({type(e).__name__})") from None
    return client.scheduler_info(n_workers=-1)["workers"]
