"""Containers: Sequential (a chain of modules), Residual (block + shortcut) and
Concat (branches concatenated along the channels)."""
from collections import OrderedDict

import numpy as np

from .._check import as_f32
from .activation import ReLU as _ReLU
from .conv import Conv1d, Conv2d
from .layers import Linear
from .module import Module
from .norm import BatchNorm1d, BatchNorm2d
from .pool import MaxPool1d, MaxPool2d

__all__ = ["Sequential", "Residual", "Concat"]

_RELU_FUSES = (Linear, Conv1d, Conv2d)     # a following ReLU goes into their store
_RELU_MASKS = (BatchNorm1d, BatchNorm2d)    # ... and its backward's mask into theirs
_MASK_AFTER = (MaxPool1d, MaxPool2d)        # takes a fused ReLU's backward mask


def _require_module(who, what, m):
    if not isinstance(m, Module):
        raise TypeError(f"{who}: {what} must be a Module, got {type(m).__name__}")
    return m


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse.

    ``Sequential(a, b, c)`` names the children '0', '1', '2' (so state_dict
    keys are '0.weight', ...); ``Sequential(OrderedDict(name=module, ...))``
    keeps the given names (a plain dict, ordered, works too). Supports ``len``, iteration, indexing (an int gives
    the module, a slice a new Sequential sharing the modules), item
    assignment, ``append`` and ``extend``."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for name, m in modules[0].items():
                if not isinstance(name, str) or not name or "." in name:
                    raise ValueError(f"Sequential: module names must be non-empty strings "
                                     f"without '.', got {name!r}")
                self.add_module(name, _require_module("Sequential", f"module {name!r}", m))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _require_module("Sequential", f"argument {i}", m))

    def _index(self, idx):
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"Sequential: indices must be integers or slices, "
                            f"got {type(idx).__name__}")
        n = len(self._modules)
        i = int(idx) + n if idx < 0 else int(idx)
        if not 0 <= i < n:
            raise IndexError(f"Sequential: index {idx} is out of range for {n} modules")
        return list(self._modules)[i]

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return self._modules[self._index(idx)]

    def __setitem__(self, idx, module):
        setattr(self, self._index(idx), _require_module("Sequential", "the new item", module))

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def append(self, module):
        """Add a module at the end, named by its position (the next free integer)."""
        _require_module("Sequential.append", "module", module)
        i = len(self._modules)
        while str(i) in self._modules:
            i += 1
        self.add_module(str(i), module)
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def forward(self, x):
        """The modules in order. A Linear, Conv1d or Conv2d followed by a ReLU
        (these exact classes, so a subclass's own forward always runs) computes
        max(y, 0) in its kernel's store, sparing the ReLU's pass over y; the
        ReLU still saves y for its backward. A BatchNorm1d/2d followed by a
        ReLU without post-backward hooks fuses both ways: max(y, 0) in its
        normalising pass, and the ReLU's mask applied inside its backward's
        passes (recomputed from x), the ReLU passing the gradient through.
        A Linear/Conv + ReLU followed by a MaxPool1d/2d (no post-backward
        hooks on the ReLU or the pool) leaves the ReLU's mask to the pool's
        backward: dy passes where the pooled value is > 0, which is the
        ReLU's output at the window's maximum.
        Results, gradients and contexts are the same bits as running the
        modules one after the other."""
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < n else None
            pool = mods[i + 2] if i + 2 < n else None
            if (type(nxt) is _ReLU and type(m) in _RELU_FUSES and type(pool) in _MASK_AFTER
                    and not nxt._post_backward_hooks and not pool._post_backward_hooks):
                x = nxt._adopt(m._forward(x, relu=True), masked_elsewhere=True)
                x = pool._forward(x, relu_mask=True)
                i += 3
            elif type(nxt) is _ReLU and type(m) in _RELU_FUSES:
                x = nxt._adopt(m._forward(x, relu=True))
                i += 2
            elif type(nxt) is _ReLU and type(m) in _RELU_MASKS and not nxt._post_backward_hooks:
                x = nxt._adopt(m._forward(x, relu=True), masked_elsewhere=True)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def backward(self, grad_out):
        """Backward through the modules in reverse. When dL/d(input) is not
        wanted (``needs_input_grad`` False: a call from user code), the first
        module with trainable parameters is asked not to compute it (a Linear
        then saves its dX GEMM) and the parameter-free modules before it only
        drop their saved contexts."""
        mods = list(self._modules.values())
        first = 0
        if not self.needs_input_grad:
            first = next((i for i, m in enumerate(mods)
                          if any(p.requires_grad for p in m.parameters())), len(mods))
        g = grad_out
        for i in range(len(mods) - 1, first - 1, -1):
            g = mods[i].backward(g, input_grad=i != first or self.needs_input_grad)
        for i in range(first - 1, -1, -1):
            mods[i]._discard()
        return g


class Residual(Module):
    """y = block(x) + shortcut(x), the shortcut being the identity when None.

    Backward sends grad_out through both branches and returns the sum of the
    two input gradients. The block's output must have the shortcut's shape
    (pass e.g. a Linear or 1x1 convolution as shortcut when it changes)."""

    def __init__(self, block, shortcut=None):
        super().__init__()
        self.block = _require_module("Residual", "block", block)
        self.shortcut = (None if shortcut is None
                         else _require_module("Residual", "shortcut", shortcut))

    def forward(self, x):
        a = self.block(x)
        s = x if self.shortcut is None else self.shortcut(x)
        a_shape, s_shape = np.shape(a), np.shape(s)
        if a_shape != s_shape:
            what = "x" if self.shortcut is None else "the shortcut's output"
            raise ValueError(f"Residual: the block's output has shape {a_shape} but {what} has "
                             f"shape {s_shape}; they must match (pass a shortcut= module that "
                             f"maps x to the block's output shape)")
        return np.add(a, s, dtype=np.float32)

    def backward(self, grad_out):
        grad_out = as_f32(grad_out, "Residual", "grad_out")
        need = self.needs_input_grad
        gs = grad_out if self.shortcut is None else self.shortcut.backward(grad_out,
                                                                            input_grad=need)
        gb = self.block.backward(grad_out, input_grad=need)
        if not need:
            return None
        if np.shape(gb) != np.shape(gs):
            raise ValueError(f"Residual: the block's input gradient has shape {np.shape(gb)} "
                             f"but the shortcut's has {np.shape(gs)}")
        return np.add(gb, gs, dtype=np.float32)


class Concat(Module):
    """y = concatenate([branch(x) for branch in branches], axis=dim): the
    branches see the same input and their outputs are joined along the
    channel dimension (``dim=1``), as in a DenseNet block
    ``Concat(Identity(), Sequential(BatchNorm2d(c), ReLU(), Conv2d(c, k, 3, padding=1)))``.
    The outputs must agree in every other dimension.

    Backward splits grad_out along ``dim``, sends each slice through its
    branch (last branch first) and returns the sum of the branches' input
    gradients. Children are named '0', '1', ... like Sequential's."""

    def __init__(self, *branches, dim=1):
        super().__init__()
        if not branches:
            raise ValueError("Concat: needs at least one branch")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"Concat: dim must be an integer, got {dim!r}")
        self.dim = int(dim)
        for i, m in enumerate(branches):
            self.add_module(str(i), _require_module("Concat", f"branch {i}", m))

    def _axis(self, ndim):
        d = self.dim + ndim if self.dim < 0 else self.dim
        if not 1 <= d < ndim:
            raise ValueError(f"Concat: dim={self.dim} is not a non-batch dimension of the "
                             f"branches' {ndim}-D outputs")
        return d

    def forward(self, x):
        outs = [as_f32(m(x), "Concat", f"the output of branch {i}")
                for i, m in enumerate(self._modules.values())]
        shapes = [o.shape for o in outs]
        d = self._axis(outs[0].ndim)
        ref = shapes[0][:d] + shapes[0][d + 1:]
        for i, sh in enumerate(shapes):
            if len(sh) != len(shapes[0]) or sh[:d] + sh[d + 1:] != ref:
                raise ValueError(f"Concat: branch {i} returned shape {sh}, which cannot be "
                                 f"joined along dim={self.dim} with branch 0's {shapes[0]}")
        self.save_for_backward(shapes, d)
        return np.concatenate(outs, axis=d)

    def backward(self, grad_out):
        shapes, d = self.saved_tensors()
        out_shape = shapes[0][:d] + (sum(s[d] for s in shapes),) + shapes[0][d + 1:]
        grad_out = as_f32(grad_out, "Concat", "grad_out")
        if grad_out.shape != out_shape:
            raise ValueError(f"Concat: grad_out has shape {grad_out.shape}, expected {out_shape} "
                             f"(the shape of the forward output)")
        need = self.needs_input_grad
        bounds = np.cumsum([0] + [s[d] for s in shapes])
        mods = list(self._modules.values())
        total = None
        for i in range(len(mods) - 1, -1, -1):
            part = [slice(None)] * grad_out.ndim
            part[d] = slice(int(bounds[i]), int(bounds[i + 1]))
            g = np.ascontiguousarray(grad_out[tuple(part)])
            gi = mods[i].backward(g, input_grad=need)
            if need:
                if total is not None and np.shape(gi) != np.shape(total):
                    raise ValueError(f"Concat: branch {i}'s input gradient has shape "
                                     f"{np.shape(gi)} but branch {i + 1}'s has "
                                     f"{np.shape(total)}")
                total = (np.asarray(gi, dtype=np.float32) if total is None
                         else np.add(total, gi, dtype=np.float32))
        return total if need else None

    def extra_repr(self):
        return f"dim={self.dim}"
