"""Data sets: the IDX reader behind MNIST (and Fashion-MNIST, KMNIST, ...) and
the small handwritten-digits set bundled with fastnn.

Nothing here is downloaded and nothing is unpickled: IDX files are parsed from
their header, checked against their length, and read into numpy arrays."""
import gzip
import importlib.resources
import io
import os
import struct
import zlib

import numpy as np

__all__ = ["read_idx", "load_mnist", "load_digits"]

# IDX element type code -> (big-endian numpy dtype, name).
_IDX_TYPES = {
    0x08: (">u1", "unsigned byte"),
    0x09: (">i1", "signed byte"),
    0x0B: (">i2", "short"),
    0x0C: (">i4", "int"),
    0x0D: (">f4", "float"),
    0x0E: (">f8", "double"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 24


def _open(path):
    """A binary stream of the file's contents, gunzipped if it starts with the
    gzip magic (whatever its name)."""
    f = open(path, "rb")
    head = f.read(2)
    f.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb"), f, True
    return f, f, False


def _read_exact(stream, n):
    """Up to n bytes (fewer only at end of stream), in bounded chunks so a
    corrupt header cannot make us allocate more than the file holds."""
    buf = bytearray()
    while len(buf) < n:
        chunk = stream.read(min(_READ_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def read_idx(path):
    """Read one IDX file (raw or gzip-compressed; detected from its first
    bytes) into a numpy array of its declared shape and element type
    (uint8, int8, int16, int32, float32 or float64, native byte order).

    Raises FileNotFoundError if path does not exist, ValueError if the file is
    not valid IDX: bad magic number, unknown type code, zero dimensions, a
    length that does not match the header, or corrupt gzip data."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"read_idx: no such file: {path!r}")
    stream, raw, compressed = _open(path)
    what = "decompressed bytes" if compressed else "bytes"
    try:
        try:
            magic = _read_exact(stream, 4)
            if len(magic) < 4:
                raise ValueError(f"read_idx: {path!r} is too short for an IDX header "
                                 f"(expected at least 4 {what}, got {len(magic)})")
            zero, code, ndim = magic[0] << 8 | magic[1], magic[2], magic[3]
            magic_num = struct.unpack(">I", bytes(magic))[0]
            if zero != 0 or code not in _IDX_TYPES:
                raise ValueError(f"read_idx: {path!r} is not an IDX file: magic number {magic_num:#010x} "
                                 f"({magic_num}); expected 0x0000TTDD with type code TT in "
                                 f"{{{', '.join(f'{c:#04x}' for c in _IDX_TYPES)}}}")
            if ndim == 0:
                raise ValueError(f"read_idx: {path!r} declares 0 dimensions (magic number {magic_num})")
            dims_raw = _read_exact(stream, 4 * ndim)
            header = 4 + 4 * ndim
            if len(dims_raw) < 4 * ndim:
                raise ValueError(f"read_idx: {path!r} is truncated: the header needs {header} {what}, "
                                 f"the file has {4 + len(dims_raw)}")
            dims = struct.unpack(f">{ndim}I", bytes(dims_raw))
            dtype = np.dtype(_IDX_TYPES[code][0])
            count = 1
            for d in dims:
                count *= d
            nbytes = count * dtype.itemsize
            data = _read_exact(stream, nbytes + 1)
        except (OSError, EOFError, zlib.error) as e:
            if not compressed:
                raise
            raise ValueError(f"read_idx: {path!r} is not a valid gzip file: {e}") from None
    finally:
        stream.close()
        raw.close()
    if len(data) != nbytes:
        shape = "x".join(map(str, dims))
        if len(data) < nbytes:
            raise ValueError(f"read_idx: {path!r} is truncated: a {shape} array of "
                             f"{_IDX_TYPES[code][1]} needs {header + nbytes} {what}, "
                             f"the file has {header + len(data)}")
        raise ValueError(f"read_idx: {path!r} is longer than its header says: a {shape} array of "
                         f"{_IDX_TYPES[code][1]} needs {header + nbytes} {what}, the file has more")
    arr = np.frombuffer(data, dtype=dtype, count=count).reshape(dims)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _find(path, prefix, stem):
    """The first existing candidate file name for e.g. ('train', 'images-idx3-ubyte')."""
    base, idx = stem.rsplit("-", 2)[0], "-".join(stem.rsplit("-", 2)[1:])
    names = []
    for name in (f"{prefix}-{stem}", f"{prefix}-{base}.{idx}"):
        names += [name + ".gz", name]
    for name in names:
        full = os.path.join(path, name)
        if os.path.isfile(full):
            return full, names
    return None, names


def load_mnist(path, kind="train", normalize=True, flatten=False):
    """Load MNIST (or any data set in its IDX layout: Fashion-MNIST, KMNIST, ...)
    from the directory ``path``.

    ``kind``: 'train' (train-images-idx3-ubyte, train-labels-idx1-ubyte) or
    'test' (t10k-...); each file may be gzip-compressed (``.gz``) or raw.
    Returns ``(x, y)``: x float32 of shape (N, 1, rows, cols) -- (N, rows*cols)
    with ``flatten`` -- holding pixel/255 in [0, 1] with ``normalize`` or the
    raw 0..255 values without; y int64 labels of shape (N,) (0..9 for MNIST;
    whatever byte values the label file holds otherwise)."""
    who = "load_mnist"
    if kind not in _MNIST_PREFIX:
        raise ValueError(f"{who}: kind must be 'train' or 'test', got {kind!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{who}: {path!r} is not a directory (expected the folder "
                                f"holding the MNIST IDX files)")
    prefix = _MNIST_PREFIX[kind]
    img_file, img_names = _find(path, prefix, "images-idx3-ubyte")
    lab_file, lab_names = _find(path, prefix, "labels-idx1-ubyte")
    missing = [names for f, names in ((img_file, img_names), (lab_file, lab_names)) if f is None]
    if missing:
        looked = ", ".join(n for names in missing for n in names)
        what = " and ".join(w for f, w in ((img_file, "images"), (lab_file, "labels")) if f is None)
        raise FileNotFoundError(f"{who}: no {kind} {what} in {path!r}; looked for {looked}")
    images = read_idx(img_file)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"{who}: {img_file!r} must hold a uint8 (N, rows, cols) array (IDX magic 2051), "
                         f"got {images.dtype} of shape {images.shape}")
    labels = read_idx(lab_file)
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{who}: {lab_file!r} must hold uint8 labels of shape (N,) (IDX magic 2049), "
                         f"got {labels.dtype} of shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{who}: {img_file!r} has {images.shape[0]} images but {lab_file!r} "
                         f"has {labels.shape[0]} labels")
    n, rows, cols = images.shape
    lut = np.arange(256, dtype=np.float32)
    if normalize:
        lut /= np.float32(255.0)
    x = lut[images]
    x = x.reshape(n, rows * cols) if flatten else x.reshape(n, 1, rows, cols)
    return x, labels.astype(np.int64)


_DIGITS_FILE = "digits.csv.gz"


def load_digits(normalize=True, flatten=True):
    """The bundled handwritten-digits set (UCI "Optical Recognition of
    Handwritten Digits", E. Alpaydin and C. Kaynak, CC BY 4.0; see
    fastnn/data/DIGITS_LICENSE.txt): 1797 images of 8x8 pixels in 0..16.

    Returns ``(x, y)``: x float32 of shape (1797, 64) -- (1797, 1, 8, 8)
    without ``flatten`` -- holding pixel/16 in [0, 1] with ``normalize`` or
    the raw 0..16 values without; y int64 labels 0..9 of shape (1797,)."""
    res = importlib.resources.files("fastnn.data").joinpath(_DIGITS_FILE)
    with res.open("rb") as f:
        text = gzip.decompress(f.read())
    table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 65 or np.any(table[:, :64] < 0) or np.any(table[:, :64] > 16) \
            or np.any(table[:, 64] < 0) or np.any(table[:, 64] > 9):
        raise ValueError(f"load_digits: the bundled {_DIGITS_FILE} is damaged "
                         f"(table shape {table.shape}); reinstall fastnn")
    x = table[:, :64].astype(np.float32)
    if normalize:
        x /= np.float32(16.0)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(x), table[:, 64].copy()
