"""fastnn.data.augment: every transform against a float64 numpy reference
that uses the same per-sample parameters (``last_params``), the documented
derivation of those parameters from Philox words keyed by (call key, sample,
slot), exact identities (identity warps, rot90, double flips), coverage of
the random ranges, seeding and thread-count independence, argument errors,
and the DataLoader's ``transform``."""
import numpy as np
import pytest

import fastnn
from fastnn._ext import _C
from fastnn.data import DataLoader
from fastnn.data import augment as A

M32 = 0xFFFFFFFF
TWO32 = 4294967296.0


# ------------------------------------------------------------------ helpers --

def images(rng, shape):
    return rng.random(shape, dtype=np.float32)


def words(key, n):
    """Slot words of samples 0..n-1: Philox4x32-10(ctr=(i, i>>32, 0, 0), key)."""
    out = np.empty((n, 4), dtype=np.uint64)
    for i in range(n):
        out[i] = _C.philox4x32_10((i & M32, i >> 32, 0, 0), (key & M32, key >> 32))
    return out


def randint(w, n):
    return ((w.astype(np.uint64) * np.uint64(n)) >> np.uint64(32)).astype(np.int64)


def unit(w):
    return w.astype(np.float64) / TWO32


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def shift_ref(x, oy, ox, out_hw, fill):
    """out[i, :, r, k] = x[i, :, r + oy[i], k + ox[i]] or fill, in float64."""
    n, c, h, w = x.shape
    ho, wo = out_hw
    out = np.full((n, c, ho, wo), fill, dtype=np.float64)
    for i in range(n):
        for r in range(ho):
            sr = r + oy[i]
            if not 0 <= sr < h:
                continue
            for k in range(wo):
                sk = k + ox[i]
                if 0 <= sk < w:
                    out[i, :, r, k] = x[i, :, sr, sk]
    return out


def affine_ref(x, p, fill):
    """Inverse-mapped bilinear warp about ((W-1)/2, (H-1)/2) in float64; taps
    outside the image read fill."""
    n, c, h, w = x.shape
    xd = x.astype(np.float64)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    yo, xo = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty(x.shape, dtype=np.float64)
    for i in range(n):
        a = np.deg2rad(p["angle"][i])
        s, tx, ty = p["scale"][i], p["tx"][i], p["ty"][i]
        u, v = xo - cx - tx, yo - cy - ty
        xs = (np.cos(a) * u - np.sin(a) * v) / s + cx
        ys = (np.sin(a) * u + np.cos(a) * v) / s + cy
        x0, y0 = np.floor(xs), np.floor(ys)
        fx, fy = xs - x0, ys - y0
        x0, y0 = x0.astype(np.int64), y0.astype(np.int64)

        def tap(yy, xx):
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            vals = xd[i][:, np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)]
            return np.where(inside, vals, fill)

        top = (1 - fx) * tap(y0, x0) + fx * tap(y0, x0 + 1)
        bot = (1 - fx) * tap(y0 + 1, x0) + fx * tap(y0 + 1, x0 + 1)
        out[i] = (1 - fy) * top + fy * bot
    return out


def color_ref(x, b, k, lo=None, hi=None):
    x = x.astype(np.float64)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        v = b[i] * x[i]
        out[i] = k[i] * v + (1 - k[i]) * v.mean()
    if lo is not None or hi is not None:
        out = np.clip(out, lo, hi)
    return out


def with_threads(n, f):
    saved = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        return f()
    finally:
        fastnn.set_num_threads(saved)


# ----------------------------------------------- transforms vs references --

@pytest.mark.parametrize("shape", [(6, 3, 9, 13), (5, 1, 8, 8)])
@pytest.mark.parametrize("mdx,mdy,fill", [(3, 2, 0.0), (0, 4, -1.5), (20, 20, 0.25)])
def test_translate_matches_reference(rng, shape, mdx, mdy, fill):
    x = images(rng, shape)
    t = A.RandomTranslate(mdx, mdy, fill, seed=11)
    y = t(x)
    dx, dy = t.last_params["dx"], t.last_params["dy"]
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(np.abs(dx) <= mdx) and np.all(np.abs(dy) <= mdy)
    np.testing.assert_array_equal(y, shift_ref(x, -dy, -dx, shape[2:], fill))


@pytest.mark.parametrize("size,padding", [(8, 2), ((5, 7), 0), ((9, 12), (1, 3)),
                                          (10, (2, 0, 1, 4)), ((14, 4), (1, 2))])
def test_crop_matches_padded_reference(rng, size, padding):
    x = images(rng, (7, 2, 10, 11))
    t = A.RandomCrop(size, padding, fill=-2.0, seed=5)
    y = t(x)
    h, w = (size, size) if isinstance(size, int) else size
    left, top, right, bottom = t.padding
    top_i, left_i = t.last_params["top"], t.last_params["left"]
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)),
                    constant_values=-2.0)
    assert y.shape == (7, 2, h, w)
    assert np.all(top_i >= 0) and np.all(top_i <= padded.shape[2] - h)
    assert np.all(left_i >= 0) and np.all(left_i <= padded.shape[3] - w)
    for i in range(7):
        np.testing.assert_array_equal(
            y[i], padded[i, :, top_i[i]:top_i[i] + h, left_i[i]:left_i[i] + w])


def test_flip_matches_reference_and_twice_is_identity(rng):
    x = images(rng, (40, 3, 6, 7))
    t = A.RandomHorizontalFlip(0.5, seed=3)
    y = t(x)
    f = t.last_params["flipped"]
    assert f.dtype == np.bool_ and 0 < f.sum() < 40
    np.testing.assert_array_equal(y, np.where(f[:, None, None, None], x[..., ::-1], x))
    # the same seed and call count draws the same samples: flipping back restores x
    z = A.RandomHorizontalFlip(0.5, seed=3)(y)
    np.testing.assert_array_equal(bits(z), bits(x))
    always = A.RandomHorizontalFlip(1.0)
    np.testing.assert_array_equal(always(always(x)), x)
    assert always.last_params["flipped"].all()
    never = A.RandomHorizontalFlip(0.0)
    np.testing.assert_array_equal(never(x), x)
    assert not never.last_params["flipped"].any()


@pytest.mark.parametrize("shape", [(5, 3, 12, 17), (4, 1, 28, 28), (3, 2, 7, 6)])
@pytest.mark.parametrize("degrees,translate,scale,fill", [
    (30, None, None, 0.0),
    (180, (0.2, 0.1), (0.7, 1.3), 0.5),
    ((10, 80), (0.5, 0.5), (1.5, 2.5), -1.0),
    (0, None, (0.4, 0.6), 0.0),
])
def test_affine_matches_reference(rng, shape, degrees, translate, scale, fill):
    x = images(rng, shape)
    t = A.RandomAffine(degrees, translate, scale, fill=fill, seed=7)
    y = t(x)
    np.testing.assert_allclose(y, affine_ref(x, t.last_params, fill), rtol=0, atol=2e-5)


def test_affine_identity_is_bitwise(rng):
    x = images(rng, (6, 2, 9, 10))
    x[0, 0, 0, :5] = [np.nan, -0.0, np.inf, 1e-40, -np.inf]   # NaN, -0, inf, denormal
    for t in (A.RandomAffine(), A.RandomAffine(0, scale=(1, 1)),
              A.RandomAffine(degrees=(360, 360)), A.RandomAffine((0, 0), (0, 0), (1, 1))):
        y = t(x)
        np.testing.assert_array_equal(bits(y), bits(x))
        assert y is not x


def test_affine_integer_translation_is_exact_shift(rng):
    x = images(rng, (30, 2, 8, 9))
    t = A.RandomAffine(0, translate=(0.5, 0.5), fill=3.0, seed=1)
    y = t(x)
    p = t.last_params
    assert np.all(p["tx"] == np.round(p["tx"])) and np.abs(p["tx"]).max() >= 3
    ref = shift_ref(x, -p["ty"].astype(int), -p["tx"].astype(int), (8, 9), 3.0)
    np.testing.assert_array_equal(y, ref)


@pytest.mark.parametrize("n", [8, 9])
@pytest.mark.parametrize("deg,k", [(90, 1), (-90, -1), (180, 2), (270, 3), (-270, 1), (450, 1)])
def test_affine_right_angles_equal_rot90(rng, n, deg, k):
    x = images(rng, (3, 2, n, n))
    y = A.RandomAffine(degrees=(deg, deg))(x)
    # positive angles turn counter-clockwise on screen, as np.rot90
    np.testing.assert_array_equal(y, np.rot90(x, k, axes=(2, 3)))


def test_affine_out_of_image_is_fill(rng):
    x = images(rng, (4, 1, 6, 6))
    y = A.RandomAffine(scale=(0.05, 0.05), fill=7.0)(x)     # shrunk to a point
    assert np.all(y[:, :, 0, :] == 7.0) and np.all(y[:, :, :, -1] == 7.0)
    far = A.RandomAffine(translate=(1, 1), seed=2)
    x = images(rng, (60, 1, 6, 6))
    y = far(x)
    gone = (np.abs(far.last_params["tx"]) >= 6) | (np.abs(far.last_params["ty"]) >= 6)
    assert gone.any()
    assert np.all(y[gone] == 0.0)


@pytest.mark.parametrize("brightness,contrast,clip", [
    (0.4, 0.0, None), (0.0, 0.8, None), (0.5, 0.5, None), ((0.2, 3.0), (0.0, 2.0), (0.0, 1.0)),
    (2.0, 0.3, (None, 0.9)),
])
def test_color_jitter_matches_reference(rng, brightness, contrast, clip):
    x = images(rng, (9, 3, 5, 6)) * 2 - 0.5
    lo, hi = clip if clip is not None else (None, None)
    t = A.ColorJitter(brightness, contrast, clip_min=lo, clip_max=hi, seed=9)
    y = t(x)
    b, k = t.last_params["brightness"], t.last_params["contrast"]
    np.testing.assert_allclose(y, color_ref(x, b, k, lo, hi), rtol=2e-6, atol=2e-6)
    if lo is not None:
        assert y.min() >= lo
    if hi is not None:
        assert y.max() <= hi


def test_color_jitter_identity_and_nan(rng):
    x = images(rng, (5, 2, 3, 3))
    x[0, 0, 0, :3] = [np.nan, -0.0, 1e-40]
    np.testing.assert_array_equal(bits(A.ColorJitter()(x)), bits(x))
    y = A.ColorJitter(0.5, clip_min=0.0, clip_max=0.5)(x)
    assert np.isnan(y[0, 0, 0, 0]) and np.all(y[1:] <= 0.5)


def test_color_jitter_takes_any_batch_shape(rng):
    x = images(rng, (6, 50))
    t = A.ColorJitter(0.3, 0.3, seed=4)
    y = t(x)
    np.testing.assert_allclose(y, color_ref(x, t.last_params["brightness"],
                                            t.last_params["contrast"]), rtol=2e-6, atol=2e-6)


def test_gaussian_noise_is_the_normal_stream(rng):
    x = images(rng, (16, 3, 10, 10))
    t = A.GaussianNoise(0.3, seed=2)
    y = t(x)
    z = np.empty(x.size, dtype=np.float32)
    _C.rng_normal(t.last_seed, 0, z)
    np.testing.assert_array_equal(y, x + np.float32(0.3) * z.reshape(x.shape))
    d = (y - x).astype(np.float64)
    assert abs(d.mean()) < 0.02 and abs(d.std() - 0.3) < 0.02
    np.testing.assert_array_equal(A.GaussianNoise(0.0)(x), x)


# ---------------------------------------- parameters: derivation, ranges --

def test_parameters_come_from_philox_by_sample_and_slot(rng):
    """The documented mapping from Philox words (key = the call's key, counter
    = sample index, word = slot) to each transform's parameters."""
    n = 50
    x = images(rng, (n, 1, 12, 14))

    t = A.RandomTranslate(3, 5, seed=1)
    t(x)
    w = words(t.last_seed, n)
    np.testing.assert_array_equal(t.last_params["dy"], -(-5 + randint(w[:, 0], 11)))
    np.testing.assert_array_equal(t.last_params["dx"], -(-3 + randint(w[:, 1], 7)))

    t = A.RandomCrop((9, 10), padding=(1, 2), seed=1)
    t(x)
    w = words(t.last_seed, n)
    np.testing.assert_array_equal(t.last_params["top"], randint(w[:, 0], 12 + 4 - 9 + 1))
    np.testing.assert_array_equal(t.last_params["left"], randint(w[:, 1], 14 + 2 - 10 + 1))

    t = A.RandomHorizontalFlip(0.3, seed=1)
    t(x)
    np.testing.assert_array_equal(t.last_params["flipped"], unit(words(t.last_seed, n)[:, 0]) < 0.3)

    t = A.RandomAffine((-20, 40), (0.25, 0.5), (0.5, 2.0), seed=1)
    t(x)
    u = unit(words(t.last_seed, n))
    p = t.last_params
    np.testing.assert_array_equal(p["angle"], -20 + 60 * u[:, 0])
    np.testing.assert_array_equal(p["scale"], 0.5 + 1.5 * u[:, 1])
    np.testing.assert_array_equal(p["tx"], np.round(0.25 * 14 * (2 * u[:, 2] - 1)))
    np.testing.assert_array_equal(p["ty"], np.round(0.5 * 12 * (2 * u[:, 3] - 1)))

    t = A.ColorJitter(0.5, (0.2, 0.9), seed=1)
    t(x)
    u = unit(words(t.last_seed, n))
    np.testing.assert_array_equal(t.last_params["brightness"], 0.5 + 1.0 * u[:, 0])
    np.testing.assert_array_equal(t.last_params["contrast"], 0.2 + 0.7 * u[:, 1])


def test_translation_and_crop_offsets_cover_the_range():
    x = np.zeros((4000, 1, 4, 4), dtype=np.float32)
    t = A.RandomTranslate(3, 1, seed=0)
    t(x)
    dx, dy = t.last_params["dx"], t.last_params["dy"]
    cx = np.bincount(dx + 3, minlength=7)
    cy = np.bincount(dy + 1, minlength=3)
    assert len(cx) == 7 and len(cy) == 3
    # every value, roughly uniformly (expected 571 and 1333 per value)
    assert cx.min() > 480 and cx.max() < 660
    assert cy.min() > 1200 and cy.max() < 1470
    c = A.RandomCrop(3, padding=1, seed=0)
    c(x)
    assert set(c.last_params["top"]) == set(range(4)) == set(c.last_params["left"])


def test_affine_parameters_cover_their_ranges():
    x = np.zeros((3000, 1, 2, 2), dtype=np.float32)
    t = A.RandomAffine(45, (0.5, 1.0), (0.8, 1.2), seed=0)
    t(x)
    p = t.last_params
    assert -45 <= p["angle"].min() < -44 and 44 < p["angle"].max() < 45
    assert abs(p["angle"].mean()) < 2.0
    assert 0.8 <= p["scale"].min() < 0.81 and 1.19 < p["scale"].max() < 1.2
    assert set(p["tx"]) == {-1.0, 0.0, 1.0} and set(p["ty"]) == {-2.0, -1.0, 0.0, 1.0, 2.0}


# ----------------------------------------------- layouts and new outputs --

ALL = [lambda s, shape=None: A.RandomTranslate(2, 3, 0.5, seed=s, image_shape=shape),
       lambda s, shape=None: A.RandomCrop(5, 2, seed=s, image_shape=shape),
       lambda s, shape=None: A.RandomHorizontalFlip(seed=s, image_shape=shape),
       lambda s, shape=None: A.RandomAffine(25, (0.1, 0.2), (0.8, 1.1), fill=0.1, seed=s,
                                            image_shape=shape),
       lambda s, shape=None: A.ColorJitter(0.4, 0.4, seed=s),      # any (N, ...) batch
       lambda s, shape=None: A.GaussianNoise(0.2, seed=s)]
IDS = ["translate", "crop", "flip", "affine", "jitter", "noise"]


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_layouts_agree_and_input_untouched(rng, make):
    x4 = images(rng, (6, 1, 7, 8))
    keep = x4.copy()
    y4 = make(21)(x4)
    np.testing.assert_array_equal(x4, keep)
    assert not np.shares_memory(y4, x4)
    np.testing.assert_array_equal(make(21)(x4[:, 0]), y4[:, 0])
    yf = make(21, (1, 7, 8))(x4.reshape(6, -1))
    np.testing.assert_array_equal(yf, y4.reshape(6, -1))
    # strided input (every other sample) is read correctly
    big = images(rng, (12, 1, 7, 8))
    np.testing.assert_array_equal(make(3)(big[::2]), make(3)(np.ascontiguousarray(big[::2])))


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_empty_batch(make):
    y = make(0)(np.zeros((0, 1, 7, 8), dtype=np.float32))
    assert y.shape[0] == 0


def test_flat_mlp_batches_with_image_shape(rng):
    x = images(rng, (10, 784))
    t = A.RandomAffine(15, (0.1, 0.1), image_shape=(1, 28, 28), seed=3)
    y = t(x)
    assert y.shape == (10, 784)
    np.testing.assert_allclose(y.reshape(10, 1, 28, 28),
                               affine_ref(x.reshape(10, 1, 28, 28), t.last_params, 0.0),
                               atol=2e-5)
    c = A.RandomCrop(24, image_shape=(1, 28, 28), seed=3)
    assert c(x).shape == (10, 576)


def test_compose_chains_in_order(rng):
    x = images(rng, (8, 1, 12, 12))
    chain = A.Compose([A.RandomCrop(10, padding=2, seed=1), A.RandomHorizontalFlip(seed=2),
                       A.RandomAffine(10, seed=3), A.ColorJitter(0.2, seed=4)])
    y = chain(x)
    z = x
    for t in (A.RandomCrop(10, padding=2, seed=1), A.RandomHorizontalFlip(seed=2),
              A.RandomAffine(10, seed=3), A.ColorJitter(0.2, seed=4)):
        z = t(z)
    np.testing.assert_array_equal(y, z)
    flat = A.Compose([A.RandomCrop(10, padding=2, seed=1), A.RandomHorizontalFlip(seed=2)],
                     image_shape=(1, 12, 12))
    yf = flat(x.reshape(8, -1))
    assert yf.shape == (8, 100)
    np.testing.assert_array_equal(
        yf, A.RandomHorizontalFlip(seed=2)(A.RandomCrop(10, padding=2, seed=1)(x)).reshape(8, -1))
    assert "RandomCrop" in repr(chain)


# ------------------------------------------------ seeding and threading --

@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_seeding(rng, make):
    x = images(rng, (16, 1, 9, 9))
    a, b = make(5), make(5)
    y1, y2 = a(x), a(x)
    assert not np.array_equal(y1, y2)                  # new draws per call
    np.testing.assert_array_equal(b(x), y1)            # same seed, same call count
    np.testing.assert_array_equal(b(x), y2)
    assert not np.array_equal(make(6)(x), y1)
    fastnn.manual_seed(123)
    u1, u2 = make(None)(x), make(None)(x)
    fastnn.manual_seed(123)
    v1, v2 = make(None)(x), make(None)(x)
    np.testing.assert_array_equal(u1, v1)
    np.testing.assert_array_equal(u2, v2)
    assert not np.array_equal(u1, u2)


@pytest.mark.parametrize("make", ALL, ids=IDS)
def test_one_and_two_threads_bitwise_equal(rng, make):
    x = images(rng, (64, 3, 32, 32))      # above every kernel's threading threshold
    y1 = with_threads(1, lambda: make(8)(x))
    y2 = with_threads(2, lambda: make(8)(x))
    np.testing.assert_array_equal(bits(y1), bits(y2))
    t1, t2 = make(8), make(8)
    with_threads(1, lambda: t1(x))
    with_threads(2, lambda: t2(x))
    for k in t1.last_params:
        np.testing.assert_array_equal(t1.last_params[k], t2.last_params[k])


def test_affine_isa_paths_bitwise_equal(rng, isa):
    """The warp is built for the baseline, AVX2 and AVX-512 (run-time pick):
    all give the same bits."""
    x = images(rng, (9, 3, 13, 11))
    make = lambda: A.RandomAffine(40, (0.2, 0.2), (0.7, 1.4), fill=0.3, seed=2)  # noqa: E731
    fastnn.set_isa("ref")
    ref = make()(x)
    fastnn.set_isa(isa)
    np.testing.assert_array_equal(bits(make()(x)), bits(ref))


def test_parameters_do_not_depend_on_batch_partition(rng):
    """Sample i's parameters depend on (key, i) only: the first 5 samples of a
    batch of 64 get the same warp as a batch of just those 5."""
    x = images(rng, (64, 1, 10, 10))
    a = A.RandomAffine(30, scale=(0.9, 1.1), seed=4)
    b = A.RandomAffine(30, scale=(0.9, 1.1), seed=4)
    np.testing.assert_array_equal(a(x)[:5], b(x[:5]))


# ------------------------------------------------------------- errors --

@pytest.mark.parametrize("make,exc,match", [
    (lambda: A.RandomAffine(-5), ValueError, "RandomAffine: degrees must be >= 0"),
    (lambda: A.RandomAffine((10, -10)), ValueError, "degrees must have min <= max"),
    (lambda: A.RandomAffine(5, translate=(0.1, 1.5)), ValueError, "translate fractions"),
    (lambda: A.RandomAffine(5, translate=0.1), TypeError, "translate must be an"),
    (lambda: A.RandomAffine(5, scale=(0.0, 1.0)), ValueError, "scale must be positive"),
    (lambda: A.RandomAffine(float("nan")), ValueError, "degrees must be finite"),
    (lambda: A.RandomAffine(5, fill=float("inf")), ValueError, "fill must be finite"),
    (lambda: A.RandomHorizontalFlip(1.5), ValueError, r"RandomHorizontalFlip: p must be in \[0, 1\], got 1.5"),
    (lambda: A.RandomHorizontalFlip(-0.1), ValueError, "p must be in"),
    (lambda: A.RandomHorizontalFlip("0.5"), TypeError, "p must be a real number"),
    (lambda: A.RandomTranslate(-1, 2), ValueError, "RandomTranslate: max_dx must be in"),
    (lambda: A.RandomTranslate(1.5, 2), TypeError, "max_dx must be an integer"),
    (lambda: A.RandomTranslate(True), TypeError, "max_dx must be an integer"),
    (lambda: A.RandomCrop(0), ValueError, "RandomCrop: size must be in"),
    (lambda: A.RandomCrop((3, 4, 5)), ValueError, "size must be an int or an"),
    (lambda: A.RandomCrop(3, padding=-1), ValueError, "padding must be in"),
    (lambda: A.RandomCrop(3, padding=(1, 2, 3)), ValueError, "padding must be an int"),
    (lambda: A.ColorJitter(-0.5), ValueError, "ColorJitter: brightness must be >= 0"),
    (lambda: A.ColorJitter(contrast=(-1, 2)), ValueError, "contrast factors must be >= 0"),
    (lambda: A.ColorJitter(clip_min=1, clip_max=0), ValueError, "clip_min must be <= clip_max"),
    (lambda: A.GaussianNoise(-1), ValueError, "GaussianNoise: std must be >= 0"),
    (lambda: A.RandomHorizontalFlip(seed=-3), ValueError, "seed must be in"),
    (lambda: A.RandomHorizontalFlip(image_shape=(28, 28)), ValueError, r"image_shape must be a \(C, H, W\)"),
    (lambda: A.RandomHorizontalFlip(image_shape=(1, 0, 28)), ValueError, r"image_shape\[1\] must be in"),
    (lambda: A.Compose([A.RandomHorizontalFlip(), 3]), TypeError, r"transforms\[1\] is not callable"),
    (lambda: A.Compose(A.RandomHorizontalFlip()), TypeError, "transforms must be a list"),
])
def test_bad_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


@pytest.mark.parametrize("make", ALL[:4], ids=IDS[:4])
def test_bad_inputs(make):
    t = make(0)
    x = np.zeros((4, 1, 8, 8), dtype=np.float32)
    name = type(t).__name__
    with pytest.raises(TypeError, match=f"{name}: x must be float32, got dtype float64"):
        t(x.astype(np.float64))
    with pytest.raises(ValueError, match=rf"{name}: x must be \(N, C, H, W\).*got shape \(8,\)"):
        t(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match=r"got shape \(1, 4, 1, 8, 8\)"):
        t(x[None])
    with pytest.raises(ValueError, match=rf"{name}: x of shape \(4, 64\) is flat; give the transform image_shape"):
        t(x.reshape(4, 64))
    t.image_shape = (1, 8, 9)
    with pytest.raises(ValueError, match=r"image_shape \(1, 8, 9\) needs 72 features per sample, "
                                         r"x has shape \(4, 64\)"):
        t(x.reshape(4, 64))
    with pytest.raises(ValueError, match=r"x has images of shape \(1, 8, 8\), but image_shape is \(1, 8, 9\)"):
        t(x)


def test_bad_inputs_jitter_noise_crop():
    for t in (A.ColorJitter(0.1), A.GaussianNoise(0.1)):
        with pytest.raises(TypeError, match=f"{type(t).__name__}: x must be float32"):
            t(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="ColorJitter: x must be a batch"):
        A.ColorJitter(0.1)(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=r"RandomCrop: size \(9, 9\) is larger than the padded image \(8, 8\)"):
        A.RandomCrop(9)(np.zeros((2, 1, 8, 8), np.float32))


# -------------------------------------------------------- DataLoader --

def test_dataloader_applies_transform_per_batch(rng):
    x = images(rng, (50, 1, 6, 6))
    y = np.arange(50)
    flip = A.RandomHorizontalFlip(seed=1)
    seen = []

    def recording(xb):
        out = flip(xb)
        seen.append((xb.copy(), out.copy(), flip.last_params["flipped"].copy()))
        return out

    loader = DataLoader(x, y, batch_size=16, shuffle=True, seed=0, transform=recording)
    batches = list(loader)
    assert len(seen) == len(batches) == 4
    for (xb, yb), (raw, out, f) in zip(batches, seen):
        np.testing.assert_array_equal(raw, x[yb])                 # the gathered batch
        np.testing.assert_array_equal(xb, out)                    # is what was yielded
        np.testing.assert_array_equal(xb, np.where(f[:, None, None, None], raw[..., ::-1], raw))
    assert sum(f.sum() for _, _, f in seen) not in (0, 50)
    assert "transform=RandomHorizontalFlip(p=0.5" in repr(DataLoader(x, transform=flip))


def test_dataloader_transform_reproducible_under_manual_seed(rng):
    x = images(rng, (40, 1, 8, 8))
    aug = A.Compose([A.RandomAffine(20, (0.1, 0.1)), A.GaussianNoise(0.05)])
    loader = DataLoader(x.reshape(40, -1), batch_size=8, transform=A.Compose(aug.transforms,
                                                                            image_shape=(1, 8, 8)))

    def epochs():
        fastnn.manual_seed(7)
        return [np.concatenate(list(loader)) for _ in range(2)]

    a, b = epochs(), epochs()
    for ea, eb in zip(a, b):
        np.testing.assert_array_equal(ea, eb)
        assert ea.shape == (40, 64)
    assert not np.array_equal(a[0], a[1])
    # without the transform the batches are the raw rows
    plain = np.concatenate(list(DataLoader(x.reshape(40, -1), batch_size=8, shuffle=False)))
    np.testing.assert_array_equal(plain, x.reshape(40, -1))


def test_dataloader_transform_errors(rng):
    x = images(rng, (10, 4))
    with pytest.raises(TypeError, match="DataLoader: transform must be callable"):
        DataLoader(x, transform="flip")
    with pytest.raises(ValueError, match=r"DataLoader: transform must return an array with the "
                                         r"batch's 5 samples on axis 0, got shape \(4,\)"):
        list(DataLoader(x, batch_size=5, transform=lambda b: b[0]))
