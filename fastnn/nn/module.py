"""Module and Parameter: the composable core every layer builds on.

A Module maps numpy float32 arrays forward, saving what its backward needs as
one context per training-mode call (``save_for_backward``);
``backward(grad_out)`` consumes the newest context (``saved_tensors``),
*accumulates* (+=) the gradients of its parameters into ``Parameter.grad``
and returns the gradient with respect to its input when it is wanted (see
``Module``). ``no_grad()`` turns saving off on this thread.
Sub-modules and parameters assigned as attributes are registered
automatically, PyTorch-style, so ``parameters()``, ``state_dict()``,
``train()``/``eval()`` and ``repr`` see the whole tree.

Rules every module keeps: ``forward`` never modifies its input and
``backward`` never modifies ``grad_out`` (``Residual`` hands the same
gradient to two branches); both return new arrays (or pass an argument
through unchanged), so callers may keep any array they were given."""
import functools
import itertools
import threading
from collections import OrderedDict

import numpy as np

__all__ = ["Parameter", "Module", "no_grad", "is_grad_enabled"]


class Parameter:
    """A trainable float32 array ``data`` with its gradient ``grad`` (same
    shape). Both are fixed, C-contiguous storage: assigning ``p.data = arr``
    or ``p.grad = arr`` copies into it (a different shape raises ValueError),
    so layers and optimizers may keep using the arrays. When an optimizer is
    built on a Parameter it moves both into the optimizer's flat buffers
    (``data`` and ``grad`` become views; see fastnn.optim).

    ``requires_grad=False`` (frozen): no gradient slot, ``grad`` is None. A
    parameter unfrozen later gets its own gradient array (outside any flat
    buffer) at its first backward.
    ``p.grad = None`` marks "no gradient this step" (the optimizer skips it).

    ``zero_grad()`` is lazy: it marks the gradient as zero instead of writing
    zeros (a full pass over memory per step). Reading ``grad`` writes the
    zeros first, so nobody ever sees a stale gradient; a layer that is about
    to overwrite the whole gradient asks ``grad_for_write()`` and skips both
    the zeros and the add (a GEMM with beta=0 instead of beta=1)."""

    # _gstate: 0 the gradient is in _grad, 1 it is (lazily) zero, 2 it is None.
    __slots__ = ("_data", "_grad", "_gstate", "requires_grad", "_owner", "_slot")

    def __init__(self, data, requires_grad=True):
        self._data = np.array(data, dtype=np.float32, order="C", copy=True)
        self.requires_grad = bool(requires_grad)
        self._grad = np.zeros_like(self._data) if self.requires_grad else None
        self._gstate = 0 if self.requires_grad else 2
        self._owner = None       # weak reference to the optimizer owning the flat buffers
        self._slot = None        # (flat grad buffer, start, stop) once flattened

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        _copy_into(self._data, value, "data")

    @property
    def grad(self):
        s = self._gstate
        if s:
            if s == 2:
                return None
            self._grad.fill(0.0)
            self._gstate = 0
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._gstate = 2
            return
        if self._grad is None:
            self._grad = np.zeros_like(self._data)
        _copy_into(self._grad, value, "grad")
        self._gstate = 0

    def grad_for_write(self):
        """(grad array, accumulate): accumulate is False when the gradient is
        (lazily) zero or None, so the caller may overwrite it instead of adding."""
        acc = self._gstate == 0
        self._gstate = 0
        if self._grad is None:          # frozen when flattened, unfrozen since: its own slot
            self._grad = np.zeros_like(self._data)
        return self._grad, acc

    @property
    def shape(self):
        return self._data.shape

    @property
    def size(self):
        return self._data.size

    def zero_grad(self):
        if self._grad is not None:
            self._gstate = 1

    def __deepcopy__(self, memo):
        """A standalone copy (own data and gradient, no optimizer): copying a
        model never shares or copies an optimizer's flat buffers."""
        q = Parameter(self._data, self.requires_grad)
        if q._grad is not None and self._grad is not None and self._gstate == 0:
            q._grad[...] = self._grad
        memo[id(self)] = q
        return q

    def __repr__(self):
        return f"Parameter(shape={self._data.shape})"


def flat_grads(params):
    """The gradients of `params` (Parameters whose grad is not None) as few
    arrays as possible: a run of parameters whose gradients sit next to each
    other in an optimizer's flat buffer becomes one view of it (the aligned
    gaps between them are zeros), so a reduction reads the buffer in one
    pass. Returns (arrays, spans): spans[i] lists (parameter, start, stop) of
    each parameter's elements within arrays[i]."""
    arrays, spans = [], []
    run = None                       # [buffer, start, stop, [(p, abs start, abs stop)]]

    def close():
        arrays.append(run[0][run[1]:run[2]])
        spans.append([(q, a - run[1], b - run[1]) for q, a, b in run[3]])

    for p in params:
        g = p.grad                   # writes lazily-zero gradients
        if g is None:
            continue
        slot = p._slot
        if slot is not None and run is not None and slot[0] is run[0] and \
                0 <= slot[1] - run[2] < 16:
            run[2] = slot[2]
            run[3].append((p, slot[1], slot[2]))
            continue
        if run is not None:
            close()
            run = None
        if slot is not None:
            run = [slot[0], slot[1], slot[2], [(p, slot[1], slot[2])]]
        else:
            arrays.append(g)
            spans.append([(p, 0, g.size)])
    if run is not None:
        close()
    return arrays, spans


def _copy_into(dst, value, what):
    src = np.asarray(value)
    if src.shape != dst.shape:
        raise ValueError(f"Parameter.{what}: cannot assign an array of shape {src.shape} to a "
                         f"parameter of shape {dst.shape} (assignment copies into the "
                         f"parameter's storage; create a new Parameter to change its shape)")
    if src.dtype.kind not in "fiub":
        raise TypeError(f"Parameter.{what}: expected a numeric array, got dtype {src.dtype}")
    if src is not dst:
        np.copyto(dst, src, casting="unsafe")


# Per-thread state of the backward protocol, one list per thread (list items
# are cheaper to reach than threading.local attributes on the per-call path):
_DEPTH, _NEED, _RUNNING, _NO_GRAD, _GEN, _NEW_STEP = range(6)
# depth: nesting of wrapped backward calls; need: must the running backward
# return dL/d(input)?; running: the module whose backward runs (super()
# chains); no_grad: nesting of fastnn.no_grad(); gen: the current step
# generation of saved contexts; new_step: a user-level backward ended the
# step, so the next save starts a new one.


class _State(threading.local):
    def __init__(self):
        self.s = [0, True, None, 0, 0, True]


_tls = _State()
_generations = itertools.count(1)


class no_grad:
    """Context manager (and decorator) in which forward saves no context, as
    ``torch.no_grad()``: inference holds no activations. Per thread and
    nestable. Layers still behave as their ``training`` flag says (Dropout
    stays random in train mode); use ``model.eval()`` for inference
    behaviour."""

    def __enter__(self):
        _tls.s[_NO_GRAD] += 1
        return self

    def __exit__(self, *exc):
        _tls.s[_NO_GRAD] -= 1
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


def is_grad_enabled():
    """False inside ``fastnn.no_grad()`` (on this thread)."""
    return _tls.s[_NO_GRAD] == 0


def _too_many_contexts(module, stack):
    """A module saved max_contexts contexts with no backward in between: a
    forward-only loop left in training mode. Warn once per module and drop the
    oldest context, so memory stays bounded (a backward that would have needed
    it then raises 'no saved context' rather than computing anything wrong)."""
    if not getattr(module, "_warned_contexts", False):
        object.__setattr__(module, "_warned_contexts", True)
        import warnings
        warnings.warn(
            f"{type(module).__name__}: {len(stack)} training-mode forwards since the last "
            f"backward; their saved contexts are kept for backward. For inference use "
            f"model.eval() or fastnn.no_grad(). Dropping the oldest beyond "
            f"fastnn.nn.Module.max_contexts = {Module.max_contexts} (raise it for longer "
            f"unrolled loops).", RuntimeWarning, stacklevel=4)
    del stack[0]


class _HookHandle:
    """Returned by ``Module.register_post_backward_hook``; ``remove()`` unregisters."""
    __slots__ = ("_module", "_hook")

    def __init__(self, module, hook):
        self._module, self._hook = module, hook

    def remove(self):
        hooks = self._module._post_backward_hooks
        if hooks and self._hook in hooks:
            hooks.remove(self._hook)


def _run_post_backward_hooks(module):
    for hook in tuple(module._post_backward_hooks):
        hook(module)


def _wrap_backward(fn):
    """The user-facing backward around a module's own: keeps the per-thread
    depth, decides whether dL/d(input) is wanted and returns None if not."""
    def run(self, grad_out, input_grad, args, kwargs):
        st = _tls.s
        if st[_RUNNING] is self:                   # super().backward(...) of the same call
            return fn(self, grad_out, *args, **kwargs)
        d, prev_need, prev_running = st[_DEPTH], st[_NEED], st[_RUNNING]
        need = d > 0 if input_grad is None else bool(input_grad)
        st[_DEPTH], st[_NEED], st[_RUNNING] = d + 1, need, self
        try:
            g = fn(self, grad_out, *args, **kwargs)
        finally:
            st[_DEPTH], st[_NEED], st[_RUNNING] = d, prev_need, prev_running
            if d == 0:
                st[_NEW_STEP] = True
        if self._post_backward_hooks:
            _run_post_backward_hooks(self)
        return g if need else None

    def backward(self, grad_out, *args, input_grad=None, **kwargs):
        return run(self, grad_out, input_grad, args, kwargs)

    code = getattr(fn, "__code__", None)
    if code is not None and code.co_argcount == 2 and not code.co_flags & 0x0C:
        def backward(self, grad_out, input_grad=None):      # the usual signature: no *args
            st = _tls.s
            if st[_RUNNING] is self:
                return fn(self, grad_out)
            d, prev_need, prev_running = st[_DEPTH], st[_NEED], st[_RUNNING]
            need = d > 0 if input_grad is None else bool(input_grad)
            st[_DEPTH], st[_NEED], st[_RUNNING] = d + 1, need, self
            try:
                g = fn(self, grad_out)
            finally:
                st[_DEPTH], st[_NEED], st[_RUNNING] = d, prev_need, prev_running
                if d == 0:
                    st[_NEW_STEP] = True
            if self._post_backward_hooks:
                _run_post_backward_hooks(self)
            return g if need else None
    functools.update_wrapper(backward, fn)
    backward._fastnn_wrapped = True
    return backward


class Module:
    """Base class of every layer and container.

    The contract (see docs/layers.md, "Writing a module"):

    * ``forward(x)`` computes the output and, through
      ``self.save_for_backward(*objs)``, saves what its backward needs. Each
      call saves its own context (nothing in eval mode or under
      ``fastnn.no_grad()``), so a module may run many times per step.
    * ``backward(grad_out)`` takes the newest context with
      ``self.saved_tensors()`` (last-in first-out), accumulates parameter
      gradients and returns dL/d(input) -- computed only when
      ``self.needs_input_grad`` is True (else it may return None).
    * Called from user code, ``backward`` returns None and skips the input
      gradient unless ``backward(g, input_grad=True)``; called from inside
      another module's backward (a container) it returns dL/d(input). Losses
      are gradient sources: their ``backward()`` always returns dL/d(input).
    * Contexts of one step are dropped when a later step begins: the first
      context saved after a user-level backward starts a new step, and each
      module drops its contexts of older steps when it saves one."""

    # At most this many unconsumed contexts per module within one step (a
    # recurrent cell unrolled in Python saves one per time step): beyond it the
    # oldest is dropped with a warning, so a forward-only loop left in training
    # mode cannot grow memory without bound.
    max_contexts = 1024

    # Losses set this: their backward is a gradient source, not wrapped.
    _gradient_source = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("backward")
        if (fn is not None and not cls._gradient_source
                and not getattr(fn, "_fastnn_wrapped", False)):
            cls.backward = _wrap_backward(fn)

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # Constructor arguments, kept so a saved model can be rebuilt (fastnn.io).
        object.__setattr__(obj, "_init_args", (args, kwargs))
        object.__setattr__(obj, "_parameters", OrderedDict())
        object.__setattr__(obj, "_buffers", OrderedDict())
        object.__setattr__(obj, "_modules", OrderedDict())
        object.__setattr__(obj, "training", True)
        object.__setattr__(obj, "_contexts", [])
        object.__setattr__(obj, "_post_backward_hooks", None)
        return obj

    def __init__(self):
        pass

    def __getstate__(self):
        """Copies (copy.deepcopy) and pickles leave the post-backward hooks
        behind: they belong to the original (e.g. its DistributedDataParallel)."""
        state = self.__dict__.copy()
        state["_post_backward_hooks"] = None
        return state

    # -- registration ----------------------------------------------------
    def __setattr__(self, name, value):
        if name in self._buffers and isinstance(value, np.ndarray):
            self._buffers[name] = value           # a buffer replaced by a new array
            object.__setattr__(self, name, value)
            return
        for d, kind in ((self._modules, Module), (self._parameters, Parameter)):
            if name in d and isinstance(value, kind):   # replaced in place: keeps its position
                d[name] = value
                object.__setattr__(self, name, value)
                return
        for d in (self._parameters, self._modules, self._buffers):
            d.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for d in (self._parameters, self._modules, self._buffers):
            d.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, array, dtype=np.float32):
        """An array that is state but not trained (e.g. running statistics):
        saved in ``state_dict`` and restored by ``load_state_dict``. Stored as
        a C-contiguous ``dtype`` array (float32 by default); ``dtype=None``
        keeps the array's own dtype (e.g. BatchNorm's int64
        ``num_batches_tracked``, a 0-d array)."""
        arr = np.array(array, dtype=dtype, order="C", copy=True)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"register_buffer: {name!r} must be numeric, got dtype {arr.dtype}")
        object.__setattr__(self, name, arr)
        self._buffers[name] = arr

    def add_module(self, name, module):
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # -- the computation -------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(
            f"{type(self).__name__}.forward is not defined: a fastnn Module subclass defines "
            f"forward(x) and backward(grad_out), or composes existing modules "
            f"(e.g. nn.Sequential(nn.Linear(...), nn.ReLU(), ...))")

    def backward(self, grad_out):
        raise NotImplementedError(
            f"{type(self).__name__}.backward is not defined: fastnn has no autograd, so a custom "
            f"Module either implements backward(grad_out) -- return dL/d(input) and add into its "
            f"parameters' .grad, calling its sub-modules' backward in reverse order -- or is "
            f"built from existing modules whose backward is provided (nn.Sequential(...), "
            f"nn.Residual(...))")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- saved contexts --------------------------------------------------
    def save_for_backward(self, *objs):
        """Save what backward needs (arrays, shapes, flags: any objects) as one
        context of this forward call. Does nothing in eval mode or under
        ``fastnn.no_grad()``; returns whether it saved."""
        st = _tls.s
        if not self.training or st[_NO_GRAD]:
            return False
        if st[_NEW_STEP]:
            st[_GEN] = next(_generations)
            st[_NEW_STEP] = False
        gen = st[_GEN]
        stack = self._contexts
        if stack and stack[-1][0] != gen:
            stack.clear()                 # contexts of an older step were never consumed
        elif len(stack) >= Module.max_contexts:
            _too_many_contexts(self, stack)
        stack.append((gen, objs))
        return True

    def saved_tensors(self):
        """Pop and return the newest saved context (the tuple given to
        ``save_for_backward``). Raises RuntimeError when there is none."""
        stack = self._contexts
        if not stack:
            raise RuntimeError(
                f"{type(self).__name__}.backward: no saved context. Each backward consumes "
                f"the context of one training-mode forward of this module (last in, first "
                f"out); call forward first, in train() mode and outside fastnn.no_grad()")
        return stack.pop()[1]

    def register_post_backward_hook(self, hook):
        """Call ``hook(module)`` after each completed backward call of this
        module (not after the ``super().backward`` chain inside one call), once
        the gradients it accumulates into its own parameters are written. A
        module run k times per step calls it k times; ``len(module._contexts)``
        is then the number of backward calls still to come in this step. Used
        by fastnn.distributed to start a bucket's all-reduce while the rest
        of the backward pass runs. Returns a handle whose ``remove()``
        unregisters the hook."""
        if not callable(hook):
            raise TypeError(f"register_post_backward_hook: hook must be callable, "
                            f"got {type(hook).__name__}")
        if self._post_backward_hooks is None:
            object.__setattr__(self, "_post_backward_hooks", [])
        self._post_backward_hooks.append(hook)
        return _HookHandle(self, hook)

    @property
    def needs_input_grad(self):
        """Inside backward: whether dL/d(input) is wanted (see backward)."""
        return _tls.s[_NEED]

    def _discard(self):
        """Drop the contexts of one forward without computing anything: this
        module's newest, then each child's (newest first). Used by containers
        for leading modules whose gradients nobody needs."""
        if self._contexts:
            self._contexts.pop()
        for m in reversed(list(self._modules.values())):
            m._discard()

    def clear_contexts(self):
        """Drop every saved context of this module and its children."""
        for m in self.modules():
            m._contexts.clear()

    # -- traversal -------------------------------------------------------
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix=""):
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for mname, m in self.named_modules(prefix):
            for bname in m._buffers:
                yield (f"{mname}.{bname}" if mname else bname), getattr(m, bname)

    def num_parameters(self):
        return int(sum(p.data.size for p in self.parameters()))

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    # -- state -----------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter and buffer, keyed by dotted path."""
        sd = OrderedDict((k, p.data.copy()) for k, p in self.named_parameters())
        sd.update((k, b.copy()) for k, b in self.named_buffers())
        return sd

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters and buffers, in place. Every shape
        is checked before anything is written; a mismatch names the key and
        both shapes. ``strict``: the key sets must match exactly."""
        targets = OrderedDict((k, p.data) for k, p in self.named_parameters())
        targets.update(self.named_buffers())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        staged = []
        for k, dst in targets.items():
            if k not in state_dict:
                continue
            src = np.asarray(state_dict[k])
            if src.shape != dst.shape:
                raise ValueError(f"load_state_dict: {k!r} has shape {src.shape} in the state dict "
                                 f"but {dst.shape} in the model")
            if src.dtype.kind not in "fiub":
                raise TypeError(f"load_state_dict: {k!r} has non-numeric dtype {src.dtype}")
            if dst.dtype.kind in "iub" and not (src.dtype.kind in "iub" or
                                                np.array_equal(src, np.round(src))):
                raise TypeError(f"load_state_dict: {k!r} is an integer buffer ({dst.dtype}) in "
                                f"the model but holds non-integer {src.dtype} values")
            if src.dtype.kind == "f" and not np.all(np.isfinite(src)):
                raise ValueError(f"load_state_dict: {k!r} contains NaN or infinity")
            staged.append((dst, src))
        for dst, src in staged:
            dst[...] = src
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    # -- printing --------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


Module.backward = _wrap_backward(Module.backward)
