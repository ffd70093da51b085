"""The counter-based generator in csrc/rng.c: Philox4x32-10 against its
published answers and a pure-Python twin, the stream layout (value j depends
only on (seed, j)), distribution statistics, and thread-count independence."""
import math

import numpy as np
import pytest

import fastnn
from fastnn._ext import _C

M32 = 0xFFFFFFFF


def philox_py(ctr, key):
    """Philox4x32-10 from the paper's definition, in Python integers."""
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0, p1 & M32, (p0 >> 32) ^ c3 ^ k1, p0 & M32)
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return c0, c1, c2, c3


def stream_py(seed, offset, n):
    key = (seed & M32, seed >> 32)
    out = []
    for j in range(offset, offset + n):
        b = j >> 2
        out.append(philox_py((b & M32, b >> 32, 0, 0), key)[j & 3])
    return np.array(out, dtype=np.uint32)


def bits(seed, offset, n):
    out = np.empty(n, dtype=np.uint32)
    _C.rng_bits(seed, offset, out)
    return out


def uniform(seed, n, offset=0):
    out = np.empty(n, dtype=np.float32)
    _C.rng_uniform(seed, offset, out)
    return out


def normal(seed, n, offset=0, mean=0.0, std=1.0, naive=False):
    out = np.empty(n, dtype=np.float32)
    _C.rng_normal(seed, offset, out, mean, std, naive)
    return out


@pytest.fixture
def threads():
    """Set the thread count inside a test; restored afterwards."""
    saved = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(saved)


# Random123's known-answer vectors (its kat_vectors file) for Philox4x32-10.
KAT = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
       ((M32,) * 4, (M32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
       ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    assert _C.philox4x32_10(ctr, key) == expected
    assert philox_py(ctr, key) == expected


@pytest.mark.parametrize("seed,offset", [(0, 0), (12345, 3), (2**63 - 25, 2**34 + 1),
                                         (0xDEADBEEF00C0FFEE, 2**32 * 4 - 6),
                                         (7, 4 * (2**32 - 9) + 2), (2**40 + 3, 4 * (2**33 - 13) + 1)])
def test_stream_matches_python_twin(seed, offset):
    # 601 words: crosses tile boundaries (256 words) from unaligned starts, and
    # the last three cases cross the counter's low-word carry (into high word
    # 1 and 2), inside the first and the second 8-block group of the AVX2
    # path's 16.
    np.testing.assert_array_equal(bits(seed, offset, 601), stream_py(seed, offset, 601))


def test_value_depends_only_on_seed_and_index():
    seed, n = 99, 3000
    whole = bits(seed, 0, n)
    for cut in (1, 3, 255, 256, 257, 1023, 2999):
        parts = np.concatenate([bits(seed, 0, cut), bits(seed, cut, n - cut)])
        np.testing.assert_array_equal(parts, whole)
    u = uniform(seed, n)
    np.testing.assert_array_equal(uniform(seed, n - 7, offset=7), u[7:])
    z = normal(seed, n)
    for off in (1, 2, 3, 257):
        np.testing.assert_array_equal(normal(seed, n - off, offset=off), z[off:])


def test_uniform_is_the_top_24_bits():
    b = bits(7, 0, 10000)
    u = uniform(7, 10000)
    np.testing.assert_array_equal(u, (b >> 8).astype(np.float32) / np.float32(2**24))


def test_uniform_statistics():
    n = 10**6
    u = uniform(2024, n).astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)   # var of (u-1/2)^2 is 1/180
    hist = np.bincount((u * 16).astype(int), minlength=16) / n
    assert np.abs(hist - 1 / 16).max() < 5 * math.sqrt(1 / 16 / n)
    for lag in (1, 2, 3, 4, 5):
        r = np.corrcoef(u[:-lag], u[lag:])[0, 1]
        assert abs(r) < 5 / math.sqrt(n), (lag, r)


def test_different_seeds_differ():
    n = 200000
    streams = [bits(s, 0, n) for s in (0, 1, 2, 2**32, 2**32 + 1, 2**62)]
    for i in range(len(streams)):
        for j in range(i):
            assert np.mean(streams[i] == streams[j]) < 1e-3
            r = np.corrcoef(streams[i].astype(np.float64), streams[j].astype(np.float64))[0, 1]
            assert abs(r) < 5 / math.sqrt(n)


def test_normal_statistics():
    n = 10**6
    z = normal(31337, n).astype(np.float64)
    se = 1 / math.sqrt(n)
    assert abs(z.mean()) < 5 * se
    assert abs(z.var() - 1) < 5 * math.sqrt(2) * se
    assert abs(np.mean(z ** 3)) < 5 * math.sqrt(15) * se                   # skewness 0
    assert abs(np.mean(z ** 4) - 3) < 5 * math.sqrt(96) * se               # kurtosis 3
    # empirical CDF against Phi: a DKW bound, P(sup dev > 0.002) < 7e-4
    zs = np.sort(z)
    grid = np.linspace(-3.5, 3.5, 57)
    ecdf = np.searchsorted(zs, grid) / n
    phi = np.array([0.5 * (1 + math.erf(g / math.sqrt(2))) for g in grid])
    assert np.abs(ecdf - phi).max() < 0.002
    assert np.abs(z).max() < 6.7          # Box-Muller on a 31-bit u1: |z| <= 6.66
    for lag in (1, 2, 3, 4):
        assert abs(np.corrcoef(z[:-lag], z[lag:])[0, 1]) < 5 * se
        # the two halves of a Box-Muller pair are independent, not just uncorrelated
        assert abs(np.corrcoef(z[:-lag] ** 2, z[lag:] ** 2)[0, 1]) < 5 * se


def test_normal_matches_naive_twin():
    # float polynomials for log and sin/cos against double-precision libm
    for offset in (0, 5):
        z = normal(77, 10**6, offset=offset)
        ref = normal(77, 10**6, offset=offset, naive=True)
        err = np.abs(z.astype(np.float64) - ref)
        assert err.max() < 2e-6, err.max()
        assert np.mean(err) < 1e-7


def test_normal_mean_and_std():
    z = normal(5, 5000)
    np.testing.assert_allclose(normal(5, 5000, mean=3.0, std=0.5), 3.0 + 0.5 * z.astype(np.float64),
                               rtol=0, atol=1e-6)


def test_bitwise_independent_of_thread_count(threads):
    n = 300001                      # large enough for 2 threads, odd tail
    results = {}
    x = np.linspace(-2, 2, n, dtype=np.float32)
    for nt in (1, 2):
        threads(nt)
        y = np.empty_like(x)
        m = np.empty(n, dtype=np.uint8)
        _C.dropout_forward(11, x, y, m, 0.3)
        dx = np.empty_like(x)
        _C.dropout_backward(x, m, dx, 0.3)
        yn = np.empty_like(x)
        _C.gaussian_noise_forward(12, x, yn, 0.25)
        results[nt] = [bits(10, 5, n), uniform(10, n, 3), normal(10, n, 1), y, m, dx, yn]
    for a, b in zip(results[1], results[2]):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_dropout_kernel(p):
    n = 400000
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    m = np.empty(n, dtype=np.uint8)
    _C.dropout_forward(4242, x, y, m, p)
    assert set(np.unique(m)) <= {0, 1}
    # keep exactly when the stream word is >= round(p 2^32)
    np.testing.assert_array_equal(m, bits(4242, 0, n) >= np.uint64(round(p * 2**32)))
    keep = m.astype(bool)
    frac = keep.mean()
    assert abs(frac - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12
    scale = np.float32(1.0 / (1.0 - p))
    np.testing.assert_array_equal(y[keep], x[keep] * scale)
    assert np.all(y[~keep] == 0.0)
    dy = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    dx = np.empty_like(dy)
    _C.dropout_backward(dy, m, dx, p)
    np.testing.assert_array_equal(dx, np.where(keep, dy * scale, np.float32(0)))


def test_dropout_kernel_propagates_nan():
    x = np.array([np.nan, np.inf, 1.0, -np.inf] * 64, dtype=np.float32)
    y = np.empty_like(x)
    m = np.empty(x.size, dtype=np.uint8)
    _C.dropout_forward(3, x, y, m, 0.5)
    assert np.all(np.isnan(y[0::4]))               # NaN stays NaN, kept or not
    kept_inf = m[1::4].astype(bool)
    assert np.all(y[1::4][kept_inf] == np.inf) and np.all(np.isnan(y[1::4][~kept_inf]))


def test_gaussian_noise_kernel():
    n = 100003
    x = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    _C.gaussian_noise_forward(555, x, y, 0.3)
    np.testing.assert_array_equal(y, x + np.float32(0.3) * normal(555, n))
    inplace = x.copy()
    _C.gaussian_noise_forward(555, inplace, inplace, 0.3)
    np.testing.assert_array_equal(inplace, y)


def test_bitwise_independent_of_isa():
    """The baseline, AVX2 and AVX-512 builds of each kernel agree bit for bit."""
    saved = fastnn.get_isa()
    n = 70001
    x = np.linspace(-3, 3, n, dtype=np.float32)
    results = []
    try:
        for isa in fastnn.available_isas():
            fastnn.set_isa(isa)
            y, yn, dx = np.empty_like(x), np.empty_like(x), np.empty_like(x)
            m = np.empty(n, dtype=np.uint8)
            _C.dropout_forward(21, x, y, m, 0.7)
            _C.dropout_backward(x, m, dx, 0.7)
            _C.gaussian_noise_forward(22, x, yn, 2.0)
            results.append([bits(20, 9, n), uniform(20, n, 2), normal(20, n, 3, 1.0, 3.0),
                            y, m, dx, yn])
    finally:
        fastnn.set_isa(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert a.tobytes() == b.tobytes()
