"""DataLoader (and its C gather kernel), Standardizer, train_test_split."""
import numpy as np
import pytest

import fastnn
from fastnn._ext import _C
from fastnn.data import DataLoader, Standardizer, train_test_split
from fastnn.data import preprocess


@pytest.fixture
def threads():
    old = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(old)


# ------------------------------------------------------------ gather kernel --

@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("dtype,tail", [(np.float32, (37,)), (np.float32, (3, 5, 7)),
                                        (np.int64, ()), (np.float32, ()), (np.uint8, (3,)),
                                        (np.float64, (2,)), (np.int16, (1001,))])
def test_gather_rows_matches_take(threads, nt, dtype, tail):
    fastnn.set_num_threads(nt)
    rng = np.random.default_rng(0)
    n = 3000
    src = (rng.standard_normal((n,) + tail) * 100).astype(dtype)
    idx = rng.integers(0, n, size=2500).astype(np.int64)
    dst = np.empty((idx.size,) + tail, dtype=dtype)
    _C.gather_rows(src, idx, dst, src[0].nbytes)
    np.testing.assert_array_equal(dst, src[idx])


@pytest.mark.parametrize("nt", [1, 2])
def test_gather_rows_strided_source(threads, nt):
    fastnn.set_num_threads(nt)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4000, 300)).astype(np.float32)
    for src in (base[::3, 10:250], base[::-2, :64]):
        idx = rng.permutation(src.shape[0])[:700].astype(np.int64)
        dst = np.empty((700, src.shape[1]), np.float32)
        _C.gather_rows(src, idx, dst, src.shape[1] * 4)
        np.testing.assert_array_equal(dst, src[idx])


# --------------------------------------------------------------- DataLoader --

def _data(n=103, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[:, 0] = np.arange(n)          # column 0 identifies the sample
    y = rng.integers(0, 10, n)
    return x, y


def test_epoch_covers_every_sample_once():
    x, y = _data()
    dl = DataLoader(x, y, batch_size=10, seed=3)
    assert len(dl) == 11
    xs, ys = zip(*dl)
    assert [b.shape[0] for b in xs] == [10] * 10 + [3]
    ids = np.concatenate([b[:, 0] for b in xs]).astype(np.int64)
    assert sorted(ids) == list(range(103))
    assert not np.array_equal(ids, np.arange(103))          # shuffled
    np.testing.assert_array_equal(np.concatenate(xs), x[ids])
    np.testing.assert_array_equal(np.concatenate(ys), y[ids])
    for xb, yb in zip(xs, ys):
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        assert xb.flags.c_contiguous and yb.flags.c_contiguous


def test_drop_last_and_no_shuffle():
    x, y = _data()
    dl = DataLoader(x, y, batch_size=10, shuffle=False, drop_last=True)
    assert len(dl) == 10
    batches = list(dl)
    assert len(batches) == 10 and all(b[0].shape == (10, 6) for b in batches)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[:100])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y[:100])
    assert len(DataLoader(x, batch_size=200, drop_last=True)) == 0
    assert len(DataLoader(x, batch_size=200)) == 1
    assert len(DataLoader(x, batch_size=1)) == 103


def _epoch_ids(dl):
    return np.concatenate([b[:, 0] for b in dl]).astype(np.int64)


def test_reshuffles_each_epoch_and_seed_reproduces():
    x, _ = _data()
    a = DataLoader(x, batch_size=16, seed=7)
    b = DataLoader(x, batch_size=16, seed=7)
    c = DataLoader(x, batch_size=16, seed=8)
    a1, a2 = _epoch_ids(a), _epoch_ids(a)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, _epoch_ids(b))
    np.testing.assert_array_equal(a2, _epoch_ids(b))
    assert not np.array_equal(a1, _epoch_ids(c))


def test_manual_seed_governs_unseeded_loader():
    x, _ = _data()
    fastnn.manual_seed(123)
    dl = DataLoader(x, batch_size=16)
    e1, e2 = _epoch_ids(dl), _epoch_ids(dl)
    fastnn.manual_seed(123)
    dl2 = DataLoader(x, batch_size=16)
    np.testing.assert_array_equal(e1, _epoch_ids(dl2))
    np.testing.assert_array_equal(e2, _epoch_ids(dl2))
    fastnn.manual_seed(124)
    assert not np.array_equal(e1, _epoch_ids(DataLoader(x, batch_size=16)))


def test_images_targets_and_x_only():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 3, 5, 4)).astype(np.float32)
    t = rng.standard_normal((50, 2)).astype(np.float32)
    dl = DataLoader(x, t, batch_size=8, shuffle=False)
    xb, tb = next(iter(dl))
    assert xb.shape == (8, 3, 5, 4) and tb.shape == (8, 2) and tb.dtype == np.float32
    np.testing.assert_array_equal(xb, x[:8])
    np.testing.assert_array_equal(tb, t[:8])
    only = list(DataLoader(x, batch_size=20, seed=0))
    assert all(isinstance(b, np.ndarray) for b in only)
    assert [b.shape for b in only] == [(20, 3, 5, 4), (20, 3, 5, 4), (10, 3, 5, 4)]


def test_batches_are_fresh_arrays_and_data_is_not_copied():
    x, y = _data()
    dl = DataLoader(x, y, batch_size=10, seed=0)
    assert dl.x is x                           # float32 input used in place
    first = [(xb.copy(), xb) for xb, _ in dl]
    for _ in dl:
        pass
    for saved, kept in first:
        np.testing.assert_array_equal(saved, kept)   # later epochs did not overwrite
        assert not np.shares_memory(kept, x)
    batches = [xb for xb, _ in dl]
    assert not any(np.shares_memory(batches[i], batches[i + 1]) for i in range(len(batches) - 1))


def test_strided_and_converted_inputs():
    x, y = _data(n=60)
    big = np.zeros((60, 20), np.float32)
    big[:, 3:9] = x
    view = big[:, 3:9]
    dl = DataLoader(view, y.astype(np.uint8), batch_size=7, shuffle=False)
    assert np.shares_memory(dl.x, big)
    xb, yb = next(iter(dl))
    np.testing.assert_array_equal(xb, x[:7])
    assert yb.dtype == np.int64 and list(yb) == list(y[:7])
    u8 = (np.arange(60 * 4) % 256).astype(np.uint8).reshape(60, 4)
    xb = next(iter(DataLoader(u8, batch_size=5, shuffle=False)))
    assert xb.dtype == np.float32
    np.testing.assert_array_equal(xb, u8[:5].astype(np.float32))
    rev = DataLoader(x[::-1], batch_size=60, shuffle=False)
    np.testing.assert_array_equal(next(iter(rev)), x[::-1])


def test_same_batches_on_one_and_two_threads(threads):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 300)).astype(np.float32)
    out = []
    for nt in (1, 2):
        fastnn.set_num_threads(nt)
        out.append(np.concatenate(list(DataLoader(x, batch_size=512, seed=1))))
    np.testing.assert_array_equal(out[0], out[1])


def test_empty_dataset():
    dl = DataLoader(np.zeros((0, 3), np.float32), np.zeros(0, np.int64), batch_size=4)
    assert len(dl) == 0 and list(dl) == []


def test_dataloader_rejects_bad_arguments():
    x, y = _data(n=10)
    with pytest.raises(ValueError, match=r"DataLoader: x and y differ in length: x has 10 samples, y has 9"):
        DataLoader(x, y[:9])
    with pytest.raises(ValueError, match=r"DataLoader: batch_size must be >= 1, got 0"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(TypeError, match=r"DataLoader: batch_size must be an integer, got float"):
        DataLoader(x, y, batch_size=2.0)
    with pytest.raises(TypeError, match=r"DataLoader: batch_size must be an integer, got bool"):
        DataLoader(x, y, batch_size=True)
    with pytest.raises(TypeError, match=r"DataLoader: x must be float32, got dtype float64.*astype"):
        DataLoader(x.astype(np.float64), y)
    with pytest.raises(TypeError, match=r"DataLoader: y must hold integer labels or float32 targets, got dtype <U1"):
        DataLoader(x, np.array(list("abcdefghij")))
    with pytest.raises(TypeError, match=r"DataLoader: y must be float32, got dtype float64"):
        DataLoader(x, np.zeros((10, 2)))
    with pytest.raises(ValueError, match=r"DataLoader: seed must be >= 0, got -1"):
        DataLoader(x, y, seed=-1)
    with pytest.raises(ValueError, match=r"DataLoader: x must have a sample axis"):
        DataLoader(np.float32(1.0))


def test_dataloader_of_an_xy_tuple_says_to_pass_two_arguments():
    x, y = _data(n=10)
    with pytest.raises(TypeError, match=r"DataLoader\(x, y, batch_size=.*\(10, 6\) and \(10,\)"):
        DataLoader((x, y), batch_size=4)      # the torch TensorDataset habit
    xb, yb = next(iter(DataLoader(x, y, batch_size=4)))   # the fastnn way
    assert xb.shape == (4, 6) and yb.shape == (4,)
    rows = DataLoader([x[0], x[1]], batch_size=2, shuffle=False)   # a list of rows is data
    np.testing.assert_array_equal(next(iter(rows)), x[:2])


# ------------------------------------------------------------- Standardizer --

def test_standardizer_matches_float64_reference():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((500, 7)) * rng.uniform(0.1, 50, 7) + rng.uniform(-1e3, 1e3, 7)).astype(np.float32)
    s = Standardizer()
    z = s.fit_transform(x)
    x64 = x.astype(np.float64)
    mean, std = x64.mean(0), x64.std(0)
    np.testing.assert_allclose(s.mean, mean, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s.std, std, rtol=1e-10)
    assert z.dtype == np.float32 and z.shape == x.shape
    np.testing.assert_allclose(z, (x64 - mean) / (std + 1e-8), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-5)
    back = s.inverse_transform(z)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-3)


def test_standardizer_large_offset_is_accurate():
    # float32 data far from 0 with small spread: a float32 mean would lose it.
    x = (np.float32(1e4) + np.float32(1e-2) * np.arange(64, dtype=np.float32)).reshape(64, 1)
    z = Standardizer().fit_transform(x)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(z, (x64 - x64.mean()) / x64.std(), atol=1e-4)


def test_standardizer_images_zero_variance_and_chunks(monkeypatch):
    monkeypatch.setattr(preprocess, "_CHUNK_ELEMS", 50)     # force many chunks
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (90, 2, 3, 4)).astype(np.uint8)
    x[:, 1, 2, 3] = 17                                       # a constant pixel
    s = Standardizer(eps=0.0).fit(x)
    assert s.mean.shape == (2, 3, 4) and s.feature_shape == (2, 3, 4)
    x64 = x.reshape(90, -1).astype(np.float64)
    np.testing.assert_allclose(s.mean.reshape(-1), x64.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.std.reshape(-1), x64.std(0), rtol=1e-12)
    assert s.std[1, 2, 3] == 0.0
    z = s.transform(x)
    assert z.shape == x.shape and z.dtype == np.float32
    assert np.all(z[:, 1, 2, 3] == 0.0) and np.all(np.isfinite(z))
    other = x.copy()
    other[:, 1, 2, 3] = 200                                  # unseen value: still 0
    assert np.all(s.transform(other)[:, 1, 2, 3] == 0.0)
    np.testing.assert_allclose(z.reshape(90, -1)[:, :-1].std(0), 1, atol=1e-5)
    np.testing.assert_allclose(s.inverse_transform(z)[:, 1, 2, 3], 17)


def test_standardizer_state_dict_round_trip():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 5)).astype(np.float32) * 3 + 1
    s = Standardizer().fit(x)
    sd = s.state_dict()
    assert set(sd) == {"mean", "std"} and sd["mean"].dtype == np.float64
    sd["mean"][0] = 99.0                                     # a copy, not a view
    assert s.mean[0] != 99.0
    t = Standardizer()
    t.load_state_dict(s.state_dict())
    np.testing.assert_array_equal(t.transform(x), s.transform(x))
    with pytest.raises(KeyError, match=r"Standardizer.load_state_dict: expected keys \['mean', 'std'\]"):
        t.load_state_dict({"mean": sd["mean"]})
    with pytest.raises(ValueError, match=r"mean has shape \(5,\) but std has shape \(4,\)"):
        t.load_state_dict({"mean": sd["mean"], "std": sd["std"][:4]})
    with pytest.raises(ValueError, match=r"'std' contains NaN"):
        t.load_state_dict({"mean": sd["mean"], "std": np.full(5, np.nan)})
    with pytest.raises(ValueError, match=r"std has negative entries"):
        t.load_state_dict({"mean": sd["mean"], "std": -np.ones(5)})


def test_standardizer_errors():
    s = Standardizer()
    with pytest.raises(RuntimeError, match=r"Standardizer.transform: call fit\(\)"):
        s.transform(np.zeros((3, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"Standardizer.state_dict: not fitted"):
        s.state_dict()
    s.fit(np.random.default_rng(0).standard_normal((10, 4)))
    with pytest.raises(ValueError, match=r"Standardizer.transform: x has shape \(3, 5\).*\(5,\) features.*\(4,\)"):
        s.transform(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"Standardizer.inverse_transform: x has shape \(3, 2, 2\)"):
        s.inverse_transform(np.zeros((3, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"Standardizer.fit: x has no samples"):
        Standardizer().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"Standardizer.fit: x contains NaN or infinity"):
        Standardizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(TypeError, match=r"Standardizer.fit: x must be a real numeric array, got dtype <U"):
        Standardizer().fit(np.array([["a"]]))
    with pytest.raises(ValueError, match=r"Standardizer: eps must be finite and >= 0, got -1"):
        Standardizer(eps=-1)


# --------------------------------------------------------- train_test_split --

def test_split_sizes_disjoint_reproducible():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, seed=3)
    assert xtr.shape == (40, 2) and xte.shape == (10, 2) and ytr.shape == (40,)
    assert sorted(np.concatenate([ytr, yte])) == list(range(50))
    np.testing.assert_array_equal(xtr[:, 0], 2 * ytr)        # rows stay paired
    np.testing.assert_array_equal(xte[:, 0], 2 * yte)
    again = train_test_split(x, y, test_size=0.2, seed=3)
    np.testing.assert_array_equal(again[3], yte)
    assert not np.array_equal(train_test_split(x, y, seed=4)[3], yte)
    a, b = train_test_split(x, test_size=7)
    assert a.shape == (43, 2) and b.shape == (7, 2)
    assert train_test_split(x, y, test_size=0.01)[1].shape == (1, 2)   # ceil


def test_split_stratified_keeps_proportions():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(5), [300, 150, 90, 40, 20])
    rng.shuffle(y)
    x = np.arange(y.size, dtype=np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, seed=1, stratify=True)
    assert yte.size == 150 and ytr.size == 450
    np.testing.assert_array_equal(y[xte.astype(np.int64)], yte)
    counts = np.bincount(y)
    test_counts = np.bincount(yte, minlength=5)
    assert np.all(np.abs(test_counts - 0.25 * counts) <= 1)
    assert np.array_equal(np.bincount(ytr, minlength=5) + test_counts, counts)
    assert not np.array_equal(yte, np.sort(yte))             # classes mixed


def test_split_errors():
    x = np.zeros((10, 2), np.float32)
    with pytest.raises(ValueError, match=r"train_test_split: x and y differ in length"):
        train_test_split(x, np.zeros(9))
    with pytest.raises(ValueError, match=r"test_size must be a fraction in \(0, 1\), got 1.5"):
        train_test_split(x, test_size=1.5)
    with pytest.raises(ValueError, match=r"test_size=10 samples must be in \[1, 9\]"):
        train_test_split(x, test_size=10)
    with pytest.raises(ValueError, match=r"stratify=True needs the labels y"):
        train_test_split(x, stratify=True)
    with pytest.raises(ValueError, match=r"seed must be a non-negative integer"):
        train_test_split(x, seed=-2)
    with pytest.raises(ValueError, match=r"need at least 2 samples"):
        train_test_split(x[:1])
