"""Per-sample random data augmentation for image batches, in C.

Every transform is a callable object: ``y = transform(x)`` with ``x`` a
float32 batch of shape (N, C, H, W), (N, H, W) (single channel) or flat
(N, C*H*W) together with ``image_shape=(C, H, W)`` given to the transform.
The output is a new array in the input's layout (flat in, flat out); the
input is never modified. Each sample gets its own random parameters.

Randomness. Each call draws one 64-bit key: from ``fastnn.runtime.next_seed()``
when the transform's ``seed`` is None (so ``fastnn.manual_seed`` governs it),
else from ``(seed, number of calls so far)``. Sample i's parameters are words
of Philox4x32-10 keyed by that key at counter i (csrc/augment.c), so they do
not depend on the thread count: outputs are bitwise identical on 1 or many
threads. Calling twice gives new draws; the same seed and call count give the
same output. ``transform.last_params`` holds the parameters of the last call
(one array per parameter, one entry per sample) and ``transform.last_seed``
its key.
"""

import numpy as np

from .._check import INT_MAX as _INT_MAX, as_f32, int_in, real as _real
from .._ext import _C
from .. import runtime

__all__ = ["RandomTranslate", "RandomCrop", "RandomHorizontalFlip", "RandomAffine",
           "ColorJitter", "GaussianNoise", "Compose"]

_M32 = 0xFFFFFFFF
_CALL_TAG = 0x41554731          # third counter word of the per-call key derivation


# ------------------------------------------------------------ validation --

def _int(who, name, v, lo, hi=_INT_MAX // 4):
    return int_in(who, name, v, lo, hi)


def _pair(who, name, v):
    """A (lo, hi) pair of reals with lo <= hi."""
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise TypeError(f"{who}: {name} must be a number or a (min, max) pair, got {v!r}")
    lo, hi = _real(who, f"{name}[0]", v[0]), _real(who, f"{name}[1]", v[1])
    if lo > hi:
        raise ValueError(f"{who}: {name} must have min <= max, got {v!r}")
    return lo, hi


def _check_seed(who, seed):
    if seed is None:
        return None
    return _int(who, "seed", seed, 0, 2**64 - 1)


def _check_image_shape(who, image_shape):
    if image_shape is None:
        return None
    if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 3:
        raise ValueError(f"{who}: image_shape must be a (C, H, W) tuple, got {image_shape!r}")
    return tuple(_int(who, f"image_shape[{k}]", d, 1, _INT_MAX) for k, d in enumerate(image_shape))


def _as_images(who, x, image_shape):
    """x as a C-contiguous (N, C, H, W) float32 array and a function that
    puts an (N, C, Ho, Wo) result back into x's layout."""
    x = as_f32(x, who, "x")
    if x.ndim == 4:
        if image_shape is not None and x.shape[1:] != image_shape:
            raise ValueError(f"{who}: x has images of shape {x.shape[1:]}, "
                             f"but image_shape is {image_shape}")
        x4, back = x, (lambda y: y)
    elif x.ndim == 3:
        if image_shape is not None and (1,) + x.shape[1:] != image_shape:
            raise ValueError(f"{who}: x (N, H, W) = {x.shape} holds single-channel images "
                             f"of shape {(1,) + x.shape[1:]}, but image_shape is {image_shape}")
        x4, back = x[:, None], (lambda y: y[:, 0])
    elif x.ndim == 2 and image_shape is not None:
        d = image_shape[0] * image_shape[1] * image_shape[2]
        if x.shape[1] != d:
            raise ValueError(f"{who}: image_shape {image_shape} needs {d} features per sample, "
                             f"x has shape {x.shape}")
        x4, back = x.reshape((x.shape[0],) + image_shape), (lambda y: y.reshape(y.shape[0], -1))
    elif x.ndim == 2:
        raise ValueError(f"{who}: x of shape {x.shape} is flat; give the transform "
                         f"image_shape=(C, H, W) to treat its rows as images")
    else:
        raise ValueError(f"{who}: x must be (N, C, H, W), (N, H, W) or (N, C*H*W) with "
                         f"image_shape, got shape {x.shape}")
    if min(x4.shape[1:]) < 1:
        raise ValueError(f"{who}: images must have C, H, W >= 1, got x of shape {x.shape}")
    return np.ascontiguousarray(x4), back


# ------------------------------------------------------------- transforms --

class Transform:
    """Base of the random transforms: seeding, call counting, ``last_params``."""

    def __init__(self, seed=None, image_shape=None):
        who = type(self).__name__
        self.seed = _check_seed(who, seed)
        self.image_shape = _check_image_shape(who, image_shape)
        self.calls = 0
        self.last_seed = None
        self.last_params = None

    def _key(self):
        """The 64-bit key of this call."""
        k = self.calls
        self.calls += 1
        if self.seed is None:
            key = runtime.next_seed()
        else:
            s = self.seed
            w = _C.philox4x32_10((k & _M32, k >> 32, _CALL_TAG, 0), (s & _M32, s >> 32))
            key = w[0] | (w[1] << 32)
        self.last_seed = key
        return key

    def __call__(self, x):
        raise NotImplementedError

    def _args(self):
        return ""

    def __repr__(self):
        extra = [a for a in (self._args(),
                             "" if self.seed is None else f"seed={self.seed}",
                             "" if self.image_shape is None else f"image_shape={self.image_shape}")
                 if a]
        return f"{type(self).__name__}({', '.join(extra)})"


class _Shift(Transform):
    """Shared by RandomTranslate and RandomCrop: one C kernel that copies
    each sample at a random integer offset, filling outside the image."""

    def _shift(self, x4, back, out_hw, oy_lo, oy_n, ox_lo, ox_n):
        n, c = x4.shape[:2]
        y = np.empty((n, c) + out_hw, dtype=np.float32)
        offsets = np.empty((n, 2), dtype=np.int32)
        key = self._key()
        if n:
            _C.aug_shift(key, x4, y, oy_lo, oy_n, ox_lo, ox_n, self.fill, offsets)
        return back(y), offsets


class RandomTranslate(_Shift):
    """Shift each image by whole pixels: dx uniform in [-max_dx, max_dx]
    (positive = right), dy in [-max_dy, max_dy] (positive = down); pixels
    shifted in are ``fill``. ``max_dy`` defaults to ``max_dx``.
    ``last_params``: {'dx', 'dy'} int32 arrays."""

    def __init__(self, max_dx, max_dy=None, fill=0.0, *, seed=None, image_shape=None):
        super().__init__(seed, image_shape)
        who = "RandomTranslate"
        self.max_dx = _int(who, "max_dx", max_dx, 0)
        self.max_dy = self.max_dx if max_dy is None else _int(who, "max_dy", max_dy, 0)
        self.fill = _real(who, "fill", fill)

    def __call__(self, x):
        x4, back = _as_images("RandomTranslate", x, self.image_shape)
        my, mx = self.max_dy, self.max_dx
        # the kernel reads x[r + oy, k + ox]: content moves by (-oy, -ox)
        y, off = self._shift(x4, back, x4.shape[2:], -my, 2 * my + 1, -mx, 2 * mx + 1)
        self.last_params = {"dx": -off[:, 1], "dy": -off[:, 0]}
        return y

    def _args(self):
        return f"max_dx={self.max_dx}, max_dy={self.max_dy}, fill={self.fill}"


def _padding4(who, padding):
    """torchvision's padding forms -> (left, top, right, bottom)."""
    if isinstance(padding, (tuple, list)):
        if len(padding) == 2:
            lr, tb = (_int(who, f"padding[{k}]", p, 0) for k, p in enumerate(padding))
            return lr, tb, lr, tb
        if len(padding) == 4:
            return tuple(_int(who, f"padding[{k}]", p, 0) for k, p in enumerate(padding))
        raise ValueError(f"{who}: padding must be an int, (left/right, top/bottom) or "
                         f"(left, top, right, bottom), got {padding!r}")
    p = _int(who, "padding", 0 if padding is None else padding, 0)
    return p, p, p, p


class RandomCrop(_Shift):
    """Pad each image by ``padding`` (torchvision forms: int, (left/right,
    top/bottom) or (left, top, right, bottom)) with ``fill``, then cut a
    ``size`` = (h, w) (or int for square) window at a random offset, uniform
    over all positions that fit. Output images are (C, h, w).
    ``last_params``: {'top', 'left'} int32 window corners in padded
    coordinates (torchvision's i, j)."""

    def __init__(self, size, padding=0, *, fill=0.0, seed=None, image_shape=None):
        super().__init__(seed, image_shape)
        who = "RandomCrop"
        if isinstance(size, (tuple, list)):
            if len(size) != 2:
                raise ValueError(f"{who}: size must be an int or an (h, w) pair, got {size!r}")
            self.size = tuple(_int(who, f"size[{k}]", s, 1) for k, s in enumerate(size))
        else:
            s = _int(who, "size", size, 1)
            self.size = (s, s)
        self.padding = _padding4(who, padding)
        self.fill = _real(who, "fill", fill)

    def __call__(self, x):
        x4, back = _as_images("RandomCrop", x, self.image_shape)
        h, w = self.size
        left, top, right, bottom = self.padding
        hp, wp = x4.shape[2] + top + bottom, x4.shape[3] + left + right
        if hp < h or wp < w:
            raise ValueError(f"RandomCrop: size {self.size} is larger than the padded image "
                             f"({hp}, {wp}) (image {x4.shape[2:]}, padding {self.padding})")
        y, off = self._shift(x4, back, (h, w), -top, hp - h + 1, -left, wp - w + 1)
        self.last_params = {"top": off[:, 0] + np.int32(top), "left": off[:, 1] + np.int32(left)}
        return y

    def _args(self):
        return f"size={self.size}, padding={self.padding}, fill={self.fill}"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``.
    ``last_params``: {'flipped'} bool array."""

    def __init__(self, p=0.5, *, seed=None, image_shape=None):
        super().__init__(seed, image_shape)
        p = _real("RandomHorizontalFlip", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, x):
        x4, back = _as_images("RandomHorizontalFlip", x, self.image_shape)
        y = np.empty_like(x4)
        flipped = np.empty(x4.shape[0], dtype=np.uint8)
        key = self._key()
        if x4.shape[0]:
            _C.aug_hflip(key, x4, y, self.p, flipped)
        self.last_params = {"flipped": flipped.view(np.bool_)}
        return back(y)

    def _args(self):
        return f"p={self.p}"


class RandomAffine(Transform):
    """Random rotation, scaling and translation about the image centre, in
    one bilinear pass per sample.

    ``degrees``: angle uniform in (-degrees, degrees), or in (min, max) for a
    pair; positive is counter-clockwise on screen. ``translate``: (a, b)
    fractions in [0, 1]: horizontal shift round(U(-a W, a W)) pixels,
    vertical round(U(-b H, b H)) (round half to even, as torchvision).
    ``scale``: (lo, hi), factor uniform in [lo, hi), lo > 0. ``fill``: value
    of samples outside the image (bilinear taps outside read ``fill``).
    Arguments after ``scale`` are keyword-only (torchvision's fourth is
    ``shear``). ``last_params``: {'angle', 'scale', 'tx', 'ty'} float64.
    With angle 0 and scale 1 a sample is copied exactly (shifted by whole
    pixels if translated)."""

    def __init__(self, degrees=0, translate=None, scale=None, *, fill=0.0, seed=None,
                 image_shape=None):
        super().__init__(seed, image_shape)
        who = "RandomAffine"
        if isinstance(degrees, (tuple, list)):
            self.degrees = _pair(who, "degrees", degrees)
        else:
            d = _real(who, "degrees", degrees)
            if d < 0:
                raise ValueError(f"{who}: degrees must be >= 0 (or a (min, max) pair), got {d}")
            self.degrees = (-d, d)
        if translate is None:
            self.translate = None
        else:
            if not isinstance(translate, (tuple, list)) or len(translate) != 2:
                raise TypeError(f"{who}: translate must be an (a, b) pair of fractions, "
                                f"got {translate!r}")
            a, b = (_real(who, f"translate[{k}]", t) for k, t in enumerate(translate))
            if not (0.0 <= a <= 1.0 and 0.0 <= b <= 1.0):
                raise ValueError(f"{who}: translate fractions must be in [0, 1], got {translate!r}")
            self.translate = (a, b)
        if scale is None:
            self.scale = None
        else:
            lo, hi = _pair(who, "scale", scale)
            if lo <= 0:
                raise ValueError(f"{who}: scale must be positive, got {scale!r}")
            self.scale = (lo, hi)
        self.fill = _real(who, "fill", fill)

    def __call__(self, x):
        x4, back = _as_images("RandomAffine", x, self.image_shape)
        n, _, h, w = x4.shape
        if (h + 4) * (w + 4) > _INT_MAX:
            raise ValueError(f"RandomAffine: images of {h}x{w} pixels are too large")
        s_lo, s_hi = self.scale if self.scale is not None else (1.0, 1.0)
        a, b = self.translate if self.translate is not None else (0.0, 0.0)
        y = np.empty_like(x4)
        params = np.empty((n, 4), dtype=np.float64)
        key = self._key()
        if n:
            _C.aug_affine(key, x4, y, self.degrees[0], self.degrees[1], s_lo, s_hi,
                          a * w, b * h, self.fill, params)
        self.last_params = {"angle": params[:, 0], "scale": params[:, 1],
                            "tx": params[:, 2], "ty": params[:, 3]}
        return back(y)

    def _args(self):
        return (f"degrees={self.degrees}, translate={self.translate}, scale={self.scale}, "
                f"fill={self.fill}")


def _factor_range(who, name, v):
    """torchvision's jitter forms: b >= 0 -> (max(0, 1 - b), 1 + b); or a
    (min, max) pair with 0 <= min <= max."""
    if isinstance(v, (tuple, list)):
        lo, hi = _pair(who, name, v)
        if lo < 0:
            raise ValueError(f"{who}: {name} factors must be >= 0, got {v!r}")
        return lo, hi
    b = _real(who, name, v)
    if b < 0:
        raise ValueError(f"{who}: {name} must be >= 0, got {b}")
    return max(0.0, 1.0 - b), 1.0 + b


class ColorJitter(Transform):
    """Per-image brightness and contrast: x -> b x with b uniform in
    [max(0, 1 - brightness), 1 + brightness), then blended with the image's
    mean (over all its channels and pixels) by a factor k uniform in
    [max(0, 1 - contrast), 1 + contrast): k v + (1 - k) mean(v). Either
    argument may also be a (min, max) factor range. Then, if given, the
    result is clamped to [clip_min, clip_max]. Works on any (N, ...) batch.
    ``last_params``: {'brightness', 'contrast'} float64 factors."""

    def __init__(self, brightness=0, contrast=0, *, clip_min=None, clip_max=None, seed=None):
        super().__init__(seed, None)
        who = "ColorJitter"
        self.brightness = _factor_range(who, "brightness", brightness)
        self.contrast = _factor_range(who, "contrast", contrast)
        self.clip_min = None if clip_min is None else _real(who, "clip_min", clip_min)
        self.clip_max = None if clip_max is None else _real(who, "clip_max", clip_max)
        if self.clip_min is not None and self.clip_max is not None and self.clip_min > self.clip_max:
            raise ValueError(f"{who}: clip_min must be <= clip_max, got {clip_min} > {clip_max}")

    def __call__(self, x):
        x = as_f32(x, "ColorJitter", "x")
        if x.ndim < 2:
            raise ValueError(f"ColorJitter: x must be a batch (N, ...) of images, got shape {x.shape}")
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        n = x.shape[0]
        params = np.empty((n, 2), dtype=np.float64)
        key = self._key()
        lo = -np.inf if self.clip_min is None else self.clip_min
        hi = np.inf if self.clip_max is None else self.clip_max
        clamp = self.clip_min is not None or self.clip_max is not None
        if x.size:
            _C.aug_color(key, x, y, self.brightness[0], self.brightness[1], self.contrast[0],
                         self.contrast[1], clamp, lo, hi, params)
        else:
            params[:] = np.nan
        self.last_params = {"brightness": params[:, 0], "contrast": params[:, 1]}
        return y

    def _args(self):
        s = f"brightness={self.brightness}, contrast={self.contrast}"
        if self.clip_min is not None or self.clip_max is not None:
            s += f", clip_min={self.clip_min}, clip_max={self.clip_max}"
        return s


class GaussianNoise(Transform):
    """Add N(0, std^2) noise to every element, independently (rng.c's normal
    stream at offset 0 keyed by the call's key: element j of the flattened
    batch gets normal value j). Works on any (N, ...) batch. ``last_params``
    is empty; ``last_seed`` regenerates the noise."""

    def __init__(self, std, *, seed=None):
        super().__init__(seed, None)
        std = _real("GaussianNoise", "std", std)
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = std

    def __call__(self, x):
        x = as_f32(x, "GaussianNoise", "x")
        if x.ndim < 1:
            raise ValueError("GaussianNoise: x must be a batch (N, ...), got a scalar")
        x = np.ascontiguousarray(x)
        y = np.empty_like(x)
        key = self._key()
        if x.size:
            _C.gaussian_noise_forward(key, x, y, self.std)
        self.last_params = {}
        return y

    def _args(self):
        return f"std={self.std}"


class Compose:
    """Apply ``transforms`` in order. With ``image_shape=(C, H, W)`` a flat
    (N, C*H*W) batch is viewed as images for the whole chain and the result
    flattened back to (N, -1) (its size may change, e.g. after a crop)."""

    def __init__(self, transforms, image_shape=None):
        if isinstance(transforms, (str, bytes)) or not hasattr(transforms, "__iter__"):
            raise TypeError(f"Compose: transforms must be a list of callables, got "
                            f"{type(transforms).__name__}")
        self.transforms = list(transforms)
        for k, t in enumerate(self.transforms):
            if not callable(t):
                raise TypeError(f"Compose: transforms[{k}] is not callable: {t!r}")
        self.image_shape = _check_image_shape("Compose", image_shape)

    def __call__(self, x):
        if self.image_shape is not None:
            x4, back = _as_images("Compose", x, self.image_shape)
            y = x4
            for t in self.transforms:
                y = t(y)
            return back(y)
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self):
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        shape = "" if self.image_shape is None else f", image_shape={self.image_shape}"
        return f"Compose([{inner}\n]{shape})"
