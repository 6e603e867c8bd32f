"""Parallel, deterministic training input: :class:`ParallelBatches` (no TensorFlow).

StarDist feeds ``fit`` from one Python generator thread, which builds every batch
(patch sampling, augmentation, ``edt_prob``/``star_dist``, the class target) serially
with the network. :class:`ParallelBatches` builds up to ``workers`` batches at once in
threads and yields them in order:

* one *producer* thread asks the data source for the image indices of batch ``i``
  (:meth:`StarDistData2DHier.batch`, i.e. the sampler, in batch order: the
  :class:`~stardist_hier.training.DatasetMixer`'s random walk and its epoch barrier
  behave exactly as with one thread) and the batch's seed entropy, and hands
  ``(indices, entropy)`` to a thread pool;
* the pool builds the batch with :meth:`StarDistData2DHier.make_batch`, a pure function
  of ``(indices, entropy)`` (patch positions drawn under a short lock from a generator
  seeded by the entropy, augmentation from a generator seeded by it too);
* ``__next__`` returns the batches in order.

The batches are therefore bit-identical for any number of workers, and a resumed run
(whose sampler state and global batch index come from the checkpoint) draws the same
batches as an uninterrupted one. Threads rather than processes: the sampler's epoch
barrier, the episode switch (cuts re-encoded in place) and the augmenter's counters
stay shared; the heavy steps (SciPy's ``map_coordinates`` and Gaussian filter, StarDist's
C ``star_dist``, NumPy) run largely outside the GIL.

How far ahead it works is bounded (``2 * workers`` batches), so at an epoch boundary
the producer parks at the mixer's barrier with nothing of the next epoch drawn.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["ParallelBatches", "check_input_workers"]


def check_input_workers(n) -> int:
    """``n`` as an int >= 1; :class:`~stardist_hier.errors.InputError` (one line) otherwise."""
    import numbers

    from ..errors import InputError, shorten

    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise InputError(f"input_workers={shorten(n)}: must be a whole number >= 1 (threads building "
                         f"training batches; 1 builds them in the training loop's own input thread)")
    return int(n)


class ParallelBatches:
    """Iterator over batches ``0 .. n_batches - 1`` of ``data``, built by ``workers`` threads.

    Parameters
    ----------
    data : StarDistData2DHier
        Needs ``batch(i)``, ``batch_entropy(i)`` and ``make_batch(idx, entropy)``.
    n_batches : int
        Batches to yield (``len(data)`` by default).
    workers : int
        Threads building batches (>= 1).
    ahead : int, optional
        Batches in flight at most (default ``2 * workers``).

    Notes
    -----
    Call :meth:`close` when done early (also done when the iterator is exhausted or
    garbage-collected). An error while building a batch is raised by ``__next__``.
    """

    def __init__(self, data, n_batches=None, *, workers: int = 2, ahead=None):
        self.data = data
        self.n_batches = len(data) if n_batches is None else int(n_batches)
        self.workers = check_input_workers(workers)
        self.ahead = 2 * self.workers if ahead is None else max(1, int(ahead))
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="stardist-hier-input")
        self._q: queue.Queue = queue.Queue(self.ahead)
        self._stop = threading.Event()
        self._next = 0
        self._producer = threading.Thread(target=self._produce, name="stardist-hier-input-sampler", daemon=True)
        self._producer.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self):
        try:
            for i in range(self.n_batches):
                if self._stop.is_set():
                    return
                idx = self.data.batch(i)
                entropy = self.data.batch_entropy(i)
                if self._stop.is_set() or not self._put(self._pool.submit(self.data.make_batch, idx, entropy)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            f = Future()
            f.set_exception(e)
            self._put(f)

    def __iter__(self):
        return self

    def __next__(self):
        if self._next >= self.n_batches or self._stop.is_set():
            self.close()
            raise StopIteration
        while True:
            try:
                fut = self._q.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._producer.is_alive() and self._q.empty():
                    self.close()
                    raise StopIteration from None
        self._next += 1
        return fut.result()

    def close(self):
        """Stop the producer and the workers (batches in flight are dropped)."""
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
