"""Module and Parameter: the composable core every layer builds on.

A Module maps numpy float32 arrays forward, caching what its backward needs;
``backward(grad_out)`` returns the gradient with respect to its input and
*accumulates* (+=) the gradients of its parameters into ``Parameter.grad``.
Sub-modules and parameters assigned as attributes are registered
automatically, PyTorch-style, so ``parameters()``, ``state_dict()``,
``train()``/``eval()`` and ``repr`` see the whole tree.

Rules every module keeps: ``forward`` never modifies its input and
``backward`` never modifies ``grad_out`` (``Residual`` hands the same
gradient to two branches); both return new arrays (or pass an argument
through unchanged), so callers may keep any array they were given."""
from collections import OrderedDict

import numpy as np

__all__ = ["Parameter", "Module"]


class Parameter:
    """A trainable float32 array ``data`` with its gradient ``grad`` (same
    shape, starts at zero). Both are C-contiguous and owned by the Parameter:
    optimizers update them in place.

    ``zero_grad()`` is lazy: it marks the gradient as zero instead of writing
    zeros (a full pass over memory per step). Reading ``grad`` writes the
    zeros first, so nobody ever sees a stale gradient; a layer that is about
    to overwrite the whole gradient asks ``grad_for_write()`` and skips both
    the zeros and the add (a GEMM with beta=0 instead of beta=1)."""

    __slots__ = ("data", "_grad", "_grad_zero", "requires_grad")

    def __init__(self, data, requires_grad=True):
        arr = np.array(data, dtype=np.float32, order="C", copy=True)
        self.data = arr
        self._grad = np.zeros_like(arr)
        self._grad_zero = False
        self.requires_grad = bool(requires_grad)

    @property
    def grad(self):
        if self._grad_zero:
            self._grad.fill(0.0)
            self._grad_zero = False
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = value
        self._grad_zero = False

    def grad_for_write(self):
        """(grad array, accumulate): accumulate is False when the gradient is
        (lazily) zero, so the caller may overwrite it instead of adding."""
        acc = not self._grad_zero
        self._grad_zero = False
        return self._grad, acc

    @property
    def shape(self):
        return self.data.shape

    @property
    def size(self):
        return self.data.size

    def zero_grad(self):
        self._grad_zero = True

    def __repr__(self):
        return f"Parameter(shape={self.data.shape})"


class Module:
    """Base class of every layer and container.

    ``input_grad`` (default True): whether ``backward`` must return the
    gradient with respect to the input. A container sets it to False on its
    first trainable child when nobody needs dL/d(input) (the data), so that
    layer may skip that work and return None."""

    input_grad = True

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # Constructor arguments, kept so a saved model can be rebuilt (fastnn.io).
        object.__setattr__(obj, "_init_args", (args, kwargs))
        object.__setattr__(obj, "_parameters", OrderedDict())
        object.__setattr__(obj, "_buffers", OrderedDict())
        object.__setattr__(obj, "_modules", OrderedDict())
        object.__setattr__(obj, "training", True)
        return obj

    def __init__(self):
        pass

    # -- registration ----------------------------------------------------
    def __setattr__(self, name, value):
        if name in self._buffers and isinstance(value, np.ndarray):
            self._buffers[name] = value           # a buffer replaced by a new array
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

    def register_buffer(self, name, array):
        """A float32 array that is state but not trained (e.g. running
        statistics): saved in ``state_dict`` and restored by ``load_state_dict``."""
        arr = np.ascontiguousarray(array, dtype=np.float32)
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
