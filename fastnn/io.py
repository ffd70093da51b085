"""Save and load models (architecture, weights, optional optimizer state).

A checkpoint is a .npz archive (numpy's zip of .npy arrays, read back with
``allow_pickle=False``) holding one JSON header plus the arrays:

    __fastnn__            uint8 JSON: {"format": "fastnn", "version": 1,
                          "model": <architecture config>, "optimizer": ...}
    model/<param name>    every parameter and buffer (state_dict keys)
    optim/<i>/<name>      optimizer state arrays, if an optimizer was saved

The architecture is rebuilt from each module's constructor arguments
(recorded by ``Module.__new__``), looked up by class name among fastnn's
layers and any class passed to :func:`register_module`. No pickle anywhere.
Writes are atomic: a temporary file in the same directory is written,
fsync'ed and renamed over the target, so a crash never leaves a torn file
where the last good checkpoint was. The writer holds an exclusive lock
(``flock``) on its temporary file until the rename; a later save to the same
directory removes the temporaries of writers that died (their lock is gone)
and never one a live writer still holds. The checkpoint gets the permissions
a plain ``open()`` would give: those of the file it replaces, else 0666 minus
the umask."""
import io as _io
import json
import os
import secrets
import stat

import numpy as np

try:
    import fcntl
except ImportError:        # Windows: no flock; stale temporaries are left alone
    fcntl = None

from .nn.module import Module

__all__ = ["save", "load", "load_checkpoint", "register_module", "remove_stale_temporaries",
           "CheckpointError"]

FORMAT = "fastnn"
VERSION = 1
_HEADER = "__fastnn__"
_registry = {}


class CheckpointError(ValueError):
    """A file that is not a valid fastnn checkpoint (wrong format, truncated,
    corrupt, or not matching the model it is loaded into)."""


def register_module(cls):
    """Make a user-defined Module subclass loadable by name (usable as a
    class decorator). Its constructor arguments must be JSON-representable
    values or Modules."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module: expected a Module subclass, got {cls!r}")
    _registry[cls.__name__] = cls
    return cls


def _known(name):
    """The class a checkpoint naming ``name`` rebuilds: a registered class or
    one of fastnn.nn's; None if there is none. Never imports anything."""
    if name in _registry:
        return _registry[name]
    from . import nn
    cls = getattr(nn, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, Module) else None


def _lookup(name):
    cls = _known(name) if isinstance(name, str) else None
    if cls is None:
        raise CheckpointError(f"load: unknown module class {name!r}; register it with "
                              "fastnn.io.register_module")
    return cls


def _encode(v, where):
    if isinstance(v, Module):
        return {"__module__": _config(v)}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return {"__seq__": type(v).__name__, "items": [_encode(x, where) for x in v]}
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {"__dict__": {k: _encode(x, where) for k, x in v.items()}}
    raise TypeError(f"save: constructor argument of {where} has type {type(v).__name__}, "
                    "which a checkpoint cannot store (use numbers, strings, lists, dicts, Modules)")


def _decode(v):
    if isinstance(v, dict):
        if "__module__" in v:
            return _build(v["__module__"])
        if "__seq__" in v:
            items = [_decode(x) for x in v["items"]]
            return tuple(items) if v["__seq__"] == "tuple" else items
        if "__dict__" in v:
            return {k: _decode(x) for k, x in v["__dict__"].items()}
        raise CheckpointError(f"load: malformed architecture entry {v!r}")
    return v


def _config(module):
    args, kwargs = module._init_args
    cls = type(module)
    name = cls.__name__
    known = _known(name)
    if known is not cls:
        other = ("" if known is None else
                 f" (that name is taken by {known.__module__}.{known.__qualname__})")
        raise TypeError(f"save: {cls.__module__}.{cls.__qualname__} is not a fastnn layer nor a "
                        f"registered module class{other}, so load could not rebuild it: decorate "
                        f"the class with @fastnn.io.register_module (or call "
                        f"fastnn.io.register_module({name})) in the code that saves and loads it")
    return {"class": name, "args": [_encode(a, name) for a in args],
            "kwargs": {k: _encode(v, name) for k, v in kwargs.items()}}


def _build(cfg):
    if not isinstance(cfg, dict) or "class" not in cfg:
        raise CheckpointError(f"load: malformed architecture entry {cfg!r}")
    cls = _lookup(cfg["class"])
    try:
        return cls(*[_decode(a) for a in cfg.get("args", [])],
                   **{k: _decode(v) for k, v in cfg.get("kwargs", {}).items()})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"load: cannot rebuild {cfg['class']}: {e}") from None


def _split_state(state_dict):
    """Optimizer state dict -> (JSON-able skeleton, {array key: ndarray})."""
    arrays = {}
    state = {}
    for idx, st in state_dict.get("state", {}).items():
        entry = {}
        for name, val in st.items():
            if isinstance(val, np.ndarray):
                key = f"optim/{idx}/{name}"
                arrays[key] = val
                entry[name] = {"__array__": key}
            else:
                entry[name] = _encode(val, "optimizer state")
        state[str(idx)] = entry
    groups = [{k: _encode(v, "optimizer param group") for k, v in g.items()}
              for g in state_dict.get("param_groups", [])]
    return {"state": state, "param_groups": groups}, arrays


def _join_state(skel, archive):
    state = {}
    for idx, st in skel.get("state", {}).items():
        entry = {}
        for name, val in st.items():
            if isinstance(val, dict) and "__array__" in val:
                if val["__array__"] not in archive:
                    raise CheckpointError(f"load: optimizer array {val['__array__']!r} missing")
                entry[name] = archive[val["__array__"]]
            else:
                entry[name] = _decode(val)
        state[int(idx)] = entry
    return {"state": state, "param_groups": [{k: _decode(v) for k, v in g.items()}
                                             for g in skel.get("param_groups", [])]}


def save(model, path, optimizer=None, extra=None):
    """Write model (and optionally optimizer state and a JSON-able ``extra``
    dict, e.g. the epoch) to ``path`` atomically."""
    if not isinstance(model, Module):
        raise TypeError(f"save: model must be a fastnn Module, got {type(model).__name__}")
    header = {"format": FORMAT, "version": VERSION, "model": _config(model),
              "extra": _encode(extra or {}, "extra")}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        header["optimizer_class"] = type(optimizer).__name__
        header["optimizer"], opt_arrays = _split_state(optimizer.state_dict())
        arrays.update(opt_arrays)
    arrays[_HEADER] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(directory)
    fd, tmp = _new_temporary(directory)
    f = None
    try:
        _keep_mode(fd, path)
        f = os.fdopen(fd, "wb")
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
        if fcntl is None:
            f.close()                      # Windows cannot rename an open file
        os.replace(tmp, path)              # still locked: no cleaner can take it first
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        if f is not None:
            f.close()                      # releases the lock
        else:
            os.close(fd)
    try:                                   # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


_TMP_PREFIX, _TMP_SUFFIX = ".fastnn-", ".tmp"


def _new_temporary(directory):
    """(fd, name) of a new temporary file in ``directory``, created as a plain
    open() would create it (mode 0666 minus the umask) and locked (LOCK_EX)
    by this process until it is closed."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f"{_TMP_PREFIX}{secrets.token_hex(8)}{_TMP_SUFFIX}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:     # a cleaner may have locked and removed it before we could lock it
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def _keep_mode(fd, path):
    """Replacing an existing file keeps its permission bits, as writing to it
    with open() would."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return                             # a new file: the umask applied at creation
    if hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, mode)
        except OSError:
            pass


def remove_stale_temporaries(directory):
    """Remove the ``.fastnn-*.tmp`` files in ``directory`` left by saves that
    died (killed, crashed, power cut) before renaming them. A file is removed
    only if its lock can be taken at once: a live writer holds the lock on its
    temporary until the rename, so its file is never touched (on any host
    sharing the file system, where the file system supports flock). Returns
    the names removed; without fcntl (Windows) it does nothing."""
    removed = []
    if fcntl is None:
        return removed
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX)):
            continue
        full = os.path.join(directory, name)
        try:        # O_RDWR: flock over NFS is a write lock, which needs a writable fd
            fd = os.open(full, os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.samestat(os.fstat(fd), os.lstat(full)):   # still the file we locked
                os.unlink(full)
                removed.append(name)
        except OSError:
            pass                           # a live writer holds it, or it is already gone
        finally:
            os.close(fd)
    return removed


def load_checkpoint(path):
    """Read and validate a checkpoint: returns a dict with 'header' and
    'arrays' (name -> ndarray). Raises CheckpointError on anything that is not
    a complete fastnn checkpoint of a version this fastnn can read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path!r}")
    try:
        with open(path, "rb") as f:
            data = f.read()
        with np.load(_io.BytesIO(data), allow_pickle=False) as z:
            if _HEADER not in z.files:
                raise CheckpointError(f"load: {path!r} is not a fastnn checkpoint (no header)")
            arrays = {k: z[k] for k in z.files}
    except (CheckpointError, MemoryError):
        raise
    except FileNotFoundError:
        raise
    except Exception as e:   # zip/zlib/npy format errors of every kind: corrupt file
        raise CheckpointError(f"load: {path!r} is truncated, corrupt or not a fastnn "
                              f"checkpoint ({type(e).__name__}: {e})") from None
    try:
        header = json.loads(arrays.pop(_HEADER).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"load: {path!r} has a corrupt header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"load: {path!r} is not a fastnn checkpoint")
    if not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise CheckpointError(f"load: {path!r} has format version {header.get('version')!r}; "
                              f"this fastnn reads versions up to {VERSION}")
    header["extra"] = _decode(header.get("extra", {}))
    return {"header": header, "arrays": arrays}


def load(path, optimizer=None, model=None):
    """Rebuild the saved model (or fill ``model`` if given) and return it.
    With ``optimizer``, also restore its saved state (an optimizer of the
    same class over the returned model's parameters)."""
    ck = load_checkpoint(path)
    header, arrays = ck["header"], ck["arrays"]
    if model is None:
        model = _build(header.get("model"))
    weights = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    expected = {k: b.dtype for k, b in model.named_buffers()}     # parameters: float32
    for k, v in weights.items():
        want = expected.get(k, np.dtype(np.float32))
        if v.dtype != want:
            raise CheckpointError(f"load: {k!r} has dtype {v.dtype}, expected {want}")
    try:
        model.load_state_dict(weights, strict=True)
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"load: {path!r} does not match the model: {e}") from None
    if optimizer is not None:
        if "optimizer" not in header:
            raise CheckpointError(f"load: {path!r} holds no optimizer state")
        if header.get("optimizer_class") != type(optimizer).__name__:
            raise CheckpointError(f"load: {path!r} holds {header.get('optimizer_class')} state, "
                                  f"not {type(optimizer).__name__}")
        try:
            optimizer.load_state_dict(_join_state(header["optimizer"], arrays))
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"load: optimizer state in {path!r} does not fit: {e}") from None
    return model
