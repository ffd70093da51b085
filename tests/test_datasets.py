"""IDX reader, MNIST loader (synthetic IDX files, and the real MNIST when
present), bundled digits."""
import csv
import gzip
import os
import struct

import numpy as np
import pytest

from fastnn import datasets
from helpers import MNIST_DIR, have_mnist

_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(arr, magic=None):
    """The IDX encoding of arr, written here independently of the reader."""
    arr = np.asarray(arr)
    if magic is None:
        magic = (_CODES[arr.dtype] << 8) | arr.ndim
    head = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path, data, compress=False):
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if compress else data)
    return str(path)


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", list(_CODES))
def test_read_idx_round_trips_every_type(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    got = datasets.read_idx(write(tmp_path / "a.idx", idx_bytes(arr), compress))
    assert got.dtype == dtype and got.dtype.isnative and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, arr)
    assert got.flags.writeable


def test_read_idx_one_dim_and_gzip_detected_by_content(tmp_path):
    arr = np.arange(7, dtype=np.uint8)
    # gzip data under a raw-looking name, raw data under a .gz name
    p1 = write(tmp_path / "labels-idx1-ubyte", idx_bytes(arr), compress=True)
    p2 = write(tmp_path / "labels-idx1-ubyte.gz", idx_bytes(arr), compress=False)
    for p in (p1, p2):
        np.testing.assert_array_equal(datasets.read_idx(p), arr)
    assert datasets.read_idx(write(tmp_path / "empty", idx_bytes(np.zeros((0, 28), np.uint8)))).shape == (0, 28)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_and_overlong(tmp_path, compress):
    data = idx_bytes(np.zeros((10, 28, 28), np.uint8))
    what = "decompressed bytes" if compress else "bytes"
    p = write(tmp_path / "trunc", data[:-100], compress)
    with pytest.raises(ValueError, match=rf"read_idx: '.*trunc' is truncated: a 10x28x28 array of "
                                         rf"unsigned byte needs 7856 {what}, the file has 7756"):
        datasets.read_idx(p)
    p = write(tmp_path / "head", data[:10], compress)
    with pytest.raises(ValueError, match=rf"'.*head' is truncated: the header needs 16 {what}, the file has 10"):
        datasets.read_idx(p)
    p = write(tmp_path / "tiny", data[:3], compress)
    with pytest.raises(ValueError, match=r"'.*tiny' is too short for an IDX header"):
        datasets.read_idx(p)
    p = write(tmp_path / "long", data + b"\0", compress)
    with pytest.raises(ValueError, match=r"'.*long' is longer than its header says"):
        datasets.read_idx(p)


def test_read_idx_bad_magic_and_type(tmp_path):
    arr = np.zeros((2, 2), np.uint8)
    with pytest.raises(ValueError, match=r"'.*m1' is not an IDX file: magic number 0x12340802"):
        datasets.read_idx(write(tmp_path / "m1", idx_bytes(arr, magic=0x12340802)))
    with pytest.raises(ValueError, match=r"'.*m2' is not an IDX file: magic number 0x00000702"):
        datasets.read_idx(write(tmp_path / "m2", idx_bytes(arr, magic=0x0702)))
    with pytest.raises(ValueError, match=r"'.*m3' declares 0 dimensions"):
        datasets.read_idx(write(tmp_path / "m3", struct.pack(">I", 0x0800)))
    # A huge declared shape must fail on length, not try to allocate it.
    huge = struct.pack(">IIII", 0x0803, 2**31, 2**16, 2**16) + b"\0" * 64
    with pytest.raises(ValueError, match=r"'.*m4' is truncated"):
        datasets.read_idx(write(tmp_path / "m4", huge))


def test_read_idx_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(1000, dtype=np.int32)))
    p = write(tmp_path / "cut.gz", good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"read_idx: '.*cut.gz' is not a valid gzip file"):
        datasets.read_idx(p)
    bad = bytearray(good)
    bad[20:40] = b"\xff" * 20
    p = write(tmp_path / "bad.gz", bytes(bad))
    with pytest.raises(ValueError, match=r"read_idx: '.*bad.gz' is not a valid gzip file"):
        datasets.read_idx(p)
    p = write(tmp_path / "junk.gz", b"\x1f\x8b" + b"\x00" * 30)
    with pytest.raises(ValueError, match=r"'.*junk.gz' is not a valid gzip file"):
        datasets.read_idx(p)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"read_idx: no such file: '.*nope'"):
        datasets.read_idx(tmp_path / "nope")


# ------------------------------------------------------------ load_mnist --

def fake_mnist(folder, kind="train", n=12, rows=5, cols=4, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, rows, cols)).astype(np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    prefix = "train" if kind == "train" else "t10k"
    ext = ".gz" if compress else ""
    write(os.path.join(folder, f"{prefix}-images-idx3-ubyte{ext}"), idx_bytes(images), compress)
    write(os.path.join(folder, f"{prefix}-labels-idx1-ubyte{ext}"), idx_bytes(labels), compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_synthetic(tmp_path, compress):
    images, labels = fake_mnist(tmp_path, "train", compress=compress)
    timg, tlab = fake_mnist(tmp_path, "test", n=5, compress=not compress, seed=1)
    x, y = datasets.load_mnist(tmp_path)
    assert x.shape == (12, 1, 5, 4) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (12,) and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    x, y = datasets.load_mnist(str(tmp_path), kind="test", normalize=False, flatten=True)
    assert x.shape == (5, 20)
    np.testing.assert_array_equal(x, timg.reshape(5, 20).astype(np.float32))
    np.testing.assert_array_equal(y, tlab)


def test_load_mnist_errors(tmp_path):
    with pytest.raises(ValueError, match=r"load_mnist: kind must be 'train' or 'test', got 'val'"):
        datasets.load_mnist(tmp_path, kind="val")
    with pytest.raises(FileNotFoundError, match=r"load_mnist: '.*nowhere' is not a directory"):
        datasets.load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no train images and labels in .*looked for "
                                                r"train-images-idx3-ubyte.gz, train-images-idx3-ubyte, "
                                                r"train-images.idx3-ubyte.gz, train-images.idx3-ubyte, "
                                                r"train-labels-idx1-ubyte.gz"):
        datasets.load_mnist(tmp_path)
    fake_mnist(tmp_path, "train")
    os.remove(tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match=r"no train labels in"):
        datasets.load_mnist(tmp_path)
    # count mismatch
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(11, np.uint8)), True)
    with pytest.raises(ValueError, match=r"has 12 images but .*train-labels-idx1-ubyte.gz' has 11 labels"):
        datasets.load_mnist(tmp_path)
    # labels where the images should be
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros(11, np.uint8)), True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz' must hold a uint8 \(N, rows, cols\) "
                                         r"array \(IDX magic 2051\), got uint8 of shape \(11,\)"):
        datasets.load_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((11, 2, 2), np.float32)), True)
    with pytest.raises(ValueError, match=r"must hold a uint8 \(N, rows, cols\) array .*got float32"):
        datasets.load_mnist(tmp_path)
    # truncated real-layout file reports the file and the byte counts
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((11, 2, 2), np.uint8))[:-1], True)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz' is truncated: .* needs 60 "
                                         r"decompressed bytes, the file has 59"):
        datasets.load_mnist(tmp_path)


@pytest.mark.skipif(not have_mnist(), reason="MNIST not found (set FASTNN_MNIST_DIR)")
def test_real_mnist():
    x, y = datasets.load_mnist(MNIST_DIR)
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert list(y[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(np.bincount(y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    xt, yt = datasets.load_mnist(MNIST_DIR, kind="test", flatten=True, normalize=False)
    assert xt.shape == (10000, 784) and yt.shape == (10000,)
    assert xt.max() == 255.0 and np.all(xt == np.round(xt))
    assert list(np.bincount(yt)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    # mean pixel of the training set, a well-known constant (0.1307)
    assert abs(float(x.mean(dtype=np.float64)) - 0.1307) < 1e-4


# ----------------------------------------------------------- load_digits --

def _digits_reference():
    import fastnn.data
    path = os.path.join(os.path.dirname(fastnn.data.__file__), "digits.csv.gz")
    with gzip.open(path, "rt") as f:
        rows = [[int(v) for v in row] for row in csv.reader(f)]
    return np.array(rows)


def test_load_digits():
    ref = _digits_reference()
    x, y = datasets.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x, ref[:, :64].astype(np.float32) / 16)
    np.testing.assert_array_equal(y, ref[:, 64])
    assert list(np.bincount(y)) == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    xi, yi = datasets.load_digits(normalize=False, flatten=False)
    assert xi.shape == (1797, 1, 8, 8) and xi.max() == 16.0
    np.testing.assert_array_equal(xi.reshape(1797, 64), ref[:, :64])
    np.testing.assert_array_equal(yi, y)


def test_digits_license_ships_beside_data():
    import fastnn.data
    with open(os.path.join(os.path.dirname(fastnn.data.__file__), "DIGITS_LICENSE.txt")) as f:
        text = f.read()
    assert "Alpaydin" in text and "CC BY 4.0" in text
