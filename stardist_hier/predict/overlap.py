"""The per-block loop of :func:`~stardist_hier.predict.predict_nuclei`, serial or overlapped.

Overlapped (``read_ahead >= 1``), three stages run at the same time on consecutive blocks:

1. a **reader thread** reads and normalises the blocks with tissue, up to ``read_ahead``
   blocks ahead of the network (OpenSlide and tifffile release the GIL);
2. a **forward thread** runs the network through a cached ``tf.function``
   (:func:`~stardist_hier.models._stardist_big_compat.compiled_predict`, the same
   outputs as ``keras_model.predict``) and StarDist's candidate selection; TensorFlow
   releases the GIL while it computes;
3. the **caller's thread** runs NMS, polygons, the label image, classes and StarDist's
   block filter, with StarDist's OpenMP threads set to ``nms_threads`` in that thread
   (``omp_set_num_threads`` is per thread, so it is set where NMS runs: in the main
   process, in a Dask worker's task thread, anywhere), and hands the result on.

The order of the blocks is kept, so the nuclei (and their ids) are those of the serial
loop, bit for bit. Serial (``read_ahead=0``): ``predict_instances`` per block, as
``predict_instances_big`` does. A failure in a thread is raised in the caller's thread;
closing the generator stops the threads.
"""

from __future__ import annotations

import queue
import threading
import time
from contextlib import contextmanager

__all__ = ["block_results", "openmp_threads_in_this_thread"]

_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


class _Failure:
    def __init__(self, error):
        self.error = error


def openmp_threads_in_this_thread() -> int | None:
    """StarDist's OpenMP threads as the calling thread would use them, read back through ``threadpoolctl``.

    ``None`` when no OpenMP runtime is loaded. Prefers the runtime vendored with StarDist.
    """
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "openmp"]
    if not libs:
        return None
    libs.sort(key=lambda i: "stardist" not in str(i.get("filepath", "")))
    return int(libs[0]["num_threads"])


@contextmanager
def _nms_threads(n: int | None):
    if n is None:
        yield
        return
    from ..models._stardist_compat import stardist_openmp_threads

    with stardist_openmp_threads(int(n)):
        yield


def _put(q, item, stop) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(q, stop):
    while not stop.is_set():
        try:
            return q.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _END


def block_results(model, plan, *, read_ahead: int = 2, nms_threads: int | None = 1, stats=None):
    """Yield ``(block, result)`` for every block of ``plan`` with tissue, in order.

    Parameters
    ----------
    model : StarDist2DHier
    plan : PredictionPlan
    read_ahead : int
        Blocks read ahead of the network; ``0``: the serial loop.
    nms_threads : int or None
        StarDist's OpenMP threads for NMS, in the thread where it runs (``None``: leave
        the process's setting).
    stats : PredictStats, optional
        Stage times (``read_seconds``, ``forward_seconds``, ``nms_seconds``) and
        ``nms_threads`` (read back during the first block) are added to it.

    Yields
    ------
    block, dict
        The block and its filtered result (StarDist's, coordinates in ``plan.image``).

    Raises
    ------
    ObjectTooLarge
        From StarDist's block filter.
    """
    from ..models import _stardist_big_compat as big

    kept = [b for b, k in zip(plan.blocks, plan.keep) if k]
    kw = plan.predict_kwargs
    probe = [stats is not None]

    def record(name, seconds):
        if stats is not None:
            setattr(stats, name, getattr(stats, name) + seconds)

    def read_back():
        if probe[0]:
            probe[0] = False
            stats.nms_threads = openmp_threads_in_this_thread()

    if int(read_ahead) <= 0:
        for b in kept:
            t = time.perf_counter()
            x = b.read(plan.image, axes="YXC")
            t1 = time.perf_counter()
            with _nms_threads(nms_threads):
                read_back()
                labels, polys = big.predict_instances_forced(model, x, predict_kwargs=kw)
                t2 = time.perf_counter()
                res = big.filter_block(b, labels, polys)
            record("read_seconds", t1 - t)
            record("forward_seconds", t2 - t1)
            record("nms_seconds", time.perf_counter() - t2)
            yield b, res
        return

    stop = threading.Event()
    q_read = queue.Queue(maxsize=int(read_ahead))
    q_fwd = queue.Queue(maxsize=1)

    def reader():
        try:
            for b in kept:
                t = time.perf_counter()
                x = b.read(plan.image, axes="YXC")
                record("read_seconds", time.perf_counter() - t)
                if not _put(q_read, (b, x), stop):
                    return
            _put(q_read, _END, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            _put(q_read, _Failure(e), stop)

    def forward():
        try:
            with big.compiled_predict(model):
                while True:
                    item = _get(q_read, stop)
                    if item is _END or isinstance(item, _Failure):
                        _put(q_fwd, item, stop)
                        return
                    b, x = item
                    t = time.perf_counter()
                    shape, sparse = big.forward_block(model, x, predict_kwargs=kw)
                    record("forward_seconds", time.perf_counter() - t)
                    del x
                    if not _put(q_fwd, (b, shape, sparse), stop):
                        return
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            _put(q_fwd, _Failure(e), stop)

    threads = [threading.Thread(target=f, name=f"stardist-hier-{f.__name__}", daemon=True)
               for f in (reader, forward)]
    for th in threads:
        th.start()
    try:
        while True:
            item = q_fwd.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            b, shape, sparse = item
            t = time.perf_counter()
            with _nms_threads(nms_threads):
                read_back()
                labels, polys = big.instances_block(model, shape, sparse, predict_kwargs=kw)
                res = big.filter_block(b, labels, polys)
            del labels, sparse
            record("nms_seconds", time.perf_counter() - t)
            yield b, res
    finally:
        stop.set()
        for th in threads:
            th.join()

