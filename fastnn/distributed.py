"""Data-parallel training across processes and machines over MPI.

Every rank holds the whole model and optimizer, trains on its own shard of
each global batch, and averages the gradients before each optimizer step, so
K ranks with batch B train as one process with batch K*B::

    from fastnn import distributed as dist
    dist.init()                                    # MPI; threads per rank; abort on error
    model, opt = ..., optim.Adam(model.parameters())
    ddp = dist.DistributedDataParallel(model, opt) # broadcast from rank 0, gradient hooks
    loader = dist.DistributedLoader(x, y, batch_size=64, seed=0)   # per-rank batch
    for epoch in range(epochs):
        for xb, yb in loader:                      # this rank's share of the global batch
            loss(model(xb), yb)
            opt.zero_grad()
            model.backward(loss.backward())        # gradients arrive averaged
            opt.step()

or ``Trainer(..., distributed=True)``. Run as one process, or under
``mpiexec -n K python train.py``.

mpi4py and an MPI library are an optional extra (``pip install
"fastnn[mpi]"``: mpi4py and the ``mpich`` wheel); mpi4py is imported by
``init()`` only, so fastnn itself needs nothing but numpy.

Gradient averaging: the optimizer's flat gradient buffer is cut into buckets
of about ``bucket_mb`` MiB (whole parameters, in reverse order: the output
layer's gradients are complete first). A post-backward hook on every module
that owns parameters marks them complete; when a bucket's parameters are
all complete its non-blocking all-reduce (``Iallreduce``, in place) starts,
while backward goes on through the earlier layers; the model's own hook then
starts what is left and waits for all. Frozen parameters have no gradient
slot and are never sent. Each rank's gradient is weighted by its share of
the global batch (``n_rank / n_global``), so a short last batch split
unevenly across ranks still gives the gradient of the mean loss over the
real samples.
"""
import os
import sys
import time
from contextlib import contextmanager

import numpy as np

__all__ = ["init", "is_initialized", "rank", "world_size", "local_rank", "local_size",
           "is_main", "barrier", "broadcast_parameters", "all_reduce", "batch_weight",
           "DistributedDataParallel", "DistributedLoader", "launched_world_size",
           "remove_abort_hook"]

_MPI = None           # the mpi4py.MPI module once init() ran
_comm = None          # our duplicate of COMM_WORLD
_ctl = None           # a second duplicate: exit notices between ranks
_timeout = 30.0       # seconds a rank waits in a collective before it aborts the job
_EXIT_TAG = 7
_node = None          # the ranks sharing this node's memory (COMM_TYPE_SHARED)
_prev_excepthook = None
_weight = None        # this rank's share of the current global batch (set by the loader)

_INSTALL_HINT = ('fastnn.distributed needs mpi4py and an MPI library: pip install '
                 '"fastnn[mpi]" (mpi4py plus the mpich wheel from PyPI, no system MPI '
                 'needed), or pip install mpi4py against a system MPI')


# --------------------------------------------------------------- set-up --

def launched_world_size():
    """The number of ranks an MPI launcher (mpiexec/mpirun, srun) started,
    from its environment variables, without importing MPI; 1 when not
    launched by one."""
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):     # MPICH/Intel MPI (hydra), Open MPI
        v = os.environ.get(var, "")
        if v.isdigit():
            return int(v)
    return 1


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"{_INSTALL_HINT} ({e})") from None
    return MPI


def init(threads="auto", abort_on_exception=True, timeout=None):
    """Start MPI (idempotent) and return the world size.

    ``threads='auto'``: unless ``FASTNN_NUM_THREADS`` is set, each rank gets
    the cores it may use divided by the ranks on its node that share them
    (the node's ranks come from MPI's shared-memory split), so K ranks on one
    machine never oversubscribe it; an int sets it; None leaves it.
    ``abort_on_exception``: an uncaught exception on any rank prints its
    traceback and calls ``MPI.COMM_WORLD.Abort`` (as ``python -m mpi4py``
    does), so the other ranks stop instead of waiting forever in a
    collective.

    Failure: a rank that raises aborts the job (above); a rank killed by a
    signal or ending with ``os._exit`` is ended by the launcher, which stops
    the others; a rank that leaves the script early (``sys.exit``, or
    returning while the others still train) sends an exit notice, and a rank
    waiting in one of fastnn's collectives for it aborts with a message
    naming it. ``timeout`` (seconds, default ``FASTNN_DIST_TIMEOUT`` or 30):
    a rank that waits longer than this in one collective aborts the job
    saying so (raise it when one rank does long work the others wait for).
    Raises ImportError saying what to install when mpi4py or the MPI
    library is missing."""
    global _MPI, _comm, _node, _ctl, _timeout
    if _comm is not None:
        return _comm.Get_size()
    if timeout is None:
        timeout = os.environ.get("FASTNN_DIST_TIMEOUT", 30.0)
    try:
        seconds = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"init: timeout must be a number of seconds, got {timeout!r}") from None
    if not seconds > 0:
        raise ValueError(f"init: timeout must be > 0, got {timeout!r}")
    if not (threads in ("auto", None) or (isinstance(threads, int) and not
                                             isinstance(threads, bool) and threads >= 1)):
        raise ValueError(f"init: threads must be 'auto', None or a positive integer, "
                         f"got {threads!r}")
    MPI = _import_mpi()
    if not MPI.Is_initialized():
        MPI.Init_thread(MPI.THREAD_MULTIPLE)
    _MPI, _timeout = MPI, seconds
    _comm = MPI.COMM_WORLD.Dup()
    _ctl = MPI.COMM_WORLD.Dup()
    _node = _comm.Split_type(MPI.COMM_TYPE_SHARED, key=_comm.Get_rank())
    if _comm.Get_size() > 1:
        import atexit
        atexit.register(_exit_handshake)
        _start_watchdog()
    if abort_on_exception:
        _install_excepthook()
    if threads == "auto":
        if not os.environ.get("FASTNN_NUM_THREADS"):
            from .runtime import set_num_threads
            set_num_threads(_threads_per_rank())
    elif threads is not None:
        from .runtime import set_num_threads
        set_num_threads(threads)
    return _comm.Get_size()


def _threads_per_rank():
    """Usable cores / ranks on this node sharing the same cores. Ranks bound
    to their own cores (mpiexec -bind-to core) keep their own mask."""
    from .runtime import default_num_threads
    try:
        mask = tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        mask = ()
    masks = _node.allgather(mask)
    same = sum(1 for m in masks if m == mask)
    return max(1, default_num_threads() // max(1, same))


def _abort(msg, then=None):
    """Say why first (one line naming the rank), then `then()` (e.g. the
    traceback), then give the launcher half a second to forward this rank's
    stderr -- MPI_Abort tears the job down and output still in the
    launcher's pipes is lost -- and abort every rank."""
    sys.stderr.write(f"fastnn.distributed: {msg}; aborting all ranks (MPI_Abort)\n")
    sys.stderr.flush()
    if then is not None:
        try:
            then()
        finally:
            sys.stderr.flush()
    time.sleep(0.5)
    _MPI.COMM_WORLD.Abort(1)
    os._exit(1)                    # Abort may return before the launcher ends us


def _wait(reqs, what):
    """MPI Waitall, watched: while the main thread waits here, the watchdog
    thread aborts the job, naming the rank, when a peer has left the script
    (its exit notice) or the wait exceeds the timeout."""
    global _waiting
    _waiting = (what, time.monotonic())
    try:
        _MPI.Request.Waitall(reqs)
    finally:
        _waiting = None


_waiting = None       # (what, since) while the main thread waits in a collective
_watch = None         # [thread, stop flag]


def _watchdog(stop):
    """Every 0.1 s: note the exit notices of ranks that left, and abort when
    the main thread has waited for a departed rank for 2 s, or for anything
    longer than the timeout. (A rank that finished every collective also
    sends a notice on its way out: the grace period lets the main thread's
    last wait complete.)"""
    status = _MPI.Status()
    me = _comm.Get_rank()
    gone = None
    while not stop:
        time.sleep(0.1)
        if gone is None and _ctl.Iprobe(source=_MPI.ANY_SOURCE, tag=_EXIT_TAG, status=status):
            gone = (status.Get_source(), time.monotonic())
        w = _waiting
        if w is None or stop:
            continue
        what, since = w
        now = time.monotonic()
        if gone is not None and now - max(gone[1], since) > 2.0:
            _abort(f"rank {gone[0]} left the script while rank {me} waited for {what}")
        if now - since > _timeout:
            _abort(f"rank {me} waited {_timeout:g} s for {what}: another rank stopped or hangs "
                   f"(init(timeout=...) or FASTNN_DIST_TIMEOUT sets the limit)")


def _start_watchdog():
    global _watch
    import threading
    if _MPI.Query_thread() < _MPI.THREAD_MULTIPLE:
        return                    # MPI without thread support: launcher and excepthook only
    stop = []
    t = threading.Thread(target=_watchdog, args=(stop,), name="fastnn-mpi-watchdog",
                         daemon=True)
    t.start()
    _watch = (t, stop)


def _exit_handshake():
    """At interpreter exit: stop the watchdog, tell the other ranks, then
    wait (with the timeout) until every rank has reached its end too."""
    if _comm is None or _MPI.Is_finalized():
        return
    if _watch is not None:
        _watch[1].append(True)
        _watch[0].join()
    me, k = _comm.Get_rank(), _comm.Get_size()
    note = np.array([me], np.int64)
    sends = [_ctl.Isend(note, dest=r, tag=_EXIT_TAG) for r in range(k) if r != me]
    barrier = _ctl.Ibarrier()
    testall = _MPI.Request.Testall
    deadline = time.monotonic() + _timeout
    while not testall([barrier]):
        if time.monotonic() > deadline:
            _abort(f"rank {me} reached the end of the script but other ranks did not "
                   f"within {_timeout:g} s")
        time.sleep(1e-3)
    for r in range(k - 1):                 # drain the others' notices
        _ctl.Recv(np.empty(1, np.int64), source=_MPI.ANY_SOURCE, tag=_EXIT_TAG)
    _MPI.Request.Waitall(sends)


def _install_excepthook():
    global _prev_excepthook
    if _prev_excepthook is not None:
        return
    _prev_excepthook = sys.excepthook

    def hook(tp, value, tb):
        _abort(f"rank {rank()} of {world_size()} raised {tp.__name__}",
               then=lambda: _prev_excepthook(tp, value, tb))
    sys.excepthook = hook


def remove_abort_hook():
    """Remove the abort-on-exception hook (e.g. before handling errors yourself)."""
    global _prev_excepthook
    if _prev_excepthook is not None:
        sys.excepthook = _prev_excepthook
        _prev_excepthook = None


def is_initialized():
    return _comm is not None


def rank():
    """This process's rank (0 when MPI is not initialised)."""
    return _comm.Get_rank() if _comm is not None else 0


def world_size():
    """The number of ranks (1 when MPI is not initialised)."""
    return _comm.Get_size() if _comm is not None else 1


def local_rank():
    """Rank among the ranks on this node."""
    return _node.Get_rank() if _node is not None else 0


def local_size():
    """Ranks on this node."""
    return _node.Get_size() if _node is not None else 1


def is_main():
    """True on rank 0 (and in a single process): the rank that prints and writes files."""
    return rank() == 0


def barrier():
    if _comm is not None and _comm.Get_size() > 1:
        _wait([_comm.Ibarrier()], "a barrier")


def batch_weight():
    """This rank's share of the current global batch, n_rank / n_global (set
    by DistributedLoader for each batch; 1 / world_size before any)."""
    return _weight if _weight is not None else 1.0 / world_size()


def _set_weight(w):
    global _weight
    _weight = w


def all_reduce(array, op="sum"):
    """Reduce a numpy array across ranks in place ('sum', 'max' or 'min') and
    return it; a no-op in a single process."""
    if _comm is None or _comm.Get_size() == 1:
        return array
    ops = {"sum": _MPI.SUM, "max": _MPI.MAX, "min": _MPI.MIN}
    if op not in ops:
        raise ValueError(f"all_reduce: op must be 'sum', 'max' or 'min', got {op!r}")
    if not isinstance(array, np.ndarray) or not array.flags.c_contiguous:
        raise TypeError("all_reduce: array must be a C-contiguous numpy array")
    _wait([_comm.Iallreduce(_MPI.IN_PLACE, array, op=ops[op])], "an all-reduce")
    return array


def _bcast_object(obj, root=0):
    if _comm is None or _comm.Get_size() == 1:
        return obj
    return _comm.bcast(obj, root=root)


def broadcast_parameters(model, optimizer=None, root=0):
    """Copy rank ``root``'s parameters and buffers (and, with ``optimizer``,
    its optimizer state and hyper-parameters) to every rank. Parameters that
    live in one optimizer's flat buffer go as one message."""
    if _comm is None or _comm.Get_size() == 1:
        return
    params = model.parameters()
    flat = optimizer.flat_data if optimizer is not None else None
    covered = set()
    if flat is not None:
        base = flat.base if flat.base is not None else flat
        if all(p.data.base is base for p in params):
            _comm.Bcast(flat, root=root)
            covered = {id(p) for p in params}
    for p in params:
        if id(p) not in covered:
            _comm.Bcast(p.data, root=root)
    for _, b in model.named_buffers():
        _comm.Bcast(b, root=root)
    if optimizer is not None:
        sd = _bcast_object(optimizer.state_dict() if _comm.Get_rank() == root else None, root)
        if _comm.Get_rank() != root:
            optimizer.load_state_dict(sd)


def _rank_seed(seed, r):
    """A per-rank seed derived from (seed, rank): reproducible, different per rank."""
    return int(np.random.SeedSequence([int(seed), int(r)]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


# ---------------------------------------------------------- the wrapper --

class _Bucket:
    __slots__ = ("buf", "lo", "hi", "params", "left", "req")

    def __init__(self, buf, lo, hi, params):
        self.buf, self.lo, self.hi, self.params = buf, lo, hi, params
        self.left = len(params)
        self.req = None


class DistributedDataParallel:
    """Make ``model`` + ``optimizer`` data-parallel across the MPI ranks.

    On construction (a collective call: every rank constructs it at the same
    point) it calls ``init()`` if needed, broadcasts rank 0's parameters,
    buffers and optimizer state, reseeds fastnn's generator per rank
    (``manual_seed`` of a seed derived from the current seed and the rank:
    dropout and augmentation differ across ranks, a rerun is identical) and
    registers backward hooks: from then on ``model.backward(...)`` returns
    with the gradients averaged over the ranks (weighted by each rank's
    share of the global batch, see ``batch_weight``). Training code is
    otherwise unchanged; with one rank nothing is communicated.

    ``bucket_mb``: the all-reduce message size in MiB (whole parameters; a
    larger parameter is a bucket of its own). ``overlap=False`` starts all
    buckets after backward instead of during it. ``no_sync()``: a context
    in which backward accumulates locally (gradient accumulation); the next
    backward outside it averages the sum. ``stats``: steps, bytes sent per
    step, and seconds spent waiting for communication.

    Only parameters in ``optimizer`` are averaged; a trainable parameter of
    the model outside it raises ValueError. One ``model.backward`` per step
    (or use ``no_sync``)."""

    def __init__(self, model, optimizer, bucket_mb=4.0, overlap=True, broadcast=True,
                 seed_per_rank=True):
        from .nn.module import Module
        from .optim.optimizer import Optimizer
        if not isinstance(model, Module):
            raise TypeError(f"DistributedDataParallel: model must be a fastnn Module, "
                            f"got {type(model).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedDataParallel: optimizer must be a fastnn optimizer, "
                            f"got {type(optimizer).__name__}")
        try:
            bucket_mb = float(bucket_mb)
        except (TypeError, ValueError):
            raise TypeError(f"DistributedDataParallel: bucket_mb must be a number, "
                            f"got {bucket_mb!r}") from None
        if not bucket_mb > 0 or bucket_mb != bucket_mb:
            raise ValueError(f"DistributedDataParallel: bucket_mb must be > 0, got {bucket_mb!r}")
        self.model, self.optimizer = model, optimizer
        self.bucket_mb, self.overlap = bucket_mb, bool(overlap)
        self._sync = True
        self.stats = {"steps": 0, "bytes_per_step": 0, "wait_s": 0.0, "reduce_s": 0.0,
                      "early_buckets": 0}
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        for n, p in named:
            owner = p._owner() if p._owner is not None else None
            if owner is not optimizer or p._slot is None:
                raise ValueError(f"DistributedDataParallel: parameter {n!r} {p.shape} requires a "
                                 f"gradient but is not in the optimizer's flat buffers; pass "
                                 f"all trainable parameters to the optimizer, or freeze it "
                                 f"(requires_grad=False) before building the optimizer")
        init()
        if broadcast:
            broadcast_parameters(model, optimizer)
        if seed_per_rank and world_size() > 1:
            from . import runtime
            runtime.manual_seed(_rank_seed(runtime.initial_seed(), rank()))
        self._buckets = self._make_buckets([p for _, p in named])
        self.stats["bytes_per_step"] = sum((b.hi - b.lo) * 4 for b in self._buckets)
        self.gradient_bytes = int(sum(p.size for _, p in named) * 4)
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._owners = {}         # id(param) -> number of modules that own it
        self._hooked = {}         # id(module) -> its averaged parameters
        self._handles = []
        if world_size() > 1:
            for m in model.modules():
                mine = [p for p in m._parameters.values()
                        if p is not None and id(p) in self._bucket_of]
                if mine:
                    for p in mine:
                        self._owners[id(p)] = self._owners.get(id(p), 0) + 1
                    self._hooked[id(m)] = mine
                    self._handles.append(m.register_post_backward_hook(self._module_done))
            self._handles.append(model.register_post_backward_hook(self._model_done))
        self._reset_step()

    # -- buckets ------------------------------------------------------------
    def _make_buckets(self, params):
        cap = max(1, int(self.bucket_mb * (1 << 20) // 4))
        order = sorted(params, key=lambda p: (id(p._slot[0]), p._slot[1]), reverse=True)
        buckets, cur = [], []

        def close():
            if cur:
                buf = cur[0]._slot[0]
                hi = min(buf.size, -(-cur[0]._slot[2] // 16) * 16)   # up to the next slot
                buckets.append(_Bucket(buf, cur[-1]._slot[1], hi, list(cur)))
                cur.clear()
        for p in order:
            if cur:
                prev = cur[-1]
                adjacent = p._slot[0] is prev._slot[0] and 0 <= prev._slot[1] - p._slot[2] < 16
                if not adjacent or cur[0]._slot[2] - p._slot[1] > cap:
                    close()
            cur.append(p)
        close()
        return buckets

    @property
    def num_buckets(self):
        return len(self._buckets)

    def bucket_sizes(self):
        """Elements per bucket (launch order), including the alignment gaps of
        the flat buffer (zeros) between parameters."""
        return [b.hi - b.lo for b in self._buckets]

    # -- per step -----------------------------------------------------------
    def _reset_step(self):
        self._left = dict(self._owners)
        self._done = set()
        for b in self._buckets:
            b.left = len(b.params)
            b.req = None
        self._next = 0

    def _launch(self, b):
        if b.params[0]._slot is None or b.params[0]._slot[0] is not b.buf:
            raise RuntimeError("DistributedDataParallel: the optimizer's flat buffers were "
                               "rebuilt (add_param_group?) after the wrapper was built; build "
                               "DistributedDataParallel after the last change to the optimizer")
        for p in b.params:
            if p._gstate:                     # lazily zero, or None: a zero contribution
                p._grad.fill(0.0)
                p._gstate = 0
        view = b.buf[b.lo:b.hi]
        w = batch_weight()
        if w != 1.0:
            np.multiply(view, np.float32(w), out=view)
        b.req = _comm.Iallreduce(_MPI.IN_PLACE, view, op=_MPI.SUM)

    def _launch_ready(self):
        bs = self._buckets
        while self._next < len(bs) and bs[self._next].left == 0:
            self._launch(bs[self._next])
            self._next += 1

    def _module_done(self, m):
        if not self._sync or not self.overlap or m._contexts or id(m) in self._done:
            return
        self._done.add(id(m))
        for p in self._hooked.get(id(m), ()):
            k = self._left[id(p)] - 1
            self._left[id(p)] = k
            if k == 0:
                self._bucket_of[id(p)].left -= 1
        self._launch_ready()

    def _model_done(self, m):
        if not self._sync:
            self._reset_step()
            return
        t0 = time.perf_counter()
        self.stats["early_buckets"] += self._next     # started while backward still ran
        while self._next < len(self._buckets):
            self._launch(self._buckets[self._next])
            self._next += 1
        t1 = time.perf_counter()
        _wait([b.req for b in self._buckets], "the gradient all-reduce")
        t2 = time.perf_counter()
        st = self.stats
        st["steps"] += 1
        st["wait_s"] += t2 - t1
        st["reduce_s"] += t2 - t0
        self._reset_step()

    @contextmanager
    def no_sync(self):
        """Backward inside accumulates gradients locally, without communication."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    def broadcast(self):
        """Broadcast rank 0's parameters, buffers and optimizer state again
        (e.g. after loading a checkpoint on rank 0 only)."""
        broadcast_parameters(self.model, self.optimizer)

    def remove_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def __repr__(self):
        return (f"DistributedDataParallel(ranks={world_size()}, buckets={len(self._buckets)}, "
                f"bytes_per_step={self.stats['bytes_per_step']}, overlap={self.overlap})")


# ------------------------------------------------------------ the loader --

class DistributedLoader:
    """Mini-batches of this rank's shard of (x, y), reshuffled every epoch
    consistently across ranks.

    Each epoch draws one permutation of all samples from ``seed`` and the
    epoch number (the same on every rank; ``seed=None`` takes one from rank
    0's fastnn generator, broadcast); global batch k is
    ``perm[k*G:(k+1)*G]`` with ``G = batch_size * world_size`` and rank r
    takes every world-size-th sample of it, from position r -- overall,
    every world-size-th sample of the epoch's permutation. ``batch_size`` is
    per rank, so K ranks see the batches one process with
    ``batch_size * K`` sees. The last global batch may be short: each rank
    takes its real samples and its gradient is weighted by their number
    (``batch_weight``), nothing is padded. A rank left without any sample in
    that last batch (fewer samples than ranks) gets one sample with weight 0,
    which contributes nothing to the gradient (a SyncBatchNorm's statistics
    do include it). ``real_size`` is the current batch's number of real
    samples. ``drop_last`` drops a short last global batch. ``set_epoch(e)``
    chooses the permutation (it otherwise advances by one per iteration).
    ``transform`` as in DataLoader."""

    def __init__(self, x, y=None, batch_size=1, shuffle=True, drop_last=False, seed=None,
                 transform=None):
        from .data import DataLoader
        # DataLoader validates and converts the arrays and gathers batches in C.
        self._dl = DataLoader(x, y, batch_size=batch_size, shuffle=False,
                              drop_last=drop_last, seed=None, transform=transform)
        self.batch_size = self._dl.batch_size
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if seed is None:
            from . import runtime
            seed = _bcast_object(int(runtime.next_seed()) & ((1 << 63) - 1) if is_main()
                                 else None)
        from .data.loader import _check_seed
        self.seed = _check_seed("DistributedLoader", seed)
        self.epoch = 0
        self.real_size = 0
        self.rank, self.world = rank(), world_size()

    @property
    def num_samples(self):
        return self._dl.num_samples

    def __len__(self):
        n, g = self._dl.num_samples, self.batch_size * self.world
        return n // g if self.drop_last else -(-n // g)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _order(self, epoch):
        n = self._dl.num_samples
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.Generator(np.random.Philox(np.random.SeedSequence([self.seed, epoch])))
        return rng.permutation(n).astype(np.int64, copy=False)

    def batches(self, epoch):
        """(indices, weight) of this rank's batches in ``epoch``."""
        order = self._order(epoch)
        n, r, k = order.shape[0], self.rank, self.world
        g = self.batch_size * k
        for s in range(len(self)):
            block = order[s * g:(s + 1) * g]
            idx = np.ascontiguousarray(block[r::k])
            if idx.shape[0]:
                yield idx, idx.shape[0] / block.shape[0]
            else:
                yield block[:1], 0.0

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        dl = self._dl
        for idx, w in self.batches(epoch):
            self.real_size = idx.shape[0] if w else 0
            _set_weight(w)
            xb = dl._gather(dl.x, dl._x_row_bytes, idx)
            if dl.transform is not None:
                xb = dl._transformed(xb)
            if dl.y is None:
                yield xb
            else:
                yield xb, dl._gather(dl.y, dl._y_row_bytes, idx)

    def __repr__(self):
        return (f"DistributedLoader(samples={self.num_samples}, batch_size={self.batch_size} "
                f"per rank, ranks={self.world}, shuffle={self.shuffle}, seed={self.seed})")
